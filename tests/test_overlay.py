"""Overlays: every kind of override, their order, explain, and that an overlay changes the
render output of the images it touches and of no other."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from compiling import bake_json, compile_workspace
from conftest import MakeWorkspace, run_kbuild

from kbuild.compile.explain import explain, text
from kbuild.compile.select import make_request
from kbuild.engine.buildx import TargetOutcome
from kbuild.engine.results import summary
from kbuild.model.catalog import Catalog
from kbuild.model.workspace import load_catalog

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "vendor-overlay"


def write(directory: Path, files: Mapping[str, str | bytes]) -> Path:
    for path, content in files.items():
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    return directory


def dockerfiles(
    workspace: Path, build_dir: Path, overlays: Sequence[Path] = (), **options: object
) -> dict[str, str]:
    compiled = compile_workspace(workspace, build_dir, overlays, **options)
    return {t.name: t.dockerfile for t in compiled.rendered.targets}


@pytest.fixture
def workspace(workspace_factory: MakeWorkspace) -> Path:
    """The minimal workspace with a second distro and platform, so there is something to disable."""
    return workspace_factory(
        {
            "distros/ubuntu.kb": 'distro(name = "ubuntu", family = "deb", releases = ["noble"],'
            ' root = upstream("ubuntu:24.04@sha256:' + "0" * 64 + '"))\n',
            "platforms/linux.kb": 'platform(name = "linux/amd64", arch = {"deb": "amd64"})\n'
            'platform(name = "linux/arm64", arch = {"deb": "arm64"})\n',
        }
    )


def vendor(tmp_path: Path, text: str, name: str = "vendor", **extra: str | bytes) -> Path:
    return write(tmp_path / name, {"overlay.kb": text, **extra})


def at(overlay: Path, needle: str, file: str = "overlay.kb") -> str:
    """`path:line:column` of the first `needle` in an overlay file: where an error must point."""
    for number, line in enumerate((overlay / file).read_text().splitlines(), 1):
        if needle in line:
            return f"{overlay}/{file}:{number}:{line.index(needle) + 1}"
    raise AssertionError(f"{needle!r} not in {file}")


# --- each kind of override --------------------------------------------------------------------


def test_packages_append_remove_and_override(workspace: Path, tmp_path: Path) -> None:
    overlay = vendor(
        tmp_path,
        'override("keystone", packages_append = {"deb": ["python3-ldap"]})\n'
        'override("base", packages_remove = {"deb": ["less"]})\n'
        'override("keystone-base", packages_override = {"deb": ["rsync"]})\n',
    )
    plain = dockerfiles(workspace, tmp_path / "b")
    changed = dockerfiles(workspace, tmp_path / "b", [overlay])
    assert "python3-ldap" not in plain["keystone"] and "        python3-ldap" in changed["keystone"]
    assert "        less" in plain["base"] and "less" not in changed["base"]
    assert "rsync" not in plain["keystone-base"] and "        rsync\n" in changed["keystone-base"]
    catalog = load_catalog(workspace, [overlay])
    assert catalog.images["keystone"].packages["deb"] == ("curl", "less", "apache2", "python3-ldap")
    assert catalog.images["keystone-base"].packages["deb"] == ("rsync",)


def test_packages_remove_finds_binary_packages_too(workspace_factory: MakeWorkspace, tmp_path: Path) -> None:
    root = workspace_factory({"recipes/x/x.kb": 'image(name = "x", binary = {"deb": ["x-bin"]})\n'})
    overlay = vendor(tmp_path, 'override("x", packages_remove = {"deb": ["x-bin"]})\n')
    assert load_catalog(root).images["x"].binary["deb"] == ("x-bin",)
    assert load_catalog(root, [overlay]).images["x"].binary["deb"] == ()


def test_blocks_append_and_replace(workspace: Path, tmp_path: Path) -> None:
    first = vendor(
        tmp_path, 'override("base", blocks = {"footer": ["RUN echo one"], "header": ["RUN echo h"]})\n'
    )
    second = vendor(
        tmp_path,
        'override("base", blocks = {"footer": ["RUN echo two"]})\n'
        'override("base", blocks_replace = {"header": ["RUN echo replaced"]})\n',
        name="second",
    )
    text = dockerfiles(workspace, tmp_path / "b", [first, second])["base"]
    assert text.index("RUN echo one") < text.index("RUN echo two")
    assert "RUN echo replaced" in text and "RUN echo h\n" not in text


def test_parent_env_labels_and_user(workspace: Path, tmp_path: Path) -> None:
    overlay = vendor(
        tmp_path,
        'override("keystone", parent = "base", env = {"LANG": "C", "VENDOR": "acme"},'
        ' labels = {"vendor": "acme"}, user = user("ks", uid = 4242))\n',
    )
    catalog = load_catalog(workspace, [overlay])
    keystone = catalog.images["keystone"]
    assert keystone.parent == "base"
    assert dict(keystone.env) == {"LANG": "C", "VENDOR": "acme"}
    assert keystone.user is not None and keystone.user.uid == 4242
    text = dockerfiles(workspace, tmp_path / "b", [overlay], patterns=("^keystone$",))["keystone"]
    assert text.splitlines()[1] == "FROM base"
    assert 'LABEL "vendor"="acme"' in text and text.endswith("USER ks\n")


def test_files_come_from_the_overlay_and_replace_by_destination(workspace: Path, tmp_path: Path) -> None:
    overlay = vendor(
        tmp_path,
        'override("keystone-base", files = {"start.sh": "/usr/local/bin/start", "etc/motd": "/etc/motd"})\n',
        **{"start.sh": "#!/bin/sh\nexec vendor-keystone\n", "etc/motd": "acme\n"},
    )
    compiled = compile_workspace(workspace, tmp_path / "b", [overlay], patterns=("^keystone-base$",))
    target = next(t for t in compiled.rendered.targets if t.name == "keystone-base")
    assert target.files == {
        "vendor__start.sh": overlay / "start.sh",
        "vendor__etc__motd": overlay / "etc/motd",
    }
    assert "/mnt/vendor__start.sh /usr/local/bin/start" in target.dockerfile
    assert "/mnt/start.sh " not in target.dockerfile  # the recipe's file at that path is replaced


def test_source_is_replaced_by_a_vendor_fork(workspace: Path, tmp_path: Path) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    overlay = vendor(
        tmp_path,
        f'override("keystone", source = pip("keystone @ git+https://git.acme.example/keystone@{commit}"))\n',
    )
    text = dockerfiles(workspace, tmp_path / "b", [overlay], patterns=("^keystone$",), install_type="source")
    assert (
        f"pip install --no-cache-dir --report /var/lib/kbuild/pip/keystone.json 'keystone @ git+https://git.acme.example/keystone@{commit}'"
        in text["keystone"]
    )


def test_a_local_source_archive_is_copied_for_source_builds_only(workspace: Path, tmp_path: Path) -> None:
    archive = b"not really a wheel, but checksummed"
    digest = hashlib.sha256(archive).hexdigest()
    overlay = vendor(
        tmp_path,
        f'override("keystone", source = pip(archive = "dist/ks-1.0-py3-none-any.whl", sha256 = "{digest}"))\n',
        **{"dist/ks-1.0-py3-none-any.whl": archive},
    )
    source = compile_workspace(
        workspace, tmp_path / "s", [overlay], patterns=("^keystone$",), install_type="source"
    )
    target = next(t for t in source.rendered.targets if t.name == "keystone")
    assert target.files["source__ks-1.0-py3-none-any.whl"] == overlay / "dist/ks-1.0-py3-none-any.whl"
    assert (
        "/mnt/source__ks-1.0-py3-none-any.whl /var/lib/kbuild/src/ks-1.0-py3-none-any.whl"
        in target.dockerfile
    )
    assert f"file:///var/lib/kbuild/src/ks-1.0-py3-none-any.whl#sha256={digest}" in target.dockerfile
    binary = compile_workspace(workspace, tmp_path / "b", [overlay], patterns=("^keystone$",))
    assert not next(t for t in binary.rendered.targets if t.name == "keystone").files


def test_disable_for_a_distro_leaves_out_the_image_and_its_descendants(
    workspace: Path, tmp_path: Path
) -> None:
    overlay = vendor(tmp_path, 'override("keystone-base", disable = ["ubuntu"])\n')
    on_ubuntu = compile_workspace(workspace, tmp_path / "u", [overlay], distro="ubuntu")
    assert on_ubuntu.selection.images == ("base",)
    excluded = on_ubuntu.selection.excluded
    assert set(excluded) == {"keystone-base", "keystone"}
    assert excluded["keystone-base"] == "disabled for ubuntu by " + at(overlay, '"ubuntu"')
    assert excluded["keystone"].startswith("its ancestor 'keystone-base' is disabled for ubuntu")
    on_debian = compile_workspace(workspace, tmp_path / "d", [overlay])
    assert on_debian.selection.images == ("base", "keystone-base", "keystone")
    assert not on_debian.selection.excluded


def test_disable_for_a_platform_builds_without_it(workspace: Path, tmp_path: Path) -> None:
    overlay = vendor(tmp_path, 'override("keystone-base", disable = ["linux/arm64"])\n')
    both = ("linux/amd64", "linux/arm64")
    compiled = compile_workspace(workspace, tmp_path / "b", [overlay], platforms=both)
    platforms = {name: target["platforms"] for name, target in bake_json(compiled)["target"].items()}
    assert platforms == {
        "debian-bookworm-root": list(both),
        "base": list(both),
        "keystone-base": ["linux/amd64"],
        "keystone": ["linux/amd64"],
    }
    only_arm = compile_workspace(workspace, tmp_path / "a", [overlay], platforms=("linux/arm64",))
    assert only_arm.selection.images == ("base",)
    assert "disabled for linux/arm64" in only_arm.selection.excluded["keystone-base"]


def test_the_summary_names_disabled_images_with_their_reason(workspace: Path, tmp_path: Path) -> None:
    overlay = vendor(tmp_path, 'override("keystone", disable = ["ubuntu"])\n')
    compiled = compile_workspace(workspace, tmp_path / "b", [overlay], distro="ubuntu")
    outcomes = {name: TargetOutcome(name, "built") for name in compiled.selection.images}
    report = summary(compiled, outcomes, {}, tmp_path / "logs")
    assert [entry["name"] for entry in report["built"]] == ["base", "keystone-base"]
    assert report["disabled"] == [
        {"name": "keystone", "reason": "disabled for ubuntu by " + at(overlay, '"ubuntu"')}
    ]
    assert {"name": "keystone"} not in report["unmatched"]


# --- order and provenance ---------------------------------------------------------------------


def explain_text(catalog: Catalog, image: str) -> list[str]:
    return text(explain(catalog, make_request(catalog), image)).splitlines()


def test_the_later_overlay_wins_and_explain_shows_both(workspace: Path, tmp_path: Path) -> None:
    first = vendor(tmp_path, 'override("base", env = {"LANG": "first"})\n', name="first")
    second = vendor(tmp_path, 'override("base", env = {"LANG": "second"})\n', name="second")
    for order in ([first, second], [second, first]):
        catalog = load_catalog(workspace, order)
        assert catalog.images["base"].env["LANG"] == order[-1].name
        chain = catalog.images["base"].origins["env[LANG]"]
        assert [o.value for o in chain] == ["C.UTF-8", order[0].name, order[1].name]
        assert [o.overlay for o in chain] == [None, str(order[0]), str(order[1])]
        assert [o.previous for o in chain[1:]] == ["C.UTF-8", order[0].name]
        lines = explain_text(catalog, "base")
        at = lines.index(f'env[LANG] = "{order[1].name}"')
        assert lines[at + 2].startswith(
            f'    set "{order[0].name}" (was "C.UTF-8")  {order[0]}/overlay.kb:1:'
        )
        assert lines[at + 3].startswith(f'    set "{order[1].name}" (was "{order[0].name}")  {order[1]}/')


def test_settings_overlays_come_before_command_line_ones(workspace: Path, tmp_path: Path) -> None:
    write(workspace, {"vendor/a.kb": 'override("base", env = {"LANG": "settings"})\n'})
    write(workspace, {"BUILD/settings.kb": 'settings(distro = "debian", overlays = ["vendor"])\n'})
    assert load_catalog(workspace).images["base"].env["LANG"] == "settings"
    later = vendor(tmp_path, 'override("base", env = {"LANG": "cli"})\n')
    catalog = load_catalog(workspace, [later])
    assert catalog.images["base"].env["LANG"] == "cli"
    assert catalog.overlays == ("vendor", str(later))


def test_overlay_files_are_sorted_and_overrides_apply_after_every_image(
    workspace: Path, tmp_path: Path
) -> None:
    """b.kb overrides an image that c.kb declares later; a.kb's override of it comes first."""
    overlay = write(
        tmp_path / "vendor",
        {
            "a.kb": 'override("late", env = {"X": "a"})\n',
            "b.kb": 'override("late", env = {"X": "b"})\n',
            "c.kb": 'image(name = "late", parent = "base")\n',
        },
    )
    assert load_catalog(workspace, [overlay]).images["late"].env["X"] == "b"


