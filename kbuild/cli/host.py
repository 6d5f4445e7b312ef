"""Commands about the build host: `doctor`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kbuild.cli.app import app
from kbuild.cli.options import PlatformOpt, Workspace, platforms


@app.command()
def doctor(
    platform: PlatformOpt = None,
    registry: Annotated[str | None, typer.Option(help="Registry to check (default from settings).")] = None,
    workspace: Workspace = Path("."),
) -> None:
    """Check the build host: engine, buildx, image store, binfmt, registry, debootstrap."""
    from kbuild.engine.doctor import checks
    from kbuild.model.catalog import load_catalog

    settings = load_catalog(workspace).settings
    failed = 0
    for name, ok, detail, fix in checks(
        platforms(platform) or settings.platforms, registry or settings.registry
    ):
        print(f"{'ok  ' if ok else 'FAIL'}  {name}: {detail}")
        if not ok:
            failed += 1
            print(f"      fix: {fix}")
    if failed:
        raise typer.Exit(1)
