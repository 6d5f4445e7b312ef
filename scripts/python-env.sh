#!/usr/bin/env bash
# Creates (or updates) the project's virtualenv in .venv with kbuild, its dev tools and what
# `kbuild deploy` runs (ansible).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-pip
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=.venv/.kbuild-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev,deploy]'
    touch "$stamp"
    echo "python-env: installed kbuild and its dev tools into .venv"
else
    echo "python-env: .venv already up to date"
fi
