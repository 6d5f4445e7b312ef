"""The build directory and kbuild's cache on disk: contexts, atomic writes, JSON."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from kbuild.compile.names import context_dir, oci_archive
from kbuild.compile.pipeline import Compiled
from kbuild.compile.render import Rendered


def cache_dir() -> Path:
    """Where made-once artefacts (debootstrap roots) live, shared by every workspace and build dir."""
    configured = os.environ.get("KBUILD_CACHE_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kbuild"


def roots_dir() -> Path:
    return cache_dir() / "roots"


def write_build_dir(compiled: Compiled, build_dir: Path, bake_path: Path) -> None:
    """Contexts first, the bake file last and atomically: a bake file never names missing contexts."""
    write_contexts(compiled.rendered, build_dir)
    oci_archive(build_dir, compiled.request, "-").parent.mkdir(parents=True, exist_ok=True)
    write_atomic(bake_path, compiled.bake.dumps())


def write_contexts(rendered: Rendered, build_dir: Path) -> None:
    """Write each target's Dockerfile and context files; unchanged files are left untouched."""
    for item in rendered.targets:
        directory = context_dir(build_dir, rendered.request, item.name)
        directory.mkdir(parents=True, exist_ok=True)
        wanted = {"Dockerfile"} | set(item.files)
        for stale in directory.iterdir():
            if stale.name not in wanted:
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        write_if_changed(directory / "Dockerfile", item.dockerfile.encode())
        for name, source in item.files.items():
            data = source.read_bytes()
            destination = directory / name
            write_if_changed(destination, data)
            os.chmod(destination, source.stat().st_mode & 0o777)


def write_if_changed(path: Path, data: bytes) -> None:
    try:
        if path.read_bytes() == data:
            return
    except OSError:
        pass
    write_atomic(path, data)


def write_atomic(path: Path, data: bytes) -> None:
    """Write through a temporary file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def dump_json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=False) + "\n").encode()
