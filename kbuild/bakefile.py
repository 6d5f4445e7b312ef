"""Stage 6: rendered images -> a standard bake file, and the build directory it points at.

Only attributes that buildx 0.13 knows are emitted (it silently ignores unknown ones), and every
`${` is escaped as `$${` because bake interpolates variables inside JSON strings too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kbuild.render import Rendered, RenderedImage
from kbuild.select import Request, Selection

# The target attributes kbuild may emit: all known to buildx 0.13's bake.
TARGET_ATTRIBUTES = frozenset(
    {
        "context",
        "dockerfile",
        "contexts",
        "args",
        "labels",
        "tags",
        "platforms",
        "output",
        "attest",
        "cache-from",
        "cache-to",
        "pull",
        "no-cache",
    }
)


def target_name(image: str) -> str:
    """Bake target names allow [a-zA-Z0-9_-] only."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", image)


def image_ref(request: Request, image: str) -> str:
    repository = "/".join(part for part in (request.registry, request.namespace, image) if part)
    return f"{repository}:{request.tag}"


def context_dir(build_dir: Path, request: Request, name: str) -> Path:
    return build_dir / "contexts" / request.variant / name


def cache_dir() -> Path:
    """Where made-once artefacts (debootstrap roots) live, shared by every workspace and build dir."""
    configured = os.environ.get("KBUILD_CACHE_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kbuild"


def rootfs_dir(key: str) -> Path:
    return cache_dir() / "roots" / key


def bake_file(rendered: Rendered, selection: Selection, build_dir: Path) -> dict[str, Any]:
    """The bake definition as a dict. Paths are absolute, so it works from any directory."""
    request = rendered.request
    build_dir = build_dir.resolve()
    targets: dict[str, dict[str, Any]] = {}
    for item in rendered.targets:
        targets[target_name(item.name)] = _target(item, request, build_dir)
    groups = {"default": {"targets": [target_name(n) for n in selection.images]}}
    for profile, members in sorted(selection.groups.items()):
        if profile != "default":
            groups[profile] = {"targets": [target_name(n) for n in members]}
    return escape({"group": groups, "target": targets})


def _target(item: RenderedImage, request: Request, build_dir: Path) -> dict[str, Any]:
    directory = context_dir(build_dir, request, item.name)
    target: dict[str, Any] = {
        "context": str(rootfs_dir(item.rootfs) if item.rootfs else directory),
        "dockerfile": str(directory / "Dockerfile"),
        "platforms": list(item.platforms or request.platforms),
    }
    if item.parent is not None and item.parent_source is not None:
        source = item.parent_source
        if source.startswith("target:"):
            source = "target:" + target_name(source.removeprefix("target:"))
        target["contexts"] = {item.parent: source}
    if item.image is not None:
        target["tags"] = [image_ref(request, item.name)]
        target["labels"] = _oci_labels(item, request)
    return target


def _oci_labels(item: RenderedImage, request: Request) -> dict[str, str]:
    labels = {
        "org.opencontainers.image.title": item.name,
        "org.opencontainers.image.version": request.tag,
        "org.opencontainers.image.ref.name": image_ref(request, item.name),
        "org.opencontainers.image.vendor": "kbuild",
    }
    if item.image is not None and item.image.description:
        labels["org.opencontainers.image.description"] = item.image.description
    return labels


def escape(value: Any) -> Any:
    """Escape bake's `${...}` interpolation in every string of a bake definition."""
    if isinstance(value, str):
        return value.replace("${", "$${")
    if isinstance(value, list):
        return [escape(v) for v in value]
    if isinstance(value, Mapping):
        return {k: escape(v) for k, v in value.items()}
    return value


# --- writing ---------------------------------------------------------------------------------


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
