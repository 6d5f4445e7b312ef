"""Compare two multi-platform images down to the files: what `kbuild verify` prints on a mismatch.

A rebuilt image should have the published digest. When it does not, a digest alone says nothing,
so this module walks both images top-down and only descends where digests differ: index ->
per-platform manifest -> config (JSON paths) and layers (by position) -> tar members (content
hash, mode, owner, mtime, link target, type). Equal digests are never opened, so comparing two
nearly identical images reads only the layers that actually differ.

Images come from an OCI archive or a registry (see oci.py). Layers are streamed (tarfile's `r|`
mode, members hashed chunk by chunk): they can be hundreds of MB and are never held in memory.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO, cast

from kbuild.engine.oci import (
    ImageSource,
    load_json,
    normalize,
)
from kbuild.engine.registry import INDEX_TYPES, is_attestation, platform_name

MAX_FILES = 50  # reported files per layer: beyond this, only a count (keeps `kbuild verify` readable)
MAX_CONFIG_PATHS = 50
_CHUNK = 1 << 20
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC = b"\x1f\x8b"


def _short(digest: str | None) -> str:
    if digest is None:
        return "-"
    algorithm, _, hexdigest = digest.partition(":")
    return f"{algorithm}:{hexdigest[:12]}"


@dataclass(frozen=True)
class FileDiff:
    """One path that differs inside a layer; `what` is e.g. ("content",) or ("mtime 1 != 2",)."""

    path: str
    what: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.path}: {', '.join(self.what)}"


@dataclass(frozen=True)
class LayerDiff:
    """A layer position whose digest differs (or that exists on one side only)."""

    index: int
    reference_digest: str | None
    candidate_digest: str | None
    reference_diff_id: str | None = None
    candidate_diff_id: str | None = None
    files: tuple[FileDiff, ...] = ()
    files_omitted: int = 0  # differing files beyond the cap
    note: str | None = None  # why there is no file list, or what else differs


@dataclass(frozen=True)
class PlatformDiff:
    """One platform (`os/arch[/variant]`); digests are None when a side lacks the platform."""

    platform: str
    reference_digest: str | None
    candidate_digest: str | None
    manifest_paths: tuple[str, ...] = ()  # manifest fields other than config/layers (annotations...)
    reference_config: str | None = None
    candidate_config: str | None = None
    config_paths: tuple[str, ...] = ()
    reference_layers: int = 0
    candidate_layers: int = 0
    layers: tuple[LayerDiff, ...] = ()

    @property
    def identical(self) -> bool:
        return self.reference_digest is not None and self.reference_digest == self.candidate_digest

    @property
    def config_differs(self) -> bool:
        return self.reference_config != self.candidate_config

    @property
    def layer_count_differs(self) -> bool:
        return self.reference_layers != self.candidate_layers


@dataclass(frozen=True)
class Report:
    reference: str
    candidate: str
    reference_index: str
    candidate_index: str
    platforms: tuple[PlatformDiff, ...]
    index_paths: tuple[str, ...] = ()  # index fields that differ besides the platform manifests
    attestations_differ: bool = False

    @property
    def index_equal(self) -> bool:
        return self.reference_index == self.candidate_index

    @property
    def identical(self) -> bool:
        return self.index_equal

    @property
    def differing_platforms(self) -> tuple[PlatformDiff, ...]:
        return tuple(p for p in self.platforms if not p.identical)

    def render(self) -> str:
        """What `kbuild verify` prints: one line when identical, else only what differs."""
        if self.identical:
            return f"identical: {self.reference} == {self.candidate} ({_short(self.reference_index)})"
        lines = [
            f"DIFFERENT: {self.reference} != {self.candidate}",
            f"  index {_short(self.reference_index)} != {_short(self.candidate_index)}",
        ]
        lines += [f"    {path}" for path in self.index_paths]
        if self.attestations_differ:
            lines.append("    attestation manifests differ")
        if not self.differing_platforms:
            lines.append("    every platform image is identical")
        for platform in self.platforms:
            lines += _render_platform(platform)
        return "\n".join(lines)


def _render_platform(p: PlatformDiff) -> list[str]:
    if p.identical:
        return [f"  {p.platform}: identical ({_short(p.reference_digest)})"]
    if p.reference_digest is None:
        return [f"  {p.platform}: only in candidate ({_short(p.candidate_digest)})"]
    if p.candidate_digest is None:
        return [f"  {p.platform}: only in reference ({_short(p.reference_digest)})"]
    lines = [f"  {p.platform}: manifest {_short(p.reference_digest)} != {_short(p.candidate_digest)}"]
    lines += [f"    manifest {path}" for path in p.manifest_paths]
    if p.config_differs:
        lines.append(f"    config {_short(p.reference_config)} != {_short(p.candidate_config)}")
        lines += [f"      {path}" for path in p.config_paths]
    if p.layer_count_differs:
        lines.append(f"    layer count {p.reference_layers} != {p.candidate_layers}")
    for layer in p.layers:
        head = (
            f"    layer {layer.index}: {_short(layer.reference_digest)} != {_short(layer.candidate_digest)}"
        )
        if layer.reference_diff_id != layer.candidate_diff_id:
            head += f" (diff_id {_short(layer.reference_diff_id)} != {_short(layer.candidate_diff_id)})"
        lines.append(head)
        if layer.note:
            lines.append(f"      {layer.note}")
        lines += [f"      {f}" for f in layer.files]
        if layer.files_omitted:
            lines.append(f"      ... and {layer.files_omitted} more files")
    return lines


# ---------------------------------------------------------------------------------------------
# Comparison


def compare(reference: ImageSource, candidate: ImageSource, *, max_files: int = MAX_FILES) -> Report:
    """Compare `candidate` (e.g. a fresh rebuild) against `reference` (e.g. the published image).

    Every difference is written `reference-value != candidate-value`, in argument order.
    """
    ref_index, cand_index = reference.index_digest(), candidate.index_digest()
    report = Report(reference.name, candidate.name, ref_index, cand_index, ())
    if ref_index == cand_index:
        return report  # one digest covers everything below it
    ref_doc = load_json(reference.blob(ref_index), f"{reference.name}: {ref_index}")
    cand_doc = load_json(candidate.blob(cand_index), f"{candidate.name}: {cand_index}")
    ref_platforms, ref_attest = _platforms(reference, ref_index, ref_doc)
    cand_platforms, cand_attest = _platforms(candidate, cand_index, cand_doc)
    index_paths: tuple[str, ...] = ()
    if _is_index(ref_doc) and _is_index(cand_doc):
        index_paths = json_diff(_without(ref_doc, "manifests"), _without(cand_doc, "manifests"))
    platforms = []
    for name in sorted(ref_platforms.keys() | cand_platforms.keys()):
        ref_digest, cand_digest = ref_platforms.get(name), cand_platforms.get(name)
        if ref_digest is None or cand_digest is None or ref_digest == cand_digest:
            platforms.append(PlatformDiff(name, ref_digest, cand_digest))
        else:
            platforms.append(
                _compare_platform(name, reference, ref_digest, candidate, cand_digest, max_files)
            )
    return Report(
        reference.name,
        candidate.name,
        ref_index,
        cand_index,
        tuple(platforms),
        index_paths=index_paths,
        attestations_differ=ref_attest != cand_attest,
    )


def _is_index(document: Mapping[str, Any]) -> bool:
    return document.get("mediaType") in INDEX_TYPES or "manifests" in document


def _without(document: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in keys}


def _platforms(
    source: ImageSource, digest: str, document: Mapping[str, Any]
) -> tuple[dict[str, str], tuple[str, ...]]:
    """Platform name -> manifest digest, and the attestation manifest digests set aside."""
    if not _is_index(document):
        # Single-platform image: the platform is only recorded in the config.
        config = load_json(source.blob(document["config"]["digest"]), f"{source.name}: config")
        return {platform_name(config): digest}, ()
    out: dict[str, str] = {}
    attestations = []
    for descriptor in document.get("manifests", []):
        if is_attestation(descriptor):
            attestations.append(descriptor["digest"])
            continue
        name = platform_name(descriptor.get("platform") or {})
        key, n = name, 1
        while key in out:  # the same platform twice is unusual but must not hide one of them
            n += 1
            key = f"{name} #{n}"
        out[key] = descriptor["digest"]
    return out, tuple(sorted(attestations))


def _compare_platform(
    name: str,
    reference: ImageSource,
    ref_digest: str,
    candidate: ImageSource,
    cand_digest: str,
    max_files: int,
) -> PlatformDiff:
    ref_manifest = load_json(reference.blob(ref_digest), f"{reference.name}: {name} manifest")
    cand_manifest = load_json(candidate.blob(cand_digest), f"{candidate.name}: {name} manifest")
    manifest_paths = json_diff(
        _without(ref_manifest, "config", "layers"), _without(cand_manifest, "config", "layers")
    )
    ref_config_digest = ref_manifest["config"]["digest"]
    cand_config_digest = cand_manifest["config"]["digest"]
    ref_config = load_json(reference.blob(ref_config_digest), f"{reference.name}: {name} config")
    cand_config = (
        ref_config
        if cand_config_digest == ref_config_digest
        else load_json(candidate.blob(cand_config_digest), f"{candidate.name}: {name} config")
    )
    config_paths = json_diff(ref_config, cand_config, limit=MAX_CONFIG_PATHS)
    ref_layers = ref_manifest.get("layers", [])
    cand_layers = cand_manifest.get("layers", [])
    ref_diff_ids = ref_config.get("rootfs", {}).get("diff_ids", [])
    cand_diff_ids = cand_config.get("rootfs", {}).get("diff_ids", [])
    layers = []
    for i in range(max(len(ref_layers), len(cand_layers))):
        ref_layer = ref_layers[i] if i < len(ref_layers) else None
        cand_layer = cand_layers[i] if i < len(cand_layers) else None
        if ref_layer and cand_layer and ref_layer["digest"] == cand_layer["digest"]:
            continue
        layers.append(
            _compare_layer(
                i,
                reference,
                ref_layer,
                ref_diff_ids[i] if i < len(ref_diff_ids) else None,
                candidate,
                cand_layer,
                cand_diff_ids[i] if i < len(cand_diff_ids) else None,
                max_files,
            )
        )
    return PlatformDiff(
        name,
        ref_digest,
        cand_digest,
        manifest_paths=manifest_paths,
        reference_config=ref_config_digest,
        candidate_config=cand_config_digest,
        config_paths=config_paths,
        reference_layers=len(ref_layers),
        candidate_layers=len(cand_layers),
        layers=tuple(layers),
    )


def _compare_layer(
    index: int,
    reference: ImageSource,
    ref_layer: Mapping[str, Any] | None,
    ref_diff_id: str | None,
    candidate: ImageSource,
    cand_layer: Mapping[str, Any] | None,
    cand_diff_id: str | None,
    max_files: int,
) -> LayerDiff:
    ref_digest = ref_layer["digest"] if ref_layer else None
    cand_digest = cand_layer["digest"] if cand_layer else None
    base = LayerDiff(index, ref_digest, cand_digest, ref_diff_id, cand_diff_id)
    if ref_layer is None or cand_layer is None:
        side = "reference" if cand_layer is None else "candidate"
        return replace(base, note=f"only in {side}")
    if ref_diff_id and ref_diff_id == cand_diff_id:
        # Same uncompressed tar: only the compression (level, gzip header) differs.
        return replace(base, note="same uncompressed content (diff_id): compression differs")
    try:
        ref_files = _layer_index(reference, ref_layer)
        cand_files = _layer_index(candidate, cand_layer)
    except _Unreadable as error:
        return replace(base, note=str(error))
    diffs = diff_members(ref_files, cand_files)
    note = None
    if not diffs:
        note = (
            "same files in a different order"
            if list(ref_files) != list(cand_files)
            else "same files and metadata: tar headers or padding differ"
        )
    return replace(
        base, files=tuple(diffs[:max_files]), files_omitted=max(0, len(diffs) - max_files), note=note
    )


# ---------------------------------------------------------------------------------------------
# Layers


class _Unreadable(Exception):
    """A layer that cannot be opened; reported on its layer, not raised to the user."""


@dataclass(frozen=True)
class Member:
    """What matters about one tar member, with the content reduced to a sha256."""

    type: str
    mode: int
    uid: int
    gid: int
    uname: str
    gname: str
    mtime: float
    linkname: str
    size: int
    sha256: str | None
    device: tuple[int, int] | None = None
    xattrs: tuple[tuple[str, str], ...] = field(default=())


_TYPES = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.CONTTYPE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "char device",
    tarfile.BLKTYPE: "block device",
    tarfile.FIFOTYPE: "fifo",
}


def _layer_index(source: ImageSource, layer: Mapping[str, Any]) -> dict[str, Member]:
    """Path -> Member for one layer, in archive order; read in one streaming pass."""
    digest = layer["digest"]
    try:
        with source.open_layer(digest) as raw:
            return read_members(raw)
    except _Unreadable as error:
        raise _Unreadable(f"{error} ({source.name})") from error
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise _Unreadable(f"cannot read layer {_short(digest)} from {source.name}: {error}") from error


def read_members(raw: BinaryIO | io.RawIOBase) -> dict[str, Member]:
    """Index a layer blob (gzip, plain tar, or zstd when the stdlib has it) without storing it.

    Reads front to back only, so `raw` may be a socket; nothing but the member index is kept.
    """
    # peek() sniffs the compression without consuming bytes a non-seekable stream cannot give back.
    buffered: Any = raw if hasattr(raw, "peek") else io.BufferedReader(cast(io.RawIOBase, raw), _CHUNK)
    magic = buffered.peek(4)[:4]
    stream: Any
    if magic.startswith(_ZSTD_MAGIC):
        try:
            from compression import zstd  # Python >= 3.14 only
        except ImportError:
            raise _Unreadable("cannot open zstd layer (needs Python 3.14's compression.zstd)") from None
        stream = zstd.ZstdFile(buffered)
    elif magic.startswith(_GZIP_MAGIC):
        stream = gzip.GzipFile(fileobj=buffered, mode="rb")
    else:
        stream = buffered
    members: dict[str, Member] = {}
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for info in tar:
            path = normalize(info.name)
            members.pop(path, None)  # a later entry wins, as on extraction; keep archive order
            members[path] = _member(tar, info)
    return members


def _member(tar: tarfile.TarFile, info: tarfile.TarInfo) -> Member:
    digest = None
    if info.isreg():
        hasher = hashlib.sha256()
        handle = tar.extractfile(info)
        assert handle is not None
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)
        digest = hasher.hexdigest()
    xattrs = tuple(
        sorted(
            (k, v)
            for k, v in info.pax_headers.items()
            if k.startswith(("SCHILY.xattr.", "LIBARCHIVE.xattr."))
        )
    )
    return Member(
        type=_TYPES.get(info.type, f"type {info.type!r}"),
        mode=info.mode,
        uid=info.uid,
        gid=info.gid,
        uname=info.uname,
        gname=info.gname,
        mtime=info.mtime,
        linkname=info.linkname if info.issym() or info.islnk() else "",
        size=info.size if info.isreg() else 0,
        sha256=digest,
        device=(info.devmajor, info.devminor) if info.ischr() or info.isblk() else None,
        xattrs=xattrs,
    )


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def member_differences(ref: Member, cand: Member) -> tuple[str, ...]:
    """What differs between two entries for the same path, written `reference != candidate`."""
    if ref.type != cand.type:
        return (f"type {ref.type} != {cand.type}",)  # nothing else is comparable
    what = []
    if ref.sha256 != cand.sha256:
        what.append("content" if ref.size == cand.size else f"content ({ref.size} != {cand.size} bytes)")
    if ref.linkname != cand.linkname:
        what.append(f"link target {ref.linkname} != {cand.linkname}")
    if ref.mode != cand.mode:
        what.append(f"mode {ref.mode:#o} != {cand.mode:#o}")
    if (ref.uid, ref.gid) != (cand.uid, cand.gid):
        what.append(f"owner {ref.uid}:{ref.gid} != {cand.uid}:{cand.gid}")
    if (ref.uname, ref.gname) != (cand.uname, cand.gname):
        what.append(f"owner names {ref.uname}:{ref.gname} != {cand.uname}:{cand.gname}")
    if ref.mtime != cand.mtime:
        what.append(f"mtime {_number(ref.mtime)} != {_number(cand.mtime)}")
    if ref.device != cand.device:
        what.append(f"device {ref.device} != {cand.device}")
    if ref.xattrs != cand.xattrs:
        keys = sorted({k for k, _ in set(ref.xattrs) ^ set(cand.xattrs)})
        what.append("xattrs " + ", ".join(k.split(".xattr.", 1)[-1] for k in keys))
    return tuple(what)


def diff_members(ref: Mapping[str, Member], cand: Mapping[str, Member]) -> list[FileDiff]:
    """Every differing path, sorted: only on one side, or present on both with other attributes."""
    out = []
    for path in sorted(ref.keys() | cand.keys()):
        if path not in cand:
            out.append(FileDiff(path, ("only in reference",)))
        elif path not in ref:
            out.append(FileDiff(path, ("only in candidate",)))
        elif what := member_differences(ref[path], cand[path]):
            out.append(FileDiff(path, what))
    return out


# ---------------------------------------------------------------------------------------------
# JSON


def _key_path(prefix: str, key: str) -> str:
    # Annotation and label keys contain dots: bracket them so the path stays unambiguous.
    part = f"[{json.dumps(key)}]" if "." in key or not key else key
    if not prefix:
        return part
    return f"{prefix}{part}" if part.startswith("[") else f"{prefix}.{part}"


def _value(value: Any) -> str:
    if isinstance(value, str) and value.startswith("sha256:") and len(value) == 71:
        return _short(value)  # digests: the full form is in the layer lines and useless side by side
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def json_diff(ref: Any, cand: Any, limit: int | None = None) -> tuple[str, ...]:
    """Dotted paths where two JSON documents differ, e.g. `config.Env[2]: "A=1" != "A=2"`.

    Lists of different lengths are reported as a whole: an insertion would shift every element.
    """
    out: list[str] = []
    _json_diff("", ref, cand, out)
    if limit is not None and len(out) > limit:
        out = [*out[:limit], f"... and {len(out) - limit} more"]
    return tuple(out)


def _json_diff(path: str, ref: Any, cand: Any, out: list[str]) -> None:
    if ref == cand:
        return
    where = path or "(document)"
    if isinstance(ref, dict) and isinstance(cand, dict):
        for key in sorted(ref.keys() | cand.keys()):
            sub = _key_path(path, key)
            if key not in cand:
                out.append(f"{sub}: only in reference")
            elif key not in ref:
                out.append(f"{sub}: only in candidate")
            else:
                _json_diff(sub, ref[key], cand[key], out)
    elif isinstance(ref, list) and isinstance(cand, list):
        if len(ref) != len(cand):
            out.append(f"{where}: {len(ref)} items != {len(cand)}")
            return
        for i, (a, b) in enumerate(zip(ref, cand, strict=True)):
            _json_diff(f"{path}[{i}]", a, b, out)
    else:
        out.append(f"{where}: {_value(ref)} != {_value(cand)}")
