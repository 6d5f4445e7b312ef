"""The build directory and kbuild's cache on disk: contexts, atomic writes, JSON."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kbuild.compile.names import context_dir, dockerfile_path, generation_dir, oci_layout
from kbuild.compile.pipeline import Compiled
from kbuild.compile.render import Rendered
from kbuild.compile.select import Request
from kbuild.errors import KbuildError
from kbuild.model.files import cache_dir


def roots_dir() -> Path:
    return cache_dir() / "roots"


# Generations of contexts kept per variant besides the newest: other bake files of the same
# build directory (`kbuild lock`'s) may still name one.
KEPT_GENERATIONS = 3


def write_build_dir(compiled: Compiled, build_dir: Path, bake_path: Path) -> None:
    """The build directory as a unit: a generation of contexts first, then the bake file that
    names it, atomically; then the oldest generations go. A bake file never names a generation
    that is partly written or gone. Callers hold `exclusive(build_dir)`."""
    generation = generation_dir(build_dir, compiled.request, compiled.bake.generation)
    trees = (compiled.catalog.root, *(compiled.catalog.root / o for o in compiled.catalog.overlays))
    write_contexts(compiled.rendered, build_dir, compiled.bake.generation, trees)
    oci_layout(build_dir, compiled.request).mkdir(parents=True, exist_ok=True)
    write_if_changed(bake_path, compiled.bake.dumps())
    os.utime(generation)  # the newest, for pruning
    older = sorted(
        (p for p in generation.parent.iterdir() if p.is_dir() and p != generation),
        key=lambda p: p.stat().st_mtime_ns,
        reverse=True,
    )
    for stale in older[KEPT_GENERATIONS:]:
        shutil.rmtree(stale, ignore_errors=True)


def remove_exported(build_dir: Path, request: Request) -> None:
    """The bake's OCI layout, once its images are published or compared: nothing reads it after."""
    shutil.rmtree(oci_layout(build_dir, request), ignore_errors=True)


@contextmanager
def exclusive(build_dir: Path) -> Iterator[None]:
    """Hold the build directory against a second kbuild writing into it at the same time."""
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".kbuild.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise KbuildError(
                f"{build_dir} is in use by another kbuild ({holder})",
                hint="wait for it to finish, or give this one its own --build-dir",
            ) from None
        handle.truncate(0)
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_contexts(rendered: Rendered, build_dir: Path, generation: str, trees: Sequence[Path]) -> None:
    """Write each target's Dockerfile and context files; unchanged files are left untouched.
    `trees`: the workspace and the overlay directories, the only places a context file may be."""
    request = rendered.request
    inside = tuple(tree.resolve() for tree in trees)
    for item in rendered.targets:
        directory = context_dir(build_dir, request, generation, item.name)
        directory.mkdir(parents=True, exist_ok=True)
        wanted = set(item.files)
        for stale in directory.iterdir():
            if stale.name not in wanted:
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        write_if_changed(dockerfile_path(build_dir, request, generation, item.name), item.dockerfile.encode())
        for name, source in item.files.items():
            data, mode = read_context_file(source, inside)
            destination = directory / name
            write_if_changed(destination, data)
            os.chmod(destination, mode)


def read_context_file(source: Path, trees: Sequence[Path]) -> tuple[bytes, int]:
    """A context file's bytes and permission bits, through one descriptor of a regular file
    whose real path is inside `trees`. The model checked the file when it read the recipes; a
    file, or a directory on its way, swapped for a symlink since cannot make kbuild copy
    something from outside (the descriptor's own path is what is checked, not the name)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(source.resolve(), flags)
    except OSError as error:
        raise KbuildError(f"context file {source} cannot be read: {error.strerror}") from None
    try:
        opened = Path(os.readlink(f"/proc/self/fd/{fd}"))
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or not any(opened.is_relative_to(tree) for tree in trees):
            raise KbuildError(
                f"context file {source} changed since the recipes were read: it is now {opened}",
                hint="a recipe reads only its own tree; run kbuild again once the files stay put",
            )
        with os.fdopen(os.dup(fd), "rb") as stream:
            return stream.read(), info.st_mode & 0o777
    finally:
        os.close(fd)


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write `data` unless the file holds it already (its time is kept); whether it wrote."""
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    write_atomic(path, data)
    return True


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
