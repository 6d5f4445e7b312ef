"""Stage "resolve": kbuild.lock -> the pins each image is rendered with, and the lock file itself.

The lock records, per variant (distro-release-type), what every image's inputs resolved to when
`kbuild lock` last built it: for a root its digest and package set per platform; for an image the
packages its own layers installed (name -> version, per platform) and its pip requirements with
their sha256; plus the image's unpinned content hash (`inputs`), which tells a stale entry from a
fresh one. It is YAML with sorted keys and one fact per line, so a diff reads well.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from kbuild.errors import KbuildError, Location

LOCK_VERSION = 1
HEADER = (
    "# kbuild.lock: what every image's inputs resolved to. Written by `kbuild lock`; review it,\n"
    "# commit it, and build with `kbuild bake --locked`. Do not edit by hand.\n"
)
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class ImagePins:
    """What a locked render fixes for one image, per platform."""

    packages: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: _EMPTY)  # name -> version
    pip: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: _EMPTY)  # "name==v --hash=sha256:h"


@dataclass(frozen=True)
class LockEntry:
    inputs: str  # the content hash of the image rendered without pins
    pins: ImagePins
    digests: Mapping[str, str] = field(default_factory=lambda: _EMPTY)  # roots: platform -> digest
    # images: platform -> the manifest digest the locked build gave; any machine must give it too
    images: Mapping[str, str] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True)
class Lock:
    source_date_epoch: int
    recipes: str
    variants: Mapping[str, Mapping[str, LockEntry]]  # variant -> image (or root) -> entry

    def entries(self, variant: str) -> Mapping[str, LockEntry]:
        return self.variants.get(variant, _EMPTY)


def read_lock(path: Path) -> Lock | None:
    """The lock at `path`, or None when there is none. A malformed lock is an error, not a None."""
    import yaml  # only a locked bake or `kbuild lock` reads one

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = yaml.safe_load(text)
        if not isinstance(data, dict) or data.get("lock") != LOCK_VERSION:
            raise ValueError(f"expected `lock: {LOCK_VERSION}` at the top")
        variants = {
            variant: {name: _entry(entry) for name, entry in (images or {}).items()}
            for variant, images in (data.get("variants") or {}).items()
        }
        return Lock(int(data["source_date_epoch"]), str(data["recipes"]), variants)
    except (yaml.YAMLError, ValueError, KeyError, TypeError, AttributeError) as error:
        mark = getattr(error, "problem_mark", None)
        location = Location(str(path), mark.line + 1, mark.column + 1) if mark else Location(str(path), 1, 1)
        raise KbuildError(
            f"cannot read the lock file: {error}",
            location,
            hint="regenerate it with `kbuild lock` (it is not meant to be edited by hand)",
        ) from None


def _entry(data: Mapping[str, Any]) -> LockEntry:
    packages = {
        platform: dict(line.split("=", 1) for line in lines)
        for platform, lines in (data.get("packages") or {}).items()
    }
    pip = {platform: tuple(lines) for platform, lines in (data.get("pip") or {}).items()}
    digests, images = dict(data.get("digests") or {}), dict(data.get("image") or {})
    return LockEntry(str(data["inputs"]), ImagePins(packages, pip), digests, images)


def dump_lock(lock: Lock) -> bytes:
    """Stable text: sorted keys, one package per line; the same lock always gives the same bytes."""
    variants = {
        variant: {name: _dump_entry(entry) for name, entry in sorted(entries.items())}
        for variant, entries in sorted(lock.variants.items())
    }
    document = {
        "lock": LOCK_VERSION,
        "recipes": lock.recipes,
        "source_date_epoch": lock.source_date_epoch,
        "variants": variants,
    }
    import yaml

    body = yaml.safe_dump(document, sort_keys=True, default_flow_style=False, width=1000)
    return (HEADER + body).encode()


def _dump_entry(entry: LockEntry) -> dict[str, Any]:
    out: dict[str, Any] = {"inputs": entry.inputs}
    if entry.digests:
        out["digests"] = dict(sorted(entry.digests.items()))
    if entry.images:
        out["image"] = dict(sorted(entry.images.items()))
    if entry.pins.packages:
        out["packages"] = {
            platform: [f"{name}={version}" for name, version in sorted(versions.items())]
            for platform, versions in sorted(entry.pins.packages.items())
        }
    if entry.pins.pip:
        out["pip"] = {platform: sorted(lines) for platform, lines in sorted(entry.pins.pip.items())}
    return out


def stale_entries(
    lock: Lock | None, variant: str, expected: Mapping[str, str], platforms: Iterable[str]
) -> dict[str, str]:
    """name -> why its lock entry cannot be used: missing, made from other inputs, or lacking a
    platform. `expected` maps each image (and root) to its unpinned content hash."""
    entries = lock.entries(variant) if lock else _EMPTY
    problems = {}
    for name, inputs in expected.items():
        entry = entries.get(name)
        if entry is None:
            problems[name] = "not in the lock"
        elif entry.inputs != inputs:
            problems[name] = "its recipe or an ancestor changed since the lock was made"
        else:
            missing = [p for p in platforms if p not in entry.pins.packages and p not in entry.digests]
            if missing:
                problems[name] = f"no pins for {', '.join(missing)}"
    return problems


def pins(lock: Lock, variant: str) -> dict[str, ImagePins]:
    return {name: entry.pins for name, entry in lock.entries(variant).items()}


# --- what `kbuild lock` reads back from the images -------------------------------------------


def parse_installed(text: str) -> dict[str, str]:
    """`name=version` lines (the family's list_installed output) -> name -> version."""
    out = {}
    for line in text.splitlines():
        name, sep, version = line.strip().partition("=")
        if sep and name and version:
            out[name] = version
    return out


def own_packages(installed: Mapping[str, str], parent: Mapping[str, str]) -> dict[str, str]:
    """What an image's own layers installed or changed, compared with its parent."""
    return {name: version for name, version in installed.items() if parent.get(name) != version}


def pip_pins(report: Mapping[str, Any]) -> tuple[str, ...]:
    """`pip install --report` -> requirement lines with the sha256 of what was installed. A direct
    reference (a vendor's fork by URL or archive) stays one, so a locked build never asks PyPI."""
    lines = []
    for item in report.get("install", []):
        metadata = item.get("metadata", {})
        name, version = metadata.get("name"), metadata.get("version")
        download = item.get("download_info", {})
        hashes = download.get("archive_info", {}).get("hashes", {})
        if not (name and version and "sha256" in hashes):
            raise KbuildError(
                f"pip installed {download.get('url', name)} without a sha256 to lock it by",
                hint="a git source cannot be locked: point pip() at an archive URL with #sha256=...",
            )
        requirement = (
            f"{name} @ {download['url'].split('#')[0]}" if item.get("is_direct") else f"{name}=={version}"
        )
        lines.append(f"{requirement} --hash=sha256:{hashes['sha256']}")
    return tuple(sorted(lines))
