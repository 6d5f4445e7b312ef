"""The stages chained: workspace -> catalog -> selection -> (lock pins) -> rendering -> content
hashes -> plan -> bake file; and `kbuild lock`, which bakes probes and reads back the pins."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kbuild.compile.bake import (
    DEFAULT_OPTIONS,
    BakeOptions,
    bake_file,
    dump_json,
    oci_archive,
    probe_dir,
    rootfs_dir,
    write_atomic,
    write_contexts,
)
from kbuild.model.schemas import Debootstrap
from kbuild.model.catalog import Catalog
from kbuild.model.workspace import load_catalog
from kbuild.errors import KbuildError, did_you_mean
from kbuild.compile.hashing import content_hashes
from kbuild.compile.lock import (
    ImagePins,
    Lock,
    LockEntry,
    own_packages,
    parse_installed,
    pins,
    pip_pins,
    stale_entries,
)
from kbuild.compile.plan import Finder, Plan, make_plan
from kbuild.compile.render import Rendered, add_probes, build_args, render, root_name
from kbuild.engine.roots import rootfs_key, tarball_digest, tarball_packages
from kbuild.compile.select import Request, Selection, make_request, select


@dataclass(frozen=True)
class Compiled:
    catalog: Catalog
    request: Request
    selection: Selection
    rendered: Rendered
    inputs: Mapping[str, str]  # target -> content hash of its unpinned rendering (what a lock records)
    plan: Plan
    bake: dict[str, Any]


def compile_catalog(
    catalog: Catalog,
    build_dir: Path,
    *,
    lock: Lock | None = None,
    locked: bool = False,
    find: Callable[[Request], Finder] | None = None,
    bake_options: BakeOptions = DEFAULT_OPTIONS,
    **options: Any,
) -> Compiled:
    """Compile the selection. `locked`: render the lock's pins, refusing a missing or stale lock.
    `find`: skip the images that already exist (see plan.py)."""
    front = _front(catalog, lock.source_date_epoch if locked and lock else None, options)
    rendered = front.unpinned
    if locked:
        check_lock(catalog, lock, front.request, front.inputs)
        assert lock is not None
        rendered = front.render(pins(lock, front.request.variant))
    return _finish(front, rendered, find, build_dir, bake_options)


@dataclass(frozen=True)
class _Front:
    """What every compilation starts from: the request, the selection, the build arguments and
    the unpinned rendering with its lock inputs."""

    catalog: Catalog
    request: Request
    selection: Selection
    args: Mapping[str, str]
    extra: Mapping[str, str]  # root facts for the content hash
    unpinned: Rendered
    inputs: Mapping[str, str]

    def render(self, pinned: Mapping[str, ImagePins]) -> Rendered:
        return render(self.catalog, self.selection, self.request, self.args, pinned)


def _front(catalog: Catalog, epoch: int | None, options: Mapping[str, Any]) -> _Front:
    request = make_request(catalog, **options)
    selection = select(catalog, request)
    args = build_args(catalog.settings, epoch)
    epoch = int(args["SOURCE_DATE_EPOCH"])
    unpinned = render(catalog, selection, request, args)
    inputs = lock_inputs(catalog, request, unpinned, epoch)
    return _Front(catalog, request, selection, args, root_facts(catalog, request, epoch), unpinned, inputs)


def compile_workspace(root: Path, build_dir: Path, overlays: Sequence[Path] = (), **options: Any) -> Compiled:
    return compile_catalog(load_catalog(root, overlays), build_dir, **options)


def _finish(
    front: _Front,
    rendered: Rendered,
    find: Callable[[Request], Finder] | None,
    build_dir: Path,
    bake_options: BakeOptions,
) -> Compiled:
    hashes = content_hashes(rendered, front.extra)
    plan = make_plan(rendered, hashes, find(front.request) if find else None)
    bake = bake_file(rendered, front.selection, plan, build_dir, bake_options)
    return Compiled(front.catalog, front.request, front.selection, rendered, front.inputs, plan, bake)


def root_facts(catalog: Catalog, request: Request, epoch: int, per_arch: bool = True) -> dict[str, str]:
    """What a debootstrap root's tarballs are made from: part of its content hash."""
    distro = catalog.distros[request.distro]
    root = distro.roots[request.release]
    if not isinstance(root, Debootstrap):
        return {}
    arches = [catalog.platforms[p].arch[distro.family] for p in request.platforms] if per_arch else ["*"]
    keys = [rootfs_key(root, request.release, arch, epoch) for arch in arches]
    return {root_name(distro.name, request.release): ",".join(keys)}


