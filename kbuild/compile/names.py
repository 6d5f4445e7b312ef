"""Names and references: bake targets, repositories and tags, where a target's parent comes
from, and where each target's files go in the build directory. Pure functions of their inputs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from kbuild.compile.select import Request


@dataclass(frozen=True)
class TargetRef:
    """A parent built in the same bake: `target:<name>`."""

    name: str  # the image (or root) name, not yet a bake target name

    @property
    def context(self) -> str:
        return f"target:{target_name(self.name)}"


@dataclass(frozen=True)
class PinnedImage:
    """A parent that exists already, named by digest (or, in the engine's store, by hash tag)."""

    ref: str  # `registry/repo@sha256:...`, `repo:kbuild-<hash>` or an upstream `name:tag@sha256:...`

    @property
    def context(self) -> str:
        return f"docker-image://{self.ref}"


ParentRef = TargetRef | PinnedImage


def target_name(image: str) -> str:
    """Bake target names allow [a-zA-Z0-9_-] only."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", image)


def root_name(distro: str, release: str) -> str:
    return f"{distro}-{release}-root"


def probe_name(name: str) -> str:
    return f"probe-{name}"


def hash_tag(content_hash: str) -> str:
    """The content-addressed tag every published image carries next to its requested tag."""
    return "kbuild-" + content_hash.removeprefix("sha256:")


def sbom_tag(content_hash: str) -> str:
    """The tag of the image's SBOM artifact, in the image's repository."""
    return hash_tag(content_hash).replace("kbuild-", "kbuild-sbom-", 1)


def repository(request: Request, image: str) -> str:
    """`registry/namespace/image`, without tag."""
    return "/".join(part for part in (request.registry, request.namespace, image) if part)


def image_ref(request: Request, image: str) -> str:
    return f"{repository(request, image)}:{request.tag}"


# --- the build directory ------------------------------------------------------------------------


def generation_dir(build_dir: Path, request: Request, generation: str) -> Path:
    """One generation of rendered contexts: content-addressed, so a bake file names a whole one."""
    return build_dir.resolve() / "contexts" / request.variant / generation


def dockerfile_path(build_dir: Path, request: Request, generation: str, name: str) -> Path:
    """Next to the build context, not in it: no context file can stand in for the Dockerfile."""
    return generation_dir(build_dir, request, generation) / name / "Dockerfile"


def context_dir(build_dir: Path, request: Request, generation: str, name: str) -> Path:
    return generation_dir(build_dir, request, generation) / name / "context"


def oci_layout(build_dir: Path, request: Request) -> Path:
    """The OCI image layout directory the bake exports every image of a variant into (a blob
    shared by several images is written once), before they are pushed or loaded."""
    return build_dir.resolve() / "oci" / request.variant


def layout_ref(request: Request, image: str) -> str:
    """An image's name in the OCI layout (`org.opencontainers.image.ref.name`): its reference,
    spelt in full as the exporter writes it (`docker.io/library/` for a bare name)."""
    ref = image_ref(request, image)
    first, _, rest = ref.partition("/")
    if not rest:
        return f"docker.io/library/{ref}"
    if "." in first or ":" in first or first == "localhost":
        return ref
    return f"docker.io/{ref}"


def probe_dir(build_dir: Path, request: Request, name: str) -> Path:
    return build_dir.resolve() / "probes" / request.variant / name
