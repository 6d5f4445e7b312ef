"""`kbuild explain IMAGE`: every resolved field of an image with where it came from, and its
Dockerfile with each block annotated by the recipe or overlay that filled it.

For people only: the annotations go into a copy rendered for printing, never into what is built.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import fields, replace
from types import MappingProxyType
from typing import Any

from kbuild.compile.render import build_args, render
from kbuild.compile.select import Request, Selection, select
from kbuild.lang.values import Struct
from kbuild.model.catalog import BLOCKS, Catalog, ContextFile, Image, Origin

# The order fields are shown in: an image's own fields, then per-key fields by their field.
FIELDS = ("parent", "description", "user", "packages", "binary", "source", "files", "blocks")
FIELDS += ("env", "labels", "disable")
SCALARS = ("parent", "description", "user", "source")


def explain(catalog: Catalog, request: Request, name: str) -> dict[str, Any]:
    """The explanation of one image for one request, as plain data (the `--json` form)."""
    image = catalog.images[name]
    selection = select(catalog, replace(request, profiles=(), patterns=(f"^{re.escape(name)}$",)))
    alone = Selection(
        (name,), (name,), {}, platforms={name: selection.platforms.get(name, request.platforms)}
    )
    dockerfile = _dockerfile(catalog, alone, request, image)
    annotated = replace(image, blocks=MappingProxyType(annotated_blocks(image)))
    return {
        "image": name,
        "variant": request.variant,
        "declared": str(image.location),
        "via": [str(location) for location in image.via],
        "overlays": sorted({o.overlay for chain in image.origins.values() for o in chain if o.overlay}),
        "built": name not in selection.excluded,
        "excluded": selection.excluded.get(name),
        "platforms": list(selection.platforms.get(name, request.platforms)),
        "fields": {key: _field(image, key) for key in _keys(image)},
        "dockerfile": dockerfile,
        "annotated_dockerfile": _dockerfile(catalog, alone, request, annotated),
    }


def annotated_blocks(image: Image) -> dict[str, tuple[str, ...]]:
    """Each block's lines, each run of them under a comment naming where it was written."""
    out: dict[str, tuple[str, ...]] = {}
    for block in BLOCKS:
        runs: list[Origin] = []
        for origin in image.origins.get(f"blocks[{block}]", ()):
            runs = [*runs, origin] if origin.action == "appended" else [origin]
        out[block] = tuple(
            line
            for origin in runs
            for line in (f"# --- block {block} ({_source(origin)}) ---", *origin.value)
        )
    return out


def text(explained: Mapping[str, Any]) -> str:
    """The explanation as people read it."""
    lines = [f"{explained['image']} for {explained['variant']} on {', '.join(explained['platforms'])}"]
    via = f", via {', '.join(explained['via'])}" if explained["via"] else ""
    lines.append(f"  declared at {explained['declared']}{via}")
    if explained["overlays"]:
        lines.append(f"  changed by overlay {', '.join(explained['overlays'])}")
    if not explained["built"]:
        lines.append(f"  not built: {explained['excluded']}")
    lines.append("")
    for key, item in explained["fields"].items():
        lines.append(f"{key} = {_show(item['value'])}")
        for origin in item["origins"] or [{"location": "", "action": "default"}]:
            replaced = origin["action"] == "replaced" or (
                origin["action"] == "set" and origin["previous"] is not None
            )
            was = f" (was {_show(origin['previous'])})" if replaced else ""
            given = f" {_show(origin['value'])}" if origin["action"] not in ("declared", "default") else ""
            overlay = f"  [overlay {origin['overlay']}]" if origin.get("overlay") else ""
            lines.append(f"    {origin['action']}{given}{was}  {origin['location']}{overlay}".rstrip())
    lines += ["", "# --- Dockerfile, annotated (the rendered one has no '# --- block' lines) ---"]
    return "\n".join(lines) + "\n" + explained["annotated_dockerfile"]


def _dockerfile(catalog: Catalog, selection: Selection, request: Request, image: Image) -> str:
    copy = replace(catalog, images=MappingProxyType({**catalog.images, image.name: image}))
    rendered = render(copy, selection, request, build_args(catalog.settings))
    return next(t.dockerfile for t in rendered.targets if t.name == image.name)


def _keys(image: Image) -> list[str]:
    """The fields worth showing: every scalar, and every key any step set."""
    keys = set(SCALARS) | set(image.origins)
    return sorted(keys, key=lambda k: (FIELDS.index(k.split("[", 1)[0]), k))


def _field(image: Image, key: str) -> dict[str, Any]:
    name, _, item = key.partition("[")
    item = item.removesuffix("]")
    if not item:
        value = getattr(image, name)
    elif name == "disable":
        value = item in image.disabled
    elif name == "files":
        value = next((f.source for f in image.files.values() if f.destination == item), None)
    else:
        value = getattr(image, name).get(item)
    return {"value": plain(value), "origins": [_origin(o) for o in image.origins.get(key, ())]}


def _origin(origin: Origin) -> dict[str, Any]:
    return {
        "location": str(origin.location),
        "overlay": origin.overlay,
        "action": origin.action,
        "value": plain(origin.value),
        "previous": plain(origin.previous),
    }


def _source(origin: Origin) -> str:
    where = f"{origin.action} at {origin.location}"
    return f"overlay {origin.overlay}, {where}" if origin.overlay else where


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def plain(value: Any) -> Any:
    """A value as JSON has it: helper structs as dicts of their fields."""
    if isinstance(value, (Struct, ContextFile)):
        return {
            "kind": getattr(value, "kind", "file"),
            **{f.name: plain(getattr(value, f.name)) for f in fields(value)},
        }
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
