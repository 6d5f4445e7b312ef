"""Stage "publish": built OCI archives and found images -> tags in a registry or the engine.

A built image is an OCI archive (the only exporter that rewrites timestamps); it is copied to the
registry with skopeo, digest unchanged, or loaded into the engine. Every image gets two tags: the
requested one and its content-addressed `kbuild-<hash>` tag, by which later builds find it. An
image the plan found is only re-tagged (or copied from the repository it was found in).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from kbuild.compile.names import hash_tag, image_ref, oci_archive, repository
from kbuild.compile.pipeline import Compiled
from kbuild.compile.plan import Found
from kbuild.engine import registry
from kbuild.engine.buildx import OnState, TargetOutcome, ignore_state
from kbuild.engine.oci import ImageDiffError, OciArchive, RegistryImage, platform_digests
from kbuild.errors import KbuildError


@dataclass(frozen=True)
class Published:
    name: str
    status: str  # built | cached | failed (publishing failed)
    ref: str = ""
    digest: str = ""
    platforms: Mapping[str, str] = field(default_factory=dict)
    error: str = ""


def publish(
    compiled: Compiled,
    outcomes: Mapping[str, TargetOutcome],
    build_dir: Path,
    push: bool,
    say: Callable[[str], None],
    on_state: OnState = ignore_state,
) -> dict[str, Published]:
    """Tag every selected image that was built or found; image name -> what was published."""
    jobs: dict[str, Callable[[], Published]] = {}
    for name in compiled.selection.images:
        found = compiled.plan.found.get(name)
        if found is not None:
            jobs[name] = lambda name=name, found=found: _retag(compiled, name, found, push)
        elif outcomes[name].status == "built":
            archive = oci_archive(build_dir, compiled.request, name)
            jobs[name] = lambda name=name, archive=archive: _publish_archive(compiled, name, archive, push)
            on_state(name, "pushing" if push else "loading", "")

    def run(name: str) -> Published:
        item = _safely(name, jobs[name])
        on_state(name, item.status, item.error)
        return item

    with ThreadPoolExecutor(max_workers=8) as pool:
        published = dict(zip(jobs, pool.map(run, jobs), strict=True))
    for item in published.values():
        if item.status == "failed":
            say(f"[red]publishing {item.name} failed:[/] {item.error}")
    return published


def _safely(name: str, job: Callable[[], Published]) -> Published:
    try:
        return job()
    except (KbuildError, OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        return Published(name, "failed", error=str(detail).strip().splitlines()[-1] if detail else "")


def _publish_archive(compiled: Compiled, name: str, archive: Path, push: bool) -> Published:
    request = compiled.request
    with OciArchive(archive) as image:
        digest, platforms = image.index_digest(), platform_digests(image)
    hashed = f"{repository(request, name)}:{hash_tag(compiled.plan.hashes[name])}"
    if push:
        _skopeo("oci-archive:" + str(archive), "docker://" + hashed)
        reg, repo, _ = registry.split_ref(hashed)
        registry.put_tag(reg, repo, digest, request.tag)
    else:
        _run("docker", "load", "--quiet", "--input", str(archive))
        for ref in (hashed, image_ref(request, name)):
            _run("docker", "tag", digest, ref)  # the image store's ID is the index digest
    archive.unlink()
    return Published(name, "built", image_ref(request, name), digest, platforms)


def _retag(compiled: Compiled, name: str, found: Found, push: bool) -> Published:
    request = compiled.request
    hashed = f"{repository(request, name)}:{hash_tag(compiled.plan.hashes[name])}"
    wanted = image_ref(request, name)
    if found.local:
        for ref in (hashed, wanted):
            if ref != found.ref:
                _run("docker", "tag", found.ref, ref)
        return Published(name, "cached", wanted, found.digest)
    reg, repo, _ = registry.split_ref(hashed)
    if found.ref.partition("@")[0] != f"{reg}/{repo}":  # found under another namespace
        _skopeo("docker://" + found.ref, "docker://" + hashed)
    # One request when the tag is right already (the usual no-op): its manifest is the index.
    with RegistryImage(f"{reg}/{repo}:{request.tag}") as tagged:
        try:
            current = tagged.index_digest()
        except ImageDiffError:  # no such tag yet
            current = ""
        if current == found.digest:
            return Published(name, "cached", wanted, found.digest, platform_digests(tagged))
    registry.put_tag(reg, repo, found.digest, request.tag)
    with RegistryImage(f"{reg}/{repo}@{found.digest}") as image:
        platforms = platform_digests(image)
    return Published(name, "cached", wanted, found.digest, platforms)


def _skopeo(source: str, destination: str) -> None:
    """Copy every platform, digests unchanged; loopback registries speak plain HTTP."""
    command = ["skopeo", "copy", "--all", "--preserve-digests", "--quiet", "--retry-times", "2"]
    for flag, ref in (("--src-tls-verify", source), ("--dest-tls-verify", destination)):
        if ref.startswith("docker://"):
            host = ref.removeprefix("docker://").split("/", 1)[0]
            command.append(f"{flag}={'false' if registry.is_loopback(host) else 'true'}")
    _run(*command, source, destination)


def _run(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
