#!/usr/bin/env bash
# Runs Redis 7's own Tcl test suite (from Debian's redis source package) in
# external-server mode against a single dynakv node, a local 3-node dynakv cluster
# (N=3) and a real redis-server, and prints passed/failed per test file.
#
# Usage: scripts/redis-suite.sh [--targets "single cluster redis"] [--files "unit/..."]
#                               [--results FILE] [--no-floor] [--bin PATH]
#
#   --targets   which targets to run (default: all three)
#   --files     which test files (default: the list in compat/suites/redis/files.txt)
#   --results   also write the counts as markdown tables into FILE (compat/RESULTS.md),
#               between the markers <!-- redis-suite:begin --> and <!-- redis-suite:end -->
#   --no-floor  do not compare the dynakv counts with compat/suites/redis/floor.txt
#   --bin       the dynakv binary to test (default: build bin/dynakv)
#
# dynakv nodes run with --storage memory and --max-value-bytes 8388608: the suite
# stores a 4 MB value (Redis accepts up to proto-max-bulk-len, 512 MB; dynakv's
# default is 1 MiB, past which the request is a protocol error, as in Redis).
# Exits non-zero if a dynakv count drops below its floor (compat/suites/redis/floor.txt:
# "file single cluster", the least number of passed tests). Debian/Ubuntu; the first run
# needs root or sudo to add a deb-src entry and install tcl. The source package is cached
# under ${XDG_CACHE_HOME:-$HOME/.cache}/dynakv/redis-src.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
suite_dir=$repo/compat/suites/redis
targets="single cluster redis"
files=$(grep -v '^#' "$suite_dir/files.txt" | tr '\n' ' ')
results=""
check_floor=1
bin=""
while [ $# -gt 0 ]; do
  case $1 in
    --targets) targets=$2; shift 2 ;;
    --files) files=$2; shift 2 ;;
    --results) results=$2; shift 2 ;;
    --no-floor) check_floor=0; shift ;;
    --bin) bin=$2; shift 2 ;;
    *) echo "redis-suite: unknown argument $1" >&2; exit 2 ;;
  esac
done

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
cache=${XDG_CACHE_HOME:-$HOME/.cache}/dynakv/redis-src

# ensure_deb_src adds deb-src entries mirroring the machine's deb entries (same URIs,
# suites and components) unless some deb-src entry for the main suite already exists.
ensure_deb_src() {
  local codename
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  if grep -rqsE "^(Types:.*deb-src|deb-src .* $codename )" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    return 1
  fi
  local out=/etc/apt/sources.list.d/dynakv-deb-src
  if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
    # deb822: copy every stanza whose Types has "deb", as deb-src.
    cat /etc/apt/sources.list.d/*.sources | awk '
      /^Types:/ { if ($0 ~ /[ \t]deb([ \t]|$)/) { print "Types: deb-src"; keep=1 } else keep=0; next }
      /^[ \t]*$/ { print ""; next }
      { print }' | awk 'BEGIN{RS=""; ORS="\n\n"} /Types: deb-src/' | $SUDO tee "$out.sources" >/dev/null
  fi
  if [ -f /etc/apt/sources.list ]; then
    sed -n 's/^deb \(.*\)/deb-src \1/p' /etc/apt/sources.list | $SUDO tee "$out.list" >/dev/null
    [ -s "$out.list" ] || $SUDO rm -f "$out.list"
  fi
  echo "redis-suite: added deb-src entries ($out.*)"
  return 0
}

# fetch_source leaves the unpacked redis source tree's path in $src.
fetch_source() {
  src=$(ls -d "$cache"/redis-7*/ 2>/dev/null | head -1 || true)
  if [ -n "$src" ] && [ -x "$src/runtest" ]; then
    src=${src%/}
    return
  fi
  command -v dpkg-source >/dev/null || { $SUDO apt-get update -qq; $SUDO apt-get install -y -qq --no-install-recommends dpkg-dev; }
  if ensure_deb_src; then
    $SUDO apt-get update -qq
  fi
  mkdir -p "$cache"
  (cd "$cache" && apt-get source -qq redis) || { $SUDO apt-get update -qq; (cd "$cache" && apt-get source -qq redis); }
  src=$(ls -d "$cache"/redis-7*/ | head -1)
  src=${src%/}
  [ -x "$src/runtest" ] || { echo "redis-suite: no runtest in $src" >&2; exit 1; }
}

