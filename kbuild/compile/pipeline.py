"""The stages chained: catalog -> selection -> (lock pins) -> rendering -> content hashes -> plan
-> bake file; and the compilation `kbuild lock` bakes, with probes that read back the pins.

Pure: what it needs from the host (its Debian mirror, where images already are) is handed in."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from kbuild.compile.bake import BakeFile, BakeOptions, bake_file
from kbuild.compile.hashing import content_hashes, rootfs_key
from kbuild.compile.lock import ImagePins, Lock, LockEntry, pins, stale_entries
from kbuild.compile.names import TargetRef, root_name
from kbuild.compile.plan import Finder, Plan, make_plan
from kbuild.compile.render import Rendered, add_probes, build_args, render
from kbuild.compile.select import Request, Selection, SelectOptions, make_request, select
from kbuild.errors import KbuildError, did_you_mean
from kbuild.model.catalog import Catalog
from kbuild.model.schemas import Debootstrap

# The host's Debian mirror, asked only for a debootstrap root that names none of its own.
Mirror = Callable[[], str]

DEFAULT_BAKE = BakeOptions()


@dataclass(frozen=True)
class Compiled:
    catalog: Catalog
    request: Request
    selection: Selection
    rendered: Rendered
    inputs: Mapping[str, str]  # target -> content hash of its unpinned rendering (what a lock records)
    plan: Plan
    bake: BakeFile
    mirror: str | None  # the mirror of a debootstrap root (None for an upstream one)


def compile_catalog(
    catalog: Catalog,
    options: SelectOptions,
    build_dir: Path,
    mirror: Mirror,
    *,
    lock: Lock | None = None,
    locked: bool = False,
    find: Callable[[Request], Finder] | None = None,
    bake_options: BakeOptions = DEFAULT_BAKE,
) -> Compiled:
    """Compile the selection. `locked`: render the lock's pins, refusing a missing or stale lock.
    `find`: skip the images that already exist (see plan.py)."""
    front = _front(catalog, options, mirror, lock.source_date_epoch if locked and lock else None)
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
    mirror: str | None
    extra: Mapping[str, str]  # root facts for the content hash
    unpinned: Rendered
    inputs: Mapping[str, str]

    def render(self, pinned: Mapping[str, ImagePins]) -> Rendered:
        return render(self.catalog, self.selection, self.request, self.args, pinned)


def _front(catalog: Catalog, options: SelectOptions, host_mirror: Mirror, epoch: int | None) -> _Front:
    request = make_request(catalog, options)
    selection = select(catalog, request)
    args = build_args(catalog.settings, epoch)
    epoch = int(args["SOURCE_DATE_EPOCH"])
    unpinned = render(catalog, selection, request, args)
    root = catalog.distros[request.distro].roots[request.release]
    mirror = (root.mirror or host_mirror()) if isinstance(root, Debootstrap) else None
    inputs = lock_inputs(catalog, request, unpinned, epoch, mirror)
    extra = root_facts(catalog, request, epoch, mirror)
    return _Front(catalog, request, selection, args, mirror, extra, unpinned, inputs)


def _finish(
    front: _Front,
    rendered: Rendered,
    find: Callable[[Request], Finder] | None,
    build_dir: Path,
    bake_options: BakeOptions,
) -> Compiled:
    hashes = content_hashes(rendered, front.extra)
    plan = make_plan(rendered, hashes, find(front.request) if find else None)
    if bake_options.sbom:  # a probe on every image that is built, for its SBOM
        family = front.catalog.families[front.catalog.distros[front.request.distro].family]
        built = [name for name in plan.to_bake if name in front.selection.images]
        rendered = add_probes(rendered, family, only=built)
        hashes = content_hashes(rendered, front.extra)
        probes = tuple(t.name for t in rendered.targets if t.probe)
        plan = replace(plan, hashes=hashes, to_bake=plan.to_bake + probes)
    bake = bake_file(rendered, front.selection, plan, build_dir, bake_options)
    return Compiled(
        front.catalog, front.request, front.selection, rendered, front.inputs, plan, bake, front.mirror
    )


def root_facts(
    catalog: Catalog, request: Request, epoch: int, mirror: str | None, per_arch: bool = True
) -> dict[str, str]:
    """What a debootstrap root's tarballs are made from: part of its content hash."""
    distro = catalog.distros[request.distro]
    root = distro.roots[request.release]
    if not isinstance(root, Debootstrap) or mirror is None:
        return {}
    arches = [catalog.platforms[p].arch[distro.family] for p in request.platforms] if per_arch else ["*"]
    keys = [rootfs_key(root, mirror, request.release, arch, epoch) for arch in arches]
    return {root_name(distro.name, request.release): ",".join(keys)}


def lock_inputs(
    catalog: Catalog, request: Request, unpinned: Rendered, epoch: int, mirror: str | None
) -> dict[str, str]:
    """What a lock entry is made from: the unpinned content hash, whatever the platforms (the
    entry holds pins per platform), so a lock made for more platforms serves fewer."""
    facts = root_facts(catalog, request, epoch, mirror, per_arch=False)
    return content_hashes(unpinned, facts, platforms=False)


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


# --- kbuild lock ------------------------------------------------------------------------------


def compile_lock(
    catalog: Catalog,
    options: SelectOptions,
    build_dir: Path,
    mirror: Mirror,
    old: Lock | None,
    update: Sequence[str],
    find: Callable[[Request], Finder] | None,
    bake_options: BakeOptions = DEFAULT_BAKE,
) -> tuple[Compiled, int, set[str]]:
    """Compile what `kbuild lock` bakes: every image whose entry must move rendered without pins
    (the rest with theirs), plus a probe on each image and root whose entry must move and on
    their parents. Returns the compilation, the lock's SOURCE_DATE_EPOCH and the names to move."""
    # Moving a few entries keeps the lock's epoch: a new epoch would move every entry.
    front = _front(catalog, options, mirror, old.source_date_epoch if old and update else None)
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
    parents = {t.name: t.parent_ref.name for t in rendered.targets if isinstance(t.parent_ref, TargetRef)}
    probed = moving | {parents[n] for n in moving if n in parents}
    with_probes = add_probes(rendered, catalog.families[catalog.distros[request.distro].family])
    chosen = Rendered(
        request,
        tuple(t for t in with_probes.targets if not t.probe or t.parent in probed),
        rendered.args,
    )
    epoch = int(front.args["SOURCE_DATE_EPOCH"])
    return _finish(front, chosen, find, build_dir, replace(bake_options, export=False)), epoch, moving


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
            images = {**previous.images, **entry.images}
            entry = LockEntry(entry.inputs, pins, {**previous.digests, **entry.digests}, images)
        current[name] = entry
    return Lock(epoch, recipes, variants)


def with_image_digests(lock: Lock, variant: str, digests: Mapping[str, Mapping[str, str]]) -> Lock:
    """The lock with what its locked build gave (image -> platform -> manifest digest) recorded."""
    variants = {name: dict(entries) for name, entries in lock.variants.items()}
    for name, images in digests.items():
        entry = variants[variant][name]
        variants[variant][name] = replace(entry, images={**entry.images, **images})
    return Lock(lock.source_date_epoch, lock.recipes, variants)
