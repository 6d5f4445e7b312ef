"""Images as OCI documents, from an OCI archive or a registry: one reader for each, both behind
`ImageSource`. Manifests and configs are small and verified against their digests; layers are
streamed, never held in memory. No Docker calls here.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import urllib.error
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

from kbuild.engine import registry
from kbuild.engine.registry import INDEX_TYPES, is_attestation, platform_name, split_ref
from kbuild.errors import KbuildError

_CHUNK = 1 << 20
REF_NAME = "org.opencontainers.image.ref.name"


class ImageDiffError(KbuildError):
    """An image cannot be read at all (missing archive, unreachable registry, malformed JSON)."""


class ImageSource(Protocol):
    """Where an image index comes from. Manifests and configs are small; layers are streamed."""

    name: str

    def index_digest(self) -> str:
        """Digest of the top-level image index (or manifest, for a single-platform image)."""
        ...

    def blob(self, digest: str) -> bytes:
        """A manifest, index or config, verified against its digest."""
        ...

    def open_layer(self, digest: str) -> AbstractContextManager[BinaryIO]:
        """A layer blob as it is stored (compressed), readable front to back."""
        ...


# ---------------------------------------------------------------------------------------------
# Sources


def _verified(digest: str, data: bytes, where: str) -> bytes:
    """Small blobs are checked: a corrupt manifest must not be reported as an image difference."""
    algorithm, _, expected = digest.partition(":")
    if algorithm != "sha256":
        raise ImageDiffError(f"{where}: unsupported digest algorithm in {digest}")
    if hashlib.sha256(data).hexdigest() != expected:
        raise ImageDiffError(f"{where}: content of {digest} does not match its digest")
    return data


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class OciArchive:
    """An OCI image layout in a tar file, as written by buildx's `type=oci` exporter.

    The outer tar is uncompressed, so blobs are read with random access (`extractfile`).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.name = str(path)
        try:
            self._tar = tarfile.open(self.path)  # noqa: SIM115 - closed by close() / __exit__
        except (OSError, tarfile.TarError) as error:
            raise ImageDiffError(f"cannot open OCI archive {self.path}: {error}") from error
        # Member names sometimes start with "./" (tar -C dir .): index by normalized name.
        self._members = {normalize(m.name): m for m in self._tar.getmembers() if m.isfile()}
        self._index_digest: str | None = None

    def close(self) -> None:
        self._tar.close()

    def __enter__(self) -> OciArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, name: str) -> bytes:
        member = self._members.get(name)
        if member is None:
            raise ImageDiffError(f"{self.name}: no {name} in the OCI archive")
        handle = self._tar.extractfile(member)
        assert handle is not None  # regular files always have a handle
        with handle:
            return handle.read()

    def index_digest(self) -> str:
        if self._index_digest is None:
            layout = load_json(self._read("index.json"), f"{self.name}: index.json")
            manifests = layout.get("manifests", [])
            if len(manifests) != 1:
                # Several roots would make "the image" ambiguous; buildx always writes exactly one.
                raise ImageDiffError(
                    f"{self.name}: index.json lists {len(manifests)} manifests, expected exactly one"
                )
            self._index_digest = str(manifests[0]["digest"])
        return self._index_digest

    def _blob_name(self, digest: str) -> str:
        algorithm, _, hexdigest = digest.partition(":")
        return f"blobs/{algorithm}/{hexdigest}"

    def blob(self, digest: str) -> bytes:
        return _verified(digest, self._read(self._blob_name(digest)), self.name)

    @contextmanager
    def open_layer(self, digest: str) -> Iterator[BinaryIO]:
        member = self._members.get(self._blob_name(digest))
        if member is None:
            raise ImageDiffError(f"{self.name}: layer {digest} is missing from the OCI archive")
        handle = self._tar.extractfile(member)
        assert handle is not None
        with handle:
            yield cast(BinaryIO, handle)  # an ExFileObject: a seekable BufferedReader


