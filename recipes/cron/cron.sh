# cron's kolla_extend_start snippet (as root): the log directory, and logrotate's state file
# kept in it so a new container carries on from the last rotation.
mkdir -p /var/log/kolla/cron
