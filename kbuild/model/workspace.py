"""A workspace: its .kb files found, read and evaluated (the host side of the recipe language),
then assembled into a catalog with its overlays' declarations and overrides.

The interpreter executes one file's text; this module decides which files there are, reads them
(UTF-8 only), resolves load() labels (`//` is the workspace root), evaluates each file once and
reports load cycles.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from kbuild.errors import KbuildError, KbuildErrors, Location, did_you_mean
from kbuild.lang.interpreter import Interpreter
from kbuild.lang.parse import ParseCache, parse
from kbuild.lang.values import Module
from kbuild.model import declare, files
from kbuild.model.catalog import (
    WORKSPACE_DIRS,
    Catalog,
    ImageDraft,
    Names,
    Platform,
    Profile,
    check_family,
    check_profile,
    check_user_groups,
    distro_of,
    duplicate,
    family_of,
    settings_of,
    topological,
)
from kbuild.model.declare import Declaration
from kbuild.model.overlay import apply_overrides, find_overlays, settings_in_overlay
from kbuild.model.schemas import SCHEMAS
from kbuild.model.validate import control_character


class Workspace:
    """Evaluates the .kb files of the workspace at `root`, each once however often it is
    loaded; the declarations they make are in `declarations`, in call order."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.real_root = root.resolve()
        self.modules: dict[str, Module] = {}
        self.loading: list[str] = []  # the files being evaluated, outermost first
        self.declarations: list[Declaration] = []
        self.overlay_trees: list[Path] = []  # the overlays' directories: their files read only them
        cache = files.parse_cache()
        parser = ParseCache(cache).parse if cache is not None else parse
        self.interpreter = Interpreter(declare.builtins(self.declarations.append), self._load, parser)

    def evaluate_file(self, path: str, loaded_from: Location | None = None) -> Module:
        """Evaluate the file at workspace-relative `path` once; later calls return the module."""
        if path in self.modules:
            return self.modules[path]
        if path in self.loading:
            cycle = " -> ".join([*self.loading[self.loading.index(path) :], path])
            raise KbuildError(
                f"load cycle: {cycle}",
                loaded_from,
                "move the shared code to a file both can load",
            )
        text = self._read(path, loaded_from)
        self.loading.append(path)
        try:
            module = self.interpreter.execute(path, text)
        finally:
            self.loading.pop()
        self.modules[path] = module
        return module

    def tree_of(self, path: str) -> Path:
        """The tree a file may read: the overlay directory it is in, else the workspace."""
        full = self.real_root / path
        return next((t for t in self.overlay_trees if full.is_relative_to(t)), self.real_root)

    def _read(self, path: str, loaded_from: Location | None) -> str:
        try:
            data = files.read_bytes(self.root / path, self.tree_of(path))
        except files.FileProblem as problem:
            raise KbuildError(f"cannot read {path}: it {problem}", loaded_from, problem.hint) from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as error:
            before = data[: error.start].decode("utf-8").split("\n")
            line = data.split(b"\n")[len(before) - 1].decode("utf-8", "replace")
            raise KbuildError(
                f"{path} is not UTF-8: byte {data[error.start]:#04x} cannot be decoded",
                Location(path, len(before), len(before[-1]) + 1, line),
                "save the file as UTF-8",
            ) from None

    def _load(self, label: str, module: Module, location: Location) -> Module:
        """The interpreter's load callback."""
        return self.evaluate_file(self._resolve_label(label, module.path, location), location)

    def _resolve_label(self, label: str, loading: str, location: Location) -> str:
        """`//` is the workspace root (from an overlay too); other paths are relative to the
        loading file, which may be an overlay's file outside the workspace (an absolute path)."""
        character = control_character(label)
        if character is not None:
            raise KbuildError(
                f"bad load path {label!r}: it holds the control character {character}",
                location,
                "a load path is printable text: '//dir/file.kb' or 'file.kb'",
            )
        from_root = label.startswith("//")
        written = Path(label[2:] if from_root else label)
        if written.is_absolute() or ".." in written.parts or written.suffix != ".kb":
            raise KbuildError(
                f"bad load path '{label}'",
                location,
                "use '//dir/file.kb' from the workspace root or 'file.kb' next to this file",
            )
        base = Path() if from_root else Path(loading).parent
        target = (base / written).as_posix()
        try:
            files.checked_file(self.root / target, self.tree_of(target))
        except files.FileProblem as problem:
            if (self.root / target).exists() or (self.root / target).is_symlink():
                raise KbuildError(
                    f"cannot load '{label}': {target} {problem}", location, problem.hint
                ) from None
            known = (p.relative_to(self.root / base).as_posix() for p in _walk(self.root / base, ".kb"))
            hint = did_you_mean(written.as_posix(), known)
            raise KbuildError(
                f"cannot load '{label}': no such file {target}",
                location,
                hint.replace("'", "'//", 1) if hint and from_root else hint,
            ) from None
        return target


