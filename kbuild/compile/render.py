"""Stage 5: catalog x selection x request -> Dockerfile text and build-context files per image.

The Dockerfile skeleton is a jinja2 template; everything family-specific (install, clean-up,
users, repositories) comes from the family() and distro() declarations under distros/.
"""

from __future__ import annotations

import functools
import itertools
import json
import posixpath
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import jinja2

from kbuild.compile.lock import ImagePins
from kbuild.compile.names import ParentRef, PinnedImage, TargetRef, probe_name, root_name
from kbuild.compile.select import Request, Selection
from kbuild.errors import KbuildError
from kbuild.model.catalog import BLOCKS, Catalog, ContextFile, Distro, Family, Image, Settings, check_text
from kbuild.model.files import cache_dir
from kbuild.model.schemas import Pip, User

# Bump when rendering changes what an image contains: it is part of every image's content hash.
RENDERER_VERSION = "4"

# Where a source install's `pip install --report` goes: the lock reads pins and hashes from it.
PIP_REPORTS = "/var/lib/kbuild/pip"

NO_PINS = ImagePins()

# Every RUN of an image goes through this shell: the command, then whatever the step created or
# changed (its ctime is from this step) with a time after SOURCE_DATE_EPOCH is set to it. Each
# layer is then the same bytes on every build, as the exporter's `rewrite-timestamp` would make
# it, without that rewriting every ancestor's layers again for every image exported. Mount points
# (/proc, /sys, /etc/hosts, BuildKit's bind mounts) are not in the layer and are left alone.
CLAMP = (
    'kbuild_since=$(($(date +%s) - 1)) && (eval "$1") && set -- '
    '&& while read -r _ _ _ _ point _; do [ "$point" = / ] || set -- "$@" -path "$point" -prune -o; done'
    " < /proc/self/mountinfo"
    ' && find / -xdev "$@" -newerct "@$kbuild_since" -newermt "@$SOURCE_DATE_EPOCH"'
    ' -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +'
)
CLAMPING_SHELL = json.dumps(["/bin/sh", "-c", CLAMP, "kbuild-run"])
DEFAULT_SHELL = json.dumps(["/bin/sh", "-c"])  # what an image built on ours runs with

# Where a step that installs the image's context files sees its build context.
CONTEXT_MOUNT = "/mnt"

# Block instructions that make a layer outside the clamping shell (ADD, COPY, WORKDIR), replace
# it (SHELL), or run later steps as a user who may not reset every time (USER). An image with
# one is exported with its timestamps rewritten instead (see `RenderedImage.clamped`).
UNCLAMPED = frozenset({"ADD", "COPY", "SHELL", "USER", "WORKDIR"})


@dataclass(frozen=True)
class RenderedImage:
    """One bake target. `parent` is the build context named in FROM and `parent_ref` where it
    comes from: another target or an image pinned by digest. A root made by debootstrap has
    `rootfs` set to the key of its tarball directory and no files of its own."""

    name: str
    dockerfile: str
    files: Mapping[str, Path]  # name in the build context -> source file
    parent: str | None  # named context of FROM, or None for FROM scratch
    parent_ref: ParentRef | None
    rootfs: str | None = None
    image: Image | None = None  # None for distro roots
    labels: Mapping[str, str] = field(default_factory=dict)  # OCI and workspace labels
    probe: bool = False  # reports what its parent has installed (for `kbuild lock`)
    platforms: tuple[str, ...] = ()  # what it is built for (an overlay may disable some); () = all
    clamped: bool = True  # every layer it makes has its timestamps set at build time (CLAMP)


@dataclass(frozen=True)
class Rendered:
    request: Request
    targets: tuple[RenderedImage, ...]  # parents first; roots before the images on them
    args: Mapping[str, str]  # build arguments of every target (SOURCE_DATE_EPOCH among them)


def build_args(settings: Settings, epoch: int | None = None) -> dict[str, str]:
    """The build arguments of every target: the settings' and SOURCE_DATE_EPOCH (a lock's wins)."""
    chosen = settings.source_date_epoch if epoch is None else epoch
    return {**settings.build_args, "SOURCE_DATE_EPOCH": str(chosen)}


