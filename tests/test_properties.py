"""Properties of the recipe language, checked with generated programs.

(a) well-formed programs parse, and evaluate to the value Python computes for them;
(b) evaluating a workspace twice gives the same declarations, in the same order, at the same places;
(c) the order of the keyword arguments of image() never changes what it declares;
(d) a recipe broken at random is reported as a KbuildError pointing into it, never a crash.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from conftest import MINIMAL_WORKSPACE, make_workspace
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kbuild.errors import KbuildError
from kbuild.lang.parse import parse
from kbuild.lang.values import Struct
from kbuild.model.declare import Declaration
from kbuild.model.schemas import SCHEMAS
from kbuild.model.workspace import Workspace, evaluate_workspace, load_catalog

REPO = Path(__file__).resolve().parent.parent
MINIMAL_DECLARATIONS = 8  # family, distro, platform, settings, profile and three images
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

KEYWORDS = {
    *("and", "or", "not", "if", "else", "elif", "for", "in", "def", "return"),
    *("pass", "break", "continue", "load", "True", "False", "None"),
}

# --- rendering values as recipe text ----------------------------------------------------------


def render_string(value: str, quote: str) -> str:
    """A string literal for `value`: quote is one of " ' \"\"\" '''; raw newlines only in triple quotes."""
    escapes = {"\\": "\\\\", "\r": "\\r", "\t": "\\t", quote[0]: "\\" + quote[0]}
    if len(quote) == 1:
        escapes["\n"] = "\\n"
    return quote + "".join(escapes.get(ch, ch) for ch in value) + quote


def canonical(value: Any) -> Any:
    """`value` with its types spelled out, so True != 1, (1,) != [1] and dict order counts."""
    if isinstance(value, bool) or value is None:
        return [type(value).__name__, value]
    if isinstance(value, (int, str)):
        return [type(value).__name__, value]
    if isinstance(value, list):
        return ["list", [canonical(v) for v in value]]
    if isinstance(value, tuple):
        return ["tuple", [canonical(v) for v in value]]
    if isinstance(value, dict):
        return ["dict", [[canonical(k), canonical(v)] for k, v in value.items()]]
    raise AssertionError(f"unexpected value {value!r}")


# --- (a) generated programs -------------------------------------------------------------------

Expr = tuple[str, Any]  # recipe text, and the value Python says it has

names = st.from_regex(r"[a-z][a-z0-9_]{0,9}", fullmatch=True).filter(lambda n: n not in KEYWORDS)
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)
# what follows a comma inside brackets: newlines and comments there are not statements
separators = st.sampled_from([", ", ",", ",\n", ",\n        ", ",  # note\n  ", " ,\t"])


@st.composite
def joined(draw: st.DrawFn, items: list[str]) -> str:
    """`items` joined by generated separators, with or without a trailing comma."""
    out = ""
    for index, item in enumerate(items):
        out += item + (draw(separators) if index < len(items) - 1 else "")
    if items and draw(st.booleans()):
        out += ","
    return out


@st.composite
def tuple_items(draw: st.DrawFn, items: list[str]) -> str:
    """The inside of a tuple's parentheses: one item needs its comma."""
    out = draw(joined(items))
    return out + "," if len(items) == 1 and not out.endswith(",") else out


def int_literals() -> st.SearchStrategy[Expr]:
    return st.integers(-(10**12), 10**12).map(lambda n: (str(n), n))


def string_literals() -> st.SearchStrategy[Expr]:
    quotes = st.sampled_from(['"', "'", '"""', "'''"])
    return st.tuples(text, quotes).map(lambda t: (render_string(t[0], t[1]), t[0]))


