"""Errors that point at recipe text: file:line:column, the line, a caret, and a hint."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """A position in a recipe file; `text` is the whole source line, for the caret display."""

    path: str
    line: int
    column: int
    text: str = ""

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


class KbuildError(Exception):
    """Bad input. The CLI prints it and exits with code 2; never shown as a traceback."""

    def __init__(
        self,
        message: str,
        location: Location | None = None,
        hint: str | None = None,
        notes: Iterable[tuple[str, Location | None]] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint
        self.notes = tuple(notes)

    def render(self) -> str:
        lines = [f"error: {_shown(self.message)}"]
        lines += _excerpt(self.location)
        for note, location in self.notes:
            lines.append(f"note: {_shown(note)}")
            lines += _excerpt(location)
        if self.hint:
            lines.append(f"hint: {_shown(self.hint)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


class KbuildErrors(KbuildError):
    """Several independent errors found in one pass (the catalog checks report them all)."""

    def __init__(self, errors: list[KbuildError]) -> None:
        super().__init__(f"{len(errors)} errors")
        self.errors = errors

    def render(self) -> str:
        return "\n\n".join(error.render() for error in self.errors)


EXCERPT_WIDTH = 160  # source shown around the column of an error, at most


def _excerpt(location: Location | None) -> list[str]:
    if location is None:
        return []
    out = [f"  --> {_printable(str(location))}"]
    if location.text:
        gutter = " " * len(str(location.line))
        text = location.text.rstrip("\n")
        column = min(max(location.column, 1), len(text) + 1)
        start = max(0, column - 1 - EXCERPT_WIDTH // 2)
        before, after = text[start : column - 1], text[column - 1 : start + EXCERPT_WIDTH]
        lead = "..." if start > 0 else ""
        trail = "..." if start + EXCERPT_WIDTH < len(text) else ""
        shown_before = lead + _printable(before.expandtabs(1))
        out += [
            f" {gutter} |",
            f" {location.line} | {shown_before}{_printable(after.expandtabs(1))}{trail}",
            f" {gutter} | {' ' * len(shown_before)}^",
        ]
    return out


# Raw control characters of a source line (terminal escapes, NUL) are shown escaped, never sent to
# the terminal; a tab is one space and a form feed is harmless, as the line is counted.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x0b\x0d-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


MAX_MESSAGE = 2_000  # characters of a message, a note or a hint


def _shown(text: str) -> str:
    """A message as printed: one line, control characters escaped, cut short if huge."""
    cut = text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + f"... ({len(text)} characters)"
    return _printable(cut)


def _printable(text: str) -> str:
    return _CONTROL.sub(
        lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii"), text
    )


def source_lines(text: str) -> list[str]:
    """The lines of a recipe as the parser counts them: split at newlines only, not at the
    form feeds and Unicode separators that str.splitlines() also breaks at."""
    return [line.removesuffix("\r") for line in text.removesuffix("\n").split("\n")]


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A `did you mean 'x'?` hint for the closest of `choices`, or None when nothing is close."""
    import difflib  # only an error needs a suggestion

    matches = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None


def unknown(what: str, name: str, known: Iterable[str], location: Location | None = None) -> KbuildError:
    """`unknown <what> '<name>'`, with the closest known name as a hint, or else all of them."""
    choices = sorted(set(known))
    listed = ", ".join(choices[:10]) + (f", ... ({len(choices)} in all)" if len(choices) > 10 else "")
    hint = did_you_mean(name, choices) or f"known: {listed or 'none'}"
    return KbuildError(f"unknown {what} '{name}'", location, hint)
