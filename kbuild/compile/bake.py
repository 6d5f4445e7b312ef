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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kbuild.compile.plan import Plan, image_ref, repository
from kbuild.compile.render import Rendered, RenderedImage
from kbuild.compile.select import Request, Selection

# The label that carries an image's content hash: it can be read from the registry (the config
# blob) without pulling a layer.
HASH_LABEL = "io.kbuild.content-hash"

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


def context_dir(build_dir: Path, request: Request, name: str) -> Path:
    return build_dir / "contexts" / request.variant / name


def oci_archive(build_dir: Path, request: Request, name: str) -> Path:
    """Where the OCI exporter writes an image before it is pushed or loaded."""
    return build_dir.resolve() / "oci" / request.variant / f"{name}.tar"


def probe_dir(build_dir: Path, request: Request, name: str) -> Path:
    return build_dir.resolve() / "probes" / request.variant / name


def cache_dir() -> Path:
    """Where made-once artefacts (debootstrap roots) live, shared by every workspace and build dir."""
    configured = os.environ.get("KBUILD_CACHE_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kbuild"


def rootfs_dir(key: str) -> Path:
    return cache_dir() / "roots" / key


@dataclass(frozen=True)
class BakeOptions:
    cache: str | None = None  # "registry" or "local:DIR": BuildKit's layer cache, shared
    no_cache: bool = False
    export: bool = True  # False: images stay in BuildKit's cache (`kbuild lock` only probes them)


DEFAULT_OPTIONS = BakeOptions()


def bake_file(
    rendered: Rendered,
    selection: Selection,
    plan: Plan,
    build_dir: Path,
    options: BakeOptions = DEFAULT_OPTIONS,
) -> dict[str, Any]:
    """The bake definition of what the plan builds. Paths are absolute, so it works from any
    directory; an image the plan found is named by digest in its children's contexts."""
    build_dir = build_dir.resolve()
    targets: dict[str, dict[str, Any]] = {}
    for item in rendered.targets:
        if item.name in plan.build:
            targets[target_name(item.name)] = _target(item, rendered, plan, build_dir, options)
    probes = [target_name(t.name) for t in rendered.targets if t.probe and t.name in plan.build]
    building = probes or [target_name(n) for n in selection.images if n in plan.build]
    groups = {"default": {"targets": building}}
    for profile, members in sorted(selection.groups.items()):
        chosen = [target_name(n) for n in members if n in plan.build]
        if profile != "default" and chosen:
            groups[profile] = {"targets": chosen}
    return escape({"group": groups, "target": targets})


def _target(
    item: RenderedImage, rendered: Rendered, plan: Plan, build_dir: Path, options: BakeOptions
) -> dict[str, Any]:
    request = rendered.request
    directory = context_dir(build_dir, request, item.name)
    target: dict[str, Any] = {
        "context": str(rootfs_dir(item.rootfs) if item.rootfs else directory),
        "dockerfile": str(directory / "Dockerfile"),
        "platforms": list(item.platforms or request.platforms),
        "args": dict(rendered.args),
    }
    if item.parent is not None and item.parent_source is not None:
        source = item.parent_source
        if source.startswith("target:"):
            parent = source.removeprefix("target:")
            found = plan.found.get(parent)
            source = found.context if found else "target:" + target_name(parent)
        target["contexts"] = {item.parent: source}
    if item.probe:
        target["output"] = [f"type=local,dest={probe_dir(build_dir, request, item.name)}"]
    elif item.image is None:
        pass  # a root is only ever a parent: bake builds it for its children and exports nothing
    elif not options.export:
        target["output"] = ["type=cacheonly"]
    else:
        target["tags"] = [image_ref(request, item.name)]
        target["labels"] = {**item.labels, HASH_LABEL: plan.hashes[item.name]}
        # The OCI exporter, unlike the engine's image exporter, can rewrite every file's timestamp
        # to SOURCE_DATE_EPOCH: what makes a layer the same bytes from build to build.
        archive = oci_archive(build_dir, request, item.name)
        target["output"] = [f"type=oci,dest={archive},rewrite-timestamp=true"]
        target.update(_cache(options.cache, request, item.name))
    if options.no_cache:
        target["no-cache"] = True
    return target


def _cache(cache: str | None, request: Request, image: str) -> dict[str, list[str]]:
    """BuildKit's layer cache for fleets: one cache per image, every layer (mode=max)."""
    if cache is None:
        return {}
    if cache == "registry":
        ref = f"{repository(request, image)}:kbuild-buildcache-{request.variant}"
        return {"cache-from": [f"type=registry,ref={ref}"], "cache-to": [f"type=registry,ref={ref},mode=max"]}
    directory = Path(cache.removeprefix("local:")).resolve() / request.variant / image
    cache_from = [f"type=local,src={directory}"] if (directory / "index.json").is_file() else []
    return {"cache-from": cache_from, "cache-to": [f"type=local,dest={directory},mode=max"]}


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
