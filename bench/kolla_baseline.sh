#!/usr/bin/env bash
# Baseline: wall-clock time for upstream Kolla to render its Debian
# Dockerfiles (`kolla-build --template-only --base debian`).
#
# Env vars:
#   RUNS          number of timed runs; the best (minimum) is reported (default 3)
#   KOLLA_VENV    virtualenv to create/reuse
#                 (default ${XDG_CACHE_HOME:-$HOME/.cache}/kbuild-bench/kolla-venv)
#   KOLLA_SPEC    pip requirement for kolla, e.g. "kolla==23.0.0" (default "kolla")
#   PYTHON        interpreter used to create the venv (default python3)
#   KEEP_WORKDIR  if 1, keep the temp dir with the rendered Dockerfiles and logs
#
# Output: progress on stderr; one machine-readable line on stdout, e.g.
#   kolla-build-template-only seconds=9.85 dockerfiles=188 kolla=23.0.0 runs=3 all=9.85,9.90,10.01
#
# No container daemon and no network are needed for the timed runs:
#  * --template-only makes kolla tolerate a failed engine connection, and
#    DOCKER_HOST is pointed at a socket that does not exist so the docker
#    client fails instantly (never talks to a real daemon, even if one runs);
#  * an empty --config-file stops kolla from reading /etc/kolla or ~/.kolla.
# Only the (one-off) pip install needs the package index.
set -euo pipefail

RUNS="${RUNS:-3}"
KOLLA_SPEC="${KOLLA_SPEC:-kolla}"
PYTHON="${PYTHON:-python3}"
KOLLA_VENV="${KOLLA_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/kbuild-bench/kolla-venv}"

if ! [[ "$RUNS" =~ ^[1-9][0-9]*$ ]]; then
    echo "RUNS must be a positive integer, got '$RUNS'" >&2
    exit 2
fi

log() { echo "[kolla-baseline] $*" >&2; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/kolla-baseline.XXXXXX")"
cleanup() {
    if [[ "${KEEP_WORKDIR:-0}" == 1 ]]; then
        log "kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT

# Wall-clock timer: runs a command, prints elapsed seconds (perf_counter).
# Output of the command goes to the log file given as first argument.
timed() {
    local logfile="$1"; shift
    "$TIMER_PY" -c '
import subprocess, sys, time
with open(sys.argv[1], "ab") as log:
    t0 = time.perf_counter()
    rc = subprocess.call(sys.argv[2:], stdout=log, stderr=subprocess.STDOUT)
    dt = time.perf_counter() - t0
print("%.3f" % dt)
sys.exit(rc)
' "$logfile" "$@"
}

# ---------------------------------------------------------------- venv
MARKER="$KOLLA_VENV/.kbuild-bench-installed"
TIMER_PY="$PYTHON"
if [[ -x "$KOLLA_VENV/bin/kolla-build" && -f "$MARKER" ]]; then
    log "reusing venv $KOLLA_VENV"
else
    log "creating venv $KOLLA_VENV"
    mkdir -p "$(dirname "$KOLLA_VENV")"
    "$PYTHON" -m venv "$KOLLA_VENV"
    log "pip install $KOLLA_SPEC docker (log: $TMP/pip.log)"
    if ! pip_s="$(timed "$TMP/pip.log" "$KOLLA_VENV/bin/python" -m pip install \
            --disable-pip-version-check "$KOLLA_SPEC" docker)"; then
        tail -n 30 "$TMP/pip.log" >&2
        log "pip install failed"
        exit 1
    fi
    log "pip install took ${pip_s}s"
    touch "$MARKER"
fi
TIMER_PY="$KOLLA_VENV/bin/python"

KOLLA_VERSION="$("$KOLLA_VENV/bin/python" -c \
    'import importlib.metadata as m; print(m.version("kolla"))')"
log "kolla $KOLLA_VERSION, docker-py $("$KOLLA_VENV/bin/python" -c \
    'import importlib.metadata as m; print(m.version("docker"))')"

# ---------------------------------------------------------------- runs
: > "$TMP/empty.conf"
unset DOCKER_TLS_VERIFY DOCKER_CERT_PATH DOCKER_CONTEXT DOCKER_CONFIG || true
export DOCKER_HOST="unix://$TMP/no-such-docker.sock"

best=""
all=""
count=""
for i in $(seq 1 "$RUNS"); do
    work="$TMP/work"
    rm -rf "$work"
    mkdir -p "$work"
    runlog="$TMP/run$i.log"
    if ! s="$(cd "$TMP" && timed "$runlog" "$KOLLA_VENV/bin/kolla-build" \
            --config-file "$TMP/empty.conf" \
            --template-only --base debian --work-dir "$work")"; then
        tail -n 30 "$runlog" >&2
        log "kolla-build failed on run $i"
        exit 1
    fi
    n="$(find "$work" -name Dockerfile | wc -l | tr -d ' ')"
    log "run $i/$RUNS: ${s}s, $n Dockerfiles"
    if [[ "$n" -eq 0 ]]; then
        tail -n 30 "$runlog" >&2
        log "no Dockerfiles produced"
        exit 1
    fi
    if [[ -n "$count" && "$n" != "$count" ]]; then
        log "warning: Dockerfile count changed between runs ($count -> $n)"
    fi
    count="$n"
    all="${all:+$all,}$s"
    if [[ -z "$best" ]] || awk -v a="$s" -v b="$best" 'BEGIN{exit !(a<b)}'; then
        best="$s"
    fi
done

printf 'kolla-build-template-only seconds=%.2f dockerfiles=%s kolla=%s runs=%s all=%s\n' \
    "$best" "$count" "$KOLLA_VERSION" "$RUNS" "$all"