def test_overlays_load_from_the_workspace_and_from_themselves(workspace: Path, tmp_path: Path) -> None:
    overlay = write(
        tmp_path / "vendor",
        {
            "lib/acme.kb": 'ACME = {"deb": ["acme-agent"]}\n',
            "images.kb": 'load("//recipes/lib/macros.kb", "service")\nload("lib/acme.kb", "ACME")\n\n'
            'service("acme-api", "keystone-base", packages = ACME["deb"])\n',
        },
    )
    image = load_catalog(workspace, [overlay]).images["acme-api"]
    assert image.packages["deb"] == ("curl", "less", "acme-agent")
    assert image.location.path == f"{overlay}/images.kb"


def test_an_overlay_inside_the_workspace_is_named_relative_to_it(workspace: Path) -> None:
    write(workspace, {"overlays/acme/x.kb": 'override("base", env = {"X": "1"})\n'})
    origin = load_catalog(workspace, [workspace / "overlays" / "acme"]).images["base"].origin("env[X]")
    assert origin is not None and str(origin.location) == "overlays/acme/x.kb:1:25"  # at "X"
    assert origin.overlay == "overlays/acme"


# --- an overlay changes only what it touches --------------------------------------------------


def test_an_overlay_changes_only_the_images_it_touches(tmp_path: Path) -> None:
    """Untouched images render the same Dockerfile and context files, never mention the overlay,
    and keep their content hash (Dockerfile, context, parent's hash)."""
    options = {"profiles": ("core", "acme")}
    overlay = write(
        tmp_path / "acme",
        {p.relative_to(EXAMPLE).as_posix(): p.read_bytes() for p in EXAMPLE.rglob("*") if p.is_file()},
    )
    before = compile_workspace(ROOT, tmp_path / "before", [overlay], **options)
    touched = overlay / "keystone.kb"
    touched.write_text(touched.read_text().replace("python3-ldap", "python3-ldap3"))
    after = compile_workspace(ROOT, tmp_path / "after", [overlay], **options)
    old = {t.name: t for t in before.rendered.targets}
    new = {t.name: t for t in after.rendered.targets}
    assert set(old) == set(new)
    changed = {
        name
        for name in old
        if (old[name].dockerfile, old[name].files) != (new[name].dockerfile, new[name].files)
    }
    assert changed == {"keystone"}
    # so only its content hash moves: only it is rebuilt (a hash not found is what bake builds)
    moved = {name for name, value in after.plan.hashes.items() if before.plan.hashes[name] != value}
    assert moved == {"keystone"}
    # the overlay's own image has its files from the overlay; nothing else names an overlay
    for name, target in new.items():
        names_overlay = str(overlay) in target.dockerfile or any(
            overlay in path.parents for path in target.files.values()
        )
        assert names_overlay == (name == "acme-toolbox"), name


