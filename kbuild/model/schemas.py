"""The functions recipes call, with strict schemas.

A schema names every argument, its type and its default. Checking an argument returns it in
canonical, immutable form (tuples and read-only mappings), so what a recipe declared cannot change
afterwards and keyword order never matters. The helper values (user(), pip()...) are structs of
the recipe language.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from kbuild.lang.values import REQUIRED, Struct, type_name

EMPTY: Mapping[str, Any] = MappingProxyType({})


class _Unchanged:
    """The default of an override() argument that leaves the field as it is (None is a value)."""

    def __repr__(self) -> str:
        return "unchanged"


UNCHANGED: Any = _Unchanged()

# Where a source install's local archive is copied, and installed from.
SOURCE_ARCHIVES = "/var/lib/kbuild/src"


class SchemaTypeError(Exception):
    """A value does not have the type a schema asks for; the message says what was expected."""


class ArgumentError(Exception):
    """A helper's arguments are well typed but do not make sense together. `index` is the
    position of the offending positional argument, when it is one."""

    def __init__(
        self, argument: str, message: str, hint: str | None = None, index: int | None = None
    ) -> None:
        super().__init__(message)
        self.argument = argument
        self.hint = hint
        self.index = index


# --- types -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Type:
    name: str
    check: Callable[[Any], Any]


def _scalar(name: str, python_type: type) -> Type:
    def check(value: Any) -> Any:
        if isinstance(value, bool) != (python_type is bool) or not isinstance(value, python_type):
            raise SchemaTypeError(f"expected {name}, got {type_name(value)}")
        return value

    return Type(name, check)


STR = _scalar("a string", str)
INT = _scalar("an int", int)


def list_of(item: Type) -> Type:
    def check(value: Any) -> tuple[Any, ...]:
        if not isinstance(value, (list, tuple)):
            raise SchemaTypeError(f"expected a list of {_plural(item)}, got {type_name(value)}")
        out = []
        for index, element in enumerate(value):
            try:
                out.append(item.check(element))
            except SchemaTypeError as error:
                raise SchemaTypeError(f"item {index}: {error}") from None
        return tuple(out)

    return Type(f"a list of {_plural(item)}", check)


def dict_of(key: Type, value_type: Type) -> Type:
    def check(value: Any) -> Mapping[Any, Any]:
        if not isinstance(value, dict):
            raise SchemaTypeError(
                f"expected a dict of {_plural(key)} to {_plural(value_type)}, got {type_name(value)}"
            )
        out = {}
        for k, v in value.items():
            try:
                out[key.check(k)] = value_type.check(v)
            except SchemaTypeError as error:
                raise SchemaTypeError(f"key {k!r}: {error}") from None
        return MappingProxyType(out)

    return Type(f"a dict of {_plural(key)} to {_plural(value_type)}", check)


def optional(inner: Type) -> Type:
    def check(value: Any) -> Any:
        return None if value is None else inner.check(value)

    return Type(f"{inner.name} or None", check)


def one_of(*types: Type) -> Type:
    name = " or ".join(t.name for t in types)

    def check(value: Any) -> Any:
        for candidate in types:
            try:
                return candidate.check(value)
            except SchemaTypeError:
                continue
        raise SchemaTypeError(f"expected {name}, got {type_name(value)}")

    return Type(name, check)


def struct(*kinds: type[Struct]) -> Type:
    names = " or ".join(f"{kind.kind}(...)" for kind in kinds)

    def check(value: Any) -> Any:
        if not isinstance(value, kinds):
            raise SchemaTypeError(f"expected {names}, got {type_name(value)}")
        return value

    return Type(names, check)


def matching(inner: Type, pattern: str, what: str) -> Type:
    compiled = re.compile(pattern)

    def check(value: Any) -> Any:
        value = inner.check(value)
        if not compiled.fullmatch(value):
            raise SchemaTypeError(f"{value!r} is not {what}")
        return value

    return Type(inner.name, check)


def _plural(t: Type) -> str:
    return {"a string": "strings", "an int": "ints", "a bool": "bools"}.get(t.name, t.name)


IMAGE_NAME = matching(STR, r"[a-z0-9][a-z0-9._-]*", "a valid image name ([a-z0-9._-], lower case)")
SHA256 = matching(STR, r"[0-9a-f]{64}", "a sha256 digest (64 lower-case hex digits)")
STRINGS = list_of(STR)
PER_FAMILY = dict_of(STR, STRINGS)  # {"deb": [...], "rpm": [...]}
STR_DICT = dict_of(STR, STR)


# --- helper values ---------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class User(Struct):
    kind = "user"
    name: str
    uid: int
    gid: int
    home: str
    shell: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, repr=False)
class Pip(Struct):
    """`archive` is a local sdist or wheel, workspace-relative (absolute for an overlay outside
    the workspace); it is installed as the last requirement, checked by pip against `sha256`."""

    kind = "pip"
    requirements: tuple[str, ...]
    packages: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: EMPTY)
    venv: str = "/var/lib/kbuild/venv"
    constraints: tuple[str, ...] = ()
    archive: str | None = None
    sha256: str | None = None

    @property
    def archive_destination(self) -> str | None:
        """Where the archive is copied in the image."""
        return f"{SOURCE_ARCHIVES}/{Path(self.archive).name}" if self.archive else None


@dataclass(frozen=True, repr=False)
class Debootstrap(Struct):
    kind = "debootstrap"
    variant: str
    components: tuple[str, ...]
    include: tuple[str, ...]
    mirror: str | None


@dataclass(frozen=True, repr=False)
class Upstream(Struct):
    kind = "upstream"
    ref: str


ROOT = struct(Debootstrap, Upstream)


# --- schemas ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    type: Type
    default: Any = REQUIRED
    doc: str = ""


@dataclass(frozen=True)
class Schema:
    """A builtin's signature. `positional` names the arguments that may be passed by position;
    `star` names the one that collects any further positional arguments."""

    name: str
    doc: str
    params: Mapping[str, Param]
    positional: tuple[str, ...] = ()
    star: str | None = None
    declares: bool = True  # recorded as a declaration (image, distro...) rather than a value


def _schema(
    schema_name: str,
    doc: str,
    /,
    positional: tuple[str, ...] = (),
    star: str | None = None,
    declares: bool = True,
    **params: Param,
) -> Schema:
    return Schema(schema_name, doc, MappingProxyType(params), positional, star, declares)


SCHEMAS: Mapping[str, Schema] = MappingProxyType(
    {
        s.name: s
        for s in (
            _schema(
                "family",
                "A package family: how every distro that uses it installs packages and users.",
                positional=("name",),
                name=Param(STR, doc="the family's name, used as key in `packages` dicts"),
                install=Param(STR, doc="shell command installing `{packages}`"),
                clean=Param(STR, "", "shell command run after installing, in the same layer"),
                add_user=Param(
                    STR,
                    doc="shell command creating a user: `{name} {uid} {gid} {home} {shell}`",
                ),
                pin=Param(STR, "{name}={version}", "how a locked version is written"),
                list_installed=Param(STR, "", "shell command printing `name=version` lines"),
            ),
            _schema(
                "distro",
                "A distribution: its package family, releases and where its root comes from.",
                positional=("name",),
                name=Param(IMAGE_NAME, doc="the distro's name (`--distro`)"),
                family=Param(STR, doc="a family() name"),
                releases=Param(list_of(IMAGE_NAME), doc="releases; the first is the default"),
                root=Param(
                    one_of(ROOT, dict_of(STR, ROOT)),
                    doc="debootstrap(...) or upstream(...), or a dict of release to either",
                ),
                repositories=Param(STRINGS, (), "shell commands run in the root image first"),
            ),
            _schema(
                "platform",
                "A target platform and its architecture name in each package family.",
                positional=("name",),
                name=Param(
                    matching(STR, r"[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?", "an os/arch platform"),
                    doc="a BuildKit platform such as `linux/arm64`",
                ),
                arch=Param(STR_DICT, doc="family -> architecture, e.g. `{'deb': 'arm64'}`"),
            ),
            _schema(
                "image",
                "An image: its parent, packages, files, blocks, environment and user.",
                positional=("name",),
                name=Param(IMAGE_NAME, doc="the image's name"),
                parent=Param(
                    optional(IMAGE_NAME),
                    None,
                    "parent image; None builds on the distro root",
                ),
                packages=Param(PER_FAMILY, EMPTY, "family -> packages, for every install type"),
                binary=Param(PER_FAMILY, EMPTY, "family -> packages, for `--type binary` only"),
                source=Param(optional(struct(Pip)), None, "pip(...), for `--type source` only"),
                files=Param(STR_DICT, EMPTY, "context file (relative to the recipe) -> path"),
                blocks=Param(dict_of(STR, STRINGS), EMPTY, "block name -> Dockerfile lines"),
                env=Param(STR_DICT, EMPTY, "environment variables"),
                labels=Param(STR_DICT, EMPTY, "image labels"),
                user=Param(optional(struct(User)), None, "user(...) created here and run as"),
                description=Param(STR, "", "one line, becomes the OCI description label"),
                unbuildable=Param(
                    STR_DICT, EMPTY, "distro -> why the image cannot be built there (it and its descendants)"
                ),
                clean=Param(
                    STRINGS,
                    (),
                    "shell commands run after the install, in its layer (what its packages leave)",
                ),
            ),
            _schema(
                "profile",
                "A named selection of images, as regular expressions like kolla-build's.",
                positional=("name",),
                name=Param(IMAGE_NAME, doc="the profile's name (`--profile`)"),
                images=Param(STRINGS, doc="regular expressions searched in image names"),
                description=Param(STR, "", "one line"),
            ),
            _schema(
                "settings",
                "Build defaults for the workspace; command-line options override them.",
                registry=Param(STR, "127.0.0.1:5000", "registry host[:port] of the tags"),
                namespace=Param(STR, "kbuild", "namespace (path) of the tags"),
                tag=Param(STR, "latest", "tag of every image"),
                distro=Param(STR, "debian", "default `--distro`"),
                release=Param(optional(STR), None, "default `--release` (distro's first)"),
                type=Param(
                    matching(STR, "binary|source", "'binary' or 'source'"),
                    "binary",
                    "default `--type`",
                ),
                platforms=Param(STRINGS, ("linux/amd64",), "default `--platform`"),
                build_args=Param(STR_DICT, EMPTY, "build arguments of every image"),
                labels=Param(STR_DICT, EMPTY, "labels of every image"),
                source_date_epoch=Param(INT, 1767225600, "timestamp of every file and image (a lock's wins)"),
                overlays=Param(
                    STRINGS, (), "overlay directories (workspace-relative), before any `--overlay`"
                ),
            ),
            _schema(
                "override",
                "Changes an image declared elsewhere, typically from an overlay. Overrides apply after "
                "every image is declared, in evaluation order: the later one wins.",
                positional=("image",),
                image=Param(IMAGE_NAME, doc="the image to change"),
                packages_append=Param(PER_FAMILY, EMPTY, "family -> packages added, for every install type"),
                packages_remove=Param(
                    PER_FAMILY, EMPTY, "family -> packages removed; the image must list each one"
                ),
                packages_override=Param(
                    PER_FAMILY, EMPTY, "family -> the image's whole package list, for every install type"
                ),
                blocks=Param(dict_of(STR, STRINGS), EMPTY, "block name -> Dockerfile lines appended to it"),
                blocks_replace=Param(
                    dict_of(STR, STRINGS), EMPTY, "block name -> Dockerfile lines replacing it (first)"
                ),
                parent=Param(optional(IMAGE_NAME), UNCHANGED, "the parent image"),
                env=Param(STR_DICT, EMPTY, "environment variables, merged over the image's"),
                labels=Param(STR_DICT, EMPTY, "image labels, merged over the image's"),
                user=Param(optional(struct(User)), UNCHANGED, "user(...) created and run as; None: none"),
                files=Param(
                    STR_DICT, EMPTY, "context file (relative to this file) -> path; replaces one at that path"
                ),
                source=Param(optional(struct(Pip)), UNCHANGED, "pip(...) for `--type source`; None: none"),
                disable=Param(
                    STRINGS, (), "distros and platforms not to build the image and its descendants for"
                ),
            ),
            _schema(
                "user",
                "A user to create in an image, with fixed ids.",
                positional=("name",),
                declares=False,
                name=Param(STR, doc="user and group name"),
                uid=Param(INT, doc="fixed user id"),
                gid=Param(optional(INT), None, "fixed group id (default: the uid)"),
                home=Param(optional(STR), None, "home directory (default: /var/lib/NAME)"),
                shell=Param(STR, "/usr/sbin/nologin", "login shell"),
                groups=Param(STRINGS, (), "supplementary groups"),
            ),
            _schema(
                "pip",
                "A source install: requirements installed with pip into a virtualenv.",
                star="requirements",
                declares=False,
                requirements=Param(STRINGS, (), "pip requirement specifiers"),
                packages=Param(PER_FAMILY, EMPTY, "family -> packages a source install needs"),
                venv=Param(STR, "/var/lib/kbuild/venv", "the virtualenv"),
                constraints=Param(STRINGS, (), "pip constraints (`name==version`)"),
                archive=Param(
                    optional(STR), None, "an sdist or wheel next to this file, copied into the context"
                ),
                sha256=Param(optional(SHA256), None, "the archive's sha256, checked by kbuild and pip"),
            ),
            _schema(
                "debootstrap",
                "A root made locally with debootstrap, per release and architecture.",
                declares=False,
                variant=Param(STR, "minbase", "debootstrap --variant"),
                components=Param(STRINGS, ("main",), "archive components"),
                include=Param(STRINGS, (), "extra packages in the root"),
                mirror=Param(optional(STR), None, "mirror URI (default: the host's apt source)"),
            ),
            _schema(
                "upstream",
                "A root taken from a registry image, pinned by digest.",
                positional=("ref",),
                declares=False,
                ref=Param(STR, doc="`name:tag@sha256:...`"),
            ),
        )
    }
)


def make_value(schema: Schema, args: Mapping[str, Any], directory: str = ".") -> Struct:
    """Build the helper value of a non-declaring builtin from checked arguments; `directory` is
    that of the file that called it (paths in arguments are relative to it)."""
    if schema.name == "pip":
        return _pip(args, directory)
    if schema.name == "user":
        return User(
            name=args["name"],
            uid=args["uid"],
            gid=args["uid"] if args["gid"] is None else args["gid"],
            home=args["home"] or f"/var/lib/{args['name']}",
            shell=args["shell"],
            groups=args["groups"],
        )
    constructors: dict[str, type[Struct]] = {
        "debootstrap": Debootstrap,
        "upstream": Upstream,
    }
    return constructors[schema.name](**args)


_GIT_COMMIT = re.compile(r"@[0-9a-f]{40}(#.*)?$")
_URL_SHA256 = re.compile(r"#(.*&)?sha256=[0-9a-f]{64}(&|$)")


def _pip(args: Mapping[str, Any], directory: str) -> Pip:
    """A source install whose every direct reference is pinned: a URL by its sha256 (which pip
    checks), a git reference by a full commit id, a local archive by its sha256."""
    for index, requirement in enumerate(args["requirements"]):
        url = requirement.partition(" @ ")[2].strip() if " @ " in requirement else requirement
        if url.startswith("git+") and not _GIT_COMMIT.search(url):
            raise ArgumentError(
                "requirements",
                f"{requirement!r} does not pin a commit",
                "name @ git+https://host/repo.git@<the full 40-hex commit id>",
                index,
            )
        if "://" in url and not url.startswith("git+") and not _URL_SHA256.search(url):
            raise ArgumentError(
                "requirements",
                f"{requirement!r} has no checksum",
                "append #sha256=<digest of the file> to the URL; pip checks it",
                index,
            )
    archive, sha256 = args["archive"], args["sha256"]
    if archive is None:
        if sha256 is not None:
            raise ArgumentError(
                "sha256", "checks an archive, but no archive is given", "add archive = 'FILE'"
            )
        return Pip(**args)
    written = Path(archive)
    if "://" in archive or written.is_absolute() or ".." in written.parts:
        raise ArgumentError(
            "archive",
            f"{archive!r} is not a file next to this recipe",
            "a URL goes in the requirements: 'name @ https://host/file.tar.gz#sha256=<digest>'",
        )
    if sha256 is None:
        raise ArgumentError("archive", "needs its checksum", f"add sha256 = '...' (sha256sum {archive})")
    pinned = f"file://{SOURCE_ARCHIVES}/{written.name}#sha256={sha256}"
    return Pip(
        **{
            **args,
            "archive": (Path(directory) / written).as_posix(),
            "requirements": (*args["requirements"], pinned),
        }
    )
