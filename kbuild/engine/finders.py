"""Where images already are: the finders the plan stage asks, by content hash.

Pushing, the target registry is asked (the target repository first, then any repository of the
same image name, so a new namespace reuses what an old one built); loading, the engine's store.
"""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from urllib.error import URLError

from kbuild.compile.bake import HASH_LABEL
from kbuild.compile.names import hash_tag, repository, sbom_tag
from kbuild.compile.plan import Finder, Found
from kbuild.compile.select import Request
from kbuild.engine import registry
from kbuild.engine.oci import RegistryImage, image_label
from kbuild.errors import KbuildError


def registry_finder(request: Request) -> Finder:
    def find(wanted: Mapping[str, str]) -> dict[str, Found]:
        """Every image in its target repository, all at once; only for those missing, the
        registry's catalog is read, for repositories of the same image name."""
        found = _in_targets(request, wanted)
        missing = [image for image in wanted if image not in found]
        if missing:
            others: dict[str, list[str]] = {image: [] for image in missing}
            for repo in registry.repositories(request.registry):
                name = repo.rsplit("/", 1)[-1]
                if name in others and repo != _target(request, name):
                    others[name].append(repo)
            names = list(others)
            for repos in itertools.zip_longest(*others.values()):  # the k-th other repository of each
                chosen = {
                    image: repo
                    for image, repo in zip(names, repos, strict=True)
                    if repo and image not in found
                }
                found.update(_lookup(request.registry, chosen, wanted))
        return found

    return find


def _target(request: Request, image: str) -> str:
    return repository(request, image).partition("/")[2]


def _in_targets(request: Request, wanted: Mapping[str, str]) -> dict[str, Found]:
    """Each image in its target repository. The requested tag is asked first: on a no-op it is
    the image wanted already (its config's content-hash label says so; configs are kept on disk),
    and its SBOM's tag is the only other request. Else the hash tag is asked. What the bake reads
    later (the requested tag, the SBOM's) is read here, in the same round."""
    host = request.registry

    def one(image: str) -> tuple[str, Found | None]:
        repo, content_hash = _target(request, image), wanted[image]
        with _reachable(host):
            current = registry.manifest_digest(host, repo, request.tag)
            digest = current if current and _labelled(host, repo, current, content_hash) else None
            digest = digest or registry.manifest_digest(host, repo, hash_tag(content_hash))
            if digest is None:
                return image, None
            sbom = sbom_tag(content_hash)
            tags = {request.tag: current, sbom: registry.manifest_digest(host, repo, sbom)}
            return image, Found(f"{host}/{repo}@{digest}", digest, local=False, tags=tags)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return {image: hit for image, hit in pool.map(one, wanted) if hit is not None}


def _labelled(host: str, repo: str, digest: str, content_hash: str) -> bool:
    """Whether the image `digest` of `repo` carries the content-hash label `content_hash`."""
    try:
        with RegistryImage(f"{host}/{repo}@{digest}") as image:
            return image_label(image, HASH_LABEL) == content_hash
    except (KbuildError, KeyError, TypeError, AttributeError):
        return False  # unreadable, or not an image: the hash tag decides


@contextmanager
def _reachable(host: str) -> Iterator[None]:
    try:
        yield
    except (URLError, OSError) as error:
        raise KbuildError(
            f"cannot reach the registry {host}: {error}",
            hint="start it (scripts/setup-host.sh), or choose another with --registry",
        ) from None


def _lookup(registry_host: str, repos: Mapping[str, str], wanted: Mapping[str, str]) -> dict[str, Found]:
    """HEAD each image's hash tag in its repository, a few at a time (loopback or not, the
    round trips dominate a no-op bake)."""

    def head(image: str) -> tuple[str, str | None]:
        with _reachable(registry_host):
            return image, registry.manifest_digest(registry_host, repos[image], hash_tag(wanted[image]))

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(head, repos))
    return {
        image: Found(f"{registry_host}/{repos[image]}@{digest}", digest, local=False)
        for image, digest in results
        if digest
    }


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

    def find_one(image: str, content_hash: str) -> Found | None:
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

    def find(wanted: Mapping[str, str]) -> dict[str, Found]:
        hits = {image: find_one(image, content_hash) for image, content_hash in wanted.items()}
        return {image: hit for image, hit in hits.items() if hit is not None}

    return find
