"""The Ansible tree and `kbuild deploy`, without deploying: the roles' common shape, the filters
that make passwords and config hashes, the playbook's syntax, and the command line."""

from __future__ import annotations

import importlib.util
import json
import re
import string
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ANSIBLE = ROOT / "ansible"
ACTIONS = (
    "prechecks",
    "pull",
    "deploy",
    "reconfigure",
    "upgrade",
    "check",
    "stop",
    "destroy",
    "genconfig",
    "post-deploy",
)
SERVICE_ROLES = ("mariadb", "memcached", "rabbitmq", "keystone")
# The OpenStack services: their actions are service-actions', driven by their defaults.
OPENSTACK_ROLES = ("glance", "placement", "nova", "neutron", "heat", "cron")
# horizon and the load balancer (haproxy and keepalived run on the hosts of group loadbalancer).
SERVICE_ROLES += ("horizon", "haproxy", "keepalived")
ROLE_GROUPS = {"haproxy": "loadbalancer", "keepalived": "loadbalancer"}
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def filters():
    spec = importlib.util.spec_from_file_location("kbuild_filters", ANSIBLE / "filter_plugins" / "kbuild.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_passwords_are_kept_and_missing_ones_made() -> None:
    merge = filters().merge_passwords
    merged = merge({"kept": "old-value"}, ["kept", "new", "other"])
    assert merged["kept"] == "old-value"
    assert set(merged) == {"kept", "new", "other"}
    for key in ("new", "other"):
        assert len(merged[key]) == 32 and set(merged[key]) <= set(string.ascii_letters + string.digits)
    assert merged["new"] != merged["other"]
    assert merge(None, ["a"])["a"]


def test_config_hash_follows_a_containers_own_files() -> None:
    config_hash = filters().config_hash

    def result(service: str, dest: str, checksum: str) -> dict:
        return {"item": [{"key": service}, {"dest": dest}], "checksum": checksum}

    files = [result("keystone", "keystone.conf", "a"), result("keystone-fernet", "crontab", "b")]
    changed = [result("keystone", "keystone.conf", "a"), result("keystone-fernet", "crontab", "c")]
    assert config_hash("keystone", files) == config_hash("keystone", changed)
    assert config_hash("keystone-fernet", files) != config_hash("keystone-fernet", changed)


def test_every_yaml_file_of_the_tree_parses() -> None:
    files = sorted(ANSIBLE.rglob("*.yml")) + sorted((ANSIBLE / "inventory").iterdir())
    for path in files:
        if path.suffix == ".yml":
            yaml.safe_load(path.read_text())
    assert len(files) > 40


@pytest.mark.parametrize("role", SERVICE_ROLES + OPENSTACK_ROLES)
def test_every_service_role_has_kollas_shape(role: str) -> None:
    path = ANSIBLE / "roles" / role
    defaults = yaml.safe_load((path / "defaults" / "main.yml").read_text())
    services = defaults[f"{role}_services"]
    for name, service in services.items():
        assert {"container_name", "group", "enabled", "image", "volumes", "healthcheck"} <= set(service), name
        assert (path / "templates" / f"{name}.json.j2").is_file()
        assert "/var/lib/kolla/config_files/:ro" in " ".join(service["volumes"])
    images = [v for k, v in defaults.items() if k.endswith("_image")]
    assert images and all(image.endswith(".pinned }}") for image in images)
    main = (path / "tasks" / "main.yml").read_text()
    assert "kolla_action" in main
    tasks = ANSIBLE / "roles" / "service-actions" / "tasks" if "service-actions" in main else path / "tasks"
    for action in ACTIONS:
        assert (tasks / f"{action}.yml").is_file(), action
    assert (path / "handlers" / "main.yml").is_file()
    bootstrap = defaults.get(f"{role}_bootstrap_service")
    assert bootstrap is None or bootstrap in services


def test_every_password_a_role_reads_is_generated() -> None:
    keys = set(
        yaml.safe_load((ANSIBLE / "roles" / "common" / "defaults" / "main.yml").read_text())[
            "kolla_password_keys"
        ]
    )
    used = set()
    for path in (ANSIBLE / "roles").rglob("*"):
        if path.is_file() and path.suffix in (".yml", ".j2"):
            used |= set(
                re.findall(r"{{ *([a-z0-9_]+_(?:password|secret_key|cluster_cookie)) *}}", path.read_text())
            )
    # the names of the variables the generic roles are given, not keys of passwords.yml
    assert used - {"service_password"} <= keys | {"database_password"}, used - keys
    assert {"glance_keystone_password", "nova_api_database_password", "heat_domain_admin_password"} <= keys


def test_inventories_have_kollas_groups() -> None:
    for inventory in ("all-in-one", "multinode"):
        text = (ANSIBLE / "inventory" / inventory).read_text()
        for group in (
            "control",
            "network",
            "compute",
            "storage",
            *map(ROLE_GROUPS.get, SERVICE_ROLES, SERVICE_ROLES),
            *OPENSTACK_ROLES,
        ):
            assert f"[{group}" in text, (inventory, group)
    assert "ansible_connection=local" in (ANSIBLE / "inventory" / "all-in-one").read_text()


@pytest.mark.skipif(not PLAYBOOK.exists(), reason="ansible is not installed (the deploy extra)")
def test_the_playbook_parses() -> None:
    result = subprocess.run(
        [str(PLAYBOOK), "--syntax-check", "-i", str(ANSIBLE / "inventory" / "all-in-one"), str(ANSIBLE / "site.yml")],
        capture_output=True, text=True, env={"ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_deploy_command_line(tmp_path: Path) -> None:
    from kbuild.engine.deploy import DeployRequest, command

    request = DeployRequest("check", ANSIBLE, Path("/i"), Path("/m.yml"), ("a=b",), tmp_path / "globals.yml")
    argv = command(request, Path("/s.json"))
    assert argv[0] == str(PLAYBOOK)
    assert argv[1:4] == ["-i", "/i", str(ANSIBLE / "site.yml")]
    assert "kolla_action=check" in argv and "kbuild_manifest=/m.yml" in argv and argv[-1] == "a=b"
    assert not any(arg.startswith("@") for arg in argv)
    (tmp_path / "globals.yml").write_text("keystone_public_port: 5001\n")
    argv = command(request, Path("/s.json"))
    # the operator's settings first, so that -e on the command line wins
    assert argv[-4:] == ["-e", f"@{tmp_path / 'globals.yml'}", "-e", "a=b"]


def test_unknown_action_is_bad_input() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kbuild", "deploy", "upgrayedd"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "prechecks" in result.stderr


def test_the_cli_imports_nothing_of_deploy_until_it_runs() -> None:
    code = (
        "import sys, kbuild.cli; print(sorted(m for m in sys.modules if 'deploy' in m or m == 'subprocess'))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "kbuild.engine.deploy" not in result.stdout


class _FakeIdentity:
    """Just enough of openstacksdk's identity proxy, in memory, for kbuild_keystone_register."""

    def __init__(self) -> None:
        self.items: dict[str, list[SimpleNamespace]] = {
            k: [] for k in ("domain", "role", "project", "service", "user")
        }
        self.items["domain"].append(SimpleNamespace(id="default", name="Default"))
        self.endpoint_list: list[SimpleNamespace] = []
        self.assignments: set[tuple[str, str, str]] = set()

    def _find(self, kind, name, **query):
        found = [i for i in self.items[kind] if name in (i.name, i.id)
                 and all(getattr(i, k, None) == v for k, v in query.items() if k != "ignore_missing")]  # fmt: skip
        return found[0] if found else None

    def _create(self, kind, **attrs):
        item = SimpleNamespace(id=f"{kind}{len(self.items[kind])}", **attrs)
        self.items[kind].append(item)
        return item

    def __getattr__(self, attr):
        verb, _, kind = attr.partition("_")
        if verb in ("find", "create") and kind in self.items:
            return lambda *a, **k: self._find(kind, *a, **k) if verb == "find" else self._create(kind, **k)
        raise AttributeError(attr)

    def services(self):
        return list(self.items["service"])

    def endpoints(self, service_id, region_id):
        return [e for e in self.endpoint_list if e.service_id == service_id and e.region_id == region_id]

    def create_endpoint(self, **attrs):
        self.endpoint_list.append(SimpleNamespace(**attrs))

    def update_endpoint(self, endpoint, url):
        endpoint.url = url

    def validate_user_has_project_role(self, scope, user, role):
        return (scope.id, user.id, role.id) in self.assignments

    validate_user_has_domain_role = validate_user_has_project_role

    def assign_project_role_to_user(self, scope, user, role):
        self.assignments.add((scope.id, user.id, role.id))

    assign_domain_role_to_user = assign_project_role_to_user


def test_keystone_registration_changes_only_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("openstack")
    import openstack

    path = ANSIBLE / "roles" / "service-ks-register" / "library" / "kbuild_keystone_register.py"
    spec = importlib.util.spec_from_file_location("kbuild_keystone_register", path)
    assert spec and spec.loader
    register = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(register)
    identity = _FakeIdentity()
    monkeypatch.setattr(openstack, "connect", lambda **_: SimpleNamespace(identity=identity))
    monkeypatch.setattr(register, "_ensure_password", lambda *_: False)
    params = {
        "auth": {"auth_url": "http://keystone/v3"},
        "region": "RegionOne",
        "domains": ["heat_user_domain"],
        "roles": ["heat_stack_owner"],
        "projects": [{"name": "service"}],
        "services": [
            {
                "name": "heat",
                "type": "orchestration",
                "endpoints": {"internal": "http://a", "public": "http://b"},
            }
        ],
        "users": [
            {"name": "heat", "password": "x", "project": "service", "roles": ["admin"]},
            {"name": "heat_domain_admin", "password": "y", "domain": "heat_user_domain", "roles": ["admin"]},
        ],
    }
    module = SimpleNamespace(params=params, check_mode=False, fail_json=pytest.fail)
    first = register.run(module)
    assert "service heat" in first and "endpoint heat public" in first and "user heat_domain_admin" in first
    assert len(identity.endpoint_list) == 2 and len(identity.assignments) == 2
    assert register.run(module) == []
    params["services"][0]["endpoints"]["public"] = "http://c"
    assert register.run(module) == ["endpoint heat public"]
    assert {e.url for e in identity.endpoint_list} == {"http://a", "http://c"}


def fake_manifest(path: Path) -> Path:
    """A manifest of every image the playbook may name, pinned to digests no registry has (genconfig
    reads references, never images)."""
    images = [name for names in COMMON_DEFAULTS["kbuild_service_images"].values() for name in names]
    digest = "sha256:" + "0" * 64
    manifest = {"manifest": 1, "images": {n: {"pinned": f"127.0.0.1:5000/fake/{n}@{digest}"} for n in images}}
    path.write_text(yaml.safe_dump(manifest))
    return path


COMMON_DEFAULTS = yaml.safe_load((ANSIBLE / "roles" / "common" / "defaults" / "main.yml").read_text())


@pytest.mark.skipif(not PLAYBOOK.exists(), reason="ansible is not installed (the deploy extra)")
def test_genconfig_puts_haproxy_in_front_of_the_apis_on_the_virtual_address(tmp_path: Path) -> None:
    config = tmp_path / "kolla"
    config.mkdir()
    argv = [str(PLAYBOOK), "-i", str(ANSIBLE / "inventory" / "all-in-one"), str(ANSIBLE / "site.yml")]
    for var in ("kolla_action=genconfig", f"kbuild_manifest={fake_manifest(tmp_path / 'm.yml')}",
                f"node_config_directory={config}", "enable_haproxy=true", "enable_keepalived=true",
                "kolla_internal_vip_address=192.0.2.10", "horizon_port=8080", "kolla_network_interface=lo"):  # fmt: skip
        argv += ["-e", var]
    result = subprocess.run(argv, capture_output=True, text=True, env={"ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"),
                            "PATH": f"{PLAYBOOK.parent}:/usr/bin:/bin"})  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr
    haproxy = (config / "haproxy" / "haproxy.cfg").read_text()
    listens = dict(re.findall(r"^listen (\S+)\n(.*?)(?=^listen |\Z)", haproxy, re.MULTILINE | re.DOTALL))
    assert {"monitor", "stats", "keystone_internal", "horizon"} <= set(listens)
    for name in set(listens) - {"monitor", "stats"}:
        assert re.search(r"^    bind 192\.0\.2\.10:\d+$", listens[name], re.MULTILINE), name
    # the services this tree does not deploy (with their defaults off) are not in front
    enabled = yaml.safe_load((ANSIBLE / "group_vars" / "all.yml").read_text())
    assert ("glance_api" in listens) == bool(enabled.get("enable_glance", False))
    assert "bind 192.0.2.10:5001\n" in listens["keystone_internal"]
    assert re.search(
        r"^\s+server localhost 127\.0\.0\.1:5001 check", listens["keystone_internal"], re.MULTILINE
    )
    assert "bind 192.0.2.10:8080\n" in listens["horizon"] and "127.0.0.1:8080 check" in listens["horizon"]
    passwords = yaml.safe_load((config / "passwords.yml").read_text())
    assert f"stats auth openstack:{passwords['haproxy_password']}\n" in listens["stats"]
    keepalived = (config / "keepalived" / "keepalived.conf").read_text()
    assert "192.0.2.10 dev lo" in keepalived and "virtual_router_id 51" in keepalived
    assert f"auth_pass {passwords['keepalived_password'][:8]}" in keepalived
    assert passwords["haproxy_password"] not in result.stdout + result.stderr
    # the dashboard talks to keystone and keeps its sessions in memcached, with its own secret key
    settings = (config / "horizon" / "local_settings").read_text()
    assert 'OPENSTACK_KEYSTONE_URL = "http://127.0.0.1:5001/v3"' in settings
    assert '"LOCATION": ["127.0.0.1:11211"]' in settings and "sessions.backends.cache" in settings
    assert f'SECRET_KEY = "{passwords["horizon_secret_key"]}"' in settings
    compile(settings, "local_settings", "exec")
    assert json.loads((config / "horizon" / "config.json").read_text())["command"].startswith("uwsgi ")


def test_kbuild_deploy_leaves_out_the_services_that_were_not_built(tmp_path: Path) -> None:
    """A bake of core has keystone and horizon, not nova: `kbuild deploy` turns nova and the rest
    off before the operator's settings (so an explicit enable_nova=true still requires it), and
    never for stop and destroy."""
    from kbuild.engine.deploy import DeployRequest, command, unbuilt_services

    core = ["mariadb-server", "memcached", "rabbitmq", "keystone", "keystone-fernet", "horizon"]
    manifest = tmp_path / "m.yml"
    manifest.write_text(
        yaml.safe_dump({"manifest": 1, "images": {n: {"pinned": "r/x@sha256:0"} for n in core}})
    )
    deploy = DeployRequest("deploy", ANSIBLE, Path("/i"), manifest, ("enable_nova=true",))
    left_out = unbuilt_services(deploy)
    assert left_out == ("cron", "glance", "haproxy", "heat", "keepalived", "neutron", "nova", "placement")
    argv = command(deploy, tmp_path / "s.json")
    assert argv.index("enable_nova=false") < argv.index("enable_nova=true")  # the operator's wins
    assert "enable_keystone=false" not in argv and "enable_horizon=false" not in argv
    assert unbuilt_services(DeployRequest("destroy", ANSIBLE, Path("/i"), manifest)) == ()
    assert unbuilt_services(DeployRequest("deploy", ANSIBLE, Path("/i"), tmp_path / "none.yml")) == ()
