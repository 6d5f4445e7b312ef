"""The language reference of the README, made from the builtin schemas so the two never drift.

.venv/bin/python -m kbuild.model.reference   # prints the markdown
"""

from __future__ import annotations

from collections.abc import Mapping

from kbuild.model.schemas import REQUIRED, SCHEMAS, Param


def _default(param: Param) -> str:
    if param.default is REQUIRED:
        return "required"
    value = param.default
    if isinstance(value, Mapping):
        value = dict(value)
    elif isinstance(value, tuple):
        value = list(value)
    return f"`{value!r}`"


def builtin_reference() -> str:
    out = []
    for schema in SCHEMAS.values():
        out += [
            f"#### `{schema.name}()`",
            "",
            schema.doc,
            "",
            "| argument | type | default | meaning |",
            "|---|---|---|---|",
        ]
        for name, param in schema.params.items():
            shown = f"*{name}" if name == schema.star else name
            out.append(f"| `{shown}` | {param.type.name} | {_default(param)} | {param.doc} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(builtin_reference())
