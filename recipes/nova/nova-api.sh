# nova-api's kolla_extend_start snippet: Kolla's one-shot modes. Each ends the container.
# Bootstrap: the API database, then the cells nova needs: cell0 (instances that failed to
# schedule) and cell1, before the cell databases are synced. create_cell exits 2 when cell1
# exists already, so a second bootstrap is harmless.
if [[ -n "${KOLLA_BOOTSTRAP+set}" ]]; then
    nova-manage api_db sync
    nova-manage cell_v2 map_cell0
    nova-manage cell_v2 create_cell --name cell1 --verbose || [[ $? -eq 2 ]]
    nova-manage db sync
    exit 0
fi
if [[ -n "${KOLLA_UPGRADE+set}" ]]; then
    nova-manage api_db sync
    nova-manage db sync
    exit 0
fi
# Online data migrations, once every service runs the new code.
if [[ -n "${KOLLA_OSM+set}" || -n "${KOLLA_FINISH_UPGRADE+set}" ]]; then
    nova-manage db online_data_migrations
    exit 0
fi
