"""`kbuild deploy ACTION`: deploys what the manifest pins with the Ansible tree in ansible/."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from kbuild.cli.app import app

# Kept here as well as in kbuild.engine.deploy so that `--help` imports nothing more.
_ACTIONS = "prechecks, pull, deploy, reconfigure, upgrade, check, stop, destroy, genconfig, post-deploy"
_UPGRADE = (
    "`upgrade --manifest NEW` moves a running deployment to a new manifest: for each service whose "
    "image digest changed, its database migrations run first from the new image (the image's "
    "KOLLA_UPGRADE hook), then only the containers whose image changed are recreated, then "
    "KOLLA_FINISH_UPGRADE runs where the service has one; every other container keeps running."
)


def _action(value: str) -> str:
    if value not in _ACTIONS.split(", "):
        raise typer.BadParameter(f"use one of {_ACTIONS}")
    return value


@app.command()
def deploy(
    action: Annotated[str, typer.Argument(help=f"One of {_ACTIONS}. {_UPGRADE}", callback=_action)],
    inventory: Annotated[
        Path | None,
        typer.Option("--inventory", "-i", help="Ansible inventory (default: ansible/inventory/all-in-one)."),
    ] = None,
    manifest: Annotated[
        Path, typer.Option("--manifest", help="The image manifest `kbuild bake` wrote.")
    ] = Path("build/kbuild-manifest.yml"),
    extra_vars: Annotated[
        list[str] | None, typer.Option("--extra-vars", "-e", help="An Ansible variable k=v (repeatable).")
    ] = None,
    globals_file: Annotated[
        Path,
        typer.Option("--globals", help="The operator's settings (as kolla-ansible's), used when it exists."),
    ] = Path("/etc/kolla/globals.yml"),
    workspace: Annotated[
        Path, typer.Option("--workspace", "-C", help="Where ansible/ is.", file_okay=False)
    ] = Path("."),
) -> None:
    """Run ACTION of ansible/site.yml on the images the manifest pins (never a tag); print what
    runs. Exit code: the playbook's (0 fine)."""
    from kbuild.engine.deploy import DeployRequest, ansible_dir, run, summary_lines, unbuilt_services

    tree = ansible_dir(workspace)
    request = DeployRequest(
        action=action,
        ansible_dir=tree,
        inventory=(inventory or tree / "inventory" / "all-in-one").resolve(),
        manifest=manifest.resolve(),
        extra_vars=tuple(extra_vars or ()),
        globals_file=globals_file,
    )
    left_out = unbuilt_services(request)
    if left_out:
        print(f"not in {manifest}, left out: {', '.join(left_out)} (-e enable_<service>=true requires one)")
    started = time.monotonic()
    result = run(request, lambda line: print(line, flush=True))
    outcome = "failed" if result.returncode else "done"
    print(f"--- kbuild deploy {action}: {outcome} in {time.monotonic() - started:.1f} s")
    for line in summary_lines(result):
        print(line)
    if result.returncode:
        raise typer.Exit(result.returncode)
