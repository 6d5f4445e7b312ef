"""Commands about pins and reproducibility: `lock`, `verify`."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from kbuild.cli.app import app
from kbuild.cli.options import (
    SELECT,
    VARIANT,
    BuildDir,
    BuilderOpt,
    Inputs,
    LockFileOpt,
    Progress,
    ProgressOpt,
    say,
    shared_options,
)
from kbuild.errors import KbuildError, unknown


@app.command()
@shared_options(*SELECT, *VARIANT, "registry", "namespace")
def lock(
    inputs: Inputs,
    update: Annotated[
        list[str] | None,
        typer.Option("--update", "-u", help="Move only these images' (or roots') entries (repeatable)."),
    ] = None,
    builder: BuilderOpt = None,
    progress: ProgressOpt = Progress.auto,
    lock_file: LockFileOpt = None,
    build_dir: BuildDir = Path("build"),
) -> None:
    """Resolve and record in kbuild.lock what every selected image's inputs are: root digests and
    package sets, each image's package versions and pip pins with hashes, SOURCE_DATE_EPOCH.

    It builds the images (from cache where it can) and reads back what they installed. Entries of
    other variants and images are kept; --update moves only the entries named (and stale ones)."""
    from kbuild.compile.bake import BakeOptions
    from kbuild.compile.lock import dump_lock, read_lock
    from kbuild.compile.pipeline import compile_lock, merge_lock
    from kbuild.engine.buildx import RunOptions, run_bake
    from kbuild.engine.files import exclusive, roots_dir, write_build_dir, write_if_changed
    from kbuild.engine.finders import registry_finder
    from kbuild.engine.probes import read_lock_entries
    from kbuild.engine.roots import host_mirror, prepare_roots
    from kbuild.model.workspace import recipes_digest

    tell = say(progress)
    path = lock_file or inputs.workspace / "kbuild.lock"
    old = read_lock(path)
    with exclusive(build_dir):
        compiled, epoch, moving = compile_lock(
            inputs.catalog(),
            inputs.select,
            build_dir,
            host_mirror,
            old,
            tuple(update or ()),
            registry_finder,
            BakeOptions(roots_dir=roots_dir()),
        )
        tell(
            f"resolving {len(moving)} entr{'y' if len(moving) == 1 else 'ies'} for {compiled.request.variant}"
        )
        bake_path = build_dir / "docker-bake-lock.json"
        prepare_roots(compiled, tell)
        write_build_dir(compiled, build_dir, bake_path)
        outcomes = run_bake(compiled, bake_path, RunOptions(builder, progress.value), tell)
        failed = sorted(
            name for name, outcome in outcomes.items() if outcome.status in ("failed", "parent_error")
        )
        if failed:
            tell(f"[red]cannot lock: {', '.join(failed)} did not build[/] (logs: {build_dir / 'logs'})")
            raise typer.Exit(1)
        entries = read_lock_entries(compiled, build_dir, moving)
        new = merge_lock(old, compiled.request.variant, epoch, recipes_digest(inputs.workspace), entries)
        write_if_changed(path, dump_lock(new))
    tell(f"wrote {path}: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'} moved")


@app.command()
@shared_options("profile", *VARIANT, "registry", "namespace")
def verify(
    inputs: Inputs,
    images: Annotated[list[str] | None, typer.Argument(help="The images to rebuild and compare.")] = None,
    locked: Annotated[bool, typer.Option("--locked", help="Verify the locked build.")] = False,
    builder: BuilderOpt = None,
    progress: ProgressOpt = Progress.auto,
    lock_file: LockFileOpt = None,
    build_dir: Annotated[Path, typer.Option(help="Where the rebuild goes.")] = Path("build/verify"),
) -> None:
    """Rebuild images (those named and those a --profile names) without any cache and compare
    them with the published ones (found in the registry by content hash). Where digests differ,
    name the platforms, layers and files.

    Exit code 0 when every image is bit-for-bit identical, 1 otherwise."""
    from kbuild.compile.lock import read_lock
    from kbuild.compile.select import make_request, select
    from kbuild.engine.buildx import RunOptions
    from kbuild.engine.files import exclusive
    from kbuild.engine.verify import verify_images

    loaded = inputs.catalog()
    named = list(images or ())
    for image in named:
        if image not in loaded.images:
            raise unknown("image", image, loaded.images)
    if inputs.select.profiles:
        named += [n for n in select(loaded, make_request(loaded, inputs.select)).matched if n not in named]
    if not named:
        raise KbuildError("nothing to verify", hint="name images, or a profile with --profile")
    lock = read_lock(lock_file or inputs.workspace / "kbuild.lock") if locked else None
    options = replace(inputs.select, profiles=(), patterns=tuple(f"^{re.escape(i)}$" for i in named))
    tell = say(progress)
    with exclusive(build_dir):
        differing = verify_images(
            loaded, options, named, build_dir, RunOptions(builder, progress.value), tell, lock, locked
        )
    if differing:
        raise typer.Exit(1)
