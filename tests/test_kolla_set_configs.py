"""kolla_set_configs (recipes/base/kolla_set_configs), run as a subprocess against a temporary tree.

The script's fixed paths (/run_command, /configured, /etc/kolla/defaults) go under a temporary
root through KOLLA_SET_CONFIGS_ROOT, and config.json is found through KOLLA_CONFIG_FILE (Kolla's
own variable). The tests run as root, as the script does in a container, so chown works; owners
are the `daemon` user (uid 1 on Debian and Rocky) and numeric ids.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "recipes" / "base" / "kolla_set_configs"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="kolla_set_configs changes owners: needs root")


class Tree:
    """A temporary container file system: config.json, sources under src/, the script's root."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "root"
        self.src = base / "src"
        self.etc = base / "etc"
        for path in (self.root, self.src, self.etc):
            path.mkdir()
        self.config = base / "config.json"

    def write_config(self, config: object) -> None:
        text = config if isinstance(config, str) else json.dumps(config)
        self.config.write_text(text)

    def run(
        self, config: object | None = None, *args: str, strategy: str | None = "COPY_ALWAYS"
    ) -> subprocess.CompletedProcess[str]:
        if config is not None:
            self.write_config(config)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "KOLLA_CONFIG_FILE": str(self.config),
            "KOLLA_SET_CONFIGS_ROOT": str(self.root),
        }
        if strategy is not None:
            env["KOLLA_CONFIG_STRATEGY"] = strategy
        return subprocess.run(
            [sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60
        )

    def ok(self, config: object | None = None, *args: str, strategy: str = "COPY_ALWAYS") -> str:
        result = self.run(config, *args, strategy=strategy)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        return result.stderr


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def owner(path: Path) -> tuple[int, int]:
    info = path.lstat()
    return info.st_uid, info.st_gid


def entry(source: Path | str, dest: Path | str, **extra: object) -> dict:
    return {"source": str(source), "dest": str(dest), "owner": "daemon", "perm": "0640", **extra}


def test_command_is_written_to_run_command(tree: Tree) -> None:
    log = tree.ok({"command": "/usr/bin/memcached -v -p 11211"})
    run_command = tree.root / "run_command"
    assert run_command.read_text() == "/usr/bin/memcached -v -p 11211"
    assert mode(run_command) == 0o644
    assert "INFO:__main__:Writing out command to execute" in log


def test_a_glob_source_copies_every_match_into_a_dest_directory(tree: Tree) -> None:
    for name in ("a.conf", "b.conf", "skip.txt"):
        (tree.src / name).write_text(name)
    tree.ok({"command": "true", "config_files": [entry(tree.src / "*.conf", f"{tree.etc}/svc/")]})
    assert sorted(p.name for p in (tree.etc / "svc").iterdir()) == ["a.conf", "b.conf"]
    assert (tree.etc / "svc" / "b.conf").read_text() == "b.conf"


def test_a_dest_without_a_trailing_slash_is_the_file_itself(tree: Tree) -> None:
    (tree.src / "memcached.conf").write_text("-m 64\n")
    log = tree.ok(
        {"command": "true", "config_files": [entry(tree.src / "memcached.conf", tree.etc / "renamed")]}
    )
    assert (tree.etc / "renamed").read_text() == "-m 64\n"
    assert f"Copying {tree.src / 'memcached.conf'} to {tree.etc / 'renamed'}" in log


@pytest.mark.parametrize(
    ("owner_field", "expected"),
    [("daemon", (1, 1)), ("daemon:root", (1, 0)), ("daemon:", (1, 1)), ("4242:4343", (4242, 4343))],
)
def test_owner_and_perm_are_set(tree: Tree, owner_field: str, expected: tuple[int, int]) -> None:
    (tree.src / "f").write_text("x")
    (tree.src / "f").chmod(0o666)
    tree.ok({"command": "true", "config_files": [entry(tree.src / "f", tree.etc / "f", owner=owner_field)]})
    assert owner(tree.etc / "f") == expected
    assert mode(tree.etc / "f") == 0o640


def test_an_optional_missing_source_is_skipped_and_a_required_one_is_an_error(tree: Tree) -> None:
    missing = tree.src / "nope.conf"
    tree.ok({"command": "true", "config_files": [entry(missing, tree.etc / "x", optional=True)]})
    assert not (tree.etc / "x").exists()
    result = tree.run({"command": "changed", "config_files": [entry(missing, tree.etc / "x")]})
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and str(missing) in errors[0]
    assert (tree.root / "run_command").read_text() == "true"  # nothing is done when the input is bad


def test_a_directory_replaces_the_dest_unless_merge(tree: Tree) -> None:
    source = tree.src / "conf.d"
    source.mkdir()
    (source / "new.conf").write_text("new")
    dest = tree.etc / "conf.d"
    dest.mkdir()
    (dest / "shipped.conf").write_text("shipped")

    tree.ok({"command": "true", "config_files": [entry(source, dest, merge=True)]})
    assert sorted(p.name for p in dest.iterdir()) == ["new.conf", "shipped.conf"]
    assert mode(dest) == 0o750  # a readable directory is also searchable
    assert owner(dest / "new.conf") == (1, 1)

    tree.ok({"command": "true", "config_files": [entry(source, dest)]})
    assert sorted(p.name for p in dest.iterdir()) == ["new.conf"]


def test_preserve_properties_copies_the_source_mode_and_owner(tree: Tree) -> None:
    source = tree.src / "script.sh"
    source.write_text("#!/bin/sh\n")
    source.chmod(0o751)
    os.chown(source, 4242, 4343)
    config = {
        "command": "true",
        "config_files": [
            {"source": str(source), "dest": str(tree.etc / "script.sh"), "preserve_properties": True}
        ],
    }
    tree.ok(config)
    assert mode(tree.etc / "script.sh") == 0o751
    assert owner(tree.etc / "script.sh") == (4242, 4343)


def test_merge_with_preserve_properties_keeps_symlinks(tree: Tree) -> None:
    source = tree.src / "tree"
    source.mkdir()
    (source / "real").write_text("r")
    (source / "link").symlink_to("real")
    dest = tree.etc / "tree"
    config = {
        "command": "true",
        "config_files": [
            {"source": str(source), "dest": str(dest), "merge": True, "preserve_properties": True}
        ],
    }
    tree.ok(config)
    assert (dest / "link").is_symlink() and os.readlink(dest / "link") == "real"
    assert tree.run(config, "--check").returncode == 0


def test_permissions_recurse_and_exclude(tree: Tree) -> None:
    top = tree.etc / "data"
    (top / "sub").mkdir(parents=True)
    (top / "sub" / "file").write_text("f")
    (top / "keep.log").write_text("k")
    (top / "keep.log").chmod(0o600)
    config = {
        "command": "true",
        "permissions": [
            {
                "path": str(top),
                "owner": "daemon:daemon",
                "perm": "0640",
                "recurse": True,
                "exclude": [r"\.log$"],
            },
        ],
    }
    tree.ok(config)
    assert owner(top) == owner(top / "sub") == owner(top / "sub" / "file") == (1, 1)
    assert mode(top / "sub") == 0o750 and mode(top / "sub" / "file") == 0o640
    assert owner(top / "keep.log") == (0, 0) and mode(top / "keep.log") == 0o600  # excluded

    flat = tree.etc / "flat"
    (flat / "inner").mkdir(parents=True)
    tree.ok({"command": "true", "permissions": [{"path": str(flat), "owner": "4242"}]})
    assert owner(flat) == (4242, 4242) and owner(flat / "inner") == (0, 0)  # no recurse


def test_copy_always_copies_on_every_start(tree: Tree) -> None:
    source = tree.src / "f"
    source.write_text("one")
    config = {"command": "true", "config_files": [entry(source, tree.etc / "f")]}
    tree.ok(config)
    source.write_text("two")
    tree.ok(config)
    assert (tree.etc / "f").read_text() == "two"
    assert not (tree.root / "configured").exists()


def test_copy_once_copies_on_the_first_start_only(tree: Tree) -> None:
    source = tree.src / "f"
    source.write_text("one")
    config = {"command": "first", "config_files": [entry(source, tree.etc / "f")]}
    tree.ok(config, strategy="COPY_ONCE")
    assert (tree.root / "configured").exists()
    source.write_text("two")
    log = tree.ok({**config, "command": "second"}, strategy="COPY_ONCE")
    assert (tree.etc / "f").read_text() == "one"
    assert (tree.root / "run_command").read_text() == "first"
    assert "COPY_ONCE" in log


def test_defaults_are_saved_and_restored_when_a_file_leaves_config_json(tree: Tree) -> None:
    shipped = tree.etc / "svc.conf"
    shipped.write_text("image default\n")
    shipped.chmod(0o644)
    new = tree.etc / "extra.conf"  # the image has none
    (tree.src / "svc.conf").write_text("deployed\n")
    (tree.src / "extra.conf").write_text("extra\n")
    both = {
        "command": "true",
        "config_files": [entry(tree.src / "svc.conf", shipped), entry(tree.src / "extra.conf", new)],
    }
    tree.ok(both)
    assert shipped.read_text() == "deployed\n" and new.read_text() == "extra\n"
    saved = tree.root / "etc" / "kolla" / "defaults" / str(shipped).lstrip("/")
    assert saved.read_text() == "image default\n"
    state = json.loads((tree.root / "etc" / "kolla" / "defaults" / "state").read_text())
    assert state == {str(shipped): str(saved), str(new): None}

    tree.ok(both)  # a second start must not save the deployed file as the image's
    assert saved.read_text() == "image default\n"

    log = tree.ok({"command": "true"})
    assert shipped.read_text() == "image default\n"
    assert mode(shipped) == 0o644 and owner(shipped) == (0, 0)
    assert not new.exists()
    assert f"Restoring the image's {shipped}" in log


def test_check_exit_codes(tree: Tree) -> None:
    source = tree.src / "f"
    source.write_text("one")
    dest = tree.etc / "f"
    config = {"command": "run me", "config_files": [entry(source, dest)]}
    tree.write_config(config)
    assert tree.run(None, "--check").returncode == 1  # nothing applied yet
    tree.ok(config)
    assert tree.run(None, "--check", strategy=None).returncode == 0
    assert dest.read_text() == "one"

    dest.write_text("edited")
    result = tree.run(None, "--check")
    assert result.returncode == 1 and f"{dest} differs" in result.stderr
    assert dest.read_text() == "edited"  # --check changes nothing
    tree.ok(config)

    dest.chmod(0o600)
    assert tree.run(None, "--check").returncode == 1
    tree.ok(config)
    assert tree.run({**config, "command": "another"}, "--check").returncode == 1
    assert tree.run({"command": "run me"}, "--check").returncode == 1  # f would be restored
    assert tree.run({**config, "command": 3}, "--check").returncode == 2


def test_check_covers_permissions(tree: Tree) -> None:
    (tree.etc / "d").mkdir()
    config = {
        "command": "true",
        "permissions": [{"path": str(tree.etc / "d"), "owner": "daemon", "perm": "0700"}],
    }
    tree.ok(config)
    assert tree.run(config, "--check").returncode == 0
    os.chown(tree.etc / "d", 0, 0)
    assert tree.run(config, "--check").returncode == 1


@pytest.mark.parametrize(
    ("config", "strategy", "message"),
    [
        ('{"command": "true",', "COPY_ALWAYS", "invalid JSON"),
        ({"config_files": []}, "COPY_ALWAYS", "missing required key 'command'"),
        ([], "COPY_ALWAYS", "must be an object"),
        ({"command": ["memcached"]}, "COPY_ALWAYS", "command must be a string"),
        ({"command": "true", "config_files": {}}, "COPY_ALWAYS", "config_files must be a list"),
        (
            {"command": "true", "config_files": [{"source": "/x"}]},
            "COPY_ALWAYS",
            "missing required key 'dest'",
        ),
        (
            {"command": "true", "config_files": [entry("/x", "/y", perm=640)]},
            "COPY_ALWAYS",
            "perm must be a string",
        ),
        ({"command": "true", "config_files": [entry("/x", "/y", perm="rw")]}, "COPY_ALWAYS", "octal mode"),
        (
            {"command": "true", "config_files": [entry("/x", "/y", optional="yes")]},
            "COPY_ALWAYS",
            "true or false",
        ),
        (
            {"command": "true", "config_files": [entry("/x", "/y", owner="nosuchuser")]},
            "COPY_ALWAYS",
            "no such user",
        ),
        (
            {"command": "true", "config_files": [{"source": "/x", "dest": "/y"}]},
            "COPY_ALWAYS",
            "preserve_properties",
        ),
        ({"command": "true", "config_file": []}, "COPY_ALWAYS", "unknown key 'config_file'"),
        ({"command": "true", "permissions": [{"path": "/x"}]}, "COPY_ALWAYS", "missing required key 'owner'"),
        (
            {"command": "true", "permissions": [{"path": "/x", "owner": "root", "exclude": ["("]}]},
            "COPY_ALWAYS",
            "regular",
        ),
        ({"command": "true"}, "COPY_SOMETIMES", "KOLLA_CONFIG_STRATEGY must be one of"),
        ({"command": "true"}, None, "KOLLA_CONFIG_STRATEGY must be one of"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(
    tree: Tree, config: object, strategy: str | None, message: str
) -> None:
    result = tree.run(config, strategy=strategy)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert not (tree.root / "run_command").exists()


def test_a_missing_config_file_is_exit_2(tree: Tree) -> None:
    result = tree.run(None)
    assert result.returncode == 2
    assert f"cannot read {tree.config}" in result.stderr and "Traceback" not in result.stderr
