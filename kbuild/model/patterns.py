"""Profile and command-line patterns: regular expressions searched in image names, matched in
linear time.

Profiles may come from an overlay the builder did not write, and a backtracking engine hangs on a
pattern such as `^(a+)+$`. RE2 (google-re2) has no backtracking: what it cannot do in linear time
(backreferences, lookaround) it refuses, and that is refused here as a bad pattern.
"""

from __future__ import annotations

import re
from typing import Protocol

import re2

MAX_PATTERN = 1_000  # characters of one pattern

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # errors are ours to report, not RE2's to print on stderr
_OPTIONS.max_mem = 8 << 20  # a pattern whose automaton needs more is refused


class Pattern(Protocol):
    def search(self, text: str) -> object | None: ...


def compile_pattern(pattern: str) -> Pattern:
    """`pattern` compiled for searching; a bad or unsupported one raises re.error, with the
    reason (so callers handle it as they would the re module's)."""
    if len(pattern) > MAX_PATTERN:
        raise re.error(f"longer than {MAX_PATTERN} characters")
    try:
        re.compile(pattern)  # Python's syntax is the documented one: its errors say more
    except re.error:
        raise
    except (RecursionError, OverflowError, MemoryError) as error:
        raise re.error(f"too complex ({type(error).__name__})") from None
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as error:
        reason = error.args[0].decode() if error.args and isinstance(error.args[0], bytes) else str(error)
        raise re.error(f"not supported in linear time: {reason}") from None
