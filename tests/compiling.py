"""Compiling a workspace in a test, with the selection options as keywords."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kbuild.compile.lock import Lock
from kbuild.compile.pipeline import Compiled
from kbuild.compile.select import SelectOptions
from kbuild.engine import host
from kbuild.engine.files import write_build_dir


def compile_workspace(
    root: Path,
    build_dir: Path,
    overlays: Sequence[Path] = (),
    *,
    lock: Lock | None = None,
    locked: bool = False,
    **selection: Any,
) -> Compiled:
    return host.compile_workspace(
        root, build_dir, SelectOptions(**selection), overlays, lock=lock, locked=locked
    )


def write_build(compiled: Compiled, build_dir: Path, bake_path: Path) -> None:
    write_build_dir(compiled, build_dir, bake_path)


def bake_json(compiled: Compiled) -> dict[str, Any]:
    return compiled.bake.to_json()
