# keystone-ssh's kolla_extend_start snippet (as root): sshd's privilege-separation directory (on a
# tmpfs /run), and keystone's .ssh, which the deployment fills with the fernet keys' key and sshd
# wants private.
mkdir -p /run/sshd
chmod 0755 /run/sshd
ssh-keygen -A  # this host's keys, made once per container (the image has none)
if [[ -d /var/lib/keystone/.ssh ]]; then
    chown -R keystone:keystone /var/lib/keystone/.ssh
    chmod 0700 /var/lib/keystone/.ssh
fi
