"""The compiler wired to this host: its Debian mirror and its cache of debootstrap roots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kbuild.compile.bake import BakeOptions
from kbuild.compile.lock import Lock
from kbuild.compile.pipeline import Compiled, compile_catalog
from kbuild.compile.select import SelectOptions
from kbuild.engine.files import roots_dir
from kbuild.engine.roots import host_mirror
from kbuild.model.workspace import load_catalog

NOTHING = SelectOptions()


def compile_workspace(
    root: Path,
    build_dir: Path,
    options: SelectOptions = NOTHING,
    overlays: Sequence[Path] = (),
    *,
    lock: Lock | None = None,
    locked: bool = False,
) -> Compiled:
    """Load a workspace and compile its selection, as `kbuild compile` does."""
    catalog = load_catalog(root, overlays)
    bake_options = BakeOptions(roots_dir=roots_dir())
    return compile_catalog(
        catalog, options, build_dir, host_mirror, lock=lock, locked=locked, bake_options=bake_options
    )
