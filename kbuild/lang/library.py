"""The language's own builtins (len, range, str, sorted, fail...) and the methods of its strings,
lists and dicts: what every program may use, whatever the host adds."""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from kbuild.errors import KbuildError, Location
from kbuild.lang import limits
from kbuild.lang.values import BoundMethod, Builtin, FrozenDict, FrozenList, type_name

MAX_LENGTH = limits.MAX_LENGTH  # the longest string or list that `*` or range() may make

FROZEN_HINT = "values are frozen once the file that made them is evaluated; copy it first: list(x) or dict(x)"


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_mutable(value: Any, location: Location | Callable[[], Location]) -> None:
    """A frozen list or dict cannot change; `location` may be computed only when it is needed."""
    if isinstance(value, (FrozenList, FrozenDict)):
        where = location() if callable(location) else location
        raise KbuildError(f"cannot modify a frozen {type_name(value)}", where, FROZEN_HINT)


# --- methods ---------------------------------------------------------------------------------

_METHODS: dict[type, frozenset[str]] = {
    str: frozenset(
        [
            *("format", "join", "replace", "split", "rsplit", "splitlines", "startswith", "endswith"),
            *("strip", "lstrip", "rstrip", "lower", "upper", "removeprefix", "removesuffix"),
            *("count", "find", "capitalize", "title", "isdigit"),
        ]
    ),
    list: frozenset(["append", "extend", "insert", "pop", "remove", "clear", "index", "count"]),
    dict: frozenset(["get", "items", "keys", "values", "update", "pop", "setdefault", "clear"]),
    tuple: frozenset(["index", "count"]),
}
_MUTATORS = frozenset(["append", "extend", "insert", "pop", "remove", "clear", "update", "setdefault"])
_LISTS = frozenset(["items", "keys", "values", "split", "rsplit", "splitlines"])  # made lists


def methods_of(value: Any) -> frozenset[str]:
    for kind, methods in _METHODS.items():
        if isinstance(value, kind):
            return methods
    return frozenset()


def call_method(method: BoundMethod, args: list[Any], kwargs: dict[str, Any], location: Location) -> Any:
    receiver, name = method.receiver, method.name
    if name in _MUTATORS:
        check_mutable(receiver, location)
    if isinstance(receiver, str) and name == "format":
        return _format(receiver, args, kwargs, location)
    if name in ("join", "replace", "extend", "append", "insert", "update"):
        _check_growth(receiver, name, args, location)
    try:
        result = getattr(receiver, name)(*args, **kwargs)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as error:
        raise KbuildError(f"{type_name(receiver)}.{name}(): {error}", location) from None
    if name in _LISTS:
        return [tuple(r) if isinstance(r, tuple) else r for r in result]
    return result


def _check_growth(receiver: Any, name: str, args: list[Any], location: Location) -> None:
    """Refuse a join(), replace() or growth of a list or dict whose result would be too large,
    before it is made."""
    if isinstance(receiver, (list, dict)):
        added = args[0] if name in ("extend", "update") and args else (None,)
        length = len(receiver) + (len(added) if isinstance(added, (list, tuple, dict)) else 0)
    elif name == "join" and isinstance(receiver, str) and args and isinstance(args[0], (list, tuple)):
        items = args[0]
        length = sum(len(i) for i in items if isinstance(i, str)) + len(receiver) * max(len(items) - 1, 0)
    elif (
        name == "replace"
        and isinstance(receiver, str)
        and len(args) >= 2
        and all(isinstance(a, str) for a in args[:2])
    ):
        old, new = args[0], args[1]
        count = receiver.count(old) if old else len(receiver) + 1
        if len(args) > 2 and is_int(args[2]) and args[2] >= 0:
            count = min(count, args[2])
        length = len(receiver) + count * (len(new) - len(old))
    else:
        return
    problem = limits.too_long(length)
    if problem is not None:
        raise KbuildError(f"{type_name(receiver)}.{name}() {problem}", location, limits.SIZE_HINT)


def _format(template: str, args: list[Any], kwargs: dict[str, Any], location: Location) -> str:
    # Each field prints one argument within its width: their sum bounds the result.
    total, auto = len(template), 0
    try:
        for _, field_name, spec, _ in string.Formatter().parse(template):
            if field_name is None:
                continue
            if field_name and not field_name.isidentifier() and not field_name.isdigit():
                raise ValueError(f"field {{{field_name}}}: only {{}}, {{0}} and {{name}} are allowed")
            if field_name == "":
                field_name, auto = str(auto), auto + 1
            index = int(field_name) if field_name.isdigit() else None
            value = kwargs.get(field_name) if index is None else args[index] if index < len(args) else None
            problem, widths = limits.spec_problem(spec or "")
            total += widths + limits.deep_size(value)
            problem = problem or limits.too_long(total)
            if problem is not None:
                raise KbuildError(f"string.format(): {problem}", location, limits.SIZE_HINT)
        result = template.format(*args, **kwargs)
    except (ValueError, IndexError, KeyError, OverflowError) as error:
        raise KbuildError(f"string.format(): {error}", location) from None
    if len(result) > limits.MAX_LENGTH:
        raise KbuildError(f"string.format() {limits.too_long(len(result))}", location, limits.SIZE_HINT)
    return result


# --- builtins: each is called as f(location, *args, **kwargs) --------------------------------


def _sorted(location: Location, iterable: Any, reverse: bool = False) -> list[Any]:
    return sorted(iterable, reverse=reverse)


def _type(location: Location, value: Any) -> str:
    return type_name(value)


def _dict(location: Location, /, *args: Any, **kwargs: Any) -> dict[Any, Any]:
    return dict(*args, **kwargs)


def _range(location: Location, *args: Any) -> list[int]:
    numbers = range(*args)
    if abs(numbers.stop - numbers.start) > MAX_LENGTH * abs(numbers.step):
        raise ValueError(f"more than {MAX_LENGTH} numbers")
    return list(numbers)


def _str(location: Location, value: Any = "") -> str:
    if limits.deep_size(value) > limits.MAX_LENGTH:
        raise KbuildError(f"str() {limits.too_long(limits.deep_size(value))}", location, limits.SIZE_HINT)
    if isinstance(value, bool):
        return "True" if value else "False"
    return value if isinstance(value, str) else repr(value) if not is_int(value) else str(value)


def _fail(location: Location, *message: Any) -> None:
    raise KbuildError(" ".join(str(m) for m in message), location)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": lambda location, value: len(value),
    "range": _range,
    "str": _str,
    "int": lambda location, value, base=10: int(value, base) if isinstance(value, str) else int(value),
    "bool": lambda location, value=False: bool(value),
    "list": lambda location, value=(): list(value),
    "tuple": lambda location, value=(): tuple(value),
    "dict": _dict,
    "sorted": _sorted,
    "reversed": lambda location, value: list(reversed(value)),
    "enumerate": lambda location, value, start=0: [tuple(p) for p in enumerate(value, start)],
    "zip": lambda location, *values: [tuple(p) for p in zip(*values, strict=False)],
    "any": lambda location, value: any(value),
    "all": lambda location, value: all(value),
    "min": lambda location, *values: min(*values),
    "max": lambda location, *values: max(*values),
    "type": _type,
    "fail": _fail,
}

BUILTINS: Mapping[str, Builtin] = MappingProxyType(
    {name: Builtin(name, function) for name, function in _FUNCTIONS.items()}
)
