"""Stage "bake": a compiled bake file -> images, through `docker buildx bake`.

buildx stops a whole bake at the first failing target, so kbuild bakes in rounds: after a failed
round, the failed targets and their descendants are set aside and the rest is baked again (what
already finished comes straight from BuildKit's cache). Failures that look transient (network)
are retried with backoff. Each round's plain progress output is split into one log per image.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kbuild.compile.names import target_name
from kbuild.compile.pipeline import Compiled

# Build output that says the network, not the recipe, failed.
TRANSIENT = re.compile(
    r"Temporary failure resolving|Could not resolve|Connection (timed out|refused|reset)|"
    r"Failed to fetch|i/o timeout|TLS handshake timeout|502 Bad Gateway|503 Service Unavailable|"
    r"Hash Sum mismatch|unexpected EOF|"
    # BuildKit's own gRPC session giving up under load: the recipe is not at fault.
    r"DeadlineExceeded|context deadline exceeded|error reading from server: EOF",
    re.IGNORECASE,
)
_VERTEX = re.compile(r"^#(\d+) \[([a-zA-Z0-9_-]+)(?: [^\]]*)?\] ?(.*)$")
_STEP = re.compile(r"^#(\d+) (.*)$")
_DONE = re.compile(r"^DONE (\d+(?:\.\d+)?)s$")


@dataclass
class TargetOutcome:
    name: str  # the image (or root, or probe) name
    status: str = "pending"  # built | failed | parent_error
    seconds: float = 0.0
    attempts: int = 0
    error: str = ""
    failed_step: str = ""  # the build step that failed, as BuildKit names it
    metadata: dict[str, Any] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)


# (image, state, current step): how a live view learns what each target is doing.
OnState = Callable[[str, str, str], None]


def ignore_state(image: str, state: str, step: str) -> None:
    pass


@dataclass(frozen=True)
class RunOptions:
    builder: str | None = None
    progress: str = "plain"
    retries: int = 2
    backoff: float = 5.0
    on_state: OnState = ignore_state


class _Round:
    """Routes one bake's plain progress lines to the targets they belong to."""

    def __init__(
        self,
        outcomes: dict[str, TargetOutcome],
        on_state: OnState,
        parents: dict[str, str | None],
        dockerfiles: dict[str, str],
    ) -> None:
        self.outcomes = outcomes
        self.parents, self.dockerfiles = parents, dockerfiles
        self.by_target = {target_name(name): name for name in outcomes}  # buildx speaks target names
        self.on_state = on_state
        self.vertex_target: dict[str, str] = {}
        self.vertex_step: dict[str, str] = {}
        self.vertex_seconds: dict[str, float] = {}
        self.started: set[str] = set()
        self.failed: set[str] = set()
        self.general: list[str] = []

    def feed(self, line: str) -> None:
        line = line.rstrip("\n")
        match = _VERTEX.match(line)
        if match and match.group(2) in self.by_target:
            # BuildKit names a step two targets share after the first that asked for it (a probe
            # runs its image's steps too): the step is its owner's, whose Dockerfile has it.
            text = match.group(3)
            name = _owner(self.by_target[match.group(2)], text, self.parents, self.dockerfiles)
            if match.group(1) not in self.vertex_target:
                self.started.add(name)
                self.on_state(name, "exporting" if text.startswith("exporting") else "building", text)
            self.vertex_target[match.group(1)] = name
            self.vertex_step[match.group(1)] = text
        step = _STEP.match(line)
        target = self.vertex_target.get(step.group(1)) if step else None
        if target is None:
            self.general.append(line)
            return
        self.outcomes[target].log.append(line)
        done = _DONE.match(step.group(2)) if step else None
        if done:
            self.vertex_seconds[step.group(1)] = float(done.group(1))
        if step and step.group(2).startswith("ERROR:"):
            self.failed.add(target)
            self.outcomes[target].error = step.group(2).removeprefix("ERROR:").strip()
            self.outcomes[target].failed_step = self.vertex_step.get(step.group(1), "")


