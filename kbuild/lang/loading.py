"""load(): the host gives the module a label names; its public symbols are bound in the loader."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from kbuild.errors import KbuildError, Location, did_you_mean
from kbuild.lang.syntax import Token, Tree
from kbuild.lang.values import Module


class Interpreter(Protocol):
    """What load() needs of the interpreter (a protocol: the interpreter imports this module)."""

    frames: list[Any]
    load: Callable[[str, Module, Location], Module]

    def _literal(self, token: Token, module: Module) -> str: ...

    def _loc(self, module: Module, node: Tree | Token) -> Location: ...


def load_symbols(interpreter: Interpreter, node: Tree, module: Module) -> None:
    """A load() statement: the module it names, then each symbol bound in `module`."""
    label_token, *args = node.children
    label = interpreter._literal(label_token, module)
    location = interpreter._loc(module, label_token)
    if interpreter.frames:
        raise KbuildError("load() is only allowed at the top level of a file", location)
    loaded = interpreter.load(label, module, location)
    for arg in args:
        if arg is None:
            continue
        if arg.data == "load_alias":
            alias, symbol_token = str(arg.children[0]), arg.children[1]
        else:
            symbol_token = arg.children[0]
            alias = interpreter._literal(symbol_token, module)
        symbol = interpreter._literal(symbol_token, module)
        symbol_location = interpreter._loc(module, symbol_token)
        if symbol.startswith("_"):
            raise KbuildError(
                f"'{symbol}' is private to {loaded.path} and cannot be loaded",
                symbol_location,
                "names starting with '_' stay in their file; rename it there to share it",
            )
        if symbol not in loaded.globals:
            raise KbuildError(
                f"{loaded.path} has no symbol '{symbol}'",
                symbol_location,
                did_you_mean(symbol, (k for k in loaded.globals if not k.startswith("_"))),
            )
        module.globals[alias] = loaded.globals[symbol]
