# haproxy's kolla_extend_start snippet (as root): the log directory and the admin socket's
# directory (a tmpfs /run).
mkdir -p /var/log/kolla/haproxy /run/haproxy
