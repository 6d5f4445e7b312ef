"""Stage "bake file": rendered images x plan -> the typed bake model, and its standard JSON.

The model is converted to JSON once, at the boundary (`BakeFile.to_json`). Only attributes that
buildx 0.13 knows are emitted (it silently ignores unknown ones), and every `${` is escaped as
`$${` because bake interpolates variables inside JSON strings too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kbuild.compile.names import (
    ParentRef,
    TargetRef,
    context_dir,
    dockerfile_path,
    image_ref,
    layout_ref,
    oci_layout,
    probe_dir,
    repository,
    target_name,
)
from kbuild.compile.plan import Plan
from kbuild.compile.render import Rendered, RenderedImage
from kbuild.compile.select import Request, Selection
from kbuild.errors import KbuildError

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


@dataclass(frozen=True)
class BakeOptions:
    roots_dir: Path = Path("roots")  # where debootstrap tarballs are kept, one directory per root key
    cache: str | None = None  # "registry" or "local:DIR": BuildKit's layer cache, shared
    no_cache: bool = False
    export: bool = True  # False: images stay in BuildKit's cache (`kbuild lock` only probes them)
    sbom: bool = False  # probe every image built, for its SBOM


@dataclass(frozen=True)
class BakeTarget:
    """One target: an image, a debootstrap root or a probe."""

    name: str  # the image's name (the bake target's name is `target_name(name)`)
    context: Path
    dockerfile: Path
    platforms: tuple[str, ...]
    args: Mapping[str, str]
    parent: tuple[str, ParentRef] | None = None  # (context name in FROM, where it comes from)
    tags: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    cache_from: tuple[str, ...] = ()
    cache_to: tuple[str, ...] = ()
    no_cache: bool = False

    @property
    def parent_target(self) -> str | None:
        """The image name of a parent built in the same bake."""
        return self.parent[1].name if self.parent and isinstance(self.parent[1], TargetRef) else None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "context": str(self.context),
            "dockerfile": str(self.dockerfile),
            "platforms": list(self.platforms),
            "args": dict(self.args),
        }
        if self.parent is not None:
            out["contexts"] = {self.parent[0]: self.parent[1].context}
        optional = {
            "tags": list(self.tags),
            "labels": dict(self.labels),
            "output": list(self.outputs),
            "cache-from": list(self.cache_from),
            "cache-to": list(self.cache_to),
        }
        out.update((key, value) for key, value in optional.items() if value)
        if self.cache_to and not self.cache_from:
            out["cache-from"] = []
        if self.no_cache:
            out["no-cache"] = True
        return out


@dataclass(frozen=True)
class BakeFile:
    targets: Mapping[str, BakeTarget]  # by image name, parents first
    groups: Mapping[str, tuple[str, ...]]  # group -> image names; `default` is what to bake
    generation: str  # the rendered contexts' generation (see rendered_generation)

    def to_json(self) -> dict[str, Any]:
        groups = {
            name: {"targets": [target_name(n) for n in members]} for name, members in self.groups.items()
        }
        targets = {target_name(name): target.to_json() for name, target in self.targets.items()}
        return escape({"group": groups, "target": targets})

    def dumps(self) -> bytes:
        return (json.dumps(self.to_json(), indent=2) + "\n").encode()


def bake_file(
    rendered: Rendered,
    selection: Selection,
    plan: Plan,
    build_dir: Path,
    options: BakeOptions,
) -> BakeFile:
    """The bake definition of what the plan builds. Paths are absolute, so it works from any
    directory; an image the plan found is named by digest in its children's contexts."""
    build_dir = build_dir.resolve()
    _check_target_names(rendered)
    generation = rendered_generation(plan)
    rewritten = _rewritten(rendered)
    targets = {
        item.name: _target(item, rendered, plan, build_dir, generation, options, item.name in rewritten)
        for item in rendered.targets
        if item.name in plan.to_bake
    }
    probes = [t.name for t in rendered.targets if t.probe and t.name in plan.to_bake]
    images = [n for n in selection.images if n in plan.to_bake]
    # Exported images are what is asked for, with their probes; unexported ones are only there
    # for their probes (`kbuild lock`).
    groups = {"default": tuple(images + probes if options.export else probes or images)}
    for profile, members in sorted(selection.groups.items()):
        chosen = tuple(n for n in members if n in plan.to_bake)
        if profile != "default" and chosen:
            groups[profile] = chosen
    return BakeFile(targets, groups, generation)


