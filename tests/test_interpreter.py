"""The interpreter embedded by a host other than kbuild's model: it sees only the predeclared
names and the load callback it is given, and tells a host builtin where its call was written."""

from __future__ import annotations

from typing import Any

import pytest

from kbuild.errors import KbuildError, Location
from kbuild.lang.interpreter import Interpreter
from kbuild.lang.values import Builtin, Call, FrozenList, Module

FILES = {
    "lib.kb": 'def wrap(value):\n    return note(value, tag = "lib")\n',
    "main.kb": 'load("lib.kb", "wrap")\n\nRESULT = [wrap("a"), note("b")]\n',
}


def _host() -> tuple[Interpreter, list[Call]]:
    calls: list[Call] = []
    loaded: dict[str, Module] = {}

    def note(call: Call) -> Any:
        calls.append(call)
        return (call.args, dict(call.kwargs))

    def load(label: str, module: Module, location: Location) -> Module:
        if label not in loaded:
            loaded[label] = interpreter.execute(label, FILES[label])
        return loaded[label]

    interpreter = Interpreter({"note": Builtin("note", note, host=True)}, load)
    return interpreter, calls


def test_a_host_builtin_sees_the_call() -> None:
    interpreter, calls = _host()

    module = interpreter.execute("main.kb", FILES["main.kb"])

    assert module.globals["RESULT"] == [(("a",), {"tag": "lib"}), (("b",), {})]
    assert isinstance(module.globals["RESULT"], FrozenList)
    in_macro, direct = calls
    assert in_macro.location == Location("lib.kb", 2, 12, '    return note(value, tag = "lib")')
    assert in_macro.stack == (Location("main.kb", 3, 11, FILES["main.kb"].split("\n")[2]),)
    assert in_macro.where["tag"] == Location("lib.kb", 2, 24, in_macro.location.text)
    assert in_macro.literals["tag"] == {"lib": Location("lib.kb", 2, 30, in_macro.location.text)}
    assert direct.stack == ()
    assert direct.literals[0] == {"b": Location("main.kb", 3, 27, direct.location.text)}


def test_only_the_language_builtins_and_the_host_names_exist() -> None:
    interpreter, _ = _host()

    with pytest.raises(KbuildError, match="undefined name 'image'"):
        interpreter.execute("main.kb", 'image("x")\n')
    assert interpreter.execute("main.kb", "N = len(sorted([3, 1]))\n").globals["N"] == 2
