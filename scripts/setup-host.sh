#!/usr/bin/env bash
# Host setup for kbuild on Debian 12 (bookworm), as root, without systemd.
#
# Installs Docker Engine 26.1 + buildx (from trixie, pinned low), qemu-user-static,
# binfmt-support, debootstrap, skopeo, docker-registry, and chromium + chromium-driver (the
# browser tests drive the dashboard in it) (from bookworm); turns on the containerd image store;
# starts dockerd and a local registry on 127.0.0.1:5000.
# See /work/shared/HOST.md for the recipe this follows.
#
# Idempotent: every step checks first and prints one line ("... already ..." when nothing
# had to be done). Safe to re-run; a second run does no apt work and takes a few seconds.
#
# Usage: scripts/setup-host.sh [--no-qemu] [--no-registry] [--no-start] [-h]
#   --no-qemu      skip qemu-user-static/binfmt-support and the binfmt step (no arm64 emulation)
#   --no-registry  skip docker-registry and the local registry
#   --no-start     install and configure only; do not start dockerd or the registry
# Environment (same effect): KBUILD_SETUP_NO_QEMU=1, KBUILD_SETUP_NO_REGISTRY=1,
#   KBUILD_SETUP_NO_START=1. KBUILD_REGISTRY_ADDR (default 127.0.0.1:5000),
#   KBUILD_REGISTRY_ROOT (default /var/lib/kbuild/registry).
set -euo pipefail

NO_QEMU=${KBUILD_SETUP_NO_QEMU:-0}
NO_REGISTRY=${KBUILD_SETUP_NO_REGISTRY:-0}
NO_START=${KBUILD_SETUP_NO_START:-0}
REGISTRY_ADDR=${KBUILD_REGISTRY_ADDR:-127.0.0.1:5000}
REGISTRY_ROOT=${KBUILD_REGISTRY_ROOT:-/var/lib/kbuild/registry}
REGISTRY_CONFIG=/etc/kbuild/registry.yml
REGISTRY_LOG=/var/log/kbuild-registry.log
REGISTRY_PIDFILE=/run/kbuild-registry.pid
DOCKERD_LOG=/var/log/kbuild-dockerd.log
DOCKERD_PIDFILE=/var/run/docker.pid
DAEMON_JSON=/etc/docker/daemon.json
APT_LOG=/var/log/kbuild-setup-apt.log
TRIXIE_SOURCE=/etc/apt/sources.list.d/kbuild-trixie.sources
TRIXIE_PIN=/etc/apt/preferences.d/kbuild-trixie

for arg in "$@"; do
  case "$arg" in
    --no-qemu) NO_QEMU=1 ;;
    --no-registry) NO_REGISTRY=1 ;;
    --no-start) NO_START=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup-host: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

