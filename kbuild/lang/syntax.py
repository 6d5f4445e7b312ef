"""The syntax tree the interpreter walks: lark's Tree and Token in the small part kbuild uses,
made from lark's output once per parse. The parse cache keeps these, so a compile whose trees are
all cached never imports lark (about a tenth of a no-op bake)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any


class Token(str):
    """A terminal: its text, its type (NAME, STRING, ...) and where it starts and ends."""

    type: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __new__(cls, value: str, type_: str = "", line: int = 0, column: int = 0,
                end_line: int = 0, end_column: int = 0) -> Token:  # fmt: skip
        token = super().__new__(cls, value)
        token.type, token.line, token.column = type_, line, column
        token.end_line, token.end_column = end_line, end_column
        return token

    def __repr__(self) -> str:
        return f"Token({self.type!r}, {str(self)!r})"


class Meta:
    """Where a rule's text starts and ends (None for a rule that matched nothing)."""

    __slots__ = ("column", "end_column", "end_line", "line")

    def __init__(self, line: int | None, column: int | None, end_line: int | None, end_column: int | None):
        self.line, self.column, self.end_line, self.end_column = line, column, end_line, end_column

    def __reduce__(self) -> tuple[Any, ...]:
        return Meta, (self.line, self.column, self.end_line, self.end_column)


class Tree:
    """A rule: its name, its children (trees, tokens, or None for an optional part left out)."""

    __slots__ = ("children", "data", "meta")

    def __init__(self, data: str, children: list[Tree | Token | None], meta: Meta) -> None:
        self.data, self.children, self.meta = data, children, meta

    def __reduce__(self) -> tuple[Any, ...]:
        return Tree, (self.data, self.children, self.meta)

    def __repr__(self) -> str:
        return f"Tree({self.data!r}, {self.children!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tree) and (self.data, self.children) == (other.data, other.children)

    __hash__ = None  # type: ignore[assignment]  # mutable, as lark's

    def scan_values(self, pred: Callable[[Any], bool]) -> Iterator[Any]:
        """Every non-tree child, at any depth, that `pred` accepts."""
        for child in self.children:
            if isinstance(child, Tree):
                yield from child.scan_values(pred)
            elif pred(child):
                yield child
