"""`kbuild deploy`: runs the Ansible tree (ansible/site.yml) on an image manifest, streams its
output, and reads back what it deployed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kbuild.errors import KbuildError

ACTIONS = (
    "prechecks",
    "pull",
    "deploy",
    "reconfigure",
    "upgrade",
    "check",
    "stop",
    "destroy",
    "genconfig",
    "post-deploy",
)
_RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s.*failed=(?P<failed>\d+)"
)


@dataclass(frozen=True)
class DeployRequest:
    action: str
    ansible_dir: Path
    inventory: Path
    manifest: Path
    extra_vars: tuple[str, ...] = ()
    # the operator's settings, as kolla-ansible's /etc/kolla/globals.yml; used when it exists
    globals_file: Path | None = None


@dataclass
class DeployResult:
    returncode: int
    # host -> {"ok": n, "changed": n, "failed": n}, from the play recap
    recap: dict[str, dict[str, int]] = field(default_factory=dict)
    # what the playbook's last play wrote: services, containers, the keystone endpoint
    summary: dict = field(default_factory=dict)


def ansible_dir(workspace: Path) -> Path:
    """The workspace's ansible/ tree, else the one of the checkout kbuild runs from."""
    for root in (workspace, Path(__file__).resolve().parents[2]):
        if (root / "ansible" / "site.yml").is_file():
            return root / "ansible"
    raise KbuildError(f"no ansible/site.yml in {workspace} or next to kbuild", hint="use --workspace")


def ansible_playbook() -> Path:
    """The ansible-playbook of kbuild's own environment (the `ansible` package, with the
    community.docker collection it bundles)."""
    return Path(sys.executable).parent / "ansible-playbook"


# Actions that act on whatever runs, built or not: they never leave a service out.
_EVERY_SERVICE = ("stop", "destroy")


def unbuilt_services(request: DeployRequest) -> tuple[str, ...]:
    """The services whose images the manifest lacks: `kbuild deploy` deploys what was built (a
    bake of `core` gives keystone and horizon, one of `default` the whole control plane). An
    operator's `enable_<service>=true` (globals or -e) still requires one: prechecks then say
    what to bake. Nothing is left out of stop and destroy, or without a readable manifest."""
    if request.action in _EVERY_SERVICE:
        return ()
    try:
        images = yaml.safe_load(request.manifest.read_text()).get("images") or {}
        defaults = yaml.safe_load((request.ansible_dir / "roles/common/defaults/main.yml").read_text())
    except (OSError, yaml.YAMLError, AttributeError):
        return ()  # the playbook's manifest check says what is wrong with it
    wanted: dict[str, list[str]] = defaults.get("kbuild_service_images", {})
    return tuple(sorted(s for s, names in wanted.items() if not all(name in images for name in names)))


def command(request: DeployRequest, summary_file: Path) -> list[str]:
    # First, so that the operator's settings after them win.
    left_out = [arg for service in unbuilt_services(request) for arg in ("-e", f"enable_{service}=false")]
    argv = [
        str(ansible_playbook()),
        "-i",
        str(request.inventory),
        str(request.ansible_dir / "site.yml"),
        "-e",
        f"kolla_action={request.action}",
        "-e",
        f"kbuild_manifest={request.manifest}",
        "-e",
        f"kbuild_summary_file={summary_file}",
        *left_out,
    ]
    if request.globals_file is not None and request.globals_file.is_file():
        argv += ["-e", f"@{request.globals_file}"]
    for extra in request.extra_vars:
        argv += ["-e", extra]
    return argv


def run(request: DeployRequest, echo: Callable[[str], None]) -> DeployResult:
    """Runs the playbook, giving each line of its output to `echo` as it comes."""
    if not ansible_playbook().exists():
        raise KbuildError(
            f"{ansible_playbook()} is missing: ansible is not installed in kbuild's environment",
            hint="pip install -e '.[deploy]' (scripts/python-env.sh does)",
        )
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = str(request.ansible_dir / "ansible.cfg")
    env["PYTHONUNBUFFERED"] = "1"
    recap: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory(prefix="kbuild-deploy-") as tmp:
        summary_file = Path(tmp) / "summary.json"
        with subprocess.Popen(
            command(request, summary_file),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        ) as process:
            assert process.stdout is not None
            for line in process.stdout:
                line = line.rstrip("\n")
                echo(line)
                if match := _RECAP.match(line):
                    recap[match["host"]] = {k: int(match[k]) for k in ("ok", "changed", "failed")}
        summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    return DeployResult(process.returncode, recap, summary)


def summary_lines(result: DeployResult) -> Sequence[str]:
    """A few lines: services, containers with their digests, the keystone endpoint."""
    lines = []
    summary = result.summary
    if summary.get("services"):
        lines.append(f"services: {', '.join(summary['services'])}")
    for host, containers in sorted(summary.get("containers", {}).items()):
        for container in sorted(containers, key=lambda c: c["name"]):
            lines.append(f"  {host}  {container['name']:<24} {container['state']:<8} {container['image']}")
    if summary.get("keystone"):
        lines.append(f"keystone: {summary['keystone']}")
    for host, counts in sorted(result.recap.items()):
        lines.append(f"{host}: ok={counts['ok']} changed={counts['changed']} failed={counts['failed']}")
    return lines
