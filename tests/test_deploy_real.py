"""Deploying by digest, for real: the core profile baked once, deployed all-in-one with
`kbuild deploy` into a configuration directory of its own, used with the real openstack client,
deployed again (nothing may restart), checked, searched for leaked secrets, then destroyed.

Everything binds 127.0.0.1, on ports picked free for the run; containers and volumes carry a
prefix of their own, so the run shares the engine with anything else. Needs what
scripts/setup-host.sh installs, and the `deploy` and `dev` extras (ansible, python-openstackclient).
Tests run in file order and share one deployment; the last one destroys it.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from conftest import Baked
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from kbuild.engine.oci import RegistryImage, load_json

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now (the kernel's picks, so two runs do not collide)."""
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, f"docker {' '.join(args)}: {result.stdout}{result.stderr}"
    return result


@dataclass
class Deployment:
    manifest: Path
    config_dir: Path
    vars_file: Path
    prefix: str
    # every line kbuild deploy printed in this run, searched for secrets at the end
    outputs: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def kbuild_deploy(
        self, action: str, *extra: str, check: bool = True, manifest: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`kbuild deploy ACTION`; with `manifest`, on that one, which the deployment runs from then on."""
        self.manifest = manifest or self.manifest
        argv = [sys.executable, "-m", "kbuild", "deploy", action, "--manifest", str(self.manifest)]
        # the run's own settings only: not the machine's /etc/kolla/globals.yml
        argv += ["--globals", str(self.config_dir / "globals.yml"), "-e", f"@{self.vars_file}"]
        for value in extra:
            argv += ["-e", value]
        started = time.monotonic()
        result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=1800)
        self.timings.setdefault(action, time.monotonic() - started)
        self.outputs.append(result.stdout + result.stderr)
        if check:
            assert result.returncode == 0, f"kbuild deploy {action}:\n{result.stdout[-6000:]}{result.stderr}"
        return result

    def containers(self) -> list[str]:
        listed = docker("ps", "-a", "--filter", f"label=io.kbuild.deployment={self.prefix}kbuild",
                        "--format", "{{.Names}}")  # fmt: skip
        return sorted(listed.stdout.split())

    def volumes(self) -> list[str]:
        listed = docker("volume", "ls", "--format", "{{.Name}}").stdout.split()
        return sorted(name for name in listed if name.startswith(self.prefix))

    def started_at(self) -> dict[str, str]:
        names = self.containers()
        inspected = json.loads(docker("inspect", *names).stdout)
        return {c["Name"].lstrip("/"): c["State"]["StartedAt"] for c in inspected}

    def openstack(self, *args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ)
        env.update(OS_CLIENT_CONFIG_FILE=str(self.config_dir / "clouds.yaml"), OS_CLOUD="kolla-admin")
        result = subprocess.run([str(BIN / "openstack"), *args], capture_output=True, text=True,
                                env=env, timeout=timeout)  # fmt: skip
        assert result.returncode == 0, f"openstack {' '.join(args)}: {result.stdout}{result.stderr}"
        return result


def recap_changed(output: str) -> int:
    counts = re.findall(r"^\S+\s*:\s*ok=\d+\s+changed=(\d+)", output, re.MULTILINE)
    assert counts, output[-3000:]
    return sum(int(n) for n in counts)


@pytest.fixture(scope="module")
def manifest(default_images: Baked) -> Path:
    """The manifest of the session's one bake of `default`."""
    return default_images.manifest


@pytest.fixture(scope="module")
def deployment(manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """The core services deployed all-in-one (first deploy and post-deploy); destroyed at the end
    whatever happened."""
    config_dir = tmp_path_factory.mktemp("kolla")
    prefix = f"kbt{uuid.uuid4().hex[:6]}_"
    ports = free_ports(16)
    variables = {
        "node_config_directory": str(config_dir),
        "kolla_container_prefix": prefix,
        "api_interface_address": "127.0.0.1",
        "mariadb_port": ports[0],
        "memcached_port": ports[1],
        "rabbitmq_port": ports[2],
        "rabbitmq_cluster_port": ports[3],
        "rabbitmq_epmd_port": ports[4],
        "keystone_public_port": ports[5],
        # the OpenStack services (every one enabled, as in all-in-one)
        "glance_api_port": ports[6],
        "placement_api_port": ports[7],
        "nova_api_port": ports[8],
        "nova_novncproxy_port": ports[9],
        "neutron_server_port": ports[10],
        "heat_api_port": ports[11],
        "heat_api_cfn_port": ports[12],
        # the dashboard, and haproxy in front of it and keystone on a loopback "virtual" address
        # (keepalived is off: VRRP would change the host's network)
        "horizon_port": ports[13],
        "enable_haproxy": True,
        "kolla_internal_vip_address": f"127.0.0.{random.randint(2, 254)}",
        "haproxy_monitor_port": ports[14],
        "haproxy_stats_port": ports[15],
    }
    vars_file = config_dir.parent / f"{config_dir.name}-vars.yml"
    vars_file.write_text(yaml.safe_dump(variables))
    deployed = Deployment(manifest, config_dir, vars_file, prefix)
    try:
        deployed.kbuild_deploy("prechecks")
        deployed.kbuild_deploy("deploy")
        deployed.kbuild_deploy("post-deploy")
        yield deployed
    finally:
        deployed.kbuild_deploy("destroy", "kolla_destroy_confirm=yes", check=False)
        for name in deployed.containers():
            docker("rm", "--force", name, check=False)
        for name in deployed.volumes():
            docker("volume", "rm", "--force", name, check=False)
        print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in deployed.timings.items()))


