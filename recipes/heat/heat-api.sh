# heat-api's kolla_extend_start snippet: Kolla's one-shot modes. Each ends the container.
# heat-manage db_sync is the upgrade too (heat has no expand/contract phases).
if [[ -n "${KOLLA_BOOTSTRAP+set}" || -n "${KOLLA_UPGRADE+set}" ]]; then
    heat-manage db_sync
    exit 0
fi
