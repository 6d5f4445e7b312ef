"""Deploy timings, all-in-one: a first deploy and a no-change re-deploy of what the manifest has
(a bake of `core`: the core services and horizon; of `default`: the whole control plane).

    .venv/bin/python bench/deploy.py [--manifest build/kbuild-manifest.yml] [--runs 3]
                                     [--upgrade IMAGE [--profile core]]

Deploys the manifest's images (bake a profile first: `kbuild bake -p core --push`) into a
configuration directory, container prefix and free loopback ports of its own, times `kbuild
deploy deploy` as a whole process (first, then --runs re-deploys with nothing changed; the target
for those is under 60 s), then destroys what it deployed.

With --upgrade IMAGE (e.g. keystone, memcached), it then bakes --profile again into the
manifest's namespace with an overlay that gives IMAGE alone a new label (so a new digest), and
times `kbuild deploy upgrade --manifest NEW`: the bake is not counted, the upgrade is (for
keystone: its migrations, the recreated container and the wait for it to answer).
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

import yaml

ROOT = Path(__file__).resolve().parents[1]
PORTS = ("mariadb_port", "memcached_port", "rabbitmq_port", "rabbitmq_cluster_port",
         "rabbitmq_epmd_port", "keystone_public_port", "horizon_port", "glance_api_port",
         "placement_api_port", "nova_api_port", "nova_novncproxy_port", "neutron_server_port",
         "heat_api_port", "heat_api_cfn_port")  # fmt: skip


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def new_manifest(manifest: Path, image: str, profile: str, tmp: Path) -> Path:
    """The manifest of a second bake of `profile` into `manifest`'s namespace in which `image`
    alone has a new digest (an overlay gives it a label of its own)."""
    images = yaml.safe_load(manifest.read_text())["images"]
    namespace = images[image]["pinned"].split("/")[1]
    overlay = tmp / "bench-overlay"
    overlay.mkdir()
    (overlay / f"{image}.kb").write_text(
        f'override("{image}", labels = {{"org.example.bench": "{uuid.uuid4().hex}"}})\n'
    )
    build_dir = tmp / "build"
    bake = [sys.executable, "-m", "kbuild", "bake", "-p", profile, "--overlay", str(overlay), "--push",
            "--namespace", namespace, "--build-dir", str(build_dir)]  # fmt: skip
    result = subprocess.run(bake, cwd=ROOT, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"kbuild bake failed:\n{result.stdout[-4000:]}{result.stderr[-4000:]}")
    changed = sorted(
        name
        for name, entry in yaml.safe_load((build_dir / "kbuild-manifest.yml").read_text())["images"].items()
        if images.get(name, {}).get("pinned") != entry["pinned"]
    )
    if changed != [image]:
        sys.exit(f"the second bake changed {changed}, not [{image}] alone")
    return build_dir / "kbuild-manifest.yml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=ROOT / "build" / "kbuild-manifest.yml")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--upgrade", metavar="IMAGE", help="then time an upgrade to a new IMAGE alone")
    parser.add_argument("--profile", default="core", help="what the manifest was baked from (--upgrade)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kbuild-bench-deploy-") as tmp:
        variables = {"node_config_directory": tmp, "kolla_container_prefix": f"bench{uuid.uuid4().hex[:6]}_"}
        variables.update(zip(PORTS, free_ports(len(PORTS)), strict=True))
        extra = [arg for key, value in variables.items() for arg in ("-e", f"{key}={value}")]
        extra += ["--globals", f"{tmp}/globals.yml"]  # not the machine's /etc/kolla/globals.yml

        manifest = args.manifest.resolve()

        def deploy(action: str, *more: str) -> float:
            argv = [sys.executable, "-m", "kbuild", "deploy", action, "--manifest", str(manifest)]
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
            if args.upgrade:
                manifest = new_manifest(manifest, args.upgrade, args.profile, Path(tmp))
                print(f"upgrade of {args.upgrade} alone: {deploy('upgrade'):.1f} s")
        finally:
            deploy("destroy", "-e", "kolla_destroy_confirm=yes")


if __name__ == "__main__":
    main()
