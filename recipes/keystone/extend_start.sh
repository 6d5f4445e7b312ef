#!/bin/sh
# Runs before keystone starts: bootstrap the database schema when asked to.
set -eu
if [ -n "${KBUILD_BOOTSTRAP:-}" ]; then
    keystone-manage db_sync
    exit 0
fi
