"""The command line: `kbuild list | graph | render | explain | compile | bake | doctor`.

Exit codes: 0 fine, 1 a build failed, 2 bad input."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kbuild.errors import KbuildError

if TYPE_CHECKING:
    from kbuild.model.catalog import Catalog

app = typer.Typer(
    help="kbuild: declarative, reproducible, multi-arch container image builds for OpenStack.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Workspace = Annotated[
    Path, typer.Option("--workspace", "-C", help="The workspace root (has recipes/).", file_okay=False)
]
Profiles = Annotated[
    list[str] | None, typer.Option("--profile", "-p", help="A profile from BUILD/ (repeatable).")
]
Patterns = Annotated[list[str] | None, typer.Argument(help="Regular expressions searched in image names.")]
DistroOpt = Annotated[str | None, typer.Option("--distro", "-d", help="Distro (default from settings).")]
ReleaseOpt = Annotated[
    str | None, typer.Option("--release", "-r", help="Release (default: the distro's first).")
]
TypeOpt = Annotated[str | None, typer.Option("--type", "-t", help="Install type: binary or source.")]
PlatformOpt = Annotated[
    list[str] | None, typer.Option("--platform", help="Platform(s), comma-separated or repeated.")
]
BuildDir = Annotated[Path, typer.Option("--build-dir", help="Where rendered contexts are written.")]
RegistryOpt = Annotated[str | None, typer.Option(help="Registry of the tags (default from settings).")]
NamespaceOpt = Annotated[str | None, typer.Option(help="Namespace of the tags (default from settings).")]
TagOpt = Annotated[str | None, typer.Option(help="Tag of every image (default from settings).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
OverlayOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--overlay",
        help="An overlay directory, after those of settings() (repeatable; later wins).",
        file_okay=False,
    ),
]


class GraphFormat(StrEnum):
    tree = "tree"
    json = "json"
    dot = "dot"


def _platforms(values: list[str] | None) -> tuple[str, ...]:
    return tuple(p.strip() for value in values or () for p in value.split(",") if p.strip())


def _options(
    profile: list[str] | None,
    patterns: list[str] | None,
    distro: str | None,
    release: str | None,
    install_type: str | None,
    platform: list[str] | None,
) -> dict[str, object]:
    return {
        "profiles": tuple(profile or ()),
        "patterns": tuple(patterns or ()),
        "distro": distro,
        "release": release,
        "install_type": install_type,
        "platforms": _platforms(platform),
    }


@app.command("list")
def list_images(
    patterns: Patterns = None,
    profile: Profiles = None,
    distro: DistroOpt = None,
    release: ReleaseOpt = None,
    install_type: TypeOpt = None,
    platform: PlatformOpt = None,
    overlay: OverlayOpt = None,
    as_json: JsonOpt = False,
    workspace: Workspace = Path("."),
) -> None:
    """List the selected images (all by default), parents first, and those an overlay disabled."""
    from kbuild.model.workspace import load_catalog
    from kbuild.compile.select import make_request, select

    catalog = load_catalog(workspace, overlay or ())
    request = make_request(catalog, **_options(profile, patterns, distro, release, install_type, platform))
    selection = select(catalog, request)
    rows = [
        {
            "name": name,
            "parent": catalog.images[name].parent,
            "matched": name in selection.matched,
            "location": str(catalog.images[name].location),
            "overlays": sorted(
                {o.overlay for c in catalog.images[name].origins.values() for o in c if o.overlay}
            ),
            "platforms": list(selection.platforms.get(name, request.platforms)),
            "excluded": selection.excluded.get(name),
        }
        for name in (*selection.images, *selection.excluded)
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        marks = [] if row["matched"] or row["excluded"] else ["ancestor"]
        marks += [f"overlay {', '.join(row['overlays'])}"] if row["overlays"] else []
        marks += (
            [f"only {', '.join(row['platforms'])}"] if row["platforms"] != list(request.platforms) else []
        )
        marks += [f"not built: {row['excluded']}"] if row["excluded"] else []
        mark = f"  ({'; '.join(marks)})" if marks else ""
        print(f"{row['name']:<28} {row['parent'] or '-':<24} {row['location']}{mark}")


@app.command()
def graph(
    patterns: Patterns = None,
    profile: Profiles = None,
    output_format: Annotated[
        GraphFormat, typer.Option("--format", "-f", help="tree, json or dot.")
    ] = GraphFormat.tree,
    overlay: OverlayOpt = None,
    workspace: Workspace = Path("."),
) -> None:
    """Show the parent graph of the selected images."""
    from kbuild.model.workspace import load_catalog
    from kbuild.compile.select import make_request, select

    catalog = load_catalog(workspace, overlay or ())
    selection = select(catalog, make_request(catalog, **_options(profile, patterns, None, None, None, None)))
    chosen = set(selection.images)
    children = {n: [c for c in kids if c in chosen] for n, kids in catalog.children().items() if n in chosen}
    roots = [n for n in selection.images if catalog.images[n].parent is None]
    if output_format is GraphFormat.json:
        print(
            json.dumps(
                {n: {"parent": catalog.images[n].parent, "children": children[n]} for n in selection.images},
                indent=2,
            )
        )
    elif output_format is GraphFormat.dot:
        print("digraph kbuild {\n  rankdir=LR;\n  node [shape=box];")
        for name in selection.images:
            print(f'  "{name}";')
            parent = catalog.images[name].parent
            if parent:
                print(f'  "{parent}" -> "{name}";')
        print("}")
    else:
        from rich.console import Console
        from rich.tree import Tree

        console = Console()
        for root in roots:
            tree = Tree(f"[bold]{root}[/bold]")
            stack = [(tree, root)]
            while stack:
                node, name = stack.pop()
                for child in children[name]:
                    stack.append((node.add(child), child))
            console.print(tree)


@app.command("render")
def render_image(
    image: Annotated[str, typer.Argument(help="The image to render.")],
    distro: DistroOpt = None,
    release: ReleaseOpt = None,
    install_type: TypeOpt = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Directory for Dockerfile and context.")
    ] = None,
    overlay: OverlayOpt = None,
    workspace: Workspace = Path("."),
) -> None:
    """Render one image's Dockerfile (printed, or written with its context to --output)."""
    from kbuild.compile.bake import write_atomic, write_if_changed
    from kbuild.compile.render import build_args, render
    from kbuild.compile.select import Selection, make_request

    catalog = _catalog_with(workspace, overlay, image)
    request = make_request(catalog, distro=distro, release=release, install_type=install_type)
    rendered = render(catalog, Selection((image,), (image,), {}), request, build_args(catalog.settings))
    item = next(t for t in rendered.targets if t.name == image)
    if output is None:
        sys.stdout.write(item.dockerfile)
        return
    write_atomic(output / "Dockerfile", item.dockerfile.encode())
    for name, source in item.files.items():
        write_if_changed(output / name, source.read_bytes())
    print(f"wrote {output / 'Dockerfile'} and {len(item.files)} context file(s)")


