"""`kbuild lock`: resolve the pins (bake probes on the images, read back what they installed),
then build the locked images and record the manifest digest each platform gave, so that any
machine can rebuild them and check it got the same bytes (`kbuild verify --against-lock`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from kbuild.compile.bake import BakeOptions
from kbuild.compile.lock import Lock
from kbuild.compile.names import layout_ref, oci_layout
from kbuild.compile.pipeline import Compiled, compile_catalog, compile_lock, merge_lock, with_image_digests
from kbuild.compile.select import SelectOptions
from kbuild.engine.buildx import RunOptions, TargetOutcome, run_bake
from kbuild.engine.files import remove_exported, roots_dir, write_build_dir
from kbuild.engine.finders import registry_finder
from kbuild.engine.oci import OciLayout, platform_digests
from kbuild.engine.probes import read_lock_entries
from kbuild.engine.roots import host_mirror, prepare_roots
from kbuild.model.catalog import Catalog
from kbuild.model.workspace import recipes_digest


class BuildFailed(Exception):
    """Some images did not build; the log files say why."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(", ".join(names))
        self.names = tuple(names)


def make_lock(
    catalog: Catalog,
    options: SelectOptions,
    build_dir: Path,
    old: Lock | None,
    update: Sequence[str],
    run: RunOptions,
    say: Callable[[str], None],
) -> tuple[Lock, set[str]]:
    """The new lock, and the names of the entries that moved."""
    compiled, epoch, moving = compile_lock(
        catalog,
        options,
        build_dir,
        host_mirror,
        old,
        update,
        registry_finder,
        BakeOptions(roots_dir=roots_dir()),
    )
    say(f"resolving {len(moving)} entr{'y' if len(moving) == 1 else 'ies'} for {compiled.request.variant}")
    bake(compiled, build_dir, "docker-bake-lock.json", run, say)
    entries = read_lock_entries(compiled, build_dir, moving)
    pinned = merge_lock(old, compiled.request.variant, epoch, recipes_digest(catalog.root), entries)
    say("building the locked images, to record their digests")
    locked = compile_catalog(
        catalog,
        options,
        build_dir,
        host_mirror,
        lock=pinned,
        locked=True,
        bake_options=BakeOptions(roots_dir=roots_dir()),
    )
    bake(locked, build_dir, "docker-bake-locked.json", run, say, pinned)
    images = {
        name: exported_digests(locked, build_dir, name) for name in locked.selection.images if name in moving
    }
    remove_exported(build_dir, locked.request)
    return with_image_digests(pinned, locked.request.variant, images), moving


def bake(
    compiled: Compiled,
    build_dir: Path,
    bake_name: str,
    run: RunOptions,
    say: Callable[[str], None],
    lock: Lock | None = None,
) -> dict[str, TargetOutcome]:
    """Make the roots, write the build directory and bake; every target must build."""
    prepare_roots(compiled, say, lock)
    write_build_dir(compiled, build_dir, build_dir / bake_name)
    outcomes = run_bake(compiled, build_dir / bake_name, run, say)
    failed = sorted(
        name for name, outcome in outcomes.items() if outcome.status in ("failed", "parent_error")
    )
    if failed:
        raise BuildFailed(failed)
    return outcomes


def exported_digests(compiled: Compiled, build_dir: Path, name: str) -> dict[str, str]:
    """platform -> manifest digest of an image the bake exported into the OCI layout."""
    with OciLayout(oci_layout(build_dir, compiled.request), layout_ref(compiled.request, name)) as image:
        return platform_digests(image)
