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

from kbuild.compile.hashing import rootfs_key
from kbuild.compile.lock import Lock
from kbuild.compile.pipeline import Compiled
from kbuild.engine.files import roots_dir
from kbuild.errors import KbuildError
from kbuild.model.schemas import Debootstrap

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


def prepare_roots(compiled: Compiled, say: Callable[[str], None], lock: Lock | None = None) -> None:
    """Make the debootstrap tarballs the planned root targets need, one per platform (cached).
    With a lock, a tarball must hold the packages the lock recorded."""
    request = compiled.request
    distro = compiled.catalog.distros[request.distro]
    epoch = int(compiled.rendered.args["SOURCE_DATE_EPOCH"])
    for target in compiled.rendered.targets:
        if target.rootfs is None or target.name not in compiled.plan.to_bake:
            continue
        root = distro.roots[request.release]
        assert isinstance(root, Debootstrap) and compiled.mirror is not None
        entry = lock.entries(request.variant).get(target.name) if lock else None
        for platform in request.platforms:
            spec = compiled.catalog.platforms[platform]
            arch = spec.arch[distro.family]
            directory = roots_dir() / target.rootfs
            tarball = ensure_rootfs(root, compiled.mirror, request.release, arch, directory, epoch, say)
            # The Dockerfile names tarballs by BuildKit's TARGETARCH; families may name arches differently.
            link = tarball.with_name(f"rootfs-{spec.buildkit_arch}.tar.gz")
            if link != tarball and not link.exists():
                link.symlink_to(tarball.name)
            if entry and entry.digests.get(platform) != tarball_digest(tarball):
                expected = entry.pins.packages.get(platform, {})
                if tarball_packages(tarball) != expected:
                    raise KbuildError(
                        f"the {target.name} tarball for {platform} ({tarball}) does not hold the packages "
                        "kbuild.lock recorded (the mirror moved since the lock was made)",
                        hint=f"move the lock with `kbuild lock --update {target.name}`",
                    )


def ensure_rootfs(
    root: Debootstrap,
    mirror: str,
    release: str,
    arch: str,
    directory: Path,
    epoch: int,
    say: Callable[[str], None] = print,
) -> Path:
    """Make `directory/rootfs-<arch>.tar.gz` unless a tarball of the same inputs is there."""
    tarball = directory / f"rootfs-{arch}.tar.gz"
    stamp = directory / f"rootfs-{arch}.key"
    key = rootfs_key(root, mirror, release, arch, epoch)
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
            # pax (for the capability xattrs) without the atime/ctime headers debootstrap's run
            # leaves: the same bytes on every machine from the same packages.
            f"tar --sort=name --mtime=@{epoch} --clamp-mtime --owner=0 --group=0 --numeric-owner "
            "--format=posix --pax-option=delete=atime,delete=ctime "
            f"--xattrs --xattrs-include='security.capability' -C {target} -cf - . | gzip -n > {partial}"
        )
        subprocess.run(["bash", "-o", "pipefail", "-c", tar], check=True, env={**os.environ, "GZIP": ""})
        os.replace(partial, tarball)
    stamp.write_text(key + "\n")
    return tarball