fetch_source
command -v tclsh >/dev/null || { $SUDO apt-get update -qq; $SUDO apt-get install -y -qq --no-install-recommends tcl; }
echo "redis-suite: source $src"

if [ -z "$bin" ]; then
  go build -o bin/dynakv ./cmd/dynakv
  bin=$repo/bin/dynakv
fi
work=$(mktemp -d /tmp/dynakv-redis-suite.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

FREE_PORTS=$work/ports
. scripts/freeport.sh

# wait_ready HOST PORT MEMBERS: waits (at most 30s) until the RESP port answers PING
# and INFO cluster shows MEMBERS alive members.
wait_ready() {
  local i
  for i in $(seq 300); do
    if redis-cli -h "$1" -p "$2" INFO cluster 2>/dev/null | grep -q "^cluster_members_alive:$3"; then
      return 0
    fi
    sleep 0.1
  done
  echo "redis-suite: node on $2 not ready after 30s; its logs:" >&2
  tail -n 20 "$work"/*.log >&2
  return 1
}

# start_dynakv NAME JOIN: starts a memory-storage node; sets $resp and $gossip to
# its RESP and gossip ports.
start_dynakv() {
  local name=$1 join=$2 cport
  resp=$(free_port)
  gossip=$(free_port)
  cport=$(free_port)
  local args=(server --storage memory --name "$name" --data-dir "$work/$name"
    --resp "127.0.0.1:$resp" --memcache off --http off --gossip "127.0.0.1:$gossip"
    --cluster "127.0.0.1:$cport" --secret redis-suite --log-level error --max-value-bytes 8388608)
  [ -z "$join" ] || args+=(--join "$join")
  "$bin" "${args[@]}" >"$work/$name.log" 2>&1 &
  pids+=($!)
}

# Counts per target and file: "target file passed failed exception".
counts=$work/counts
: >"$counts"
skip_tags=$(grep -v '^#' "$suite_dir/skip-tags.txt" | sed 's/^/-/' | tr '\n' ' ')

# run_file TARGET PORT FILE: one runtest invocation for one file. runtest's --timeout
# ends a file that makes no progress for that long: unit/other's PIPELINING stresser
# (100,000 pipelined SETs and GETs on one connection, each SET a quorum write) takes
# 54-60 s against the 3-node cluster on a 2-core machine, so 60 cut it off at random.
run_file() {
  local target=$1 port=$2 file=$3 log
  log=$work/$target-${file//\//_}.log
  (cd "$src" && TERM=dumb timeout 300 ./runtest --host 127.0.0.1 --port "$port" --singledb \
    --ignore-encoding --ignore-digest --tags "$skip_tags" --single "$file" \
    --timeout 180 --clients 1 --durable) >"$log" 2>&1 || true
  local ok err exc
  sed -i 's/\x1b\[[0-9;]*m//g' "$log"
  ok=$(grep -c '^\[ok\]' "$log" || true)
  err=$(grep -c '^\[err\]' "$log" || true)
  exc=$(grep -c '^\[exception\]' "$log" || true)
  printf '%-8s %-22s ok %4d  err %4d  exception %d\n' "$target" "$file" "$ok" "$err" "$exc"
  if grep -q '^\[TIMEOUT\]' "$log"; then
    echo "redis-suite: $target $file: runtest stopped the file after --timeout without progress" >&2
  fi
  echo "$target $file $ok $err $exc" >>"$counts"
  mkdir -p "$cache/logs"
  cp "$log" "$cache/logs/"
}

run_target() {
  local target=$1 port=$2 f
  for f in $files; do run_file "$target" "$port" "$f"; done
}

start=$(date +%s)
for target in $targets; do
  case $target in
    single)
      start_dynakv s1 ""
      port=$resp
      wait_ready 127.0.0.1 "$port" 1
      run_target single "$port"
      ;;
    cluster)
      start_dynakv c1 ""
      port=$resp seed=$gossip
      start_dynakv c2 "127.0.0.1:$seed"
      start_dynakv c3 "127.0.0.1:$seed"
      wait_ready 127.0.0.1 "$port" 3
      run_target cluster "$port"
      ;;
    redis)
      port=$(free_port)
      redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$work" --daemonize no >"$work/redis.log" 2>&1 &
      pids+=($!)
      for _ in $(seq 100); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.1; done
      run_target redis "$port"
      ;;
    *) echo "redis-suite: unknown target $target" >&2; exit 2 ;;
  esac
done
elapsed=$(( $(date +%s) - start ))
echo "redis-suite: done in ${elapsed}s"

# write_results FILE: replaces the block between the markers (or appends one) with a
# table of the counts per target.
write_results() {
  local file=$1 block=$work/block
  {
    echo "<!-- redis-suite:begin -->"
    echo "## Redis 7 Tcl suite (\`scripts/redis-suite.sh\`)"
    echo
    echo "$(date -u +%Y-%m-%d), Debian redis source $(basename "$src"), ${elapsed}s. Each file runs as"
    echo
    echo '```'
    echo "./runtest --host 127.0.0.1 --port PORT --singledb --ignore-encoding --ignore-digest \\"
    echo "  --tags \"$skip_tags\" --single FILE --timeout 60 --clients 1 --durable"
    echo '```'
    echo
    echo "against a single dynakv node (\`dynakv server --storage memory --max-value-bytes 8388608\`),"
    echo "a 3-node cluster of them (N=3, R=2, W=2, the client on the first node) and"
    echo "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') (\`--save '' --appendonly no\`). \`--durable\` turns an"
    echo "error that is not an assertion into a failed test instead of the end of the file."
    echo
    echo "| file | dynakv single passed | failed | dynakv cluster passed | failed | redis-server passed | failed |"
    echo "|---|---|---|---|---|---|---|"
    local f t line
    for f in $files; do
      line="| $f"
      for t in single cluster redis; do
        if grep -q "^$t $f " "$counts"; then
          line+=$(awk -v t="$t" -v f="$f" '$1==t && $2==f {printf " | %d | %d", $3, $4+$5}' "$counts")
        else
          line+=" | - | -"
        fi
      done
      echo "$line |"
    done
    echo "<!-- redis-suite:end -->"
  } >"$block"
  if [ -f "$file" ] && grep -q '<!-- redis-suite:begin -->' "$file"; then
    awk -v block="$block" '
      /<!-- redis-suite:begin -->/ { while ((getline l < block) > 0) print l; skip=1; next }
      /<!-- redis-suite:end -->/ { skip=0; next }
      !skip' "$file" >"$work/results" && cat "$work/results" >"$file"
  else
    { [ -f "$file" ] && cat "$file" && echo; cat "$block"; } >"$work/results"
    cat "$work/results" >"$file"
  fi
  echo "redis-suite: wrote $file"
}
[ -z "$results" ] || write_results "$results"

# The floor: dynakv's passed counts must not drop below floor.txt's.
if [ "$check_floor" = 1 ]; then
  below=0
  while read -r f single cluster; do
    case $f in ''|'#'*) continue ;; esac
    for t in single cluster; do
      want=$single; [ "$t" = cluster ] && want=$cluster
      got=$(awk -v t="$t" -v f="$f" '$1==t && $2==f {print $3}' "$counts")
      [ -n "$got" ] || continue # target or file not run
      if [ "$got" -lt "$want" ]; then
        echo "redis-suite: FLOOR $t $f: $got passed, floor $want" >&2
        below=1
      fi
    done
  done <"$suite_dir/floor.txt"
  [ "$below" = 0 ] || exit 1
  echo "redis-suite: every dynakv count is at or above compat/suites/redis/floor.txt"
fi