@app.command()
def explain(
    image: Annotated[str, typer.Argument(help="The image to explain.")],
    distro: DistroOpt = None,
    release: ReleaseOpt = None,
    install_type: TypeOpt = None,
    platform: PlatformOpt = None,
    overlay: OverlayOpt = None,
    as_json: JsonOpt = False,
    workspace: Workspace = Path("."),
) -> None:
    """Show every field of an image with where it was set (recipe or overlay, and what it
    replaced), and its Dockerfile annotated by block."""
    from kbuild.compile.explain import explain as explained
    from kbuild.compile.explain import text
    from kbuild.compile.select import make_request

    catalog = _catalog_with(workspace, overlay, image)
    request = make_request(catalog, **_options(None, None, distro, release, install_type, platform))
    result = explained(catalog, request, image)
    if as_json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(text(result))


def _catalog_with(workspace: Path, overlays: list[Path] | None, image: str) -> Catalog:
    """The catalog, which must have `image`."""
    from kbuild.model.workspace import load_catalog
    from kbuild.errors import did_you_mean

    catalog = load_catalog(workspace, overlays or ())
    if image not in catalog.images:
        raise KbuildError(f"unknown image '{image}'", hint=did_you_mean(image, catalog.images))
    return catalog


@app.command("compile")
def compile_bake(
    patterns: Patterns = None,
    profile: Profiles = None,
    distro: DistroOpt = None,
    release: ReleaseOpt = None,
    install_type: TypeOpt = None,
    platform: PlatformOpt = None,
    registry: RegistryOpt = None,
    namespace: NamespaceOpt = None,
    tag: TagOpt = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="The bake file to write.")] = Path(
        "build/docker-bake.json"
    ),
    build_dir: BuildDir = Path("build"),
    overlay: OverlayOpt = None,
    workspace: Workspace = Path("."),
) -> None:
    """Compile the selected images into a bake file for `docker buildx bake -f`: every image, as
    if nothing were built yet (`bake` leaves out what it finds by content hash)."""
    from kbuild.model.workspace import load_catalog
    from kbuild.compile.pipeline import compile_catalog, write_build

    options = _options(profile, patterns, distro, release, install_type, platform)
    compiled = compile_catalog(
        load_catalog(workspace, overlay or ()),
        build_dir,
        registry=registry,
        namespace=namespace,
        tag=tag,
        **options,
    )
    write_build(compiled, build_dir, output)
    count = len(compiled.selection.images)
    print(
        f"wrote {output}: {count} image(s) for {compiled.request.variant} on {', '.join(compiled.request.platforms)}"
    )


