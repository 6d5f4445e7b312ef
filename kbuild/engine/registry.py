"""A registry's HTTP API (distribution spec v2), just what kbuild needs, without pulling layers:
look a tag up, read manifests and configs, point a tag at a manifest, list repositories.

Loopback registries are spoken to over plain HTTP (as Docker does); every other over HTTPS.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from functools import cache
from typing import Any

from kbuild.engine.files import write_atomic
from kbuild.model.files import cache_dir

INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_ACCEPT = ", ".join(INDEX_TYPES + MANIFEST_TYPES)
TIMEOUT = 30


def split_ref(ref: str) -> tuple[str, str, str]:
    """`host[:port]/repo[:tag][@digest]` -> (registry, repository, digest, or tag, or `latest`)."""
    registry, _, rest = ref.partition("/")
    if "@" in rest:
        repository, _, reference = rest.partition("@")
        if ":" in repository.rsplit("/", 1)[-1]:
            repository = repository.rsplit(":", 1)[0]
    elif ":" in rest.rsplit("/", 1)[-1]:
        repository, _, reference = rest.rpartition(":")
    else:
        repository, reference = rest, "latest"
    return registry, repository, reference


def is_loopback(registry: str) -> bool:
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 or registry.startswith("[") else registry
    return host in ("localhost", "::1", "[::1]") or host.startswith("127.")


def api_url(registry: str, path: str) -> str:
    return f"{'http' if is_loopback(registry) else 'https'}://{registry}/v2/{path}"


class Response:
    """What a registry answered: status, headers and body (read in full; small documents only)."""

    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body


_connections = threading.local()


def request(
    method: str,
    registry: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> Response:
    """One request on this thread's kept-alive connection to `registry` (a no-op bake makes
    dozens of small ones: a new connection each would cost more than the request itself). A
    registry behind the environment's HTTPS proxy is asked through urllib, which speaks to it."""
    if _proxied(registry):
        asked = urllib.request.Request(api_url(registry, path), data=body, headers=dict(headers or {}),
                                       method=method)  # fmt: skip
        with urllib.request.urlopen(asked, timeout=timeout) as answer:
            return Response(answer.status, answer.headers, answer.read())
    pool: dict[tuple[str, float], http.client.HTTPConnection] = _connections.__dict__.setdefault("pool", {})
    for attempt in (1, 2):
        connection = pool.get((registry, timeout))
        if connection is None:
            kind = http.client.HTTPConnection if is_loopback(registry) else http.client.HTTPSConnection
            connection = pool[(registry, timeout)] = kind(registry, timeout=timeout)
        try:
            connection.request(method, f"/v2/{path}", body=body, headers=dict(headers or {}))
            response = connection.getresponse()
            data = response.read()
        except (http.client.HTTPException, ConnectionError) as error:
            # The registry closed a kept-alive connection: reconnect once.
            connection.close()
            del pool[(registry, timeout)]
            if attempt == 2:
                raise urllib.error.URLError(error) from error
            continue
        if response.will_close:
            connection.close()
            del pool[(registry, timeout)]
        if response.status >= 400:
            raise urllib.error.HTTPError(api_url(registry, path), response.status, response.reason,
                                         response.headers, None)  # fmt: skip
        return Response(response.status, response.headers, data)
    raise AssertionError("unreachable")


def _proxied(registry: str) -> bool:
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    return (
        not is_loopback(registry)
        and "https" in urllib.request.getproxies()
        and not (urllib.request.proxy_bypass(host))
    )


def manifest_digest(registry: str, repository: str, reference: str) -> str | None:
    """The digest a tag points at (a HEAD request), or None when there is no such tag."""
    try:
        response = request(
            "HEAD", registry, f"{repository}/manifests/{reference}", headers={"Accept": _ACCEPT}
        )
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise
    return response.headers.get("Docker-Content-Digest")


def fetch_manifest(
    registry: str, repository: str, reference: str, timeout: float = TIMEOUT
) -> tuple[bytes, str]:
    """A manifest's exact bytes and media type. One asked for by digest is kept on disk: it can
    never change, and a no-op bake reads every image's index."""
    by_digest = reference.startswith("sha256:")
    if by_digest:
        kept = _kept_manifest(reference)
        if kept is not None:
            return kept
    response = request("GET", registry, f"{repository}/manifests/{reference}", headers={"Accept": _ACCEPT},
                       timeout=timeout)  # fmt: skip
    body, media_type = response.body, response.headers.get("Content-Type", "").split(";")[0]
    if by_digest and media_type == _declared_type(body):
        _keep(reference, body)
    return body, media_type


