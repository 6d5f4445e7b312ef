# nova-compute's kolla_extend_start snippet: where instances live. A volume in deployments,
# so made at start; nova's home is group-shared with libvirt's qemu processes.
mkdir -p /var/lib/nova/instances
