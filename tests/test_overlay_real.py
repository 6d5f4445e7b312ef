"""The example vendor overlay built for real (linux/amd64): keystone, the overlay's own image and
their ancestors, pushed to the local registry under a namespace of their own, then run."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path

import pytest
from test_bake_real import docker_run, kbuild

pytestmark = [pytest.mark.docker, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "vendor-overlay"


def test_the_example_overlay_is_in_the_images_it_builds(tmp_path: Path) -> None:
    build_dir = tmp_path / "build"
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    bake = ("bake", "-p", "acme", "--overlay", str(EXAMPLE), "--push")
    result = kbuild(*bake, "--namespace", namespace, "--build-dir", str(build_dir))
    assert result.returncode == 0, result.stderr
    images = json.loads((build_dir / "kbuild-manifest.json").read_text())["images"]
    assert set(images) == {"base", "openstack-base", "keystone-base", "keystone", "acme-toolbox"}
    pinned = {name: image["pinned"] for name, image in images.items()}
    assert all(ref.startswith(f"127.0.0.1:5000/{namespace}/") for ref in pinned.values())

    # keystone: the added package, and the footer step that used it
    assert "python3-ldap\t" in docker_run(pinned["keystone"], "dpkg-query", "-W", "python3-ldap")
    assert re.fullmatch(r"\d+\.\d+\S*\n", docker_run(pinned["keystone"], "cat", "/etc/acme-ldap-version"))
    assert docker_run(pinned["keystone"], "id", "-un") == "keystone\n"
    labels = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", pinned["keystone"]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(labels)["com.acme.support"] == "https://support.acme.example"

    # base lost lsof, and so did everything built on it
    for name in ("base", "keystone", "acme-toolbox"):
        probe = "dpkg-query -W -f '${Status}\\n' lsof 2>&1; command -v lsof || echo 'no lsof'"
        output = docker_run(pinned[name], "sh", "-c", probe)
        assert "no lsof" in output and "install ok installed" not in output, (name, output)

    # the overlay's own image: its package and its file from the overlay directory
    assert docker_run(pinned["acme-toolbox"], "jq", "--version").startswith("jq-")
    assert (
        docker_run(pinned["acme-toolbox"], "cat", "/etc/motd") == (EXAMPLE / "acme-toolbox/motd").read_text()
    )