class OciLayout:
    """One image of an OCI image layout directory that several images share (buildx's
    `type=oci,tar=false` exporter: a blob common to many images is written once). The image is
    the index.json entry whose `org.opencontainers.image.ref.name` is `ref`."""

    def __init__(self, path: str | os.PathLike[str], ref: str) -> None:
        self.path = Path(path)
        self.ref = ref
        self.name = f"{self.path}:{ref}"
        self._index_digest: str | None = None

    def close(self) -> None:
        """Nothing to release; here so every source is used alike."""

    def __enter__(self) -> OciLayout:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def index_digest(self) -> str:
        if self._index_digest is None:
            try:
                data = (self.path / "index.json").read_bytes()
            except OSError as error:
                raise ImageDiffError(f"cannot read the OCI layout {self.path}: {error}") from error
            entries = load_json(data, f"{self.path}/index.json").get("manifests", [])
            digests = [e["digest"] for e in entries if e.get("annotations", {}).get(REF_NAME) == self.ref]
            if not digests:
                raise ImageDiffError(f"{self.path}: the OCI layout has no image named {self.ref}")
            self._index_digest = str(digests[-1])
        return self._index_digest

    def _blob_path(self, digest: str) -> Path:
        algorithm, _, hexdigest = digest.partition(":")
        return self.path / "blobs" / algorithm / hexdigest

    def blob(self, digest: str) -> bytes:
        try:
            data = self._blob_path(digest).read_bytes()
        except OSError as error:
            raise ImageDiffError(f"{self.name}: blob {digest} is missing from the OCI layout") from error
        return _verified(digest, data, self.name)

    @contextmanager
    def open_layer(self, digest: str) -> Iterator[BinaryIO]:
        try:
            handle = self._blob_path(digest).open("rb")
        except OSError as error:
            raise ImageDiffError(f"{self.name}: layer {digest} is missing from the OCI layout") from error
        with handle:
            yield handle

    def write_archive(self, out: BinaryIO) -> None:
        """This image alone as an OCI archive (what `docker load` reads), streamed to `out`."""
        digest = self.index_digest()
        index = json.dumps({"schemaVersion": 2, "manifests": [{
            "mediaType": load_json(self.blob(digest), self.name).get("mediaType", registry.INDEX_TYPES[0]),
            "digest": digest, "size": self._blob_path(digest).stat().st_size,
            "annotations": {REF_NAME: self.ref}}]}).encode()  # fmt: skip
        with tarfile.open(fileobj=out, mode="w|") as archive:
            for name, data in (("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index)):
                member = tarfile.TarInfo(name)
                member.size = len(data)
                archive.addfile(member, io.BytesIO(data))
            for blob in sorted(self.closure(digest)):
                archive.add(self._blob_path(blob), f"blobs/{blob.replace(':', '/')}", recursive=False)

    def closure(self, digest: str) -> set[str]:
        """Every blob an index or manifest reaches, itself included."""
        found = {digest}
        document = load_json(self.blob(digest), self.name)
        for child in document.get("manifests", []):
            found |= self.closure(child["digest"])
        for layer in [document.get("config"), *document.get("layers", [])]:
            if layer:
                found.add(layer["digest"])
        return found


class RegistryImage:
    """An image in a registry, read over the HTTP API v2 with urllib (no auth, no Docker).

    `ref` is `host[:port]/repo@sha256:...` or `host[:port]/repo[:tag]`. Localhost registries are
    spoken to over plain http, everything else over https.
    """

    def __init__(self, ref: str, timeout: float = 60.0) -> None:
        self.name = ref
        self.registry, self.repository, self.reference = parse_reference(ref)
        self.timeout = timeout
        self._manifests: dict[str, bytes] = {}
        self._index_digest: str | None = None

    def close(self) -> None:
        """Nothing to release (one connection per request); here so both sources are used alike."""

    def __enter__(self) -> RegistryImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fetch(self, kind: str, reference: str, fetch: Any) -> Any:
        """Ask the registry, turning its failures into a readable error."""
        url = registry.api_url(self.registry, f"{self.repository}/{kind}/{reference}")
        try:
            return fetch(self.registry, self.repository, reference, timeout=self.timeout)
        except urllib.error.HTTPError as error:
            raise ImageDiffError(f"{self.name}: GET {url}: HTTP {error.code} {error.reason}") from error
        except (urllib.error.URLError, OSError) as error:
            raise ImageDiffError(f"{self.name}: GET {url}: {error}") from error

    def _manifest(self, reference: str) -> bytes:
        return self._fetch("manifests", reference, registry.fetch_manifest)[0]

    def index_digest(self) -> str:
        if self._index_digest is None:
            data = self._manifest(self.reference)
            # For a tag, the digest is that of the exact bytes served (what a pull by digest gets).
            digest = self.reference if self.reference.startswith("sha256:") else _sha256(data)
            self._manifests[digest] = _verified(digest, data, self.name)
            self._index_digest = digest
        return self._index_digest

    def blob(self, digest: str) -> bytes:
        if digest in self._manifests:
            return self._manifests[digest]
        try:
            data = self._fetch("blobs", digest, registry.fetch_blob)
        except ImageDiffError:
            # Manifests are not guaranteed to be served from /blobs/: ask the manifests endpoint.
            data = self._manifest(digest)
        return _verified(digest, data, self.name)

    @contextmanager
    def open_layer(self, digest: str) -> Iterator[BinaryIO]:
        # Read straight from the socket: tarfile's stream mode needs no seeking, and nothing is
        # written to disk. BufferedReader adds peek(), used to sniff the compression.
        with self._fetch("blobs", digest, registry.open_blob) as response:
            yield io.BufferedReader(response, _CHUNK)


def parse_reference(ref: str) -> tuple[str, str, str]:
    """`host[:port]/repo[:tag][@digest]` -> (registry, repository, tag or digest)."""
    if "/" not in ref or not ref.partition("/")[2]:
        raise ImageDiffError(f"{ref}: expected host[:port]/repository[:tag|@sha256:...]")
    return split_ref(ref)


def open_source(spec: str | os.PathLike[str]) -> OciArchive | RegistryImage:
    """An existing file is an OCI archive; anything else is a registry reference."""
    if os.path.isfile(spec):
        return OciArchive(spec)
    return RegistryImage(os.fspath(spec))


# ---------------------------------------------------------------------------------------------
# Report


def image_label(source: ImageSource, key: str) -> str | None:
    """A label of the image's config (of its first platform, for an index: kbuild gives every
    platform the same labels); no layer is read."""
    document = load_json(source.blob(source.index_digest()), source.name)
    if document.get("mediaType") in INDEX_TYPES or "manifests" in document:
        entries = [entry for entry in document.get("manifests", []) if not is_attestation(entry)]
        if not entries:
            return None
        document = load_json(source.blob(entries[0]["digest"]), source.name)
    config = load_json(source.blob(document["config"]["digest"]), source.name)
    labels = (config.get("config") or {}).get("Labels") or {}
    return labels.get(key)


def platform_digests(source: ImageSource) -> dict[str, str]:
    """platform -> the digest of its image (attestations left out); no layer is read."""
    digest = source.index_digest()
    document = load_json(source.blob(digest), source.name)
    if document.get("mediaType") in INDEX_TYPES or "manifests" in document:
        return index_platforms(document)
    config = load_json(source.blob(document["config"]["digest"]), source.name)
    return {platform_name(config): digest}


def index_platforms(index: Mapping[str, Any]) -> dict[str, str]:
    """platform -> manifest digest of an image index, attestation manifests left out."""
    out = {}
    for entry in index.get("manifests", []):
        if not is_attestation(entry):
            out[platform_name(entry.get("platform", {}))] = entry["digest"]
    return dict(sorted(out.items()))


def load_json(data: bytes, where: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except ValueError as error:
        raise ImageDiffError(f"{where}: not JSON: {error}") from error
    if not isinstance(document, dict):
        raise ImageDiffError(f"{where}: expected a JSON object")
    return document


def normalize(name: str) -> str:
    """A tar member's path without `./` prefixes or slashes at either end."""
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/").rstrip("/") or "."