def test_first_deploy_runs_every_container_by_digest(deployment: Deployment) -> None:
    manifest = yaml.safe_load(deployment.manifest.read_text())
    expected = {"mariadb": "mariadb-server", "memcached": "memcached", "rabbitmq": "rabbitmq",
                "keystone": "keystone", "keystone_fernet": "keystone-fernet", "cron": "cron",
                "glance_api": "glance-api", "placement_api": "placement-api", "nova_api": "nova-api",
                "nova_conductor": "nova-conductor", "nova_scheduler": "nova-scheduler",
                "nova_novncproxy": "nova-novncproxy", "neutron_server": "neutron-server",
                "heat_api": "heat-api", "heat_api_cfn": "heat-api-cfn", "heat_engine": "heat-engine",
                "horizon": "horizon", "haproxy": "haproxy"}  # fmt: skip
    names = deployment.containers()
    assert names == sorted(deployment.prefix + name for name in expected)
    for inspected in json.loads(docker("inspect", *names).stdout):
        image = expected[inspected["Name"].lstrip("/").removeprefix(deployment.prefix)]
        assert inspected["Config"]["Image"] == manifest["images"][image]["pinned"]
        assert inspected["State"]["Running"] and inspected["State"]["Health"]["Status"] == "healthy"
        assert inspected["HostConfig"]["NetworkMode"] == "host"


def test_openstack_client_gets_a_token_and_the_catalog(deployment: Deployment) -> None:
    token = json.loads(deployment.openstack("token", "issue", "-f", "json").stdout)
    assert token["id"] and token["project_id"]
    endpoints = json.loads(deployment.openstack("endpoint", "list", "-f", "json").stdout)
    keystone = {e["Interface"] for e in endpoints if e["Service Name"] == "keystone"}
    assert keystone == {"public", "internal", "admin"}
    openrc = (deployment.config_dir / "admin-openrc.sh").read_text()
    assert "OS_AUTH_URL=http://127.0.0.1:" in openrc
    assert oct((deployment.config_dir / "clouds.yaml").stat().st_mode & 0o777) == "0o600"


def test_catalog_has_every_enabled_service(deployment: Deployment) -> None:
    endpoints = json.loads(deployment.openstack("endpoint", "list", "-f", "json").stdout)
    types = {e["Service Type"] for e in endpoints if e["Interface"] in ("internal", "public")}
    assert {
        "identity",
        "image",
        "placement",
        "compute",
        "network",
        "orchestration",
        "cloudformation",
    } <= types
    for kind in ("image", "placement", "compute", "network", "orchestration"):
        interfaces = {e["Interface"] for e in endpoints if e["Service Type"] == kind}
        assert interfaces == {"internal", "public"}, kind


def test_glance_gives_back_the_bytes_it_was_given(deployment: Deployment, tmp_path: Path) -> None:
    image = tmp_path / "image.raw"
    image.write_bytes(os.urandom(256 * 1024))
    created = json.loads(deployment.openstack("image", "create", "--disk-format", "raw", "--container-format",
                                              "bare", "--file", str(image), "kbuild-test", "-f", "json").stdout)  # fmt: skip
    assert created["status"] == "active"
    saved = tmp_path / "saved.raw"
    deployment.openstack("image", "save", "--file", str(saved), created["id"])
    assert saved.read_bytes() == image.read_bytes()


def test_placement_answers(deployment: Deployment) -> None:
    providers = json.loads(deployment.openstack("resource", "provider", "list", "-f", "json").stdout)
    assert isinstance(providers, list)