# Manifests asked for by digest and small blobs (image configs) are kept on disk by digest: the
# bytes of a digest never change, and a no-op bake reads every image's index and config.
KEPT_BLOB_SIZE = 1 << 20


def _kept(digest: str) -> bytes | None:
    try:
        body = (cache_dir() / "documents" / digest.removeprefix("sha256:")).read_bytes()
    except OSError:
        return None
    return body if _sha256(body) == digest else None


def _keep(digest: str, body: bytes) -> None:
    if len(body) <= KEPT_BLOB_SIZE and _sha256(body) == digest:
        write_atomic(cache_dir() / "documents" / digest.removeprefix("sha256:"), body)


def _kept_manifest(digest: str) -> tuple[bytes, str] | None:
    body = _kept(digest)
    if body is None:
        return None
    media_type = _declared_type(body)
    return (body, media_type) if media_type else None


def _declared_type(body: bytes) -> str:
    """The media type a manifest declares in itself (OCI and Docker v2 documents do)."""
    try:
        document = json.loads(body)
    except ValueError:
        return ""
    return str(document.get("mediaType", "")) if isinstance(document, dict) else ""


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def open_blob(registry: str, repository: str, digest: str, timeout: float = TIMEOUT) -> Any:
    """A blob as a response to read from (the caller closes it): layers are streamed."""
    return urllib.request.urlopen(api_url(registry, f"{repository}/blobs/{digest}"), timeout=timeout)


def fetch_blob(registry: str, repository: str, digest: str, timeout: float = TIMEOUT) -> bytes:
    """A blob whole (a config, a document; layers are streamed with open_blob)."""
    kept = _kept(digest)
    if kept is not None:
        return kept
    body = request("GET", registry, f"{repository}/blobs/{digest}", timeout=timeout).body
    _keep(digest, body)
    return body


def put_tag(registry: str, repository: str, digest: str, tag: str) -> None:
    """Point `tag` at the manifest `digest` of the same repository: no blob moves."""
    body, media_type = fetch_manifest(registry, repository, digest)
    put_manifest(registry, repository, tag, body, media_type)


@cache
def repositories(registry: str) -> tuple[str, ...]:
    """Every repository of the registry (the `_catalog` API), or none where it is not offered."""
    found: list[str] = []
    path = "_catalog?n=1000"
    try:
        while path:
            with urllib.request.urlopen(api_url(registry, path), timeout=TIMEOUT) as response:
                found += json.loads(response.read()).get("repositories") or []
                link = response.headers.get("Link", "")
            path = link.split("<", 1)[1].split(">", 1)[0].removeprefix("/v2/") if "<" in link else ""
    except (urllib.error.URLError, OSError, ValueError):
        pass
    return tuple(found)


def is_attestation(descriptor: Mapping[str, Any]) -> bool:
    """BuildKit's provenance/SBOM manifests: platform unknown/unknown, or a reference annotation."""
    platform = descriptor.get("platform") or {}
    return platform.get("os") == "unknown" or "vnd.docker.reference.type" in (
        descriptor.get("annotations") or {}
    )


def platform_name(platform: Mapping[str, Any]) -> str:
    name = f"{platform.get('os')}/{platform.get('architecture')}"
    return f"{name}/{platform['variant']}" if platform.get("variant") else name


def put_blob(registry: str, repository: str, data: bytes) -> str:
    """Upload a blob (one monolithic PUT after starting an upload); returns its digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = urllib.request.Request(api_url(registry, f"{repository}/blobs/uploads/"), data=b"", method="POST")
    with urllib.request.urlopen(start, timeout=TIMEOUT) as response:
        location = response.headers["Location"]
    if location.startswith("/"):
        location = f"{'http' if is_loopback(registry) else 'https'}://{registry}{location}"
    separator = "&" if "?" in location else "?"
    upload = urllib.request.Request(
        f"{location}{separator}digest={digest}",
        data=data,
        method="PUT",
        headers={"Content-Type": "application/octet-stream"},
    )
    urllib.request.urlopen(upload, timeout=TIMEOUT).close()
    return digest


def put_manifest(registry: str, repository: str, reference: str, body: bytes, media_type: str) -> str:
    """Store a manifest under a tag (or its digest); returns its digest."""
    request(
        "PUT",
        registry,
        f"{repository}/manifests/{reference}",
        body=body,
        headers={"Content-Type": media_type},
    )
    return "sha256:" + hashlib.sha256(body).hexdigest()
