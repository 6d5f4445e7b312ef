"""The values of the recipe language, shared by the interpreter and the host that embeds it.

Lists and dicts are Python's own, frozen (made read-only) once the file that made them is
evaluated. A host defines its own immutable values as `Struct` subclasses (attribute access works
on their fields) and its own functions as `Builtin`s, handed to the interpreter as predeclared names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from functools import cached_property
from typing import TYPE_CHECKING, Any

from kbuild.errors import KbuildError, Location, did_you_mean

if TYPE_CHECKING:
    from kbuild.lang.syntax import Tree

# The default of a parameter that has none; also what host schemas use for a required argument.
REQUIRED: Any = object()


class FrozenList(list):
    """A list whose file has finished evaluating."""


class FrozenDict(dict):
    """A dict whose file has finished evaluating."""


def freeze(value: Any) -> Any:
    if isinstance(value, list) and not isinstance(value, FrozenList):
        return FrozenList(freeze(v) for v in value)
    if isinstance(value, dict) and not isinstance(value, FrozenDict):
        return FrozenDict((k, freeze(v)) for k, v in value.items())
    if isinstance(value, tuple):
        return tuple(freeze(v) for v in value)
    return value


@dataclass(frozen=True)
class Struct:
    """A host value with named fields, such as user(...): immutable, comparable, and shown as
    the call that made it. Subclasses are frozen dataclasses naming their `kind`."""

    kind = "struct"

    def __repr__(self) -> str:
        args = ", ".join(f"{f.name} = {getattr(self, f.name)!r}" for f in fields(self))
        return f"{self.kind}({args})"


_TYPE_NAMES = {str: "string", int: "int", list: "list", tuple: "tuple", dict: "dict"}


def type_name(value: Any) -> str:
    """How the recipe language names the type of a value."""
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Struct):
        return value.kind
    for python_type, name in _TYPE_NAMES.items():
        if isinstance(value, python_type):
            return name
    return getattr(value, "kind", type(value).__name__)


@dataclass(eq=False)
class Module:
    """One evaluated file: `lines` for error excerpts, `globals` frozen once it is done."""

    path: str
    lines: list[str]
    globals: dict[str, Any]


@dataclass(eq=False)
class Function:
    """A `def` function (a macro, in recipes)."""

    kind = "function"
    name: str
    params: list[tuple[str, str, Any]]  # (kind, name, default): kind is "", "*" or "**"
    body: Tree
    module: Module
    location: Location

    def bind(
        self,
        args: list[Any],
        kwargs: Mapping[str, Any],
        location: Location,
        where: Mapping[str | int, Location],
    ) -> dict[str, Any]:
        """The function's local scope for a call: each parameter bound to its argument (or
        default); `where` has where each argument was written, for errors about one."""
        scope: dict[str, Any] = {}
        remaining = list(args)
        extra_kwargs = dict(kwargs)
        for kind, name, default in self.params:
            if kind == "*":
                scope[name] = tuple(remaining)
                remaining = []
            elif kind == "**":
                scope[name] = extra_kwargs
                extra_kwargs = {}
            elif remaining:
                if name in extra_kwargs:
                    raise KbuildError(f"{self.name}() got '{name}' twice", where.get(name, location))
                scope[name] = remaining.pop(0)
            elif name in extra_kwargs:
                scope[name] = extra_kwargs.pop(name)
            elif default is not REQUIRED:
                scope[name] = default
            else:
                raise KbuildError(
                    f"{self.name}() missing argument '{name}'",
                    location,
                    f"{self.name} is defined at {self.location}",
                )
        if remaining:
            raise KbuildError(
                f"{self.name}() takes {len(self.params)} arguments, got {len(args)}",
                where.get(len(args) - len(remaining), location),
            )
        if extra_kwargs:
            unknown = next(iter(extra_kwargs))
            raise KbuildError(
                f"{self.name}() got an unknown argument '{unknown}'",
                where.get(unknown, location),
                did_you_mean(unknown, [n for k, n, _ in self.params if not k]),
            )
        return scope


@dataclass(frozen=True, eq=False)
class Call:
    """One call of a host builtin, as the host sees it.

    `where` has where each argument (by position or keyword) was written; `literals` where each
    string literal inside an argument is (its first occurrence), computed only when asked for;
    `stack` the call sites of the `def` functions running, outermost first.
    """

    name: str
    location: Location
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    where: Mapping[str | int, Location]
    stack: tuple[Location, ...]
    find_literals: Callable[[], Mapping[str | int, Mapping[str, Location]]]

    @cached_property
    def literals(self) -> Mapping[str | int, Mapping[str, Location]]:
        return self.find_literals()


@dataclass(eq=False)
class Builtin:
    """A function written in Python. The language's own are called as
    `call(location, *args, **kwargs)`; a host's (`host`) as `call(Call)`, and check their own
    arguments."""

    kind = "builtin_function"
    name: str
    call: Callable[..., Any]
    host: bool = False


@dataclass(eq=False)
class BoundMethod:
    kind = "builtin_function"
    name: str
    receiver: Any
