"""Filters of kbuild's playbooks: passwords and the configuration hash of a container."""

from __future__ import annotations

import hashlib
import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


def merge_passwords(existing, keys, length=32):
    """passwords.yml after a run: every key kept as it is, each missing key a new random value.

    Letters and digits only, so a password is safe in every file format it lands in (ini, cnf,
    JSON, a URL) without quoting."""
    merged = dict(existing or {})
    for key in keys:
        if not merged.get(key):
            merged[key] = "".join(secrets.choice(_ALPHABET) for _ in range(int(length)))
    return merged


def config_hash(container, results):
    """A digest of what a container reads: the checksums of the files templated for it.

    `results` are the loop results of a template task whose items are (service, file) as
    `subelements` makes them. The digest goes in a container label, so community.docker's own
    comparison recreates the container exactly when one of its files changed."""
    entries = sorted(
        (r["item"][1]["dest"], r["checksum"])
        for r in results
        if not r.get("skipped") and r["item"][0]["key"] == container
    )
    return hashlib.sha256(repr(entries).encode()).hexdigest()


def host_services(services, group_names):
    """The enabled entries of a `<service>_services` dict whose group this host is in, as
    dict2items gives them (`key`, `value`), sorted by name."""
    return [
        {"key": name, "value": service}
        for name, service in sorted(services.items())
        if service.get("enabled") and service.get("group") in group_names
    ]


def named_volumes(volumes):
    """The named volumes of a container's volume list (bind mounts start with a /)."""
    return [v.split(":", 1)[0] for v in volumes if v and not v.startswith("/")]


def container_summary(containers):
    """name, state and image (repository@digest) of each container docker_host_info listed."""
    return [
        {"name": c["Names"][0].lstrip("/"), "state": c["State"], "image": c["Image"]}
        for c in containers or []
    ]


class FilterModule:
    def filters(self):
        return {
            "kbuild_merge_passwords": merge_passwords,
            "kbuild_config_hash": config_hash,
            "kbuild_host_services": host_services,
            "kbuild_named_volumes": named_volumes,
            "kbuild_container_summary": container_summary,
        }
