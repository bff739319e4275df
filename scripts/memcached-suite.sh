#!/usr/bin/env bash
# Runs memcached's own t/ test suite (from Debian's memcached source package) against
# a single dynakv node, a local 3-node dynakv cluster (N=3) and real memcached, each
# test file against a fresh server, and checks the passed counts against
# compat/suites/memcached/floor.txt. Debian/Ubuntu; installs what it needs (root or sudo).
#
#   scripts/memcached-suite.sh                      run everything, check the floor
#   scripts/memcached-suite.sh --targets single --files "cas noreply"
#   scripts/memcached-suite.sh --write-results      also rewrite the table in compat/RESULTS.md
#   scripts/memcached-suite.sh --bin PATH           test that dynakv binary (default: build bin/dynakv)
#
# The source package is cached in ${XDG_CACHE_HOME:-$HOME/.cache}/dynakv/memcached-src.
# Logs of the last run: ${TMPDIR:-/tmp}/dynakv-memcached-suite/<target>/<file>.log.
# MC_SUITE_FLOOR names another floor file; MC_SUITE_FILE_TIMEOUT (seconds, default 120)
# bounds each test file.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SUITE="$ROOT/compat/suites/memcached"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/dynakv/memcached-src"
WORK="${TMPDIR:-/tmp}/dynakv-memcached-suite"
RESULTS="$ROOT/compat/RESULTS.md"
FLOOR=${MC_SUITE_FLOOR:-$SUITE/floor.txt}
DYNAKV="$ROOT/bin/dynakv"
BUILD=1
FILE_TIMEOUT=${MC_SUITE_FILE_TIMEOUT:-120}

# The files that apply to a text-protocol server; compat/RESULTS.md says why the other
# issue_*.t files do not.
FILES="getset incrdecr cas noreply touch getandtouch flags flush-all expirations metaget
bogus-commands malicious-commands quit issue_3 issue_68 issue_70 issue_104 issue_108
issue_152 issue_192 issue_41"
TARGETS="single cluster memcached"
WRITE_RESULTS=0
CHECK_FLOOR=1

while [ $# -gt 0 ]; do
  case "$1" in
    --targets) TARGETS=$2; shift 2 ;;
    --files) FILES=$2; shift 2 ;;
    --write-results) WRITE_RESULTS=1; shift ;;
    --no-floor) CHECK_FLOOR=0; shift ;;
    --bin) DYNAKV=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); BUILD=0; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "memcached-suite: unknown argument $1" >&2; exit 2 ;;
  esac
done

. "$ROOT/scripts/lib.sh"

# install_deps installs perl (prove, Test::More), dpkg-dev (apt-get source unpacks with
# dpkg-source) and memcached itself (the reference target and its -h output the suite reads).
install_deps() {
  local need=()
  command -v prove >/dev/null || need+=(perl)
  command -v dpkg-source >/dev/null || need+=(dpkg-dev)
  command -v memcached >/dev/null || need+=(memcached)
  [ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
}

PIDS=()      # reference servers, killed
LAUNCHERS=() # dynakv launchers, stopped (each stops its nodes)
cleanup_servers() {
  local p
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  dynakv_stop "${LAUNCHERS[@]}"
  PIDS=() LAUNCHERS=()
}
trap cleanup_servers EXIT

# wait_port waits until 127.0.0.1:$1 accepts connections (at most 20s).
wait_port() {
  local i
  for i in $(seq 1 200); do
    if perl -MIO::Socket::INET -e 'exit(IO::Socket::INET->new(PeerAddr => "127.0.0.1:'"$1"'") ? 0 : 1)'; then
      return 0
    fi
    sleep 0.1
  done
  echo "memcached-suite: nothing listens on 127.0.0.1:$1" >&2
  return 1
}

# start_dynakv DIR NODES: starts NODES in-memory nodes mcsuite1.. (N=3), each seeing
# them all alive, with their data and logs in DIR, and sets ADDR to the first one's
# memcached address.
start_dynakv() {
  dynakv_launch "$1/dynakv.env" --nodes "$2" --name mcsuite --dir "$1" --storage memory --secret mc-suite -- --n 3
  LAUNCHERS+=("$LAUNCH_PID")
  ADDR=${DYNAKV_MEMCACHE[0]}
}

# start_target TARGET DIR: starts a fresh server for TARGET and sets ADDR to the
# memcached address the suite should use (node 1 of the cluster).
start_target() {
  local target=$1 dir=$2 port user=()
  mkdir -p "$dir"
  case "$target" in
    memcached)
      port=$(free_ports 1)
      [ "$(id -u)" -eq 0 ] && user=(-u root)
      memcached -l 127.0.0.1 -p "$port" -U 0 -m 64 "${user[@]}" >>"$dir/memcached.log" 2>&1 &
      PIDS+=($!)
      wait_port "$port"
      ADDR="127.0.0.1:$port" ;;
    single) start_dynakv "$dir" 1 ;;
    cluster) start_dynakv "$dir" 3 ;;
    *) echo "memcached-suite: unknown target $target" >&2; return 1 ;;
  esac
}

