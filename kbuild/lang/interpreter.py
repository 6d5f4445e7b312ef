"""Stage 2: syntax trees -> plain declarations, by hermetic evaluation.

The language is a strict Starlark subset: no I/O, clock or environment; every file is evaluated
once however often it is loaded; a file's globals are frozen when it finishes; recursion is an
error. Calls to declaring builtins (image, distro...) become `Declaration`s in call order.
"""

from __future__ import annotations

import string
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from lark import Token, Tree

from kbuild.errors import KbuildError, Location, did_you_mean, source_lines
from kbuild.lang.parse import parse
from kbuild.model import schemas as B

MAX_CALL_DEPTH = 64
MAX_LENGTH = 1_000_000  # the longest string or list that `*` or range() may make


@dataclass(frozen=True)
class Declaration:
    """One call of a declaring builtin, its arguments checked and in schema order.

    `location` is where the user wrote it: the outermost call in the file being evaluated, so
    an image made by a macro points at the macro's call site. `via` lists the calls in between.
    `arg_locations` has where each argument given to the builtin itself was written, and
    `literals` where each string literal inside such an argument is (its first occurrence), so
    an error about one value can point at it. `overlay` names the overlay the call came from.
    """

    kind: str
    args: Mapping[str, Any]
    location: Location
    via: tuple[Location, ...] = ()
    arg_locations: Mapping[str, Location] = field(default_factory=lambda: B.EMPTY)
    literals: Mapping[str, Mapping[str, Location]] = field(default_factory=lambda: B.EMPTY)
    overlay: str | None = None

    @property
    def name(self) -> str:
        return self.args.get("name", self.kind)

    @property
    def directory(self) -> str:
        """The directory of the file that made the call: context files are relative to it."""
        return str(Path(self.location.path).parent)

    def where(self, arg: str, value: str | None = None) -> Location:
        """Where to point for an error about `arg` (or the string `value` inside it): the literal
        itself when it is written in the call, else the argument, else the call. Through a macro,
        an argument is the macro's parameter, so the user's call site says more."""
        if value is not None and value in self.literals.get(arg, {}):
            return self.literals[arg][value]
        if arg in self.arg_locations and not self.via:
            return self.arg_locations[arg]
        return self.location


# --- values ----------------------------------------------------------------------------------


class FrozenList(list):
    """A list whose file has finished evaluating."""


class FrozenDict(dict):
    """A dict whose file has finished evaluating."""


def freeze(value: Any) -> Any:
    if isinstance(value, list) and not isinstance(value, FrozenList):
        return FrozenList(freeze(v) for v in value)
    if isinstance(value, dict) and not isinstance(value, FrozenDict):
        return FrozenDict((k, freeze(v)) for k, v in value.items())
    if isinstance(value, tuple):
        return tuple(freeze(v) for v in value)
    return value


@dataclass(eq=False)
class Function:
    kind = "function"
    name: str
    params: list[tuple[str, str, Any]]  # (kind, name, default): kind is "", "*" or "**"
    body: Tree
    module: Module
    location: Location


@dataclass(eq=False)
class Builtin:
    kind = "builtin_function"
    name: str
    call: Callable[..., Any]
    schema: B.Schema | None = None  # kbuild's own: call(location, args, kwargs, where)


@dataclass(eq=False)
class BoundMethod:
    kind = "builtin_function"
    name: str
    receiver: Any


@dataclass(eq=False)
class Module:
    path: str
    lines: list[str]
    globals: dict[str, Any]


