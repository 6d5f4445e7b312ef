# glance-api's kolla_extend_start snippet: Kolla's one-shot modes. Each ends the container.
if [[ -n "${KOLLA_BOOTSTRAP+set}" ]]; then
    glance-manage db_sync
    exit 0
fi
# A rolling upgrade: expand and migrate while the old services run, contract after.
if [[ -n "${KOLLA_UPGRADE+set}" ]]; then
    glance-manage db expand
    glance-manage db migrate
    exit 0
fi
if [[ -n "${KOLLA_FINISH_UPGRADE+set}" ]]; then
    glance-manage db contract
    exit 0
fi
