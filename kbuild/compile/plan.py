"""Stage "plan": content hashes -> which images already exist and which must be built.

Every image kbuild publishes also carries a content-addressed tag, `kbuild-<hash>`, next to its
requested tag. Before baking, each selected image's hash tag is looked up: pushing, in the target
registry (the target repository first, then any repository of the same image name, so a new
namespace reuses what an old one built); loading, in the local image store. What is found is not
rebuilt: its children name it by digest (`docker-image://...`) and it is only re-tagged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from kbuild.compile.names import PinnedImage, TargetRef
from kbuild.compile.render import Rendered


@dataclass(frozen=True)
class Found:
    """An image that already exists with the wanted hash."""

    ref: str  # where it is: `registry/repo@sha256:...`, or a local `repo:kbuild-<hash>` tag
    digest: str  # its index digest
    local: bool  # in the engine's image store (else in a registry)
    # Found in the repository it is published to: what the finder learnt there with it, the
    # digest (None: no such tag) of other tags the bake reads (the requested tag, the SBOM's).
    tags: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def pinned(self) -> PinnedImage:
        """How a child names it."""
        return PinnedImage(self.ref)


@dataclass(frozen=True)
class Plan:
    hashes: Mapping[str, str]  # target -> content hash
    found: Mapping[str, Found]  # selected images not to rebuild
    to_bake: tuple[str, ...]  # targets to bake (images and the roots they need), parents first


# {image: content hash} -> {image: where it already is}, for those that are somewhere. One call
# for all images, so a finder can ask a registry about them all at once.
Finder = Callable[[Mapping[str, str]], Mapping[str, Found]]


def make_plan(rendered: Rendered, hashes: Mapping[str, str], find: Finder | None) -> Plan:
    """Look every selected image up (none with `find=None`: rebuild everything)."""
    wanted = {item.name: hashes[item.name] for item in rendered.targets if item.image is not None}
    found = dict(find(wanted)) if find is not None and wanted else {}
    needed: set[str] = set()
    for item in reversed(rendered.targets):  # children first, so a needed root is known in time
        if item.name in found:
            continue
        if item.image is not None or item.probe or item.name in needed:
            needed.add(item.name)
            if isinstance(item.parent_ref, TargetRef) and item.parent_ref.name not in found:
                needed.add(item.parent_ref.name)
    to_bake = tuple(item.name for item in rendered.targets if item.name in needed)
    return Plan(dict(hashes), found, to_bake)
