"""Deploy timings, all-in-one: a first deploy and a no-change re-deploy of the core services.

    .venv/bin/python bench/deploy.py [--manifest build/kbuild-manifest.yml] [--runs 3]

Deploys the manifest's images (bake the core profile first: `kbuild bake -p core --push`) into a
configuration directory, container prefix and free loopback ports of its own, times `kbuild
deploy deploy` as a whole process (first, then --runs re-deploys with nothing changed; the target
for those is under 60 s), then destroys what it deployed.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PORTS = ("mariadb_port", "memcached_port", "rabbitmq_port", "rabbitmq_cluster_port",
         "rabbitmq_epmd_port", "keystone_public_port")  # fmt: skip


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=ROOT / "build" / "kbuild-manifest.yml")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kbuild-bench-deploy-") as tmp:
        variables = {"node_config_directory": tmp, "kolla_container_prefix": f"bench{uuid.uuid4().hex[:6]}_"}
        variables.update(zip(PORTS, free_ports(len(PORTS)), strict=True))
        extra = [arg for key, value in variables.items() for arg in ("-e", f"{key}={value}")]
        extra += ["--globals", f"{tmp}/globals.yml"]  # not the machine's /etc/kolla/globals.yml

        def deploy(action: str, *more: str) -> float:
            argv = [
                sys.executable,
                "-m",
                "kbuild",
                "deploy",
                action,
                "--manifest",
                str(args.manifest.resolve()),
            ]
            started = time.monotonic()
            result = subprocess.run([*argv, *extra, *more], cwd=ROOT, capture_output=True, text=True)
            seconds = time.monotonic() - started
            if result.returncode:
                sys.exit(f"kbuild deploy {action} failed:\n{result.stdout[-4000:]}")
            return seconds

        try:
            first = deploy("deploy")
            print(f"first deploy: {first:.1f} s")
            again = [deploy("deploy") for _ in range(args.runs)]
            print(f"no-change re-deploy: best {min(again):.1f} s, median {statistics.median(again):.1f} s")
        finally:
            deploy("destroy", "-e", "kolla_destroy_confirm=yes")


if __name__ == "__main__":
    main()
