"""The command line: `kbuild list | graph | render | explain | compile | bake | doctor`.

Exit codes: 0 fine, 1 a build failed, 2 bad input."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kbuild.errors import KbuildError

if TYPE_CHECKING:
    from kbuild.catalog import Catalog

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
    from kbuild.catalog import load_catalog
    from kbuild.select import make_request, select

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
    from kbuild.catalog import load_catalog
    from kbuild.select import make_request, select

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
    from kbuild.bakefile import write_atomic, write_if_changed
    from kbuild.render import render
    from kbuild.select import Selection, make_request

    catalog = _catalog_with(workspace, overlay, image)
    request = make_request(catalog, distro=distro, release=release, install_type=install_type)
    rendered = render(catalog, Selection((image,), (image,), {}), request)
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
    from kbuild.explain import explain as explained
    from kbuild.explain import text
    from kbuild.select import make_request

    catalog = _catalog_with(workspace, overlay, image)
    request = make_request(catalog, **_options(None, None, distro, release, install_type, platform))
    result = explained(catalog, request, image)
    if as_json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(text(result))


def _catalog_with(workspace: Path, overlays: list[Path] | None, image: str) -> Catalog:
    """The catalog, which must have `image`."""
    from kbuild.catalog import load_catalog
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
    """Compile the selected images into a bake file for `docker buildx bake -f`."""
    from kbuild.pipeline import compile_workspace, write_build

    options = _options(profile, patterns, distro, release, install_type, platform)
    compiled = compile_workspace(
        workspace, build_dir, overlay or (), registry=registry, namespace=namespace, tag=tag, **options
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
    push: Annotated[
        bool, typer.Option("--push/--load", help="Push to the registry, or load into the engine.")
    ] = False,
    builder: Annotated[str | None, typer.Option(help="The buildx builder (any driver).")] = None,
    progress: Annotated[
        Progress, typer.Option(help="auto: a line per image; plain: all BuildKit output.")
    ] = Progress.auto,
    retries: Annotated[int, typer.Option(help="Retries of a build that failed on the network.")] = 2,
    build_dir: BuildDir = Path("build"),
    overlay: OverlayOpt = None,
    workspace: Workspace = Path("."),
) -> None:
    """Build the selected images with `docker buildx bake`; write summary, logs and manifest.

    Exit code 0 when every selected image was built, 1 otherwise."""
    from rich.console import Console

    from kbuild.build import BuildOptions, build
    from kbuild.pipeline import compile_workspace, prepare_roots, write_build
    from kbuild.results import write_results

    console = Console(stderr=True, highlight=False)
    say = console.print if progress is not Progress.quiet else (lambda *_: None)
    options = _options(profile, patterns, distro, release, install_type, platform)
    compiled = compile_workspace(
        workspace, build_dir, overlay or (), registry=registry, namespace=namespace, tag=tag, **options
    )
    bake_path = build_dir / "docker-bake.json"
    prepare_roots(compiled, say)
    write_build(compiled, build_dir, bake_path)
    request = compiled.request
    say(
        f"baking {len(compiled.selection.images)} image(s) for {request.variant} on {', '.join(request.platforms)}"
    )
    outcomes = build(compiled, bake_path, BuildOptions(push, builder, progress.value, retries), say)
    report, _ = write_results(compiled, outcomes, build_dir, push)
    for status, colour in (("built", "green"), ("failed", "red"), ("parent_error", "red")):
        for entry in report[status]:
            detail = f"  {entry['error']}" if entry.get("error") else ""
            say(f"[{colour}]{status:<12}[/] {entry['name']:<24} {entry['seconds']:>7.1f} s{detail}")
    for entry in report.get("disabled", ()):
        say(f"[yellow]{'disabled':<12}[/] {entry['name']:<24} {entry['reason']}")
    say(f"manifest: {build_dir / 'kbuild-manifest.json'} (and .yml); summary: {build_dir / 'summary.json'}")
    if report["failed"] or report["parent_error"]:
        raise typer.Exit(1)


@app.command()
def doctor(
    platform: PlatformOpt = None,
    registry: Annotated[str | None, typer.Option(help="Registry to check (default from settings).")] = None,
    workspace: Workspace = Path("."),
) -> None:
    """Check the build host: engine, buildx, image store, binfmt, registry, debootstrap."""
    from kbuild.catalog import load_catalog
    from kbuild.doctor import checks

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
