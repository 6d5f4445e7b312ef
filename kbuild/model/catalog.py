"""Stage 3: declarations -> a typed, immutable catalog, checked as a whole.

The catalog's types and the checks of declarations; kbuild.model.workspace assembles a catalog: the
main tree's declarations come first, then each overlay's; an image is made by its image() call and
then changed by every override() of it (kbuild.model.overlay), in evaluation order, each change
recorded with where it was written (`Image.origins`).

Every problem found is reported at once: duplicate names (both places), unknown parents, families,
distros and platforms (with did-you-mean), parent cycles (the whole cycle) and missing context files.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from kbuild.errors import KbuildError, Location, did_you_mean, unknown
from kbuild.model import schemas
from kbuild.model.declare import Declaration

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
    roots: Mapping[str, schemas.Debootstrap | schemas.Upstream]  # release -> root
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
class ContextFile:
    """A file of an image's build context. `source` is workspace-relative (absolute for an
    overlay outside the workspace); `install_type` None means every install type."""

    source: str
    destination: str
    install_type: str | None = None


@dataclass(frozen=True)
class Origin:
    """One step in the making of an image field: where it was written, what it did, the value it
    gave, the overlay it came from (None: the main tree) and the value it replaced."""

    location: Location
    action: str  # declared, appended, removed, replaced, set, disabled
    value: Any
    overlay: str | None = None
    previous: Any = None


@dataclass(frozen=True)
class Image:
    name: str
    parent: str | None
    packages: Mapping[str, tuple[str, ...]]
    binary: Mapping[str, tuple[str, ...]]
    source: schemas.Pip | None
    files: Mapping[str, ContextFile]  # name in the build context (flat, unique) -> file
    blocks: Mapping[str, tuple[str, ...]]
    env: Mapping[str, str]
    labels: Mapping[str, str]
    user: schemas.User | None
    description: str
    directory: str  # workspace-relative directory of the recipe that declared it
    location: Location
    via: tuple[Location, ...] = ()
    disabled: tuple[str, ...] = ()  # distros and platforms it is not built for (nor its descendants)
    unbuildable: Mapping[str, str] = field(default_factory=lambda: schemas.EMPTY)  # distro -> why
    clean: tuple[str, ...] = ()  # run after the install, in its layer
    # field key (`parent`, `packages[deb]`, `blocks[footer]`...) -> its making, recipe first
    origins: Mapping[str, tuple[Origin, ...]] = field(default_factory=lambda: schemas.EMPTY)

    def origin(self, key: str) -> Origin | None:
        """The last step that set a field, if any did."""
        chain = self.origins.get(key, ())
        return chain[-1] if chain else None


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
    overlays: tuple[str, ...] = ()
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
    overlays: tuple[str, ...] = ()  # the overlays applied, in order, as locations name them

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


def duplicate(what: str, decl: Declaration, first: Declaration) -> KbuildError:
    return KbuildError(
        f"{what} is declared twice",
        decl.location,
        "rename one of them, or use override() in an overlay to change an existing one",
        notes=[("first declared here", first.location)],
    )


def family_of(decl: Declaration) -> Family:
    a = decl.args
    return Family(
        a["name"], a["install"], a["clean"], a["add_user"], a["pin"], a["list_installed"], decl.location
    )


def distro_of(decl: Declaration, families: Mapping[str, Family], errors: list[KbuildError]) -> Distro:
    a = decl.args
    check_family(a["family"], families, decl.where("family", a["family"]), errors)
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


@dataclass(frozen=True)
class Names:
    """What a declaration may refer to, for checks with did-you-mean hints."""

    families: Mapping[str, Any]
    distros: Mapping[str, Any]
    platforms: Mapping[str, Any]
    images: Mapping[str, Any]


@dataclass
class ImageDraft:
    """An image while it is being made: declared by image(), then changed by each override() in
    turn. Every change is recorded as an Origin of the field it changed (see Image.origins)."""

    name: str
    directory: str
    location: Location
    via: tuple[Location, ...] = ()
    parent: str | None = None
    packages: dict[str, list[str]] = field(default_factory=dict)
    binary: dict[str, list[str]] = field(default_factory=dict)
    source: schemas.Pip | None = None
    files: dict[str, tuple[str, ContextFile]] = field(default_factory=dict)  # destination -> (name, file)
    blocks: dict[str, list[str]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    user: schemas.User | None = None
    description: str = ""
    disabled: list[str] = field(default_factory=list)
    unbuildable: dict[str, str] = field(default_factory=dict)
    clean: tuple[str, ...] = ()
    origins: dict[str, list[Origin]] = field(default_factory=dict)

    def record(self, key: str, origin: Origin) -> None:
        self.origins.setdefault(key, []).append(origin)

    @classmethod
    def declare(cls, root: Path, decl: Declaration, names: Names, errors: list[KbuildError]) -> ImageDraft:
        a = decl.args
        draft = cls(a["name"], decl.directory, decl.location, decl.via, description=a["description"])

        def declared(key: str, arg: str, value: Any, literal: str | None = None) -> None:
            draft.record(key, Origin(decl.where(arg, literal), "declared", value, decl.overlay))

        if a["parent"] is not None and check_parent(
            draft.name, a["parent"], names, decl.where("parent", a["parent"]), errors
        ):
            draft.parent = a["parent"]
        for arg in ("packages", "binary"):
            for family, packages in a[arg].items():
                if check_family(family, names.families, decl.where(arg, family), errors):
                    getattr(draft, arg)[family] = list(packages)
                    declared(f"{arg}[{family}]", arg, packages, family)
        if a["source"] is not None and check_source(root, draft.name, a["source"], names, decl, errors):
            draft.source = a["source"]
        for src, destination in a["files"].items():
            context = context_file(
                root, draft.name, decl.directory, src, destination, decl.where("files", src)
            )
            if isinstance(context, KbuildError):
                errors.append(context)
                continue
            draft.files[destination] = (context_name(src), context)
            declared(f"files[{destination}]", "files", src, src)
        for block, lines in a["blocks"].items():
            if check_block(draft.name, block, decl.where("blocks", block), errors):
                draft.blocks[block] = list(lines)
                declared(f"blocks[{block}]", "blocks", lines, block)
        for arg in ("env", "labels"):
            for key, value in a[arg].items():
                getattr(draft, arg)[key] = value
                declared(f"{arg}[{key}]", arg, value, key)
        draft.user = a["user"]
        draft.clean = a["clean"]
        for distro, why in a["unbuildable"].items():
            if distro not in names.distros:
                errors.append(unknown("distro", distro, names.distros, decl.where("unbuildable", distro)))
                continue
            draft.unbuildable[distro] = why
            declared(f"unbuildable[{distro}]", "unbuildable", why, distro)
        for arg in ("parent", "source", "user", "description"):
            if arg in decl.arg_locations and getattr(draft, arg) == a[arg]:
                declared(arg, arg, a[arg])
        return draft

    def freeze(self) -> Image:
        files: dict[str, ContextFile] = {}
        for name, context in self.files.values():
            files[_unique(name, files)] = context
        if self.source is not None and self.source.archive is not None:
            archive = ContextFile(self.source.archive, self.source.archive_destination or "", "source")
            files[_unique(f"source__{Path(archive.source).name}", files)] = archive
        return Image(
            name=self.name,
            parent=self.parent,
            packages=_frozen_lists(self.packages),
            binary=_frozen_lists(self.binary),
            source=self.source,
            files=MappingProxyType(files),
            blocks=_frozen_lists(self.blocks),
            env=MappingProxyType(dict(self.env)),
            labels=MappingProxyType(dict(self.labels)),
            user=self.user,
            description=self.description,
            directory=self.directory,
            location=self.location,
            via=self.via,
            disabled=tuple(self.disabled),
            unbuildable=MappingProxyType(dict(self.unbuildable)),
            clean=self.clean,
            origins=MappingProxyType({key: tuple(chain) for key, chain in self.origins.items()}),
        )


def _frozen_lists(lists: Mapping[str, list[str]]) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({key: tuple(items) for key, items in lists.items()})


def context_name(source: str, prefix: str = "") -> str:
    """A context file's name in the build context: its path made flat and readable."""
    return prefix + source.replace("/", "__")