def render(
    catalog: Catalog,
    selection: Selection,
    request: Request,
    args: Mapping[str, str],
    pins: Mapping[str, ImagePins] | None = None,
) -> Rendered:
    """Render every selected image with the build arguments of every target; `pins` (from the
    lock) fix package and pip versions."""
    distro = catalog.distros[request.distro]
    family = catalog.families[distro.family]
    root = distro.roots[request.release]
    targets: list[RenderedImage] = []
    if root.kind == "debootstrap" and any(catalog.images[n].parent is None for n in selection.images):
        targets.append(_render_root(distro, request.release))
    for name in selection.images:
        image_pins = (pins or {}).get(name, NO_PINS)
        target = _render_image(catalog, catalog.images[name], distro, family, request, image_pins)
        targets.append(replace(target, platforms=selection.platforms.get(name, request.platforms)))
    return Rendered(request, tuple(targets), dict(sorted(args.items())))


def _render_root(distro: Distro, release: str) -> RenderedImage:
    name = root_name(distro.name, release)
    dockerfile = (
        f"# {name}: the {distro.name} {release} root made by debootstrap, one tarball per architecture.\n"
        "FROM scratch\nARG SOURCE_DATE_EPOCH\nARG TARGETARCH\nADD rootfs-${TARGETARCH}.tar.gz /\n"
    )
    return RenderedImage(name, dockerfile, {}, None, None, rootfs=f"{distro.name}-{release}")


def _render_image(
    catalog: Catalog, image: Image, distro: Distro, family: Family, request: Request, pins: ImagePins
) -> RenderedImage:
    check_text(image)  # a located error before dockerfile_quote's last line of defence
    if image.parent is not None:
        parent, parent_ref = image.parent, TargetRef(image.parent)
    else:
        root = distro.roots[request.release]
        parent = root_name(distro.name, request.release)
        parent_ref = PinnedImage(root.ref) if root.kind == "upstream" else TargetRef(parent)
    packages = _family_packages(image, distro.family, request.type)
    inherited = _inherited_user(catalog, image)
    user = image.user or inherited
    source = image.source if request.type == "source" else None
    arches = {p: catalog.platforms[p].buildkit_arch for p in request.platforms}
    package_pins = _package_pins(family, pins)
    pip_pins = pins.pip if source else {}
    text = _template().render(
        name=image.name,
        variant=request.variant,
        per_arch=any(_split_by_arch(pinned, arches)[1] for pinned in (package_pins, pip_pins)),
        origin=image.location.path,
        parent=parent,
        env=_env(catalog, image, request),
        labels=dict(sorted(image.labels.items())),
        inherited_user=inherited is not None,
        repositories=distro.repositories if image.parent is None else (),
        install=_install(family, packages, package_pins, arches, image.clean),
        add_user=_add_user(family, image.user) if image.user else "",
        clamping_shell=CLAMPING_SHELL,
        default_shell=DEFAULT_SHELL,
        context_mount=CONTEXT_MOUNT,
        install_files=_install_files(
            image, {n: f.destination for n, f in _context_files(image, request).items()}
        ),
        pip_install=_pip_install(source, image.name, pip_pins, arches) if source else "",
        blocks={block: "\n".join(image.blocks.get(block, ())) for block in BLOCKS},
        user=user.name if user else "",
    )
    files = {name: catalog.root / f.source for name, f in _context_files(image, request).items()}
    labels = {
        **catalog.settings.labels,
        "org.opencontainers.image.title": image.name,
        "org.opencontainers.image.description": image.description,
        "org.opencontainers.image.vendor": "kbuild",
    }
    return RenderedImage(
        image.name,
        _tidy(text),
        files,
        parent,
        parent_ref,
        image=image,
        labels=labels,
        clamped=_clamped(image),
    )


