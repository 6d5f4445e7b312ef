"""The real catalogue compiles, renders what the recipes say, and buildx accepts the bake file."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from compiling import bake_json, compile_workspace, write_build
from conftest import run_kbuild

from kbuild.compile.bake import TARGET_ATTRIBUTES, escape
from kbuild.compile.render import CLAMPING_SHELL, DEFAULT_SHELL
from kbuild.model.workspace import load_catalog

ROOT = Path(__file__).resolve().parents[1]
CORE = [
    "base",
    "openstack-base",
    "keystone-base",
    "keystone",
    "horizon",
    "keystone-fernet",
    "mariadb-server",
    "memcached",
    "rabbitmq",
]


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(ROOT)


def test_core_profile_selects_the_core_images_parents_first(catalog, tmp_path):
    compiled = compile_workspace(ROOT, tmp_path, profiles=("core",))
    assert sorted(compiled.selection.images) == sorted(CORE)
    order = list(compiled.selection.images)
    for name in order:
        parent = catalog.images[name].parent
        if parent:
            assert order.index(parent) < order.index(name)


def test_a_regex_brings_its_ancestors(tmp_path):
    compiled = compile_workspace(ROOT, tmp_path, patterns=("^keystone-fernet$",))
    assert compiled.selection.images == ("base", "openstack-base", "keystone-base", "keystone-fernet")
    assert compiled.selection.matched == ("keystone-fernet",)


@pytest.mark.parametrize("distro", ["debian", "rocky", "ubuntu"])
def test_packages_come_from_the_distro_family(tmp_path, distro):
    compiled = compile_workspace(ROOT, tmp_path, patterns=("^memcached$",), distro=distro)
    dockerfile = {t.name: t.dockerfile for t in compiled.rendered.targets}["memcached"]
    family = compiled.catalog.distros[distro].family
    install = compiled.catalog.families[family].install.split("{packages}")[0]
    assert install in dockerfile
    assert "memcached" in dockerfile
    assert "USER memcached" in dockerfile.splitlines()[-1]


def test_binary_and_source_types_differ(tmp_path):
    binary = compile_workspace(ROOT, tmp_path, patterns=("^keystone-base$",), install_type="binary")
    source = compile_workspace(ROOT, tmp_path, patterns=("^keystone-base$",), install_type="source")
    text = {t.name: t.dockerfile for t in binary.rendered.targets}["keystone-base"]
    assert "        keystone \\" in text and "pip install" not in text
    text = {t.name: t.dockerfile for t in source.rendered.targets}["keystone-base"]
    assert (
        "/var/lib/kbuild/venv/bin/pip install --no-cache-dir --report /var/lib/kbuild/pip/keystone-base.json keystone PyMySQL python-memcached"
        in text
    )
    assert "        keystone \\" not in text


def test_users_are_created_before_packages_and_children_switch_back_to_root(tmp_path):
    compiled = compile_workspace(ROOT, tmp_path, patterns=("^keystone$",))
    texts = {t.name: t.dockerfile for t in compiled.rendered.targets}
    base = texts["keystone-base"]
    assert base.index("useradd") < base.index("apt-get install")
    assert "--uid 42425" in base
    keystone = texts["keystone"].splitlines()
    assert keystone[6] == "USER root" and keystone[-1] == "USER keystone"


def test_blocks_appear_in_fixed_order(tmp_path):
    workspace = tmp_path / "ws"
    shutil.copytree(ROOT, workspace, ignore=shutil.ignore_patterns(".venv", ".git", "build", "tests"))
    recipe = workspace / "recipes" / "memcached" / "memcached.kb"
    recipe.write_text(
        recipe.read_text().replace(
            'description = "memcached',
            'blocks = {"footer": ["RUN echo footer"], "header": ["RUN echo header"],'
            ' "after_files": ["RUN echo files"], "after_packages": ["RUN echo packages"]},\n'
            '    description = "memcached',
        )
    )
    compiled = compile_workspace(workspace, tmp_path / "build", patterns=("^memcached$",))
    text = {t.name: t.dockerfile for t in compiled.rendered.targets}["memcached"]
    positions = [text.index(f"RUN echo {b}") for b in ("header", "packages", "files", "footer")]
    assert positions == sorted(positions)
    assert text.index("RUN echo header") < text.index("apt-get install") < text.index("RUN echo packages")


def test_context_files_are_copied_with_their_mode(tmp_path):
    compiled = compile_workspace(ROOT, tmp_path, patterns=("^keystone$",))
    write_build(compiled, tmp_path, tmp_path / "bake.json")
    target = json.loads((tmp_path / "bake.json").read_text())["target"]["keystone"]
    script = Path(target["context"]) / "extend_start.sh"
    assert script.read_bytes() == (ROOT / "recipes/keystone/extend_start.sh").read_bytes()
    assert script.stat().st_mode & 0o111
    # The Dockerfile is kept out of the context, where a context file could stand in for it.
    assert not (Path(target["context"]) / "Dockerfile").exists()
    assert (
        "cp --preserve=mode --remove-destination /mnt/extend_start.sh /usr/local/lib/kolla/extend_start.d/50-keystone.sh"
        in Path(target["dockerfile"]).read_text()
    )


def test_every_run_goes_through_the_clamping_shell_and_images_built_on_ours_do_not(tmp_path):
    compiled = compile_workspace(ROOT, tmp_path, patterns=("^keystone$",))
    for target in compiled.rendered.targets:
        if target.image is None or target.probe:
            continue
        lines = target.dockerfile.splitlines()
        runs = [n for n, line in enumerate(lines) if line.startswith("RUN ")]
        clamp, reset = lines.index(f"SHELL {CLAMPING_SHELL}"), lines.index(f"SHELL {DEFAULT_SHELL}")
        assert clamp < min(runs) and max(runs) < reset, target.name
        assert not any(line.startswith(("COPY ", "ADD ")) for line in lines), target.name
    outputs = [t["output"][0] for t in bake_json(compiled)["target"].values() if "output" in t]
    assert outputs and not any("rewrite-timestamp" in output for output in outputs)


def test_an_image_with_a_layer_the_shell_cannot_clamp_is_rewritten_with_its_children(
    workspace_factory, tmp_path
):
    workspace = workspace_factory(
        {
            "recipes/x/x.kb": "\n".join(
                [
                    'image(name = "copied", parent = "base", blocks = {"footer": ["COPY x.conf /etc/x.conf"]}, files = {"x.conf": "/etc/x/"})',
                    'image(name = "copied-child", parent = "copied")',
                    'image(name = "exec-run", parent = "base", blocks = {"footer": ["RUN --network=none [\\"true\\"]"]})',
                    'image(name = "plain", parent = "base", blocks = {"footer": ["RUN true # COPY in a comment"]})',
                ]
            )
            + "\n",
            "recipes/x/x.conf": "x = 1\n",
        }
    )
    compiled = compile_workspace(workspace, tmp_path, patterns=("^copied", "^exec-run$", "^plain$"))
    targets = bake_json(compiled)["target"]
    rewritten = {
        name for name, t in targets.items() if "rewrite-timestamp=true" in "".join(t.get("output", []))
    }
    assert rewritten == {"copied", "copied-child", "exec-run"}
    copied = next(t for t in compiled.rendered.targets if t.name == "copied").dockerfile
    # A destination that is a directory receives the file under its own name, as with COPY.
    assert (
        "mkdir -p /etc/x \\\n    && cp --preserve=mode --remove-destination /mnt/x.conf /etc/x/x.conf"
        in copied
    )


def test_bake_escapes_interpolation_everywhere():
    assert escape({"a": ["${X}", {"b": "x${Y}z"}]}) == {"a": ["$${X}", {"b": "x$${Y}z"}]}


def test_tags_follow_registry_namespace_and_tag(tmp_path):
    compiled = compile_workspace(
        ROOT, tmp_path, patterns=("^base$",), registry="reg.example:5000", namespace="ns/sub", tag="2026.1"
    )
    assert bake_json(compiled)["target"]["base"]["tags"] == ["reg.example:5000/ns/sub/base:2026.1"]


def test_the_cli_compiles_and_exits_zero(tmp_path):
    bake = tmp_path / "bake.json"
    result = run_kbuild("compile", "-p", "core", "-o", bake, "--build-dir", tmp_path / "b", cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert set(json.loads(bake.read_text())["group"]) >= {"default", "core"}


buildx = pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode,
    reason="docker buildx is not installed (scripts/setup-host.sh installs it; CI always has it)",
)


@buildx
@pytest.mark.parametrize("distro", ["debian", "rocky"])
def test_buildx_accepts_the_bake_file_unchanged(tmp_path, distro):
    """`docker buildx bake --print` needs no daemon. What it prints back must hold every attribute
    kbuild wrote: buildx 0.13 silently drops attributes it does not know."""
    bake = tmp_path / "docker-bake.json"
    compiled = compile_workspace(
        ROOT, tmp_path, profiles=("core",), distro=distro, platforms=("linux/amd64", "linux/arm64")
    )
    write_build(compiled, tmp_path, bake)
    result = subprocess.run(
        ["docker", "buildx", "bake", "-f", str(bake), "--print", "default", "core"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    written = json.loads(bake.read_text())
    assert set(printed["group"]["core"]["targets"]) == set(written["group"]["core"]["targets"])
    for name, target in written["target"].items():
        assert set(target) <= TARGET_ATTRIBUTES
        assert set(printed["target"][name]) >= set(target) - {"dockerfile"}, name
        assert printed["target"][name]["platforms"] == ["linux/amd64", "linux/arm64"]
    for name in CORE:
        parent = compiled.catalog.images[name].parent
        if parent:
            assert printed["target"][name]["contexts"] == {parent: f"target:{parent}"}
    base_contexts = printed["target"]["base"]["contexts"]
    root = compiled.catalog.distros[distro].roots[compiled.request.release]
    expected = (
        f"docker-image://{root.ref}"
        if root.kind == "upstream"
        else f"target:{distro}-{compiled.request.release}-root"
    )
    assert list(base_contexts.values()) == [expected]


def test_a_context_file_cannot_go_where_the_context_is_mounted(workspace_factory, tmp_path):
    workspace = workspace_factory(
        {
            "recipes/x/x.kb": 'image(name = "x", parent = "base", files = {"x.conf": "/mnt/x.conf"})\n',
            "recipes/x/x.conf": "x = 1\n",
        }
    )
    result = run_kbuild("compile", "^x$", "-C", workspace, "-o", tmp_path / "b.json")
    assert result.returncode == 2, result.stderr
    assert "a context file cannot go to /mnt/x.conf" in result.stderr and "recipes/x/x.kb:1" in result.stderr
    assert "Traceback" not in result.stderr
