"""Shared fixtures: a tiny valid workspace that a test copies and then breaks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _parse_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests parse thousands of generated recipes: their trees go to a cache of the session's own."""
    os.environ.setdefault("KBUILD_PARSE_CACHE", str(tmp_path_factory.mktemp("parsed")))


# A complete, valid workspace, small on purpose (not the real catalogue): one family, one distro,
# one platform, settings, a profile, a macro file and a few images. Tests add or replace files.
MINIMAL_WORKSPACE: Mapping[str, str] = {
    "distros/families.kb": """\
family(
    name = "deb",
    install = "apt-get install -y {packages}",
    add_user = "useradd --uid {uid} {name}",
)
""",
    "distros/debian.kb": """\
distro(
    name = "debian",
    family = "deb",
    releases = ["bookworm"],
    root = debootstrap(variant = "minbase"),
)
""",
    "platforms/linux.kb": """\
platform(name = "linux/amd64", arch = {"deb": "amd64"})
""",
    "BUILD/settings.kb": """\
settings(distro = "debian", platforms = ["linux/amd64"])
""",
    "BUILD/profiles.kb": """\
profile(name = "core", images = ["^base$", "^keystone"])
""",
    "recipes/lib/macros.kb": """\
COMMON_PACKAGES = ["curl", "less"]
DEFAULT_ENV = {"LANG": "C.UTF-8"}
_SECRET = "private"

def service(name, parent, packages = []):
    image(name = name, parent = parent, packages = {"deb": COMMON_PACKAGES + packages})
""",
    "recipes/base/base.kb": """\
load("//recipes/lib/macros.kb", "COMMON_PACKAGES", "DEFAULT_ENV")

image(
    name = "base",
    packages = {"deb": COMMON_PACKAGES},
    env = DEFAULT_ENV,
)
""",
    "recipes/keystone/keystone.kb": """\
load("//recipes/lib/macros.kb", "service")

image(
    name = "keystone-base",
    parent = "base",
    files = {"start.sh": "/usr/local/bin/start"},
)
service("keystone", "keystone-base", packages = ["apache2"])
""",
    "recipes/keystone/start.sh": "#!/bin/sh\nexec keystone\n",
}

MakeWorkspace = Callable[..., Path]


def make_workspace(root: Path, files: Mapping[str, str | bytes | None] | None = None) -> Path:
    """Write MINIMAL_WORKSPACE under `root`, then `files` over it (None deletes a file)."""
    for path, content in {**MINIMAL_WORKSPACE, **(files or {})}.items():
        target = root / path
        if content is None:
            target.unlink(missing_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    return root


@pytest.fixture
def workspace_factory(tmp_path: Path) -> MakeWorkspace:
    """A factory: `workspace_factory({"recipes/x/x.kb": "..."})` -> the root of a fresh copy."""
    counter = iter(range(1_000_000))

    def make(files: Mapping[str, str | bytes | None] | None = None) -> Path:
        return make_workspace(tmp_path / f"ws{next(counter)}", files)

    return make


def run_kbuild(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m kbuild ARGS` as a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "kbuild", *map(str, args)],
        capture_output=True,
        encoding="utf-8",
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        cwd=cwd,
        timeout=60,
        check=False,
    )


def docker(
    *args: str, check: bool = True, timeout: float = 120, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The docker CLI; with `check`, a failure fails the test with what docker said."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, input=stdin)
    if check:
        assert result.returncode == 0, f"docker {' '.join(args)}: {result.stdout}{result.stderr}"
    return result


@dataclass(frozen=True)
class Baked:
    """A profile baked once per test session, pushed to a namespace of its own."""

    build_dir: Path
    images: dict[str, str]  # image name -> pinned reference (repository@sha256:...)

    @property
    def manifest(self) -> Path:
        """The manifest for Ansible (`kbuild deploy --manifest`)."""
        return self.build_dir / "kbuild-manifest.yml"

    def pull(self, *names: str) -> dict[str, str]:
        """Pull these images into the engine; name -> pinned reference."""
        for name in names:
            docker("pull", "--quiet", self.images[name], timeout=900)
        return {name: self.images[name] for name in names}


@pytest.fixture(scope="session")
def default_images(tmp_path_factory: pytest.TempPathFactory) -> Baked:
    """Kolla's `default` profile, baked once for every real test that runs images (images already
    in the registry are found by their content hash, so this is quick on a warm machine)."""
    build_dir = tmp_path_factory.mktemp("default") / "build"
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    bake = subprocess.run(
        [sys.executable, "-m", "kbuild", "bake", "-p", "default", "--push", "--namespace", namespace,
         "--build-dir", str(build_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=4 * 3600,
    )  # fmt: skip
    assert bake.returncode == 0, bake.stdout[-3000:] + bake.stderr[-3000:]
    print(f"bake -p default: {time.monotonic() - started:.1f} s")
    manifest = json.loads((build_dir / "kbuild-manifest.json").read_text())
    return Baked(build_dir, {name: image["pinned"] for name, image in manifest["images"].items()})