def _install_files(image: Image, destinations: Mapping[str, str]) -> str:
    """The step that installs the context files (name -> destination) from the context mounted at
    CONTEXT_MOUNT as COPY would: mode kept, owned by root, missing directories made. It is a RUN,
    not a COPY, so that the clamping shell sets its timestamps."""
    if not destinations:
        return ""
    for destination in destinations.values():
        if (destination.rstrip("/") + "/").startswith(CONTEXT_MOUNT + "/"):
            raise KbuildError(
                f"image '{image.name}': a context file cannot go to {destination}",
                image.location,
                f"{CONTEXT_MOUNT} is where the build context is mounted while the files are installed;"
                " choose another directory",
            )
    targets = {
        name: destination + posixpath.basename(name) if destination.endswith("/") else destination
        for name, destination in destinations.items()
    }
    directories = sorted({posixpath.dirname(target) for target in targets.values()})
    steps = ["mkdir -p " + " ".join(shlex.quote(d) for d in directories)]
    steps += [
        f"cp --preserve=mode --remove-destination {shlex.quote(f'{CONTEXT_MOUNT}/{name}')} {shlex.quote(target)}"
        for name, target in targets.items()
    ]
    return " \\\n    && ".join(steps)


def _clamped(image: Image) -> bool:
    """Whether every layer of the image goes through the clamping shell: no block instruction in
    UNCLAMPED, and no RUN in exec form (`RUN ["..."]` runs without a shell)."""
    for line in itertools.chain.from_iterable(image.blocks.values()):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        keyword = words[0].upper()
        command = list(itertools.dropwhile(lambda word: word.startswith("--"), words[1:]))
        if keyword in UNCLAMPED or (keyword == "RUN" and command and command[0].startswith("[")):
            return False
    return True


def add_probes(rendered: Rendered, family: Family, only: Iterable[str] | None = None) -> Rendered:
    """One probe per image and root (or those `only` names): a target on top of it whose only
    output is what it has installed (the family's list) and what its own pip install resolved to."""
    probes = []
    chosen = None if only is None else set(only)
    for item in rendered.targets:
        if chosen is not None and item.name not in chosen:
            continue
        dockerfile = (
            f"# What {item.name} has installed, for kbuild.lock.\n"
            f"FROM {item.name}\nUSER root\n"
            f"RUN mkdir -p /kbuild-probe && ({family.list_installed}) | LC_ALL=C sort > /kbuild-probe/packages \\\n"
            f"    && if [ -f {PIP_REPORTS}/{item.name}.json ]; then cp {PIP_REPORTS}/{item.name}.json /kbuild-probe/pip.json; fi\n"
            "FROM scratch\nCOPY --from=0 /kbuild-probe/ /\n"
        )
        probes.append(
            RenderedImage(probe_name(item.name), dockerfile, {}, item.name, TargetRef(item.name), probe=True)
        )
    return Rendered(rendered.request, rendered.targets + tuple(probes), rendered.args)


@functools.cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("kbuild.compile", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        bytecode_cache=_bytecode_cache(),
    )
    environment.filters["quoted"] = dockerfile_quote
    return environment.get_template("Dockerfile.j2")


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """The template compiled to Python once, not on every run (jinja2 checks it against the
    template's text); none where the cache directory cannot be made."""
    directory = cache_dir() / "templates"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(directory))


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # a tab is fine inside quotes


def dockerfile_quote(value: str) -> str:
    """A Dockerfile word in double quotes: `\\`, `"` and `$` escaped, so nothing is substituted
    or ends the word. A control character (a newline would start a new instruction) is refused:
    the catalog rejects them with a location first; this is the last line of defence."""
    if _CONTROL.search(value):
        raise KbuildError(
            f"a control character in a value for the Dockerfile: {value!r}", hint="remove it from the recipe"
        )
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


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


