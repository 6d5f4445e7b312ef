"""Where images already are: the finders the plan stage asks, by content hash.

Pushing, the target registry is asked (the target repository first, then any repository of the
same image name, so a new namespace reuses what an old one built); loading, the engine's store.
"""

from __future__ import annotations

import itertools
import subprocess
from urllib.error import URLError

from kbuild.compile.names import hash_tag, repository
from kbuild.compile.plan import Finder, Found
from kbuild.compile.select import Request
from kbuild.engine import registry
from kbuild.errors import KbuildError


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
