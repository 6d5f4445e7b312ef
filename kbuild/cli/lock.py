"""Commands about pins and reproducibility: `lock`, `verify`."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
    shared_options,
)
from kbuild.errors import KbuildError, unknown

if TYPE_CHECKING:
    from kbuild.compile.select import SelectOptions


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
    from kbuild.cli.progress import Board
    from kbuild.compile.lock import dump_lock, read_lock
    from kbuild.engine.buildx import RunOptions
    from kbuild.engine.files import exclusive, write_if_changed
    from kbuild.engine.locking import BuildFailed, make_lock

    board = Board(progress)
    tell = board.say
    path = lock_file or inputs.workspace / "kbuild.lock"
    old = read_lock(path)
    catalog = inputs.catalog()
    with exclusive(build_dir), board:
        try:
            new, moving = make_lock(
                catalog,
                update_selection(inputs.select, update or (), catalog.images),
                build_dir,
                old,
                tuple(update or ()),
                RunOptions(builder, progress.value, on_state=board.state),
                tell,
            )
        except BuildFailed as failure:
            tell(
                f"[red]cannot lock: {', '.join(failure.names)} did not build[/] (logs: {build_dir / 'logs'})"
            )
            raise typer.Exit(1) from None
        write_if_changed(path, dump_lock(new))
    tell(f"wrote {path}: {len(moving)} entr{'y' if len(moving) == 1 else 'ies'} moved")


def update_selection(select: SelectOptions, update: Sequence[str], images: Collection[str]) -> SelectOptions:
    """`--update NAME` with no profile or pattern locks those images (their ancestors come along),
    not the whole catalogue: every other entry is kept as it is."""
    named = [name for name in update if name in images]
    if select.profiles or select.patterns or not named:
        return select
    return replace(select, patterns=tuple(f"^{re.escape(name)}$" for name in named))


@app.command()
@shared_options("profile", *VARIANT, "registry", "namespace")
def verify(
    inputs: Inputs,
    images: Annotated[list[str] | None, typer.Argument(help="The images to rebuild and compare.")] = None,
    locked: Annotated[bool, typer.Option("--locked", help="Verify the locked build.")] = False,
    against_lock: Annotated[
        bool,
        typer.Option(
            "--against-lock",
            help="Rebuild the locked selection and compare with the digests kbuild.lock recorded.",
        ),
    ] = False,
    builder: BuilderOpt = None,
    progress: ProgressOpt = Progress.auto,
    lock_file: LockFileOpt = None,
    build_dir: Annotated[Path, typer.Option(help="Where the rebuild goes.")] = Path("build/verify"),
) -> None:
    """Rebuild images (those named and those a --profile names) without any cache and compare
    them with the published ones (found in the registry by content hash). Where digests differ,
    name the platforms, layers and files. With --against-lock, rebuild the locked selection
    instead and compare with the digests `kbuild lock` recorded (what CI checks on a new machine).

    Exit code 0 when every image is bit-for-bit identical, 1 otherwise."""
    from kbuild.cli.progress import Board
    from kbuild.compile.lock import read_lock
    from kbuild.compile.select import make_request, select
    from kbuild.engine.buildx import RunOptions
    from kbuild.engine.files import exclusive
    from kbuild.engine.verify import verify_against_lock, verify_images

    loaded = inputs.catalog()
    board = Board(progress)
    tell = board.say
    run = RunOptions(builder, progress.value, on_state=board.state)
    if against_lock:
        path = lock_file or inputs.workspace / "kbuild.lock"
        recorded = read_lock(path)
        if recorded is None:
            raise KbuildError(f"--against-lock, but there is no {path}", hint="make it with `kbuild lock`")
        patterns = tuple(f"^{re.escape(i)}$" for i in images or ())
        options = replace(inputs.select, patterns=patterns)
        with exclusive(build_dir), board:
            differing = verify_against_lock(loaded, options, build_dir, run, tell, recorded)
        if differing:
            raise typer.Exit(1)
        return
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
    with exclusive(build_dir), board:
        differing = verify_images(loaded, options, named, build_dir, run, tell, lock, locked)
    if differing:
        raise typer.Exit(1)
