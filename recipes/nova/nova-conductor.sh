# nova-conductor's kolla_extend_start snippet: Kolla's one-shot modes for the database of the
# conductor's own cell (nova-api bootstraps the API database and the cell mappings).
if [[ -n "${KOLLA_BOOTSTRAP+set}" || -n "${KOLLA_UPGRADE+set}" ]]; then
    nova-manage db sync --local_cell
    exit 0
fi
if [[ -n "${KOLLA_OSM+set}" ]]; then
    nova-manage db online_data_migrations
    exit 0
fi
