"""The control flow of the language as exceptions: `return`, `break` and `continue` on their way
to the function or loop that handles them."""

from __future__ import annotations

from typing import Any

from kbuild.errors import Location


class Return(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


class Jump(Exception):
    """`break` or `continue` on its way to the loop; `location` is where it was written."""

    def __init__(self, location: Location) -> None:
        super().__init__()
        self.location = location


class Break(Jump):
    keyword = "break"


class Continue(Jump):
    keyword = "continue"
