"""Cold build of a profile versus its critical path (the longest parent chain of images).

    .venv/bin/python bench/build.py [--profile core] [--platform linux/amd64] [--warm] [--chain [LEAF]]

Empties BuildKit's cache first (unless --warm), bakes the profile with --push into a namespace of
its own, and compares the wall-clock time with the longest chain of per-image build times from
summary.json. BuildKit runs independent images side by side, so the two should be close.

Those per-image times are measured while every image builds at once: on a small machine they
stretch with the contention. --chain also builds the chain alone, cold (the leaf of the longest
chain, or LEAF, with its ancestors and nothing else): its wall clock is the critical path without
contention, what the profile's cold build would take with enough cores and bandwidth.

It also reports how busy the machine's CPUs were during the bake (from /proc/stat): a bake that
keeps every core busy is bound by the work, not by the order of the builds, and its floor is that
work divided by the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="core")
    parser.add_argument("--platform", default="linux/amd64")
    parser.add_argument("--warm", action="store_true", help="keep BuildKit's cache")
    parser.add_argument("--chain", nargs="?", const="", help="also build the longest chain (or LEAF's) alone")
    args = parser.parse_args()
    wall, result, seconds, parents, busy = bake(["-p", args.profile], args.platform, args.warm)

    def chain(name: str | None) -> float:
        return 0.0 if name is None else seconds.get(name, 0.0) + chain(parents.get(name))

    leaf = max(seconds, key=chain)
    critical = chain(leaf)
    print(
        f"{'cold' if not args.warm else 'warm'} bake of {args.profile} on {args.platform}: {wall:.1f} s wall clock, exit {result}"
    )
    for name, value in sorted(seconds.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<20} {value:7.1f} s")
    print(
        f"critical path {' <- '.join(lineage(leaf, parents))}: {critical:.1f} s; sum of all images: {sum(seconds.values()):.1f} s"
    )
    print(f"wall clock / critical path: {wall / critical:.2f}x")
    cores = os.cpu_count() or 1
    print(
        f"CPU busy {busy:.1f} s of {wall * cores:.1f} s ({cores} cores, {busy / (wall * cores):.0%}):"
        f" the work alone takes {busy / cores:.1f} s on them, wall clock / that: {wall * cores / busy:.2f}x"
    )
    if args.chain is not None:
        leaf = args.chain or leaf
        alone, result, own, _, _ = bake([f"^{leaf}$"], args.platform, args.warm)
        print(
            f"the chain {' <- '.join(lineage(leaf, parents))} alone: {alone:.1f} s wall clock, exit {result}"
        )
        for name in lineage(leaf, parents):
            print(f"  {name:<20} {own.get(name, 0.0):7.1f} s")
        print(f"profile's wall clock / the chain's alone: {wall / alone:.2f}x")
        floor = max(alone, busy / cores)  # what no schedule on these cores can beat
        print(
            f"the longer of the chain alone and the work alone: {floor:.1f} s; wall clock / it: {wall / floor:.2f}x"
        )


def lineage(leaf: str, parents: dict[str, str | None]) -> list[str]:
    path: list[str] = []
    node: str | None = leaf
    while node is not None:
        path.append(node)
        node = parents.get(node)
    return path


def bake(
    selection: list[str], platform: str, warm: bool
) -> tuple[float, int, dict[str, float], dict[str, str | None], float]:
    """One bake with --push into a namespace of its own: wall clock, exit code, per-image build
    seconds, parents, and the CPU-seconds the machine was busy meanwhile."""
    if not warm:
        subprocess.run(["docker", "builder", "prune", "-af"], check=True, capture_output=True)
    with tempfile.TemporaryDirectory() as scratch:
        build_dir = Path(scratch)
        namespace = f"bench-{int(time.time())}"
        command = [
            sys.executable,
            "-m",
            "kbuild",
            "bake",
            *selection,
            "--platform",
            platform,
            "--push",
            "--no-cache",  # else images an earlier build pushed are found by content hash
            "--namespace",
            namespace,
            "--build-dir",
            str(build_dir),
            "--progress",
            "quiet",
        ]
        start, busy_before = time.perf_counter(), cpu_busy()
        result = subprocess.run(command, cwd=ROOT)
        wall, busy = time.perf_counter() - start, cpu_busy() - busy_before
        summary = json.loads((build_dir / "summary.json").read_text())
        manifest = json.loads((build_dir / "kbuild-manifest.json").read_text())
    seconds = {entry["name"]: entry["seconds"] for entry in summary["built"]}
    parents = {name: image["parent"] for name, image in manifest["images"].items()}
    return wall, result.returncode, seconds, parents, busy


def cpu_busy() -> float:
    """CPU-seconds all cores have been busy since boot: /proc/stat's first line less idle and
    iowait."""
    ticks = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
