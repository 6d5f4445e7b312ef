# horizon's kolla_extend_start snippet (as root). The static files depend on the settings
# (enabled panels, themes), so they are collected and compressed again only when the settings
# changed since the last start, as Kolla's image does: it takes a while.
manage=/usr/share/openstack-dashboard/manage.py
if [[ ! -f "${manage}" ]]; then
    manage=$(command -v manage.py || true)
fi
mkdir -p /var/log/kolla/horizon
chown horizon:horizon /var/log/kolla/horizon

if [[ -n "${KOLLA_BOOTSTRAP+set}" ]]; then
    # Only needed for database-backed sessions; harmless otherwise.
    python3 "${manage}" migrate --noinput
    exit 0
fi

if [[ -n "${manage}" ]]; then
    settings_hash=/var/lib/kolla/.local_settings.sha256
    current=$(cat /etc/openstack-dashboard/local_settings.py /etc/openstack-dashboard/local_settings.d/*.py \
        2>/dev/null | sha256sum)
    if [[ ! -f "${settings_hash}" || "$(cat "${settings_hash}")" != "${current}" ]]; then
        python3 "${manage}" collectstatic --noinput --clear
        python3 "${manage}" compress --force
        echo "${current}" > "${settings_hash}"
    fi
fi