def _walk(directory: Path, suffix: str = "", location: Location | None = None) -> list[Path]:
    """files.walk, its problems as errors."""
    try:
        return list(files.walk(directory, suffix))
    except files.FileProblem as problem:
        raise KbuildError(str(problem), location, "make it readable, or move it out of the tree") from None


def workspace_files(root: Path) -> list[str]:
    """The .kb files of a workspace, workspace-relative, in evaluation order."""
    found: list[str] = []
    for directory in WORKSPACE_DIRS:
        found += sorted(p.relative_to(root).as_posix() for p in _walk(root / directory, ".kb"))
    return found


def evaluate_workspace(root: Path, overlays: Sequence[Path] = ()) -> list[Declaration]:
    """The declarations of the main tree, then those of each overlay: the settings' overlays,
    then `overlays` (command-line paths), each tagged with its overlay."""
    if not (root / "recipes").is_dir():
        raise KbuildError(
            f"{root} is not a kbuild workspace: it has no recipes/ directory",
            hint="run kbuild from the workspace root or pass --workspace DIR",
        )
    workspace = Workspace(root)
    for path in workspace_files(root):
        workspace.evaluate_file(path)
    declarations = list(workspace.declarations)
    settings = next((d for d in declarations if d.kind == "settings"), None)
    layers = find_overlays(root, WORKSPACE_DIRS, settings, overlays)
    workspace.overlay_trees = [layer.path for layer in layers]
    for layer in layers:
        start = len(workspace.declarations)
        for path in layer.files:
            workspace.evaluate_file(path)
        declarations += [replace(d, overlay=layer.shown) for d in workspace.declarations[start:]]
    return declarations


def load_catalog(root: Path, overlays: Sequence[Path] = ()) -> Catalog:
    return build_catalog(root, evaluate_workspace(root, overlays))


def build_catalog(root: Path, declarations: Iterable[Declaration]) -> Catalog:
    """The catalog of a workspace's declarations, every problem in them reported at once."""
    declarations = list(declarations)
    errors: list[KbuildError] = []
    by_kind: dict[str, dict[str, Declaration]] = {kind: {} for kind in SCHEMAS}
    settings_decl: Declaration | None = None
    overrides: list[Declaration] = []
    for decl in declarations:
        if decl.kind == "override":
            overrides.append(decl)
        elif decl.kind == "settings" and decl.overlay is not None:
            errors.append(settings_in_overlay(decl))
        elif decl.kind == "settings":
            if settings_decl is not None:
                errors.append(duplicate("settings()", decl, settings_decl))
            settings_decl = decl
        elif decl.name in by_kind[decl.kind]:
            errors.append(duplicate(f"{decl.kind} '{decl.name}'", decl, by_kind[decl.kind][decl.name]))
        else:
            by_kind[decl.kind][decl.name] = decl

    families = {n: family_of(d) for n, d in by_kind["family"].items()}
    distros = {n: distro_of(d, families, errors) for n, d in by_kind["distro"].items()}
    platforms = {n: Platform(n, d.args["arch"], d.location) for n, d in by_kind["platform"].items()}
    for platform in platforms.values():
        for family in platform.arch:
            check_family(family, families, platform.location, errors)
    names = Names(families, distros, platforms, by_kind["image"])
    drafts = {n: ImageDraft.declare(root, d, names, errors) for n, d in by_kind["image"].items()}
    apply_overrides(root, drafts, overrides, names, errors)
    images = {n: draft.freeze() for n, draft in drafts.items()}
    ordered = topological(images, errors)
    check_user_groups(images, families, errors)
    profiles = {
        n: Profile(n, d.args["images"], d.args["description"], d.location)
        for n, d in by_kind["profile"].items()
    }
    for profile in profiles.values():
        check_profile(profile, images, errors)
    settings = settings_of(settings_decl, distros, platforms, errors)
    if errors:
        raise errors[0] if len(errors) == 1 else KbuildErrors(errors)
    shown = dict.fromkeys(d.overlay for d in declarations if d.overlay is not None)
    return Catalog(
        root=root,
        families=MappingProxyType(families),
        distros=MappingProxyType(distros),
        platforms=MappingProxyType(platforms),
        images=MappingProxyType({name: images[name] for name in ordered}),
        profiles=MappingProxyType(profiles),
        settings=settings,
        overlays=tuple(shown),
    )


def recipes_digest(root: Path) -> str:
    """A hash of every file the workspace's images are made from."""
    digest = hashlib.sha256()
    for directory in WORKSPACE_DIRS:
        for path in sorted(_walk(root / directory)):
            try:
                content = files.sha256_of(path, root)
            except files.FileProblem:
                continue  # not a file of the workspace: refused where a recipe names it
            digest.update(f"{path.relative_to(root)}\0".encode())
            digest.update(bytes.fromhex(content))
    return "sha256:" + digest.hexdigest()
