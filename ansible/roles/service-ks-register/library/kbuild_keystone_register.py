"""Registers a service in keystone in one call: domains, roles, projects, the catalog services
with their endpoints, and users with their role assignments.

One module (openstacksdk, one authentication) instead of a task per item: a deploy that finds
everything in place makes about a dozen GETs and reports no change. Passwords come in as
no_log module options, never on a command line or in a container's environment.
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: kbuild_keystone_register
short_description: Ensure keystone domains, roles, projects, services, endpoints and users
options:
  auth: {type: dict, required: true, no_log: true, description: keystoneauth password options}
  region: {type: str, required: true}
  domains: {type: list, elements: str, default: []}
  roles: {type: list, elements: str, default: []}
  projects: {type: list, elements: dict, default: [], description: "name, domain"}
  services:
    type: list
    elements: dict
    default: []
    description: "name, type, description, endpoints (interface -> url)"
  users:
    type: list
    elements: dict
    default: []
    no_log: true
    description: >-
      name, domain (Default), password (omitted: the user must exist and keeps its password),
      project (the roles are given on it; omitted: on the user's domain), roles
"""


def _ensure_password(conn, module, user, entry, auth):
    """True when the password had to be set: tried first by authenticating as the user."""
    from keystoneauth1 import exceptions, session
    from keystoneauth1.identity import v3

    probe = v3.Password(
        auth_url=auth["auth_url"],
        username=entry["name"],
        password=entry["password"],
        user_domain_id=user.domain_id,
        unscoped=True,
    )
    try:
        session.Session(auth=probe).get_token()
        return False
    except exceptions.Unauthorized:
        if not module.check_mode:
            conn.identity.update_user(user, password=entry["password"])
        return True


def run(module):
    import openstack

    params = module.params
    auth = params["auth"]
    conn = openstack.connect(
        auth=auth, region_name=params["region"], interface="internal", auth_type="password"
    )
    identity = conn.identity
    changed = []

    def ensure(kind, finder, creator, name, **attrs):
        found = finder(name, **{k: v for k, v in attrs.items() if k == "domain_id"})
        if found is None:
            changed.append(f"{kind} {name}")
            if module.check_mode:
                return None
            found = creator(name=name, **attrs)
        return found

    domains = {"Default": identity.find_domain("default", ignore_missing=False)}
    for name in params["domains"]:
        domains[name] = ensure("domain", identity.find_domain, identity.create_domain, name)
    roles = {}
    wanted_roles = set(params["roles"]) | {r for u in params["users"] for r in u.get("roles") or []}
    for name in sorted(wanted_roles):
        roles[name] = ensure("role", identity.find_role, identity.create_role, name)
    projects = {}
    for entry in params["projects"]:
        domain = domains[entry.get("domain") or "Default"]
        projects[entry["name"]] = ensure(
            "project", identity.find_project, identity.create_project, entry["name"], domain_id=domain.id
        )

    for entry in params["services"]:
        service = next(
            (s for s in identity.services() if s.name == entry["name"] and s.type == entry["type"]), None
        )
        if service is None:
            changed.append(f"service {entry['name']}")
            if module.check_mode:
                continue
            service = identity.create_service(
                name=entry["name"],
                type=entry["type"],
                description=entry.get("description", ""),
                is_enabled=True,
            )
        existing = list(identity.endpoints(service_id=service.id, region_id=params["region"]))
        for interface, url in sorted(entry["endpoints"].items()):
            matching = [e for e in existing if e.interface == interface]
            if any(e.url == url for e in matching):
                continue
            changed.append(f"endpoint {entry['name']} {interface}")
            if module.check_mode:
                continue
            if matching:
                identity.update_endpoint(matching[0], url=url)
            else:
                identity.create_endpoint(
                    service_id=service.id, interface=interface, url=url, region_id=params["region"]
                )

    for entry in params["users"]:
        domain = domains[entry.get("domain") or "Default"]
        user = identity.find_user(entry["name"], domain_id=domain.id)
        if user is None:
            if "password" not in entry:
                module.fail_json(msg=f"user {entry['name']} does not exist in domain {domain.name}")
            changed.append(f"user {entry['name']}")
            if module.check_mode:
                continue
            user = identity.create_user(
                name=entry["name"], password=entry["password"], domain_id=domain.id, is_enabled=True
            )
        elif "password" in entry and _ensure_password(conn, module, user, entry, auth):
            changed.append(f"password of {entry['name']}")
        if entry.get("project"):
            scope = projects.get(entry["project"]) or identity.find_project(
                entry["project"], domain_id=domain.id, ignore_missing=False
            )
            has, assign = identity.validate_user_has_project_role, identity.assign_project_role_to_user
        else:
            scope = domain
            has, assign = identity.validate_user_has_domain_role, identity.assign_domain_role_to_user
        for name in entry.get("roles") or []:
            if not has(scope, user, roles[name]):
                changed.append(f"role {name} of {entry['name']} on {scope.name}")
                if not module.check_mode:
                    assign(scope, user, roles[name])
    return changed


def main():
    module = AnsibleModule(
        argument_spec=dict(
            auth=dict(type="dict", required=True, no_log=True),
            region=dict(type="str", required=True),
            domains=dict(type="list", elements="str", default=[]),
            roles=dict(type="list", elements="str", default=[]),
            projects=dict(type="list", elements="dict", default=[]),
            services=dict(type="list", elements="dict", default=[]),
            users=dict(type="list", elements="dict", default=[], no_log=True),
        ),
        supports_check_mode=True,
    )
    try:
        import openstack  # noqa: F401
    except ImportError:
        module.fail_json(
            msg="openstacksdk is missing from the Python that runs this module (ansible_playbook_python)"
        )
    try:
        changed = run(module)
    except Exception as error:  # an API error: say which, never the options (they hold passwords)
        module.fail_json(msg=f"keystone registration failed: {type(error).__name__}: {error}")
    module.exit_json(changed=bool(changed), what=changed)


if __name__ == "__main__":
    main()
