"""The host builtins made from the schemas: each checks its arguments against its schema, then
either records a `Declaration` (image, distro...) or returns a helper value (user, pip...)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from kbuild.errors import KbuildError, Location, did_you_mean
from kbuild.lang.values import Builtin, Call
from kbuild.model.schemas import EMPTY, REQUIRED, SCHEMAS, ArgumentError, Schema, SchemaTypeError, make_value


@dataclass(frozen=True)
class Declaration:
    """One call of a declaring builtin, its arguments checked and in schema order.

    `location` is where the user wrote it: the outermost call in the file being evaluated, so
    an image made by a macro points at the macro's call site. `via` lists the calls in between.
    `arg_locations` has where each argument given to the builtin itself was written, and
    `literals` where each string literal inside such an argument is (its first occurrence), so
    an error about one value can point at it. `overlay` names the overlay the call came from.
    """

    kind: str
    args: Mapping[str, Any]
    location: Location
    via: tuple[Location, ...] = ()
    arg_locations: Mapping[str, Location] = field(default_factory=lambda: EMPTY)
    literals: Mapping[str, Mapping[str, Location]] = field(default_factory=lambda: EMPTY)
    overlay: str | None = None

    @property
    def name(self) -> str:
        return self.args.get("name", self.kind)

    @property
    def directory(self) -> str:
        """The directory of the file that made the call: context files are relative to it."""
        return str(Path(self.location.path).parent)

    def where(self, arg: str, value: str | None = None) -> Location:
        """Where to point for an error about `arg` (or the string `value` inside it): the literal
        itself when it is written in the call, else the argument, else the call. Through a macro,
        an argument is the macro's parameter, so the user's call site says more."""
        if value is not None and value in self.literals.get(arg, {}):
            return self.literals[arg][value]
        if arg in self.arg_locations and not self.via:
            return self.arg_locations[arg]
        return self.location


MAX_DECLARATIONS = 10_000  # images, distros... of a workspace and its overlays: 5x a large catalogue


def builtins(record: Callable[[Declaration], None]) -> dict[str, Builtin]:
    """A host builtin for every schema; the declaring ones hand their declarations to `record`,
    at most MAX_DECLARATIONS of them (the catalog's checks are not made for millions)."""
    count = 0

    def bounded(declaration: Declaration) -> None:
        nonlocal count
        count += 1
        if count > MAX_DECLARATIONS:
            raise KbuildError(
                f"more than {MAX_DECLARATIONS} declarations",
                declaration.location,
                "a workspace declares hundreds of images, not tens of thousands",
            )
        record(declaration)

    return {name: Builtin(name, _builtin(schema, bounded), host=True) for name, schema in SCHEMAS.items()}


def _builtin(schema: Schema, record: Callable[[Declaration], None]) -> Callable[[Call], Any]:
    def call(call: Call) -> Any:
        checked = check_args(schema, call)
        if not schema.declares:
            return _value(schema, call, checked)
        if call.stack:  # made by a macro: the user's call site is the outermost one
            outer, via = call.stack[0], (*call.stack[1:], call.location)
        else:
            outer, via = call.location, ()
        record(
            Declaration(
                schema.name,
                checked,
                outer,
                via,
                MappingProxyType(_by_param(schema, call.where)),
                MappingProxyType(_by_param(schema, call.literals)),
            )
        )
        return None

    return call


def _value(schema: Schema, call: Call, checked: Mapping[str, Any]) -> Any:
    try:
        return make_value(schema, checked, Path(call.location.path).parent.as_posix())
    except ArgumentError as error:
        at = call.where.get(error.index) if error.index is not None else None
        raise KbuildError(
            f"{schema.name}(): argument '{error.argument}': {error}",
            at or _by_param(schema, call.where).get(error.argument, call.location),
            error.hint,
        ) from None


def check_args(schema: Schema, call: Call) -> dict[str, Any]:
    """The arguments of `call` by parameter, in schema order, each checked and made canonical."""
    args, location = call.args, call.location
    if len(args) > len(schema.positional) and schema.star is None:
        raise KbuildError(
            f"{schema.name}() takes {len(schema.positional) or 'no'} positional arguments, got {len(args)}",
            call.where.get(len(schema.positional), location),
            "pass the others by keyword: name = value",
        )
    at = _by_param(schema, call.where)
    given: dict[str, Any] = dict(zip(schema.positional, args, strict=False))
    if schema.star is not None:
        given[schema.star] = tuple(args[len(schema.positional) :])
    for key, value in call.kwargs.items():
        if key not in schema.params:
            raise KbuildError(
                f"{schema.name}() got an unknown argument '{key}'",
                at.get(key, location),
                did_you_mean(key, schema.params),
            )
        if key in given:
            raise KbuildError(f"{schema.name}() got '{key}' twice", at.get(key, location))
        given[key] = value
    checked: dict[str, Any] = {}
    for name, param in schema.params.items():  # schema order: keyword order never matters
        if name not in given:
            if param.default is REQUIRED:
                raise KbuildError(f"{schema.name}() missing argument '{name}' ({param.type.name})", location)
            checked[name] = param.default
            continue
        try:
            checked[name] = param.type.check(given[name])
        except SchemaTypeError as error:
            # A bad string points at its literal when the call writes it (not through a macro).
            literal = _by_param(schema, call.literals).get(name, {}).get(error.value or "")
            raise KbuildError(
                f"{schema.name}(): argument '{name}': {error}",
                literal if literal is not None and not call.stack else at.get(name, location),
                error.hint or (f"{name}: {param.doc}" if param.doc else None),
            ) from None
    return checked


_T = TypeVar("_T")


def _by_param(schema: Schema, keyed: Mapping[str | int, _T]) -> dict[str, _T]:
    """What is keyed by argument position or keyword, by parameter name instead."""
    out = {name: keyed[i] for i, name in enumerate(schema.positional) if i in keyed}
    if schema.star is not None and len(schema.positional) in keyed:
        out[schema.star] = keyed[len(schema.positional)]
    out.update((k, v) for k, v in keyed.items() if isinstance(k, str))
    return out