def _unique(name: str, taken: Mapping[str, Any]) -> str:
    """`name`, or `2-name`, `3-name`... when two files would have the same context name."""
    candidate, number = name, 1
    while candidate in taken:
        number += 1
        candidate = f"{number}-{name}"
    return candidate


# --- checks shared by image() and override(): each reports at the value it is about ---------


def check_family(
    name: str, families: Mapping[str, Any], location: Location, errors: list[KbuildError]
) -> bool:
    if name in families:
        return True
    errors.append(
        KbuildError(
            f"unknown package family '{name}'",
            location,
            did_you_mean(name, families) or f"declared families: {', '.join(sorted(families)) or 'none'}",
        )
    )
    return False


def check_block(image: str, block: str, location: Location, errors: list[KbuildError]) -> bool:
    if block in BLOCKS:
        return True
    errors.append(
        KbuildError(
            f"image '{image}' fills unknown block '{block}'",
            location,
            did_you_mean(block, BLOCKS) or f"blocks: {', '.join(BLOCKS)}",
        )
    )
    return False


def check_parent(
    image: str, parent: str, names: Names, location: Location, errors: list[KbuildError]
) -> bool:
    if parent in names.images:
        return True
    errors.append(
        KbuildError(
            f"image '{image}' has unknown parent '{parent}'", location, did_you_mean(parent, names.images)
        )
    )
    return False


