# nova-ssh's kolla_extend_start snippet (as root): sshd's privilege-separation directory (on a
# tmpfs /run), and nova's .ssh, which kolla-ansible fills with the keys and sshd wants private.
mkdir -p /run/sshd
chmod 0755 /run/sshd
ssh-keygen -A  # this host's keys, made once per container (the image has none)
if [[ -d /var/lib/nova/.ssh ]]; then
    chown -R nova:nova /var/lib/nova/.ssh
    chmod 0700 /var/lib/nova/.ssh
fi
