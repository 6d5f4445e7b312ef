"""Real builds on BuildKit, pushed to the local registry, then run. Slow: minutes each.

They need what scripts/setup-host.sh installs (Docker Engine with buildx and the containerd image
store, QEMU binfmt, debootstrap, a registry on 127.0.0.1:5000); `scripts/test` runs it first.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from kbuild.engine.registry import INDEX_TYPES, MANIFEST_TYPES

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = "127.0.0.1:5000"

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def kbuild(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kbuild", *args], cwd=cwd, capture_output=True, text=True)


def docker_run(image: str, *command: str, platform: str = "linux/amd64") -> str:
    """Run a command in an image (pulled first, quietly: pushed images are not in the engine)."""
    pull = subprocess.run(
        ["docker", "pull", "--quiet", "--platform", platform, image], capture_output=True, text=True
    )
    assert pull.returncode == 0, f"{image}: {pull.stderr}"
    result = subprocess.run(
        ["docker", "run", "--rm", "--platform", platform, "--entrypoint", command[0], image, *command[1:]],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"{image} {command}: {result.stderr}"
    return result.stdout + result.stderr


def registry_manifest(repository: str, reference: str) -> tuple[dict, str]:
    request = urllib.request.Request(
        f"http://{REGISTRY}/v2/{repository}/manifests/{reference}",
        headers={"Accept": ", ".join(INDEX_TYPES + MANIFEST_TYPES)},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read()), response.headers["Docker-Content-Digest"]


@pytest.fixture
def namespace() -> str:
    """A namespace of its own per test, so no tag from an earlier run can make a test pass."""
    return f"test-{uuid.uuid4().hex[:8]}"


def test_ci_profile_multi_arch_is_bit_for_bit_reproducible(tmp_path, namespace):
    """The ci profile on both platforms, built without cache, pushed, run, then rebuilt without
    cache by `kbuild verify`, which must find every image and platform identical."""
    build_dir = tmp_path / "build"
    platforms = "linux/amd64,linux/arm64"
    result = kbuild(
        "bake", "-p", "ci", "--platform", platforms, "--push", "--no-cache",
        "--namespace", namespace, "--build-dir", str(build_dir),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = json.loads((build_dir / "kbuild-manifest.json").read_text())
    assert set(manifest["images"]) == {"base", "memcached"}
    for name, image in manifest["images"].items():
        index, served_digest = registry_manifest(f"{namespace}/{name}", "latest")
        assert served_digest == image["digest"]
        assert index["mediaType"] in INDEX_TYPES
        served = {
            f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
            for m in index["manifests"]
            if m["platform"]["os"] != "unknown"
        }
        assert served == image["platforms"]
        assert set(served) == {"linux/amd64", "linux/arm64"}
    memcached = manifest["images"]["memcached"]["pinned"]
    for platform, machine in (("linux/amd64", "x86_64"), ("linux/arm64", "aarch64")):
        assert docker_run(memcached, "uname", "-m", platform=platform).strip() == machine
        assert "memcached" in docker_run(memcached, "dpkg-query", "-W", "memcached", platform=platform)
        assert docker_run(memcached, "id", "-un", platform=platform).strip() == "memcached"
        assert docker_run(memcached, "id", "-u", platform=platform).strip() == "42457"
    yaml_form = (build_dir / "kbuild-manifest.yml").read_text()
    assert manifest["images"]["memcached"]["digest"] in yaml_form
    assert manifest["manifest"] == 1

    # An SBOM per image and platform, an OCI artifact about the image's index, found by its tag.
    for name, image in manifest["images"].items():
        sbom_ref = image["sbom"]["ref"]
        artifact, artifact_digest = registry_manifest(
            f"{namespace}/{name}", "kbuild-sbom-" + image["hash"][7:]
        )
        assert sbom_ref.endswith("@" + artifact_digest)
        assert artifact["artifactType"] == "application/spdx+json"
        assert artifact["subject"]["digest"] == image["digest"]  # the image's own digest is unchanged
        assert len(artifact["layers"]) == 2
        for layer in artifact["layers"]:
            url = f"http://{REGISTRY}/v2/{namespace}/{name}/blobs/{layer['digest']}"
            with urllib.request.urlopen(url, timeout=30) as response:
                data = response.read()
            document = json.loads(data)
            assert document["spdxVersion"] == "SPDX-2.3"
            listed = {(p["name"], p["versionInfo"]) for p in document["packages"]}
            assert ("tini" if name == "base" else "memcached") in {n for n, _ in listed}
            assert "sha256:" + hashlib.sha256(data).hexdigest() in image["sbom"]["documents"].values()

    verify = kbuild(
        "verify", "base", "memcached", "--platform", platforms, "--namespace", namespace,
        "--build-dir", str(tmp_path / "verify"),
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    for name in ("base", "memcached"):
        assert f"reproducible {name} {manifest['images'][name]['digest']}" in verify.stderr


VERSION_COMMANDS = {
    "base": (["tini", "--version"], "tini version"),
    "openstack-base": (["python3", "-c", "import pymysql, memcache; print('ok')"], "ok"),
    "keystone-base": (["keystone-manage", "--version"], "."),
    "keystone": (["keystone-manage", "--version"], "."),
    "keystone-fernet": (["rsync", "--version"], "rsync  version"),
    "horizon": (["python3", "-c", "import openstack_dashboard; print('ok')"], "ok"),
    "mariadb-server": (["mariadbd", "--version"], "MariaDB"),
    "memcached": (["memcached", "-V"], "memcached 1."),
    "rabbitmq": (["dpkg-query", "-W", "rabbitmq-server"], "rabbitmq-server"),
}


def test_core_profile_builds_and_runs(tmp_path, namespace):
    build_dir = tmp_path / "build"
    result = kbuild("bake", "-p", "core", "--push", "--namespace", namespace, "--build-dir", str(build_dir))
    assert result.returncode == 0, result.stderr
    summary = json.loads((build_dir / "summary.json").read_text())
    # Images an earlier build already pushed (any namespace) are found by content hash, not rebuilt.
    assert {e["name"] for e in summary["built"] + summary["cached"]} == set(VERSION_COMMANDS)
    assert summary["failed"] == [] and summary["parent_error"] == []
    manifest = json.loads((build_dir / "kbuild-manifest.json").read_text())
    for name, (command, expected) in VERSION_COMMANDS.items():
        image = manifest["images"][name]
        _, served_digest = registry_manifest(f"{namespace}/{name}", "latest")
        assert served_digest == image["digest"]
        assert expected in docker_run(image["pinned"], *command), name
    assert docker_run(manifest["images"]["keystone"]["pinned"], "id", "-un").strip() == "keystone"


def test_a_failing_image_does_not_stop_its_siblings(tmp_path, namespace):
    workspace = tmp_path / "ws"
    shutil.copytree(
        ROOT, workspace, ignore=shutil.ignore_patterns(".venv", ".git", "build", "tests", "bench")
    )
    (workspace / "recipes" / "broken").mkdir()
    (workspace / "recipes" / "broken" / "broken.kb").write_text(
        'image(name = "broken", parent = "base", blocks = {"footer": ["RUN echo about to fail && exit 3"]})\n'
        'image(name = "broken-child", parent = "broken")\n'
        # New on every run, so it is really built next to the failing one (not found by hash).
        f'image(name = "sibling", parent = "base", blocks = {{"footer": ["RUN echo {namespace}"]}})\n'
    )
    build_dir = tmp_path / "build"
    result = kbuild(
        "bake",
        "^broken-child$",
        "^sibling$",
        "--namespace",
        namespace,
        "--build-dir",
        str(build_dir),
        cwd=workspace,
    )
    assert result.returncode == 1, result.stderr
    summary = json.loads((build_dir / "summary.json").read_text())
    built = {e["name"] for e in summary["built"]}
    assert "sibling" in built and built | {e["name"] for e in summary["cached"]} == {"base", "sibling"}
    assert [e["name"] for e in summary["failed"]] == ["broken"]
    assert [e["name"] for e in summary["parent_error"]] == ["broken-child"]
    assert "exit code: 3" in summary["failed"][0]["error"]
    assert "about to fail" in (build_dir / "logs" / "broken.log").read_text()
    assert namespace in (build_dir / "logs" / "sibling.log").read_text()
    manifest = json.loads((build_dir / "kbuild-manifest.json").read_text())
    assert set(manifest["images"]) == {"base", "sibling"}


def test_the_ci_profile_rebuilds_to_the_digests_kbuild_lock_recorded(tmp_path: Path) -> None:
    """Cross-machine reproducibility: CI, on a new machine every time, rebuilds the repository's
    locked `ci` selection without any cache and must get the digests another machine recorded."""
    result = kbuild("verify", "--against-lock", "-p", "ci", "--build-dir", str(tmp_path / "verify"))
    assert result.returncode == 0, result.stderr
    for image in ("base", "memcached"):
        assert f"as locked {image} linux/amd64 sha256:" in result.stderr, result.stderr