def test_nova_conductor_and_scheduler_are_up(deployment: Deployment) -> None:
    services = json.loads(deployment.openstack("compute", "service", "list", "-f", "json").stdout)
    states = {s["Binary"]: s["State"] for s in services}
    assert states.get("nova-conductor") == "up" and states.get("nova-scheduler") == "up", services


def test_neutron_makes_a_network_and_a_subnet(deployment: Deployment) -> None:
    network = json.loads(deployment.openstack("network", "create", "kbuild-test", "-f", "json").stdout)
    assert network["status"] == "ACTIVE"
    subnet = json.loads(deployment.openstack("subnet", "create", "--network", network["id"], "--subnet-range",
                                             "192.0.2.0/24", "kbuild-test", "-f", "json").stdout)  # fmt: skip
    assert subnet["cidr"] == "192.0.2.0/24" and subnet["network_id"] == network["id"]


def test_heat_creates_a_stack(deployment: Deployment, tmp_path: Path) -> None:
    template = tmp_path / "stack.yaml"
    template.write_text(
        "heat_template_version: 2018-08-31\nresources:\n  random:\n    type: OS::Heat::RandomString\n"
    )
    deployment.openstack("stack", "create", "--wait", "-t", str(template), "kbuild-test", timeout=900)
    stack = json.loads(deployment.openstack("stack", "show", "kbuild-test", "-f", "json").stdout)
    assert stack["stack_status"] == "CREATE_COMPLETE", stack


def test_second_deploy_restarts_nothing_and_changes_nothing(deployment: Deployment) -> None:
    before = deployment.started_at()
    started = time.monotonic()
    result = deployment.kbuild_deploy("deploy")
    deployment.timings["redeploy"] = time.monotonic() - started
    assert recap_changed(result.stdout) == 0, result.stdout[-6000:]
    assert deployment.started_at() == before


def test_reconfiguring_one_keystone_option_restarts_only_keystone(deployment: Deployment) -> None:
    before = deployment.started_at()
    result = deployment.kbuild_deploy("reconfigure", "keystone_token_expiration=7200")
    after = deployment.started_at()
    restarted = sorted(name.removeprefix(deployment.prefix) for name in before if before[name] != after[name])
    assert restarted == ["keystone", "keystone_fernet"], result.stdout[-6000:]
    token = json.loads(deployment.openstack("token", "issue", "-f", "json").stdout)
    assert token["id"]


def test_check_passes(deployment: Deployment) -> None:
    result = deployment.kbuild_deploy("check")
    assert recap_changed(result.stdout) == 0


# --- horizon, haproxy, keepalived -------------------------------------------------------------


def variables(deployment: Deployment) -> dict:
    return yaml.safe_load(deployment.vars_file.read_text())


def test_haproxy_forwards_keystone_and_horizon_on_the_virtual_address(deployment: Deployment) -> None:
    settings = variables(deployment)
    vip = settings["kolla_internal_vip_address"]
    keystone = urllib.request.urlopen(f"http://{vip}:{settings['keystone_public_port']}/v3", timeout=30)
    assert keystone.status == 200 and json.load(keystone)["version"]["id"].startswith("v3")
    login = urllib.request.urlopen(f"http://{vip}:{settings['horizon_port']}/auth/login/", timeout=60)
    assert login.status == 200 and b'id="id_username"' in login.read()
    # the statistics page wants haproxy_password
    stats = f"http://127.0.0.1:{settings['haproxy_stats_port']}/"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(stats, timeout=30)
    assert refused.value.code == 401


def test_keepalived_prechecks_want_a_real_interface(deployment: Deployment) -> None:
    interfaces = sorted(p.name for p in Path("/sys/class/net").iterdir() if p.name != "lo")
    assert interfaces, "no network interface"
    on = ("enable_keepalived=true", "enable_haproxy=true")
    deployment.kbuild_deploy("prechecks", *on, f"kolla_network_interface={interfaces[0]}")
    refused = deployment.kbuild_deploy("prechecks", *on, "kolla_network_interface=nosuch0", check=False)
    assert refused.returncode != 0 and "kolla_network_interface=nosuch0" in refused.stdout
    no_vip = deployment.kbuild_deploy("prechecks", *on, "kolla_internal_vip_address=", check=False)
    assert no_vip.returncode != 0 and "need a free address" in no_vip.stdout


