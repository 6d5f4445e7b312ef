"""How much a program may do: evaluation is bounded, whatever a recipe says.

Recipes may come from people the builder does not trust; each limit is far above what the real
catalogue needs (it evaluates in a few thousand steps), and each is a located error, never a hang,
a MemoryError or a traceback.
"""

from __future__ import annotations

import re
from typing import Any

from kbuild.errors import KbuildError, Location

MAX_STEPS = 1_000_000  # statements, expressions and calls, for the whole program
MAX_ALLOCATED = 10_000_000  # items (characters, elements) made by operators and calls, in all
MAX_LENGTH = 1_000_000  # the longest string, list or dict a single operation may make
MAX_WIDTH = 100  # a width or precision in a '%' or format() specification
MAX_INT_BITS = 4_096  # ints beyond this are no ids, timestamps or counts (and print slowly)
MAX_SOURCE_CHARS = 256 * 1024  # one .kb file
MAX_LINE = 4_096  # one line of a .kb file

STEPS_HINT = "recipes must be small programs; loop over less, or split the work"
INT_HINT = "ints in recipes are ids, counts and timestamps"
SIZE_HINT = "recipes declare images; a value this large is a mistake"

# A conversion specification of `%` formatting: flags, width, precision, type.
_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d*))?[a-zA-Z%]?")
_NUMBER = re.compile(r"\d+")


def size(value: Any) -> int:
    """What a value counts against the limits: its length, if it has one."""
    return len(value) if isinstance(value, (str, list, tuple, dict)) else 0


def too_long(length: int) -> str | None:
    return (
        f"would make a value of {length} items (the limit is {MAX_LENGTH})" if length > MAX_LENGTH else None
    )


def deep_size(value: Any, cap: int = MAX_LENGTH) -> int:
    """About how long `value` is when printed: its strings' lengths and its items, counted up
    to a little over `cap` (so the count itself stays cheap)."""
    total, stack = 0, [value]
    while stack and total <= cap:
        item = stack.pop()
        total += 1 + (len(item) if isinstance(item, str) else 0)
        if isinstance(item, dict):
            stack += [*item.keys(), *item.values()]
        elif isinstance(item, (list, tuple)):
            stack += item
        elif isinstance(item, int) and not isinstance(item, bool):
            total += item.bit_length() // 3
    return total


def _widths(numbers: list[str]) -> tuple[str | None, int]:
    total = 0
    for number in numbers:
        if number == "*":
            return "a '*' width or precision is not allowed", 0
        if number and int(number) > MAX_WIDTH:
            return f"width or precision {number} is larger than {MAX_WIDTH}", 0
        total += int(number or 0)
    return None, total


def percent_problem(template: str, values: tuple[Any, ...]) -> str | None:
    """Why `template % values` may not be made (a huge or `*` width or precision, a result too
    long), or None. Checked before formatting: each field's text is bounded by its width and
    its value, so the sum bounds the result."""
    total = len(template) + sum(deep_size(v) for v in values)
    for match in _PERCENT.finditer(template):
        problem, widths = _widths([n for n in match.groups() if n is not None])
        if problem is not None:
            return problem
        total += widths
    return too_long(total)


def spec_problem(spec: str) -> tuple[str | None, int]:
    """Why a format() specification may not be used, or None; and the widths it asks for."""
    if "{" in spec:
        return "nested replacement fields are not allowed in a format specification", 0
    return _widths(_NUMBER.findall(spec))


def check_source(path: str, text: str, lines: list[str]) -> None:
    """A file or a line too long to be a recipe is refused before it is parsed."""
    if len(text) > MAX_SOURCE_CHARS:
        raise KbuildError(
            f"{path} is longer than {MAX_SOURCE_CHARS} characters",
            Location(path, 1, 1, lines[0] if lines else ""),
            "split it into several files and load() them",
        )
    for number, line in enumerate(lines, 1):
        if len(line) > MAX_LINE:
            raise KbuildError(
                f"line {number} is longer than {MAX_LINE} characters",
                Location(path, number, MAX_LINE + 1, line),
                "break it into several lines",
            )
