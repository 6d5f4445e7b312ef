#!/bin/bash
# mariadb's kolla_extend_start snippet (sourced by base's kolla_extend_start, as user mysql).
# KOLLA_BOOTSTRAP on an empty datadir: create the system tables, then give root the password
# of the root.cnf that config.json copied in, on localhost and, as Kolla's bootstrap does, from
# any host (kolla-toolbox's modules and the other services' bootstraps connect over the network).
# The password goes to the server on stdin, never on a command line, and the server only listens
# on a private socket meanwhile.
if [[ -n "${KOLLA_BOOTSTRAP+set}" ]]; then
    if [[ ! -d /var/lib/mysql/mysql ]]; then
        mariadb-install-db --datadir=/var/lib/mysql --auth-root-authentication-method=normal \
            --skip-test-db > /dev/null
        bootstrap_socket=/tmp/mariadb-bootstrap.sock
        mariadbd --skip-networking --socket="${bootstrap_socket}" &
        bootstrap_pid=$!
        for _ in $(seq 60); do
            mariadb-admin --socket="${bootstrap_socket}" --user=root ping > /dev/null 2>&1 && break
            sleep 1
        done
        root_password=$(sed -n 's/^password *= *//p' /etc/mysql/root.cnf)
        mariadb --socket="${bootstrap_socket}" --user=root <<SQL
ALTER USER 'root'@'localhost' IDENTIFIED BY '${root_password}';
CREATE USER 'root'@'%' IDENTIFIED BY '${root_password}';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
        unset root_password
        kill -TERM "${bootstrap_pid}"
        wait "${bootstrap_pid}" || true
    fi
    exit 0
fi
