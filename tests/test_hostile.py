"""Hostile workspaces and overlays (issue 10) that the corpus cannot hold: symlinks, FIFOs,
devices, huge files and lines, deep parent chains; and every one of them bounded in memory and
time (run under `ulimit -v` and a wall clock, in a subprocess)."""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import MakeWorkspace, run_kbuild

KB = "recipes/bad/bad.kb"
MEMORY_KB = 1_000_000  # ulimit -v: 1 GB of address space for the whole process
MAX_RSS_KB = 200_000  # and what it really used, at most
WALL_SECONDS = 20  # generous: the machine is shared with real builds; most take well under 2 s


# Runs its arguments as a child and reports the child's own peak RSS: pytest's RUSAGE_CHILDREN
# would count every process the whole session waited for (real builds, ansible).
_PEAK = (
    "import resource, subprocess, sys; run = subprocess.run(sys.argv[1:]); "
    "sys.stderr.write('\\nkbuild-peak-rss-kb %d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
    "sys.exit(run.returncode)"
)


def bounded_kbuild(*args: str | Path) -> tuple[subprocess.CompletedProcess[str], float]:
    """`python -m kbuild ARGS` under a memory limit and a wall-clock timeout; its peak RSS too."""
    command = shlex.join([sys.executable, "-c", _PEAK, sys.executable, "-m", "kbuild", *map(str, args)])
    started = time.monotonic()
    result = subprocess.run(
        ["bash", "-c", f"ulimit -v {MEMORY_KB}; exec {command}"],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        timeout=WALL_SECONDS,
        check=False,
    )
    elapsed = time.monotonic() - started
    stderr, _, peak = result.stderr.rpartition("\nkbuild-peak-rss-kb ")
    assert peak, result.stderr[-2000:]
    assert int(peak) < MAX_RSS_KB, f"kbuild used {int(peak)} KB"
    result.stderr = stderr
    return result, elapsed


