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


# What package scripts make differently on every build (found by `kbuild verify`), which the
# family's and the images' clean-ups remove: a random machine id, open-iscsi's initiator name and
# nvme-cli's host identity (baked in, they would be every host's), nova-common's record of the
# build container's address.
PER_BUILD_STATE = (
    "for f in /etc/machine-id /var/lib/dbus/machine-id /etc/iscsi/initiatorname.iscsi /etc/nvme/hostid"
    ' /etc/nvme/hostnqn; do [ ! -e "$f" ] || echo "$f"; done;'
    " if [ -e /etc/nova/nova.conf ]; then grep '^my_ip = ' /etc/nova/nova.conf; fi;"
    " debconf-show nova-common 2>/dev/null | grep 'my-ip: [0-9]'; true"
)


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_no_per_build_state(pinned: dict[str, str], name: str) -> None:
    found = docker("run", "--rm", "--user", "root", "--entrypoint", "sh", pinned[name], "-c", PER_BUILD_STATE)
    assert found.stdout.split() == [], found.stdout
