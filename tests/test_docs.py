"""The README's language reference is the one the builtin schemas generate."""

from pathlib import Path

from kbuild.model.reference import builtin_reference

ROOT = Path(__file__).resolve().parents[1]


def test_readme_reference_is_current():
    readme = (ROOT / "README.md").read_text()
    assert builtin_reference().rstrip("\n") in readme, (
        "run: python -m kbuild.model.reference, and paste into README.md"
    )


def test_readme_names_every_command():
    from kbuild.cli import app

    readme = (ROOT / "README.md").read_text()
    for command in app.registered_commands:
        name = command.name or command.callback.__name__
        assert f"`kbuild {name}" in readme, name
