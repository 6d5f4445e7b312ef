"""Stage 1: recipe text -> syntax tree with positions (lark parses; `syntax` holds the tree).

lark is imported only to parse: a compile whose trees are all in the parse cache never loads it."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import pickle
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from kbuild.errors import KbuildError, Location, source_lines
from kbuild.lang.syntax import Meta, Token, Tree

if TYPE_CHECKING:
    from lark import Lark
    from lark.exceptions import UnexpectedInput

GRAMMAR = Path(__file__).with_name("grammar.lark")

# What a person calls the grammar's terminals in an error message.
_TOKEN_NAMES = {
    "_NEWLINE": "end of line",
    "_INDENT": "an indented block",
    "_DEDENT": "end of the indented block",
    "$END": "end of file",
    "NAME": "a name",
    "STRING": "a string",
    "INT": "a number",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "COMMA": "','",
    "COLON": "':'",
    "EQUAL": "'='",
    "DOT": "'.'",
}


OPEN_PAREN_TYPES = ("LPAR", "LSQB", "LBRACE")
CLOSE_PAREN_TYPES = ("RPAR", "RSQB", "RBRACE")


class _BadDedent(Exception):
    """A line indented less than its block but not as little as any enclosing block."""

    def __init__(self, newline: Any) -> None:
        super().__init__()
        self.newline = newline


@functools.cache
def _parser() -> Lark:
    from lark import Lark
    from lark.indenter import DedentError, Indenter

    class _Indenter(Indenter):
        NL_type = "_NEWLINE"
        OPEN_PAREN_types: ClassVar[list[str]] = list(OPEN_PAREN_TYPES)
        CLOSE_PAREN_types: ClassVar[list[str]] = list(CLOSE_PAREN_TYPES)
        INDENT_type = "_INDENT"
        DEDENT_type = "_DEDENT"
        tab_len = 8

        def handle_NL(self, token: Any) -> Iterator[Any]:
            try:
                yield from super().handle_NL(token)
            except DedentError:
                raise _BadDedent(token) from None

    # cache=True stores the LALR tables in the temp dir, keyed by the grammar's hash.
    return Lark(
        GRAMMAR.read_text(),
        parser="lalr",
        postlex=_Indenter(),
        propagate_positions=True,
        maybe_placeholders=True,
        cache=True,
    )


class ParseCache:
    """Syntax trees by the text they were parsed from, pickled in a directory: parsing is most
    of a compile's time, and recipes rarely change between two runs. Keyed by the text, the
    grammar and lark's version; an unreadable entry is parsed again."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def parse(self, text: str, path: str) -> Tree:
        digest = hashlib.sha256(_salt() + text.encode("utf-8", "surrogatepass")).hexdigest()
        entry = self.directory / digest[:2] / digest
        try:
            tree = pickle.loads(entry.read_bytes())
            if isinstance(tree, Tree):
                return tree
        except (
            OSError,
            pickle.UnpicklingError,
            EOFError,
            AttributeError,
            ValueError,
            TypeError,
            RecursionError,
        ):
            pass
        tree = parse(text, path)
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            partial = entry.with_name(f".{entry.name}.{os.getpid()}")
            partial.write_bytes(pickle.dumps(tree, protocol=pickle.HIGHEST_PROTOCOL))
            os.replace(partial, entry)
        except (OSError, RecursionError):
            pass  # a cache that cannot be written (or a tree too deep to pickle) is only slower
        return tree


@functools.cache
def _salt() -> bytes:
    """The grammar and the lark that parsed it (its `__init__`, which holds its version), read
    without importing lark."""
    spec = importlib.util.find_spec("lark")
    lark_init = Path(spec.origin).read_bytes() if spec and spec.origin else b""
    return hashlib.sha256(GRAMMAR.read_bytes() + lark_init + SYNTAX_VERSION).digest()


# Bump when the tree `_converted` makes changes shape.
SYNTAX_VERSION = b"kbuild-syntax-1"


def parse(text: str, path: str) -> Tree:
    """Parse one recipe file. Raises KbuildError with the position of the first syntax error."""
    from lark.exceptions import UnexpectedInput

    if not text.endswith("\n"):
        text += "\n"
    try:
        return _converted(_parser().parse(text))
    except UnexpectedInput as error:
        raise _syntax_error(error, text, path) from None
    except _BadDedent as error:
        raise KbuildError(
            "syntax error: unindent does not match any outer indentation level",
            _location(text, error.newline.end_line, error.newline.end_column, path),
            "check the indentation",
        ) from None