log() { printf 'setup-host: %s\n' "$*"; }
die() { printf 'setup-host: ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"
command -v apt-get >/dev/null || die "apt-get not found (Debian host expected)"

export DEBIAN_FRONTEND=noninteractive
# Debian's python3, not whatever pyenv/venv shim is first on PATH.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3) || die "python3 not found"

# Write $2 (content) to $1 only when it differs; return 0 if the file changed.
write_if_changed() {
  local path=$1 content=$2
  if [ -f "$path" ] && [ "$(cat "$path")" = "$content" ]; then
    return 1
  fi
  mkdir -p "$(dirname "$path")"
  printf '%s\n' "$content" >"$path.tmp.$$"
  mv -f "$path.tmp.$$" "$path"
  return 0
}

is_installed() {
  [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" = "ii " ]
}

wait_until() { # wait_until SECONDS CMD...
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 1
  done
}

docker_up() { timeout 10 docker info >/dev/null 2>&1; }
registry_up() { curl -fs -o /dev/null --max-time 3 "http://$REGISTRY_ADDR/v2/"; }
snapshotter_on() {
  timeout 10 docker info -f '{{.DriverStatus}}' 2>/dev/null | grep -q 'io.containerd.snapshotter.v1'
}

# --------------------------------------------------------------------------------------------
# 1. apt source for trixie (same mirror URI and Signed-By as the host's own source) + low pin
# --------------------------------------------------------------------------------------------
HOST_CODENAME=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")

# Print, from the host's apt configuration: line 1 the mirror URI, line 2 the components,
# then the Signed-By value (possibly several lines, for an inline key; absent if none).
# The source chosen is the first enabled "deb" entry whose suite is exactly $HOST_CODENAME.
host_debian_source() {
  local f out
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && [ "$f" != "$TRIXIE_SOURCE" ] || continue
    out=$(awk -v want="$HOST_CODENAME" '
      function flush() {
        if (!done && enabled != "no" && (" " types " ") ~ / deb / && (" " suites " ") ~ (" " want " ") && uris != "") {
          split(uris, u, " "); print u[1]; print comps; if (signed != "") print signed; done = 1
        }
        types = uris = suites = comps = signed = ""; enabled = "yes"; field = ""
      }
      BEGIN { enabled = "yes" }
      /^[[:space:]]*#/ { next }
      /^[[:space:]]*$/ { flush(); next }
      /^[[:space:]]/ { if (field == "signed-by") signed = signed "\n" $0; next }
      {
        i = index($0, ":"); key = tolower(substr($0, 1, i - 1)); val = substr($0, i + 1)
        gsub(/^[[:space:]]+|[[:space:]]+$/, "", val); field = key
        if (key == "types") types = val
        else if (key == "uris") uris = val
        else if (key == "suites") suites = val
        else if (key == "components") comps = val
        else if (key == "enabled") enabled = tolower(val)
        else if (key == "signed-by") signed = val
      }
      END { flush() }' "$f")
    if [ -n "$out" ]; then printf '%s\n' "$out"; return 0; fi
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    out=$(awk -v want="$HOST_CODENAME" '
      $1 != "deb" { next }
      {
        opts = ""; n = 2
        if ($2 ~ /^\[/) { while (n <= NF) { opts = opts " " $n; if ($n ~ /\]$/) { n++; break } n++ } }
        uri = $n; suite = $(n + 1); comps = ""
        for (k = n + 2; k <= NF; k++) comps = comps (comps == "" ? "" : " ") $k
        if (suite != want) next
        signed = ""
        if (match(opts, /signed-by=[^] ]+/)) signed = substr(opts, RSTART + 10, RLENGTH - 10)
        print uri; print comps; if (signed != "") print signed; exit
      }' "$f")
    if [ -n "$out" ]; then printf '%s\n' "$out"; return 0; fi
  done
  return 1
}

step_apt_sources() {
  local src uri comps signed content pin changed=0
  src=$(host_debian_source) || die "no '$HOST_CODENAME' deb source found in /etc/apt/sources.list{,.d/}"
  uri=$(printf '%s\n' "$src" | sed -n 1p)
  [ -n "$uri" ] || die "no '$HOST_CODENAME' deb source found in /etc/apt/sources.list{,.d/}"
  comps=$(printf '%s\n' "$src" | sed -n 2p)
  [ -n "$comps" ] || comps=main
  signed=$(printf '%s\n' "$src" | sed -n '3,$p')
  content="# Managed by kbuild scripts/setup-host.sh: trixie, pinned low (see ${TRIXIE_PIN}).
Types: deb
URIs: ${uri}
Suites: trixie
Components: ${comps}"
  [ -z "$signed" ] || content="${content}
Signed-By: ${signed}"
  pin="# Managed by kbuild scripts/setup-host.sh: nothing comes from trixie unless asked for.
Package: *
Pin: release n=trixie
Pin-Priority: 100"
  write_if_changed "$TRIXIE_SOURCE" "$content" && changed=1
  write_if_changed "$TRIXIE_PIN" "$pin" && changed=1
  if [ "$changed" = 1 ]; then
    apt-get update -qq
    log "apt: wrote $TRIXIE_SOURCE + $TRIXIE_PIN, ran apt-get update (trixie from $uri, pin 100)"
  else
    log "apt: trixie source ($uri, pinned 100) already configured"
  fi
  APT_SOURCES_CHANGED=$changed
}

# --------------------------------------------------------------------------------------------
# 2. packages
# --------------------------------------------------------------------------------------------
step_packages() {
  local trixie_pkgs=(docker-buildx docker.io docker-cli) bookworm_pkgs=(debootstrap skopeo chromium chromium-driver)
  [ "$NO_QEMU" = 1 ] || bookworm_pkgs+=(qemu-user-static binfmt-support)
  [ "$NO_REGISTRY" = 1 ] || bookworm_pkgs+=(docker-registry)
  local missing=() p
  for p in "${trixie_pkgs[@]}" "${bookworm_pkgs[@]}"; do is_installed "$p" || missing+=("$p"); done
  if [ "${#missing[@]}" -eq 0 ]; then
    log "packages: already installed ($(dpkg-query -W -f='${Package} ${Version}, ' docker.io docker-buildx | sed 's/, $//'))"
    return
  fi
  [ "${APT_SOURCES_CHANGED:-0}" = 1 ] || apt-get update -qq
  # Keep package maintainer scripts from starting dockerd / docker-registry with Debian's
  # defaults (no systemd here, so invoke-rc.d would run the SysV scripts): we start both
  # ourselves below with our own configuration.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; created_policy=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  # Name all three explicitly: "-t trixie docker-buildx" alone only brings docker-cli (docker.io
  # is not a dependency of docker-buildx). With pkg/trixie (not -t trixie) everything else resolves
  # from bookworm (pin 100); apt takes containerd 1.7.24 from trixie too, libc6 etc. do not move.
  # --no-install-recommends keeps apparmor/needrestart/git/dbus-user-session out.
  if ! apt-get install -y -q --no-install-recommends -o Dpkg::Use-Pty=0 \
      "${trixie_pkgs[@]/%//trixie}" "${bookworm_pkgs[@]}" >"$APT_LOG" 2>&1; then
    tail -n 30 "$APT_LOG" >&2; die "apt-get install failed (log: $APT_LOG)"
  fi
  if [ "$created_policy" = 1 ]; then rm -f "$policy"; trap - EXIT; fi
  for p in "${trixie_pkgs[@]}" "${bookworm_pkgs[@]}"; do is_installed "$p" || die "package $p did not install"; done
  log "packages: installed ${missing[*]} ($(dpkg-query -W -f='${Package} ${Version}, ' docker.io docker-buildx | sed 's/, $//'))"
}

# --------------------------------------------------------------------------------------------
# 3. /etc/docker/daemon.json with the containerd image store (merged into any existing config)
# --------------------------------------------------------------------------------------------
step_daemon_json() {
  local new
  new=$("$PY" - "$DAEMON_JSON" <<'EOF'
import json, os, sys
path = sys.argv[1]
cfg = {}
if os.path.exists(path) and os.path.getsize(path) > 0:
    with open(path) as f:
        cfg = json.load(f)
cfg.setdefault("features", {})["containerd-snapshotter"] = True
print(json.dumps(cfg, indent=2, sort_keys=True))
EOF
) || die "cannot parse $DAEMON_JSON"
  if [ -f "$DAEMON_JSON" ] && "$PY" -c 'import json,sys; sys.exit(json.load(open(sys.argv[1])) != json.loads(sys.argv[2]))' "$DAEMON_JSON" "$new" 2>/dev/null; then
    log "daemon.json: containerd-snapshotter already enabled in $DAEMON_JSON"
    DAEMON_JSON_CHANGED=0
  else
    write_if_changed "$DAEMON_JSON" "$new" || true
    log "daemon.json: wrote $DAEMON_JSON with features.containerd-snapshotter=true"
    DAEMON_JSON_CHANGED=1
  fi
}

# --------------------------------------------------------------------------------------------
# 4. dockerd (no systemd: run it detached ourselves)
# --------------------------------------------------------------------------------------------
stop_dockerd() {
  local pid
  pid=$(cat "$DOCKERD_PIDFILE" 2>/dev/null || true)
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || die "dockerd runs with an old config but $DOCKERD_PIDFILE names no live process; stop it by hand"
  kill -TERM "$pid"
  wait_until 60 bash -c "! kill -0 $pid" || die "dockerd (pid $pid) did not stop within 60 s"
}

start_dockerd() {
  command -v dockerd >/dev/null || die "dockerd not found"
  setsid nohup dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
  wait_until 60 docker_up || { tail -n 30 "$DOCKERD_LOG" >&2; die "dockerd did not answer within 60 s (log: $DOCKERD_LOG)"; }
}

step_dockerd() {
  if [ "$NO_START" = 1 ]; then log "dockerd: not started (--no-start)"; return; fi
  if docker_up; then
    if snapshotter_on; then
      # daemon.json may have gained other keys by hand; we only care about the image store.
      log "dockerd: already running with the containerd image store"
      return
    fi
    stop_dockerd
    start_dockerd
    log "dockerd: restarted to apply $DAEMON_JSON (log: $DOCKERD_LOG)"
  else
    start_dockerd
    log "dockerd: started (log: $DOCKERD_LOG)"
  fi
  snapshotter_on || die "dockerd is up but the containerd image store is off; check $DAEMON_JSON"
  docker buildx version >/dev/null 2>&1 || die "'docker buildx version' failed (docker CLI: $(command -v docker))"
}

# --------------------------------------------------------------------------------------------
# 5. binfmt_misc + qemu
# --------------------------------------------------------------------------------------------
BINFMT=/proc/sys/fs/binfmt_misc
aarch64_enabled() { [ "$(head -n1 "$BINFMT/qemu-aarch64" 2>/dev/null)" = enabled ]; }

step_binfmt() {
  if [ "$NO_QEMU" = 1 ]; then log "binfmt: skipped (--no-qemu)"; return; fi
  local did=()
  if ! [ -e "$BINFMT/register" ]; then
    mount -t binfmt_misc binfmt_misc "$BINFMT"; did+=("mounted $BINFMT")
  fi
  if ! aarch64_enabled; then
    update-binfmts --enable >/dev/null 2>&1 || true   # complains about entries already enabled
    aarch64_enabled || die "qemu-aarch64 not enabled in $BINFMT after update-binfmts --enable"
    did+=("enabled qemu handlers")
  fi
  local flags; flags=$(sed -n 's/^flags: //p' "$BINFMT/qemu-aarch64")
  if [ "${#did[@]}" -eq 0 ]; then
    log "binfmt: already enabled (qemu-aarch64 flags: $flags)"
  else
    log "binfmt: $(IFS=,; echo "${did[*]}" | sed 's/,/, /g') (qemu-aarch64 flags: $flags)"
  fi
}

# --------------------------------------------------------------------------------------------
# 6. local registry (Debian's docker-registry = CNCF distribution)
# --------------------------------------------------------------------------------------------
start_registry() {
  mkdir -p "$REGISTRY_ROOT"
  setsid nohup docker-registry serve "$REGISTRY_CONFIG" >"$REGISTRY_LOG" 2>&1 </dev/null &
  echo $! >"$REGISTRY_PIDFILE"
  wait_until 30 registry_up || { tail -n 20 "$REGISTRY_LOG" >&2; die "registry did not answer on http://$REGISTRY_ADDR/v2/ within 30 s"; }
}

step_registry() {
  if [ "$NO_REGISTRY" = 1 ]; then log "registry: skipped (--no-registry)"; return; fi
  local cfg changed=0 pid
  cfg="# Managed by kbuild scripts/setup-host.sh
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: ${REGISTRY_ROOT}
  delete:
    enabled: true
http:
  addr: ${REGISTRY_ADDR}
  headers:
    X-Content-Type-Options: [nosniff]"
  write_if_changed "$REGISTRY_CONFIG" "$cfg" && changed=1
  if [ "$NO_START" = 1 ]; then log "registry: config $REGISTRY_CONFIG written, not started (--no-start)"; return; fi
  if registry_up; then
    pid=$(cat "$REGISTRY_PIDFILE" 2>/dev/null || true)
    if [ "$changed" = 1 ] && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"; wait_until 20 bash -c "! kill -0 $pid" || die "registry (pid $pid) did not stop"
      start_registry
      log "registry: restarted with new config on http://$REGISTRY_ADDR (log: $REGISTRY_LOG)"
    elif [ "$changed" = 1 ]; then
      log "registry: WARNING: something not started by this script already serves http://$REGISTRY_ADDR; left as is"
    else
      log "registry: already serving http://$REGISTRY_ADDR (root $REGISTRY_ROOT)"
    fi
  else
    start_registry
    log "registry: started on http://$REGISTRY_ADDR (root $REGISTRY_ROOT, log: $REGISTRY_LOG)"
  fi
}

# --------------------------------------------------------------------------------------------
# 7. summary
# --------------------------------------------------------------------------------------------
step_summary() {
  echo "---- kbuild host summary ----"
  if docker_up; then
    echo "docker server:     $(docker version -f '{{.Server.Version}}' 2>/dev/null) (client $(docker version -f '{{.Client.Version}}' 2>/dev/null) at $(command -v docker))"
    echo "buildx:            $(docker buildx version 2>/dev/null)"
    echo "buildx driver:     $(docker buildx inspect 2>/dev/null | awk -F': *' '$1 == "Driver" { print $2; exit }')"
    echo "image store:       $(snapshotter_on && echo 'containerd (io.containerd.snapshotter.v1)' || echo 'classic graphdriver (containerd store OFF)')"
  else
    echo "docker:            not running"
  fi
  if [ "$NO_QEMU" = 1 ]; then
    echo "binfmt:            skipped"
  else
    echo "binfmt:            qemu-aarch64 $(head -n1 "$BINFMT/qemu-aarch64" 2>/dev/null || echo missing)"
  fi
  if [ "$NO_REGISTRY" = 1 ]; then
    echo "registry:          skipped"
  else
    echo "registry:          http://$REGISTRY_ADDR ($(registry_up && echo up || echo down))"
  fi
  echo "browser:           $(dpkg-query -W -f='chromium ${Version}' chromium 2>/dev/null || echo 'chromium missing'), $(command -v chromedriver || echo 'no chromedriver')"
}

step_apt_sources
step_packages
step_daemon_json
step_dockerd
step_binfmt
step_registry
step_summary
