"""The options every command shares, and the one typed value they become."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_type_hints

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
    json = "json"


ProgressOpt = Annotated[
    Progress,
    typer.Option(
        help="auto: a live table on a terminal, else a line per change; plain: all BuildKit output; "
        "json: a JSON line per change."
    ),
]


def platforms(values: list[str] | None) -> tuple[str, ...]:
    return tuple(p.strip() for value in values or () for p in value.split(",") if p.strip())


@dataclass(frozen=True)
class Inputs:
    """What a command reads: the workspace, its overlays and the selection options, as one value."""

    workspace: Path
    overlays: tuple[Path, ...]
    select: SelectOptions

    def catalog(self, image: str | None = None) -> Catalog:
        """The workspace's catalog with the overlays; it must have `image` when one is named."""
        from kbuild.errors import unknown
        from kbuild.model.workspace import load_catalog

        loaded = load_catalog(self.workspace, self.overlays)
        if image is not None and image not in loaded.images:
            raise unknown("image", image, loaded.images)
        return loaded


# The options commands share, by parameter name: (annotation, default).
SHARED: dict[str, tuple[Any, Any]] = {
    "patterns": (Patterns, None),
    "profile": (Profiles, None),
    "distro": (DistroOpt, None),
    "release": (ReleaseOpt, None),
    "install_type": (TypeOpt, None),
    "platform": (PlatformOpt, None),
    "registry": (RegistryOpt, None),
    "namespace": (NamespaceOpt, None),
    "tag": (TagOpt, None),
    "overlay": (OverlayOpt, None),
    "workspace": (Workspace, Path(".")),
}
SELECT = ("patterns", "profile")
VARIANT = ("distro", "release", "install_type", "platform")
TAGS = ("registry", "namespace", "tag")


def shared_options(*names: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command the shared options `names` (plus --overlay and --workspace); it receives
    them as one `Inputs` value, its parameter `inputs`, and declares only its own options."""
    names = (*names, "overlay", "workspace")

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        hints = get_type_hints(command, include_extras=True)
        signature = inspect.signature(command)
        own = [
            p.replace(annotation=hints[p.name]) for p in signature.parameters.values() if p.name != "inputs"
        ]
        shared = [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, annotation=SHARED[name][0], default=SHARED[name][1]
            )
            for name in names
        ]

        @functools.wraps(command)
        def run(**kwargs: Any) -> None:
            given = {name: kwargs.pop(name) for name in names}
            command(inputs=_inputs(given), **kwargs)

        # typer reads the options from the signature and the annotations.
        run.__signature__ = signature.replace(parameters=[*own, *shared])  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in (*own, *shared)} | {"return": None}
        return run

    return decorate


def _inputs(given: dict[str, Any]) -> Inputs:
    from kbuild.compile.select import SelectOptions

    select = SelectOptions(
        profiles=tuple(given.get("profile") or ()),
        patterns=tuple(given.get("patterns") or ()),
        distro=given.get("distro"),
        release=given.get("release"),
        install_type=given.get("install_type"),
        platforms=platforms(given.get("platform")),
        registry=given.get("registry"),
        namespace=given.get("namespace"),
        tag=given.get("tag"),
    )
    return Inputs(given["workspace"], tuple(given["overlay"] or ()), select)
