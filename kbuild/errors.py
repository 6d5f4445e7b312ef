"""Errors that point at recipe text: file:line:column, the line, a caret, and a hint."""

from __future__ import annotations

import difflib
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
        lines = [f"error: {self.message}"]
        lines += _excerpt(self.location)
        for note, location in self.notes:
            lines.append(f"note: {note}")
            lines += _excerpt(location)
        if self.hint:
            lines.append(f"hint: {self.hint}")
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


def _excerpt(location: Location | None) -> list[str]:
    if location is None:
        return []
    out = [f"  --> {location}"]
    if location.text:
        gutter = " " * len(str(location.line))
        text = location.text.rstrip("\n").expandtabs(1)
        out += [
            f" {gutter} |",
            f" {location.line} | {text}",
            f" {gutter} | {' ' * (location.column - 1)}^",
        ]
    return out


def source_lines(text: str) -> list[str]:
    """The lines of a recipe as the parser counts them: split at newlines only, not at the
    form feeds and Unicode separators that str.splitlines() also breaks at."""
    return [line.removesuffix("\r") for line in text.removesuffix("\n").split("\n")]


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A `did you mean 'x'?` hint for the closest of `choices`, or None when nothing is close."""
    matches = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None


def unknown(what: str, name: str, known: Iterable[str], location: Location | None = None) -> KbuildError:
    """`unknown <what> '<name>'`, with the closest known name as a hint, or else all of them."""
    choices = sorted(set(known))
    listed = ", ".join(choices[:10]) + (f", ... ({len(choices)} in all)" if len(choices) > 10 else "")
    hint = did_you_mean(name, choices) or f"known: {listed or 'none'}"
    return KbuildError(f"unknown {what} '{name}'", location, hint)
