"""Commands about the build host: `doctor`."""

from __future__ import annotations

from typing import Annotated

import typer

from kbuild.cli.app import app
from kbuild.cli.options import Inputs, shared_options


@app.command()
@shared_options("platform")
def doctor(
    inputs: Inputs,
    registry: Annotated[str | None, typer.Option(help="Registry to check (default from settings).")] = None,
) -> None:
    """Check the build host: engine, buildx, image store, binfmt, registry, debootstrap."""
    from kbuild.engine.doctor import checks

    settings = inputs.catalog().settings
    failed = 0
    for name, ok, detail, fix in checks(
        inputs.select.platforms or settings.platforms, registry or settings.registry
    ):
        print(f"{'ok  ' if ok else 'FAIL'}  {name}: {detail}")
        if not ok:
            failed += 1
            print(f"      fix: {fix}")
    if failed:
        raise typer.Exit(1)
