"""The only ways the model reads the disk: a recipe may read its own tree and nothing else.

Every file a workspace names (a .kb file, a context file, a pip archive) is a regular file whose
real path, symlinks resolved, is inside its tree: the workspace, or the overlay directory it came
from. It is checked with stat before it is opened, so a FIFO, a device or a /proc file is never
read, and it is read with a size limit. Directories are walked without following symlinks, and
one that cannot be read is an error, never silently skipped.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

MAX_SOURCE_BYTES = 4 * 1024 * 1024  # a .kb file; the real catalogue's largest is a few kB
MAX_ARCHIVE_BYTES = 2 * 1024 * 1024 * 1024  # a pip archive, hashed in chunks
MAX_WALK_ENTRIES = 200_000  # files and directories in one tree walk
# Pseudo-filesystems: their files are not files, and walking them never ends well.
SPECIAL = tuple(Path(p) for p in ("/proc", "/sys", "/dev"))


class FileProblem(Exception):
    """A path that is not a readable regular file of its tree; the message says why, `hint` what
    to do."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def cache_dir() -> Path:
    """Where kbuild keeps what it makes once (debootstrap roots, parsed recipes), shared by every
    workspace and build directory: `KBUILD_CACHE_DIR`, else the XDG cache."""
    configured = os.environ.get("KBUILD_CACHE_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kbuild"


def parse_cache() -> Path | None:
    """The parsed-recipe cache (`KBUILD_PARSE_CACHE`: a directory, or `off`)."""
    configured = os.environ.get("KBUILD_PARSE_CACHE", "")
    if configured == "off":
        return None
    return Path(configured) if configured else cache_dir() / "parsed"


def checked_file(path: Path, tree: Path) -> Path:
    """`path`'s real location, once it is known to be a regular file inside `tree`."""
    if "\x00" in str(path):  # no file has such a name, and the OS would raise ValueError
        raise FileProblem("does not exist (its name holds a NUL character)")
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError:
        raise FileProblem("does not exist") from None
    except (OSError, RuntimeError) as error:  # RuntimeError: a symlink loop
        raise FileProblem(f"cannot be resolved: {getattr(error, 'strerror', None) or error}") from None
    if not real.is_relative_to(tree.resolve()):
        raise FileProblem(
            f"is a symlink to {real}, outside {tree}",
            "a recipe reads only its own tree; copy the file in instead of linking to it",
        )
    try:
        mode = os.stat(real).st_mode
    except OSError as error:
        raise FileProblem(f"cannot be read: {error.strerror}") from None
    if not stat.S_ISREG(mode):
        raise FileProblem(f"is not a regular file ({_kind(mode)})", "only regular files can be read")
    return real


def read_bytes(path: Path, tree: Path, limit: int = MAX_SOURCE_BYTES) -> bytes:
    """The contents of a regular file of `tree`, at most `limit` bytes."""
    real = checked_file(path, tree)
    try:
        with open(real, "rb") as stream:
            data = stream.read(limit + 1)
    except OSError as error:
        raise FileProblem(f"cannot be read: {error.strerror}") from None
    if len(data) > limit:
        raise FileProblem(f"is larger than {limit} bytes", "split it into smaller files")
    return data


def sha256_of(path: Path, tree: Path, limit: int = MAX_ARCHIVE_BYTES) -> str:
    """The sha256 of a regular file of `tree`, read in chunks, refused beyond `limit` bytes."""
    real = checked_file(path, tree)
    digest, size = hashlib.sha256(), 0
    try:
        with open(real, "rb") as stream:
            while chunk := stream.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    raise FileProblem(f"is larger than {limit} bytes")
                digest.update(chunk)
    except OSError as error:
        raise FileProblem(f"cannot be read: {error.strerror}") from None
    return digest.hexdigest()


def walk(directory: Path, suffix: str = "") -> Iterator[Path]:
    """The files under `directory` whose names end in `suffix`, sorted, symlinked directories not
    followed; an unreadable directory or a tree too large is a FileProblem."""
    count = 0

    def refuse(error: OSError) -> None:
        raise FileProblem(f"directory {error.filename} cannot be read: {error.strerror}")

    if not directory.is_dir():
        return
    for parent, directories, files in os.walk(directory, onerror=refuse):
        directories.sort()
        count += len(directories) + len(files)
        if count > MAX_WALK_ENTRIES:
            raise FileProblem(f"{directory} holds more than {MAX_WALK_ENTRIES} files")
        for name in sorted(files):
            if name.endswith(suffix):
                yield Path(parent, name)


def special(directory: Path) -> bool:
    """Whether `directory` (resolved) is a pseudo-filesystem such as /proc."""
    return any(directory == p or directory.is_relative_to(p) for p in SPECIAL)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a file"
