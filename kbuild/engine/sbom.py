"""An SPDX 2.3 document per image and platform, from what the image really contains (the
package database and pip report its probe read back), published next to the image as an OCI
artifact whose `subject` is the image's index: the image's digest does not change.

Registries with the OCI 1.1 referrers API list it under the image; every registry finds it by
the tag `kbuild-sbom-<content hash>`. The documents are deterministic (dated SOURCE_DATE_EPOCH,
named by the image's digest), so the same image always gets the same SBOM.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kbuild.compile.names import repository, sbom_tag
from kbuild.compile.pipeline import Compiled
from kbuild.engine import registry
from kbuild.engine.files import write_atomic
from kbuild.engine.probes import Probed, read_probes
from kbuild.engine.publish import Published, tag_digest
from kbuild.errors import KbuildError

SPDX_MEDIA_TYPE = "application/spdx+json"
EMPTY_CONFIG = {
    "mediaType": "application/vnd.oci.empty.v1+json",
    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    "size": 2,
}


def document(compiled: Compiled, image: str, platform: str, digest: str, probed: Probed) -> dict[str, Any]:
    """The SPDX 2.3 document of one image for one platform (`digest`: that platform's manifest)."""
    request = compiled.request
    family = compiled.catalog.distros[request.distro].family
    arch = compiled.catalog.platforms[platform].arch[family]
    created = datetime.fromtimestamp(int(compiled.rendered.args["SOURCE_DATE_EPOCH"]), UTC)
    packages = [
        _package(
            f"{family}-{name}", name, version, f"pkg:{family}/{request.distro}/{name}@{version}?arch={arch}"
        )
        for name, version in sorted(probed.installed.get(image, {}).get(platform, {}).items())
    ]
    for line in sorted(probed.pip.get(image, {}).get(platform, ())):
        name, _, rest = line.partition("==")
        version = rest.split()[0] if rest else "NOASSERTION"
        packages.append(_package(f"pypi-{name}", name, version, f"pkg:pypi/{name.lower()}@{version}"))
    root = f"SPDXRef-image-{image}"
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{image} {platform}",
        "documentNamespace": f"https://kbuild.invalid/spdx/{image}/{digest.replace(':', '-')}",
        "creationInfo": {"created": created.strftime("%Y-%m-%dT%H:%M:%SZ"), "creators": ["Tool: kbuild"]},
        "documentDescribes": [root],
        "packages": [
            {
                "SPDXID": root,
                "name": image,
                "versionInfo": digest,
                "downloadLocation": "NOASSERTION",
                "primaryPackagePurpose": "CONTAINER",
                "filesAnalyzed": False,
                "externalRefs": [
                    {
                        "referenceCategory": "PACKAGE-MANAGER",
                        "referenceType": "purl",
                        "referenceLocator": f"pkg:oci/{image}@{digest.replace(':', '%3A')}",
                    }
                ],
            },
            *packages,
        ],
        "relationships": [
            {"spdxElementId": root, "relationshipType": "CONTAINS", "relatedSpdxElement": p["SPDXID"]}
            for p in packages
        ],
    }


def _package(spdx_id: str, name: str, version: str, purl: str) -> dict[str, Any]:
    return {
        "SPDXID": "SPDXRef-" + "".join(c if c.isalnum() or c in ".-" else "-" for c in spdx_id),
        "name": name,
        "versionInfo": version,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "externalRefs": [
            {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl}
        ],
    }


def write_documents(
    compiled: Compiled, image: str, platforms: Mapping[str, str], probed: Probed, build_dir: Path
) -> dict[str, bytes]:
    """platform -> the SPDX JSON bytes, also written to `sbom/<variant>/<image>/` in the build dir."""
    out = {}
    for platform, digest in sorted(platforms.items()):
        data = (json.dumps(document(compiled, image, platform, digest, probed), indent=2) + "\n").encode()
        path = (
            build_dir / "sbom" / compiled.request.variant / image / f"{platform.replace('/', '_')}.spdx.json"
        )
        write_atomic(path, data)
        out[platform] = data
    return out


def push_documents(compiled: Compiled, image: str, index_digest: str, documents: Mapping[str, bytes]) -> str:
    """Publish the documents as one OCI artifact about the image's index; returns its digest."""
    request = compiled.request
    repo = repository(request, image).partition("/")[2]
    index, media_type = registry.fetch_manifest(request.registry, repo, index_digest)
    registry.put_blob(request.registry, repo, b"{}")
    layers = [
        {
            "mediaType": SPDX_MEDIA_TYPE,
            "digest": registry.put_blob(request.registry, repo, data),
            "size": len(data),
            "annotations": {
                "org.opencontainers.image.title": f"{image}-{platform.replace('/', '_')}.spdx.json"
            },
        }
        for platform, data in sorted(documents.items())
    ]
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": SPDX_MEDIA_TYPE,
        "config": EMPTY_CONFIG,
        "layers": layers,
        "subject": {"mediaType": media_type, "digest": index_digest, "size": len(index)},
    }
    body = json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode()
    tag = sbom_tag(compiled.plan.hashes[image])
    return registry.put_manifest(request.registry, repo, tag, body, manifest["mediaType"])


def publish_sboms(
    compiled: Compiled,
    published: Mapping[str, Published],
    build_dir: Path,
    push: bool,
    say: Callable[[str], None],
) -> dict[str, dict[str, Any]]:
    """image -> its SBOM in the manifest: `ref` (the artifact in the registry, when pushed) and
    each platform's document digest. Built images get theirs now; a found image keeps the one
    published with it."""
    built = {name for name, item in published.items() if item.status == "built"}
    probed = read_probes(compiled, build_dir, built)

    def one(name: str) -> tuple[str, dict[str, Any] | None]:
        item, request = published[name], compiled.request
        repo = repository(request, name).partition("/")[2]
        try:
            if item.status == "built":
                documents = write_documents(compiled, name, item.platforms, probed, build_dir)
                entry: dict[str, Any] = {
                    "documents": {p: "sha256:" + hashlib.sha256(d).hexdigest() for p, d in documents.items()}
                }
                if push:
                    digest = push_documents(compiled, name, item.digest, documents)
                    entry["ref"] = f"{request.registry}/{repo}@{digest}"
                return name, entry
            if item.status == "cached" and push:
                tag = sbom_tag(compiled.plan.hashes[name])
                found = tag_digest(compiled.plan.found[name], request.registry, repo, tag)
                return name, {"ref": f"{request.registry}/{repo}@{found}"} if found else None
        except (OSError, KbuildError) as error:  # the image is published; say what is missing
            say(f"[yellow]no SBOM for {name}:[/] {error}")
        return name, None

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, published))
    return {name: entry for name, entry in results if entry is not None}