def run_bake(
    compiled: Compiled,
    bake_path: Path,
    options: RunOptions,
    say: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, TargetOutcome]:
    """Bake every target of the compiled bake file; returns an outcome per image (or root) name."""
    parents = {name: target.parent_target for name, target in compiled.bake.targets.items()}
    outcomes = {name: TargetOutcome(name) for name in compiled.bake.targets}
    # Squashed once here: every progress line that names a step looks its owner up in them.
    dockerfiles = {t.name: _squash(t.dockerfile) for t in compiled.rendered.targets}
    remaining = list(compiled.bake.groups["default"])
    for name in _with_ancestors(remaining, parents):
        options.on_state(name, "waiting", "")
    failures_without_target = 0
    while remaining:
        current = _Round(outcomes, options.on_state, parents, dockerfiles)
        for name in _with_ancestors(remaining, parents):
            outcomes[name].attempts += 1
        error, metadata = _bake_once(remaining, bake_path, options, current)
        for vertex, seconds in current.vertex_seconds.items():
            target = current.vertex_target[vertex]
            owner = _owner(target, current.vertex_step.get(vertex, ""), parents, dockerfiles)
            outcomes[owner].seconds += seconds
        if not error:
            for name in _with_ancestors(remaining, parents):
                outcomes[name].status = "built"
                outcomes[name].metadata = metadata.get(target_name(name), {})
                options.on_state(name, "built", "")
            break
        if not current.failed:
            failures_without_target += 1
            if failures_without_target > options.retries:
                for name in remaining:
                    outcomes[name].status, outcomes[name].error = "failed", error
                    options.on_state(name, "failed", error)
                break
            say(
                f"[yellow]bake failed ({error}); retrying in {options.backoff * failures_without_target:.0f} s[/]"
            )
            sleep(options.backoff * failures_without_target)
            continue
        retry = False
        for name in sorted(_culprits(current.failed, outcomes, parents, dockerfiles)):
            outcome = outcomes[name]
            if TRANSIENT.search("\n".join(outcome.log)) and outcome.attempts <= options.retries:
                say(f"[yellow]{name} failed on what looks like a network error; retrying[/]")
                retry = True
                continue
            outcome.status = "failed"
            options.on_state(name, "failed", outcome.error)
            for descendant in _descendants(name, parents):
                if outcomes[descendant].status == "pending":
                    outcomes[descendant].status = "parent_error"
                    outcomes[descendant].error = f"parent {name} failed"
                    options.on_state(descendant, "parent_error", outcomes[descendant].error)
        if retry:
            sleep(options.backoff)
        remaining = [n for n in remaining if outcomes[n].status == "pending"]
    return outcomes


def _bake_once(
    names: list[str], bake_path: Path, options: RunOptions, current: _Round
) -> tuple[str, dict[str, Any]]:
    """One `docker buildx bake` of `names`, its progress fed to `current`: (error or "", metadata).

    Run here rather than through python-on-whales, whose log streaming copies everything read so
    far on every line (20,000 lines of progress, a cold `default`, took it 18 s of CPU)."""
    with tempfile.NamedTemporaryFile(suffix=".json", dir=bake_path.parent) as metadata_file:
        command = ["docker", "buildx", "bake", "--progress", "plain", "--file", str(bake_path)]
        command += ["--metadata-file", metadata_file.name]
        command += ["--builder", options.builder] if options.builder else []
        # Outputs are in the bake file (an OCI layout). Provenance would change the index digest
        # on every build.
        env = {**os.environ, "BUILDX_NO_DEFAULT_ATTESTATIONS": "1"}
        last: deque[str] = deque(maxlen=20)  # for a failure that no progress line explains
        try:
            with subprocess.Popen(
                [*command, *(target_name(name) for name in names)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                text=True,
                errors="replace",
            ) as process:
                assert process.stdout is not None
                for line in process.stdout:
                    current.feed(line)
                    last.append(line)
                    if options.progress == "plain":
                        print(line, end="" if line.endswith("\n") else "\n")
            returncode = process.returncode
        except OSError as error:
            return f"cannot run docker buildx: {error}", {}
        error = "" if returncode == 0 else _last_error(current.general, last, returncode)
        return error, _read_metadata(Path(metadata_file.name))


def _culprits(
    failed: set[str],
    outcomes: dict[str, TargetOutcome],
    parents: dict[str, str | None],
    dockerfiles: dict[str, str],
) -> set[str]:
    """The images whose own steps failed."""
    culprits = set()
    for name in failed:
        culprit = _owner(name, outcomes[name].failed_step, parents, dockerfiles)
        if culprit != name:
            outcomes[culprit].error = outcomes[culprit].error or outcomes[name].error
            outcomes[culprit].log += outcomes[name].log
        culprits.add(culprit)
    return culprits


def _owner(target: str, step: str, parents: dict[str, str | None], dockerfiles: dict[str, str]) -> str:
    """The image a build step belongs to. A child's build runs its parent's steps too, and BuildKit
    may report a parent's step under the child's name: the owner is the nearest image whose
    Dockerfile (`dockerfiles`: squashed) has that step."""
    squashed = _squash(step)
    if squashed:
        for candidate in [target, *_ancestors(target, parents)]:
            if squashed in dockerfiles.get(candidate, ""):
                return candidate
    return target


def _squash(text: str) -> str:
    return " ".join(text.replace("\\\n", " ").split())


def _ancestors(name: str, parents: dict[str, str | None]) -> list[str]:
    chain = []
    current = parents.get(name)
    while current is not None:
        chain.append(current)
        current = parents.get(current)
    return chain


def _with_ancestors(names: Iterable[str], parents: dict[str, str | None]) -> list[str]:
    out: list[str] = []
    for name in names:
        chain = []
        current: str | None = name
        while current is not None and current not in out and current not in chain:
            chain.append(current)
            current = parents.get(current)
        out += reversed(chain)
    return out


def _descendants(name: str, parents: dict[str, str | None]) -> list[str]:
    found: list[str] = []
    frontier = [name]
    while frontier:
        parent = frontier.pop()
        kids = [child for child, p in parents.items() if p == parent]
        found += kids
        frontier += kids
    return found


def _read_metadata(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        return {}


def _last_error(general: list[str], last: Iterable[str], returncode: int) -> str:
    errors = [line for line in general if line.startswith("ERROR")]
    if errors:
        return errors[-1].removeprefix("ERROR:").strip()
    lines = [line.strip() for line in last if line.strip()]
    return lines[-1] if lines else f"docker buildx bake exited with {returncode}"
