"""What the operators do to values: arithmetic, `%` formatting, comparisons, indexing and
slicing, with the strict types of Starlark (no implicit conversions, no dict `+`)."""

from __future__ import annotations

from typing import Any

from kbuild.errors import KbuildError, Location, did_you_mean
from kbuild.lang import limits
from kbuild.lang.library import is_int
from kbuild.lang.limits import MAX_LENGTH
from kbuild.lang.values import type_name


def _same_sequence(left: Any, right: Any) -> bool:
    return any(isinstance(left, kind) and isinstance(right, kind) for kind in (str, list, tuple))


def binary(op: str, left: Any, right: Any, location: Location) -> Any:
    """`left op right` for + - * % //."""
    if op == "%" and isinstance(left, str):
        return _percent(left, right, location)
    numbers = is_int(left) and is_int(right)
    if numbers:
        return _int(op, left, right, location)
    if op == "+" and _same_sequence(left, right):
        if len(left) + len(right) > MAX_LENGTH:
            raise KbuildError(f"'+' {limits.too_long(len(left) + len(right))}", location, limits.SIZE_HINT)
        return (list(left) + list(right)) if isinstance(left, list) else left + right
    if op == "+" and isinstance(left, dict) and isinstance(right, dict):
        raise KbuildError(
            "cannot add dicts",
            location,
            "use dict(a, **b) or a | b is not supported",
        )
    if op == "*" and isinstance(left, (str, list, tuple)) and is_int(right):
        if len(left) * right > MAX_LENGTH:
            raise KbuildError(f"'*' would make more than {MAX_LENGTH} items", location, limits.SIZE_HINT)
        return list(left * right) if isinstance(left, list) else left * right
    raise KbuildError(
        f"unsupported operand types for {op}: {type_name(left)} and {type_name(right)}",
        location,
    )


def _int(op: str, left: int, right: int, location: Location) -> int:
    if op in ("//", "%") and right == 0:
        raise KbuildError("division by zero", location)
    if op == "*" and left.bit_length() + right.bit_length() > limits.MAX_INT_BITS + 1:
        raise KbuildError(
            f"'*' would make an int of more than {limits.MAX_INT_BITS} bits", location, limits.INT_HINT
        )
    if op == "+":
        result = left + right
    elif op == "-":
        result = left - right
    elif op == "*":
        result = left * right
    else:
        result = left // right if op == "//" else left % right
    if result.bit_length() > limits.MAX_INT_BITS:
        raise KbuildError(
            f"'{op}' would make an int of more than {limits.MAX_INT_BITS} bits", location, limits.INT_HINT
        )
    return result


def _percent(template: str, args: Any, location: Location) -> str:
    values = args if isinstance(args, tuple) else (args,)
    if not all(isinstance(v, (str, int)) or v is None for v in values):
        raise KbuildError("'%' formats only strings, ints, bools and None", location)
    problem = limits.percent_problem(template, values)
    if problem is not None:
        raise KbuildError(f"bad '%' format: {problem}", location, limits.SIZE_HINT)
    try:
        result = template % values
    except (TypeError, ValueError, KeyError, OverflowError) as error:
        raise KbuildError(f"bad '%' format: {error}", location) from None
    if len(result) > MAX_LENGTH:
        raise KbuildError(f"'%' {limits.too_long(len(result))}", location, limits.SIZE_HINT)
    return result


def compare(op: str, left: Any, right: Any, location: Location) -> bool:
    """`left op right` for == != < > <= >= in, not in."""
    try:
        if op == "==":
            return left == right
        if op == "!=":
            return left != right
        if op in ("in", "not in"):
            if not isinstance(right, (str, list, tuple, dict)):
                raise TypeError(
                    f"'in' needs a string, list, tuple or dict on the right, got {type_name(right)}"
                )
            if isinstance(right, str) and not isinstance(left, str):
                raise TypeError(f"'in <string>' needs a string on the left, got {type_name(left)}")
            return (left in right) == (op == "in")
        if type(left) is not type(right) or not isinstance(left, (int, str, list, tuple)):
            raise TypeError(f"cannot compare {type_name(left)} {op} {type_name(right)}")
        return {
            "<": left < right,
            ">": left > right,
            "<=": left <= right,
            ">=": left >= right,
        }[op]
    except TypeError as error:
        raise KbuildError(str(error), location) from None


def negate(op: str, value: Any, location: Location) -> int:
    """Unary `-` (op "neg") or `+` (op "pos")."""
    if not is_int(value):
        raise KbuildError(f"unary '-' needs an int, got {type_name(value)}", location)
    return -value if op == "neg" else value


def index(container: Any, key: Any, location: Location) -> Any:
    """`container[key]`; a dict key has been checked to be hashable."""
    if isinstance(container, dict):
        if key not in container:
            hint = (
                did_you_mean(key, [k for k in container if isinstance(k, str)])
                if isinstance(key, str)
                else None
            )
            raise KbuildError(f"key {key!r} not in dict", location, hint)
        return container[key]
    if isinstance(container, (list, tuple, str)):
        if not is_int(key):
            raise KbuildError(f"index must be an int, got {type_name(key)}", location)
        if not -len(container) <= key < len(container):
            raise KbuildError(f"index {key} out of range for length {len(container)}", location)
        return container[key]
    raise KbuildError(f"cannot index a {type_name(container)}", location)


def slice_of(container: Any, start: Any, stop: Any, location: Location) -> Any:
    """`container[start:stop]`."""
    if not isinstance(container, (list, tuple, str)) or not all(
        b is None or is_int(b) for b in (start, stop)
    ):
        raise KbuildError("slices need a string, list or tuple and int bounds", location)
    result = container[start:stop]
    return list(result) if isinstance(container, list) else result
