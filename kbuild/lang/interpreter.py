"""Stage 2: syntax trees -> values, by hermetic evaluation.

The language is a strict Starlark subset: no I/O, clock or environment; a file's globals are
frozen when it finishes; recursion is an error. As in Starlark implementations, the host gives the
interpreter its predeclared names (its own builtins among them) and a load callback, which finds,
reads and caches the files that load() names; the interpreter knows nothing of what they declare.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from kbuild.errors import KbuildError, Location, did_you_mean, source_lines
from kbuild.lang import library, limits, operators
from kbuild.lang.flow import Break, Continue, Jump, Return
from kbuild.lang.library import call_method, check_mutable, methods_of
from kbuild.lang.loading import load_symbols
from kbuild.lang.parse import parse, string_value
from kbuild.lang.syntax import Token, Tree
from kbuild.lang.values import (
    REQUIRED,
    BoundMethod,
    Builtin,
    Call,
    Function,
    Module,
    Struct,
    freeze,
    type_name,
)

MAX_CALL_DEPTH = 64

# (label as written, the module that loads it, where) -> the loaded module, evaluated once.
Load = Callable[[str, Module, Location], Module]


# --- the interpreter -------------------------------------------------------------------------


class Interpreter:
    """Executes the files of one program. `predeclared` are the host's names (its builtins),
    visible in every file beside the language's own (which they may hide); `load` gives the
    module that a load() names, evaluated once (the host finds, reads and caches files)."""

    def __init__(
        self, predeclared: Mapping[str, Any], load: Load, parser: Callable[[str, str], Tree] = parse
    ) -> None:
        self.predeclared: dict[str, Any] = {**library.BUILTINS, **predeclared}
        self.load = load
        self.parse = parser  # text, path -> syntax tree (the host may cache them)
        self.frames: list[tuple[Function, Location]] = []  # the `def` functions running, and their call sites
        self.steps = 0  # statements and expressions evaluated, against limits.MAX_STEPS
        self.allocated = 0  # items made by operators and calls, against limits.MAX_ALLOCATED

    def execute(self, path: str, text: str) -> Module:
        """Evaluate one file's text; its globals are frozen once it is done."""
        lines = source_lines(text)
        limits.check_source(path, text, lines)
        tree = self.parse(text, path)
        module = Module(path, lines, {})
        for statement in tree.children:
            self._top_level(statement, module)
        try:
            module.globals = {k: freeze(v) for k, v in module.globals.items()}
        except RecursionError:
            raise KbuildError(f"{path}: a global value is too deeply nested to freeze") from None
        return module

    def _top_level(self, statement: Tree, module: Module) -> None:
        try:
            self._statement(statement, module, module.globals)
        except Jump as jump:
            raise KbuildError(f"'{jump.keyword}' outside a loop", jump.location) from None
        except RecursionError:
            raise KbuildError(
                "too deeply nested to evaluate",
                self._loc(module, statement),
                "split it into smaller expressions or statements",
            ) from None
        except MemoryError:  # the limits should come first; this is the last line of defence
            raise KbuildError(
                "out of memory evaluating this", self._loc(module, statement), limits.SIZE_HINT
            ) from None

    # statements

    def _statements(self, statements: Iterable[Tree], module: Module, scope: dict[str, Any]) -> None:
        for statement in statements:
            self._statement(statement, module, scope)

    def _statement(self, node: Tree, module: Module, scope: dict[str, Any]) -> None:
        self.steps += 1
        if self.steps > limits.MAX_STEPS:
            self._over_budget(module, node)
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
            scope[str(target.children[0])] = operators.binary(
                str(op)[:-1], current, value, self._loc(module, node)
            )
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
            self._for(node, module, scope)
        elif kind == "def_stmt":
            self._def(node, module, scope)
        elif kind == "return_stmt":
            if not self.frames:
                raise KbuildError("'return' outside a function", self._loc(module, node))
            value = node.children[0]
            raise Return(None if value is None else self._eval(value, module, scope))
        elif kind in ("break_stmt", "continue_stmt"):
            raise (Break if kind == "break_stmt" else Continue)(self._loc(module, node))
        elif kind == "pass_stmt":
            pass
        elif kind == "load_stmt":
            if scope is not module.globals:
                raise KbuildError(
                    "load() is only allowed at the top level of a file",
                    self._loc(module, node),
                )
            load_symbols(self, node, module)
        else:  # pragma: no cover - the grammar has no other statements
            raise KbuildError(f"unsupported statement {kind}", self._loc(module, node))

    def _for(self, node: Tree, module: Module, scope: dict[str, Any]) -> None:
        variables, iterable_node, body = node.children
        iterable = self._iterable(self._eval(iterable_node, module, scope), module, iterable_node)
        for item in iterable:
            self._bind_loop_vars(variables, item, module, scope)
            try:
                self._suite(body, module, scope)
            except Break:
                break
            except Continue:
                continue

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
                params.append(("", pname, REQUIRED))
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
            check_mutable(container, lambda: self._loc(module, target))
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
                    f"cannot assign into a {type_name(container)}",
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
            got = f"{len(value)} values" if isinstance(value, (list, tuple)) else f"a {type_name(value)}"
            raise KbuildError(f"cannot unpack {got} into {count} names", self._loc(module, node))
        return list(value)

    # expressions

    def _eval(self, node: Tree | Token, module: Module, scope: dict[str, Any]) -> Any:
        self.steps += 1
        if self.steps > limits.MAX_STEPS:
            self._over_budget(module, node)
        kind = node.data
        method = _EXPRESSIONS.get(kind)
        if method is not None:
            return method(self, node, module, scope)
        if kind in _BINARY_OPS:
            left = self._eval(node.children[0], module, scope)
            right = self._eval(node.children[1], module, scope)
            result = operators.binary(_BINARY_OPS[kind], left, right, self._loc(module, node))
            return self._charge(result, module, node)
        raise KbuildError(f"unsupported expression {kind}", self._loc(module, node))  # pragma: no cover

    def _name(self, node: Tree, module: Module, scope: dict[str, Any]) -> Any:
        name = str(node.children[0])
        for namespace in (scope, module.globals, self.predeclared):
            if name in namespace:
                return namespace[name]
        known = [*scope, *module.globals, *self.predeclared]
        raise KbuildError(
            f"undefined name '{name}'",
            self._loc(module, node),
            did_you_mean(name, known),
        )

    def _string(self, node: Tree, module: Module, scope: dict[str, Any]) -> str:
        return self._literal(node.children[0], module)

    def _literal(self, token: Token, module: Module) -> str:
        try:
            value = string_value(token)
        except UnicodeDecodeError as error:
            raise KbuildError(
                f"bad escape in string: {error.reason}",
                self._loc(module, token),
                "write the character itself" if "surrogate" in error.reason else "write a backslash as \\\\",
            ) from None
        return value

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
        out = [self._eval(element, module, s) for s in self._comprehension(clauses, module, inner)]
        return self._charge(out, module, node)

    def _dictcomp(self, node: Tree, module: Module, scope: dict[str, Any]) -> dict[Any, Any]:
        pair, clauses = node.children
        out: dict[Any, Any] = {}
        for s in self._comprehension(clauses, module, dict(scope)):
            key = self._eval(pair.children[0], module, s)
            self._check_hashable(key, module, pair.children[0])
            out[key] = self._eval(pair.children[1], module, s)
        return self._charge(out, module, node)

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
        return operators.negate(node.data, value, self._loc(module, node))

    def _compare(self, node: Tree, module: Module, scope: dict[str, Any]) -> bool:
        left_node, op_node, right_node = node.children
        op = " ".join(str(t) for t in op_node.children)
        left = self._eval(left_node, module, scope)
        right = self._eval(right_node, module, scope)
        return operators.compare(op, left, right, self._loc(module, node))

    def _getattr(self, node: Tree, module: Module, scope: dict[str, Any]) -> Any:
        receiver = self._eval(node.children[0], module, scope)
        name = str(node.children[1])
        if isinstance(receiver, Struct):
            if name in receiver.__dataclass_fields__:
                return getattr(receiver, name)
            choices = receiver.__dataclass_fields__
        else:
            methods = methods_of(receiver)
            if name in methods:
                return BoundMethod(name, receiver)
            choices = methods
        raise KbuildError(
            f"{type_name(receiver)} has no attribute '{name}'",
            self._loc(module, node.children[1]),
            did_you_mean(name, choices),
        )

    def _index(self, node: Tree, module: Module, scope: dict[str, Any]) -> Any:
        container = self._eval(node.children[0], module, scope)
        key = self._eval(node.children[1], module, scope)
        if isinstance(container, dict):
            self._check_hashable(key, module, node.children[1])
        return operators.index(container, key, self._loc(module, node))

    def _slice(self, node: Tree, module: Module, scope: dict[str, Any]) -> Any:
        container = self._eval(node.children[0], module, scope)
        start, stop = (None if c is None else self._eval(c, module, scope) for c in node.children[1:])
        return operators.slice_of(container, start, stop, self._loc(module, node))

    # calls

    def _call(self, node: Tree, module: Module, scope: dict[str, Any]) -> Any:
        function_node, arguments = node.children
        function = self._eval(function_node, module, scope)
        location = self._loc(module, node)
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        where: dict[str | int, Location] = {}  # argument (index or name) -> where it was written
        written: dict[str | int, Tree] = {}  # argument -> its syntax, for its literals (Call.literals)
        for argument in arguments.children if arguments is not None else ():
            value = self._eval(argument.children[-1], module, scope)
            argument_location = self._loc(module, argument)
            if argument.data == "arg_pos":
                if kwargs:
                    raise KbuildError("positional argument after keyword arguments", argument_location)
                where[len(args)] = argument_location
                written[len(args)] = argument
                args.append(value)
            elif argument.data == "arg_kw":
                where[str(argument.children[0])] = argument_location
                written[str(argument.children[0])] = argument
                self._add_kwarg(kwargs, str(argument.children[0]), value, module, argument)
            elif argument.data == "arg_star":
                if not isinstance(value, (list, tuple)):
                    raise KbuildError(
                        f"*args needs a list or tuple, got {type_name(value)}",
                        argument_location,
                    )
                where.update(dict.fromkeys(range(len(args), len(args) + len(value)), argument_location))
                args.extend(value)
            else:
                if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                    raise KbuildError(
                        f"**kwargs needs a dict with string keys, got {type_name(value)}",
                        argument_location,
                    )
                for key, item in value.items():
                    where[key] = argument_location
                    self._add_kwarg(kwargs, key, item, module, argument)
        result = self.call(
            function,
            args,
            kwargs,
            location,
            where,
            lambda: {key: self._literals(argument, module) for key, argument in written.items()},
        )
        return self._charge(result, module, node)

    def _literals(self, node: Tree, module: Module) -> Mapping[str, Location]:
        """The string literals written in `node`, each at its first place."""
        tokens = node.scan_values(lambda v: isinstance(v, Token) and v.type == "STRING")
        found: dict[str, Location] = {}
        for token in sorted(tokens, key=lambda t: (t.line, t.column)):
            try:
                found.setdefault(string_value(token), self._loc(module, token))
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
        literals: Callable[[], Mapping[str | int, Mapping[str, Location]]] | None = None,
    ) -> Any:
        """Call `function`; `where` has the locations of the arguments, for errors about one,
        and `literals` finds those of the string literals in each (for host builtins)."""
        if isinstance(function, Function):
            return self._call_function(function, args, kwargs, location, where or {})
        if isinstance(function, Builtin) and function.host:
            stack = tuple(call_site for _, call_site in self.frames)
            call = Call(function.name, location, tuple(args), kwargs, where or {}, stack, literals or dict)
            return function.call(call)
        if isinstance(function, Builtin):
            try:
                return function.call(location, *args, **kwargs)
            except (TypeError, ValueError) as error:
                raise KbuildError(f"{function.name}(): {error}", location) from None
        if isinstance(function, BoundMethod):
            return call_method(function, args, kwargs, location)
        raise KbuildError(f"a {type_name(function)} is not callable", location)

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
        scope = function.bind(args, kwargs, location, where)
        self.frames.append((function, location))
        try:
            self._suite(function.body, function.module, scope)
        except Return as result:
            return result.value
        except Jump as jump:
            raise KbuildError(
                f"'{jump.keyword}' outside a loop", jump.location, notes=[_called_from(location)]
            ) from None
        except KbuildError as error:
            # The call chain, innermost first: each frame adds its call site on the way out.
            error.notes = (*error.notes, _called_from(location))
            raise
        finally:
            self.frames.pop()
        return None

    # helpers

    def _over_budget(self, module: Module, node: Tree | Token) -> None:
        raise KbuildError(
            f"evaluation takes more than {limits.MAX_STEPS} steps", self._loc(module, node), limits.STEPS_HINT
        )

    def _charge(self, value: Any, module: Module, node: Tree | Token) -> Any:
        """Count what an operation made against the program's allocation budget."""
        self.allocated += limits.size(value)
        if self.allocated > limits.MAX_ALLOCATED:
            raise KbuildError(
                f"evaluation makes more than {limits.MAX_ALLOCATED} items of values",
                self._loc(module, node),
                limits.SIZE_HINT,
            )
        return value

    def _truth(self, value: Any) -> bool:
        return bool(value)

    def _iterable(self, value: Any, module: Module, node: Tree) -> list[Any]:
        if isinstance(value, (list, tuple)):
            return list(value)
        if isinstance(value, dict):
            return list(value)
        raise KbuildError(
            f"cannot iterate over a {type_name(value)}",
            self._loc(module, node),
            "strings are not iterable; use .elems() or a list",
        )

    def _check_hashable(self, key: Any, module: Module, node: Tree) -> None:
        if isinstance(key, tuple):
            for item in key:
                self._check_hashable(item, module, node)
        elif not isinstance(key, (str, int)) and key is not None:
            raise KbuildError(f"a {type_name(key)} cannot be a dict key", self._loc(module, node))

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


def _called_from(location: Location) -> tuple[str, Location]:
    return f"called from {location}", location


_BINARY_OPS = {"add": "+", "sub": "-", "mul": "*", "mod": "%", "floordiv": "//"}

_EXPRESSIONS: dict[str, Callable[[Interpreter, Tree, Module, dict[str, Any]], Any]] = {
    "name": Interpreter._name,
    "string": Interpreter._string,
    "int": Interpreter._int,
    "true": lambda self, node, module, scope: True,
    "false": lambda self, node, module, scope: False,
    "none": lambda self, node, module, scope: None,
    "list": Interpreter._list,
    "tuple": Interpreter._tuple,
    "dict": Interpreter._dict,
    "listcomp": Interpreter._listcomp,
    "dictcomp": Interpreter._dictcomp,
    "conditional": Interpreter._conditional,
    "or_expr": Interpreter._or,
    "and_expr": Interpreter._and,
    "not_expr": Interpreter._not,
    "neg": Interpreter._neg,
    "pos": Interpreter._neg,
    "compare": Interpreter._compare,
    "getattr": Interpreter._getattr,
    "index": Interpreter._index,
    "slice": Interpreter._slice,
    "call": Interpreter._call,
}
