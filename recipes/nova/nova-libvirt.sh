# nova-libvirt's kolla_extend_start snippet (as root): the log directory, and /dev/kvm usable by
# QEMU when the host passes it in (its group id differs from host to host).
mkdir -p /var/log/kolla/libvirt
if [[ -c /dev/kvm ]]; then
    chmod 0666 /dev/kvm
fi
