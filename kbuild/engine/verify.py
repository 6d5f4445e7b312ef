"""`kbuild verify`: rebuild images without any cache, their ancestors as published, and compare
each with the image published under the same content hash, down to the files."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from kbuild.compile.bake import BakeOptions
from kbuild.compile.lock import Lock
from kbuild.compile.names import layout_ref, oci_layout
from kbuild.compile.pipeline import Compiled, compile_catalog
from kbuild.compile.plan import Finder, Found
from kbuild.compile.select import Request, SelectOptions
from kbuild.engine.buildx import RunOptions, TargetOutcome, run_bake
from kbuild.engine.files import remove_exported, roots_dir, write_build_dir
from kbuild.engine.finders import registry_finder
from kbuild.engine.imagediff import compare
from kbuild.engine.oci import OciLayout, RegistryImage
from kbuild.engine.roots import host_mirror, prepare_roots
from kbuild.errors import KbuildError
from kbuild.model.catalog import Catalog


def verify_images(
    catalog: Catalog,
    options: SelectOptions,
    names: Sequence[str],
    build_dir: Path,
    run: RunOptions,
    say: Callable[[str], None],
    lock: Lock | None = None,
    locked: bool = False,
) -> int:
    """Rebuild `names` and compare; returns how many differ (or failed to rebuild)."""
    published: dict[str, Found | None] = {}

    def ancestors_only(request: Request) -> Finder:
        """The images named are rebuilt; their published ancestors are used as they are."""
        find = registry_finder(request)

        def lookup(wanted: Mapping[str, str]) -> dict[str, Found]:
            found = find(wanted)
            published.update((image, found.get(image)) for image in wanted if image in names)
            return {image: hit for image, hit in found.items() if image not in names}

        return lookup

    bake_options = BakeOptions(roots_dir=roots_dir(), no_cache=True)
    compiled = compile_catalog(
        catalog,
        options,
        build_dir,
        host_mirror,
        lock=lock,
        locked=locked,
        find=ancestors_only,
        bake_options=bake_options,
    )
    missing = [name for name, found in published.items() if found is None]
    if missing:
        raise KbuildError(
            f"nothing to verify against: {', '.join(missing)} not in {compiled.request.registry} "
            "with this content hash",
            hint="publish them first with `kbuild bake --push` (same options)",
        )
    bake_path = build_dir / "docker-bake.json"
    prepare_roots(compiled, say, lock)
    write_build_dir(compiled, build_dir, bake_path)
    say(f"rebuilding {len(compiled.bake.targets)} target(s) without cache")
    outcomes = run_bake(compiled, bake_path, run, say)
    differing = sum(
        not _same(name, found, compiled, build_dir, outcomes[name], say) for name, found in published.items()
    )
    remove_exported(build_dir, compiled.request)
    return differing


def _same(
    name: str,
    found: Found | None,
    compiled: Compiled,
    build_dir: Path,
    outcome: TargetOutcome,
    say: Callable[[str], None],
) -> bool:
    """Whether the rebuilt image is the published one; where not, say down to which files."""
    assert found is not None
    if outcome.status != "built":
        say(f"[red]{name}: the rebuild failed[/]: {outcome.error}")
        return False
    with (
        RegistryImage(found.ref) as reference,
        OciLayout(oci_layout(build_dir, compiled.request), layout_ref(compiled.request, name)) as rebuilt,
    ):
        report = compare(reference, rebuilt)
    if report.identical:
        say(f"[green]reproducible[/] {name} {found.digest}")
    else:
        say(f"[red]differs[/] {name}\n{report.render()}")
    return report.identical


def verify_against_lock(
    catalog: Catalog,
    options: SelectOptions,
    build_dir: Path,
    run: RunOptions,
    say: Callable[[str], None],
    lock: Lock,
) -> int:
    """Rebuild the locked selection without any cache and compare every image's per-platform
    digests with those kbuild.lock recorded: bit-for-bit reproducible on this machine too.
    Returns how many images differ, failed, or have no recorded digest."""
    from kbuild.engine.locking import BuildFailed, bake, exported_digests

    bake_options = BakeOptions(roots_dir=roots_dir(), no_cache=True)
    compiled = compile_catalog(
        catalog, options, build_dir, host_mirror, lock=lock, locked=True, bake_options=bake_options
    )
    entries = lock.entries(compiled.request.variant)
    say(f"rebuilding {len(compiled.selection.images)} locked image(s) without cache")
    try:
        bake(compiled, build_dir, "docker-bake.json", run, say, lock)
    except BuildFailed as failure:
        say(f"[red]the rebuild failed[/]: {', '.join(failure.names)} (logs: {build_dir / 'logs'})")
        return len(failure.names)
    differing = 0
    for name in compiled.selection.images:
        expected = entries[name].images
        got = exported_digests(compiled, build_dir, name)
        wrong = {p: d for p, d in got.items() if expected.get(p) != d}
        if not expected:
            differing += 1
            say(f"[red]no digest in kbuild.lock[/] for {name}: make it with `kbuild lock --update {name}`")
        elif wrong:
            differing += 1
            for platform, digest in sorted(wrong.items()):
                say(
                    f"[red]differs[/] {name} {platform}: kbuild.lock has {expected.get(platform)}, rebuilt {digest}"
                )
        else:
            say(f"[green]as locked[/] {name} {', '.join(f'{p} {d}' for p, d in sorted(got.items()))}")
    remove_exported(build_dir, compiled.request)
    return differing
