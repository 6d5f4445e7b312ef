"""Stage 3: declarations -> a typed, immutable catalog, checked as a whole.

Every problem found is reported at once: duplicate names (both places), unknown parents, families,
distros and platforms (with did-you-mean), parent cycles (the whole cycle) and missing context files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from kbuild import builtins as B
from kbuild.errors import KbuildError, KbuildErrors, Location, did_you_mean
from kbuild.evaluate import Declaration, Evaluator

# The directories of a workspace whose .kb files are evaluated, in this order.
WORKSPACE_DIRS = ("distros", "platforms", "BUILD", "recipes")


@dataclass(frozen=True)
class Family:
    name: str
    install: str
    clean: str
    add_user: str
    pin: str
    list_installed: str
    location: Location


@dataclass(frozen=True)
class Distro:
    name: str
    family: str
    releases: tuple[str, ...]
    roots: Mapping[str, B.Debootstrap | B.Upstream]  # release -> root
    repositories: tuple[str, ...]
    location: Location


@dataclass(frozen=True)
class Platform:
    name: str
    arch: Mapping[str, str]  # family -> architecture name
    location: Location

    @property
    def buildkit_arch(self) -> str:
        """TARGETARCH as BuildKit names it (`linux/arm64/v8` -> `arm64`)."""
        return self.name.split("/")[1]


@dataclass(frozen=True)
class Image:
    name: str
    parent: str | None
    packages: Mapping[str, tuple[str, ...]]
    binary: Mapping[str, tuple[str, ...]]
    source: B.Pip | None
    files: Mapping[str, str]  # path relative to `directory` -> path in the image
    blocks: Mapping[str, tuple[str, ...]]
    env: Mapping[str, str]
    labels: Mapping[str, str]
    user: B.User | None
    description: str
    directory: str  # workspace-relative directory of the recipe that declared it
    location: Location
    via: tuple[Location, ...] = ()


@dataclass(frozen=True)
class Profile:
    name: str
    images: tuple[str, ...]
    description: str
    location: Location


@dataclass(frozen=True)
class Settings:
    registry: str
    namespace: str
    tag: str
    distro: str
    release: str | None
    type: str
    platforms: tuple[str, ...]
    build_args: Mapping[str, str]
    labels: Mapping[str, str]
    source_date_epoch: int
    location: Location | None = None


# Blocks every rendered Dockerfile has, in order. Recipes and overlays fill them.
BLOCKS = ("header", "after_packages", "after_files", "footer")


@dataclass(frozen=True)
class Catalog:
    root: Path
    families: Mapping[str, Family]
    distros: Mapping[str, Distro]
    platforms: Mapping[str, Platform]
    images: Mapping[str, Image]  # in topological order: parents first
    profiles: Mapping[str, Profile]
    settings: Settings

    def ancestors(self, name: str) -> list[str]:
        """The parent chain of an image, nearest first."""
        chain = []
        parent = self.images[name].parent
        while parent is not None:
            chain.append(parent)
            parent = self.images[parent].parent
        return chain

    def children(self) -> Mapping[str, tuple[str, ...]]:
        out: dict[str, list[str]] = {name: [] for name in self.images}
        for image in self.images.values():
            if image.parent is not None:
                out[image.parent].append(image.name)
        return {name: tuple(kids) for name, kids in out.items()}


def workspace_files(root: Path) -> list[str]:
    """The .kb files of a workspace, workspace-relative, in evaluation order."""
    files: list[str] = []
    for directory in WORKSPACE_DIRS:
        files += sorted(p.relative_to(root).as_posix() for p in (root / directory).rglob("*.kb"))
    return files


def evaluate_workspace(root: Path) -> list[Declaration]:
    if not (root / "recipes").is_dir():
        raise KbuildError(
            f"{root} is not a kbuild workspace: it has no recipes/ directory",
            hint="run kbuild from the workspace root or pass --workspace DIR",
        )
    evaluator = Evaluator(root)
    for path in workspace_files(root):
        evaluator.evaluate_file(path)
    return evaluator.declarations


def load_catalog(root: Path) -> Catalog:
    return build_catalog(root, evaluate_workspace(root))


def build_catalog(root: Path, declarations: Iterable[Declaration]) -> Catalog:
    errors: list[KbuildError] = []
    by_kind: dict[str, dict[str, Declaration]] = {kind: {} for kind in B.SCHEMAS}
    settings_decl: Declaration | None = None
    for decl in declarations:
        if decl.kind == "settings":
            if settings_decl is not None:
                errors.append(_duplicate("settings()", decl, settings_decl))
            settings_decl = decl
            continue
        seen = by_kind[decl.kind]
        if decl.name in seen:
            errors.append(_duplicate(f"{decl.kind} '{decl.name}'", decl, seen[decl.name]))
        else:
            seen[decl.name] = decl

    families = {n: _family(d) for n, d in by_kind["family"].items()}
    distros = {n: _distro(d, families, errors) for n, d in by_kind["distro"].items()}
    platforms = {n: Platform(n, d.args["arch"], d.location) for n, d in by_kind["platform"].items()}
    for platform in platforms.values():
        for family in platform.arch:
            _check_family(family, families, platform.location, errors)
    images = {n: _image(d) for n, d in by_kind["image"].items()}
    for image in images.values():
        _check_image(root, image, images, families, errors)
    ordered = _topological(images, errors)
    profiles = {
        n: Profile(n, d.args["images"], d.args["description"], d.location)
        for n, d in by_kind["profile"].items()
    }
    for profile in profiles.values():
        _check_profile(profile, images, errors)
    settings = _settings(settings_decl, distros, platforms, errors)
    if errors:
        raise errors[0] if len(errors) == 1 else KbuildErrors(errors)
    return Catalog(
        root=root,
        families=MappingProxyType(families),
        distros=MappingProxyType(distros),
        platforms=MappingProxyType(platforms),
        images=MappingProxyType({name: images[name] for name in ordered}),
        profiles=MappingProxyType(profiles),
        settings=settings,
    )


def _duplicate(what: str, decl: Declaration, first: Declaration) -> KbuildError:
    return KbuildError(
        f"{what} is declared twice",
        decl.location,
        "rename one of them, or use override() in an overlay to change an existing one",
        notes=[("first declared here", first.location)],
    )


def _family(decl: Declaration) -> Family:
    a = decl.args
    return Family(
        a["name"], a["install"], a["clean"], a["add_user"], a["pin"], a["list_installed"], decl.location
    )


def _distro(decl: Declaration, families: Mapping[str, Family], errors: list[KbuildError]) -> Distro:
    a = decl.args
    _check_family(a["family"], families, decl.location, errors)
    root = a["root"]
    if isinstance(root, Mapping):
        for release in root:
            if release not in a["releases"]:
                errors.append(
                    KbuildError(
                        f"distro '{a['name']}': root given for unknown release '{release}'",
                        decl.location,
                        did_you_mean(release, a["releases"]),
                    )
                )
        missing = [r for r in a["releases"] if r not in root]
        if missing:
            errors.append(
                KbuildError(f"distro '{a['name']}': no root for release {', '.join(missing)}", decl.location)
            )
        roots = dict(root)
    else:
        roots = dict.fromkeys(a["releases"], root)
    if not a["releases"]:
        errors.append(KbuildError(f"distro '{a['name']}' lists no releases", decl.location))
    return Distro(
        a["name"], a["family"], a["releases"], MappingProxyType(roots), a["repositories"], decl.location
    )


def _image(decl: Declaration) -> Image:
    a = decl.args
    return Image(
        name=a["name"],
        parent=a["parent"],
        packages=a["packages"],
        binary=a["binary"],
        source=a["source"],
        files=a["files"],
        blocks=a["blocks"],
        env=a["env"],
        labels=a["labels"],
        user=a["user"],
        description=a["description"],
        directory=decl.directory,
        location=decl.location,
        via=decl.via,
    )


def _check_family(
    name: str, families: Mapping[str, Any], location: Location, errors: list[KbuildError]
) -> None:
    if name not in families:
        errors.append(
            KbuildError(
                f"unknown package family '{name}'",
                location,
                did_you_mean(name, families) or f"declared families: {', '.join(sorted(families)) or 'none'}",
            )
        )


def _check_image(
    root: Path,
    image: Image,
    images: Mapping[str, Image],
    families: Mapping[str, Family],
    errors: list[KbuildError],
) -> None:
    location = image.location
    if image.parent is not None and image.parent not in images:
        errors.append(
            KbuildError(
                f"image '{image.name}' has unknown parent '{image.parent}'",
                location,
                did_you_mean(image.parent, images),
            )
        )
    per_family = [image.packages, image.binary, image.source.packages if image.source else {}]
    for mapping in per_family:
        for family in mapping:
            _check_family(family, families, location, errors)
    for block in image.blocks:
        if block not in BLOCKS:
            errors.append(
                KbuildError(
                    f"image '{image.name}' fills unknown block '{block}'",
                    location,
                    did_you_mean(block, BLOCKS) or f"blocks: {', '.join(BLOCKS)}",
                )
            )
    for source in image.files:
        path = root / image.directory / source
        if Path(source).is_absolute() or ".." in Path(source).parts:
            errors.append(KbuildError(f"context file '{source}' must be relative to its recipe", location))
        elif not path.is_file():
            existing = [p.name for p in (root / image.directory).iterdir() if p.is_file()]
            errors.append(
                KbuildError(
                    f"image '{image.name}': context file '{image.directory}/{source}' does not exist",
                    location,
                    did_you_mean(source, existing),
                )
            )


def _topological(images: Mapping[str, Image], errors: list[KbuildError]) -> list[str]:
    """Images parents first, names sorted within a generation; reports every cycle once."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done
    reported: set[frozenset[str]] = set()

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = path[path.index(name) :]
            if frozenset(cycle) not in reported:
                reported.add(frozenset(cycle))
                errors.append(
                    KbuildError(
                        f"parent cycle: {' -> '.join([*cycle, name])}",
                        images[name].location,
                        "an image cannot be its own ancestor",
                        notes=[(f"'{n}' is declared here", images[n].location) for n in cycle[1:]],
                    )
                )
            return
        state[name] = 1
        parent = images[name].parent
        if parent is not None and parent in images:
            visit(parent, [*path, name])
        state[name] = 2
        order.append(name)

    for name in sorted(images):
        visit(name, [])
    return order


