"""The Kolla image API on real images: base and memcached (from the session's bake of `default`), run.

Drives kbuild only through its command line. Needs what scripts/setup-host.sh installs (Docker
Engine with buildx, the registry on 127.0.0.1:5000, debootstrap). Slow: one bake, then containers.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Baked, docker

ROOT = Path(__file__).resolve().parents[1]
MEMCACHED_COMMAND = "/usr/bin/memcached -v -l 0.0.0.0 -p 11211 -c 1024 -m 64"

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def images(default_images: Baked) -> dict[str, str]:
    """base and memcached from the session's one bake of `default`, pulled."""
    return default_images.pull("base", "memcached")


@pytest.fixture
def containers() -> Iterator[list[str]]:
    """Names of the containers a test starts; removed whatever happens."""
    names: list[str] = []
    yield names
    for name in names:
        docker("rm", "--force", name, check=False)


def run_in(image: str, script: str, user: str = "root") -> str:
    return docker("run", "--rm", "--user", user, "--entrypoint", "bash", image, "-c", script).stdout


def config_dir(tmp_path: Path, content: str = "-m 64\n", command: str = MEMCACHED_COMMAND) -> Path:
    directory = tmp_path / "config_files"
    directory.mkdir(exist_ok=True)
    (directory / "memcached.conf").write_text(content)
    config = {
        "command": command,
        "config_files": [
            {
                "source": "/var/lib/kolla/config_files/memcached.conf",
                "dest": "/etc/memcached.conf",
                "owner": "memcached",
                "perm": "0600",
            }
        ],
    }
    (directory / "config.json").write_text(json.dumps(config))
    directory.chmod(0o755)
    return directory


def start(containers: list[str], image: str, directory: Path, strategy: str = "COPY_ALWAYS") -> str:
    name = f"kbuild-runtime-{uuid.uuid4().hex[:8]}"
    containers.append(name)
    docker(
        "run", "--detach", "--name", name, "-e", f"KOLLA_CONFIG_STRATEGY={strategy}",
        "-v", f"{directory}:/var/lib/kolla/config_files:ro", image,
    )  # fmt: skip
    return name


