#!/bin/bash
# keystone's kolla_extend_start snippet (sourced by base's kolla_extend_start, as user keystone):
# the one-shot modes of Kolla's image API. Each syncs the schema and ends the container.
if [[ -n "${KOLLA_BOOTSTRAP+set}" ]]; then
    keystone-manage db_sync
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
