"""Commands that read the catalog: `list`, `graph`, `render`, `explain`."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from kbuild.cli.app import app
from kbuild.cli.options import SELECT, VARIANT, Inputs, JsonOpt, shared_options


class GraphFormat(StrEnum):
    tree = "tree"
    json = "json"
    dot = "dot"


@app.command("list")
@shared_options(*SELECT, *VARIANT)
def list_images(
    inputs: Inputs,
    as_json: JsonOpt = False,
) -> None:
    """List the selected images (all by default), parents first, and those an overlay disabled."""
    from kbuild.compile.select import make_request, select

    images = inputs.catalog()
    request = make_request(images, inputs.select)
    selected = select(images, request)
    rows = [
        {
            "name": name,
            "parent": images.images[name].parent,
            "matched": name in selected.matched,
            "location": str(images.images[name].location),
            "overlays": sorted(
                {o.overlay for c in images.images[name].origins.values() for o in c if o.overlay}
            ),
            "platforms": list(selected.platforms.get(name, request.platforms)),
            "excluded": selected.excluded.get(name),
            "unbuildable": selected.unbuildable.get(name),
        }
        for name in (*selected.images, *selected.excluded, *selected.unbuildable)
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        marks = [] if row["matched"] or row["excluded"] or row["unbuildable"] else ["ancestor"]
        marks += [f"overlay {', '.join(row['overlays'])}"] if row["overlays"] else []
        marks += (
            [f"only {', '.join(row['platforms'])}"] if row["platforms"] != list(request.platforms) else []
        )
        marks += [f"not built: {row['excluded']}"] if row["excluded"] else []
        marks += [f"unbuildable on {request.distro}: {row['unbuildable']}"] if row["unbuildable"] else []
        mark = f"  ({'; '.join(marks)})" if marks else ""
        print(f"{row['name']:<28} {row['parent'] or '-':<24} {row['location']}{mark}")


@app.command()
@shared_options(*SELECT)
def graph(
    inputs: Inputs,
    output_format: Annotated[
        GraphFormat, typer.Option("--format", "-f", help="tree, json or dot.")
    ] = GraphFormat.tree,
) -> None:
    """Show the parent graph of the selected images."""
    from kbuild.compile.select import make_request, select

    images = inputs.catalog()
    selected = select(images, make_request(images, inputs.select))
    chosen = set(selected.images)
    children = {n: [c for c in kids if c in chosen] for n, kids in images.children().items() if n in chosen}
    if output_format is GraphFormat.json:
        graph = {n: {"parent": images.images[n].parent, "children": children[n]} for n in selected.images}
        print(json.dumps(graph, indent=2))
    elif output_format is GraphFormat.dot:
        print("digraph kbuild {\n  rankdir=LR;\n  node [shape=box];")
        for name in selected.images:
            print(f'  "{name}";')
            parent = images.images[name].parent
            if parent:
                print(f'  "{parent}" -> "{name}";')
        print("}")
    else:
        from rich.console import Console
        from rich.tree import Tree

        console = Console()
        for root in (n for n in selected.images if images.images[n].parent is None):
            tree = Tree(f"[bold]{root}[/bold]")
            stack = [(tree, root)]
            while stack:
                node, name = stack.pop()
                for child in children[name]:
                    stack.append((node.add(child), child))
            console.print(tree)


@app.command("render")
@shared_options("distro", "release", "install_type")
def render_image(
    inputs: Inputs,
    image: Annotated[str, typer.Argument(help="The image to render.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Directory for Dockerfile and context.")
    ] = None,
) -> None:
    """Render one image's Dockerfile (printed, or written with its context to --output)."""
    from kbuild.compile.render import build_args, render
    from kbuild.compile.select import Selection, make_request
    from kbuild.engine.files import write_atomic, write_if_changed

    images = inputs.catalog(image)
    request = make_request(images, inputs.select)
    rendered = render(images, Selection((image,), (image,), {}), request, build_args(images.settings))
    item = next(t for t in rendered.targets if t.name == image)
    if output is None:
        sys.stdout.write(item.dockerfile)
        return
    write_atomic(output / "Dockerfile", item.dockerfile.encode())
    for name, source in item.files.items():
        write_if_changed(output / name, source.read_bytes())
    print(f"wrote {output / 'Dockerfile'} and {len(item.files)} context file(s)")


@app.command()
@shared_options(*VARIANT)
def explain(
    inputs: Inputs,
    image: Annotated[str, typer.Argument(help="The image to explain.")],
    as_json: JsonOpt = False,
) -> None:
    """Show every field of an image with where it was set (recipe or overlay, and what it
    replaced), and its Dockerfile annotated by block."""
    from kbuild.compile.explain import explain as explained
    from kbuild.compile.explain import text
    from kbuild.compile.select import make_request

    images = inputs.catalog(image)
    result = explained(images, make_request(images, inputs.select), image)
    if as_json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(text(result))
