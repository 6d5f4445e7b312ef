"""Compile-time benchmark: whole-process `kbuild compile`, synthetic catalogues, kolla-build.

    .venv/bin/python bench/compile.py [--runs N] [--kolla]

Prints one line per measurement (best of N runs, wall clock) and the ratios the project
targets: whole process < 0.4 s; 200 images >= 20x faster than kolla-build's 188 Dockerfiles;
2,000 images <= 10x the 200-image time. Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kbuild.compile.select import SelectOptions  # noqa: E402
from kbuild.engine.files import write_build_dir  # noqa: E402
from kbuild.engine.host import compile_workspace  # noqa: E402

PROJECT = """\
load("//recipes/openstack/service.kb", "openstack_service")

openstack_service(
    project = "{project}",
    user = user("{project}", uid = {uid}),
    packages = {{"deb": ["apache2", "python3-{project}client"], "rpm": ["httpd"]}},
    binary = {{"deb": ["{project}-common"], "rpm": ["openstack-{project}-common"]}},
    source = pip("{project}"),
    services = {{
{services}
    }},
)
"""
SERVICE = """\
        "{project}-{service}": {{
            "packages": {{"deb": ["{project}-{service}"], "rpm": ["openstack-{project}-{service}"]}},
            "blocks": {{"footer": ["RUN {project}-{service} --version"]}},
            "env": {{"SERVICE": "{service}"}},
        }},"""


def synthetic_workspace(directory: Path, images: int, per_project: int = 9) -> Path:
    """The real distros/platforms/BUILD plus generated projects of one base and N services each."""
    for part in ("distros", "platforms", "BUILD"):
        shutil.copytree(ROOT / part, directory / part)
    for recipe in ("base", "openstack"):
        shutil.copytree(ROOT / "recipes" / recipe, directory / "recipes" / recipe)
    (directory / "BUILD" / "profiles.kb").write_text('profile(name = "all", images = ["."])\n')
    remaining = images - 2  # base and openstack-base
    project = 0
    while remaining > 0:
        count = min(per_project, remaining - 1) if remaining > 1 else 0
        name = f"proj{project:04d}"
        services = "\n".join(SERVICE.format(project=name, service=f"svc{i}") for i in range(count))
        recipe = directory / "recipes" / name / f"{name}.kb"
        recipe.parent.mkdir(parents=True)
        recipe.write_text(PROJECT.format(project=name, uid=50000 + project, services=services))
        remaining -= count + 1
        project += 1
    return directory


def best(runs: int, action: Callable[[], object]) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times), times


def in_process(workspace: Path, build_dir: Path) -> int:
    compiled = compile_workspace(workspace, build_dir, SelectOptions(profiles=("all",)))
    write_build_dir(compiled, build_dir, build_dir / "docker-bake.json")
    return len(compiled.selection.images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--kolla", action="store_true", help="also time kolla-build (bench/kolla_baseline.sh)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        scratch_dir = Path(scratch)
        command = [
            sys.executable,
            "-m",
            "kbuild",
            "compile",
            "-p",
            "core",
            "-o",
            str(scratch_dir / "core.json"),
            "--build-dir",
            str(scratch_dir / "core"),
        ]
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)  # warm the grammar cache
        whole, all_whole = best(
            args.runs, lambda: subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
        )
        print(
            f"whole-process kbuild compile -p core: {whole:.3f} s (runs: {', '.join(f'{t:.3f}' for t in all_whole)}; target < 0.4 s)"
        )

        results = {}
        for images in (200, 2000):
            workspace = synthetic_workspace(scratch_dir / f"ws{images}", images)
            build_dir = scratch_dir / f"build{images}"
            count = in_process(workspace, build_dir)  # first run writes every context file
            seconds, all_runs = best(args.runs, lambda w=workspace, b=build_dir: in_process(w, b))
            results[images] = seconds
            print(
                f"in-process compile, {count} images: {seconds:.3f} s (runs: {', '.join(f'{t:.3f}' for t in all_runs)})"
            )
        print(f"2000 / 200 images: {results[2000] / results[200]:.1f}x (target <= 10x)")

        if args.kolla:
            line = subprocess.run(
                ["bash", str(ROOT / "bench" / "kolla_baseline.sh")],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            kolla = float(re.search(r"seconds=([0-9.]+)", line).group(1))
            print(line.strip())
            print(
                f"kolla-build (188 Dockerfiles) / kbuild (200 images): {kolla / results[200]:.0f}x faster (target >= 20x)"
            )


if __name__ == "__main__":
    main()