def _check_target_names(rendered: Rendered) -> None:
    """Two images whose names differ only where bake's target names cannot (`a.b`, `a_b`) would
    be one target: one silently dropped, its children built on the other."""
    seen: dict[str, RenderedImage] = {}
    for item in rendered.targets:
        other = seen.setdefault(target_name(item.name), item)
        if other is not item:
            raise KbuildError(
                f"images '{other.name}' and '{item.name}' would be the same bake target "
                f"'{target_name(item.name)}'",
                item.image.location if item.image else None,
                "rename one of them: bake target names have only [a-zA-Z0-9_-]",
                notes=[(f"'{other.name}' is declared here", other.image.location if other.image else None)],
            )


def _rewritten(rendered: Rendered) -> set[str]:
    """The images exported with their timestamps rewritten: those with a layer the clamping
    shell did not make (`RenderedImage.clamped`), and every image built on one of them."""
    rewritten: set[str] = set()
    for item in rendered.targets:  # parents first
        parent = item.parent_ref.name if isinstance(item.parent_ref, TargetRef) else None
        if not item.clamped or parent in rewritten:
            rewritten.add(item.name)
    return rewritten


def rendered_generation(plan: Plan) -> str:
    """Names the rendered contexts by their content (every target's content hash)."""
    digest = hashlib.sha256("\n".join(sorted(plan.hashes.values())).encode())
    return digest.hexdigest()[:16]


def _target(
    item: RenderedImage,
    rendered: Rendered,
    plan: Plan,
    build_dir: Path,
    generation: str,
    options: BakeOptions,
    rewrite: bool,
) -> BakeTarget:
    request = rendered.request
    directory = context_dir(build_dir, request, generation, item.name)
    parent = None
    if item.parent is not None and item.parent_ref is not None:
        ref = item.parent_ref
        found = plan.found.get(ref.name) if isinstance(ref, TargetRef) else None
        parent = (item.parent, found.pinned if found else ref)
    target = BakeTarget(
        item.name,
        options.roots_dir.resolve() / item.rootfs if item.rootfs else directory,
        dockerfile_path(build_dir, request, generation, item.name),
        tuple(item.platforms or request.platforms),
        dict(rendered.args),
        parent,
        no_cache=options.no_cache,
    )
    if item.probe:
        return replace(target, outputs=(f"type=local,dest={probe_dir(build_dir, request, item.name)}",))
    if item.image is None:
        return target  # a root is only ever a parent: bake builds it for its children, exports nothing
    if not options.export:
        return replace(target, outputs=("type=cacheonly",))
    # Every image goes into one layout directory, so the layers images share are written once.
    # Their timestamps were set when they were built (render.CLAMP); an image with a layer made
    # outside the clamping shell has all of its layers rewritten by the exporter instead.
    layout = f"type=oci,dest={oci_layout(build_dir, request)},tar=false,name={layout_ref(request, item.name)}"
    cache_from, cache_to = _cache(options.cache, request, item.name)
    return replace(
        target,
        tags=(image_ref(request, item.name),),
        labels={**item.labels, HASH_LABEL: plan.hashes[item.name]},
        outputs=(f"{layout},rewrite-timestamp=true" if rewrite else layout,),
        cache_from=cache_from,
        cache_to=cache_to,
    )


def _cache(cache: str | None, request: Request, image: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """BuildKit's layer cache for fleets: one cache per image, every layer (mode=max)."""
    if cache is None:
        return (), ()
    if cache == "registry":
        ref = f"{repository(request, image)}:kbuild-buildcache-{request.variant}"
        return (f"type=registry,ref={ref}",), (f"type=registry,ref={ref},mode=max",)
    directory = Path(cache.removeprefix("local:")).resolve() / request.variant / image
    cache_from = (f"type=local,src={directory}",) if (directory / "index.json").is_file() else ()
    return cache_from, (f"type=local,dest={directory},mode=max",)


def escape(value: Any) -> Any:
    """Escape bake's HCL templates, `${...}` interpolations and `%{...}` directives, in every
    string of a bake definition, keys included (bake evaluates them inside JSON too)."""
    if isinstance(value, str):
        return value.replace("${", "$${").replace("%{", "%%{")
    if isinstance(value, list):
        return [escape(v) for v in value]
    if isinstance(value, Mapping):
        return {escape(k): escape(v) for k, v in value.items()}
    return value
