"""The control plane of Kolla's `default` profile, run: every image started the Kolla way, from a
minimal config.json mounted at /var/lib/kolla/config_files/, runs its service as Kolla's user and
passes the healthcheck kolla-ansible gives it (the image's own healthcheck_* scripts, through
`docker exec`); every database-owning service's KOLLA_BOOTSTRAP container, against a real MariaDB
started from the mariadb-server image, exits 0 and leaves its schema.

One user-defined network of the file's own (containers reach each other by name: `mariadb`,
`rabbitmq`), one MariaDB and one RabbitMQ for the whole file; everything made here is removed
whatever happens. The images come from the test session's one bake of `default`.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import Baked, docker

pytestmark = [pytest.mark.docker, pytest.mark.slow]

RUN = uuid.uuid4().hex[:8]
PREFIX = f"kbuild-services-{RUN}"
PASSWORD = secrets.token_hex(12)  # every service's database and queue password, for this run only
RABBIT = f"rabbit://openstack:{PASSWORD}@rabbitmq:5672/"
CONFIG_FILES = "/var/lib/kolla/config_files"
STARTUP_SECONDS = 600  # a deadline, not a speed requirement: horizon compresses its files first


def database(user: str, name: str) -> str:
    return f"mysql+pymysql://{user}:{PASSWORD}@mariadb/{name}"


def ini(**sections: dict[str, object]) -> str:
    """An ini file: section -> option -> value."""
    return "".join(
        f"[{section}]\n" + "".join(f"{key} = {value}\n" for key, value in options.items()) + "\n"
        for section, options in sections.items()
    )


def uwsgi(port: int, wsgi_file: str, **extra: object) -> str:
    """The uwsgi ini file kolla-ansible writes for an API service, cut down to one worker."""
    return ini(uwsgi={"plugins": "python3", "http-socket": f"0.0.0.0:{port}", "wsgi-file": wsgi_file,
                      "master": "true", "processes": 1, "threads": 1, "lazy-apps": "true",
                      "die-on-term": "true", "no-orphans": "true", "buffer-size": 65535, **extra})  # fmt: skip


def curl(port: int, path: str = "") -> tuple[str, ...]:
    return ("healthcheck_curl", f"http://127.0.0.1:{port}{path}")


@dataclass(frozen=True)
class Bootstrap:
    """What a KOLLA_BOOTSTRAP container of the image owns: databases (created by the test first,
    for the service's user) and, per database, a table its schema must have afterwards; `checks`:
    SQL -> the rows it must print."""

    tables: dict[str, str]
    checks: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Service:
    """An image of the control plane as kolla-ansible runs it."""

    user: str  # the file owner of its configuration, and its database user
    uids: frozenset[int]  # the uids its service processes run as (haproxy: a root master, its workers)
    process: str  # pgrep -f pattern of the service's processes
    command: str  # config.json's command
    files: dict[str, str]  # destination -> content, copied by config.json
    healthcheck: tuple[str, ...]  # run in the container with docker exec
    needs: tuple[str, ...] = ()  # the fixtures of the servers it talks to: "mariadb", "rabbitmq"
    bootstrap: Bootstrap | None = None
    schema: str | None = None  # the image whose bootstrap makes the schema it runs on
    volumes: dict[str, str] = field(default_factory=dict)  # the file's named volumes -> mount point
    permissions: tuple[dict[str, str], ...] = ()  # config.json's permissions
    options: tuple[str, ...] = ()  # more `docker run` options


# keystone's and keystone-fernet's key repository: a volume they share, keystone's (kolla-ansible's).
FERNET_KEYS: dict[str, Any] = {
    "volumes": {"keystone_fernet_tokens": "/etc/keystone/fernet-keys"},
    "permissions": ({"path": "/etc/keystone/fernet-keys", "owner": "keystone:keystone", "perm": "0700"},),
}
KEYSTONE_CONF = ini(
    DEFAULT={"use_stderr": "true"},
    database={"connection": database("keystone", "keystone")},
    token={"provider": "fernet"},
    fernet_tokens={"key_repository": "/etc/keystone/fernet-keys"},
)
NOVA_CONF = ini(
    DEFAULT={"transport_url": RABBIT, "use_stderr": "true"},
    api_database={"connection": database("nova", "nova_api")},
    database={"connection": database("nova", "nova")},
    vnc={"novncproxy_host": "0.0.0.0", "novncproxy_port": 6080},
    # The conductor and the scheduler make their placement client when they start (keystone is only
    # asked when they first call it).
    placement={
        "auth_type": "password",
        "auth_url": "http://keystone:5000/v3",
        "username": "placement",
        "password": PASSWORD,
        "project_name": "service",
        "user_domain_name": "Default",
        "project_domain_name": "Default",
        "region_name": "RegionOne",
    },
    oslo_concurrency={"lock_path": "/var/lib/nova/tmp"},
)
HEAT_CONF = ini(
    DEFAULT={"transport_url": RABBIT, "use_stderr": "true"},
    database={"connection": database("heat", "heat")},
)
NEUTRON_FILES = {
    "/etc/neutron/neutron.conf": ini(
        DEFAULT={"core_plugin": "ml2", "transport_url": RABBIT, "use_stderr": "true", "api_workers": 1,
                 "rpc_workers": 1},
        database={"connection": database("neutron", "neutron")},
        oslo_concurrency={"lock_path": "/var/lib/neutron/tmp"},
    ),
    "/etc/neutron/plugins/ml2/ml2_conf.ini": ini(
        ml2={"type_drivers": "flat,vxlan", "tenant_network_types": "vxlan", "mechanism_drivers": "openvswitch"},
        ml2_type_vxlan={"vni_ranges": "1:1000"},
    ),
}  # fmt: skip
KEEPALIVED_VIP = "192.0.2.10"  # TEST-NET-1: the virtual address keepalived adds to the container's eth0

SERVICES: dict[str, Service] = {
    "mariadb-server": Service(
        "mysql", frozenset({42434}), "mariadbd", "/usr/sbin/mariadbd",
        {"/etc/mysql/my.cnf": ini(client={"socket": "/var/lib/mysql/mysql.sock"},
                                  mysqld={"bind-address": "0.0.0.0", "port": 3306, "datadir": "/var/lib/mysql",
                                          "socket": "/var/lib/mysql/mysql.sock", "skip-name-resolve": "true",
                                          "innodb_buffer_pool_size": "64M"}),
         "/etc/mysql/root.cnf": ini(client={"user": "root", "password": PASSWORD,
                                            "socket": "/var/lib/mysql/mysql.sock"})},
        ("healthcheck_listen", "mariadbd", "3306"),
    ),
    "rabbitmq": Service(
        "rabbitmq", frozenset({42439}), "beam.smp", "/usr/lib/rabbitmq/bin/rabbitmq-server",
        {"/etc/rabbitmq/rabbitmq.conf": "listeners.tcp.1 = 0.0.0.0:5672\nloopback_users = none\nlog.console = true\n"
                                        "log.file = false\ndefinitions.import_backend = local_filesystem\n"
                                        "definitions.local.path = /etc/rabbitmq/definitions.json\n",
         "/etc/rabbitmq/definitions.json": json.dumps({
             "vhosts": [{"name": "/"}],
             "users": [{"name": "openstack", "password": PASSWORD, "tags": "administrator"}],
             "permissions": [{"user": "openstack", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}]}),
         "/var/lib/rabbitmq/.erlang.cookie": secrets.token_hex(16)},
        ("healthcheck_listen", "beam.smp", "5672"),
    ),
    "memcached": Service(
        "memcached", frozenset({42457}), "memcached", "/usr/bin/memcached -v -l 0.0.0.0 -p 11211 -c 1024 -m 64",
        {"/etc/memcached.conf": "-m 64\n"}, ("healthcheck_listen", "memcached", "11211"),
    ),
    "keystone": Service(
        "keystone", frozenset({42425}), "uwsgi", "uwsgi --ini /etc/keystone/keystone-api-uwsgi.ini",
        {"/etc/keystone/keystone.conf": KEYSTONE_CONF,
         "/etc/keystone/keystone-api-uwsgi.ini": uwsgi(5000, "/usr/bin/keystone-wsgi-public"),
         "/etc/keystone/admin-password": PASSWORD},
        curl(5000, "/v3"), ("mariadb",),
        Bootstrap({"keystone": "project"},
                  {"SELECT name FROM keystone.project WHERE name = 'admin'": "admin",
                   "SELECT url FROM keystone.endpoint WHERE interface = 'public'": "http://keystone:5000"},
                  {"OS_BOOTSTRAP_USERNAME": "admin", "OS_BOOTSTRAP_PROJECT_NAME": "admin",
                   "OS_BOOTSTRAP_ROLE_NAME": "admin", "OS_BOOTSTRAP_SERVICE_NAME": "keystone",
                   "OS_BOOTSTRAP_REGION_ID": "RegionOne", "OS_BOOTSTRAP_PUBLIC_URL": "http://keystone:5000"}),
        schema="keystone", **FERNET_KEYS,
    ),
    # cron runs the rotation as root (kolla-ansible's user: root); its first start makes the keys.
    "keystone-fernet": Service(
        "keystone", frozenset({0}), "^cron -f", "cron -f",
        {"/etc/keystone/keystone.conf": KEYSTONE_CONF,
         "/etc/cron.d/keystone-fernet": "0 */6 * * * root keystone-manage fernet_rotate --keystone-user keystone"
                                        " --keystone-group keystone > /proc/1/fd/1 2>&1\n"},
        ("bash", "-c", "pgrep -x cron > /dev/null && test -s /etc/keystone/fernet-keys/0"),
        **FERNET_KEYS, options=("--user", "root"),
    ),
    "keystone-ssh": Service(
        "root", frozenset({0}), "sshd", "/usr/sbin/sshd -D",
        {"/etc/ssh/sshd_config": "Port 8023\nListenAddress 0.0.0.0\nPasswordAuthentication no\nAllowUsers keystone\n"},
        ("healthcheck_listen", "sshd", "8023"),
    ),
    "glance-api": Service(
        "glance", frozenset({42415}), "uwsgi", "uwsgi /etc/glance/glance-api-uwsgi.ini",
        {"/etc/glance/glance-api.conf": ini(
            DEFAULT={"use_stderr": "true", "enabled_backends": "file:file"},
            database={"connection": database("glance", "glance")},
            glance_store={"default_backend": "file"},
            file={"filesystem_store_datadir": "/var/lib/glance/images/"}),
         "/etc/glance/glance-api-uwsgi.ini": uwsgi(9292, "/usr/bin/glance-wsgi-api")},
        curl(9292), ("mariadb",), Bootstrap({"glance": "images"}), "glance-api",
    ),
    "placement-api": Service(
        "placement", frozenset({42482}), "uwsgi", "uwsgi /etc/placement/placement-api-uwsgi.ini",
        {"/etc/placement/placement.conf": ini(placement_database={"connection": database("placement", "placement")}),
         "/etc/placement/placement-api-uwsgi.ini": uwsgi(8780, "/usr/bin/placement-api")},
        curl(8780), ("mariadb",), Bootstrap({"placement": "resource_providers"}),
        "placement-api",
    ),
    "nova-api": Service(
        "nova", frozenset({42436}), "uwsgi", "uwsgi /etc/nova/nova-api-uwsgi.ini",
        {"/etc/nova/nova.conf": NOVA_CONF, "/etc/nova/nova-api-uwsgi.ini": uwsgi(8774, "/usr/bin/nova-api-wsgi")},
        curl(8774), ("mariadb", "rabbitmq"),
        Bootstrap({"nova_api": "cell_mappings", "nova": "instances", "nova_cell0": "instances"},
                  {"SELECT name FROM nova_api.cell_mappings ORDER BY name": "cell0\ncell1"}),
        "nova-api",
    ),
    "nova-conductor": Service(
        "nova", frozenset({42436}), "nova-conductor", "nova-conductor", {"/etc/nova/nova.conf": NOVA_CONF},
        ("healthcheck_port", "nova-conductor", "5672"), ("mariadb", "rabbitmq"), schema="nova-api",
    ),
    "nova-scheduler": Service(
        "nova", frozenset({42436}), "nova-scheduler", "nova-scheduler", {"/etc/nova/nova.conf": NOVA_CONF},
        ("healthcheck_port", "nova-scheduler", "5672"), ("mariadb", "rabbitmq"), schema="nova-api",
    ),
    "nova-novncproxy": Service(
        "nova", frozenset({42436}), "nova-novncproxy", "nova-novncproxy", {"/etc/nova/nova.conf": NOVA_CONF},
        curl(6080, "/vnc_lite.html"), ("mariadb", "rabbitmq"), schema="nova-api",
    ),
    "neutron-server": Service(
        "neutron", frozenset({42435}), "neutron-server",
        "neutron-server --config-file /etc/neutron/neutron.conf --config-file /etc/neutron/plugins/ml2/ml2_conf.ini",
        NEUTRON_FILES, curl(9696), ("mariadb", "rabbitmq"), Bootstrap({"neutron": "networks"}),
        "neutron-server",
    ),
    "heat-api": Service(
        "heat", frozenset({42418}), "uwsgi", "uwsgi /etc/heat/heat-api-uwsgi.ini",
        {"/etc/heat/heat.conf": HEAT_CONF, "/etc/heat/heat-api-uwsgi.ini": uwsgi(8004, "/usr/bin/heat-wsgi-api")},
        curl(8004), ("mariadb", "rabbitmq"), Bootstrap({"heat": "stack"}), "heat-api",
    ),
    "heat-api-cfn": Service(
        "heat", frozenset({42418}), "uwsgi", "uwsgi /etc/heat/heat-api-cfn-uwsgi.ini",
        {"/etc/heat/heat.conf": HEAT_CONF,
         "/etc/heat/heat-api-cfn-uwsgi.ini": uwsgi(8000, "/usr/bin/heat-wsgi-api-cfn")},
        curl(8000), ("mariadb", "rabbitmq"), schema="heat-api",
    ),
    "heat-engine": Service(
        "heat", frozenset({42418}), "heat-engine", "heat-engine", {"/etc/heat/heat.conf": HEAT_CONF},
        ("healthcheck_port", "heat-engine", "5672"), ("mariadb", "rabbitmq"), schema="heat-api",
    ),
    # Kolla's horizon runs as root and uwsgi drops to horizon before it serves.
    "horizon": Service(
        "horizon", frozenset({42420}), "uwsgi", "uwsgi /etc/horizon/horizon-uwsgi.ini",
        # kolla-ansible's local_settings gives the secret key: the image's default makes one as root
        # (the start's collectstatic), which uwsgi's horizon could not read.
        {"/etc/openstack-dashboard/local_settings.py":
             "import os\nfrom openstack_dashboard.settings import HORIZON_CONFIG  # noqa\n"
             "DEBUG = False\nALLOWED_HOSTS = ['*']\nLOCAL_PATH = os.path.dirname(os.path.abspath(__file__))\n"
             f"SECRET_KEY = '{secrets.token_hex(16)}'\nOPENSTACK_KEYSTONE_URL = 'http://keystone:5000/v3'\n"
             "SESSION_ENGINE = 'django.contrib.sessions.backends.signed_cookies'\n",
         "/etc/horizon/horizon-uwsgi.ini": uwsgi(80, "/usr/share/openstack-dashboard/wsgi.py", uid="horizon",
                                                 gid="horizon", chdir="/usr/share/openstack-dashboard")},
        curl(80),
    ),
    "cron": Service(
        "root", frozenset({0}), "^cron -f", "cron -f",
        {"/etc/logrotate.conf": "weekly\nrotate 6\ncopytruncate\ncompress\nmissingok\n"
                                "/var/log/kolla/*/*.log {\n}\n",
         # A job every minute, so that the healthcheck proves cron runs its jobs.
         "/etc/cron.d/kbuild-test": "* * * * * root touch /var/log/kolla/cron/alive\n"},
        ("healthcheck_filemod", "/var/log/kolla/cron/alive", "120"),
    ),
    "haproxy": Service(
        "root", frozenset({0, 42454}), "haproxy", "/usr/sbin/haproxy -W -db -p /run/haproxy.pid"
        " -f /etc/haproxy/haproxy.cfg -f /etc/haproxy/services.d/",
        {"/etc/haproxy/haproxy.cfg": "global\n    user haproxy\n    group haproxy\n    maxconn 1000\n\n"
                                     "defaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n"
                                     "    timeout server 30s\n",
         "/etc/haproxy/services.d/monitor.cfg": "frontend status\n    bind 0.0.0.0:61313\n    monitor-uri /\n"},
        curl(61313, "/"),
    ),
    "keepalived": Service(
        "root", frozenset({0}), "keepalived", "/usr/sbin/keepalived -nld -p /run/keepalived.pid",
        {"/etc/keepalived/keepalived.conf": "vrrp_instance kolla_internal_vip_51 {\n    state BACKUP\n"
                                            "    nopreempt\n    interface eth0\n    virtual_router_id 51\n"
                                            "    priority 1\n    advert_int 1\n    virtual_ipaddress {\n"
                                            f"        {KEEPALIVED_VIP}/32 dev eth0\n    }}\n}}\n"},
        ("bash", "-c", f"ip -o address show dev eth0 | grep -qF ' {KEEPALIVED_VIP}/32 '"),
        options=("--cap-add", "NET_ADMIN", "--cap-add", "NET_BROADCAST"),
    ),
    "kolla-toolbox": Service(
        "ansible", frozenset({42401}), "sleep infinity", "sleep infinity", {},
        # What kolla-ansible does with it: a module of a bundled collection, here against MariaDB.
        ("ansible", "localhost", "-o", "-m", "community.mysql.mysql_info", "-a",
         f"login_host=mariadb login_user=root login_password={PASSWORD} filter=version"),
        ("mariadb",),
    ),
}  # fmt: skip


def owner_of(dest: str, service: Service) -> str:
    """Who config.json makes own a file: the service's user, root for cron's tables (cron wants so)."""
    return "root" if dest.startswith("/etc/cron.d/") else service.user


def config_dir(directory: Path, service: Service) -> Path:
    """config.json and the files it copies, as kolla-ansible writes them for the container."""
    directory.mkdir(parents=True)
    entries = []
    for number, (dest, content) in enumerate(service.files.items()):
        source = f"{number}-{Path(dest).name}"
        (directory / source).write_text(content)
        owner = owner_of(dest, service)
        perm = "0644" if owner == "root" else "0600"
        entries.append({"source": f"{CONFIG_FILES}/{source}", "dest": dest, "owner": owner, "perm": perm})
    config = {"command": service.command, "config_files": entries, "permissions": list(service.permissions)}
    (directory / "config.json").write_text(json.dumps(config))
    for path in directory.iterdir():
        path.chmod(0o644)
    directory.chmod(0o755)
    return directory


class Containers:
    """What the file starts, on its own network; removed whatever happens."""

    def __init__(self, root: Path, pinned: dict[str, str]) -> None:
        self.root, self.pinned, self.names = root, pinned, []
        self.volumes: dict[str, str] = {}  # the file's named volumes: key -> volume
        self.bootstraps: dict[str, subprocess.CompletedProcess[str]] = {}  # image -> its one bootstrap
        self.network = PREFIX
        docker("network", "create", self.network)

    def run(
        self, image: str, *options: str, detach: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """`docker run` of the image's pinned reference with its service's config.json, on the network."""
        service = SERVICES[image]
        name = f"{PREFIX}-{image}-{uuid.uuid4().hex[:6]}"
        self.names.append(name)
        directory = config_dir(self.root / name, service)
        return docker(
            "run", *(["--detach"] if detach else []), "--name", name, "--network", self.network,
            "-e", "KOLLA_CONFIG_STRATEGY=COPY_ALWAYS", "-v", f"{directory}:{CONFIG_FILES}:ro",
            *(f"--volume={self.volume(key)}:{path}" for key, path in service.volumes.items()),
            *service.options, *options, self.pinned[image], check=False, timeout=timeout,
        )  # fmt: skip

    def start(self, image: str, *options: str) -> str:
        started = self.run(image, *options)
        assert started.returncode == 0, started.stderr
        return self.names[-1]

    def volume(self, key: str) -> str:
        if key not in self.volumes:
            self.volumes[key] = docker("volume", "create", f"{PREFIX}-{key}").stdout.strip()
        return self.volumes[key]

    def remove(self) -> None:
        for name in self.names:
            docker("rm", "--force", "--volumes", name, check=False, timeout=600)
        for name in self.volumes.values():
            docker("volume", "rm", "--force", name, check=False, timeout=600)
        docker("network", "rm", self.network, check=False)


def logs(name: str) -> str:
    result = docker("logs", "--tail", "60", name, check=False)
    return (result.stdout + result.stderr)[-6000:]


def wait_healthy(name: str, healthcheck: tuple[str, ...], seconds: float = STARTUP_SECONDS) -> str:
    """Run the healthcheck until it passes, while the container runs; its output."""
    deadline = time.monotonic() + seconds
    while True:
        check = docker("exec", name, *healthcheck, check=False, timeout=60)
        if check.returncode == 0:
            return check.stdout
        running = docker("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
        assert running == "true", f"{name} stopped: {logs(name)}"
        assert time.monotonic() < deadline, (
            f"{' '.join(healthcheck)}: {check.stdout}{check.stderr}\n{logs(name)}"
        )
        time.sleep(2)


@pytest.fixture(scope="module")
def pinned(default_images: Baked) -> dict[str, str]:
    """The images of this file, from the session's one bake of `default`, pulled."""
    return default_images.pull(*SERVICES)


@pytest.fixture(scope="module")
def containers(pinned: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containers]:
    made = Containers(tmp_path_factory.mktemp("services"), pinned)
    try:
        yield made
    finally:
        made.remove()


def start_mariadb(containers: Containers) -> str:
    """A MariaDB on a fresh datadir made by its own KOLLA_BOOTSTRAP container."""
    datadir = ["-v", f"{containers.volume('mariadb')}:/var/lib/mysql"]
    bootstrap = containers.run(
        "mariadb-server", "-e", "KOLLA_BOOTSTRAP=", *datadir, detach=False, timeout=300
    )
    assert bootstrap.returncode == 0, bootstrap.stdout + bootstrap.stderr
    name = containers.start("mariadb-server", "--network-alias", "mariadb", *datadir)
    wait_healthy(name, SERVICES["mariadb-server"].healthcheck)
    return name


def start_rabbitmq(containers: Containers) -> str:
    """A RabbitMQ with the user every service's transport_url names."""
    name = containers.start("rabbitmq", "--network-alias", "rabbitmq")
    wait_healthy(name, SERVICES["rabbitmq"].healthcheck)
    return name


@pytest.fixture(scope="module")
def mariadb(containers: Containers) -> str:
    """The file's one MariaDB."""
    return start_mariadb(containers)


@pytest.fixture(scope="module")
def rabbitmq(containers: Containers) -> str:
    """The file's one RabbitMQ."""
    return start_rabbitmq(containers)


def sql(mariadb: str, statements: str) -> str:
    """Statements run by the mariadb container's client as root (the SQL on stdin); the rows printed."""
    client = ["mariadb", "--defaults-extra-file=/etc/mysql/root.cnf", "--batch", "--skip-column-names"]
    return docker("exec", "-i", mariadb, *client, stdin=statements).stdout.strip()


def process_uids(name: str, pattern: str) -> set[int]:
    pids = docker("exec", name, "pgrep", "-f", "--", pattern, check=False).stdout.split()
    assert pids, f"no process matches {pattern!r} in {name}: {logs(name)}"
    return {int(docker("exec", name, "stat", "-c", "%u", f"/proc/{pid}").stdout) for pid in pids}


def bootstrapped(
    image: str, containers: Containers, request: pytest.FixtureRequest
) -> subprocess.CompletedProcess[str]:
    """The image's KOLLA_BOOTSTRAP container, run once in the file (as a deployment does before it
    starts the service) on databases the test creates first, as kolla-ansible does."""
    if image not in containers.bootstraps:
        service, bootstrap = SERVICES[image], SERVICES[image].bootstrap
        assert bootstrap is not None
        for needed in service.needs:
            request.getfixturevalue(needed)
        schemas = "".join(f"CREATE DATABASE {db}; GRANT ALL PRIVILEGES ON {db}.* TO '{service.user}'@'%';\n"
                          for db in bootstrap.tables)  # fmt: skip
        sql(request.getfixturevalue("mariadb"),
            f"CREATE USER IF NOT EXISTS '{service.user}'@'%' IDENTIFIED BY '{PASSWORD}';\n{schemas}")  # fmt: skip
        env = [f"--env={key}={value}" for key, value in {"KOLLA_BOOTSTRAP": "", **bootstrap.env}.items()]
        containers.bootstraps[image] = containers.run(image, *env, detach=False, timeout=1800)
    return containers.bootstraps[image]


@pytest.mark.parametrize("image", [image for image, service in SERVICES.items() if service.bootstrap])
def test_bootstrap_leaves_the_schema(
    image: str, containers: Containers, mariadb: str, request: pytest.FixtureRequest
) -> None:
    bootstrap = SERVICES[image].bootstrap
    assert bootstrap is not None
    one_shot = bootstrapped(image, containers, request)
    assert one_shot.returncode == 0, (one_shot.stdout + one_shot.stderr)[-6000:]
    assert "Running command" not in one_shot.stdout, "the bootstrap went on to start the service"
    for db, table in bootstrap.tables.items():
        found = sql(mariadb, f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{db}'")
        assert table in found.split(), f"{db} has no table {table}: {found}"
    for statement, rows in bootstrap.checks.items():
        assert sql(mariadb, statement) == rows, statement


@pytest.mark.parametrize("image", sorted(SERVICES))
def test_service_starts_as_kollas_user_and_is_healthy(
    image: str, containers: Containers, request: pytest.FixtureRequest
) -> None:
    service = SERVICES[image]
    shared = {"mariadb-server": "mariadb", "rabbitmq": "rabbitmq"}
    for fixture in service.needs:
        request.getfixturevalue(fixture)
    if service.schema:
        schema = bootstrapped(service.schema, containers, request)
        assert schema.returncode == 0, f"{service.schema}'s bootstrap failed: {schema.stderr[-3000:]}"
    # MariaDB and RabbitMQ: the file's own, started from their config.json by their fixtures.
    name = request.getfixturevalue(shared[image]) if image in shared else containers.start(image)
    print(f"{image}: {wait_healthy(name, service.healthcheck).strip()}")
    assert process_uids(name, service.process) == service.uids
    assert docker("exec", name, "cat", "/run_command").stdout.strip() == service.command
    for dest in service.files:
        owner = docker("exec", "--user", "root", name, "stat", "-c", "%U", dest).stdout.strip()
        assert owner == owner_of(dest, service), dest
    if image not in shared:  # done with it: 2 cores serve the rest of the file better without it
        docker("rm", "--force", name, timeout=600)