def _converted(root: Any) -> Any:
    """lark's tree as kbuild's (`syntax`): same names, children and positions. Iterative: a tree
    nested deeper than Python's stack is the interpreter's error to report, with its position."""
    from lark import Token as LarkToken
    from lark import Tree as LarkTree

    def leaf(node: Any) -> Any:
        if isinstance(node, LarkToken):
            return Token(str(node), node.type, node.line, node.column, node.end_line, node.end_column)
        return node  # None: an optional part left out

    def shell(node: Any) -> Tree:
        position = [getattr(node.meta, f, None) for f in ("line", "column", "end_line", "end_column")]
        return Tree(str(node.data), [], Meta(*position))

    if not isinstance(root, LarkTree):
        return leaf(root)
    converted = shell(root)
    pending = [(root, converted)]
    while pending:
        source, target = pending.pop()
        for child in source.children:
            if isinstance(child, LarkTree):
                copy = shell(child)
                pending.append((child, copy))
                target.children.append(copy)
            else:
                target.children.append(leaf(child))
    return converted


def _location(text: str, line: int, column: int, path: str) -> Location:
    lines = source_lines(text)
    if lines and line > len(lines):  # a token at the end of a file with no final newline
        line, column = len(lines), len(lines[-1]) + 1
    return Location(path, line, max(column, 1), lines[line - 1] if 0 < line <= len(lines) else "")


def _syntax_error(error: UnexpectedInput, text: str, path: str) -> KbuildError:
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

    lines = source_lines(text)
    line = getattr(error, "line", -1)
    column = getattr(error, "column", -1)
    if line is None or line < 1:  # end of file
        line, column = len(lines), len(lines[-1]) + 1 if lines else 1
    location = Location(path, line, max(column, 1), lines[line - 1] if line <= len(lines) else "")
    hint = None
    if isinstance(error, UnexpectedCharacters):
        char = text[error.pos_in_stream] if error.pos_in_stream < len(text) else ""
        message = f"unexpected character {char!r}"
        if char in "\"'":
            hint = "strings must close on the same line (use triple quotes for long text)"
        elif char == "\t" or char == " ":
            hint = "check the indentation"
    elif isinstance(error, UnexpectedToken):
        token = error.token
        found = "end of file" if token.type == "$END" else _describe(token.type, str(token))
        message = f"unexpected {found}"
        expected = sorted({_TOKEN_NAMES.get(name, _literal(name)) for name in error.expected})
        if expected and len(expected) <= 6:
            message += f"; expected {', '.join(expected)}"
        if token.type == "_DEDENT" or token.type == "_INDENT":
            # these borrow the position of the newline before them: point at the line they start
            location = _location(text, token.end_line, token.end_column, path)
            hint = "check the indentation"
        elif token.type in ("NAME", "STRING", "INT") and "COMMA" in error.expected:
            hint = "is a ',' missing before it?"
        elif token.type == "$END" and (bracket := _unclosed_bracket(text)) is not None:
            message = f"'{bracket}' is never closed"
            location = _location(text, bracket.line, bracket.column, path)
            hint = "is a bracket left open?"
    elif isinstance(error, UnexpectedEOF):
        message = "unexpected end of file"
        hint = "is a bracket left open?"
    else:
        message = "syntax error"
    return KbuildError(f"syntax error: {message}", location, hint)


def _describe(token_type: str, value: str) -> str:
    if token_type == "_INDENT":
        return "indentation"
    if token_type in ("_NEWLINE", "_DEDENT"):
        return _TOKEN_NAMES[token_type]
    return repr(value)


def _unclosed_bracket(text: str) -> Any:
    """The innermost bracket (a lark token) still open at the end of `text`, if any."""
    from lark.exceptions import LarkError

    stack: list[Any] = []
    try:
        for token in _parser().lex(text):
            if token.type in OPEN_PAREN_TYPES:
                stack.append(token)
            elif token.type in CLOSE_PAREN_TYPES and stack:
                stack.pop()
    except (LarkError, _BadDedent):
        return None
    return stack[-1] if stack else None


def _literal(name: str) -> str:
    # lark names anonymous keyword terminals by their text in upper case: "ELSE" -> 'else'
    return f"'{name.lower()}'" if name.isalpha() else name


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def string_value(token: Token) -> str:
    """The value of a STRING token: its text without the quotes, escapes decoded."""
    text = str(token)
    quote = text[:3] if text[:3] in ('"""', "'''") else text[0]
    body = text[len(quote) : -len(quote)]
    if "\\" not in body:
        return body
    with warnings.catch_warnings():  # an unknown escape such as `\}` stays as written, like Python's
        warnings.simplefilter("ignore", DeprecationWarning)
        value = body.encode("latin-1", "backslashreplace").decode("unicode_escape")
    surrogate = _SURROGATE.search(value)
    if surrogate is not None:  # "\ud800" decodes, but no text can hold it: an error, not a traceback
        raise UnicodeDecodeError("unicode_escape", b"", 0, 1, "a lone surrogate is not a character")
    return value
