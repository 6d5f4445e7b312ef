# glance-base's kolla_extend_start snippet: the service's log directory in the log volume.
mkdir -p /var/log/kolla/glance