@st.composite
def int_exprs(draw: st.DrawFn, depth: int) -> Expr:
    if depth <= 0 or draw(st.integers(0, 2)) == 0:
        return draw(int_literals())
    (a, x), (b, y) = draw(int_exprs(depth - 1)), draw(int_exprs(depth - 1))
    op = draw(st.sampled_from(["+", "-", "*", "//", "%", "len", "if"]))
    if op in ("//", "%") and y == 0:
        op = "+"
    if op == "len":
        (s, value) = draw(string_literals())
        return f"len({s})", len(value)
    if op == "if":
        (c, truth) = draw(any_exprs(depth - 1))
        return f"({a} if {c} else {b})", x if truth else y
    value = {"+": x + y, "-": x - y, "*": x * y, "//": x // y if y else 0, "%": x % y if y else 0}[op]
    return f"({a} {op} {b})", value


@st.composite
def str_exprs(draw: st.DrawFn, depth: int) -> Expr:
    kind = draw(st.sampled_from(["literal", "+", "%", "format", "join", "method"]))
    if depth <= 0 or kind == "literal":
        return draw(string_literals())
    if kind == "+":
        (a, x), (b, y) = draw(str_exprs(depth - 1)), draw(str_exprs(depth - 1))
        return f"({a} + {b})", x + y
    if kind == "%":
        template, args, values = "", [], []
        for piece in draw(st.lists(st.sampled_from(["text", "%s", "%d", "%%"]), max_size=4)):
            if piece == "text":
                template += draw(text).replace("%", "")
            elif piece == "%%":
                template += "%%"
            else:
                (arg, value) = draw(str_exprs(depth - 1) if piece == "%s" else int_exprs(depth - 1))
                template += piece
                args.append(arg)
                values.append(value)
        rendered = render_string(template, '"')
        return f"({rendered} % ({draw(tuple_items(args))}))", template % tuple(values)
    if kind == "format":  # keyword arguments of a method call
        template, args, kwargs, positional, named = "", [], [], [], {}
        for piece in draw(st.lists(st.sampled_from(["text", "{}", "{name}"]), max_size=4)):
            if piece == "text":
                template += draw(text).replace("{", "{{").replace("}", "}}")
            elif piece == "{}":
                (arg, value) = draw(str_exprs(depth - 1))
                template += "{}"
                args.append(arg)
                positional.append(value)
            else:
                name = draw(names.filter(lambda n: n not in named))
                (arg, value) = draw(int_exprs(depth - 1))
                template += "{" + name + "}"
                kwargs.append(f"{name} = {arg}")
                named[name] = value
        call_args = draw(joined(args + kwargs))
        return f"{render_string(template, chr(39))}.format({call_args})", template.format(
            *positional, **named
        )
    if kind == "join":
        (sep, s) = draw(string_literals())
        items = draw(st.lists(str_exprs(depth - 1), max_size=3))
        return f"{sep}.join([{draw(joined([i for i, _ in items]))}])", s.join(v for _, v in items)
    (a, x) = draw(str_exprs(depth - 1))
    method = draw(st.sampled_from(["upper", "lower", "strip"]))
    return f"{a}.{method}()", getattr(x, method)()


@st.composite
def list_exprs(draw: st.DrawFn, depth: int) -> Expr:
    kind = draw(st.sampled_from(["literal", "+", "*", "comprehension", "sorted", "range"]))
    if depth <= 0 or kind == "literal":
        items = draw(st.lists(any_exprs(depth - 1), max_size=4))
        return f"[{draw(joined([i for i, _ in items]))}]", [v for _, v in items]
    if kind == "+":
        (a, x), (b, y) = draw(list_exprs(depth - 1)), draw(list_exprs(depth - 1))
        return f"({a} + {b})", x + y
    if kind == "*":
        (a, x), n = draw(list_exprs(depth - 1)), draw(st.integers(-1, 3))
        return f"({a} * {n})", x * n
    if kind == "sorted":
        numbers = draw(st.lists(int_literals(), max_size=5))
        reverse = draw(st.booleans())
        return (
            f"sorted([{draw(joined([i for i, _ in numbers]))}], reverse = {reverse})",
            sorted((v for _, v in numbers), reverse=reverse),
        )
    if kind == "range":
        start, stop = draw(st.integers(-5, 5)), draw(st.integers(-5, 10))
        return f"list(range({start}, {stop}))", list(range(start, stop))
    numbers = draw(st.lists(st.integers(-50, 50), max_size=6))
    scale, offset, modulus = draw(st.integers(-3, 3)), draw(st.integers(-9, 9)), draw(st.integers(1, 4))
    return (
        f"[x * {scale} + {offset} for x in {numbers} if x % {modulus} == 0]",
        [x * scale + offset for x in numbers if x % modulus == 0],
    )


@st.composite
def dict_exprs(draw: st.DrawFn, depth: int) -> Expr:
    kind = draw(st.sampled_from(["literal", "dict", "comprehension"]))
    if kind == "literal" or depth <= 0:
        keys = draw(st.lists(string_literals(), max_size=4, unique_by=lambda k: k[1]))
        values = [draw(any_exprs(depth - 1)) for _ in keys]
        pairs = [f"{k}: {v}" for (k, _), (v, _) in zip(keys, values, strict=True)]
        return f"{{{draw(joined(pairs))}}}", {k: v for (_, k), (_, v) in zip(keys, values, strict=True)}
    if kind == "dict":  # keyword arguments of a builtin
        keys = draw(st.lists(names, max_size=4, unique=True))
        values = [draw(any_exprs(depth - 1)) for _ in keys]
        pairs = [f"{k} = {v}" for k, (v, _) in zip(keys, values, strict=True)]
        return f"dict({draw(joined(pairs))})", {k: v for k, (_, v) in zip(keys, values, strict=True)}
    keys = draw(st.lists(names, max_size=4, unique=True))
    pairs = [[k, i] for i, k in enumerate(keys)]
    return f"{{k: v * 2 for k, v in {json.dumps(pairs)}}}", {k: i * 2 for k, i in pairs}


@st.composite
def bool_exprs(draw: st.DrawFn, depth: int) -> Expr:
    kind = draw(st.sampled_from(["literal", "compare", "in", "not", "and", "or"]))
    if depth <= 0 or kind == "literal":
        value = draw(st.booleans())
        return str(value), value
    if kind == "compare":
        (a, x), (b, y) = draw(int_exprs(depth - 1)), draw(int_exprs(depth - 1))
        op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
        return f"({a} {op} {b})", {
            "==": x == y,
            "!=": x != y,
            "<": x < y,
            "<=": x <= y,
            ">": x > y,
            ">=": x >= y,
        }[op]
    if kind == "in":
        (a, x), (b, y) = draw(any_exprs(depth - 1)), draw(list_exprs(depth - 1))
        negate = draw(st.booleans())
        return f"({a} {'not in' if negate else 'in'} {b})", (x in y) != negate
    if kind == "not":
        (a, x) = draw(any_exprs(depth - 1))
        return f"(not {a})", not x
    (a, x), (b, y) = draw(any_exprs(depth - 1)), draw(any_exprs(depth - 1))
    return f"({a} {kind} {b})", (x and y) if kind == "and" else (x or y)


@st.composite
def any_exprs(draw: st.DrawFn, depth: int) -> Expr:
    if depth <= 0:
        return draw(st.one_of(int_literals(), string_literals(), st.just(("None", None))))
    kind = draw(st.sampled_from(["int", "str", "list", "dict", "bool", "tuple", "if"]))
    if kind == "tuple":
        items = draw(st.lists(any_exprs(depth - 1), min_size=1, max_size=3))
        return f"({draw(tuple_items([i for i, _ in items]))})", tuple(v for _, v in items)
    if kind == "if":
        (c, truth), (a, x), (b, y) = (draw(any_exprs(depth - 1)) for _ in range(3))
        return f"({a} if {c} else {b})", x if truth else y
    strategies: dict[str, Callable[[int], st.SearchStrategy[Expr]]] = {
        "int": int_exprs,
        "str": str_exprs,
        "list": list_exprs,
        "dict": dict_exprs,
        "bool": bool_exprs,
    }
    return draw(strategies[kind](depth))


@st.composite
def functions(draw: st.DrawFn) -> tuple[str, str, Any]:
    """A def with required and default parameters that returns them, and a call of it that passes
    some by position and some by keyword: (definition, call, value of the call)."""
    params = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    required = draw(st.integers(0, len(params)))
    defaults = {p: draw(any_exprs(1)) for p in params[required:]}
    header = ", ".join(p if p not in defaults else f"{p} = {defaults[p][0]}" for p in params)
    body = draw(st.sampled_from(["    return [{}]\n", "    result = [{}]\n    return result\n"]))
    definition = f"def f({header}):\n" + body.format(", ".join(params))
    given_args = {p: draw(any_exprs(1)) for p in params if p not in defaults or draw(st.booleans())}
    by_position = draw(st.integers(0, required))  # a prefix of the required ones
    positional = [given_args[p][0] for p in params[:by_position]]
    keywords = [
        f"{p} = {given_args[p][0]}" for p in draw(st.permutations(params[by_position:])) if p in given_args
    ]
    value = [given_args[p][1] if p in given_args else defaults[p][1] for p in params]
    return definition, f"f({draw(joined(positional + keywords))})", value


@st.composite
def programs(draw: st.DrawFn) -> tuple[str, list[Any]]:
    """A file of assignments (some using earlier ones), a def and its call, a for loop and an if:
    its text, and the values of RESULT."""
    lines, values = [], []
    for index in range(draw(st.integers(1, 4))):
        (source, value) = draw(any_exprs(3))
        lines.append(f"V{index} = {source}")
        values.append(value)
    definition, call, value = draw(functions())
    lines += [definition, f"CALLED = {call}"]
    numbers = draw(st.lists(st.integers(-20, 20), max_size=5))
    lines += [
        "LOOP = []",
        f"for n in {numbers}:",
        "    if n % 2 == 0:",
        "        continue",
        "    elif n > 15:",
        "        break",
        "    LOOP.append(n * 3)",
    ]
    loop = []
    for n in numbers:
        if n % 2 == 0:
            continue
        if n > 15:
            break
        loop.append(n * 3)
    lines.append("RESULT = [" + ", ".join(f"V{i}" for i in range(len(values))) + ", CALLED, LOOP]")
    return "\n".join(lines) + "\n", [*values, value, loop]


def evaluate_text(root: Path, source: str, name: str = "RESULT") -> Any:
    (root / "program.kb").write_text(source, encoding="utf-8")
    return Workspace(root).evaluate_file("program.kb").globals[name]


@SETTINGS
@given(expression=any_exprs(4))
def test_generated_expressions_parse_and_evaluate(expression: Expr, tmp_path: Path) -> None:
    source, expected = expression
    text = f"RESULT = {source}\n"
    parse(text, "program.kb")
    assert canonical(evaluate_text(tmp_path, text)) == canonical(expected), text


@SETTINGS
@given(program=programs())
def test_generated_programs_parse_and_evaluate(program: tuple[str, list[Any]], tmp_path: Path) -> None:
    source, expected = program
    parse(source, "program.kb")
    assert canonical(evaluate_text(tmp_path, source)) == canonical(expected), source


@st.composite
def arithmetic(draw: st.DrawFn, depth: int = 3) -> str:
    """Integer arithmetic with few parentheses: precedence and associativity decide."""
    if depth <= 0 or draw(st.integers(0, 3)) == 0:
        return str(draw(st.integers(0, 99)))
    left, right = draw(arithmetic(depth - 1)), draw(arithmetic(depth - 1))
    form = draw(st.sampled_from(["plain", "negated", "parenthesized"]))
    if form == "negated":
        left = f"-{left}"
    elif form == "parenthesized":
        left = f"({left})"
    return f"{left} {draw(st.sampled_from(['+', '-', '*', '//', '%']))} {right}"


@st.composite
def logical(draw: st.DrawFn) -> str:
    """Comparisons of arithmetic joined by and / or / not (no chained comparisons: Python only)."""
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        part = draw(arithmetic())
        if draw(st.booleans()):
            part += f" {draw(st.sampled_from(['==', '!=', '<', '<=', '>', '>=']))} {draw(arithmetic())}"
        if draw(st.booleans()):
            part = f"not {part}"
        parts.append(part)
    out = parts[0]
    for part in parts[1:]:
        out += f" {draw(st.sampled_from(['and', 'or']))} {part}"
    return out


@SETTINGS
@given(expression=logical())
def test_precedence_matches_python(expression: str, tmp_path: Path) -> None:
    """Where the language and Python share syntax, they agree on what an expression means."""
    try:
        expected = eval(expression, {"__builtins__": {}})
    except ZeroDivisionError:
        with pytest.raises(KbuildError, match="division by zero"):
            evaluate_text(tmp_path, f"RESULT = {expression}\n")
        return
    assert canonical(evaluate_text(tmp_path, f"RESULT = {expression}\n")) == canonical(expected)


@pytest.mark.parametrize(("literal", "value"), [(r'"""\""""', '"'), (r"'''it\''' s'''", "it''' s")])
def test_triple_quoted_strings_may_escape_their_quote(literal: str, value: str, tmp_path: Path) -> None:
    assert evaluate_text(tmp_path, f"RESULT = {literal}\n") == value


# --- (b) evaluation is deterministic ----------------------------------------------------------


def plain(value: Any) -> Any:
    """Declaration arguments as JSON-able lists and dicts; helper structs by field."""
    if isinstance(value, Struct):
        return {"kind": value.kind, **{f.name: plain(getattr(value, f.name)) for f in fields(value)}}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def canonical_output(declarations: list[Declaration]) -> str:
    return json.dumps(
        [
            (d.kind, plain(d.args), str(d.location), [str(v) for v in d.via], d.location.text)
            for d in declarations
        ],
        default=repr,
    )


@st.composite
def workspaces(draw: st.DrawFn) -> dict[str, str]:
    """The minimal workspace plus generated images: some plain, some made by a shared macro."""
    names_ = draw(st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True), max_size=6, unique=True))
    names_ = [n for n in names_ if n not in ("base", "keystone", "keystone-base")]
    files: dict[str, str] = {}
    for index, name in enumerate(names_):
        packages = draw(st.lists(st.from_regex(r"[a-z][a-z0-9+.-]{0,8}", fullmatch=True), max_size=4))
        env = draw(st.dictionaries(st.from_regex(r"[A-Z][A-Z0-9_]{0,6}", fullmatch=True), text, max_size=3))
        env_text = (
            "{" + ", ".join(f"{json.dumps(k)}: {render_string(v, chr(34))}" for k, v in env.items()) + "}"
        )
        parent = draw(st.sampled_from(["base", "keystone-base", *names_[:index]]))
        if draw(st.booleans()):
            files[f"recipes/gen{index}/image.kb"] = (
                f"image(name = {json.dumps(name)}, parent = {json.dumps(parent)},\n"
                f"      packages = {{'deb': {json.dumps(packages)}}}, env = {env_text})\n"
            )
        else:
            files[f"recipes/gen{index}/image.kb"] = (
                'load("//recipes/lib/macros.kb", "service")\n\n'
                f"service({json.dumps(name)}, {json.dumps(parent)}, packages = {json.dumps(packages)})\n"
            )
    return files


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=workspaces())
def test_evaluation_is_deterministic(files: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    root = make_workspace(tmp_path_factory.mktemp("ws"), files)
    first = canonical_output(evaluate_workspace(root))
    second = canonical_output(evaluate_workspace(root))
    assert first == second
    assert len(json.loads(first)) == MINIMAL_DECLARATIONS + len(files)
    load_catalog(root)  # and the generated workspace is valid


def test_the_real_workspace_evaluates_the_same_twice() -> None:
    first = canonical_output(evaluate_workspace(REPO))
    second = canonical_output(evaluate_workspace(REPO))
    assert first == second
    assert "keystone-fernet" in first


def test_the_real_workspace_evaluates_the_same_in_other_processes() -> None:
    """Hash randomisation must not leak into the declarations: two processes, two hash seeds."""
    script = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
        "from test_properties import canonical_output; from kbuild.model.workspace import evaluate_workspace;"
        "print(canonical_output(evaluate_workspace(Path(sys.argv[2]))))"
    )
    outputs = [
        subprocess.run(
            [sys.executable, "-c", script, str(Path(__file__).parent), str(REPO)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    ]
    assert outputs[0] == outputs[1]
    assert outputs[0] == canonical_output(evaluate_workspace(REPO)) + "\n"


# --- (c) keyword order does not matter --------------------------------------------------------

image_arguments = st.fixed_dictionaries(
    {"name": st.just('"gen-image"')},
    optional={
        "parent": st.sampled_from(['"base"', "None"]),
        "packages": st.just('{"deb": ["curl", "less"], "rpm": ["curl"]}'),
        "binary": st.just('{"deb": ["keystone"]}'),
        "source": st.just('pip("keystone", "PyMySQL", venv = "/opt/venv")'),
        "files": st.just('{"start.sh": "/usr/local/bin/start"}'),
        "blocks": st.just('{"footer": ["RUN true"], "header": ["# hi"]}'),
        "env": st.just('{"LANG": "C.UTF-8", "TZ": "UTC"}'),
        "labels": st.just('{"a": "1"}'),
        "user": st.just('user("svc", uid = 42, groups = ["adm"], home = "/srv")'),
        "description": string_literals().map(lambda literal: literal[0]),
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arguments=image_arguments, data=st.data())
def test_keyword_order_does_not_change_the_declaration(
    arguments: dict[str, str], data: st.DataObject, tmp_path: Path
) -> None:
    order = data.draw(st.permutations(list(arguments)))
    by_position = data.draw(st.booleans())

    def declared(keys: list[str], name_by_position: bool) -> Declaration:
        given_args = [f"{k} = {arguments[k]}" for k in keys if not (name_by_position and k == "name")]
        if name_by_position:
            given_args.insert(0, arguments["name"])
        (tmp_path / "image.kb").write_text(f"image({', '.join(given_args)})\n", encoding="utf-8")
        workspace = Workspace(tmp_path)
        workspace.evaluate_file("image.kb")
        (declaration,) = workspace.declarations
        return declaration

    first, second = declared(list(arguments), False), declared(order, by_position)
    assert str(first.location) == str(second.location)
    assert list(first.args) == list(second.args) == list(SCHEMAS["image"].params)
    assert json.dumps(plain(first.args), default=repr) == json.dumps(plain(second.args), default=repr)
    assert first.args == second.args


# --- (d) broken recipes are reported, never crash ---------------------------------------------

SEEDS = [
    *(text for path, text in MINIMAL_WORKSPACE.items() if path.endswith(".kb") and "lib/" not in path),
    (REPO / "recipes/openstack/service.kb").read_text(),
    (REPO / "recipes/keystone/keystone.kb").read_text(),
]
DEBRIS = st.sampled_from(
    [
        *"()[]{}:,=+-*%/\"'\\ \t\n#.",
        *("\n    ", "    ", "\f", "\r", "\x00", "é", "'''", '"""', "**", "if ", "else ", "for ", " in "),
        *("def ", "return", "break", "load(", "not ", "None", "image(", "x"),
    ]
)


@st.composite
def mutated_recipes(draw: st.DrawFn) -> str:
    """A valid recipe with a few characters inserted, deleted or replaced."""
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(text)))
        end = min(len(text), start + draw(st.integers(0, 5)))
        kind = draw(st.sampled_from(["insert", "delete", "replace"]))
        middle = "" if kind == "delete" else draw(DEBRIS)
        text = text[:start] + middle + (text[start:] if kind == "insert" else text[end:])
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=mutated_recipes())
# Found by this test in CI: an indented block cut off at the end of a file with no final newline.
@example(text="def f(x):\n    for a in x:\n        g(**a")
def test_broken_recipes_raise_located_errors(text: str, tmp_path: Path) -> None:
    """Anything but a KbuildError is a crash; a KbuildError in the file points at a real place."""
    root = make_workspace(tmp_path)
    (root / "recipes/bad/bad.kb").parent.mkdir(parents=True, exist_ok=True)
    (root / "recipes/bad/bad.kb").write_text(text, encoding="utf-8")
    try:
        Workspace(root).evaluate_file("recipes/bad/bad.kb")
    except KbuildError as error:
        location = error.location
        if location is not None and location.path == "recipes/bad/bad.kb":
            lines = [line.removesuffix("\r") for line in text.split("\n")]
            assert 1 <= location.line <= len(lines)
            assert location.text == lines[location.line - 1]
            assert 1 <= location.column <= len(location.text) + 1
