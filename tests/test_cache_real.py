"""Content-addressed builds, the lock and reproducibility, on a real BuildKit and registry. Slow.

Each test works on its own copy of the workspace and its own registry namespace, so nothing an
earlier run pushed can make it pass. A `docker` shim first on PATH logs every docker command
kbuild runs: that is how "no BuildKit solve at all" is checked, from outside kbuild.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from kbuild.engine.registry import manifest_digest, put_tag

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = "127.0.0.1:5000"

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# Three cheap images on top of base (no package installs): enough to see what a change rebuilds.
# RUN_ID makes them new to the registry on every run (an earlier run's images would be reused).
RUN_ID = uuid.uuid4().hex[:8]
FAMILY = f"""\
image(name = "leaf", parent = "base", blocks = {{"footer": ["RUN echo leaf {RUN_ID} > /leaf"]}})
image(name = "mid", parent = "base", blocks = {{"footer": ["RUN echo mid {RUN_ID} > /mid"]}})
image(name = "mid-child", parent = "mid", blocks = {{"footer": ["RUN echo child > /child"]}})
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    copy = tmp_path / "ws"
    for directory in ("distros", "platforms", "BUILD", "recipes"):
        shutil.copytree(ROOT / directory, copy / directory)
    (copy / "recipes" / "family" / "family.kb").parent.mkdir()
    (copy / "recipes" / "family" / "family.kb").write_text(FAMILY)
    return copy


@pytest.fixture
def namespace() -> str:
    return f"test-{RUN_ID}-{uuid.uuid4().hex[:4]}"


@pytest.fixture
def docker_log(tmp_path: Path) -> Path:
    """A `docker` first on PATH that logs its arguments, then runs the real one."""
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    log = tmp_path / "docker.log"
    shim = shim_dir / "docker"
    shim.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {shutil.which("docker")} "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    log.touch()
    return log


