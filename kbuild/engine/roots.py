"""Distro roots made locally: debootstrap one release for one architecture, into a tarball.

A root is made once and cached by (distro, release, architecture, debootstrap options, mirror),
then turned into a multi-arch `FROM scratch` bake target (see render.py). The tarball is
deterministic: sorted, owned by root, mtimes clamped, gzip without a timestamp.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from kbuild.model.schemas import Debootstrap
from kbuild.errors import KbuildError

APT_SOURCES = Path("/etc/apt")

# Left behind by debootstrap and apt; they differ from run to run.
VOLATILE = (
    "var/cache/apt/*.bin",
    "var/cache/apt/archives/*.deb",
    "var/lib/apt/lists/*",
    "var/log/*.log",
    "var/log/apt/*",
    "var/cache/ldconfig/aux-cache",
    "var/cache/debconf/*-old",
    "var/lib/dpkg/*-old",
    # Copied from the build host; the engine provides its own at run time.
    "etc/hostname",
    "etc/resolv.conf",
)


def host_mirror(apt_dir: Path = APT_SOURCES) -> str:
    """The Debian mirror the host's own apt uses (never hardcoded in kbuild)."""
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields = dict(
                _deb822_field(line)
                for line in stanza.splitlines()
                if ":" in line and not line.startswith((" ", "#"))
            )
            suites = fields.get("Suites", "").split()
            if "deb" in fields.get("Types", "").split() and any(_is_main_suite(s) for s in suites):
                return fields["URIs"].split()[0]
    for path in [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]:
        if path.is_file():
            for line in path.read_text().splitlines():
                words = [w for w in line.split() if not w.startswith("[")]
                if len(words) >= 3 and words[0] == "deb" and _is_main_suite(words[2]):
                    return words[1]
    raise KbuildError(
        "cannot find a Debian mirror in the host's apt sources",
        hint="set debootstrap(mirror = 'http://...') on the distro, or configure apt on this host",
    )


def _deb822_field(line: str) -> tuple[str, str]:
    key, _, value = line.partition(":")
    return key.strip(), value.strip()


def _is_main_suite(suite: str) -> bool:
    return re.fullmatch(r"[a-z]+", suite) is not None and suite not in ("sid", "experimental", "nodistro")


def rootfs_key(root: Debootstrap, release: str, arch: str, epoch: int) -> str:
    """What a tarball is made from; part of the root's content hash and the cache stamp."""
    mirror = root.mirror or host_mirror()
    facts = [
        release,
        arch,
        root.variant,
        ",".join(root.components),
        ",".join(root.include),
        mirror,
        str(epoch),
    ]
    return hashlib.sha256("\n".join(facts).encode()).hexdigest()[:16]


def tarball_digest(tarball: Path) -> str:
    """sha256 of a root tarball, remembered next to it (it only changes when it is remade)."""
    remembered = tarball.with_suffix(".sha256")
    if remembered.is_file() and remembered.stat().st_mtime_ns >= tarball.stat().st_mtime_ns:
        return remembered.read_text().strip()
    with tarball.open("rb") as handle:
        digest = "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()
    remembered.write_text(digest + "\n")
    return digest


def tarball_packages(tarball: Path) -> dict[str, str]:
    """name -> version of what dpkg installed in a root tarball."""
    with tarfile.open(tarball) as archive:
        member = archive.extractfile("./var/lib/dpkg/status")
        text = member.read().decode() if member else ""
    packages = {}
    for stanza in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " ")
        if fields.get("Status", "").endswith(" installed"):
            packages[fields["Package"]] = fields["Version"]
    return packages


def ensure_rootfs(
    root: Debootstrap,
    release: str,
    arch: str,
    directory: Path,
    epoch: int,
    say: Callable[[str], None] = print,
) -> Path:
    """Make `directory/rootfs-<arch>.tar.gz` unless a tarball of the same inputs is there."""
    mirror = root.mirror or host_mirror()
    tarball = directory / f"rootfs-{arch}.tar.gz"
    stamp = directory / f"rootfs-{arch}.key"
    key = rootfs_key(root, release, arch, epoch)
    if tarball.is_file() and stamp.is_file() and stamp.read_text().strip() == key:
        return tarball
    if shutil.which("debootstrap") is None:
        raise KbuildError(
            "debootstrap is not installed", hint="run scripts/setup-host.sh (or apt-get install debootstrap)"
        )
    directory.mkdir(parents=True, exist_ok=True)
    say(f"debootstrap {release} for {arch} from {mirror} (made once, then cached in {directory})")
    with tempfile.TemporaryDirectory(prefix=f"kbuild-root-{release}-{arch}-", dir=directory) as scratch:
        target = Path(scratch) / "root"
        command = [
            "debootstrap",
            f"--variant={root.variant}",
            f"--arch={arch}",
            f"--components={','.join(root.components)}",
        ]
        if root.include:
            command.append(f"--include={','.join(root.include)}")
        command += [release, str(target), mirror]
        # SOURCE_DATE_EPOCH: tools that stamp dates (shadow's last password change) use it.
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            log = directory / f"debootstrap-{arch}.log"
            log.write_text(result.stdout + result.stderr)
            raise KbuildError(
                f"debootstrap of {release} for {arch} failed (exit {result.returncode}); see {log}"
            )
        for pattern in VOLATILE:
            for path in target.glob(pattern):
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        partial = Path(scratch) / "rootfs.tar.gz"
        tar = (
            f"tar --sort=name --mtime=@{epoch} --clamp-mtime --owner=0 --group=0 --numeric-owner "
            f"--xattrs --xattrs-include='security.capability' -C {target} -cf - . | gzip -n > {partial}"
        )
        subprocess.run(["bash", "-o", "pipefail", "-c", tar], check=True, env={**os.environ, "GZIP": ""})
        os.replace(partial, tarball)
    stamp.write_text(key + "\n")
    return tarball
