"""Commands that compile and build: `compile`, `bake`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from kbuild.cli.app import app
from kbuild.cli.options import (
    SELECT,
    TAGS,
    VARIANT,
    BuildDir,
    BuilderOpt,
    Inputs,
    LockFileOpt,
    Progress,
    ProgressOpt,
    PushOpt,
    shared_options,
)


@app.command("compile")
@shared_options(*SELECT, *VARIANT, *TAGS)
def compile_bake(
    inputs: Inputs,
    output: Annotated[Path, typer.Option("--output", "-o", help="The bake file to write.")] = Path(
        "build/docker-bake.json"
    ),
    build_dir: BuildDir = Path("build"),
) -> None:
    """Compile the selected images into a bake file for `docker buildx bake -f`: every image, as
    if nothing were built yet (`bake` leaves out what it finds by content hash)."""
    from kbuild.compile.bake import BakeOptions
    from kbuild.compile.pipeline import compile_catalog
    from kbuild.engine.files import exclusive, roots_dir, write_build_dir
    from kbuild.engine.roots import host_mirror

    options = BakeOptions(roots_dir=roots_dir())
    with exclusive(build_dir):
        compiled = compile_catalog(
            inputs.catalog(), inputs.select, build_dir, host_mirror, bake_options=options
        )
        write_build_dir(compiled, build_dir, output)
    request = compiled.request
    print(
        f"wrote {output}: {len(compiled.selection.images)} image(s) for {request.variant} "
        f"on {', '.join(request.platforms)}"
    )


def _cache_option(value: str | None) -> str | None:
    if value is None or value == "registry" or (value.startswith("local:") and len(value) > len("local:")):
        return value
    raise typer.BadParameter("use 'registry' or 'local:DIR'")


@app.command()
@shared_options(*SELECT, *VARIANT, *TAGS)
def bake(
    inputs: Inputs,
    push: PushOpt = False,
    locked: Annotated[
        bool, typer.Option("--locked", help="Build exactly what kbuild.lock pins; refuse a stale lock.")
    ] = False,
    cache: Annotated[
        str | None,
        typer.Option(
            help="Share BuildKit's layer cache: 'registry' (a cache tag per image) or 'local:DIR'.",
            callback=_cache_option,
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Rebuild every selected image from scratch.")
    ] = False,
    builder: BuilderOpt = None,
    progress: ProgressOpt = Progress.auto,
    retries: Annotated[int, typer.Option(help="Retries of a build that failed on the network.")] = 2,
    lock_file: LockFileOpt = None,
    build_dir: BuildDir = Path("build"),
) -> None:
    """Build the selected images with `docker buildx bake`; write summary, logs and manifest.

    An image whose content hash is already in the registry (--push) or the engine (--load) is not
    rebuilt, only tagged. Exit code 0 when every selected image was built or found, 1 otherwise."""
    from kbuild.cli.progress import Board
    from kbuild.compile.bake import BakeOptions
    from kbuild.compile.lock import read_lock
    from kbuild.compile.pipeline import compile_catalog
    from kbuild.engine.buildx import RunOptions, run_bake
    from kbuild.engine.files import exclusive, roots_dir, write_build_dir
    from kbuild.engine.finders import local_finder, registry_finder
    from kbuild.engine.publish import publish
    from kbuild.engine.results import write_results
    from kbuild.engine.roots import host_mirror, prepare_roots
    from kbuild.engine.sbom import publish_sboms

    board = Board(progress)
    tell = board.say
    with exclusive(build_dir):
        lock = read_lock(lock_file or inputs.workspace / "kbuild.lock") if locked else None
        compiled = compile_catalog(
            inputs.catalog(),
            inputs.select,
            build_dir,
            host_mirror,
            lock=lock,
            locked=locked,
            find=None if no_cache else registry_finder if push else local_finder,
            bake_options=BakeOptions(roots_dir=roots_dir(), cache=cache, no_cache=no_cache, sbom=True),
        )
        request = compiled.request
        tell(
            f"{len(compiled.selection.images)} image(s) for {request.variant} on {', '.join(request.platforms)}: "
            f"{len(compiled.bake.groups['default'])} to build, {len(compiled.plan.found)} found by content hash"
        )
        bake_path = build_dir / "docker-bake.json"
        prepare_roots(compiled, tell, lock)
        write_build_dir(compiled, build_dir, bake_path)
        with board:
            for name in compiled.plan.found:
                board.state(name, "waiting")
            run = RunOptions(builder, progress.value, retries, on_state=board.state)
            outcomes = run_bake(compiled, bake_path, run, tell)
            published = publish(compiled, outcomes, build_dir, push, tell, board.state)
            sboms = publish_sboms(compiled, published, build_dir, push, tell)
        report, _ = write_results(compiled, outcomes, published, build_dir, push, sboms)
    _report(report, tell, build_dir)
    if report["failed"] or report["parent_error"]:
        raise typer.Exit(1)


def _report(report: dict[str, Any], tell: Callable[[str], None], build_dir: Path) -> None:
    """A line per image: what happened to it, in how long, and why when it failed."""
    colours = {"built": "green", "cached": "cyan", "failed": "red", "parent_error": "red"}
    for status, colour in colours.items():
        for entry in report[status]:
            detail = f"  {entry['error']}" if entry.get("error") else ""
            seconds = f"{entry['seconds']:>7.1f} s" if "seconds" in entry else " " * 9
            tell(f"[{colour}]{status:<12}[/] {entry['name']:<24} {seconds}{detail}")
    for status in ("disabled", "unbuildable"):
        for entry in report[status]:
            tell(f"[yellow]{status:<12}[/] {entry['name']:<24} {entry['reason']}")
    tell(f"manifest: {build_dir / 'kbuild-manifest.json'} (and .yml); summary: {build_dir / 'summary.json'}")
