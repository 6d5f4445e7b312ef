"""Stage "plan": content hashes -> which images already exist and which must be built.

Every image kbuild publishes also carries a content-addressed tag, `kbuild-<hash>`, next to its
requested tag. Before baking, each selected image's hash tag is looked up: pushing, in the target
registry (the target repository first, then any repository of the same image name, so a new
namespace reuses what an old one built); loading, in the local image store. What is found is not
rebuilt: its children name it by digest (`docker-image://...`) and it is only re-tagged.
"""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.error import URLError

from kbuild.engine import registry
from kbuild.errors import KbuildError
from kbuild.compile.render import Rendered
from kbuild.compile.select import Request


def hash_tag(content_hash: str) -> str:
    return "kbuild-" + content_hash.removeprefix("sha256:")


def repository(request: Request, image: str) -> str:
    """`registry/namespace/image`, without tag."""
    return "/".join(part for part in (request.registry, request.namespace, image) if part)


def image_ref(request: Request, image: str) -> str:
    return f"{repository(request, image)}:{request.tag}"


@dataclass(frozen=True)
class Found:
    """An image that already exists with the wanted hash."""

    ref: str  # where it is: `registry/repo@sha256:...`, or a local `repo:kbuild-<hash>` tag
    digest: str  # its index digest
    local: bool  # in the engine's image store (else in a registry)

    @property
    def context(self) -> str:
        """How a child's bake target names it."""
        return f"docker-image://{self.ref}"


@dataclass(frozen=True)
class Plan:
    hashes: Mapping[str, str]  # target -> content hash
    found: Mapping[str, Found]  # selected images not to rebuild
    build: tuple[str, ...]  # targets to bake (images and the roots they need), parents first


Finder = Callable[[str, str], Found | None]  # (image, content hash) -> where it already is


def make_plan(rendered: Rendered, hashes: Mapping[str, str], find: Finder | None) -> Plan:
    """Look every selected image up (none with `find=None`: rebuild everything)."""
    found: dict[str, Found] = {}
    for item in rendered.targets:
        if item.image is not None and find is not None:
            hit = find(item.name, hashes[item.name])
            if hit is not None:
                found[item.name] = hit
    needed: set[str] = set()
    for item in reversed(rendered.targets):  # children first, so a needed root is known in time
        if item.name in found:
            continue
        if item.image is not None or item.probe or item.name in needed:
            needed.add(item.name)
            if item.parent_source and item.parent_source.startswith("target:"):
                parent = item.parent_source.removeprefix("target:")
                if parent not in found:
                    needed.add(parent)
    build = tuple(item.name for item in rendered.targets if item.name in needed)
    return Plan(dict(hashes), found, build)


def registry_finder(request: Request) -> Finder:
    def find(image: str, content_hash: str) -> Found | None:
        tag = hash_tag(content_hash)
        target = repository(request, image).partition("/")[2]
        # Lazily: the registry's catalog is only read when the target repository lacks the image.
        others = (
            repo
            for repo in registry.repositories(request.registry)
            if repo != target and repo.rsplit("/", 1)[-1] == image
        )
        for repo in itertools.chain([target], others):
            try:
                digest = registry.manifest_digest(request.registry, repo, tag)
            except (URLError, OSError) as error:
                raise KbuildError(
                    f"cannot reach the registry {request.registry}: {error}",
                    hint="start it (scripts/setup-host.sh), or choose another with --registry",
                ) from None
            if digest:
                return Found(f"{request.registry}/{repo}@{digest}", digest, local=False)
        return None

    return find


def local_finder(request: Request) -> Finder:
    """Looks hash tags up in the engine's image store (one `docker image ls` for all images)."""
    listing = subprocess.run(
        ["docker", "image", "ls", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"],
        capture_output=True,
        text=True,
    )
    if listing.returncode != 0:
        raise KbuildError(f"cannot list the engine's images: {listing.stderr.strip()}")
    by_tag: dict[str, list[tuple[str, str]]] = {}
    for line in listing.stdout.splitlines():
        ref, _, image_id = line.partition(" ")
        name, _, tag = ref.rpartition(":")
        if tag.startswith("kbuild-"):
            by_tag.setdefault(tag, []).append((name, image_id))

    def find(image: str, content_hash: str) -> Found | None:
        tag = hash_tag(content_hash)
        wanted = repository(request, image)
        hits = sorted(
            (name != wanted, name, image_id)
            for name, image_id in by_tag.get(tag, [])
            if name.rsplit("/", 1)[-1] == image
        )
        if not hits:
            return None
        _, name, image_id = hits[0]
        return Found(f"{name}:{tag}", image_id, local=True)

    return find
