"""Stage "results": build outcomes and what was published -> build summary, per-image logs and
the image manifest.

The manifest is what deployment consumes: per image its tag, its index digest, the digest of
each platform's image, its content hash and its parent. Deployments run `ref@digest`, never the
mutable tag. Everything is written atomically: an interrupted build leaves the previous files.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kbuild.compile.pipeline import Compiled
from kbuild.engine.buildx import TargetOutcome
from kbuild.engine.files import dump_json, write_atomic, write_if_changed
from kbuild.engine.publish import Published

STATUSES = ("built", "cached", "failed", "parent_error", "unmatched")

# The version of the image manifest's format: deployments check it before they read on.
MANIFEST_VERSION = 1


def summary(
    compiled: Compiled,
    outcomes: Mapping[str, TargetOutcome],
    published: Mapping[str, Published],
    logs_dir: Path,
) -> dict[str, Any]:
    """Like kolla-build's --summary-json-file: built / cached / failed / parent_error / unmatched."""
    result: dict[str, list[dict[str, Any]]] = {status: [] for status in STATUSES}
    for name in compiled.selection.images:
        outcome = outcomes.get(name, TargetOutcome(name))
        status, error = outcome.status, outcome.error
        if name in published:
            status, error = published[name].status, published[name].error or error
        entry: dict[str, Any] = {"name": name, "hash": compiled.plan.hashes[name]}
        if status != "cached":
            entry |= {"seconds": round(outcome.seconds, 1), "log": str(logs_dir / f"{name}.log")}
        if error:
            entry["error"] = error
        result[status].append(entry)
    selection = compiled.selection
    selected = set(selection.images) | set(selection.excluded) | set(selection.unbuildable)
    result["unmatched"] = [{"name": n} for n in compiled.catalog.images if n not in selected]
    result["disabled"] = [{"name": n, "reason": why} for n, why in selection.excluded.items()]
    result["unbuildable"] = [{"name": n, "reason": why} for n, why in selection.unbuildable.items()]
    return {
        "variant": compiled.request.variant,
        "platforms": list(compiled.request.platforms),
        **result,
    }


def manifest(
    compiled: Compiled,
    published: Mapping[str, Published],
    pushed: bool,
    sboms: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    images: dict[str, Any] = {}
    for name in compiled.selection.images:
        item = published.get(name)
        if item is None or item.status == "failed":
            continue
        images[name] = {
            "ref": item.ref,
            "digest": item.digest,
            "pinned": f"{item.ref.rsplit(':', 1)[0]}@{item.digest}",
            "platforms": dict(item.platforms),
            "hash": compiled.plan.hashes[name],
            "status": item.status,
            "parent": compiled.catalog.images[name].parent,
        }
        if sboms and name in sboms:
            images[name]["sbom"] = dict(sboms[name])
    return {
        "manifest": MANIFEST_VERSION,
        "variant": compiled.request.variant,
        "distro": compiled.request.distro,
        "release": compiled.request.release,
        "type": compiled.request.type,
        "pushed": pushed,
        "images": images,
    }


def write_results(
    compiled: Compiled,
    outcomes: Mapping[str, TargetOutcome],
    published: Mapping[str, Published],
    build_dir: Path,
    pushed: bool,
    sboms: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    logs_dir = build_dir / "logs"
    for name, outcome in outcomes.items():
        write_if_changed(logs_dir / f"{name}.log", ("\n".join(outcome.log) + "\n").encode())
    report = summary(compiled, outcomes, published, logs_dir)
    image_manifest = manifest(compiled, published, pushed, sboms)
    write_if_changed(build_dir / "summary.json", dump_json(report))
    # One manifest per variant (what a multi-distro deployment picks from), and the last bake's
    # next to the summary, where `kbuild deploy` looks by default.
    as_json = dump_json(image_manifest)
    for directory in (build_dir / "manifests" / compiled.request.variant, build_dir):
        as_yaml = directory / "kbuild-manifest.yml"
        if write_if_changed(directory / "kbuild-manifest.json", as_json) or not as_yaml.is_file():
            write_atomic(as_yaml, _yaml(image_manifest))  # the same document as the JSON
    return report, image_manifest


def _yaml(document: Mapping[str, Any]) -> bytes:
    import yaml  # only when the manifest changed: a no-op bake does without

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's where PyYAML has it: faster
    return yaml.dump(document, Dumper=dumper, sort_keys=False).encode()