def test_the_example_overlay_touches_base_keystone_and_adds_its_image(tmp_path: Path) -> None:
    plain = dockerfiles(ROOT, tmp_path / "a", profiles=("core",))
    vendored = dockerfiles(ROOT, tmp_path / "b", [EXAMPLE], profiles=("core", "acme"))
    assert set(vendored) - set(plain) == {"acme-toolbox"}
    differ = {name for name in plain if plain[name] != vendored[name]}
    assert differ == {"base", "keystone"}
    assert "        lsof \\" in plain["base"] and "lsof" not in vendored["base"]
    assert "python3-ldap" in vendored["keystone"] and "/etc/acme-ldap-version" in vendored["keystone"]


# --- explain ----------------------------------------------------------------------------------


def test_explain_annotates_blocks_without_changing_the_dockerfile(tmp_path: Path) -> None:
    catalog = load_catalog(ROOT, [EXAMPLE])
    explained = explain(catalog, make_request(catalog), "keystone")
    rendered = dockerfiles(ROOT, tmp_path, [EXAMPLE], patterns=("^keystone$",))["keystone"]
    assert explained["dockerfile"] == rendered
    annotated = explained["annotated_dockerfile"].splitlines()
    assert [line for line in annotated if not line.startswith("# --- block ")] == rendered.splitlines()
    marker = next(line for line in annotated if line.startswith("# --- block footer"))
    assert marker == (
        "# --- block footer (overlay examples/vendor-overlay, appended at examples/vendor-overlay/keystone.kb:5:15) ---"
    )
    assert annotated[annotated.index(marker) + 1].startswith("RUN python3 -c 'import ldap")
    packages = explained["fields"]["packages[deb]"]
    assert packages["value"] == ["python3-ldap"]
    assert packages["origins"][0]["location"] == "examples/vendor-overlay/keystone.kb:4:24"
    assert explained["overlays"] == ["examples/vendor-overlay"]


