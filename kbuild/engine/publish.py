"""Stage "publish": built images in the OCI layout and found images -> tags in a registry or
the engine.

A built image is in the bake's OCI layout directory; it is copied to the registry with skopeo,
digest unchanged, or loaded into the engine. Parents are copied before their children, so a
layer they share is uploaded once (skopeo skips the blobs the registry has). Every image gets two
tags: the requested one and its content-addressed `kbuild-<hash>` tag, by which later builds find
it. An image the plan found is only re-tagged (or copied from the repository it was found in).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from kbuild.compile.names import TargetRef, hash_tag, image_ref, layout_ref, oci_layout, repository
from kbuild.compile.pipeline import Compiled
from kbuild.compile.plan import Found
from kbuild.engine import registry
from kbuild.engine.buildx import OnState, TargetOutcome, ignore_state
from kbuild.engine.oci import OciLayout, RegistryImage, platform_digests
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
    built: set[str] = set()  # copied from the layout (the others are only tagged)
    layout = oci_layout(build_dir, compiled.request)
    for name in compiled.selection.images:  # parents first
        found = compiled.plan.found.get(name)
        if found is not None:
            jobs[name] = lambda name=name, found=found: _retag(compiled, name, found, push)
        elif outcomes[name].status == "built":
            jobs[name] = lambda name=name: _publish_built(compiled, name, layout, push)
            built.add(name)
            on_state(name, "pushing" if push else "loading", "")
    parents = {
        t.name: t.parent_ref.name for t in compiled.rendered.targets if isinstance(t.parent_ref, TargetRef)
    }
    futures: dict[str, Future[Published]] = {}

    def run(name: str) -> Published:
        # A built parent is copied before its built child, so their shared layers go up once. Its
        # job was queued first, so it runs or has run: waiting on it cannot deadlock.
        parent = parents.get(name)
        if name in built and parent in built:
            futures[parent].result()
        item = _safely(name, jobs[name])
        on_state(name, item.status, item.error)
        return item

    with ThreadPoolExecutor(max_workers=8) as pool:
        for name in jobs:
            futures[name] = pool.submit(run, name)
        published = {name: future.result() for name, future in futures.items()}
    shutil.rmtree(layout, ignore_errors=True)  # every built image is now in the registry or the engine
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


def _publish_built(compiled: Compiled, name: str, layout: Path, push: bool) -> Published:
    request = compiled.request
    with OciLayout(layout, layout_ref(request, name)) as image:
        digest, platforms = image.index_digest(), platform_digests(image)
        hashed = f"{repository(request, name)}:{hash_tag(compiled.plan.hashes[name])}"
        if push:
            _skopeo(f"oci:{layout}:{image.ref}", "docker://" + hashed)
            reg, repo, _ = registry.split_ref(hashed)
            registry.put_tag(reg, repo, digest, request.tag)
        else:
            loading = subprocess.Popen(["docker", "load", "--quiet"], stdin=subprocess.PIPE,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
            assert loading.stdin is not None
            with loading.stdin:
                image.write_archive(loading.stdin)
            if loading.wait() != 0:
                raise KbuildError(f"docker load: {loading.stderr.read().decode() if loading.stderr else ''}")
            for ref in (hashed, image_ref(request, name)):
                _run("docker", "tag", digest, ref)  # the image store's ID is the index digest
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
    # Nothing to do when the tag is right already (the usual no-op); the index is kept on disk.
    if tag_digest(found, reg, repo, request.tag) != found.digest:
        registry.put_tag(reg, repo, found.digest, request.tag)
    with RegistryImage(f"{reg}/{repo}@{found.digest}") as image:
        platforms = platform_digests(image)
    return Published(name, "cached", wanted, found.digest, platforms)


def tag_digest(found: Found, reg: str, repo: str, tag: str) -> str | None:
    """The digest `tag` of `repo` points at: as the finder read it with the image (only in the
    repository it was found in), else asked now."""
    return found.tags[tag] if tag in found.tags else registry.manifest_digest(reg, repo, tag)


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
