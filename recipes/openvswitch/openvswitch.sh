# openvswitch-base's kolla_extend_start snippet (as root): the log directory, and the run
# directory the database socket goes in (shared by the two containers).
mkdir -p /var/log/kolla/openvswitch /run/openvswitch
