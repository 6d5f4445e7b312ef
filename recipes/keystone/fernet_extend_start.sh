#!/bin/bash
# keystone-fernet's kolla_extend_start snippet (as root: cron runs the rotation). The first
# start on an empty key repository (the deployment's volume) creates the keys; cron rotates them.
if [[ -z "${KOLLA_BOOTSTRAP+set}${KOLLA_UPGRADE+set}${KOLLA_FINISH_UPGRADE+set}" ]]; then
    if [[ ! -s /etc/keystone/fernet-keys/0 ]]; then
        keystone-manage fernet_setup --keystone-user keystone --keystone-group keystone
    fi
fi
