"""The package layering holds: imports flow cli -> engine -> compile -> model -> lang (the
contracts in pyproject.toml), and no two kbuild modules import each other, even indirectly."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
# lint-imports itself, run by this interpreter (its script may not be on PATH)
LINT_IMPORTS = (
    "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
)


def test_import_contracts_hold() -> None:
    result = subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_import_cycles() -> None:
    graph = grimp.build_graph("kbuild")
    imports = {module: graph.find_upstream_modules(module) for module in graph.modules}
    cycles = [
        f"{a} <-> {b}"
        for a, b in itertools.combinations(sorted(graph.modules), 2)
        if b in imports[a] and a in imports[b]
    ]
    assert cycles == []
