"""The stages chained: workspace -> catalog -> selection -> rendering -> bake file."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kbuild.bakefile import bake_file, dump_json, write_atomic, write_contexts
from kbuild.catalog import Catalog, load_catalog
from kbuild.render import Rendered, render
from kbuild.select import Request, Selection, make_request, select


@dataclass(frozen=True)
class Compiled:
    catalog: Catalog
    request: Request
    selection: Selection
    rendered: Rendered
    bake: dict[str, Any]


def compile_catalog(catalog: Catalog, build_dir: Path, **options: Any) -> Compiled:
    request = make_request(catalog, **options)
    selection = select(catalog, request)
    rendered = render(catalog, selection, request)
    return Compiled(catalog, request, selection, rendered, bake_file(rendered, selection, build_dir))


def compile_workspace(root: Path, build_dir: Path, overlays: Sequence[Path] = (), **options: Any) -> Compiled:
    return compile_catalog(load_catalog(root, overlays), build_dir, **options)


def write_build(compiled: Compiled, build_dir: Path, bake_path: Path) -> None:
    """Contexts first, the bake file last and atomically: a bake file never names missing contexts."""
    write_contexts(compiled.rendered, build_dir)
    write_atomic(bake_path, dump_json(compiled.bake))


def prepare_roots(compiled: Compiled, say: Callable[[str], None]) -> None:
    """Make the debootstrap tarballs the root targets need, one per platform (cached)."""
    from kbuild.bakefile import rootfs_dir
    from kbuild.roots import ensure_rootfs

    request = compiled.request
    distro = compiled.catalog.distros[request.distro]
    for target in compiled.rendered.targets:
        if target.rootfs is None:
            continue
        root = distro.roots[request.release]
        for platform in request.platforms:
            spec = compiled.catalog.platforms[platform]
            tarball = ensure_rootfs(
                root, request.release, spec.arch[distro.family], rootfs_dir(target.rootfs), 0, say
            )
            # The Dockerfile names tarballs by BuildKit's TARGETARCH; families may name arches differently.
            link = tarball.with_name(f"rootfs-{spec.buildkit_arch}.tar.gz")
            if link != tarball and not link.exists():
                link.symlink_to(tarball.name)