# run_file TARGET FILE: runs t/FILE.t against a fresh TARGET and sets
# RES[TARGET/FILE] to "passed failed planned".
run_file() {
  local target=$1 file=$2 log planned passed failed
  log="$WORK/$target/$file.log"
  mkdir -p "$WORK/$target"
  start_target "$target" "$WORK/$target/$file.srv"
  (cd "$SRC" && T_MEMD_USE_DAEMON=$ADDR timeout "$FILE_TIMEOUT" perl "t/$file.t") >"$log" 2>&1 || true
  cleanup_servers
  planned=$(grep -m1 -oE '^1\.\.[0-9]+' "$log" | cut -c4- || true)
  passed=$(grep -cE '^ok [0-9]+' "$log" || true)
  failed=$(grep -cE '^not ok [0-9]+' "$log" || true)
  RES[$target/$file]="${passed:-0} ${failed:-0} ${planned:-0}"
}

install_deps
SRC=$(fetch_debian_source memcached "$CACHE" t/lib/MemcachedTest.pm)
# MemcachedTest.pm asks "$builddir/memcached-debug -h" which features exist (TLS, unix
# sockets, extstore) even when it only connects to T_MEMD_USE_DAEMON: the packaged
# binary of the same version answers, so memcached is not built. The ext_path lines are
# left out: the daemon under test has no extstore, and metaget.t would otherwise wait
# forever for items to reach one.
rm -f "$SRC/memcached-debug"
printf '#!/bin/sh\n%s "$@" | grep -v ext_path\n' "$(command -v memcached)" >"$SRC/memcached-debug"
chmod +x "$SRC/memcached-debug"
[ "$BUILD" = 0 ] || (cd "$ROOT" && go build -o "$DYNAKV" ./cmd/dynakv) # the nodes, and free_ports
rm -rf "$WORK"
mkdir -p "$WORK"

declare -A RES
start=$(date +%s)
for target in $TARGETS; do
  for file in $FILES; do
    t0=$(date +%s)
    run_file "$target" "$file"
    read -r p f n <<<"${RES[$target/$file]}"
    printf '%-10s %-20s passed %5d  failed %5d  planned %5d  (%ds)\n' "$target" "$file" "$p" "$f" "$n" $(( $(date +%s) - t0 ))
  done
done
elapsed=$(( $(date +%s) - start ))
echo "memcached-suite: ran in ${elapsed}s; logs in $WORK"

# The table for compat/RESULTS.md.
table() {
  local head="| file |" sep="|---|" file target p f n row
  for target in $TARGETS; do head+=" $target passed/failed/planned |"; sep+="---|"; done
  echo "$head"; echo "$sep"
  for file in $FILES; do
    row="| $file |"
    for target in $TARGETS; do
      read -r p f n <<<"${RES[$target/$file]}"
      row+=" $p / $f / $n |"
    done
    echo "$row"
  done
}

if [ "$WRITE_RESULTS" = 1 ]; then
  version=$(basename "$SRC")
  block=$(printf '<!-- memcached-suite:begin (generated by scripts/memcached-suite.sh --write-results) -->\n%s\n\nRun %s on %s (%s cores), %s from Debian'"'"'s source package, dynakv %s, real memcached %s; command: `scripts/memcached-suite.sh --write-results` (%ds).\n<!-- memcached-suite:end -->' \
    "$(table)" "$(date -u +%Y-%m-%d)" "$(. /etc/os-release && echo "$PRETTY_NAME")" "$(nproc)" \
    "$version" "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo dev)" \
    "$(memcached -V | cut -d' ' -f2)" "$elapsed")
  [ -f "$RESULTS" ] || printf '## memcached t/ suite\n\n' >"$RESULTS"
  grep -q '^## memcached t/ suite' "$RESULTS" || printf '\n## memcached t/ suite\n\n' >>"$RESULTS"
  if grep -q '<!-- memcached-suite:begin' "$RESULTS"; then
    BLOCK=$block perl -0pi -e 's/<!-- memcached-suite:begin.*?<!-- memcached-suite:end -->/$ENV{BLOCK}/s' "$RESULTS"
  else # right after the section heading
    BLOCK=$block perl -0pi -e 's/^(## memcached t\/ suite\n)/$1\n$ENV{BLOCK}\n/m' "$RESULTS"
  fi
  echo "memcached-suite: table written to $RESULTS"
fi

# Floor: lines "file target min_passed"; a target or file not run this time is not checked.
if [ "$CHECK_FLOOR" = 1 ]; then
  bad=0
  while read -r file target min; do
    [[ -z "$file" || "$file" == \#* ]] && continue
    [ -n "${RES[$target/$file]:-}" ] || continue
    read -r p f n <<<"${RES[$target/$file]}"
    if [ "$p" -lt "$min" ]; then
      echo "memcached-suite: BELOW FLOOR: $target $file passed $p < $min (log $WORK/$target/$file.log)" >&2
      bad=1
    fi
  done <"$FLOOR"
  [ "$bad" = 0 ] || exit 1
  echo "memcached-suite: at or above the floor in $FLOOR"
fi