def context_file(
    root: Path, image: str, directory: str, source: str, destination: str, location: Location
) -> ContextFile | KbuildError:
    """The context file `source` (relative to `directory`), or the error that it is not one."""
    if Path(source).is_absolute() or ".." in Path(source).parts:
        return KbuildError(f"context file '{source}' must be relative to its recipe", location)
    path = root / directory / source
    if not path.is_file():
        existing = [p.name for p in path.parent.iterdir() if p.is_file()] if path.parent.is_dir() else []
        return KbuildError(
            f"image '{image}': context file '{directory}/{source}' does not exist",
            location,
            did_you_mean(source, existing),
        )
    return ContextFile((Path(directory) / source).as_posix(), destination)


def check_source(
    root: Path, image: str, source: schemas.Pip, names: Names, decl: Declaration, errors: list[KbuildError]
) -> bool:
    """A source install's families exist, and its local archive is there and is what its
    checksum says, before anything is built."""
    ok = all(check_family(f, names.families, decl.where("source", f), errors) for f in source.packages)
    if source.archive is None:
        return ok
    try:
        digest = hashlib.sha256((root / source.archive).read_bytes()).hexdigest()
    except OSError as error:
        errors.append(
            KbuildError(
                f"image '{image}': cannot read {source.archive}: {error.strerror}",
                decl.where("source", Path(source.archive).name),
            )
        )
        return False
    if digest != source.sha256:
        errors.append(
            KbuildError(
                f"image '{image}': {source.archive} has sha256 {digest}, not {source.sha256}",
                decl.where("source", source.sha256),
                "if the new archive is the one you want, put its sha256 in pip(sha256 = ...)",
            )
        )
        return False
    return ok


def topological(images: Mapping[str, Image], errors: list[KbuildError]) -> list[str]:
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
                        _parent_location(images[name]),
                        "an image cannot be its own ancestor",
                        notes=[(f"'{n}' is declared here", _parent_location(images[n])) for n in cycle[1:]],
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


def _parent_location(image: Image) -> Location:
    """Where an image's parent was last set: by an override, or else by its declaration."""
    origin = image.origin("parent")
    return origin.location if origin and origin.action != "declared" else image.location


def check_profile(profile: Profile, images: Mapping[str, Image], errors: list[KbuildError]) -> None:
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


def settings_of(
    decl: Declaration | None,
    distros: Mapping[str, Distro],
    platforms: Mapping[str, Platform],
    errors: list[KbuildError],
) -> Settings:
    schema = schemas.SCHEMAS["settings"]
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
