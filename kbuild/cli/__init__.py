"""The command line: `kbuild list | graph | render | explain | compile | bake | lock | verify |
doctor | deploy`, one module per group of commands. Exit codes: 0 fine, 1 a build failed, 2 bad input."""

from __future__ import annotations

import sys

from kbuild.cli import bake, catalog, deploy, host, lock  # noqa: F401  (each registers its commands)
from kbuild.cli.app import app
from kbuild.errors import KbuildError

__all__ = ["app", "main"]


def main() -> None:
    try:
        app()
    except KbuildError as error:
        print(error.render(), file=sys.stderr)
        sys.exit(2)
