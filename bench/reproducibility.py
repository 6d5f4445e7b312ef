"""The price of reproducibility: a cold `kbuild bake --push` (OCI exporter with rewritten
timestamps, skopeo copy, SBOM probes) against a raw `docker buildx bake` of the same compiled
targets with the engine's image exporter pushing, measured side by side in one run.

    .venv/bin/python bench/reproducibility.py [--profile core] [--platform linux/amd64]

Each side starts from an empty BuildKit cache (`docker builder prune -af`) and pushes into a
namespace of its own. Prints both wall-clock times and their ratio (target: <= 1.10x).
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
    args = parser.parse_args()
    stamp = int(time.time())
    kbuild = [sys.executable, "-m", "kbuild"]
    selection = ["-p", args.profile, "--platform", args.platform]
    with tempfile.TemporaryDirectory() as scratch:
        raw_dir, our_dir = Path(scratch) / "raw", Path(scratch) / "ours"
        bake_file = raw_dir / "docker-bake.json"
        compile_raw = [
            *kbuild,
            "compile",
            *selection,
            "--namespace",
            f"raw-{stamp}",
            "--build-dir",
            str(raw_dir),
        ]
        subprocess.run([*compile_raw, "-o", str(bake_file)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        # The debootstrap root is made once and cached (`kbuild bake` of either side reuses it).
        image_exporter = [
            "--set",
            "*.output=type=image,push=true",
            "--set",
            "*.attest=type=provenance,disabled=true",
        ]
        raw = timed(
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
        ours_dir = ["--namespace", f"ours-{stamp}", "--build-dir", str(our_dir)]
        ours = timed([*kbuild, "bake", *selection, "--push", "--no-cache", "--progress", "quiet", *ours_dir])
    print(f"cold build of {args.profile} on {args.platform}, pushed:")
    print(f"  docker buildx bake, image exporter: {raw:7.1f} s")
    print(f"  kbuild bake (reproducible, SBOMs):  {ours:7.1f} s")
    print(f"  price of reproducibility: {ours / raw:.2f}x (target <= 1.10x)")


if __name__ == "__main__":
    main()
