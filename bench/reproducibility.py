"""The price of reproducibility: a cold `kbuild bake --push` (OCI exporter with rewritten
timestamps, skopeo copy, SBOM probes) against a raw `docker buildx bake` of the same compiled
targets with the engine's image exporter pushing, measured side by side in one run.

    .venv/bin/python bench/reproducibility.py [--profile core] [--platform linux/amd64] [--rounds 2]

Each side starts from an empty BuildKit cache (`docker builder prune -af`) and pushes into a
namespace of its own. Rounds alternate which side goes first (the package mirror may be warmer
for the second). Prints both wall-clock times per round and the ratio of the totals (target:
<= 1.10x).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(command: list[str]) -> float:
    subprocess.run(["docker", "builder", "prune", "-af"], check=True, capture_output=True)
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="core")
    parser.add_argument("--platform", default="linux/amd64")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"raw": [], "ours": []}
    for round_ in range(args.rounds):
        sides = ["raw", "ours"] if round_ % 2 == 0 else ["ours", "raw"]
        for side in sides:
            times[side].append(one_side(side, args.profile, args.platform))
            print(f"round {round_ + 1}: {side} {times[side][-1]:.1f} s", flush=True)
    raw, ours = sum(times["raw"]), sum(times["ours"])
    print(f"cold build of {args.profile} on {args.platform}, pushed, {args.rounds} round(s):")
    print(f"  docker buildx bake, image exporter: {raw:7.1f} s")
    print(f"  kbuild bake (reproducible, SBOMs):  {ours:7.1f} s")
    print(f"  price of reproducibility: {ours / raw:.2f}x (target <= 1.10x)")


def one_side(side: str, profile: str, platform: str) -> float:
    """One cold build: a raw bake of kbuild's compiled targets, or `kbuild bake` itself."""
    stamp = time.time_ns()
    kbuild = [sys.executable, "-m", "kbuild"]
    selection = ["-p", profile, "--platform", platform]
    with tempfile.TemporaryDirectory() as scratch:
        build_dir = Path(scratch)
        namespace = ["--namespace", f"{side}-{stamp}", "--build-dir", str(build_dir)]
        if side == "ours":
            return timed(
                [*kbuild, "bake", *selection, *namespace, "--push", "--no-cache", "--progress", "quiet"]
            )
        bake_file = build_dir / "docker-bake.json"
        compile_raw = [*kbuild, "compile", *selection, *namespace, "-o", str(bake_file)]
        subprocess.run(compile_raw, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        # The debootstrap root is made once and cached (`kbuild bake` of either side reuses it).
        image_exporter = [
            "--set",
            "*.output=type=image,push=true",
            "--set",
            "*.attest=type=provenance,disabled=true",
        ]
        return timed(
            [
                "docker",
                "buildx",
                "bake",
                "-f",
                str(bake_file),
                "--no-cache",
                "--progress",
                "quiet",
                *image_exporter,
            ]
        )


if __name__ == "__main__":
    main()
