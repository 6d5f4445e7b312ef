"""Stage 8: build outcomes -> build summary, per-image logs and the image manifest.

The manifest is what deployment consumes: per image its tag, its index digest, the digest of
each platform's image, and its parent. Deployments run `ref@digest`, never the mutable tag.
Everything is written atomically: an interrupted build leaves the previous files intact.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from kbuild.bakefile import dump_json, image_ref, target_name, write_atomic
from kbuild.build import TargetOutcome
from kbuild.pipeline import Compiled

INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)


def summary(compiled: Compiled, outcomes: Mapping[str, TargetOutcome], logs_dir: Path) -> dict[str, Any]:
    """Like kolla-build's --summary-json-file: built / failed / parent_error / unmatched."""
    result: dict[str, list[dict[str, Any]]] = {"built": [], "failed": [], "parent_error": [], "unmatched": []}
    for name in compiled.selection.images:
        outcome = outcomes[target_name(name)]
        entry: dict[str, Any] = {
            "name": name,
            "seconds": round(outcome.seconds, 1),
            "log": str(logs_dir / f"{name}.log"),
        }
        if outcome.error:
            entry["error"] = outcome.error
        result.setdefault(outcome.status, []).append(entry)
    selected = set(compiled.selection.images) | set(compiled.selection.excluded)
    result["unmatched"] = [{"name": n} for n in compiled.catalog.images if n not in selected]
    result["disabled"] = [{"name": n, "reason": why} for n, why in compiled.selection.excluded.items()]
    return {"variant": compiled.request.variant, "platforms": list(compiled.request.platforms), **result}


def manifest(compiled: Compiled, outcomes: Mapping[str, TargetOutcome], pushed: bool) -> dict[str, Any]:
    images: dict[str, Any] = {}
    for name in compiled.selection.images:
        outcome = outcomes[target_name(name)]
        if outcome.status != "built":
            continue
        ref = image_ref(compiled.request, name)
        digest = outcome.metadata.get("containerimage.digest")
        descriptor = outcome.metadata.get("containerimage.descriptor", {})
        platforms = (
            registry_platform_digests(ref, digest) if pushed and digest else _descriptor_platforms(descriptor)
        )
        images[name] = {
            "ref": ref,
            "digest": digest,
            "pinned": f"{ref.rsplit(':', 1)[0]}@{digest}" if digest else None,
            "platforms": platforms,
            "parent": compiled.catalog.images[name].parent,
        }
    return {
        "variant": compiled.request.variant,
        "distro": compiled.request.distro,
        "release": compiled.request.release,
        "type": compiled.request.type,
        "pushed": pushed,
        "images": images,
    }


def _descriptor_platforms(descriptor: Mapping[str, Any]) -> dict[str, str]:
    platform = descriptor.get("platform")
    if not platform or descriptor.get("mediaType") in INDEX_TYPES:
        return {}
    return {_platform_name(platform): descriptor["digest"]}


def registry_platform_digests(ref: str, digest: str) -> dict[str, str]:
    """Ask the registry (no layers pulled) for the per-platform manifests of an image."""
    registry, _, rest = ref.partition("/")
    repository = rest.rsplit(":", 1)[0]
    document, media_type = fetch_manifest(registry, repository, digest)
    if media_type in MANIFEST_TYPES:
        config = json.loads(fetch_blob(registry, repository, document["config"]["digest"]))
        return {_platform_name(config): digest}
    out = {}
    for entry in document.get("manifests", []):
        platform = entry.get("platform", {})
        if platform.get("os") == "unknown" or "vnd.docker.reference.type" in entry.get("annotations", {}):
            continue  # attestation manifests
        out[_platform_name(platform)] = entry["digest"]
    return dict(sorted(out.items()))


def fetch_manifest(registry: str, repository: str, reference: str) -> tuple[dict[str, Any], str]:
    request = urllib.request.Request(
        f"{_scheme(registry)}://{registry}/v2/{repository}/manifests/{reference}",
        headers={"Accept": ", ".join(INDEX_TYPES + MANIFEST_TYPES)},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        media_type = response.headers.get("Content-Type", "").split(";")[0]
        return json.loads(response.read()), media_type


def fetch_blob(registry: str, repository: str, digest: str) -> bytes:
    url = f"{_scheme(registry)}://{registry}/v2/{repository}/blobs/{digest}"
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def _scheme(registry: str) -> str:
    host = registry.split(":")[0]
    return "http" if host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.") else "https"


def _platform_name(platform: Mapping[str, Any]) -> str:
    name = f"{platform.get('os')}/{platform.get('architecture')}"
    return f"{name}/{platform['variant']}" if platform.get("variant") else name


def write_results(
    compiled: Compiled,
    outcomes: Mapping[str, TargetOutcome],
    build_dir: Path,
    pushed: bool,
) -> tuple[dict[str, Any], dict[str, Any]]:
    logs_dir = build_dir / "logs"
    for name, outcome in outcomes.items():
        write_atomic(logs_dir / f"{name}.log", ("\n".join(outcome.log) + "\n").encode())
    report = summary(compiled, outcomes, logs_dir)
    image_manifest = manifest(compiled, outcomes, pushed)
    write_atomic(build_dir / "summary.json", dump_json(report))
    write_atomic(build_dir / "kbuild-manifest.json", dump_json(image_manifest))
    write_atomic(build_dir / "kbuild-manifest.yml", yaml.safe_dump(image_manifest, sort_keys=False).encode())
    return report, image_manifest
