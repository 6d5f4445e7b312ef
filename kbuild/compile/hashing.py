"""Stage "hash": rendered images -> the content hash of each one's inputs.

An image's hash is sha256 over a canonical serialisation of everything that can change its bytes:
its rendered Dockerfile (which carries the lock's pins), the digests and modes of its context
files, its parent's hash (or the pinned reference of an upstream root), its platforms, its labels
and build arguments, the renderer's version, and for a root made locally what its tarballs are
made from. The registry, namespace and tag are not inputs: renaming an image never rebuilds it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from kbuild.compile.names import PinnedImage, TargetRef
from kbuild.compile.render import RENDERER_VERSION, Rendered
from kbuild.model.schemas import Debootstrap


def content_hashes(
    rendered: Rendered, extra: Mapping[str, str] | None = None, platforms: bool = True
) -> dict[str, str]:
    """target name -> `sha256:<hex>`, parents before children. `extra` adds facts the rendering
    does not show (what a debootstrap root's tarballs are made from). Without `platforms`, the
    hash is the same for any set of platforms (what a lock entry, pinned per platform, records)."""
    hashes: dict[str, str] = {}
    for item in rendered.targets:
        match item.parent_ref:
            case TargetRef(name):
                parent = hashes[name]
            case PinnedImage() as pinned:
                parent = pinned.context
            case None:
                parent = ""
        facts = {
            "renderer": RENDERER_VERSION,
            "dockerfile": item.dockerfile,
            "files": {name: file_digest(path) for name, path in sorted(item.files.items())},
            "parent": parent,
            "platforms": sorted(item.platforms or rendered.request.platforms) if platforms else [],
            "labels": dict(sorted(item.labels.items())),
            "args": dict(sorted(rendered.args.items())),
            "extra": (extra or {}).get(item.name, ""),
        }
        canonical = json.dumps(facts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        hashes[item.name] = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    return hashes


def file_digest(path: Path) -> str:
    """sha256 of a context file, plus its executable bit (COPY keeps modes)."""
    return _file_digest(path, path.stat().st_mtime_ns, path.stat().st_size)


@cache
def _file_digest(path: Path, _mtime_ns: int, _size: int) -> str:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    executable = "x" if path.stat().st_mode & 0o111 else "-"
    return f"{executable}sha256:{digest}"


# Bump when the way a tarball is made changes its bytes.
ROOTFS_FORMAT = "2"


def rootfs_key(root: Debootstrap, mirror: str, release: str, arch: str, epoch: int) -> str:
    """What a debootstrap tarball is made from: part of the root's content hash and the key of
    its cache directory. `mirror` is the root's own or, without one, the host's."""
    facts = [
        release,
        arch,
        root.variant,
        ",".join(root.components),
        ",".join(root.include),
        mirror,
        str(epoch),
    ]
    return hashlib.sha256("\n".join(facts).encode()).hexdigest()[:16]
