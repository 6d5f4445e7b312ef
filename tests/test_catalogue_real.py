"""The images of Kolla's `default` profile that need kernel features to start (compute, libvirt,
Open vSwitch, the neutron agents), built for real: their programs run (`--version`), they run as
Kolla's user with Kolla's ids, and their files are there. The control-plane images are started
from a config.json by other tests.

The images come from the test session's one bake of `default` (the `default_images` fixture).
Drives kbuild only through its command line; needs what scripts/setup-host.sh installs.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import Baked, docker

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


@pytest.fixture(scope="module")
def pinned(default_images: Baked) -> dict[str, str]:
    """The images of this file, from the session's one bake of `default`, pulled."""
    return default_images.pull(*IMAGES)


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