def refused(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.startswith("error: "), result.stderr[:2000]
    assert message in result.stderr.split("\n")[0], result.stderr[:2000]


# --- nothing leaves the workspace --------------------------------------------------------------


def test_a_context_file_symlinked_outside_the_workspace_is_refused(
    workspace_factory: MakeWorkspace, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("root:x:0:0\n")
    workspace = workspace_factory({KB: 'image(name = "bad", files = {"shadow": "/etc/x"})\n'})
    (workspace / "recipes/bad/shadow").symlink_to(secret)

    result = run_kbuild("list", "-C", workspace)

    refused(result, f"context file 'recipes/bad/shadow' is a symlink to {secret}, outside")
    assert f"  --> {KB}:1:30" in result.stderr
    assert "hint: a recipe reads only its own tree" in result.stderr


def test_a_context_file_symlinked_inside_the_workspace_is_fine(workspace_factory: MakeWorkspace) -> None:
    workspace = workspace_factory({KB: 'image(name = "bad", files = {"start": "/etc/x"})\n'})
    (workspace / "recipes/bad/start").symlink_to(workspace / "recipes/keystone/start.sh")
    assert run_kbuild("list", "-C", workspace).returncode == 0


@pytest.mark.parametrize("target", ["/proc/self/environ", "/dev/zero", "/etc/passwd"])
def test_a_context_file_symlinked_to_the_system_is_refused(
    target: str, workspace_factory: MakeWorkspace
) -> None:
    workspace = workspace_factory({KB: 'image(name = "bad", files = {"f": "/etc/x"})\n'})
    (workspace / "recipes/bad/f").symlink_to(target)
    result, _ = bounded_kbuild("list", "-C", workspace)
    refused(result, "context file 'recipes/bad/f' is a symlink to")


def _archive_workspace(workspace_factory: MakeWorkspace) -> Path:
    digest = hashlib.sha256(b"").hexdigest()
    return workspace_factory(
        {KB: f'image(name = "bad", source = pip("x", archive = "x.whl", sha256 = "{digest}"))\n'}
    )


def test_a_pip_archive_that_is_a_fifo_does_not_hang(workspace_factory: MakeWorkspace) -> None:
    workspace = _archive_workspace(workspace_factory)
    os.mkfifo(workspace / "recipes/bad/x.whl")
    result, _ = bounded_kbuild("list", "-C", workspace)
    refused(result, "cannot read recipes/bad/x.whl: it is not a regular file (a FIFO)")


@pytest.mark.parametrize("path", ["recipes/bad/x.kb", "recipes/bad/f"])
def test_a_fifo_in_the_tree_is_never_opened(path: str, workspace_factory: MakeWorkspace) -> None:
    workspace = workspace_factory({"recipes/bad/bad.kb": 'image(name = "bad", files = {"f": "/etc/f"})\n'})
    os.mkfifo(workspace / path)
    result, _ = bounded_kbuild("list", "-C", workspace)
    refused(result, "is not a regular file (a FIFO)")


def test_a_pip_archive_symlinked_to_dev_zero_is_refused(workspace_factory: MakeWorkspace) -> None:
    workspace = _archive_workspace(workspace_factory)
    (workspace / "recipes/bad/x.whl").symlink_to("/dev/zero")
    result, elapsed = bounded_kbuild("list", "-C", workspace)
    refused(result, "cannot read recipes/bad/x.whl: it is a symlink to /dev/zero")
    assert elapsed < WALL_SECONDS


def test_a_symlinked_recipe_outside_the_workspace_is_not_evaluated(
    workspace_factory: MakeWorkspace, tmp_path: Path
) -> None:
    outside = tmp_path / "evil.kb"
    outside.write_text('image(name = "evil")\n')
    workspace = workspace_factory()
    (workspace / "recipes/evil.kb").symlink_to(outside)
    result = run_kbuild("list", "-C", workspace)
    refused(result, f"cannot read recipes/evil.kb: it is a symlink to {outside}, outside")


def test_load_of_a_symlink_outside_the_workspace_is_refused(
    workspace_factory: MakeWorkspace, tmp_path: Path
) -> None:
    outside = tmp_path / "lib.kb"
    outside.write_text("X = 1\n")
    workspace = workspace_factory({KB: 'load("//lib/lib.kb", "X")\n'})
    (workspace / "lib").mkdir()
    (workspace / "lib/lib.kb").symlink_to(outside)
    result = run_kbuild("list", "-C", workspace)
    refused(result, f"cannot load '//lib/lib.kb': lib/lib.kb is a symlink to {outside}, outside")
    assert f"  --> {KB}:1:6" in result.stderr


def test_an_overlay_file_symlinked_out_of_its_overlay_is_refused(
    workspace_factory: MakeWorkspace, tmp_path: Path
) -> None:
    """An overlay reads its own directory: not even the workspace it is applied to."""
    workspace = workspace_factory()
    overlay = tmp_path / "vendor"
    overlay.mkdir()
    (overlay / "overlay.kb").write_text('override("keystone", files = {"start": "/etc/x"})\n')
    (overlay / "start").symlink_to(workspace / "recipes/keystone/start.sh")
    result = run_kbuild("list", "-C", workspace, "--overlay", overlay)
    refused(result, "is a symlink to")


def test_a_settings_overlay_symlinked_out_of_the_workspace_is_refused(
    workspace_factory: MakeWorkspace, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "o.kb").write_text('image(name = "evil")\n')
    workspace = workspace_factory(
        {"BUILD/settings.kb": 'settings(distro = "debian", overlays = ["vendor"])\n'}
    )
    (workspace / "vendor").symlink_to(outside)
    result = run_kbuild("list", "-C", workspace)
    refused(result, "overlay directory 'vendor' is outside the workspace")
    # the builder may still choose it explicitly
    explicit = workspace_factory()
    assert run_kbuild("list", "-C", explicit, "--overlay", outside).returncode == 0


# --- evaluation is bounded, in memory and time ---------------------------------------------------

BOUNDED = {
    "string doubling": ('s = "x"\nfor i in range(64):\n    s = s + s\n', "'+' would make a value of"),
    "list doubling": ("xs = [1]\nfor i in range(64):\n    xs = xs + xs\n", "'+' would make a value of"),
    "percent width": ('x = "%2000000000d" % 1\n', "width or precision 2000000000"),
    "format width": ('x = "{:>2000000000}".format(1)\n', "width or precision 2000000000"),
    "nested ranges": (
        "def f():\n    for a in range(1000000):\n        for b in range(1000000):\n            pass\n\nf()\n",
        "evaluation takes more than",
    ),
    "replace": ('x = ("x" * 1000000).replace("x", "x" * 1000000)\n', "string.replace() would make"),
    "allocation": ('x = [("x" * 999990) + str(i) for i in range(10000)]\n', "evaluation makes more than"),
    "comprehension": ("x = [[i] * 1000000 for i in range(1000)]\n", "evaluation makes more than"),
}


@pytest.mark.parametrize("name", BOUNDED)
def test_evaluation_is_bounded(name: str, workspace_factory: MakeWorkspace) -> None:
    text, message = BOUNDED[name]
    workspace = workspace_factory({KB: text})
    result, elapsed = bounded_kbuild("list", "-C", workspace)
    refused(result, message)
    assert f"  --> {KB}:" in result.stderr
    assert "hint: " in result.stderr
    assert elapsed < WALL_SECONDS


def test_a_huge_file_is_refused_before_it_is_parsed(workspace_factory: MakeWorkspace) -> None:
    line = "x = " + repr("a" * 70) + "\n"
    workspace = workspace_factory({KB: line * (50_000_000 // len(line))})
    result, _ = bounded_kbuild("list", "-C", workspace)
    refused(result, "cannot read recipes/bad/bad.kb: it is larger than")


def test_a_large_file_is_refused_with_its_place(workspace_factory: MakeWorkspace) -> None:
    line = "x = " + repr("a" * 70) + "\n"
    workspace = workspace_factory({KB: line * (400_000 // len(line))})
    result, _ = bounded_kbuild("list", "-C", workspace)
    refused(result, "recipes/bad/bad.kb is longer than")
    assert "hint: split it into several files and load() them" in result.stderr


@pytest.mark.parametrize(
    ("length", "message"),
    [
        (200_000, "line 1 is longer than 4096 characters"),
        (10_000_000, "cannot read recipes/bad/bad.kb: it is larger than"),
    ],
)
def test_a_huge_line_is_refused_and_the_message_stays_short(
    length: int, message: str, workspace_factory: MakeWorkspace
) -> None:
    workspace = workspace_factory({KB: "x = '" + "a" * length + "'\n"})
    result, _ = bounded_kbuild("list", "-C", workspace)
    refused(result, message)
    assert len(result.stderr) < 2_000


def test_a_long_line_is_cut_around_the_caret(workspace_factory: MakeWorkspace) -> None:
    line = "x = [" + ", ".join(["1"] * 1000) + ", undefined_thing]"
    workspace = workspace_factory({KB: line + "\n"})
    result = run_kbuild("list", "-C", workspace)
    refused(result, "undefined name 'undefined_thing'")
    lines = result.stderr.split("\n")
    source, caret = lines[3], lines[4]
    assert len(source) < 200 and source.startswith(" 1 | ...")
    assert source[caret.index("^") :].startswith("undefined_thing")


def test_control_characters_of_a_source_line_are_escaped(workspace_factory: MakeWorkspace) -> None:
    workspace = workspace_factory({KB: 'x = "\x1b[2J\x00" + undefined_thing\n'})
    result = run_kbuild("list", "-C", workspace)
    refused(result, "undefined name 'undefined_thing'")
    assert "\x1b" not in result.stderr and "\x00" not in result.stderr
    source, caret = result.stderr.split("\n")[3:5]
    assert "\\x1b[2J\\x00" in source
    assert source[caret.index("^") :].startswith("undefined_thing")


def test_a_catastrophic_profile_pattern_does_not_hang(workspace_factory: MakeWorkspace) -> None:
    name = "a" * 40
    workspace = workspace_factory(
        {
            KB: f'image(name = "{name}")\n',
            "BUILD/profiles.kb": 'profile(name = "core", images = ["^base$"])\n'
            'profile(name = "evil", images = ["^(a+)+$"])\n',
        }
    )
    result, elapsed = bounded_kbuild("list", "-C", workspace, "-p", "evil", f"^({'a' * 10}+)+b$|^base$")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed < WALL_SECONDS


@pytest.mark.parametrize("cycle", [False, True])
def test_a_parent_chain_deeper_than_the_stack(cycle: bool, workspace_factory: MakeWorkspace) -> None:
    depth = 1_500
    lines = ['image(name = "c0", parent = "base")\n'] + [
        f'image(name = "c{i}", parent = "c{i - 1}")\n' for i in range(1, depth)
    ]
    if cycle:
        lines[0] = f'image(name = "c0", parent = "c{depth - 1}")\n'
    workspace = workspace_factory({KB: "".join(lines)})
    result, _ = bounded_kbuild("list", "-C", workspace)
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    if cycle:
        refused(result, "parent cycle: c0 -> ")
    else:
        assert result.returncode == 0, result.stderr[-2000:]


def test_an_unreadable_directory_is_an_error_even_for_root(
    workspace_factory: MakeWorkspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As root every directory is readable, so the refusal of the OS is played here."""
    from kbuild.errors import KbuildError
    from kbuild.model.workspace import workspace_files

    workspace = workspace_factory()
    locked = workspace / "recipes/locked"
    locked.mkdir()
    real_scandir = os.scandir

    def scandir(path: str | os.PathLike[str]) -> object:
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(KbuildError, match=f"directory {locked} cannot be read: Permission denied"):
        workspace_files(workspace)