def kbuild(*args: str, cwd: Path, log: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if log is not None:
        env["PATH"] = f"{log.parent / 'shim'}:{env['PATH']}"
    return subprocess.run(
        [sys.executable, "-m", "kbuild", *args], cwd=cwd, capture_output=True, text=True, env=env
    )


def statuses(build_dir: Path) -> dict[str, set[str]]:
    summary = json.loads((build_dir / "summary.json").read_text())
    return {status: {e["name"] for e in summary[status]} for status in ("built", "cached", "failed")}


def test_only_what_changed_is_rebuilt(workspace, namespace, docker_log, tmp_path):
    build_dir = tmp_path / "build"
    bake = (
        "bake",
        "^leaf$",
        "^mid-child$",
        "--push",
        "--namespace",
        namespace,
        "--build-dir",
        str(build_dir),
    )

    first = kbuild(*bake, cwd=workspace)
    assert first.returncode == 0, first.stderr
    first_statuses = statuses(build_dir)
    assert first_statuses["built"] >= {"leaf", "mid", "mid-child"}  # base may come from earlier runs
    assert first_statuses["built"] | first_statuses["cached"] == {"base", "leaf", "mid", "mid-child"}
    summary = json.loads((build_dir / "summary.json").read_text())
    hashes = {e["name"]: e["hash"] for e in summary["built"] + summary["cached"]}
    for name, content_hash in hashes.items():  # findable by content hash, without pulling anything
        tag = "kbuild-" + content_hash.removeprefix("sha256:")
        assert manifest_digest(REGISTRY, f"{namespace}/{name}", tag) is not None

    # Someone moved leaf's requested tag (onto its SBOM, the other manifest of its repository).
    leaf = manifest_digest(REGISTRY, f"{namespace}/leaf", "latest")
    sbom = manifest_digest(
        REGISTRY, f"{namespace}/leaf", "kbuild-sbom-" + hashes["leaf"].removeprefix("sha256:")
    )
    assert leaf and sbom and sbom != leaf
    put_tag(REGISTRY, f"{namespace}/leaf", sbom, "latest")

    # Nothing changed: nothing is built, and BuildKit is not even asked; the tag that moved is
    # put back (the lookup that found each image read its requested tag and its SBOM's too).
    again = kbuild(*bake, cwd=workspace, log=docker_log)
    assert again.returncode == 0, again.stderr
    assert statuses(build_dir) == {"built": set(), "cached": set(hashes), "failed": set()}
    assert "buildx" not in docker_log.read_text()
    assert manifest_digest(REGISTRY, f"{namespace}/leaf", "latest") == leaf
    images = json.loads((build_dir / "kbuild-manifest.json").read_text())["images"]
    assert images["leaf"]["sbom"]["ref"] == f"{REGISTRY}/{namespace}/leaf@{sbom}"

    # A leaf changes: only the leaf.
    family = workspace / "recipes" / "family" / "family.kb"
    family.write_text(FAMILY.replace("echo leaf", "echo new-leaf"))
    assert kbuild(*bake, cwd=workspace).returncode == 0
    assert statuses(build_dir)["built"] == {"leaf"}

    # A parent changes: it and its descendants, not its sibling or its own parent.
    family.write_text(FAMILY.replace("echo leaf", "echo new-leaf").replace("echo mid", "echo new-mid"))
    assert kbuild(*bake, cwd=workspace).returncode == 0
    assert statuses(build_dir) == {"built": {"mid", "mid-child"}, "cached": {"base", "leaf"}, "failed": set()}
    manifest = json.loads((build_dir / "kbuild-manifest.json").read_text())

    # Another namespace and tag: nothing is built; the images are copied and tagged, same digests.
    docker_log.write_text("")
    renamed = [*bake[:-4], "--namespace", f"{namespace}-b", "--tag", "v2", "--build-dir", str(build_dir)]
    result = kbuild(*renamed, cwd=workspace, log=docker_log)
    assert result.returncode == 0, result.stderr
    assert statuses(build_dir)["built"] == set()
    assert "buildx" not in docker_log.read_text()
    for name, image in json.loads((build_dir / "kbuild-manifest.json").read_text())["images"].items():
        assert image["digest"] == manifest["images"][name]["digest"]
        assert manifest_digest(REGISTRY, f"{namespace}-b/{name}", "v2") == image["digest"]


def test_verify_names_the_file_that_differs(workspace, namespace, tmp_path):
    (workspace / "recipes" / "family" / "stamp.kb").write_text(
        'image(name = "stamped", parent = "base", blocks = {"footer": ["RUN date +%s%N > /etc/stamp"]})\n'
    )
    options = ("--namespace", namespace)
    assert (
        kbuild(
            "bake", "^stamped$", "--push", *options, "--build-dir", str(tmp_path / "b"), cwd=workspace
        ).returncode
        == 0
    )
    verify = kbuild("verify", "stamped", *options, "--build-dir", str(tmp_path / "v"), cwd=workspace)
    assert verify.returncode == 1
    assert "differs stamped" in verify.stderr and "etc/stamp: content" in verify.stderr


def test_lock_pins_and_refuses_stale_or_missing_locks(workspace, namespace, tmp_path):
    build_dir = str(tmp_path / "build")
    common = ("--namespace", namespace, "--build-dir", build_dir)
    missing = kbuild("bake", "-p", "ci", "--locked", *common, cwd=workspace)
    assert missing.returncode == 2
    assert "no kbuild.lock" in missing.stderr and "base, memcached" in missing.stderr
    assert "Traceback" not in missing.stderr

    lock = workspace / "kbuild.lock"
    assert kbuild("lock", "-p", "ci", *common, cwd=workspace).returncode == 0
    first = lock.read_bytes()
    assert kbuild("lock", "-p", "ci", *common, cwd=workspace).returncode == 0
    assert lock.read_bytes() == first

    entries = yaml.safe_load(first)["variants"]["debian-trixie-binary"]
    memcached_version = next(
        line.split("=", 1)[1]
        for line in entries["memcached"]["packages"]["linux/amd64"]
        if line.startswith("memcached=")
    )
    assert any(line.startswith("tini=") for line in entries["base"]["packages"]["linux/amd64"])
    # The locked build's digest per platform: what any machine must rebuild it to.
    assert entries["memcached"]["image"]["linux/amd64"].startswith("sha256:")
    assert entries["debian-trixie-root"]["digests"]["linux/amd64"].startswith("sha256:")

    recipe = workspace / "recipes" / "memcached" / "memcached.kb"
    recipe.write_text(
        recipe.read_text().replace('{"deb": ["memcached"]', '{"deb": ["memcached", "netcat-openbsd"]')
    )
    stale = kbuild("bake", "-p", "ci", "--locked", *common, cwd=workspace)
    assert stale.returncode == 2
    assert "stale for debian-trixie-binary: memcached" in stale.stderr
    assert "lock --update memcached" in stale.stderr

    assert kbuild("lock", "--update", "memcached", "-p", "ci", *common, cwd=workspace).returncode == 0
    moved = yaml.safe_load(lock.read_bytes())["variants"]["debian-trixie-binary"]
    assert moved["base"] == entries["base"]  # only what was asked moved
    assert any(line.startswith("netcat-openbsd=") for line in moved["memcached"]["packages"]["linux/amd64"])

    built = kbuild("bake", "-p", "ci", "--locked", "--push", *common, cwd=workspace)
    assert built.returncode == 0, built.stderr
    # The rendered Dockerfile (memcached may have been found by its content hash, pushed by an
    # earlier run of this test: then it is in the build directory's contexts, not in the bake).
    rendered = sorted(
        Path(build_dir).glob("contexts/debian-trixie-binary/*/memcached/Dockerfile"), key=os.path.getmtime
    )
    dockerfile = rendered[-1].read_text()
    assert f"memcached={memcached_version}" in dockerfile
    image = json.loads((Path(build_dir) / "kbuild-manifest.json").read_text())["images"]["memcached"][
        "pinned"
    ]
    run = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "dpkg-query", image, "-W", "-f", "${Version}", "memcached"],
        capture_output=True,
        text=True,
    )
    assert run.stdout == memcached_version, run.stderr

    # The locked selection, rebuilt without cache, gives the lock's digests; a wrong one is named.
    tampered = yaml.safe_load(lock.read_bytes())
    tampered["variants"]["debian-trixie-binary"]["memcached"]["image"]["linux/amd64"] = "sha256:" + "0" * 64
    lock.write_text(yaml.safe_dump(tampered))
    verified = kbuild("verify", "--against-lock", "-p", "ci", *common, cwd=workspace)
    assert verified.returncode == 1, verified.stderr
    assert "as locked base linux/amd64 sha256:" in verified.stderr
    assert f"differs memcached linux/amd64: kbuild.lock has sha256:{'0' * 64}" in verified.stderr
