# neutron-server's kolla_extend_start snippet: Kolla's one-shot modes. Each ends the container.
# neutron-db-manage reads the plugin's configuration too (its tables depend on it).
neutron_db_manage() {
    local options=(--config-file /etc/neutron/neutron.conf)
    if [[ -f /etc/neutron/plugins/ml2/ml2_conf.ini ]]; then
        options+=(--config-file /etc/neutron/plugins/ml2/ml2_conf.ini)
    fi
    neutron-db-manage "${options[@]}" "$@"
}
if [[ -n "${KOLLA_BOOTSTRAP+set}" ]]; then
    neutron_db_manage upgrade heads
    exit 0
fi
# A rolling upgrade: expand while the old servers run, contract once all run the new code.
if [[ -n "${KOLLA_UPGRADE+set}" ]]; then
    neutron_db_manage upgrade --expand
    exit 0
fi
if [[ -n "${KOLLA_FINISH_UPGRADE+set}" ]]; then
    neutron_db_manage upgrade --contract
    exit 0
fi
