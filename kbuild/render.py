"""Stage 5: catalog x selection x request -> Dockerfile text and build-context files per image.

The Dockerfile skeleton is a jinja2 template; everything family-specific (install, clean-up,
users, repositories) comes from the family() and distro() declarations under distros/.
"""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import jinja2

from kbuild import __version__
from kbuild.builtins import Pip, User
from kbuild.catalog import BLOCKS, Catalog, ContextFile, Distro, Family, Image
from kbuild.select import Request, Selection

# Bump when rendering changes what an image contains: it is part of every image's content hash.
RENDERER_VERSION = "1"


@dataclass(frozen=True)
class RenderedImage:
    """One bake target. `parent` is the build context named in FROM: another target
    (`target:NAME`) or a registry image (`docker-image://REF`). A root made by debootstrap has
    `rootfs` set to the key of its tarball directory and no files of its own."""

    name: str
    dockerfile: str
    files: Mapping[str, Path]  # name in the build context -> source file
    parent: str | None  # named context of FROM, or None for FROM scratch
    parent_source: str | None  # "target:NAME" or "docker-image://REF"
    rootfs: str | None = None
    image: Image | None = None  # None for distro roots
    platforms: tuple[str, ...] = ()  # what it is built for (an overlay may disable some); () = all


@dataclass(frozen=True)
class Rendered:
    request: Request
    targets: tuple[RenderedImage, ...]  # parents first; roots before the images on them


def root_name(distro: str, release: str) -> str:
    return f"{distro}-{release}-root"


def render(catalog: Catalog, selection: Selection, request: Request) -> Rendered:
    distro = catalog.distros[request.distro]
    family = catalog.families[distro.family]
    root = distro.roots[request.release]
    targets: list[RenderedImage] = []
    if root.kind == "debootstrap" and any(catalog.images[n].parent is None for n in selection.images):
        targets.append(_render_root(distro, request.release))
    for name in selection.images:
        target = _render_image(catalog, catalog.images[name], distro, family, request)
        targets.append(replace(target, platforms=selection.platforms.get(name, request.platforms)))
    return Rendered(request, tuple(targets))


def _render_root(distro: Distro, release: str) -> RenderedImage:
    name = root_name(distro.name, release)
    dockerfile = (
        f"# {name}: the {distro.name} {release} root made by debootstrap, one tarball per architecture.\n"
        "FROM scratch\nARG TARGETARCH\nADD rootfs-${TARGETARCH}.tar.gz /\n"
    )
    return RenderedImage(name, dockerfile, {}, None, None, rootfs=f"{distro.name}-{release}")


def _render_image(
    catalog: Catalog, image: Image, distro: Distro, family: Family, request: Request
) -> RenderedImage:
    if image.parent is not None:
        parent, parent_source = image.parent, f"target:{image.parent}"
    else:
        root = distro.roots[request.release]
        parent = root_name(distro.name, request.release)
        parent_source = f"docker-image://{root.ref}" if root.kind == "upstream" else f"target:{parent}"
    packages = _family_packages(image, distro.family, request.type)
    inherited = _inherited_user(catalog, image)
    user = image.user or inherited
    source = image.source if request.type == "source" else None
    text = _template().render(
        name=image.name,
        variant=request.variant,
        version=__version__,
        origin=image.location.path,
        parent=parent,
        env=_env(catalog, image, request),
        labels=dict(sorted(image.labels.items())),
        inherited_user=inherited is not None,
        repositories=distro.repositories if image.parent is None else (),
        install=_install(family, packages),
        add_user=_add_user(family, image.user) if image.user else "",
        files={name: f.destination for name, f in _context_files(image, request).items()},
        pip_install=_pip_install(source) if source else "",
        blocks={block: "\n".join(image.blocks.get(block, ())) for block in BLOCKS},
        user=user.name if user else "",
    )
    files = {name: catalog.root / f.source for name, f in _context_files(image, request).items()}
    return RenderedImage(image.name, _tidy(text), files, parent, parent_source, image=image)


@functools.cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("kbuild", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    return environment.get_template("Dockerfile.j2")


def _family_packages(image: Image, family: str, install_type: str) -> list[str]:
    chosen = list(image.packages.get(family, ()))
    if install_type == "binary":
        chosen += image.binary.get(family, ())
    elif image.source is not None:
        chosen += image.source.packages.get(family, ())
    return sorted(set(chosen))


def _inherited_user(catalog: Catalog, image: Image) -> User | None:
    for ancestor in catalog.ancestors(image.name):
        if catalog.images[ancestor].user is not None:
            return catalog.images[ancestor].user
    return None


def _env(catalog: Catalog, image: Image, request: Request) -> dict[str, str]:
    env = dict(sorted(image.env.items()))
    if request.type == "source" and image.source is not None:
        own_venv = image.source.venv
        inherited = any(
            catalog.images[a].source and catalog.images[a].source.venv == own_venv
            for a in catalog.ancestors(image.name)
        )
        if not inherited:
            env = {
                "PATH": f"{own_venv}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                **env,
            }
    return env


def _install(family: Family, packages: list[str]) -> str:
    if not packages:
        return ""
    listed = " \\\n        ".join(packages)
    command = _fill(family.install, packages=f"\\\n        {listed}")
    return f"{command} \\\n    && {family.clean}" if family.clean else command


def _add_user(family: Family, user: User) -> str:
    return _fill(
        family.add_user, name=user.name, uid=user.uid, gid=user.gid, home=user.home, shell=user.shell
    )


def _pip_install(source: Pip) -> str:
    venv = shlex.quote(source.venv)
    steps = [f"(test -d {venv} || python3 -m venv {venv})"]
    if source.requirements:
        requirements = " ".join(shlex.quote(r) for r in source.requirements)
        constrain = ""
        if source.constraints:
            listed = " ".join(shlex.quote(c) for c in source.constraints)
            steps.append(f"printf '%s\\n' {listed} > /tmp/kbuild-constraints.txt")
            constrain = " -c /tmp/kbuild-constraints.txt"
        steps.append(f"{venv}/bin/pip install --no-cache-dir{constrain} {requirements}")
    return " \\\n    && ".join(steps)


def _fill(template: str, **values: object) -> str:
    """Replace `{name}` placeholders only for the names given, so shell `${VAR}` text survives."""
    pattern = re.compile(r"\{(" + "|".join(values) + r")\}")
    return pattern.sub(lambda m: str(values[m.group(1)]), template)


def _context_files(image: Image, request: Request) -> dict[str, ContextFile]:
    """The image's context files for this install type (a source archive is for `source` only)."""
    return {name: f for name, f in image.files.items() if f.install_type in (None, request.type)}


def _tidy(text: str) -> str:
    lines: Iterable[str] = (line.rstrip() for line in text.splitlines())
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip("\n") + "\n"
