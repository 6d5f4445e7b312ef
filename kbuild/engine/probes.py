"""What `kbuild lock`'s probes read back: each image's installed packages and pip pins, and the
digests of the debootstrap tarballs, as new lock entries."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from kbuild.compile.lock import ImagePins, LockEntry, own_packages, parse_installed, pip_pins
from kbuild.compile.names import TargetRef, probe_dir
from kbuild.compile.pipeline import Compiled
from kbuild.engine.files import roots_dir
from kbuild.engine.roots import tarball_digest
from kbuild.errors import KbuildError


@dataclass(frozen=True)
class Probed:
    """What the probes read back, per probed image (or root) and platform."""

    installed: Mapping[str, Mapping[str, Mapping[str, str]]]  # image -> platform -> name -> version
    pip: Mapping[str, Mapping[str, tuple[str, ...]]]  # image -> platform -> pinned requirements


def read_probes(compiled: Compiled, build_dir: Path, images: Collection[str] | None = None) -> Probed:
    """From what the probes (of `images`, or all) wrote: `<probe>/<platform>/packages`, `pip.json`."""
    request = compiled.request
    installed: dict[str, dict[str, dict[str, str]]] = {}
    reports: dict[str, dict[str, tuple[str, ...]]] = {}
    for target in compiled.rendered.targets:
        if not target.probe or target.parent is None or (images is not None and target.parent not in images):
            continue
        for platform in request.platforms:
            # The local exporter writes one directory per platform, unless there is only one.
            directory = probe_dir(build_dir, request, target.name)
            if len(request.platforms) > 1:
                directory /= platform.replace("/", "_")
            try:
                text = (directory / "packages").read_text()
            except FileNotFoundError:
                raise KbuildError(f"{target.name} wrote no package list for {platform}") from None
            installed.setdefault(target.parent, {})[platform] = parse_installed(text)
            report = directory / "pip.json"
            if report.is_file():
                reports.setdefault(target.parent, {})[platform] = pip_pins(json.loads(report.read_text()))
    return Probed(installed, reports)


def read_lock_entries(compiled: Compiled, build_dir: Path, moving: set[str]) -> dict[str, LockEntry]:
    """The new entries: each image's own packages (what its parent lacks), a root's whole set."""
    probed = read_probes(compiled, build_dir)
    installed, reports = probed.installed, probed.pip
    entries = {}
    for target in compiled.rendered.targets:
        if target.name not in moving:
            continue
        packages = installed[target.name]
        digests: dict[str, str] = {}
        if target.rootfs:  # a debootstrap root: its whole package set, and its tarballs' digests
            digests = _root_digests(compiled, target.rootfs)
        else:
            parent = target.parent_ref.name if isinstance(target.parent_ref, TargetRef) else ""
            if parent in installed:
                packages = {p: own_packages(v, installed[parent].get(p, {})) for p, v in packages.items()}
        entries[target.name] = LockEntry(
            compiled.inputs[target.name], ImagePins(packages, reports.get(target.name, {})), digests
        )
    return entries


def _root_digests(compiled: Compiled, rootfs: str) -> dict[str, str]:
    request = compiled.request
    family = compiled.catalog.distros[request.distro].family
    return {
        p: tarball_digest(
            roots_dir() / rootfs / f"rootfs-{compiled.catalog.platforms[p].arch[family]}.tar.gz"
        )
        for p in request.platforms
    }
