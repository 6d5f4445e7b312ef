"""The typer application every command module registers with."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="kbuild: declarative, reproducible, multi-arch container image builds for OpenStack.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
