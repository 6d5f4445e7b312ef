"""kbuild.imagediff on small synthetic OCI images: archives built here, no Docker, no network."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import tarfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kbuild.engine.imagediff import FileDiff, compare, json_diff, read_members
from kbuild.engine.oci import (
    ImageDiffError,
    OciArchive,
    OciLayout,
    RegistryImage,
    open_source,
    parse_reference,
    platform_digests,
)

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
EPOCH = 1767225600  # 2026-01-01, a SOURCE_DATE_EPOCH-like timestamp


# ---------------------------------------------------------------------------------------------
# Synthetic images


@dataclass(frozen=True)
class Entry:
    """One tar member: a file (content), a directory, or a symlink (target)."""

    content: bytes = b""
    mtime: int = EPOCH
    mode: int = 0o644
    uid: int = 0
    target: str | None = None
    directory: bool = False


Layer = Mapping[str, Entry]


def tar_bytes(layer: Layer) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, entry in layer.items():
            info = tarfile.TarInfo(path)
            info.mtime, info.mode, info.uid, info.gid = entry.mtime, entry.mode, entry.uid, entry.uid
            if entry.directory:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif entry.target is not None:
                info.type, info.linkname = tarfile.SYMTYPE, entry.target
                tar.addfile(info)
            else:
                info.size = len(entry.content)
                tar.addfile(info, io.BytesIO(entry.content))
    return buffer.getvalue()


def gzipped(data: bytes, level: int = 6) -> bytes:
    return gzip.compress(data, compresslevel=level, mtime=0)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Platform:
    layers: tuple[Layer, ...]
    config: Mapping[str, Any] = field(default_factory=dict)  # merged over the default config
    compress: bool = True
    gzip_level: int = 6


BASE: Layer = {
    "etc": Entry(directory=True, mode=0o755),
    "etc/shadow": Entry(b"root:*:20000:0:99999:7:::\n", mode=0o640),
    "etc/hostname": Entry(b"kbuild\n"),
}
APP: Layer = {
    "usr/lib/python3/dist-packages/foo.pyc": Entry(b"\x6f\x0d\x0d\x0a" + b"x" * 200),
    "usr/bin/foo": Entry(target="../lib/python3/dist-packages/foo.pyc"),
    "var/log/x": Entry(b"log\n"),
}


def platforms(**changes: Platform) -> dict[str, Platform]:
    """The default two-platform image, with some platforms replaced."""
    out = {"linux/amd64": Platform((BASE, APP)), "linux/arm64": Platform((BASE, APP))}
    out.update({name.replace("_", "/"): p for name, p in changes.items()})
    return out


class Blobs(dict[str, bytes]):
    def add(self, data: bytes) -> str:
        digest = digest_of(data)
        self[digest] = data
        return digest


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data), **extra}


def dumps(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def platform_manifest(blobs: Blobs, name: str, platform: Platform) -> bytes:
    os_, arch, *variant = name.split("/")
    tars = [tar_bytes(layer) for layer in platform.layers]
    config = {
        "architecture": arch,
        "os": os_,
        "created": "2026-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"], "Labels": {"org.kbuild.image": "foo"}},
        "rootfs": {"type": "layers", "diff_ids": [digest_of(t) for t in tars]},
        "history": [
            {"created": "2026-01-01T00:00:00Z", "created_by": f"layer {i}"} for i in range(len(tars))
        ],
        **({"variant": variant[0]} if variant else {}),
        **platform.config,
    }
    config_bytes = dumps(config)
    blobs.add(config_bytes)
    layers = []
    for t in tars:
        blob = gzipped(t, platform.gzip_level) if platform.compress else t
        blobs.add(blob)
        media = OCI_LAYER_GZIP if platform.compress else "application/vnd.oci.image.layer.v1.tar"
        layers.append(descriptor(media, blob))
    manifest = dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config_bytes),
            "layers": layers,
        }
    )
    blobs.add(manifest)
    return manifest


def attestation(blobs: Blobs, subject: str, note: str) -> bytes:
    """A BuildKit-style provenance manifest: its content changes on every build (timestamps)."""
    statement = dumps({"predicateType": "https://slsa.dev/provenance/v0.2", "note": note})
    blobs.add(statement)
    config = dumps({"architecture": "unknown", "os": "unknown"})
    blobs.add(config)
    manifest = dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [descriptor("application/vnd.in-toto+json", statement)],
        }
    )
    blobs.add(manifest)
    return manifest


def build_image(
    spec: Mapping[str, Platform],
    attestations: str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> tuple[Blobs, str]:
    """All blobs of a multi-platform image, and its index digest."""
    blobs = Blobs()
    entries = []
    for name, platform in spec.items():
        os_, arch, *variant = name.split("/")
        manifest = platform_manifest(blobs, name, platform)
        plat = {"os": os_, "architecture": arch, **({"variant": variant[0]} if variant else {})}
        entries.append(descriptor(OCI_MANIFEST, manifest, platform=plat))
        if attestations is not None:
            # Two ways attestations are marked: unknown/unknown, or only the reference annotation.
            att = attestation(blobs, entries[-1]["digest"], f"{attestations} {name}")
            ann = {"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": "x"}
            entries.append(
                descriptor(
                    OCI_MANIFEST, att, platform={"os": "unknown", "architecture": "unknown"}, annotations=ann
                )
            )
            att2 = attestation(blobs, entries[-1]["digest"], f"{attestations} {name} sbom")
            entries.append(descriptor(OCI_MANIFEST, att2, platform=plat, annotations=ann))
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    if annotations:
        index["annotations"] = dict(annotations)
    return blobs, blobs.add(dumps(index))


def write_archive(path: Path, blobs: Blobs, root: str, prefix: str = "") -> Path:
    """An OCI image layout in a tar, like `buildx build --output type=oci,dest=path`."""
    root_type = json.loads(blobs[root]).get("mediaType", OCI_MANIFEST)
    layout_index = dumps({"schemaVersion": 2, "manifests": [descriptor(root_type, blobs[root])]})
    files = {"oci-layout": dumps({"imageLayoutVersion": "1.0.0"}), "index.json": layout_index}
    files.update({f"blobs/sha256/{d.removeprefix('sha256:')}": data for d, data in blobs.items()})
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def archive(tmp_path: Path, name: str, spec: Mapping[str, Platform], **kwargs: Any) -> OciArchive:
    blobs, root = build_image(spec, **kwargs)
    return OciArchive(write_archive(tmp_path / f"{name}.tar", blobs, root))


def diff(tmp_path: Path, reference: Mapping[str, Platform], candidate: Mapping[str, Platform], **kw: Any):
    ref_kw = {k.removeprefix("ref_"): v for k, v in kw.items() if k.startswith("ref_")}
    cand_kw = {k.removeprefix("cand_"): v for k, v in kw.items() if k.startswith("cand_")}
    with (
        archive(tmp_path, "ref", reference, **ref_kw) as ref,
        archive(tmp_path, "cand", candidate, **cand_kw) as cand,
    ):
        return compare(ref, cand, **{k: v for k, v in kw.items() if not k.startswith(("ref_", "cand_"))})


def changed(layer: Layer, entries: Mapping[str, Entry]) -> dict[str, Entry]:
    """`layer` with some entries replaced or added."""
    return {**layer, **entries}


# ---------------------------------------------------------------------------------------------
# Archives


def test_identical_images_are_identical(tmp_path):
    report = diff(tmp_path, platforms(), platforms(), ref_attestations="a", cand_attestations="a")
    assert report.identical
    assert report.index_equal
    assert report.render().startswith("identical: ")


def test_a_content_difference_names_only_its_platform_layer_and_file(tmp_path):
    app = changed(APP, {"usr/lib/python3/dist-packages/foo.pyc": Entry(b"\x6f\x0d\x0d\x0a" + b"y" * 200)})
    report = diff(tmp_path, platforms(), platforms(linux_arm64=Platform((BASE, app))))
    assert not report.identical
    assert [p.platform for p in report.differing_platforms] == ["linux/arm64"]
    (arm,) = report.differing_platforms
    assert [layer.index for layer in arm.layers] == [1]
    (layer,) = arm.layers
    assert layer.reference_diff_id != layer.candidate_diff_id
    assert layer.files == (FileDiff("usr/lib/python3/dist-packages/foo.pyc", ("content",)),)
    # The config differs only by the new layer's diff_id.
    assert arm.config_differs
    short = [
        d.split(":")[0] + ":" + d.split(":")[1][:12]
        for d in (layer.reference_diff_id, layer.candidate_diff_id)
    ]
    assert arm.config_paths == (f"rootfs.diff_ids[1]: {short[0]} != {short[1]}",)
    text = report.render()
    assert "linux/amd64: identical" in text
    assert "layer 1: " in text and "usr/lib/python3/dist-packages/foo.pyc: content" in text
    assert "layer 0" not in text


def test_an_mtime_only_difference(tmp_path):
    app = changed(APP, {"var/log/x": Entry(b"log\n", mtime=EPOCH + 100)})
    report = diff(tmp_path, platforms(), platforms(linux_amd64=Platform((BASE, app))))
    (amd,) = report.differing_platforms
    assert amd.platform == "linux/amd64"
    (layer,) = amd.layers
    assert layer.files == (FileDiff("var/log/x", (f"mtime {EPOCH} != {EPOCH + 100}",)),)
    assert "var/log/x: mtime 1767225600 != 1767225700" in report.render()


def test_mode_owner_symlink_and_type_differences(tmp_path):
    base = changed(BASE, {"etc/shadow": Entry(b"root:*:20000:0:99999:7:::\n", mode=0o600, uid=42)})
    app = changed(APP, {"usr/bin/foo": Entry(target="elsewhere"), "var/log/x": Entry(directory=True)})
    report = diff(tmp_path, platforms(), platforms(linux_amd64=Platform((base, app))))
    (amd,) = report.differing_platforms
    files = {f.path: f.what for layer in amd.layers for f in layer.files}
    assert files == {
        "etc/shadow": ("mode 0o640 != 0o600", "owner 0:0 != 42:42"),
        "usr/bin/foo": ("link target ../lib/python3/dist-packages/foo.pyc != elsewhere",),
        "var/log/x": ("type file != dir",),
    }


def test_a_file_only_on_one_side(tmp_path):
    app = changed(APP, {"var/log/new": Entry(b"new\n")})
    base = {k: v for k, v in BASE.items() if k != "etc/hostname"}
    report = diff(tmp_path, platforms(), platforms(linux_arm64=Platform((base, app))))
    (arm,) = report.differing_platforms
    files = {layer.index: layer.files for layer in arm.layers}
    assert files == {
        0: (FileDiff("etc/hostname", ("only in reference",)),),
        1: (FileDiff("var/log/new", ("only in candidate",)),),
    }


def test_a_config_difference_is_reported_by_path(tmp_path):
    cand = Platform((BASE, APP), config={"created": "2026-01-02T00:00:00Z"})
    report = diff(tmp_path, platforms(), platforms(linux_amd64=cand))
    (amd,) = report.differing_platforms
    assert amd.config_differs
    assert amd.config_paths == ('created: "2026-01-01T00:00:00Z" != "2026-01-02T00:00:00Z"',)
    assert amd.layers == ()  # same layers: none opened, none reported
    assert 'created: "2026-01-01T00:00:00Z" != "2026-01-02T00:00:00Z"' in report.render()


def test_nested_config_fields_get_dotted_paths(tmp_path):
    config = {
        "config": {"Env": ["PATH=/usr/bin:/bin", "LANG=C"], "Labels": {"org.kbuild.image": "bar"}},
    }
    report = diff(tmp_path, platforms(), platforms(linux_amd64=Platform((BASE, APP), config=config)))
    (amd,) = report.differing_platforms
    assert amd.config_paths == (
        'config.Env[1]: "LANG=C.UTF-8" != "LANG=C"',
        'config.Labels["org.kbuild.image"]: "foo" != "bar"',
    )


def test_attestation_manifests_are_ignored(tmp_path):
    report = diff(tmp_path, platforms(), platforms(), ref_attestations="build 1", cand_attestations="build 2")
    assert not report.index_equal  # the attestations (timestamps) make the index differ...
    assert report.attestations_differ
    assert [p.platform for p in report.platforms] == ["linux/amd64", "linux/arm64"]  # ...no unknown/unknown
    assert report.differing_platforms == ()  # ...but no platform image differs
    assert "every platform image is identical" in report.render()


def test_index_annotations_are_reported(tmp_path):
    report = diff(
        tmp_path,
        platforms(),
        platforms(),
        ref_annotations={"org.opencontainers.image.created": "a"},
        cand_annotations={"org.opencontainers.image.created": "b"},
    )
    assert report.index_paths == ('annotations["org.opencontainers.image.created"]: "a" != "b"',)
    assert not report.attestations_differ


def test_missing_platform_and_layer_count(tmp_path):
    spec = platforms()
    cand = {"linux/amd64": Platform((BASE, APP, {"extra": Entry(b"1")}))}
    report = diff(tmp_path, spec, cand)
    by_name = {p.platform: p for p in report.platforms}
    assert by_name["linux/arm64"].candidate_digest is None
    amd = by_name["linux/amd64"]
    assert (amd.reference_layers, amd.candidate_layers) == (2, 3)
    (layer,) = amd.layers
    assert (layer.index, layer.reference_digest, layer.note) == (2, None, "only in candidate")
    text = report.render()
    assert "linux/arm64: only in reference" in text
    assert "layer count 2 != 3" in text


def test_files_per_layer_are_capped(tmp_path):
    many = {f"f/{i:03d}": Entry(b"a") for i in range(60)}
    many_changed = {f"f/{i:03d}": Entry(b"b") for i in range(60)}
    spec = {"linux/amd64": Platform((BASE, many))}
    report = diff(tmp_path, spec, {"linux/amd64": Platform((BASE, many_changed))}, max_files=50)
    (layer,) = report.differing_platforms[0].layers
    assert len(layer.files) == 50 and layer.files_omitted == 10
    assert layer.files[0].path == "f/000" and layer.files[-1].path == "f/049"
    assert "... and 10 more files" in report.render()


def test_recompression_alone_is_recognised(tmp_path):
    cand = platforms(linux_amd64=Platform((BASE, APP), gzip_level=1))
    report = diff(tmp_path, platforms(), cand)
    (amd,) = report.differing_platforms
    assert [layer.index for layer in amd.layers] == [0, 1]  # both layers recompressed
    layer = amd.layers[0]
    assert layer.reference_digest != layer.candidate_digest
    assert layer.reference_diff_id == layer.candidate_diff_id
    assert layer.files == () and "compression" in (layer.note or "")
    assert not amd.config_differs


def test_uncompressed_layers(tmp_path):
    ref = {"linux/amd64": Platform((BASE,), compress=False)}
    cand = {"linux/amd64": Platform((changed(BASE, {"etc/hostname": Entry(b"other\n")}),), compress=False)}
    (amd,) = diff(tmp_path, ref, cand).differing_platforms
    assert amd.layers[0].files == (FileDiff("etc/hostname", ("content (7 != 6 bytes)",)),)


def test_zstd_layer_is_reported_not_raised():
    # 3.11's stdlib cannot read zstd (3.14's compression.zstd can): say so on the layer.
    try:
        import compression.zstd  # noqa: F401  # Python >= 3.14 only
    except ImportError:
        from kbuild.engine.imagediff import _Unreadable

        with pytest.raises(_Unreadable, match="cannot open zstd layer"):
            read_members(io.BytesIO(b"\x28\xb5\x2f\xfd" + b"\0" * 64))
    else:
        pytest.skip("this Python reads zstd")


def test_zstd_layer_in_a_report(tmp_path):
    blobs, root = build_image({"linux/amd64": Platform((BASE,))})
    cand_blobs, cand_root = build_image(
        {"linux/amd64": Platform((changed(BASE, {"etc/hostname": Entry()}),))}
    )
    # Swap the candidate's layer for a (fake) zstd blob; its diff_id still says the content differs.
    manifest_digest = json.loads(cand_blobs[cand_root])["manifests"][0]["digest"]
    manifest = json.loads(cand_blobs.pop(manifest_digest))
    fake = b"\x28\xb5\x2f\xfd" + b"\1" * 64
    manifest["layers"][0] = descriptor("application/vnd.oci.image.layer.v1.tar+zstd", fake)
    cand_blobs.add(fake)
    new_manifest = cand_blobs.add(dumps(manifest))
    index = json.loads(cand_blobs.pop(cand_root))
    index["manifests"][0].update(digest=new_manifest, size=len(cand_blobs[new_manifest]))
    cand_root = cand_blobs.add(dumps(index))
    with (
        OciArchive(write_archive(tmp_path / "a.tar", blobs, root)) as ref,
        OciArchive(write_archive(tmp_path / "b.tar", cand_blobs, cand_root)) as cand,
    ):
        report = compare(ref, cand)
    (layer,) = report.differing_platforms[0].layers
    try:
        import compression.zstd  # noqa: F401  # Python >= 3.14 only
    except ImportError:
        assert "cannot open zstd layer" in (layer.note or "")
    else:
        assert "cannot read layer" in (layer.note or "")  # not valid zstd data either


def test_single_platform_archive_with_dot_slash_names(tmp_path):
    def single(name: str, layer: Layer) -> OciArchive:
        blobs = Blobs()
        root = digest_of(platform_manifest(blobs, "linux/arm64/v8", Platform((layer,))))
        return OciArchive(write_archive(tmp_path / name, blobs, root, prefix="./"))

    with (
        single("a.tar", BASE) as ref,
        single("b.tar", changed(BASE, {"etc/hostname": Entry(b"x\n")})) as cand,
    ):
        report = compare(ref, cand)
    assert [p.platform for p in report.platforms] == ["linux/arm64/v8"]
    assert report.platforms[0].layers[0].files == (FileDiff("etc/hostname", ("content (7 != 2 bytes)",)),)


def test_layers_are_read_as_a_stream():
    """read_members must not seek: registry layers come straight off a socket."""

    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

        def readinto(self, buffer: Any) -> int:
            chunk = self._data.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    members = read_members(Pipe(gzipped(tar_bytes(APP))))
    assert list(members) == list(APP)
    assert (
        members["usr/lib/python3/dist-packages/foo.pyc"].sha256
        == hashlib.sha256(APP["usr/lib/python3/dist-packages/foo.pyc"].content).hexdigest()
    )
    assert members["usr/bin/foo"].linkname == "../lib/python3/dist-packages/foo.pyc"


def test_corrupt_blob_is_an_error_not_a_difference(tmp_path):
    blobs, root = build_image(platforms())
    manifest_digest = json.loads(blobs[root])["manifests"][0]["digest"]
    blobs[manifest_digest] = blobs[manifest_digest] + b" "
    with (
        OciArchive(write_archive(tmp_path / "bad.tar", blobs, root)) as bad,
        archive(tmp_path, "other", {"linux/amd64": Platform((BASE,))}) as other,
        pytest.raises(ImageDiffError, match="does not match its digest"),
    ):
        compare(other, bad)


def test_json_diff():
    assert json_diff({"a": {"b": [1, 2]}, "c": 1}, {"a": {"b": [1, 3]}, "c": 1}) == ("a.b[1]: 2 != 3",)
    assert json_diff({"h": [1]}, {"h": [1, 2]}) == ("h: 1 items != 2",)
    assert json_diff({"x": 1}, {"y": 1}) == ("x: only in reference", "y: only in candidate")
    assert json_diff({"a": 1}, {"a": 1}) == ()
    assert json_diff([1, 2, 3], [4, 5, 6], limit=2) == ("[0]: 1 != 4", "[1]: 2 != 5", "... and 1 more")


def test_parse_reference():
    assert parse_reference("localhost:5000/kolla/keystone@sha256:ab") == (
        "localhost:5000",
        "kolla/keystone",
        "sha256:ab",
    )
    assert parse_reference("localhost:5000/kolla/keystone:2025.1") == (
        "localhost:5000",
        "kolla/keystone",
        "2025.1",
    )
    assert parse_reference("reg.example/keystone:t@sha256:ab") == ("reg.example", "keystone", "sha256:ab")
    assert parse_reference("reg.example/keystone") == ("reg.example", "keystone", "latest")
    with pytest.raises(ImageDiffError):
        parse_reference("keystone")


# ---------------------------------------------------------------------------------------------
# Registry


class FakeRegistry(http.server.ThreadingHTTPServer):
    """A stand-in for a registry: only the read side of the Registry HTTP API v2.

    It serves manifests from /manifests/ only (by digest or tag) and config/layer blobs from
    /blobs/, like registries that do not serve manifests as blobs, and insists on an Accept
    header that lists OCI index and manifest types. It is not a real registry (the real-registry
    path is exercised by the slow tests against a registry:2 container).
    """

    def __init__(self) -> None:
        self.repos: dict[str, tuple[Blobs, dict[str, str]]] = {}
        self.requests: list[str] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    def push(self, repo: str, blobs: Blobs, root: str, tag: str) -> str:
        self.repos[repo] = (blobs, {tag: root})
        return f"127.0.0.1:{self.server_address[1]}/{repo}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: FakeRegistry

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        prefix, _, rest = self.path.partition("/v2/")
        repo, kind, ref = rest.rpartition("/")[0].rpartition("/")[0], rest.split("/")[-2], rest.split("/")[-1]
        if prefix or repo not in self.server.repos:
            return self.send_error(404)
        blobs, tags = self.server.repos[repo]
        ref = tags.get(ref, ref)
        data = blobs.get(ref)
        if data is None:
            return self.send_error(404)
        is_manifest = b'"schemaVersion"' in data
        if kind == "manifests":
            if not is_manifest:
                return self.send_error(404)
            accept = self.headers.get("Accept", "")
            if OCI_INDEX not in accept or OCI_MANIFEST not in accept:
                return self.send_error(406)
            content_type = json.loads(data).get("mediaType", OCI_MANIFEST)
        elif kind == "blobs" and not is_manifest:
            content_type = "application/octet-stream"
        else:
            return self.send_error(404)
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Docker-Content-Digest", ref)
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    server = FakeRegistry()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_registry_source_against_an_archive(registry, tmp_path):
    """The published image comes from a (stand-in) registry, the rebuild from an OCI archive."""
    blobs, root = build_image(platforms(), attestations="published")
    ref = registry.push("kolla/keystone", blobs, root, "2025.1")
    app = changed(APP, {"var/log/x": Entry(b"log\n", mtime=EPOCH + 100)})
    cand_blobs, cand_root = build_image(platforms(linux_arm64=Platform((BASE, app))), attestations="rebuilt")
    with OciArchive(write_archive(tmp_path / "rebuilt.tar", cand_blobs, cand_root)) as candidate:
        report = compare(RegistryImage(f"{ref}@{root}"), candidate)
    assert report.reference_index == root
    (arm,) = report.differing_platforms
    assert arm.platform == "linux/arm64"
    (layer,) = arm.layers
    assert layer.index == 1
    assert layer.files == (FileDiff("var/log/x", (f"mtime {EPOCH} != {EPOCH + 100}",)),)
    # Only the differing layer was downloaded; the identical ones never were.
    layer_gets = [p for p in registry.requests if "/blobs/" in p and p.endswith(layer.reference_digest)]
    assert len(layer_gets) == 1
    other_layers = [
        d["digest"]
        for d in json.loads(blobs[arm.reference_digest])["layers"]
        if d["digest"] != layer.reference_digest
    ]
    assert not [p for p in registry.requests if any(p.endswith(d) for d in other_layers)]


def test_registry_by_tag_against_itself_and_open_source(registry, tmp_path):
    blobs, root = build_image(platforms(), attestations="published")
    ref = registry.push("kolla/keystone", blobs, root, "latest")
    source = open_source(f"{ref}:latest")
    assert isinstance(source, RegistryImage)
    assert source.index_digest() == root  # digest of the bytes served for the tag
    report = compare(source, RegistryImage(f"{ref}@{root}"))
    assert report.identical
    path = write_archive(tmp_path / "same.tar", blobs, root)
    with open_source(path) as local:
        assert isinstance(local, OciArchive)
        assert compare(source, local).identical


def test_registry_errors_are_image_diff_errors(registry):
    ref = registry.push("kolla/keystone", Blobs(), "sha256:" + "0" * 64, "latest")
    with pytest.raises(ImageDiffError, match="HTTP 404"):
        RegistryImage(f"{ref}:nope").index_digest()


def test_content_difference_in_registry_layers(registry):
    blobs, root = build_image(platforms())
    cand_blobs, cand_root = build_image(
        platforms(linux_amd64=Platform((changed(BASE, {"etc/shadow": Entry(b"x")}), APP)))
    )
    ref = registry.push("a", blobs, root, "v1")
    cand = registry.push("b", cand_blobs, cand_root, "v1")
    report = compare(RegistryImage(f"{ref}:v1"), RegistryImage(f"{cand}:v1"))
    (amd,) = report.differing_platforms
    assert [(layer.index, layer.files) for layer in amd.layers] == [
        (0, (FileDiff("etc/shadow", ("content (26 != 1 bytes)", "mode 0o640 != 0o644")),))
    ]
    assert "etc/shadow: content (26 != 1 bytes), mode 0o640 != 0o644" in report.render()


def write_layout(path: Path, images: Mapping[str, tuple[Blobs, str]]) -> Path:
    """One OCI layout directory holding several images by name, like buildx's
    `type=oci,tar=false` exporter when every target of a bake exports to the same `dest`."""
    (path / "blobs" / "sha256").mkdir(parents=True)
    (path / "oci-layout").write_bytes(dumps({"imageLayoutVersion": "1.0.0"}))
    entries = []
    for ref, (blobs, root) in images.items():
        for digest, data in blobs.items():
            (path / "blobs" / "sha256" / digest.removeprefix("sha256:")).write_bytes(data)
        entries.append(
            descriptor(OCI_INDEX, blobs[root], annotations={"org.opencontainers.image.ref.name": ref})
        )
    (path / "index.json").write_bytes(dumps({"schemaVersion": 2, "manifests": entries}))
    return path


def test_an_image_of_a_shared_layout_reads_and_archives_alone(tmp_path):
    parent_blobs, parent_root = build_image(platforms())
    child_blobs, child_root = build_image(
        platforms(linux_amd64=Platform((changed(BASE, {"etc/motd": Entry(b"child")}), APP)))
    )
    layout = write_layout(
        tmp_path / "oci", {"r/parent:t": (parent_blobs, parent_root), "r/child:t": (child_blobs, child_root)}
    )
    with OciLayout(layout, "r/child:t") as child:
        assert child.index_digest() == child_root
        assert compare(child, archive_of(tmp_path, child_blobs, child_root)).identical
        with (tmp_path / "child.tar").open("wb") as out:
            child.write_archive(out)
        with OciArchive(tmp_path / "child.tar") as alone:
            assert alone.index_digest() == child_root
            assert platform_digests(alone) == platform_digests(child)
            assert compare(child, alone).identical
        # only what the child reaches: none of the parent's own blobs
        with tarfile.open(tmp_path / "child.tar") as tar:
            names = {m.name for m in tar.getmembers()}
        assert {f"blobs/sha256/{d.removeprefix('sha256:')}" for d in child_blobs} <= names
        assert not any(
            f"blobs/sha256/{d.removeprefix('sha256:')}" in names for d in set(parent_blobs) - set(child_blobs)
        )
    with pytest.raises(ImageDiffError, match="no image named r/other:t"):
        OciLayout(layout, "r/other:t").index_digest()


def archive_of(tmp_path: Path, blobs: Blobs, root: str) -> OciArchive:
    return OciArchive(write_archive(tmp_path / f"{root[7:19]}.tar", blobs, root))


def test_a_registry_behind_the_environments_proxy_is_asked_through_it(monkeypatch):
    """kbuild's kept-alive connections go straight to the registry; a remote one behind an HTTPS
    proxy (the environment's, as urllib reads it) is asked through urllib, which uses the proxy."""
    from kbuild.engine import registry as reg

    monkeypatch.setenv("https_proxy", "http://proxy.invalid:3128")
    monkeypatch.setenv("no_proxy", "internal.example")
    assert reg._proxied("registry.example:443")
    assert not reg._proxied("internal.example")
    assert not reg._proxied("127.0.0.1:5000")  # loopback never goes through a proxy
    monkeypatch.delenv("https_proxy")
    assert not reg._proxied("registry.example:443")