def chromium() -> webdriver.Chrome:
    """Debian's chromium, headless, through Debian's chromedriver (scripts/setup-host.sh installs
    both), on a profile of its own; nothing it does reaches the network."""
    assert CHROMIUM.is_file() and CHROMEDRIVER.is_file(), "no chromium: run scripts/setup-host.sh"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='kbuild-chromium-')}"):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(service=ChromeService(str(CHROMEDRIVER)), options=options)


def test_horizon_login_as_admin_in_a_real_browser(deployment: Deployment) -> None:
    settings = variables(deployment)
    passwords = yaml.safe_load((deployment.config_dir / "passwords.yml").read_text())
    catalog = json.loads(deployment.openstack("catalog", "list", "-f", "json").stdout)
    horizon = f"http://127.0.0.1:{settings['horizon_port']}"
    browser = chromium()
    try:
        browser.get(horizon + "/")
        assert "/auth/login/" in browser.current_url, browser.current_url
        browser.find_element(By.ID, "id_username").send_keys("admin")
        browser.find_element(By.ID, "id_password").send_keys("not the password")
        browser.find_element(By.ID, "loginBtn").click()
        WebDriverWait(browser, 60).until(lambda b: "Invalid credentials" in b.page_source)
        browser.find_element(By.ID, "id_password").clear()
        browser.find_element(By.ID, "id_password").send_keys(passwords["keystone_admin_password"])
        browser.find_element(By.ID, "loginBtn").click()
        WebDriverWait(browser, 60).until(lambda b: "/auth/login/" not in b.current_url)
        # logged in: the header names the user and the project it works in
        header = browser.find_element(By.CSS_SELECTOR, "nav.navbar").text
        assert "admin" in header.split(), header
        if any(service["Type"] == "compute" for service in catalog):
            # the project overview (it needs a compute service in the catalog)
            browser.get(horizon + "/project/")
            WebDriverWait(browser, 60).until(lambda b: "Limit Summary" in b.page_source)
            assert browser.find_element(By.CSS_SELECTOR, ".page-header").text.strip() == "Overview"
        # the projects the admin sees, keystone's: the admin project is there
        browser.get(horizon + "/identity/")
        WebDriverWait(browser, 60).until(lambda b: b.find_elements(By.CSS_SELECTOR, "table#tenants"))
        assert browser.find_element(By.CSS_SELECTOR, ".page-header").text.strip() == "Projects"
        projects = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "table#tenants td.anchor")]
        assert "admin" in projects, browser.page_source[-3000:]
        # the session lives in memcached, so a fresh page load is still logged in
        browser.get(horizon + "/identity/")
        assert "/auth/login/" not in browser.current_url
    finally:
        browser.quit()


# --- upgrade ------------------------------------------------------------------------------------