class Progress(StrEnum):
    auto = "auto"
    plain = "plain"
    quiet = "quiet"


PushOpt = Annotated[
    bool, typer.Option("--push/--load", help="Push to the registry, or load into the engine.")
]
BuilderOpt = Annotated[str | None, typer.Option(help="The buildx builder (any driver).")]
LockFileOpt = Annotated[
    Path | None, typer.Option("--lock-file", help="The lock (default: kbuild.lock in the workspace).")
]


def _cache_option(value: str | None) -> str | None:
    if value is None or value == "registry" or (value.startswith("local:") and len(value) > len("local:")):
        return value
    raise typer.BadParameter("use 'registry' or 'local:DIR'")


@app.command()
def bake(
    patterns: Patterns = None,
    profile: Profiles = None,
    distro: DistroOpt = None,
    release: ReleaseOpt = None,
    install_type: TypeOpt = None,
    platform: PlatformOpt = None,
    registry: RegistryOpt = None,
    namespace: NamespaceOpt = None,
    tag: TagOpt = None,
    push: PushOpt = False,
    locked: Annotated[
        bool, typer.Option("--locked", help="Build exactly what kbuild.lock pins; refuse a stale lock.")
    ] = False,
    cache: Annotated[
        str | None,
        typer.Option(
            help="Share BuildKit's layer cache: 'registry' (a cache tag per image) or 'local:DIR'.",
            callback=_cache_option,
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Rebuild every selected image from scratch.")
    ] = False,
    builder: BuilderOpt = None,
    progress: Annotated[
        Progress, typer.Option(help="auto: a line per image; plain: all BuildKit output.")
    ] = Progress.auto,
    retries: Annotated[int, typer.Option(help="Retries of a build that failed on the network.")] = 2,
    lock_file: LockFileOpt = None,
    build_dir: BuildDir = Path("build"),
    overlay: OverlayOpt = None,
    workspace: Workspace = Path("."),
) -> None:
    """Build the selected images with `docker buildx bake`; write summary, logs and manifest.

    An image whose content hash is already in the registry (--push) or the engine (--load) is not
    rebuilt, only tagged. Exit code 0 when every selected image was built or found, 1 otherwise."""
    from kbuild.compile.bake import BakeOptions
    from kbuild.engine.buildx import BuildOptions, build
    from kbuild.model.workspace import load_catalog
    from kbuild.compile.lock import read_lock
    from kbuild.compile.pipeline import compile_catalog, prepare_roots, write_build
    from kbuild.compile.plan import local_finder, registry_finder
    from kbuild.engine.publish import publish
    from kbuild.engine.results import write_results

    say = _say(progress)
    catalog = load_catalog(workspace, overlay or ())
    lock = read_lock(lock_file or workspace / "kbuild.lock") if locked else None
    finder = None if no_cache else registry_finder if push else local_finder
    compiled = compile_catalog(
        catalog,
        build_dir,
        lock=lock,
        locked=locked,
        find=finder,
        bake_options=BakeOptions(cache=cache, no_cache=no_cache),
        registry=registry,
        namespace=namespace,
        tag=tag,
        **_options(profile, patterns, distro, release, install_type, platform),
    )
    request = compiled.request
    building = compiled.bake["group"]["default"]["targets"]
    say(
        f"{len(compiled.selection.images)} image(s) for {request.variant} on {', '.join(request.platforms)}: "
        f"{len(building)} to build, {len(compiled.plan.found)} found by content hash"
    )
    bake_path = build_dir / "docker-bake.json"
    prepare_roots(compiled, say, lock)
    write_build(compiled, build_dir, bake_path)
    outcomes = build(compiled, bake_path, BuildOptions(builder, progress.value, retries), say)
    published = publish(compiled, outcomes, build_dir, push, say)
    report, _ = write_results(compiled, outcomes, published, build_dir, push)
    colours = {"built": "green", "cached": "cyan", "failed": "red", "parent_error": "red"}
    for status, colour in colours.items():
        for entry in report[status]:
            detail = f"  {entry['error']}" if entry.get("error") else ""
            seconds = f"{entry['seconds']:>7.1f} s" if "seconds" in entry else " " * 9
            say(f"[{colour}]{status:<12}[/] {entry['name']:<24} {seconds}{detail}")
    for entry in report.get("disabled", ()):
        say(f"[yellow]{'disabled':<12}[/] {entry['name']:<24} {entry['reason']}")
    say(f"manifest: {build_dir / 'kbuild-manifest.json'} (and .yml); summary: {build_dir / 'summary.json'}")
    if report["failed"] or report["parent_error"]:
        raise typer.Exit(1)


def _say(progress: Progress) -> Callable[[str], None]:
    from rich.console import Console

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    return console.print if progress is not Progress.quiet else (lambda *_: None)


@app.command()
def lock(
    patterns: Patterns = None,
    profile: Profiles = None,
    distro: DistroOpt = None,
    release: ReleaseOpt = None,
    install_type: TypeOpt = None,
    platform: PlatformOpt = None,
    update: Annotated[
        list[str] | None,
        typer.Option("--update", "-u", help="Move only these images' (or roots') entries (repeatable)."),
    ] = None,
    registry: RegistryOpt = None,
    namespace: NamespaceOpt = None,
    builder: BuilderOpt = None,
    progress: Annotated[Progress, typer.Option(help="As for `bake`.")] = Progress.auto,
    lock_file: LockFileOpt = None,
    build_dir: BuildDir = Path("build"),
    workspace: Workspace = Path("."),
) -> None:
    """Resolve and record in kbuild.lock what every selected image's inputs are: root digests and
    package sets, each image's package versions and pip pins with hashes, SOURCE_DATE_EPOCH.

    It builds the images (from cache where it can) and reads back what they installed. Entries of
    other variants and images are kept; --update moves only the entries named (and stale ones)."""
    from kbuild.compile.bake import write_if_changed
    from kbuild.engine.buildx import BuildOptions, build
    from kbuild.model.workspace import load_catalog, recipes_digest
    from kbuild.compile.lock import dump_lock, read_lock
    from kbuild.compile.pipeline import (
        compile_lock,
        merge_lock,
        prepare_roots,
        read_lock_entries,
        write_build,
    )
    from kbuild.compile.plan import registry_finder

    say = _say(progress)
    path = lock_file or workspace / "kbuild.lock"
    catalog = load_catalog(workspace)
    old = read_lock(path)
    compiled, epoch, moving = compile_lock(
        catalog,
        build_dir,
        old,
        tuple(update or ()),
        registry_finder,
        registry=registry,
        namespace=namespace,
        **_options(profile, patterns, distro, release, install_type, platform),
    )
    say(f"resolving {len(moving)} entr{'y' if len(moving) == 1 else 'ies'} for {compiled.request.variant}")
    bake_path = build_dir / "docker-bake-lock.json"
    prepare_roots(compiled, say)
    write_build(compiled, build_dir, bake_path)
    outcomes = build(compiled, bake_path, BuildOptions(builder, progress.value), say)
    failed = sorted(
        name for name, outcome in outcomes.items() if outcome.status in ("failed", "parent_error")
    )
    if failed:
        say(f"[red]cannot lock: {', '.join(failed)} did not build[/] (logs: {build_dir / 'logs'})")
        raise typer.Exit(1)
    entries = read_lock_entries(compiled, build_dir, moving)
    new = merge_lock(old, compiled.request.variant, epoch, recipes_digest(workspace), entries)
    write_if_changed(path, dump_lock(new))
    say(f"wrote {path}: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'} moved")


@app.command()
def verify(
    images: Annotated[list[str], typer.Argument(help="The images to rebuild and compare.")],
    distro: DistroOpt = None,
    release: ReleaseOpt = None,
    install_type: TypeOpt = None,
    platform: PlatformOpt = None,
    registry: RegistryOpt = None,
    namespace: NamespaceOpt = None,
    locked: Annotated[bool, typer.Option("--locked", help="Verify the locked build.")] = False,
    builder: BuilderOpt = None,
    progress: Annotated[Progress, typer.Option(help="As for `bake`.")] = Progress.auto,
    lock_file: LockFileOpt = None,
    build_dir: Annotated[Path, typer.Option(help="Where the rebuild goes.")] = Path("build/verify"),
    workspace: Workspace = Path("."),
) -> None:
    """Rebuild images without any cache and compare them with the published ones (found in the
    registry by content hash). Where digests differ, name the platforms, layers and files.

    Exit code 0 when every image is bit-for-bit identical, 1 otherwise."""
    from kbuild.compile.bake import BakeOptions, oci_archive, target_name
    from kbuild.engine.buildx import BuildOptions, build
    from kbuild.model.workspace import load_catalog
    from kbuild.errors import did_you_mean
    from kbuild.engine.imagediff import OciArchive, RegistryImage, compare
    from kbuild.compile.lock import read_lock
    from kbuild.compile.pipeline import compile_catalog, prepare_roots, write_build
    from kbuild.compile.plan import Finder, Found, registry_finder
    from kbuild.compile.select import Request

    say = _say(progress)
    catalog = load_catalog(workspace)
    for image in images:
        if image not in catalog.images:
            raise KbuildError(f"unknown image '{image}'", hint=did_you_mean(image, catalog.images))
    lock = read_lock(lock_file or workspace / "kbuild.lock") if locked else None
    options = _options(None, [f"^{re.escape(i)}$" for i in images], distro, release, install_type, platform)
    published: dict[str, Found | None] = {}

    def ancestors_only(request: Request) -> Finder:
        """The images named are rebuilt; their published ancestors are used as they are."""
        find = registry_finder(request)

        def lookup(image: str, content_hash: str) -> Found | None:
            found = find(image, content_hash)
            if image in images:
                published[image] = found
                return None
            return found

        return lookup

    compiled = compile_catalog(
        catalog,
        build_dir,
        lock=lock,
        locked=locked,
        find=ancestors_only,
        bake_options=BakeOptions(no_cache=True),
        registry=registry,
        namespace=namespace,
        **options,
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
    write_build(compiled, build_dir, bake_path)
    say(f"rebuilding {len(compiled.bake['target'])} target(s) without cache")
    outcomes = build(compiled, bake_path, BuildOptions(builder, progress.value), say)
    differing = 0
    for name, found in published.items():
        assert found is not None
        if outcomes[target_name(name)].status != "built":
            say(f"[red]{name}: the rebuild failed[/]: {outcomes[target_name(name)].error}")
            differing += 1
            continue
        with (
            RegistryImage(found.ref) as reference,
            OciArchive(oci_archive(build_dir, compiled.request, name)) as rebuilt,
        ):
            report = compare(reference, rebuilt)
        if report.identical:
            say(f"[green]reproducible[/] {name} {found.digest}")
        else:
            differing += 1
            say(f"[red]differs[/] {name}\n{report.render()}")
    if differing:
        raise typer.Exit(1)


@app.command()
def doctor(
    platform: PlatformOpt = None,
    registry: Annotated[str | None, typer.Option(help="Registry to check (default from settings).")] = None,
    workspace: Workspace = Path("."),
) -> None:
    """Check the build host: engine, buildx, image store, binfmt, registry, debootstrap."""
    from kbuild.model.workspace import load_catalog
    from kbuild.engine.doctor import checks

    catalog = load_catalog(workspace)
    platforms = _platforms(platform) or catalog.settings.platforms
    failed = 0
    for name, ok, detail, fix in checks(platforms, registry or catalog.settings.registry):
        print(f"{'ok  ' if ok else 'FAIL'}  {name}: {detail}")
        if not ok:
            failed += 1
            print(f"      fix: {fix}")
    if failed:
        raise typer.Exit(1)


def main() -> None:
    try:
        app()
    except KbuildError as error:
        print(error.render(), file=sys.stderr)
        sys.exit(2)
