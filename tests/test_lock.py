"""The lock file and locked rendering, without building (the real lock is in test_cache_real)."""

from __future__ import annotations

import pytest
from compiling import compile_workspace
from conftest import MakeWorkspace, run_kbuild

from kbuild.compile.lock import (
    ImagePins,
    Lock,
    LockEntry,
    dump_lock,
    own_packages,
    parse_installed,
    pip_pins,
    read_lock,
    stale_entries,
)
from kbuild.errors import KbuildError

TWO_PLATFORMS = {
    "platforms/linux.kb": 'platform(name = "linux/amd64", arch = {"deb": "amd64"})\n'
    'platform(name = "linux/arm64", arch = {"deb": "arm64"})\n',
    "distros/families.kb": 'family(name = "deb", install = "apt-get install -y {packages}",'
    ' add_user = "useradd {name}", pin = "{name}={version}")\n',
}


def a_lock(variant: str, entries: dict[str, LockEntry]) -> Lock:
    return Lock(1767225600, "sha256:recipes", {variant: entries})


def test_a_lock_reads_back_what_was_written_and_dumps_byte_identically(tmp_path):
    pins = ImagePins(
        {"linux/arm64": {"zlib1g": "1:1.2.13", "curl": "7.88"}, "linux/amd64": {"curl": "7.88"}},
        {"linux/amd64": ("b==2 --hash=sha256:bb", "a==1 --hash=sha256:aa")},
    )
    lock = a_lock(
        "debian-bookworm-binary", {"base": LockEntry("sha256:in", pins, {"linux/amd64": "sha256:d"})}
    )
    path = tmp_path / "kbuild.lock"
    path.write_bytes(dump_lock(lock))
    again = read_lock(path)
    assert again is not None and dump_lock(again) == path.read_bytes()
    text = path.read_text()
    assert "- curl=7.88\n" in text and "- zlib1g=1:1.2.13\n" in text  # one fact per line
    assert text.index("linux/amd64") < text.index("linux/arm64")  # stable order
    assert text.index("a==1") < text.index("b==2")


def test_a_malformed_lock_is_a_located_error(tmp_path):
    path = tmp_path / "kbuild.lock"
    path.write_text("lock: 1\nvariants: [\n")
    with pytest.raises(KbuildError) as caught:
        read_lock(path)
    assert caught.value.location is not None and caught.value.location.path == str(path)
    assert read_lock(tmp_path / "missing.lock") is None


def test_stale_entries_name_what_is_missing_changed_or_lacks_a_platform():
    entries = {
        "base": LockEntry("sha256:1", ImagePins({"linux/amd64": {"a": "1"}})),
        "mid": LockEntry("sha256:old", ImagePins({"linux/amd64": {"a": "1"}})),
    }
    expected = {"base": "sha256:1", "mid": "sha256:2", "leaf": "sha256:3"}
    stale = stale_entries(a_lock("v", entries), "v", expected, ["linux/amd64"])
    assert set(stale) == {"mid", "leaf"}
    assert "not in the lock" in stale["leaf"]
    stale = stale_entries(a_lock("v", entries), "v", {"base": "sha256:1"}, ["linux/amd64", "linux/arm64"])
    assert stale == {"base": "no pins for linux/arm64"}


def test_own_packages_are_what_the_image_added_or_changed():
    parent = parse_installed("a=1\nb=2\n")
    image = parse_installed("a=1\nb=3\nc=1\nnot a package line\n")
    assert own_packages(image, parent) == {"b": "3", "c": "1"}


def test_pip_pins_keep_direct_references_and_refuse_unhashed_ones():
    report = {
        "install": [
            {
                "metadata": {"name": "keystone", "version": "27.0.0"},
                "is_direct": True,
                "download_info": {
                    "url": "https://git.acme.example/keystone-27.0.0.tar.gz#sha256=ab",
                    "archive_info": {"hashes": {"sha256": "ab"}},
                },
            },
            {
                "metadata": {"name": "PyMySQL", "version": "1.1.1"},
                "download_info": {"url": "https://pypi/x.whl", "archive_info": {"hashes": {"sha256": "cd"}}},
            },
        ]
    }
    assert pip_pins(report) == (
        "PyMySQL==1.1.1 --hash=sha256:cd",
        "keystone @ https://git.acme.example/keystone-27.0.0.tar.gz --hash=sha256:ab",
    )
    vcs = {
        "install": [{"metadata": {"name": "x", "version": "1"}, "download_info": {"url": "git+https://x"}}]
    }
    with pytest.raises(KbuildError, match="without a sha256"):
        pip_pins(vcs)


def test_locked_rendering_pins_every_package_per_architecture(workspace_factory: MakeWorkspace, tmp_path):
    workspace = workspace_factory(TWO_PLATFORMS)
    unlocked = compile_workspace(
        workspace, tmp_path / "u", patterns=("^base$",), platforms=("linux/amd64", "linux/arm64")
    )
    inputs = unlocked.inputs
    entries = {
        name: LockEntry(inputs[name], ImagePins({"linux/amd64": {}, "linux/arm64": {}})) for name in inputs
    }
    entries["base"] = LockEntry(
        inputs["base"],
        ImagePins(
            {
                "linux/amd64": {"curl": "7.88", "libc6": "2.36"},
                "linux/arm64": {"curl": "7.88", "libc6": "2.36+b1"},
            }
        ),
    )
    lock = a_lock(unlocked.request.variant, entries)
    locked = compile_workspace(
        workspace,
        tmp_path / "l",
        lock=lock,
        locked=True,
        patterns=("^base$",),
        platforms=("linux/amd64", "linux/arm64"),
    )
    dockerfile = {t.name: t.dockerfile for t in locked.rendered.targets}["base"]
    assert "curl=7.88" in dockerfile and "ARG TARGETARCH" in dockerfile
    assert "amd64) echo libc6=2.36 ;;" in dockerfile and "arm64) echo libc6=2.36+b1 ;;" in dockerfile
    assert locked.plan.hashes["base"] != unlocked.plan.hashes["base"]  # pins are inputs too
    assert locked.inputs == unlocked.inputs  # but not of what the lock records


def test_bake_locked_refuses_a_missing_lock_naming_the_images(workspace_factory: MakeWorkspace):
    workspace = workspace_factory()
    result = run_kbuild("bake", "-p", "core", "--locked", cwd=workspace)
    assert result.returncode == 2, result.stderr
    assert "no kbuild.lock" in result.stderr and "base, keystone-base, keystone" in result.stderr
    assert "Traceback" not in result.stderr


def test_update_alone_locks_only_the_images_named() -> None:
    """`kbuild lock --update NAME` without -p: NAME (its ancestors come along), not every image."""
    from kbuild.cli.lock import update_selection
    from kbuild.compile.select import SelectOptions

    images = {"base", "mariadb-server", "keystone", "a.b"}
    assert update_selection(SelectOptions(), ["mariadb-server", "a.b"], images).patterns == (
        "^mariadb\\-server$",
        "^a\\.b$",
    )
    core = SelectOptions(profiles=("core",))
    assert update_selection(core, ["mariadb-server"], images) == core  # a selection given is kept
    assert update_selection(SelectOptions(), ["debian-trixie-root"], images) == SelectOptions()  # a root
    assert update_selection(SelectOptions(), [], images) == SelectOptions()
