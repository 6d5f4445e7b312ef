"""Stage 4: profiles, regexes and options -> the images to build (with their ancestors)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kbuild.errors import KbuildError, did_you_mean, unknown
from kbuild.model.catalog import Catalog, Image

INSTALL_TYPES = ("binary", "source")


@dataclass(frozen=True)
class Request:
    """What to build and for what: command-line options merged over the workspace settings."""

    profiles: tuple[str, ...]
    patterns: tuple[str, ...]
    distro: str
    release: str
    type: str
    platforms: tuple[str, ...]
    registry: str
    namespace: str
    tag: str

    @property
    def variant(self) -> str:
        """Names the rendered output: `debian-bookworm-binary`."""
        return f"{self.distro}-{self.release}-{self.type}"


@dataclass(frozen=True)
class Selection:
    images: tuple[str, ...]  # parents first
    matched: tuple[str, ...]  # what the profiles and regexes named, before adding ancestors
    groups: Mapping[str, tuple[str, ...]]  # profile -> selected images it names
    # named, but not built for this distro or any requested platform (disabled): image -> why
    excluded: Mapping[str, str] = field(default_factory=dict)
    # image -> the requested platforms it is built for, where an overlay disabled some
    platforms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # named, but its recipe says it cannot be built for this distro (or an ancestor's does): -> why
    unbuildable: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SelectOptions:
    """What the command line asks for; None and () leave the choice to the workspace settings."""

    profiles: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    distro: str | None = None
    release: str | None = None
    install_type: str | None = None
    platforms: tuple[str, ...] = ()
    registry: str | None = None
    namespace: str | None = None
    tag: str | None = None


def make_request(catalog: Catalog, options: SelectOptions = SelectOptions()) -> Request:
    """The options checked against the catalog and completed from its settings."""
    settings = catalog.settings
    profiles, patterns, distro, release = options.profiles, options.patterns, options.distro, options.release
    install_type, platforms, registry = options.install_type, options.platforms, options.registry
    namespace, tag = options.namespace, options.tag
    distro = distro or settings.distro
    if distro not in catalog.distros:
        raise unknown("distro", distro, catalog.distros)
    releases = catalog.distros[distro].releases
    default_release = settings.release if settings.release in releases else releases[0]
    release = release or default_release
    if release not in releases:
        raise KbuildError(
            f"distro '{distro}' has no release '{release}'",
            hint=did_you_mean(release, releases) or _known(releases),
        )
    install_type = install_type or settings.type
    if install_type not in INSTALL_TYPES:
        raise KbuildError(
            f"unknown install type '{install_type}'", hint=f"use one of: {', '.join(INSTALL_TYPES)}"
        )
    chosen = tuple(platforms) or settings.platforms
    for platform in chosen:
        if platform not in catalog.platforms:
            raise unknown("platform", platform, catalog.platforms)
    for profile in profiles:
        if profile not in catalog.profiles:
            raise unknown("profile", profile, catalog.profiles)
    return Request(
        profiles=tuple(profiles),
        patterns=tuple(patterns),
        distro=distro,
        release=release,
        type=install_type,
        platforms=chosen,
        registry=settings.registry if registry is None else registry,
        namespace=settings.namespace if namespace is None else namespace,
        tag=tag or settings.tag,
    )


def select(catalog: Catalog, request: Request) -> Selection:
    """Like kolla-build: a profile's regexes and positional regexes are searched in image names;
    nothing named means every image. Ancestors of what matched are always included."""
    patterns = [p for name in request.profiles for p in catalog.profiles[name].images]
    patterns += request.patterns
    matched = _matching(catalog, patterns, "argument") if patterns else list(catalog.images)
    platforms, disabled = _platforms(catalog, request)
    unbuildable = _unbuildable(catalog, request.distro)
    excluded = {name: disabled[name] for name in matched if name in disabled and name not in unbuildable}
    cannot = {name: unbuildable[name] for name in matched if name in unbuildable}
    matched = [name for name in matched if name not in disabled and name not in unbuildable]
    wanted = set(matched)
    for name in matched:
        wanted.update(catalog.ancestors(name))
    images = tuple(name for name in catalog.images if name in wanted)
    groups = {}
    for profile in catalog.profiles.values():
        members = set(_matching(catalog, profile.images, None))
        in_selection = tuple(name for name in images if name in members)
        if in_selection:
            groups[profile.name] = in_selection
    reduced = {name: platforms[name] for name in images if platforms[name] != request.platforms}
    return Selection(images, tuple(matched), groups, excluded, reduced, cannot)


def _unbuildable(catalog: Catalog, distro: str) -> dict[str, str]:
    """The images that cannot be built for `distro`, by their recipe or an ancestor's, with why."""
    out: dict[str, str] = {}
    for name, image in catalog.images.items():  # parents first
        if image.parent in out:
            out[name] = out[image.parent]
            if not out[name].startswith("its ancestor"):
                out[name] = f"its ancestor '{image.parent}' cannot be built on {distro}: {out[name]}"
        elif distro in image.unbuildable:
            out[name] = image.unbuildable[distro]
    return out


def _platforms(catalog: Catalog, request: Request) -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """Per image, the requested platforms it is built for; and the images not built at all, with
    why. What is disabled for an image (by an override) is disabled for its descendants too."""
    platforms: dict[str, tuple[str, ...]] = {}
    causes: dict[str, tuple[str, str]] = {}  # image not built -> (the image disabled, why)
    for name, image in catalog.images.items():  # parents first
        if image.parent in causes:
            causes[name] = causes[image.parent]
            continue
        if request.distro in image.disabled:
            causes[name] = (name, _why(image, [request.distro]))
            continue
        inherited = platforms[image.parent] if image.parent is not None else request.platforms
        platforms[name] = tuple(p for p in inherited if p not in image.disabled)
        if not platforms[name]:
            causes[name] = (name, _why(image, [p for p in inherited if p in image.disabled]))
    disabled = {
        name: why if culprit == name else f"its ancestor '{culprit}' is {why}"
        for name, (culprit, why) in causes.items()
    }
    return platforms, disabled


def _why(image: Image, entries: Sequence[str]) -> str:
    places = []
    for entry in entries:
        origin = image.origin(f"disable[{entry}]")
        places.append(f"{entry} by {origin.location if origin else image.location}")
    return f"disabled for {', '.join(places)}"


def _matching(catalog: Catalog, patterns: Sequence[str], what: str | None) -> list[str]:
    names: list[str] = []
    for pattern in patterns:
        try:
            regex = re.compile(pattern)
        except re.error as error:
            raise KbuildError(f"bad regular expression {pattern!r}: {error}") from None
        hits = [name for name in catalog.images if regex.search(name)]
        if not hits and what is not None:
            raise KbuildError(
                f"{what} {pattern!r} matches no image", hint=did_you_mean(pattern, catalog.images)
            )
        names += [hit for hit in hits if hit not in names]
    return names


def _known(names: Mapping[str, object] | Sequence[str]) -> str:
    return f"known: {', '.join(sorted(names))}"
