"""What content-addressed builds save: a no-op bake, a one-leaf change, a full cold build.

    .venv/bin/python bench/cache.py [--profile core] [--runs 5] [--cold]

Works on a copy of the workspace and a namespace of its own. First it bakes the profile once, so
that every image is in the registry. Then it times, as whole processes:
- a no-op `kbuild bake --push` (every image found by content hash, no BuildKit solve), best and
  median of --runs;
- the same bake after one leaf image (keystone-fernet) gets one more package: only it is rebuilt;
- with --cold, a full build of the profile without any cache (`docker builder prune -af`, then
  `kbuild bake --no-cache`), for comparison with the one-leaf rebuild.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LEAF_PACKAGES = '"deb": ["cron", "openssh-client", "rsync"]'


def bake(workspace: Path, build_dir: Path, *extra: str) -> tuple[float, dict]:
    command = [sys.executable, "-m", "kbuild", "bake", *extra, "--push", "--progress", "quiet"]
    command += ["--build-dir", str(build_dir)]
    start = time.perf_counter()
    subprocess.run(command, cwd=workspace, check=True)
    seconds = time.perf_counter() - start
    return seconds, json.loads((build_dir / "summary.json").read_text())


def names(summary: dict, status: str) -> list[str]:
    return [entry["name"] for entry in summary[status]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="core")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cold", action="store_true", help="also time a full build without cache")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        workspace, build_dir = Path(scratch) / "ws", Path(scratch) / "build"
        for directory in ("distros", "platforms", "BUILD", "recipes"):
            shutil.copytree(ROOT / directory, workspace / directory)
        selection = ["-p", args.profile, "--namespace", f"bench-{int(time.time())}"]
        seconds, summary = bake(workspace, build_dir, *selection)
        print(
            f"first bake: {seconds:.1f} s (built {len(names(summary, 'built'))}, found {len(names(summary, 'cached'))})"
        )

        noop = []
        for _ in range(args.runs):
            seconds, summary = bake(workspace, build_dir, *selection)
            assert not names(summary, "built"), summary
            noop.append(seconds)
        print(f"no-op bake of {args.profile}: best {min(noop):.2f} s, median {statistics.median(noop):.2f} s")

        # The leaf changes: keystone-fernet gets one more package (a real apt step to redo).
        recipe = workspace / "recipes" / "keystone" / "keystone.kb"
        text = recipe.read_text()
        assert LEAF_PACKAGES in text, (
            "bench/cache.py: the keystone-fernet recipe changed; update LEAF_PACKAGES"
        )
        recipe.write_text(text.replace(LEAF_PACKAGES, LEAF_PACKAGES.replace('"rsync"', '"rsync", "jq"')))
        seconds, summary = bake(workspace, build_dir, *selection)
        print(f"one-leaf change (keystone-fernet): {seconds:.1f} s, rebuilt {names(summary, 'built')}")

        if args.cold:
            subprocess.run(["docker", "builder", "prune", "-af"], check=True, capture_output=True)
            seconds, summary = bake(workspace, build_dir, *selection, "--no-cache")
            print(
                f"full cold build of {args.profile}: {seconds:.1f} s ({len(names(summary, 'built'))} images)"
            )


if __name__ == "__main__":
    main()
