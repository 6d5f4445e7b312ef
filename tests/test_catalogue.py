"""The catalogue of Kolla's `default` profile, without building: what `kbuild list -p default`
selects (parents first, the unbuildable ones marked), each image's user with Kolla's fixed id,
and every image renders."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kbuild.model.workspace import load_catalog

ROOT = Path(__file__).resolve().parents[1]

# Kolla's fixed ids (kolla/common/users.py), for the users the catalogue runs as.
KOLLA_IDS = {
    "ansible": 42401, "fluentd": 42474, "glance": 42415, "heat": 42418, "keystone": 42425,
    "memcached": 42457, "mysql": 42434, "neutron": 42435, "nova": 42436, "placement": 42482,
    "proxysql": 42487, "rabbitmq": 42439,
}  # fmt: skip

# image -> the user it runs as, as in Kolla's image (None: root; Kolla's has no USER either, or
# runs as root and the service drops to its user itself: haproxy, horizon's uwsgi, sshd).
DEFAULT_PROFILE = {
    "base": None, "openstack-base": None,
    "cron": None, "kolla-toolbox": "ansible", "fluentd": "fluentd", "haproxy": None,
    "keepalived": None, "proxysql": "proxysql",
    "mariadb-server": "mysql", "memcached": "memcached", "rabbitmq": "rabbitmq",
    "keystone-base": "keystone", "keystone": "keystone", "keystone-fernet": "keystone",
    "glance-base": "glance", "glance-api": "glance",
    "placement-base": "placement", "placement-api": "placement",
    "nova-base": "nova", "nova-api": "nova", "nova-conductor": "nova", "nova-scheduler": "nova",
    "nova-novncproxy": "nova", "nova-compute": "nova", "nova-libvirt": None, "nova-ssh": None,
    "neutron-base": "neutron", "neutron-server": "neutron", "neutron-openvswitch-agent": "neutron",
    "neutron-dhcp-agent": "neutron", "neutron-l3-agent": "neutron", "neutron-metadata-agent": "neutron",
    "openvswitch-base": None, "openvswitch-db-server": None, "openvswitch-vswitchd": None,
    "heat-base": "heat", "heat-api": "heat", "heat-api-cfn": "heat", "heat-engine": "heat",
    "horizon": None,
}  # fmt: skip
# Declared by the keystone recipes' owner; part of the profile once it exists.
OPTIONAL = {"keystone-ssh"}
# Debian packages neither (the reason is data of the recipe, not a build failure).
UNBUILDABLE_ON_DEBIAN = {"fluentd", "proxysql"}
# The snippets that implement Kolla's one-shot modes, and the command each runs for KOLLA_BOOTSTRAP.
BOOTSTRAP = {
    "glance-api": "glance-manage db_sync",
    "placement-api": "placement-manage db sync",
    "nova-api": "nova-manage api_db sync",
    "nova-conductor": "nova-manage db sync --local_cell",
    "neutron-server": "upgrade heads",
    "heat-api": "heat-manage db_sync",
}


def kbuild(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "kbuild", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"kbuild {' '.join(args)}: {result.stdout}{result.stderr}"
    return result


@pytest.fixture(scope="module")
def listed() -> list[dict]:
    return json.loads(kbuild("list", "-p", "default", "--json").stdout)


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(ROOT)


def test_default_profile_lists_every_image_parents_first(listed: list[dict]) -> None:
    names = [entry["name"] for entry in listed]
    assert set(DEFAULT_PROFILE) <= set(names)
    assert set(names) - set(DEFAULT_PROFILE) <= OPTIONAL
    assert len(names) == len(set(names))
    position = {name: index for index, name in enumerate(names)}
    for entry in listed:
        if entry["parent"] is not None:
            assert position[entry["parent"]] < position[entry["name"]], entry


def test_default_profile_patterns_are_anchored() -> None:
    """No image outside the profile is selected (kolla-build's bare `nova-` would take any)."""
    everything = {entry["name"] for entry in json.loads(kbuild("list", "--json").stdout)}
    extra = {"ci-only"}  # an image a vendor might add: not matched by any pattern
    profile = load_catalog(ROOT).profiles["default"]
    for name in (everything - set(DEFAULT_PROFILE) - OPTIONAL) | extra:
        assert not any(re.search(pattern, name) for pattern in profile.images), name


def test_unbuildable_images_are_marked(listed: list[dict]) -> None:
    text = kbuild("list", "-p", "default").stdout
    for entry in listed:
        if entry["name"] in UNBUILDABLE_ON_DEBIAN:
            assert "not packaged in Debian" in entry["unbuildable"], entry
            line = next(line for line in text.splitlines() if line.split()[0] == entry["name"])
            assert "unbuildable on debian" in line, line
        else:
            assert not entry["excluded"] and not entry["unbuildable"], entry


def effective_user(catalog, name: str):
    """The user an image runs as: its own, else the nearest ancestor's (what the renderer does)."""
    while name is not None:
        image = catalog.images[name]
        if image.user is not None:
            return image.user
        name = image.parent
    return None


@pytest.mark.parametrize("name", sorted(DEFAULT_PROFILE))
def test_user_has_kollas_id(catalog, name: str) -> None:
    user = effective_user(catalog, name)
    expected = DEFAULT_PROFILE[name]
    if expected is None:
        assert user is None or (user.name, user.uid) == ("root", 0), user
    else:
        assert user is not None and user.name == expected
        assert (user.uid, user.gid) == (KOLLA_IDS[expected], KOLLA_IDS[expected])


@pytest.fixture(scope="module")
def dockerfiles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every image of the profile rendered, by one `kbuild compile` (one process: fast)."""
    build_dir = tmp_path_factory.mktemp("catalogue") / "build"
    kbuild("compile", "-p", "default", "--build-dir", str(build_dir), "-o", str(build_dir / "bake.json"))
    return {path.parent.name: path.read_text() for path in build_dir.glob("contexts/*/*/*/Dockerfile")}


@pytest.mark.parametrize("name", sorted(set(DEFAULT_PROFILE) - UNBUILDABLE_ON_DEBIAN))
def test_image_renders(dockerfiles: dict[str, str], name: str) -> None:
    dockerfile = dockerfiles[name]
    assert dockerfile.splitlines()[1].startswith("FROM ")
    expected = DEFAULT_PROFILE[name]
    users = re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)
    if expected is not None:
        assert users and users[-1] == expected
    elif users:
        assert users[-1] == "root"


@pytest.mark.parametrize(
    "name", ["glance-api", "heat-api", "horizon", "neutron-server", "nova-api", "placement-api"]
)
def test_render_command(name: str) -> None:
    """`kbuild render` prints the same Dockerfile for an API service: under uwsgi."""
    dockerfile = kbuild("render", name).stdout
    assert "uwsgi-plugin-python3" in dockerfile


def test_unbuildable_images_are_not_compiled(dockerfiles: dict[str, str]) -> None:
    assert not UNBUILDABLE_ON_DEBIAN & set(dockerfiles)


@pytest.mark.parametrize("name", sorted(BOOTSTRAP))
def test_bootstrap_snippet(catalog, name: str) -> None:
    """The service ships a kolla_extend_start snippet that syncs the database and exits."""
    snippets = [
        f for f in catalog.images[name].files.values()
        if f.destination.startswith("/usr/local/lib/kolla/extend_start.d/")
    ]  # fmt: skip
    assert len(snippets) == 1
    text = (ROOT / snippets[0].source).read_text()
    assert "KOLLA_BOOTSTRAP+set" in text and BOOTSTRAP[name] in text and "exit 0" in text
    checked = subprocess.run(["bash", "-n", str(ROOT / snippets[0].source)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
