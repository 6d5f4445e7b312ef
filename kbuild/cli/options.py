"""The options every command shares, and the one typed value they become."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from kbuild.compile.select import SelectOptions
    from kbuild.model.catalog import Catalog

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
PushOpt = Annotated[
    bool, typer.Option("--push/--load", help="Push to the registry, or load into the engine.")
]
BuilderOpt = Annotated[str | None, typer.Option(help="The buildx builder (any driver).")]
LockFileOpt = Annotated[
    Path | None, typer.Option("--lock-file", help="The lock (default: kbuild.lock in the workspace).")
]


class Progress(StrEnum):
    auto = "auto"
    plain = "plain"
    quiet = "quiet"


ProgressOpt = Annotated[Progress, typer.Option(help="auto: a line per image; plain: all BuildKit output.")]


def platforms(values: list[str] | None) -> tuple[str, ...]:
    return tuple(p.strip() for value in values or () for p in value.split(",") if p.strip())


def selection(ctx: typer.Context, **overrides: Any) -> SelectOptions:
    """The selection options of the command being run, from its parameters by their shared names
    (a command without one of them leaves that choice to the workspace settings)."""
    from kbuild.compile.select import SelectOptions

    params = {**ctx.params, **overrides}
    return SelectOptions(
        profiles=tuple(params.get("profile") or ()),
        patterns=tuple(params.get("patterns") or ()),
        distro=params.get("distro"),
        release=params.get("release"),
        install_type=params.get("install_type"),
        platforms=platforms(params.get("platform")),
        registry=params.get("registry"),
        namespace=params.get("namespace"),
        tag=params.get("tag"),
    )


def catalog(ctx: typer.Context, image: str | None = None) -> Catalog:
    """The workspace's catalog with the command's overlays; it must have `image` when one is named."""
    from kbuild.errors import KbuildError, did_you_mean
    from kbuild.model.catalog import load_catalog

    # Click's raw parameters: typer converts them to their annotated types only for the function.
    workspace = Path(ctx.params.get("workspace") or ".")
    loaded = load_catalog(workspace, [Path(p) for p in ctx.params.get("overlay") or ()])
    if image is not None and image not in loaded.images:
        raise KbuildError(f"unknown image '{image}'", hint=did_you_mean(image, loaded.images))
    return loaded


def say(progress: Progress) -> Callable[[str], None]:
    from rich.console import Console

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    return console.print if progress is not Progress.quiet else (lambda *_: None)
