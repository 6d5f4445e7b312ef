#!/bin/bash
# keystone's kolla_extend_start snippet (sourced by base's kolla_extend_start, as user keystone):
# the one-shot modes of Kolla's image API. Each syncs the schema and ends the container.
if [[ -n "${KOLLA_BOOTSTRAP+set}" ]]; then
    keystone-manage db_sync
    # Tokens need keys before the first one is issued; keystone-fernet rotates them later.
    if [[ ! -s /etc/keystone/fernet-keys/0 ]]; then
        keystone-manage fernet_setup --keystone-user keystone --keystone-group keystone
    fi
    # The admin user, project, role and catalog entry: keystone-manage reads its settings from
    # OS_BOOTSTRAP_* (given by the deployment), and the password from a file config.json copied
    # in, so that it is in no container's environment or command line.
    if [[ -f /etc/keystone/admin-password ]]; then
        OS_BOOTSTRAP_PASSWORD=$(< /etc/keystone/admin-password) keystone-manage bootstrap
    fi
    exit 0
fi
# A rolling upgrade: expand the schema while the old services still run, contract it after.
if [[ -n "${KOLLA_UPGRADE+set}" ]]; then
    keystone-manage db_sync --expand
    exit 0
fi
if [[ -n "${KOLLA_FINISH_UPGRADE+set}" ]]; then
    keystone-manage db_sync --contract
    exit 0
fi
