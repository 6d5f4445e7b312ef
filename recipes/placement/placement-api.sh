# placement-api's kolla_extend_start snippet: Kolla's one-shot modes. Each ends the container.
# Placement's migrations are additive, so an upgrade is the same sync.
if [[ -n "${KOLLA_BOOTSTRAP+set}" || -n "${KOLLA_UPGRADE+set}" ]]; then
    placement-manage db sync
    exit 0
fi
# Kolla's online data migrations, once every service runs the new code.
if [[ -n "${KOLLA_OSM+set}" || -n "${KOLLA_FINISH_UPGRADE+set}" ]]; then
    placement-manage db online_data_migrations
    exit 0
fi
