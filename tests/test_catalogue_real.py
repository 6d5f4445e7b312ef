"""The images of Kolla's `default` profile that need kernel features to start (compute, libvirt,
Open vSwitch, the neutron agents), built for real: their programs run (`--version`), they run as
Kolla's user with Kolla's ids, and their files are there. The control-plane images are started
from a config.json by other tests.

One bake per test session, pushed to a namespace of its own: the whole `default` profile, or,
when `-k` selects fewer tests, only the images those tests need (ancestors come along).
Drives kbuild only through its command line; needs what scripts/setup-host.sh installs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KOLLA_GROUP = 42400

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# image -> (user and id it runs as, its programs' version commands, files it must have)
IMAGES = {
    "nova-compute": (("nova", 42436), [["nova-compute", "--version"], ["qemu-img", "--version"]],
                     ["/usr/local/lib/kolla/extend_start.d/50-nova-compute.sh"]),
    "nova-libvirt": (("root", 0), [["libvirtd", "--version"], ["qemu-system-x86_64", "--version"],
                                   ["virsh", "--version"]],
                     ["/usr/local/lib/kolla/extend_start.d/50-nova-libvirt.sh"]),
    "openvswitch-db-server": (("root", 0), [["ovsdb-server", "--version"], ["ovsdb-tool", "--version"]],
                              ["/usr/local/bin/start-ovsdb-server", "/usr/share/openvswitch/vswitch.ovsschema"]),
    "openvswitch-vswitchd": (("root", 0), [["ovs-vswitchd", "--version"], ["ovs-vsctl", "--version"]],
                             ["/usr/local/lib/kolla/extend_start.d/40-openvswitch.sh"]),
    "neutron-openvswitch-agent": (("neutron", 42435), [["neutron-openvswitch-agent", "--version"],
                                                       ["ovs-vsctl", "--version"]], []),
    "neutron-dhcp-agent": (("neutron", 42435), [["neutron-dhcp-agent", "--version"], ["dnsmasq", "--version"]], []),
    "neutron-l3-agent": (("neutron", 42435), [["neutron-l3-agent", "--version"], ["keepalived", "--version"],
                                              ["haproxy", "-v"]], []),
    "neutron-metadata-agent": (("neutron", 42435), [["neutron-metadata-agent", "--version"], ["haproxy", "-v"]],
                               []),
}  # fmt: skip


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, f"docker {' '.join(args)}: {result.stdout}{result.stderr}"
    return result


@pytest.fixture(scope="session")
def pinned(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The images baked once, pushed and pulled; image name -> pinned reference."""
    wanted = sorted({item.callspec.params["name"] for item in request.session.items if item.path == Path(__file__)
                     and hasattr(item, "callspec") and "name" in item.callspec.params})  # fmt: skip
    selection = ["-p", "default"] if set(wanted) == set(IMAGES) else [f"^{name}$" for name in wanted]
    build_dir = tmp_path_factory.mktemp("catalogue") / "build"
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    bake = subprocess.run(
        [sys.executable, "-m", "kbuild", "bake", *selection, "--push", "--namespace", namespace,
         "--build-dir", str(build_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=4 * 3600,
    )  # fmt: skip
    assert bake.returncode == 0, f"{bake.stdout}{bake.stderr}"
    print(f"bake {' '.join(selection)}: {time.monotonic() - started:.1f} s")
    manifest = json.loads((build_dir / "kbuild-manifest.json").read_text())
    references = {name: image["pinned"] for name, image in manifest["images"].items()}
    for name in wanted:
        docker("pull", "--quiet", references[name], timeout=900)
    return references


def run(reference: str, entrypoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    return docker("run", "--rm", "--entrypoint", entrypoint, reference, *args)


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_programs_run(pinned: dict[str, str], name: str) -> None:
    for command in IMAGES[name][1]:
        result = run(pinned[name], *command)
        assert (result.stdout + result.stderr).strip(), command


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_runs_as_kollas_user(pinned: dict[str, str], name: str) -> None:
    (user, uid), files = IMAGES[name][0], IMAGES[name][2]
    assert run(pinned[name], "id", "-un").stdout.strip() == user
    assert run(pinned[name], "id", "-u").stdout.strip() == str(uid)
    if uid:
        assert run(pinned[name], "id", "-g").stdout.strip() == str(uid)
        assert str(KOLLA_GROUP) in run(pinned[name], "id", "-G").stdout.split()
    for path in files:
        run(pinned[name], "test", "-e", path)
    # The runtime contract is inherited, and the command is kolla_start under dumb-init.
    config = json.loads(docker("image", "inspect", pinned[name]).stdout)[0]["Config"]
    assert config["Entrypoint"] == ["dumb-init", "--single-child", "--"]
    assert config["Cmd"] == ["kolla_start"]
