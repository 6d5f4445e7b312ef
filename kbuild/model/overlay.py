"""Overlays: a vendor's directories of .kb files, evaluated after the main tree.

An overlay may declare images, profiles, distros and the like, and change any image with
override(). Overrides apply after every image is declared, in evaluation order (the main tree's,
then each overlay's in the order given, files sorted, calls in order), so the later one wins.
Each change is recorded on the image's draft as an Origin, which `kbuild explain` shows; an
argument that names nothing (an image, a family, a block, a package to remove) is an error at
that argument.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kbuild.errors import KbuildError, KbuildErrors, Location, did_you_mean
from kbuild.model import files
from kbuild.model.catalog import (
    ImageDraft,
    Names,
    Origin,
    check_block,
    check_family,
    check_parent,
    check_source,
    context_file,
    context_name,
)
from kbuild.model.declare import Declaration
from kbuild.model.schemas import UNCHANGED


@dataclass(frozen=True)
class Overlay:
    """An overlay directory. `shown` names it, and its files, in locations: workspace-relative
    when it is inside the workspace, else absolute. `files` are its .kb files, sorted."""

    path: Path
    shown: str
    files: tuple[str, ...]


def find_overlays(
    root: Path, workspace_dirs: Iterable[str], settings: Declaration | None, given: Sequence[Path]
) -> list[Overlay]:
    """The settings' overlays (workspace-relative), then the command line's, each once."""
    wanted: list[tuple[Path, str, Location | None]] = []  # path, as written, where
    if settings is not None:
        wanted += [(root / e, e, settings.where("overlays", e)) for e in settings.args["overlays"]]
    wanted += [(path, str(path), None) for path in given]
    workspace = root.resolve()
    overlays: list[Overlay] = []
    errors: list[KbuildError] = []
    for path, written, location in wanted:
        directory = path.resolve()
        if directory in (o.path for o in overlays):
            continue
        problem = _directory_problem(directory, written, location, workspace, workspace_dirs)
        if problem is not None:
            errors.append(problem)
            continue
        shown = (
            directory.relative_to(workspace).as_posix()
            if directory.is_relative_to(workspace)
            else str(directory)
        )
        try:
            found = tuple(
                f"{shown}/{p.relative_to(directory).as_posix()}" for p in sorted(files.walk(directory, ".kb"))
            )
        except files.FileProblem as problem:
            errors.append(KbuildError(f"overlay directory '{written}': {problem}", location))
            continue
        if not found:
            errors.append(KbuildError(f"overlay directory '{written}' has no .kb files", location))
        overlays.append(Overlay(directory, shown, found))
    if errors:
        raise errors[0] if len(errors) == 1 else KbuildErrors(errors)
    return overlays


def _directory_problem(
    directory: Path, written: str, location: Location | None, workspace: Path, workspace_dirs: Iterable[str]
) -> KbuildError | None:
    """Why `directory` (resolved) cannot be an overlay, or None."""
    inside = next((d for d in workspace_dirs if directory.is_relative_to(workspace / d)), None)
    if location is not None and not directory.is_relative_to(workspace):
        # A workspace names only its own directories; one elsewhere is the builder's choice.
        return KbuildError(
            f"overlay directory '{written}' is outside the workspace ({directory})",
            location,
            "settings(overlays = ...) names directories of the workspace; give another one "
            "on the command line: --overlay DIR",
        )
    if files.special(directory):
        return KbuildError(f"overlay directory '{written}' is a pseudo-filesystem ({directory})", location)
    if not directory.is_dir():
        return KbuildError(
            f"overlay directory '{written}' does not exist", location, _sibling_hint(directory)
        )
    if workspace.is_relative_to(directory) or inside is not None:
        return KbuildError(
            f"overlay directory '{written}' overlaps the workspace's {inside or 'root'}",
            location,
            "the main tree's .kb files are evaluated once; keep overlays in a directory of their own",
        )
    return None


def _sibling_hint(directory: Path) -> str | None:
    try:
        siblings = [p.name for p in directory.parent.iterdir() if p.is_dir()]
    except OSError:
        return None
    return did_you_mean(directory.name, siblings)


def settings_in_overlay(decl: Declaration) -> KbuildError:
    return KbuildError(
        f"settings() in overlay {decl.overlay}: build settings belong to the workspace",
        decl.location,
        "set them in the workspace's BUILD/, or give them on the command line",
    )


def apply_overrides(
    root: Path,
    drafts: Mapping[str, ImageDraft],
    overrides: Iterable[Declaration],
    names: Names,
    errors: list[KbuildError],
) -> None:
    """Apply every override() to the draft of its image, in order; errors are collected."""
    for decl in overrides:
        target = decl.args["image"]
        if target not in drafts:
            errors.append(
                KbuildError(
                    f"override(): unknown image '{target}'",
                    decl.where("image", target),
                    did_you_mean(target, drafts) or "override() changes an image declared with image()",
                )
            )
            continue
        _Override(root, drafts, drafts[target], decl, names, errors).apply()


@dataclass
class _Override:
    """One override() call applied to one draft. Within a call, a replacement applies before a
    removal, and a removal before an addition."""

    root: Path
    drafts: Mapping[str, ImageDraft]
    draft: ImageDraft
    decl: Declaration
    names: Names
    errors: list[KbuildError]

    def apply(self) -> None:
        args = self.decl.args
        if args["parent"] is not UNCHANGED and (
            args["parent"] is None
            or check_parent(
                self.draft.name, args["parent"], self.names, self._at("parent", args["parent"]), self.errors
            )
        ):
            self._set("parent", args["parent"])
        for family, packages in self._families("packages_override"):
            self._list("packages", family, "packages_override", "replaced", packages, list(packages))
            self._list("binary", family, "packages_override", "replaced", (), [])
        for family, packages in self._families("packages_remove"):
            self._remove(family, packages)
        for family, packages in self._families("packages_append"):
            own = self.draft.packages.get(family, [])
            new = own + [p for p in packages if p not in own]
            self._list("packages", family, "packages_append", "appended", packages, new)
        for arg, action in (("blocks_replace", "replaced"), ("blocks", "appended")):
            for block, lines in args[arg].items():
                if check_block(self.draft.name, block, self._at(arg, block), self.errors):
                    kept = self.draft.blocks.get(block, []) if action == "appended" else []
                    self._keyed("blocks", block, arg, action, lines, kept + list(lines))
        for arg in ("env", "labels"):
            for key, value in args[arg].items():
                self._keyed(arg, key, arg, "set", value, value)
        if args["user"] is not UNCHANGED:
            self._set("user", args["user"])
        for src, destination in args["files"].items():
            self._file(src, destination)
        source = args["source"]
        if source is not UNCHANGED and (
            source is None
            or check_source(self.root, self.draft.name, source, self.names, self.decl, self.errors)
        ):
            self._set("source", source)
        for entry in args["disable"]:
            self._disable(entry)

    # where, and what to record

    def _at(self, arg: str, literal: str | None = None) -> Location:
        return self.decl.where(arg, literal)

    def _origin(self, arg: str, action: str, value: Any, previous: Any, literal: str | None = None) -> Origin:
        return Origin(self._at(arg, literal), action, value, self.decl.overlay, previous)

    # the edits

    def _set(self, field: str, value: Any) -> None:
        previous = getattr(self.draft, field)
        setattr(self.draft, field, value)
        self.draft.record(field, self._origin(field, "replaced", value, previous))

    def _families(self, arg: str) -> list[tuple[str, tuple[str, ...]]]:
        """The families of a per-family argument that exist; the others are errors."""
        return [
            (family, packages)
            for family, packages in self.decl.args[arg].items()
            if check_family(family, self.names.families, self._at(arg, family), self.errors)
        ]

    def _list(
        self, field: str, family: str, arg: str, action: str, value: tuple[str, ...], new: list[str]
    ) -> None:
        """Set the package list `field[family]`, recorded when it changes."""
        lists: dict[str, list[str]] = getattr(self.draft, field)
        previous = tuple(lists.get(family, ()))
        if tuple(new) == previous:
            return
        lists[family] = new
        self.draft.record(f"{field}[{family}]", self._origin(arg, action, value, previous, family))

    def _remove(self, family: str, packages: tuple[str, ...]) -> None:
        """Remove packages wherever the image lists them; one it does not list is an error."""
        for package in packages:
            if not any(package in getattr(self.draft, f).get(family, ()) for f in ("packages", "binary")):
                self.errors.append(
                    KbuildError(
                        f"image '{self.draft.name}' does not install '{package}' ({family})",
                        self._at("packages_remove", package),
                        self._installer_hint(family, package),
                    )
                )
        for field in ("packages", "binary"):
            own = getattr(self.draft, field).get(family, [])
            gone = tuple(p for p in packages if p in own)
            new = [p for p in own if p not in gone]
            self._list(field, family, "packages_remove", "removed", gone, new)

    def _installer_hint(self, family: str, package: str) -> str | None:
        seen = {self.draft.name}
        parent = self.draft.parent
        while parent is not None and parent in self.drafts and parent not in seen:
            seen.add(parent)
            ancestor = self.drafts[parent]
            if any(package in getattr(ancestor, f).get(family, ()) for f in ("packages", "binary")):
                return (
                    f"'{package}' is installed by its ancestor '{parent}': override('{parent}', ...) instead"
                )
            parent = ancestor.parent
        own = [p for f in ("packages", "binary") for p in getattr(self.draft, f).get(family, ())]
        return did_you_mean(package, own)

    def _keyed(self, field: str, key: str, arg: str, action: str, value: Any, new: Any) -> None:
        """Set `field[key]` (a block, an environment variable, a label)."""
        mapping: dict[str, Any] = getattr(self.draft, field)
        previous = mapping.get(key)
        mapping[key] = new
        self.draft.record(f"{field}[{key}]", self._origin(arg, action, value, previous, key))

    def _file(self, src: str, destination: str) -> None:
        where = self._at("files", src)
        context = context_file(self.root, self.draft.name, self.decl, src, destination, where)
        if isinstance(context, KbuildError):
            self.errors.append(context)
            return
        prefix = f"{Path(self.decl.overlay).name}__" if self.decl.overlay else ""
        previous = self.draft.files.get(destination)
        self.draft.files[destination] = (context_name(src, prefix), context)
        self.draft.record(
            f"files[{destination}]",
            self._origin(
                "files",
                "replaced" if previous else "set",
                context.source,
                previous and previous[1].source,
                src,
            ),
        )

    def _disable(self, entry: str) -> None:
        if entry not in self.names.distros and entry not in self.names.platforms:
            self.errors.append(
                KbuildError(
                    f"cannot disable '{entry}': it is neither a distro nor a platform",
                    self._at("disable", entry),
                    did_you_mean(entry, [*self.names.distros, *self.names.platforms])
                    or f"distros: {', '.join(sorted(self.names.distros))}; platforms: {', '.join(sorted(self.names.platforms))}",
                )
            )
            return
        if entry not in self.draft.disabled:
            self.draft.disabled.append(entry)
        self.draft.record(f"disable[{entry}]", self._origin("disable", "disabled", entry, None, entry))