def _install(
    family: Family,
    packages: list[str],
    pinned: Mapping[str, list[str]],
    arches: Mapping[str, str],
    clean: Sequence[str] = (),
) -> str:
    """The family's install command. Locked, it installs exactly the versions the lock recorded
    for this image (its packages and their dependencies), per architecture where they differ.
    The image's own clean-up (`clean`) and then the family's run in the same layer: what a
    package's scripts leave that differs from build to build never reaches a layer, nor what the
    image's clean-up leaves behind (debconf's `-old` copies)."""
    if pinned:
        common, own = _split_by_arch(pinned, arches)
        per_arch = {arch: "echo " + shlex.quote(" ".join(items)) for arch, items in own.items()}
        packages = common + ([f"$({_arch_case(per_arch)})"] if per_arch else [])
    if not packages:
        return ""
    listed = " \\\n        ".join(packages)
    command = _fill(family.install, packages=f"\\\n        {listed}")
    return " \\\n    && ".join([command, *clean, *([family.clean] if family.clean else [])])


def _package_pins(family: Family, pins: ImagePins) -> dict[str, list[str]]:
    """platform -> `name=version` in the family's spelling."""
    return {
        platform: [
            _fill(family.pin, name=name, version=version) for name, version in sorted(versions.items())
        ]
        for platform, versions in pins.packages.items()
    }


def _split_by_arch(
    per_platform: Mapping[str, Iterable[str]], arches: Mapping[str, str]
) -> tuple[list[str], dict[str, list[str]]]:
    """The items every requested platform has, and per architecture the rest."""
    if not per_platform:
        return [], {}
    sets = [set(per_platform.get(platform, ())) for platform in arches]
    common = set.intersection(*sets)
    own = {arches[p]: sorted(set(per_platform.get(p, ())) - common) for p in arches}
    return sorted(common), {arch: items for arch, items in own.items() if items}


def _arch_case(commands: Mapping[str, str]) -> str:
    """A shell `case` on BuildKit's TARGETARCH, so one Dockerfile serves every platform."""
    branches = " ".join(f"{arch}) {command} ;;" for arch, command in sorted(commands.items()))
    return f'case "$TARGETARCH" in {branches} esac'


def _add_user(family: Family, user: User) -> str:
    return _fill(
        family.add_user,
        name=user.name,
        uid=user.uid,
        gid=user.gid,
        home=user.home,
        shell=user.shell,
        groups=",".join(user.groups),
    )


def _pip_install(
    source: Pip, image: str, pinned: Mapping[str, tuple[str, ...]], arches: Mapping[str, str]
) -> str:
    """Install into the venv. Unlocked, pip resolves and reports what it chose; locked, it installs
    exactly the locked requirements, each checked against its recorded sha256."""
    venv = shlex.quote(source.venv)
    # A venv without pip (base's /var/lib/kolla/venv is one) is made whole, one with pip kept.
    steps = [f"(test -x {venv}/bin/pip || python3 -m venv {venv})", f"mkdir -p {PIP_REPORTS}"]
    report = f"--report {PIP_REPORTS}/{image}.json"
    if pinned:
        common, own = _split_by_arch(pinned, arches)
        per_arch = {arch: _printf_lines(items) for arch, items in own.items()}
        listed = _printf_lines(common) + (f"; {_arch_case(per_arch)}" if per_arch else "")
        steps.append(f"({listed}) > /tmp/kbuild-requirements.txt")
        steps.append(
            f"{venv}/bin/pip install --no-cache-dir --require-hashes --no-deps {report}"
            " -r /tmp/kbuild-requirements.txt && rm /tmp/kbuild-requirements.txt"
        )
    elif source.requirements:
        requirements = " ".join(shlex.quote(r) for r in source.requirements)
        constrain = ""
        if source.constraints:
            steps.append(f"{_printf_lines(source.constraints)} > /tmp/kbuild-constraints.txt")
            constrain = " -c /tmp/kbuild-constraints.txt"
        steps.append(f"{venv}/bin/pip install --no-cache-dir {report}{constrain} {requirements}")
    return " \\\n    && ".join(steps)


def _printf_lines(lines: Iterable[str]) -> str:
    return "printf '%s\\n' " + " ".join(shlex.quote(line) for line in lines)


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