def test_explain_cli_text_and_json(tmp_path: Path) -> None:
    result = run_kbuild("explain", "base", "--overlay", EXAMPLE, "-C", ROOT, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    at = lines.index(next(line for line in lines if line.startswith("packages[deb] = ")))
    assert lines[at + 1].split() == ["declared", "recipes/base/base.kb:6:9"]
    assert lines[at + 2].startswith('    removed ["lsof"]  examples/vendor-overlay/base.kb:2:37')
    as_json = run_kbuild(
        "explain", "base", "--overlay", EXAMPLE, "-C", ROOT, "--json", "-d", "rocky", cwd=tmp_path
    )
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["variant"] == "rocky-9-binary"
    assert "lsof" not in data["fields"]["packages[rpm]"]["value"]
    assert [o["action"] for o in data["fields"]["packages[rpm]"]["origins"]] == ["declared", "removed"]


def test_list_names_disabled_images_and_why(workspace: Path, tmp_path: Path) -> None:
    overlay = vendor(tmp_path, 'override("keystone", disable = ["ubuntu"])\n')
    result = run_kbuild("list", "-d", "ubuntu", "--overlay", overlay, "-C", workspace, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["keystone"]["excluded"] == "disabled for ubuntu by " + at(overlay, '"ubuntu"')
    assert rows["base"]["excluded"] is None and rows["keystone-base"]["excluded"] is None


def test_every_bad_override_is_reported_at_once(workspace: Path, tmp_path: Path) -> None:
    overlay = vendor(
        tmp_path,
        'override("keystne", env = {"A": "1"})\n'
        'override("base", packages_remove = {"deb": ["lsof"]}, blocks = {"fotter": []})\n',
    )
    result = run_kbuild("list", "--overlay", overlay, "-C", workspace, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: override(): unknown image 'keystne'",
        "error: image 'base' does not install 'lsof' (deb)",
        "error: image 'base' fills unknown block 'fotter'",
    ]
    for needle in ('"keystne"', '"fotter"', '"lsof"'):
        assert f"  --> {at(overlay, needle)}" in result.stderr