class _Return(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


class _Jump(Exception):
    """`break` or `continue` on its way to the loop; `location` is where it was written."""

    def __init__(self, location: Location) -> None:
        super().__init__()
        self.location = location


class _Break(_Jump):
    keyword = "break"


class _Continue(_Jump):
    keyword = "continue"


# --- the evaluator ---------------------------------------------------------------------------


class Evaluator:
    """Evaluates the .kb files of a workspace. `root` resolves `//` paths in load()."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: dict[str, Module] = {}
        self.loading: list[tuple[str, Location | None]] = []
        self.declarations: list[Declaration] = []
        self.frames: list[tuple[Function, Location]] = []
        self.builtins: dict[str, Any] = {
            name: Builtin(name, self._kbuild_builtin(schema), schema) for name, schema in B.SCHEMAS.items()
        }
        self.builtins.update(
            {name: Builtin(name, fn) for name, fn in _PURE_BUILTINS.items()},
        )
        self.builtins["fail"] = Builtin("fail", self._fail)

    # files

    def evaluate_file(self, path: str, loaded_from: Location | None = None) -> Module:
        """Evaluate the file at workspace-relative `path` once; later calls return the module."""
        if path in self.modules:
            return self.modules[path]
        chain = [p for p, _ in self.loading]
        if path in chain:
            cycle = " -> ".join([*chain[chain.index(path) :], path])
            raise KbuildError(
                f"load cycle: {cycle}",
                loaded_from,
                "move the shared code to a file both can load",
            )
        try:
            data = (self.root / path).read_bytes()
        except OSError as error:
            raise KbuildError(f"cannot read {path}: {error.strerror}", loaded_from) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            before = data[: error.start].decode("utf-8").split("\n")
            line = data.split(b"\n")[len(before) - 1].decode("utf-8", "replace")
            raise KbuildError(
                f"{path} is not UTF-8: byte {data[error.start]:#04x} cannot be decoded",
                Location(path, len(before), len(before[-1]) + 1, line),
                "save the file as UTF-8",
            ) from None
        tree = parse(text, path)
        module = Module(path, source_lines(text), {})
        self.loading.append((path, loaded_from))
        try:
            for statement in tree.children:
                self._top_level(statement, module)
        finally:
            self.loading.pop()
        try:
            module.globals = {k: freeze(v) for k, v in module.globals.items()}
        except RecursionError:
            raise KbuildError(f"{path}: a global value is too deeply nested to freeze") from None
        self.modules[path] = module
        return module

    def _top_level(self, statement: Tree, module: Module) -> None:
        try:
            self._statement(statement, module, module.globals)
        except _Jump as jump:
            raise KbuildError(f"'{jump.keyword}' outside a loop", jump.location) from None
        except RecursionError:
            raise KbuildError(
                "too deeply nested to evaluate",
                self._loc(module, statement),
                "split it into smaller expressions or statements",
            ) from None

    def _load(self, node: Tree, module: Module) -> None:
        label_token, *args = node.children
        label = self._literal(label_token, module)
        location = self._loc(module, label_token)
        if self.frames or len(self.loading) == 0:
            raise KbuildError("load() is only allowed at the top level of a file", location)
        target = self._resolve_label(label, module, location)
        loaded = self.evaluate_file(target, location)
        for arg in args:
            if arg is None:
                continue
            if arg.data == "load_alias":
                alias, symbol_token = str(arg.children[0]), arg.children[1]
            else:
                symbol_token = arg.children[0]
                alias = self._literal(symbol_token, module)
            symbol = self._literal(symbol_token, module)
            symbol_location = self._loc(module, symbol_token)
            if symbol.startswith("_"):
                raise KbuildError(
                    f"'{symbol}' is private to {target} and cannot be loaded",
                    symbol_location,
                    "names starting with '_' stay in their file; rename it there to share it",
                )
            if symbol not in loaded.globals:
                raise KbuildError(
                    f"{target} has no symbol '{symbol}'",
                    symbol_location,
                    did_you_mean(symbol, (k for k in loaded.globals if not k.startswith("_"))),
                )
            module.globals[alias] = loaded.globals[symbol]

    def _resolve_label(self, label: str, module: Module, location: Location) -> str:
        """`//` is the workspace root (from an overlay too); other paths are relative to the
        loading file, which may be an overlay's file outside the workspace (an absolute path)."""
        from_root = label.startswith("//")
        written = Path(label[2:] if from_root else label)
        if written.is_absolute() or ".." in written.parts or written.suffix != ".kb":
            raise KbuildError(
                f"bad load path '{label}'",
                location,
                "use '//dir/file.kb' from the workspace root or 'file.kb' next to this file",
            )
        base = Path() if from_root else Path(module.path).parent
        target = (base / written).as_posix()
        if not (self.root / target).is_file():
            known = (p.relative_to(self.root / base).as_posix() for p in (self.root / base).rglob("*.kb"))
            hint = did_you_mean(written.as_posix(), known)
            raise KbuildError(
                f"cannot load '{label}': no such file {target}",
                location,
                hint.replace("'", "'//", 1) if hint and from_root else hint,
            )
        return target

    # statements

    def _statements(self, statements: Iterable[Tree], module: Module, scope: dict[str, Any]) -> None:
        for statement in statements:
            self._statement(statement, module, scope)

    def _statement(self, node: Tree, module: Module, scope: dict[str, Any]) -> None:
        kind = node.data
        if kind == "expr":
            self._eval(node.children[0], module, scope)
        elif kind == "assign":
            value = self._eval(node.children[1], module, scope)
            self._assign(node.children[0], value, module, scope)
        elif kind == "augassign":
            target, op, value_node = node.children
            if target.data != "name":
                raise KbuildError("augmented assignment needs a plain name", self._loc(module, target))
            current = self._eval(target, module, scope)
            value = self._eval(value_node, module, scope)
            scope[str(target.children[0])] = self._binary(str(op)[:-1], current, value, module, node)
        elif kind == "if_stmt":
            condition, then, *rest = node.children
            if self._truth(self._eval(condition, module, scope)):
                return self._suite(then, module, scope)
            for clause in rest:
                if clause is None:
                    continue
                if clause.data == "elif_clause":
                    if self._truth(self._eval(clause.children[0], module, scope)):
                        return self._suite(clause.children[1], module, scope)
                else:
                    return self._suite(clause.children[0], module, scope)
        elif kind == "for_stmt":
            variables, iterable_node, body = node.children
            iterable = self._iterable(self._eval(iterable_node, module, scope), module, iterable_node)
            for item in iterable:
                self._bind_loop_vars(variables, item, module, scope)
                try:
                    self._suite(body, module, scope)
                except _Break:
                    break
                except _Continue:
                    continue
        elif kind == "def_stmt":
            self._def(node, module, scope)
        elif kind == "return_stmt":
            if not self.frames:
                raise KbuildError("'return' outside a function", self._loc(module, node))
            value = node.children[0]
            raise _Return(None if value is None else self._eval(value, module, scope))
        elif kind in ("break_stmt", "continue_stmt"):
            raise (_Break if kind == "break_stmt" else _Continue)(self._loc(module, node))
        elif kind == "pass_stmt":
            pass
        elif kind == "load_stmt":
            if scope is not module.globals:
                raise KbuildError(
                    "load() is only allowed at the top level of a file",
                    self._loc(module, node),
                )
            self._load(node, module)
        else:  # pragma: no cover - the grammar has no other statements
            raise KbuildError(f"unsupported statement {kind}", self._loc(module, node))

    def _suite(self, suite: Tree, module: Module, scope: dict[str, Any]) -> None:
        self._statements(suite.children, module, scope)

    def _def(self, node: Tree, module: Module, scope: dict[str, Any]) -> None:
        name_token, params_node, body = node.children
        params: list[tuple[str, str, Any]] = []
        seen: set[str] = set()
        for param in params_node.children if params_node is not None else ():
            pname = str(param.children[0])
            if pname in seen:
                raise KbuildError(
                    f"duplicate parameter '{pname}'",
                    self._loc(module, param.children[0]),
                )
            seen.add(pname)
            if param.data == "param_default":
                default = freeze(self._eval(param.children[1], module, scope))
                params.append(("", pname, default))
            elif param.data == "param_star":
                params.append(("*", pname, None))
            elif param.data == "param_kwargs":
                params.append(("**", pname, None))
            else:
                params.append(("", pname, B.REQUIRED))
        scope[str(name_token)] = Function(
            str(name_token), params, body, module, self._loc(module, name_token)
        )

    def _assign(self, target: Tree, value: Any, module: Module, scope: dict[str, Any]) -> None:
        if target.data == "name":
            scope[str(target.children[0])] = value
        elif target.data == "tuple":
            items = self._unpack(value, len(target.children), module, target)
            for child, item in zip(target.children, items, strict=True):
                self._assign(child, item, module, scope)
        elif target.data == "index":
            container = self._eval(target.children[0], module, scope)
            key = self._eval(target.children[1], module, scope)
            self._check_mutable(container, module, target)
            if isinstance(container, dict):
                self._check_hashable(key, module, target.children[1])
                container[key] = value
            elif isinstance(container, list):
                try:
                    container[key] = value
                except (IndexError, TypeError) as error:
                    raise KbuildError(
                        f"cannot assign to index {key!r}: {error}",
                        self._loc(module, target),
                    ) from None
            else:
                raise KbuildError(
                    f"cannot assign into a {B.type_name(container)}",
                    self._loc(module, target),
                )
        else:
            raise KbuildError(
                "cannot assign to this expression",
                self._loc(module, target),
                "assign to a name, a tuple of names, or x[key]",
            )

    def _bind_loop_vars(self, variables: Tree, item: Any, module: Module, scope: dict[str, Any]) -> None:
        names = [str(t) for t in variables.children if t is not None]
        if len(names) == 1:
            scope[names[0]] = item
            return
        for name, value in zip(names, self._unpack(item, len(names), module, variables), strict=True):
            scope[name] = value

    def _unpack(self, value: Any, count: int, module: Module, node: Tree) -> list[Any]:
        if not isinstance(value, (list, tuple)) or len(value) != count:
            got = f"{len(value)} values" if isinstance(value, (list, tuple)) else f"a {B.type_name(value)}"
            raise KbuildError(f"cannot unpack {got} into {count} names", self._loc(module, node))
        return list(value)

    # expressions

    def _eval(self, node: Tree | Token, module: Module, scope: dict[str, Any]) -> Any:
        kind = node.data
        method = _EXPRESSIONS.get(kind)
        if method is not None:
            return method(self, node, module, scope)
        if kind in _BINARY_OPS:
            left = self._eval(node.children[0], module, scope)
            right = self._eval(node.children[1], module, scope)
            return self._binary(_BINARY_OPS[kind], left, right, module, node)
        raise KbuildError(f"unsupported expression {kind}", self._loc(module, node))  # pragma: no cover

    def _name(self, node: Tree, module: Module, scope: dict[str, Any]) -> Any:
        name = str(node.children[0])
        for namespace in (scope, module.globals, self.builtins):
            if name in namespace:
                return namespace[name]
        known = [*scope, *module.globals, *self.builtins]
        raise KbuildError(
            f"undefined name '{name}'",
            self._loc(module, node),
            did_you_mean(name, known),
        )

    def _string(self, node: Tree, module: Module, scope: dict[str, Any]) -> str:
        return self._literal(node.children[0], module)

    def _literal(self, token: Token, module: Module) -> str:
        try:
            return _string_literal(token)
        except UnicodeDecodeError as error:
            raise KbuildError(
                f"bad escape in string: {error.reason}",
                self._loc(module, token),
                "write a backslash as \\\\",
            ) from None

    def _int(self, node: Tree, module: Module, scope: dict[str, Any]) -> int:
        try:
            return int(node.children[0])
        except ValueError:  # longer than sys.get_int_max_str_digits()
            raise KbuildError(
                f"int literal too long ({len(node.children[0])} digits)", self._loc(module, node)
            ) from None

    def _list(self, node: Tree, module: Module, scope: dict[str, Any]) -> list[Any]:
        return [self._eval(c, module, scope) for c in node.children if c is not None]

    def _tuple(self, node: Tree, module: Module, scope: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(self._eval(c, module, scope) for c in node.children if c is not None)

    def _dict(self, node: Tree, module: Module, scope: dict[str, Any]) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for pair in node.children:
            if pair is None:
                continue
            key = self._eval(pair.children[0], module, scope)
            self._check_hashable(key, module, pair.children[0])
            if key in out:
                raise KbuildError(
                    f"duplicate key {key!r} in dict literal",
                    self._loc(module, pair.children[0]),
                )
            out[key] = self._eval(pair.children[1], module, scope)
        return out

    def _listcomp(self, node: Tree, module: Module, scope: dict[str, Any]) -> list[Any]:
        element, clauses = node.children
        inner = dict(scope)  # comprehension variables do not leak
        return [self._eval(element, module, s) for s in self._comprehension(clauses, module, inner)]

    def _dictcomp(self, node: Tree, module: Module, scope: dict[str, Any]) -> dict[Any, Any]:
        pair, clauses = node.children
        out: dict[Any, Any] = {}
        for s in self._comprehension(clauses, module, dict(scope)):
            key = self._eval(pair.children[0], module, s)
            self._check_hashable(key, module, pair.children[0])
            out[key] = self._eval(pair.children[1], module, s)
        return out

    def _comprehension(
        self, clause: Tree | None, module: Module, scope: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        if clause is None:
            yield scope
        elif clause.data == "comp_for":
            variables, iterable_node, rest = clause.children
            iterable = self._iterable(self._eval(iterable_node, module, scope), module, iterable_node)
            for item in iterable:
                self._bind_loop_vars(variables, item, module, scope)
                yield from self._comprehension(rest, module, scope)
        else:  # comp_if
            condition, rest = clause.children
            if self._truth(self._eval(condition, module, scope)):
                yield from self._comprehension(rest, module, scope)

    def _conditional(self, node: Tree, module: Module, scope: dict[str, Any]) -> Any:
        then, condition, otherwise = node.children
        chosen = then if self._truth(self._eval(condition, module, scope)) else otherwise
        return self._eval(chosen, module, scope)

    def _or(self, node: Tree, module: Module, scope: dict[str, Any]) -> Any:
        left = self._eval(node.children[0], module, scope)
        return left if self._truth(left) else self._eval(node.children[1], module, scope)

    def _and(self, node: Tree, module: Module, scope: dict[str, Any]) -> Any:
        left = self._eval(node.children[0], module, scope)
        return self._eval(node.children[1], module, scope) if self._truth(left) else left

    def _not(self, node: Tree, module: Module, scope: dict[str, Any]) -> bool:
        return not self._truth(self._eval(node.children[0], module, scope))

    def _neg(self, node: Tree, module: Module, scope: dict[str, Any]) -> int:
        value = self._eval(node.children[0], module, scope)
        if not isinstance(value, int) or isinstance(value, bool):
            raise KbuildError(
                f"unary '-' needs an int, got {B.type_name(value)}",
                self._loc(module, node),
            )
        return -value if node.data == "neg" else value

    def _compare(self, node: Tree, module: Module, scope: dict[str, Any]) -> bool:
        left_node, op_node, right_node = node.children
        op = " ".join(str(t) for t in op_node.children)
        left = self._eval(left_node, module, scope)
        right = self._eval(right_node, module, scope)
        try:
            if op == "==":
                return left == right
            if op == "!=":
                return left != right
            if op in ("in", "not in"):
                if not isinstance(right, (str, list, tuple, dict)):
                    raise TypeError(
                        f"'in' needs a string, list, tuple or dict on the right, got {B.type_name(right)}"
                    )
                if isinstance(right, str) and not isinstance(left, str):
                    raise TypeError(f"'in <string>' needs a string on the left, got {B.type_name(left)}")
                return (left in right) == (op == "in")
            if type(left) is not type(right) or not isinstance(left, (int, str, list, tuple)):
                raise TypeError(f"cannot compare {B.type_name(left)} {op} {B.type_name(right)}")
            return {
                "<": left < right,
                ">": left > right,
                "<=": left <= right,
                ">=": left >= right,
            }[op]
        except TypeError as error:
            raise KbuildError(str(error), self._loc(module, node)) from None

    def _binary(self, op: str, left: Any, right: Any, module: Module, node: Tree) -> Any:
        location = self._loc(module, node)
        if op == "%" and isinstance(left, str):
            return self._percent(left, right, location)
        numbers = _is_int(left) and _is_int(right)
        if op == "+" and (numbers or _same_sequence(left, right)):
            return (list(left) + list(right)) if isinstance(left, list) else left + right
        if op == "+" and isinstance(left, dict) and isinstance(right, dict):
            raise KbuildError(
                "cannot add dicts",
                location,
                "use dict(a, **b) or a | b is not supported",
            )
        if op == "*" and (numbers or (isinstance(left, (str, list, tuple)) and _is_int(right))):
            if not numbers and len(left) * right > MAX_LENGTH:
                raise KbuildError(f"'*' would make more than {MAX_LENGTH} items", location)
            return list(left * right) if isinstance(left, list) else left * right
        if op in ("-", "//", "%") and numbers:
            if op != "-" and right == 0:
                raise KbuildError("division by zero", location)
            return left - right if op == "-" else left // right if op == "//" else left % right
        raise KbuildError(
            f"unsupported operand types for {op}: {B.type_name(left)} and {B.type_name(right)}",
            location,
        )

    def _percent(self, template: str, args: Any, location: Location) -> str:
        values = args if isinstance(args, tuple) else (args,)
        if not all(isinstance(v, (str, int)) or v is None for v in values):
            raise KbuildError("'%' formats only strings, ints, bools and None", location)
        try:
            return template % values
        except (TypeError, ValueError, KeyError, OverflowError) as error:
            raise KbuildError(f"bad '%' format: {error}", location) from None

    def _getattr(self, node: Tree, module: Module, scope: dict[str, Any]) -> Any:
        receiver = self._eval(node.children[0], module, scope)
        name = str(node.children[1])
        if isinstance(receiver, B.Struct):
            if name in receiver.__dataclass_fields__:
                return getattr(receiver, name)
            choices = receiver.__dataclass_fields__
        else:
            methods = _methods_of(receiver)
            if name in methods:
                return BoundMethod(name, receiver)
            choices = methods
        raise KbuildError(
            f"{B.type_name(receiver)} has no attribute '{name}'",
            self._loc(module, node.children[1]),
            did_you_mean(name, choices),
        )

    def _index(self, node: Tree, module: Module, scope: dict[str, Any]) -> Any:
        container = self._eval(node.children[0], module, scope)
        key = self._eval(node.children[1], module, scope)
        location = self._loc(module, node)
        if isinstance(container, dict):
            self._check_hashable(key, module, node.children[1])
            if key not in container:
                hint = (
                    did_you_mean(key, [k for k in container if isinstance(k, str)])
                    if isinstance(key, str)
                    else None
                )
                raise KbuildError(f"key {key!r} not in dict", location, hint)
            return container[key]
        if isinstance(container, (list, tuple, str)):
            if not _is_int(key):
                raise KbuildError(f"index must be an int, got {B.type_name(key)}", location)
            if not -len(container) <= key < len(container):
                raise KbuildError(f"index {key} out of range for length {len(container)}", location)
            return container[key]
        raise KbuildError(f"cannot index a {B.type_name(container)}", location)

    def _slice(self, node: Tree, module: Module, scope: dict[str, Any]) -> Any:
        container = self._eval(node.children[0], module, scope)
        bounds = [None if c is None else self._eval(c, module, scope) for c in node.children[1:]]
        if not isinstance(container, (list, tuple, str)) or not all(b is None or _is_int(b) for b in bounds):
            raise KbuildError(
                "slices need a string, list or tuple and int bounds",
                self._loc(module, node),
            )
        result = container[bounds[0] : bounds[1]]
        return list(result) if isinstance(container, list) else result

    # calls

    def _call(self, node: Tree, module: Module, scope: dict[str, Any]) -> Any:
        function_node, arguments = node.children
        function = self._eval(function_node, module, scope)
        location = self._loc(module, node)
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        where: dict[str | int, Location] = {}  # argument (index or name) -> where it was written
        # A declaration keeps where its literal values are, for errors about one of them.
        declares = isinstance(function, Builtin) and function.schema is not None and function.schema.declares
        literals: dict[str | int, Mapping[str, Location]] = {}
        for argument in arguments.children if arguments is not None else ():
            value = self._eval(argument.children[-1], module, scope)
            argument_location = self._loc(module, argument)
            if argument.data == "arg_pos":
                if kwargs:
                    raise KbuildError("positional argument after keyword arguments", argument_location)
                where[len(args)] = argument_location
                if declares:
                    literals[len(args)] = self._literals(argument, module)
                args.append(value)
            elif argument.data == "arg_kw":
                where[str(argument.children[0])] = argument_location
                if declares:
                    literals[str(argument.children[0])] = self._literals(argument, module)
                self._add_kwarg(kwargs, str(argument.children[0]), value, module, argument)
            elif argument.data == "arg_star":
                if not isinstance(value, (list, tuple)):
                    raise KbuildError(
                        f"*args needs a list or tuple, got {B.type_name(value)}",
                        argument_location,
                    )
                where.update(dict.fromkeys(range(len(args), len(args) + len(value)), argument_location))
                args.extend(value)
            else:
                if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                    raise KbuildError(
                        f"**kwargs needs a dict with string keys, got {B.type_name(value)}",
                        argument_location,
                    )
                for key, item in value.items():
                    where[key] = argument_location
                    self._add_kwarg(kwargs, key, item, module, argument)
        return self.call(function, args, kwargs, location, where, literals)

    def _literals(self, node: Tree, module: Module) -> Mapping[str, Location]:
        """The string literals written in `node`, each at its first place."""
        tokens = node.scan_values(lambda v: isinstance(v, Token) and v.type == "STRING")
        found: dict[str, Location] = {}
        for token in sorted(tokens, key=lambda t: (t.line, t.column)):
            try:
                found.setdefault(_string_literal(token), self._loc(module, token))
            except UnicodeDecodeError:  # in a branch that was not evaluated
                continue
        return found

    def _add_kwarg(self, kwargs: dict[str, Any], key: str, value: Any, module: Module, node: Tree) -> None:
        if key in kwargs:
            raise KbuildError(f"argument '{key}' given twice", self._loc(module, node))
        kwargs[key] = value

    def call(
        self,
        function: Any,
        args: list[Any],
        kwargs: dict[str, Any],
        location: Location,
        where: Mapping[str | int, Location] | None = None,
        literals: Mapping[str | int, Mapping[str, Location]] | None = None,
    ) -> Any:
        """Call `function`; `where` has the locations of the arguments, for errors about one,
        and `literals` those of the string literals in each (for declaring builtins)."""
        if isinstance(function, Function):
            return self._call_function(function, args, kwargs, location, where or {})
        if isinstance(function, Builtin) and function.schema is not None:
            return function.call(location, args, kwargs, where or {}, literals or {})
        if isinstance(function, Builtin):
            try:
                return function.call(location, *args, **kwargs)
            except (TypeError, ValueError) as error:
                raise KbuildError(f"{function.name}(): {error}", location) from None
        if isinstance(function, BoundMethod):
            return self._call_method(function, args, kwargs, location)
        raise KbuildError(f"a {B.type_name(function)} is not callable", location)

    def _call_function(
        self,
        function: Function,
        args: list[Any],
        kwargs: dict[str, Any],
        location: Location,
        where: Mapping[str | int, Location],
    ) -> Any:
        active = [f for f, _ in self.frames]
        if function in active:
            cycle = " -> ".join(f.name for f in [*active[active.index(function) :], function])
            raise KbuildError(
                f"recursion is not allowed: {cycle}",
                location,
                "recipes must terminate; unroll the recursion",
            )
        if len(self.frames) >= MAX_CALL_DEPTH:
            raise KbuildError("calls nested too deeply", location)
        scope = self._bind(function, args, kwargs, location, where)
        self.frames.append((function, location))
        try:
            self._suite(function.body, function.module, scope)
        except _Return as result:
            return result.value
        except _Jump as jump:
            raise KbuildError(f"'{jump.keyword}' outside a loop", jump.location) from None
        finally:
            self.frames.pop()
        return None

    def _bind(
        self,
        function: Function,
        args: list[Any],
        kwargs: dict[str, Any],
        location: Location,
        where: Mapping[str | int, Location],
    ) -> dict[str, Any]:
        scope: dict[str, Any] = {}
        remaining = list(args)
        extra_kwargs = dict(kwargs)
        for kind, name, default in function.params:
            if kind == "*":
                scope[name] = tuple(remaining)
                remaining = []
            elif kind == "**":
                scope[name] = extra_kwargs
                extra_kwargs = {}
            elif remaining:
                if name in extra_kwargs:
                    raise KbuildError(f"{function.name}() got '{name}' twice", where.get(name, location))
                scope[name] = remaining.pop(0)
            elif name in extra_kwargs:
                scope[name] = extra_kwargs.pop(name)
            elif default is not B.REQUIRED:
                scope[name] = default
            else:
                raise KbuildError(
                    f"{function.name}() missing argument '{name}'",
                    location,
                    f"{function.name} is defined at {function.location}",
                )
        if remaining:
            raise KbuildError(
                f"{function.name}() takes {len(function.params)} arguments, got {len(args)}",
                where.get(len(args) - len(remaining), location),
            )
        if extra_kwargs:
            unknown = next(iter(extra_kwargs))
            names = [n for k, n, _ in function.params if not k]
            raise KbuildError(
                f"{function.name}() got an unknown argument '{unknown}'",
                where.get(unknown, location),
                did_you_mean(unknown, names),
            )
        return scope

    def _call_method(
        self,
        method: BoundMethod,
        args: list[Any],
        kwargs: dict[str, Any],
        location: Location,
    ) -> Any:
        receiver, name = method.receiver, method.name
        if name in _MUTATORS[list] | _MUTATORS[dict]:
            self._check_mutable(receiver, None, None, location)
        if isinstance(receiver, str) and name == "format":
            return self._format(receiver, args, kwargs, location)
        try:
            result = getattr(receiver, name)(*args, **kwargs)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as error:
            raise KbuildError(f"{B.type_name(receiver)}.{name}(): {error}", location) from None
        if name in ("items", "keys", "values", "split", "rsplit", "splitlines"):
            return [tuple(r) if isinstance(r, tuple) else r for r in result]
        return result

    def _format(self, template: str, args: list[Any], kwargs: dict[str, Any], location: Location) -> str:
        try:
            for _, field_name, _, _ in string.Formatter().parse(template):
                if field_name and not field_name.isidentifier() and not field_name.isdigit():
                    raise ValueError(f"field {{{field_name}}}: only {{}}, {{0}} and {{name}} are allowed")
            return template.format(*args, **kwargs)
        except (ValueError, IndexError, KeyError, OverflowError) as error:
            raise KbuildError(f"string.format(): {error}", location) from None

    # builtins

    def _kbuild_builtin(self, schema: B.Schema) -> Callable[..., Any]:
        def call(
            location: Location,
            args: list[Any],
            kwargs: dict[str, Any],
            where: Mapping[str | int, Location],
            literals: Mapping[str | int, Mapping[str, Location]],
        ) -> Any:
            checked = self._check_args(schema, tuple(args), kwargs, location, where)
            if not schema.declares:
                try:
                    return B.make_value(schema, checked, Path(location.path).parent.as_posix())
                except B.ArgumentError as error:
                    at = where.get(error.index) if error.index is not None else None
                    raise KbuildError(
                        f"{schema.name}(): argument '{error.argument}': {error}",
                        at or _by_param(schema, where).get(error.argument, location),
                        error.hint,
                    ) from None
            if self.frames:
                outer = self.frames[0][1]
                via = (*tuple(loc for _, loc in self.frames[1:]), location)
            else:
                outer, via = location, ()
            self.declarations.append(
                Declaration(
                    schema.name,
                    checked,
                    outer,
                    via,
                    MappingProxyType(_by_param(schema, where)),
                    MappingProxyType(_by_param(schema, literals)),
                )
            )
            return None

        return call

    def _check_args(
        self,
        schema: B.Schema,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        location: Location,
        where: Mapping[str | int, Location],
    ) -> dict[str, Any]:
        given: dict[str, Any] = {}
        if len(args) > len(schema.positional) and schema.star is None:
            raise KbuildError(
                f"{schema.name}() takes {len(schema.positional) or 'no'} positional arguments, got {len(args)}",
                where.get(len(schema.positional), location),
                "pass the others by keyword: name = value",
            )
        at = _by_param(schema, where)
        given.update(zip(schema.positional, args, strict=False))
        if schema.star is not None:
            given[schema.star] = tuple(args[len(schema.positional) :])
        for key, value in kwargs.items():
            if key not in schema.params:
                raise KbuildError(
                    f"{schema.name}() got an unknown argument '{key}'",
                    at.get(key, location),
                    did_you_mean(key, schema.params),
                )
            if key in given:
                raise KbuildError(f"{schema.name}() got '{key}' twice", at.get(key, location))
            given[key] = value
        checked: dict[str, Any] = {}
        for (
            name,
            param,
        ) in schema.params.items():  # schema order: keyword order never matters
            if name not in given:
                if param.default is B.REQUIRED:
                    raise KbuildError(
                        f"{schema.name}() missing argument '{name}' ({param.type.name})",
                        location,
                    )
                checked[name] = param.default
                continue
            try:
                checked[name] = param.type.check(given[name])
            except B.SchemaTypeError as error:
                raise KbuildError(
                    f"{schema.name}(): argument '{name}': {error}",
                    at.get(name, location),
                    f"{name}: {param.doc}" if param.doc else None,
                ) from None
        return checked

    def _fail(self, location: Location, *message: Any) -> None:
        raise KbuildError(" ".join(str(m) for m in message), location)

    # helpers

    def _truth(self, value: Any) -> bool:
        return bool(value)

    def _iterable(self, value: Any, module: Module, node: Tree) -> list[Any]:
        if isinstance(value, (list, tuple)):
            return list(value)
        if isinstance(value, dict):
            return list(value)
        raise KbuildError(
            f"cannot iterate over a {B.type_name(value)}",
            self._loc(module, node),
            "strings are not iterable; use .elems() or a list",
        )

    def _check_hashable(self, key: Any, module: Module, node: Tree) -> None:
        if isinstance(key, tuple):
            for item in key:
                self._check_hashable(item, module, node)
        elif not isinstance(key, (str, int)) and key is not None:
            raise KbuildError(f"a {B.type_name(key)} cannot be a dict key", self._loc(module, node))

    def _check_mutable(
        self,
        value: Any,
        module: Module | None,
        node: Tree | None,
        location: Location | None = None,
    ) -> None:
        if isinstance(value, (FrozenList, FrozenDict)):
            where = location or (self._loc(module, node) if module and node else None)
            raise KbuildError(
                f"cannot modify a frozen {B.type_name(value)}",
                where,
                "values are frozen once the file that made them is evaluated; copy it first: list(x) or dict(x)",
            )

    def _loc(self, module: Module, node: Tree | Token) -> Location:
        if isinstance(node, Token):
            line, column = node.line, node.column
        else:
            line = getattr(node.meta, "line", None)
            column = getattr(node.meta, "column", None)
        line = line or 1
        text = module.lines[line - 1] if 0 < line <= len(module.lines) else ""
        return Location(module.path, line, column or 1, text)


# --- tables ----------------------------------------------------------------------------------

_T = TypeVar("_T")


def _by_param(schema: B.Schema, keyed: Mapping[str | int, _T]) -> dict[str, _T]:
    """What is keyed by argument position or keyword, by parameter name instead."""
    out = {name: keyed[i] for i, name in enumerate(schema.positional) if i in keyed}
    if schema.star is not None and len(schema.positional) in keyed:
        out[schema.star] = keyed[len(schema.positional)]
    out.update((k, v) for k, v in keyed.items() if isinstance(k, str))
    return out


def _string_literal(token: Token) -> str:
    text = str(token)
    quote = text[:3] if text[:3] in ('"""', "'''") else text[0]
    body = text[len(quote) : -len(quote)]
    if "\\" not in body:
        return body
    with warnings.catch_warnings():  # an unknown escape such as `\}` stays as written, like Python's
        warnings.simplefilter("ignore", DeprecationWarning)
        return body.encode("latin-1", "backslashreplace").decode("unicode_escape")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _same_sequence(left: Any, right: Any) -> bool:
    return any(isinstance(left, kind) and isinstance(right, kind) for kind in (str, list, tuple))


_METHODS: dict[type, frozenset[str]] = {
    str: frozenset(
        [
            "format",
            "join",
            "replace",
            "split",
            "rsplit",
            "splitlines",
            "startswith",
            "endswith",
            "strip",
            "lstrip",
            "rstrip",
            "lower",
            "upper",
            "removeprefix",
            "removesuffix",
            "count",
            "find",
            "capitalize",
            "title",
            "isdigit",
        ]
    ),
    list: frozenset(["append", "extend", "insert", "pop", "remove", "clear", "index", "count"]),
    dict: frozenset(["get", "items", "keys", "values", "update", "pop", "setdefault", "clear"]),
    tuple: frozenset(["index", "count"]),
}
_MUTATORS: dict[type, frozenset[str]] = {
    list: frozenset(["append", "extend", "insert", "pop", "remove", "clear"]),
    dict: frozenset(["update", "pop", "setdefault", "clear"]),
}


def _methods_of(value: Any) -> frozenset[str]:
    for kind, methods in _METHODS.items():
        if isinstance(value, kind):
            return methods
    return frozenset()


_BINARY_OPS = {"add": "+", "sub": "-", "mul": "*", "mod": "%", "floordiv": "//"}

_EXPRESSIONS: dict[str, Callable[[Evaluator, Tree, Module, dict[str, Any]], Any]] = {
    "name": Evaluator._name,
    "string": Evaluator._string,
    "int": Evaluator._int,
    "true": lambda self, node, module, scope: True,
    "false": lambda self, node, module, scope: False,
    "none": lambda self, node, module, scope: None,
    "list": Evaluator._list,
    "tuple": Evaluator._tuple,
    "dict": Evaluator._dict,
    "listcomp": Evaluator._listcomp,
    "dictcomp": Evaluator._dictcomp,
    "conditional": Evaluator._conditional,
    "or_expr": Evaluator._or,
    "and_expr": Evaluator._and,
    "not_expr": Evaluator._not,
    "neg": Evaluator._neg,
    "pos": Evaluator._neg,
    "compare": Evaluator._compare,
    "getattr": Evaluator._getattr,
    "index": Evaluator._index,
    "slice": Evaluator._slice,
    "call": Evaluator._call,
}


def _sorted(location: Location, iterable: Any, reverse: bool = False) -> list[Any]:
    return sorted(iterable, reverse=reverse)


def _check_type(location: Location, value: Any) -> str:
    return B.type_name(value)


def _builtin_dict(location: Location, /, *args: Any, **kwargs: Any) -> dict[Any, Any]:
    return dict(*args, **kwargs)


def _range(location: Location, *args: Any) -> list[int]:
    numbers = range(*args)
    if abs(numbers.stop - numbers.start) > MAX_LENGTH * abs(numbers.step):
        raise ValueError(f"more than {MAX_LENGTH} numbers")
    return list(numbers)


def _builtin_str(location: Location, value: Any = "") -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return value if isinstance(value, str) else repr(value) if not _is_int(value) else str(value)


_PURE_BUILTINS: dict[str, Callable[..., Any]] = {
    "len": lambda location, value: len(value),
    "range": _range,
    "str": _builtin_str,
    "int": lambda location, value, base=10: int(value, base) if isinstance(value, str) else int(value),
    "bool": lambda location, value=False: bool(value),
    "list": lambda location, value=(): list(value),
    "tuple": lambda location, value=(): tuple(value),
    "dict": _builtin_dict,
    "sorted": _sorted,
    "reversed": lambda location, value: list(reversed(value)),
    "enumerate": lambda location, value, start=0: [tuple(p) for p in enumerate(value, start)],
    "zip": lambda location, *values: [tuple(p) for p in zip(*values, strict=False)],
    "any": lambda location, value: any(value),
    "all": lambda location, value: all(value),
    "min": lambda location, *values: min(*values),
    "max": lambda location, *values: max(*values),
    "type": _check_type,
}