def _check_profile(profile: Profile, images: Mapping[str, Image], errors: list[KbuildError]) -> None:
    for pattern in profile.images:
        try:
            regex = re.compile(pattern)
        except re.error as error:
            errors.append(
                KbuildError(
                    f"profile '{profile.name}': bad regular expression {pattern!r}: {error}", profile.location
                )
            )
            continue
        if not any(regex.search(name) for name in images):
            errors.append(
                KbuildError(
                    f"profile '{profile.name}': {pattern!r} matches no image",
                    profile.location,
                    did_you_mean(pattern.strip("^$"), images),
                )
            )


def _settings(
    decl: Declaration | None,
    distros: Mapping[str, Distro],
    platforms: Mapping[str, Platform],
    errors: list[KbuildError],
) -> Settings:
    schema = B.SCHEMAS["settings"]
    args = decl.args if decl else {name: p.default for name, p in schema.params.items()}
    location = decl.location if decl else None
    settings = Settings(**args, location=location)
    if distros and settings.distro not in distros:
        errors.append(
            KbuildError(
                f"settings(): unknown distro '{settings.distro}'",
                location,
                did_you_mean(settings.distro, distros),
            )
        )
    for platform in settings.platforms:
        if platforms and platform not in platforms:
            errors.append(
                KbuildError(
                    f"settings(): unknown platform '{platform}'", location, did_you_mean(platform, platforms)
                )
            )
    return settings
