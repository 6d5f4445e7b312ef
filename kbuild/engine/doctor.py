"""`kbuild doctor`: is this host ready to build? Each check says how to fix what fails."""

from __future__ import annotations

import json
import platform as host
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

SETUP = "run scripts/setup-host.sh"
_QEMU = {
    "amd64": "x86_64",
    "arm64": "aarch64",
    "arm": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True)


def checks(platforms: tuple[str, ...], registry: str) -> Iterator[tuple[str, bool, str, str]]:
    """Yield (check, ok, what was found, how to fix)."""
    if shutil.which("docker") is None:
        yield "docker CLI", False, "not on PATH", SETUP
        return
    info = _run("docker", "info", "--format", "{{json .}}")
    if info.returncode != 0:
        yield (
            "engine reachable",
            False,
            info.stderr.strip().splitlines()[-1] if info.stderr else "no answer",
            f"{SETUP} (starts dockerd)",
        )
        return
    data = json.loads(info.stdout)
    yield "engine reachable", True, f"Docker Engine {data.get('ServerVersion')}", ""
    store = json.dumps(data.get("DriverStatus") or [])
    on = "io.containerd.snapshotter" in store
    yield (
        "containerd image store",
        on,
        "on" if on else "off",
        'set {"features": {"containerd-snapshotter": true}} in /etc/docker/daemon.json and restart dockerd',
    )
    buildx = _run("docker", "buildx", "version")
    version = buildx.stdout.split()[1] if buildx.returncode == 0 and len(buildx.stdout.split()) > 1 else ""
    numbers = tuple(int(p) for p in version.lstrip("v").split("+")[0].split(".")[:2] if p.isdigit())
    yield (
        "buildx >= 0.13",
        numbers >= (0, 13),
        version or "not installed",
        f"{SETUP} (installs docker-buildx)",
    )
    yield from _platforms(platforms)
    yield (
        "debootstrap",
        shutil.which("debootstrap") is not None,
        shutil.which("debootstrap") or "not installed",
        "apt-get install debootstrap",
    )
    if registry:
        yield _registry(registry)


def _platforms(platforms: tuple[str, ...]) -> Iterator[tuple[str, bool, str, str]]:
    """Each platform runs natively or has a binfmt handler (QEMU)."""
    native = {"x86_64": "amd64", "aarch64": "arm64"}.get(host.machine(), host.machine())
    for name in platforms:
        arch = name.split("/")[1]
        if arch == native:
            yield f"platform {name}", True, "native", ""
            continue
        entry = Path("/proc/sys/fs/binfmt_misc") / f"qemu-{_QEMU.get(arch, arch)}"
        enabled = entry.is_file() and entry.read_text().startswith("enabled")
        yield (
            f"platform {name}",
            enabled,
            "binfmt emulation enabled" if enabled else "no binfmt handler",
            f"{SETUP} (qemu-user-static, binfmt-support)",
        )


def _registry(registry: str) -> tuple[str, bool, str, str]:
    scheme = "http" if registry.startswith(("127.", "localhost")) else "https"
    try:
        with urllib.request.urlopen(f"{scheme}://{registry}/v2/", timeout=5) as response:
            return f"registry {registry}", True, f"HTTP {response.status}", ""
    except OSError as error:
        fix = f"{SETUP} (starts a registry on 127.0.0.1:5000) or pass --registry"
        return f"registry {registry}", False, str(error), fix