def wait_listening(name: str, port: int = 11211, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if docker("exec", name, "healthcheck_listen", "memcached", str(port), check=False).returncode == 0:
            return
        state = docker("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
        assert state == "true", docker("logs", name, check=False).stderr
        time.sleep(0.5)
    pytest.fail(f"memcached did not listen on {port}: {docker('logs', name, check=False).stderr}")


def test_entrypoint_cmd_and_user(images: dict[str, str]) -> None:
    for name, user in (("base", ""), ("memcached", "memcached")):
        config = json.loads(docker("image", "inspect", "--format", "{{json .Config}}", images[name]).stdout)
        assert config["Entrypoint"] == ["dumb-init", "--single-child", "--"], name
        assert config["Cmd"] == ["kolla_start"], name
        assert config.get("User", "") == user, name


def test_base_has_kolla_users_with_fixed_ids(images: dict[str, str]) -> None:
    expected = {"kolla": 42400, "ansible": 42401, "glance": 42415, "heat": 42418, "horizon": 42420,
                "keystone": 42425, "mysql": 42434, "neutron": 42435, "nova": 42436, "rabbitmq": 42439,
                "haproxy": 42454, "memcached": 42457, "placement": 42482, "hacluster": 42486}  # fmt: skip
    script = "; ".join(f"echo {user} $(id -u {user}) $(id -g {user}) $(id -nG {user})" for user in expected)
    lines = run_in(images["base"], script + "; getent group haclient").splitlines()
    for line, (user, uid) in zip(lines, expected.items(), strict=False):
        name, got_uid, got_gid, *groups = line.split()
        assert (name, int(got_uid), int(got_gid)) == (user, uid, uid), line
        assert "kolla" in groups, line
    assert lines[-1].startswith("haclient:x:42486:")
    facts = run_in(
        images["base"],
        "stat -c '%U:%G %a' /var/log/kolla /etc/sudoers.d/kolla_sudoers; test -x /var/lib/kolla/venv/bin/python3"
        " && echo venv; visudo -cf /etc/sudoers.d/kolla_sudoers >/dev/null && echo valid",
    )
    assert facts.split("\n")[:4] == ["root:kolla 2775", "root:root 440", "venv", "valid"]


def test_sudoers_allows_exactly_the_helpers(images: dict[str, str]) -> None:
    listed = run_in(images["memcached"], "sudo -l -U memcached")
    allowed = listed.split("may run the following commands")[1]
    commands = sorted(c.strip() for c in allowed.split("NOPASSWD:")[1].split(","))
    assert commands == [
        "/usr/local/bin/kolla_copy_cacerts",
        "/usr/local/bin/kolla_install_projects",
        "/usr/local/bin/kolla_set_configs",
    ]
    assert allowed.count("NOPASSWD") == 1 and "ALL) ALL" not in allowed
    as_user = run_in(
        images["memcached"],
        "sudo -n /usr/local/bin/kolla_install_projects && echo helper-ok; sudo -n id 2>/dev/null || echo refused",
        user="memcached",
    )
    assert as_user.split() == ["helper-ok", "refused"]


def test_memcached_starts_from_config_json(
    images: dict[str, str], tmp_path: Path, containers: list[str]
) -> None:
    name = start(containers, images["memcached"], config_dir(tmp_path, "-m 64\n-c 1024\n"))
    wait_listening(name)
    shell = ["docker", "exec", "--user", "root", name, "bash", "-c"]
    facts = subprocess.run(
        [*shell, "stat -c '%U:%G %a' /etc/memcached.conf; cat /etc/memcached.conf /run_command; echo;"
         " ps -eo user:20,comm | awk '$2 == \"memcached\" {print $1}';"
         " head -c 40 /etc/kolla/defaults/etc/memcached.conf"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert facts[0] == "memcached:memcached 600"
    assert facts[1:3] == ["-m 64", "-c 1024"]
    assert facts[3] == MEMCACHED_COMMAND
    assert facts[4] == "memcached"  # the service runs as its user, not root
    assert "memcached" in facts[5]  # the package's own file, kept as the image's default
    assert docker("exec", name, "healthcheck_listen", "memcached", "11212", check=False).returncode != 0
    assert docker("exec", name, "healthcheck_listen", "nosuchprocess", "11211", check=False).returncode != 0
    assert docker("exec", name, "healthcheck_filemod", "/run_command", "3600").returncode == 0
    check = [
        "exec",
        "--user",
        "root",
        "-e",
        "KOLLA_CONFIG_STRATEGY=COPY_ALWAYS",
        name,
        "kolla_set_configs",
        "--check",
    ]
    assert docker(*check, check=False).returncode == 0
    docker("exec", "--user", "root", name, "chmod", "0644", "/etc/memcached.conf")
    assert docker(*check, check=False).returncode == 1
    logs = docker("logs", name).stderr + docker("logs", name).stdout
    assert "INFO:__main__:Copying /var/lib/kolla/config_files/memcached.conf to /etc/memcached.conf" in logs
    assert f"Running command: '{MEMCACHED_COMMAND}'" in logs


def test_copy_once_keeps_the_first_configuration(
    images: dict[str, str], tmp_path: Path, containers: list[str]
) -> None:
    directory = config_dir(tmp_path, "-m 64\n")
    name = start(containers, images["memcached"], directory, strategy="COPY_ONCE")
    wait_listening(name)
    assert docker("exec", name, "test", "-f", "/configured").returncode == 0
    config_dir(tmp_path, "-m 128\n")
    docker("restart", name)
    wait_listening(name)
    assert docker("exec", name, "cat", "/etc/memcached.conf").stdout == "-m 64\n"


def test_bootstrap_hook_and_bad_config(images: dict[str, str], tmp_path: Path) -> None:
    directory = config_dir(tmp_path)
    snippet = tmp_path / "50-test.sh"
    snippet.write_text(
        'if [[ -n "${KOLLA_BOOTSTRAP+set}" ]]; then echo "bootstrapped as $(id -un)"; exit 0; fi\n'
    )
    snippet.chmod(0o644)
    mounts = ["-v", f"{directory}:/var/lib/kolla/config_files:ro",
              "-v", f"{snippet}:/usr/local/lib/kolla/extend_start.d/50-test.sh:ro"]  # fmt: skip
    env = ["-e", "KOLLA_CONFIG_STRATEGY=COPY_ALWAYS", "-e", "KOLLA_BOOTSTRAP="]
    one_shot = docker("run", "--rm", *env, *mounts, images["memcached"], timeout=60)
    assert "bootstrapped as memcached" in one_shot.stdout
    # Skipped, the hook does not run and kolla_start goes on to exec the command.
    config_dir(tmp_path, command="/bin/echo started")
    skipped = docker(
        "run", "--rm", *env, "-e", "KOLLA_SKIP_EXTEND_START=", *mounts, images["memcached"], timeout=60
    )
    assert "bootstrapped" not in skipped.stdout and "started" in skipped.stdout
    (directory / "config.json").write_text('{"command": 42}')
    bad = docker(
        "run", "--rm", "-e", "KOLLA_CONFIG_STRATEGY=COPY_ALWAYS", *mounts, images["memcached"], check=False
    )
    assert bad.returncode == 2
    errors = [line for line in bad.stderr.splitlines() if line.startswith("ERROR")]
    assert errors == ["ERROR:__main__:config.json.command must be a string, got 42"]
    assert "Traceback" not in bad.stderr