def test_upgrade_recreates_only_the_service_whose_image_changed(
    deployment: Deployment, tmp_path: Path
) -> None:
    """A second bake of the same profile into the same namespace, with an overlay that changes
    keystone alone (a label, new each run): a manifest in which only keystone's digest differs."""
    old = yaml.safe_load(deployment.manifest.read_text())["images"]
    namespace = old["keystone"]["pinned"].split("/")[1]
    overlay = tmp_path / "upgrade-overlay"
    overlay.mkdir()
    (overlay / "keystone.kb").write_text(
        f'override("keystone", labels = {{"org.example.kbuild-upgrade-test": "{uuid.uuid4().hex}"}})\n'
    )
    build_dir = tmp_path / "build"
    bake = subprocess.run(
        [sys.executable, "-m", "kbuild", "bake", "-p", "default", "--overlay", str(overlay), "--push",
         "--namespace", namespace, "--build-dir", str(build_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    assert bake.returncode == 0, bake.stdout[-3000:] + bake.stderr[-3000:]
    new_manifest = build_dir / "kbuild-manifest.yml"
    new = yaml.safe_load(new_manifest.read_text())["images"]
    assert [name for name in old if old[name]["pinned"] != new[name]["pinned"]] == ["keystone"]

    def state() -> dict[str, tuple[str, str]]:
        inspected = json.loads(docker("inspect", *deployment.containers()).stdout)
        return {c["Name"].lstrip("/"): (c["Id"], c["State"]["StartedAt"]) for c in inspected}

    # from the settings of this run alone (an earlier test reconfigured keystone with -e)
    deployment.kbuild_deploy("reconfigure")
    before = state()
    result = deployment.kbuild_deploy("upgrade", manifest=new_manifest)
    after = state()
    assert set(after) == set(before)
    recreated = sorted(name.removeprefix(deployment.prefix) for name in before if before[name] != after[name])
    assert recreated == ["keystone"], result.stdout[-6000:]
    keystone = json.loads(docker("inspect", deployment.prefix + "keystone").stdout)[0]
    assert keystone["Config"]["Image"] == new["keystone"]["pinned"]
    assert keystone["State"]["Health"]["Status"] == "healthy"
    # the new image's migrations ran around the restart: expand, then contract
    hooks = re.findall(r"^TASK \[service-upgrade : Running (KOLLA_\w+) of keystone\].*\n(\w+):", result.stdout,
                       re.MULTILINE)  # fmt: skip
    assert hooks == [("KOLLA_UPGRADE", "changed"), ("KOLLA_FINISH_UPGRADE", "changed")], result.stdout[-6000:]
    token = json.loads(deployment.openstack("token", "issue", "-f", "json").stdout)
    assert token["id"]
    assert recap_changed(deployment.kbuild_deploy("check").stdout) == 0
    # the same manifest again: nothing to upgrade, nothing restarts
    again = deployment.kbuild_deploy("upgrade")
    assert recap_changed(again.stdout) == 0 and state() == after, again.stdout[-6000:]


def test_passwords_file_is_private_and_complete(deployment: Deployment) -> None:
    path = deployment.config_dir / "passwords.yml"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    passwords = yaml.safe_load(path.read_text())
    assert passwords and all(isinstance(v, str) and len(v) >= 32 for v in passwords.values())
    # every service's: the search for leaks below covers them all
    services = {"glance_database_password", "glance_keystone_password", "placement_database_password",
                "placement_keystone_password", "nova_api_database_password", "nova_database_password",
                "nova_keystone_password", "neutron_database_password", "neutron_keystone_password",
                "heat_database_password", "heat_keystone_password", "heat_domain_admin_password"}  # fmt: skip
    assert services <= passwords.keys()


def test_no_secret_in_containers_or_output(deployment: Deployment) -> None:
    passwords = yaml.safe_load((deployment.config_dir / "passwords.yml").read_text())
    inspected = docker("inspect", *deployment.containers()).stdout
    manifest = deployment.manifest.read_text()
    places = {
        "docker inspect": inspected,
        "manifest": manifest,
        "ansible output": "\n".join(deployment.outputs),
    }
    leaks = [
        (key, where) for key, secret in passwords.items() for where, text in places.items() if secret in text
    ]
    assert leaks == []
    # ... nor in any layer of any image the deployment runs (every platform, from the registry)
    images = {c["Config"]["Image"] for c in json.loads(inspected)}
    assert all("@sha256:" in image for image in images)
    assert (
        layer_hits(images, {key: secret for key, secret in passwords.items() if isinstance(secret, str)})
        == []
    )


def layer_hits(references: set[str], secrets: dict[str, str]) -> list[tuple[str, str]]:
    """(secret's key, layer) for every secret found in the uncompressed bytes of any layer of
    these images; a layer several images share is read once."""
    by_value = {secret.encode(): key for key, secret in secrets.items() if len(secret) >= 8}
    pattern = re.compile(b"|".join(re.escape(value) for value in by_value))
    overlap = max(map(len, by_value)) - 1
    hits: set[tuple[str, str]] = set()
    read: set[str] = set()
    for reference in sorted(references):
        with RegistryImage(reference) as image:
            top = load_json(image.blob(image.index_digest()), reference)
            manifests = [entry["digest"] for entry in top.get("manifests", [])] or [image.index_digest()]
            for digest in manifests:
                for layer in load_json(image.blob(digest), reference).get("layers", []):
                    if layer["digest"] in read or "tar" not in layer["mediaType"]:
                        continue  # seen already, or an attestation's statement
                    read.add(layer["digest"])
                    with image.open_layer(layer["digest"]) as raw:
                        stream = gzip.GzipFile(fileobj=raw) if "gzip" in layer["mediaType"] else raw
                        tail = b""
                        while chunk := stream.read(1 << 22):
                            window = tail + chunk
                            hits.update(
                                (by_value[m.group()], layer["digest"]) for m in pattern.finditer(window)
                            )
                            tail = window[-overlap:] if overlap else b""
    assert read, "no layer was read"
    return sorted(hits)


def test_destroy_needs_confirmation_then_removes_everything(deployment: Deployment) -> None:
    refused = deployment.kbuild_deploy("destroy", check=False)
    assert refused.returncode != 0 and "kolla_destroy_confirm=yes" in refused.stdout
    assert deployment.containers()
    deployment.kbuild_deploy("destroy", "kolla_destroy_confirm=yes")
    assert deployment.containers() == []
    assert deployment.volumes() == []
