"""What each structured value of a schema is: a package name, a user name, an absolute path, an
environment key, a pip requirement, one Dockerfile instruction... Recipes and overlays may come
from people the builder does not trust, and these values reach a Dockerfile or a shell: a value
that is not what it says it is (a newline, a `;`, a `$(...)`, a pip option) is refused here, at
the literal that wrote it, before anything is rendered."""

from __future__ import annotations

import re
import unicodedata
from typing import Any


class SchemaTypeError(Exception):
    """A value does not have the type a schema asks for; the message says what was expected.
    `value` is the offending string, when one is (errors point at its literal); `hint` what it
    should look like."""

    def __init__(self, message: str, value: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.value = value
        self.hint = hint

    def prefixed(self, prefix: str) -> SchemaTypeError:
        return SchemaTypeError(f"{prefix}: {self}", self.value, self.hint)


# Anything that ends a line or moves the terminal: C0 and C1 controls, DEL, the Unicode line and
# paragraph separators; surrogates cannot be encoded at all.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def control_character(value: str) -> str | None:
    """The first control character of `value`, shown escaped, or None."""
    found = _CONTROL.search(value)
    if found is None:
        return None
    char = found.group()
    name = unicodedata.name(char, "")
    return f"{char!r}" + (f" ({name})" if name else "")


def no_control(value: str, what: str = "a string") -> str:
    bad = control_character(value)
    if bad is not None:
        raise SchemaTypeError(
            f"{shown(value)} holds the control character {bad}",
            value,
            f"{what} is one line of printable text",
        )
    return value


def shown(value: str) -> str:
    """`value` quoted, escaped and cut short, to be shown in a message."""
    shown = repr(value[:80])
    return shown if len(value) <= 80 else shown[:-1] + "..." + shown[-1]


def pattern_check(pattern: str, what: str, hint: str) -> Any:
    """A check that `value` matches `pattern` whole (control characters named as such)."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        no_control(value, what)
        if not compiled.fullmatch(value):
            raise SchemaTypeError(f"{shown(value)} is not {what}", value, hint)
        return value

    return check


# Debian policy 5.6.1; an `:arch` qualifier is allowed (multi-arch installs).
DEBIAN_PACKAGE = r"[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?"
# RPM names are looser (upper case, `_`), but never a space, a quote or a shell metacharacter.
OTHER_PACKAGE = r"[A-Za-z0-9_][A-Za-z0-9_+.~^-]*(:[A-Za-z0-9_-]+)?"
check_debian_package = pattern_check(
    DEBIAN_PACKAGE, "a Debian package name", "Debian package names are [a-z0-9][a-z0-9+.-]*"
)
check_other_package = pattern_check(
    OTHER_PACKAGE, "a package name", "package names are letters, digits and + . _ ~ ^ -, no spaces"
)


def check_package(family: str, value: str) -> str:
    return check_debian_package(value) if family == "deb" else check_other_package(value)


check_user_name = pattern_check(
    r"[a-z_][a-z0-9_-]{0,30}\$?",
    "a POSIX user name",
    "user names are [a-z_][a-z0-9_-]*, at most 32 characters",
)
check_absolute_path = pattern_check(
    r"/[A-Za-z0-9_@%+=:,./~-]*",
    "an absolute path",
    "an absolute path of letters, digits and _ @ % + = : , . / ~ -, without spaces or quotes",
)
check_env_key = pattern_check(
    r"[A-Za-z_][A-Za-z0-9_]*",
    "an environment variable name",
    "environment variable names are [A-Za-z_][A-Za-z0-9_]*",
)


def check_context_name(value: str) -> str:
    """A context file, relative to its recipe: no `..`, no absolute path, no empty part, not the
    build context's own .dockerignore."""
    check_relative(value)
    if value.split("/")[-1] == ".dockerignore":
        raise SchemaTypeError(
            f"{shown(value)} cannot be a context file", value, "a .dockerignore would change the context"
        )
    return value


check_relative = pattern_check(
    r"(?!/)(?!.*//)(?!(.*/)?\.\.?(/|$))[A-Za-z0-9_@%+=:,.~/-]+(?<!/)",
    "a relative path",
    "a path relative to this file, without '..', spaces or quotes",
)


# A PEP 508 requirement: a name, extras, a version specifier or a direct reference, an environment
# marker after `;`. Never a pip option (`--index-url`, `-e`, `-r`...), nor two requirements.
_MARKER_TEST = (
    r"[a-z_]+ *(===|==|!=|<=|>=|<|>|~=|not in|in) *"  # a marker variable and its operator
    r"(\"[A-Za-z0-9._ *+!-]*\"|'[A-Za-z0-9._ *+!-]*')"  # a quoted value: no shell text in it
)
_REQUIREMENT = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9._-]*"  # name
    r"(\[[A-Za-z0-9._, -]*\])?"  # extras
    r"( *(\(?[<>=!~]=?=?[ A-Za-z0-9.*+!_,<>=~-]*\)?"  # version specifiers
    r"| @ [A-Za-z0-9+.-]+://[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]+))?"  # name @ URL (quoted for pip)
    rf"( *; *{_MARKER_TEST}( +(and|or) +{_MARKER_TEST})*)?"  # an environment marker
)


def check_requirement(value: str) -> str:
    no_control(value, "a pip requirement")
    if value.startswith("-") or not _REQUIREMENT.fullmatch(value):
        raise SchemaTypeError(
            f"{shown(value)} is not a pip requirement",
            value,
            "one PEP 508 requirement: 'name', 'name==1.0', 'name[extra]>=1', 'name @ https://...#sha256=...';"
            " pip options are not allowed",
        )
    return value


# The Dockerfile instructions a block entry may be. FROM would change the image built on, and
# ONBUILD would inject instructions into whatever builds on it; USER is allowed (the user() of
# an image is the last instruction rendered, whatever a block does).
INSTRUCTIONS = frozenset(
    [
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "HEALTHCHECK",
        "LABEL",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    ]
)


def check_instruction(value: str) -> str:
    """One Dockerfile instruction: a known keyword first, one line, no line continuation (or a
    comment, or nothing)."""
    no_control(value, "a block entry")
    if not value.strip() or value.lstrip().startswith("#"):
        return value
    keyword = value.split(" ", 1)[0].upper()
    if keyword not in INSTRUCTIONS:
        refused = keyword in ("FROM", "ONBUILD", "MAINTAINER")
        raise SchemaTypeError(
            f"{shown(value)} is not an allowed Dockerfile instruction"
            + (f": {keyword} is not allowed in a block" if refused else ""),
            value,
            "a block entry is one instruction: " + ", ".join(sorted(INSTRUCTIONS)),
        )
    if re.search(r"(^|[\s,])(--)?from=", value, re.IGNORECASE):
        raise SchemaTypeError(
            f"{shown(value)} takes files from another image",
            value,
            "an image is built from its parent only; a stage or image in --from= would not be pinned",
        )
    if value.rstrip().endswith("\\"):
        raise SchemaTypeError(
            f"{shown(value)} ends in a line continuation",
            value,
            "a block entry is exactly one instruction; use && within a RUN, or one entry per instruction",
        )
    return value