def lock_inputs(catalog: Catalog, request: Request, unpinned: Rendered, epoch: int) -> dict[str, str]:
    """What a lock entry is made from: the unpinned content hash, whatever the platforms (the
    entry holds pins per platform), so a lock made for more platforms serves fewer."""
    return content_hashes(unpinned, root_facts(catalog, request, epoch, per_arch=False), platforms=False)


def check_lock(catalog: Catalog, lock: Lock | None, request: Request, inputs: Mapping[str, str]) -> None:
    """Refuse to build from a missing or stale lock, naming every image it cannot pin."""
    if lock is None:
        raise KbuildError(
            f"--locked, but there is no kbuild.lock (needed for {', '.join(inputs)})",
            hint="make it with `kbuild lock` and commit it",
        )
    stale = stale_entries(lock, request.variant, inputs, request.platforms)
    if stale:
        raise KbuildError(
            f"kbuild.lock is stale for {request.variant}: {', '.join(stale)}",
            notes=[
                (f"{name}: {why}", catalog.images[name].location if name in catalog.images else None)
                for name, why in stale.items()
            ],
            hint=f"update it with `kbuild lock --update {' --update '.join(stale)}`",
        )


def write_build(compiled: Compiled, build_dir: Path, bake_path: Path) -> None:
    """Contexts first, the bake file last and atomically: a bake file never names missing contexts."""
    write_contexts(compiled.rendered, build_dir)
    oci_archive(build_dir, compiled.request, "-").parent.mkdir(parents=True, exist_ok=True)
    write_atomic(bake_path, dump_json(compiled.bake))


def prepare_roots(compiled: Compiled, say: Callable[[str], None], lock: Lock | None = None) -> None:
    """Make the debootstrap tarballs the planned root targets need, one per platform (cached).
    With a lock, a tarball must hold the packages the lock recorded."""
    from kbuild.engine.roots import ensure_rootfs

    request = compiled.request
    distro = compiled.catalog.distros[request.distro]
    epoch = int(compiled.rendered.args["SOURCE_DATE_EPOCH"])
    for target in compiled.rendered.targets:
        if target.rootfs is None or target.name not in compiled.plan.build:
            continue
        root = distro.roots[request.release]
        assert isinstance(root, Debootstrap)
        entry = lock.entries(request.variant).get(target.name) if lock else None
        for platform in request.platforms:
            spec = compiled.catalog.platforms[platform]
            arch = spec.arch[distro.family]
            tarball = ensure_rootfs(root, request.release, arch, rootfs_dir(target.rootfs), epoch, say)
            # The Dockerfile names tarballs by BuildKit's TARGETARCH; families may name arches differently.
            link = tarball.with_name(f"rootfs-{spec.buildkit_arch}.tar.gz")
            if link != tarball and not link.exists():
                link.symlink_to(tarball.name)
            if entry and entry.digests.get(platform) != tarball_digest(tarball):
                expected = entry.pins.packages.get(platform, {})
                if tarball_packages(tarball) != expected:
                    raise KbuildError(
                        f"the {target.name} tarball for {platform} ({tarball}) does not hold the packages "
                        "kbuild.lock recorded (the mirror moved since the lock was made)",
                        hint=f"move the lock with `kbuild lock --update {target.name}`",
                    )


# --- kbuild lock ------------------------------------------------------------------------------


