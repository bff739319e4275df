# Sourced (not run) by the scripts that start local dynakv clusters or fetch Debian
# source packages: scripts/redis-suite.sh, scripts/memcached-suite.sh, bench/lib.sh.
# Needs bash and $DYNAKV, the dynakv binary (for dynakv_launch and free_ports).

LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# free_ports N prints N distinct loopback TCP ports, one a line, that were free a
# moment ago: `dynakv freeport`, internal/freeport's range (22000-31999, below the
# kernel's ephemeral range, so no client socket takes one before the server binds
# it; above redis runtest's own 21079-21111). Ask for every port a batch of servers
# needs in one call: separate calls may hand out a port twice until a server binds it.
free_ports() { "$DYNAKV" freeport "$1"; }

# dynakv_launch ENV [LAUNCH FLAGS] [-- SERVER FLAGS]: runs `dynakv launch` in the
# background (its output appended to ENV.out), waits until its nodes are up, and
# sources ENV: the bash arrays DYNAKV_NAME, DYNAKV_PID, DYNAKV_RESP, DYNAKV_MEMCACHE,
# DYNAKV_HTTP, DYNAKV_GOSSIP, DYNAKV_CLUSTER (host:port), DYNAKV_DATA, DYNAKV_LOG and
# DYNAKV_ZONE (empty without --zones), indexed by node, and DYNAKV_SECRET. Sets LAUNCH_PID to the launcher's pid: stop it
# (and so its nodes) with dynakv_stop. Returns 1, with the launcher's output, if the
# launcher gives up (a node did not start, or the members did not meet in time).
dynakv_launch() {
  local env=$1
  shift
  rm -f "$env"
  "$DYNAKV" launch --env "$env" "$@" >>"$env.out" 2>&1 &
  LAUNCH_PID=$!
  while [ ! -s "$env" ]; do
    if ! kill -0 "$LAUNCH_PID" 2>/dev/null; then
      wait "$LAUNCH_PID" 2>/dev/null || true
      echo "dynakv launch $*: failed; its output:" >&2
      tail -n 40 "$env.out" >&2
      return 1
    fi
    sleep 0.05
  done
  . "$env"
}

# dynakv_stop PID...: stops launchers started by dynakv_launch (each stops its
# nodes: SIGTERM, SIGKILL after 10s) and waits for them.
dynakv_stop() {
  local p
  for p in "$@"; do kill "$p" 2>/dev/null || true; done
  for p in "$@"; do wait "$p" 2>/dev/null || true; done
}

# apt_retry ARGS...: apt-get ARGS as root, non-interactive, retrying while another
# apt holds the lock.
apt_retry() {
  local i
  for i in $(seq 1 30); do
    if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 "$@"; then
      return 0
    fi
    echo "apt-get $1 failed (attempt $i), retrying" >&2
    sleep 2
  done
  return 1
}

# apt_install PACKAGE...: installs the packages (after apt-get update) without
# starting the services they bring (memcached's, say).
apt_install() {
  apt_retry update -qq
  local ours=0 rc=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    ours=1
  fi
  apt_retry install -y -qq --no-install-recommends "$@" || rc=$?
  [ "$ours" = 0 ] || $SUDO rm -f /usr/sbin/policy-rc.d
  return "$rc"
}

# ensure_deb_src adds deb-src stanzas mirroring every enabled "deb" entry whose
# URI/suite has no deb-src yet (anywhere under /etc/apt; scripts/deb-src.awk).
# Running it again, or after another script added the same entries, changes
# nothing. Returns 0 if it added some.
ensure_deb_src() {
  local files=() f new target=/etc/apt/sources.list.d/dynakv-deb-src.sources
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && files+=("$f")
  done
  new=$(awk -f "$LIB_DIR/deb-src.awk" "${files[@]}")
  [ -n "$new" ] || return 1
  if [ -f "$target" ]; then # ours, but stale: keep what it has and add the rest
    new="$(cat "$target")"$'\n\n'"$new"
  fi
  printf '%s\n' "$new" | $SUDO tee "$target.tmp.$$" >/dev/null
  $SUDO mv -f "$target.tmp.$$" "$target"
  echo "added deb-src entries in $target"
  return 0
}

# fetch_debian_source PACKAGE CACHE CHECK prints the directory of Debian's source
# package PACKAGE unpacked under CACHE, fetching it with apt-get source (adding
# deb-src entries and dpkg-dev if need be) unless it is there already. CHECK is a
# path inside it that must exist. Everything else goes to stderr.
fetch_debian_source() {
  local pkg=$1 cache=$2 check=$3 dir
  dir=$(ls -d "$cache/$pkg"-[0-9]*/ 2>/dev/null | head -1 || true)
  if [ -n "$dir" ] && [ -e "$dir/$check" ]; then
    echo "${dir%/}"
    return 0
  fi
  command -v dpkg-source >/dev/null || apt_install dpkg-dev >&2
  mkdir -p "$cache"
  if ensure_deb_src >&2; then
    apt_retry update -qq >&2
  fi
  # Another script may have added the deb-src entry without updating the lists yet.
  if ! (cd "$cache" && apt-get source -qq "$pkg" >&2); then
    apt_retry update -qq >&2
    (cd "$cache" && apt-get source -qq "$pkg" >&2)
  fi
  dir=$(ls -d "$cache/$pkg"-[0-9]*/ | head -1)
  [ -e "$dir/$check" ] || { echo "no $check in $dir" >&2; return 1; }
  echo "${dir%/}"
}
