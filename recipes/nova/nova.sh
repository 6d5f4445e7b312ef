# nova-base's kolla_extend_start snippet: the services' log directory in the log volume.
mkdir -p /var/log/kolla/nova