def compile_lock(
    catalog: Catalog,
    build_dir: Path,
    old: Lock | None,
    update: Sequence[str],
    find: Callable[[Request], Finder] | None,
    **options: Any,
) -> tuple[Compiled, int, set[str]]:
    """Compile what `kbuild lock` bakes: every image whose entry must move rendered without pins
    (the rest with theirs), plus a probe on each image and root whose entry must move and on
    their parents. Returns the compilation, the lock's SOURCE_DATE_EPOCH and the names to move."""
    # Moving a few entries keeps the lock's epoch: a new epoch would move every entry.
    front = _front(catalog, old.source_date_epoch if old and update else None, options)
    request, inputs = front.request, front.inputs
    for name in update:
        if name not in inputs:
            raise KbuildError(
                f"--update {name}: not an image (or root) of this selection",
                hint=did_you_mean(name, inputs) or f"selected: {', '.join(inputs)}",
            )
    stale = stale_entries(old, request.variant, inputs, request.platforms) if old else dict.fromkeys(inputs)
    moving = set(update) | set(stale) if update else set(inputs)
    kept = {n: e.pins for n, e in (old.entries(request.variant) if old else {}).items() if n not in moving}
    rendered = front.render(kept)
    parents = {t.name: t.parent_source.removeprefix("target:") for t in rendered.targets if t.parent_source}
    probed = moving | {parents[n] for n in moving if n in parents}
    with_probes = add_probes(rendered, catalog.families[catalog.distros[request.distro].family])
    chosen = Rendered(
        request,
        tuple(t for t in with_probes.targets if not t.probe or t.parent in probed),
        rendered.args,
    )
    epoch = int(front.args["SOURCE_DATE_EPOCH"])
    return _finish(front, chosen, find, build_dir, BakeOptions(export=False)), epoch, moving


def read_lock_entries(compiled: Compiled, build_dir: Path, moving: set[str]) -> dict[str, LockEntry]:
    """The new entries, from what the probes wrote (`<probe>/<platform>/packages`, `pip.json`)."""
    request = compiled.request
    installed: dict[str, dict[str, dict[str, str]]] = {}
    reports: dict[str, dict[str, tuple[str, ...]]] = {}
    for target in compiled.rendered.targets:
        if not target.probe or target.parent is None:
            continue
        for platform in request.platforms:
            # The local exporter writes one directory per platform, unless there is only one.
            directory = probe_dir(build_dir, request, target.name)
            if len(request.platforms) > 1:
                directory /= platform.replace("/", "_")
            try:
                text = (directory / "packages").read_text()
            except FileNotFoundError:
                raise KbuildError(f"{target.name} wrote no package list for {platform}") from None
            installed.setdefault(target.parent, {})[platform] = parse_installed(text)
            report = directory / "pip.json"
            if report.is_file():
                reports.setdefault(target.parent, {})[platform] = pip_pins(json.loads(report.read_text()))
    entries = {}
    for target in compiled.rendered.targets:
        if target.name not in moving:
            continue
        packages = installed[target.name]
        digests: dict[str, str] = {}
        if target.rootfs:  # a debootstrap root: its whole package set, and its tarballs' digests
            digests = _root_digests(compiled, target.rootfs)
        else:
            parent = target.parent_source.removeprefix("target:") if target.parent_source else ""
            if parent in installed:
                packages = {p: own_packages(v, installed[parent].get(p, {})) for p, v in packages.items()}
        entries[target.name] = LockEntry(
            compiled.inputs[target.name], ImagePins(packages, reports.get(target.name, {})), digests
        )
    return entries


def _root_digests(compiled: Compiled, rootfs: str) -> dict[str, str]:
    request = compiled.request
    family = compiled.catalog.distros[request.distro].family
    return {
        p: tarball_digest(rootfs_dir(rootfs) / f"rootfs-{compiled.catalog.platforms[p].arch[family]}.tar.gz")
        for p in request.platforms
    }


def merge_lock(
    old: Lock | None, variant: str, epoch: int, recipes: str, entries: Mapping[str, LockEntry]
) -> Lock:
    """The old lock with `entries` moved. An entry made from the same inputs keeps the pins of
    the platforms that were not resolved this time."""
    variants = {name: dict(entries_) for name, entries_ in (old.variants if old else {}).items()}
    current = variants.setdefault(variant, {})
    for name, entry in entries.items():
        previous = current.get(name)
        if previous is not None and previous.inputs == entry.inputs:
            pins = ImagePins(
                {**previous.pins.packages, **entry.pins.packages}, {**previous.pins.pip, **entry.pins.pip}
            )
            entry = LockEntry(entry.inputs, pins, {**previous.digests, **entry.digests})
        current[name] = entry
    return Lock(epoch, recipes, variants)
