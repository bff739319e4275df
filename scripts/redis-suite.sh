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
# needs root or sudo to add a deb-src entry and install tcl (scripts/lib.sh). The source
# package is cached under ${XDG_CACHE_HOME:-$HOME/.cache}/dynakv/redis-src. The dynakv
# nodes are started with `dynakv launch` (scripts/lib.sh's dynakv_launch).
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

cache=${XDG_CACHE_HOME:-$HOME/.cache}/dynakv/redis-src
if [ -z "$bin" ]; then
  go build -o bin/dynakv ./cmd/dynakv
  bin=$repo/bin/dynakv
fi
DYNAKV=$bin
. scripts/lib.sh

src=$(fetch_debian_source redis "$cache" runtest)
command -v tclsh >/dev/null || apt_install tcl
echo "redis-suite: source $src"
# unit/maxmemory is tagged external:skip as a whole in Redis 7.0: generate
# unit/dynakv/maxmemory from the tests of it an external server can run.
tclsh "$suite_dir/maxmemory.tcl" "$src/tests"

work=$(mktemp -d /tmp/dynakv-redis-suite.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# start_dynakv TARGET NODES: starts NODES in-memory nodes named <TARGET's first
# letter>1.. (a cluster when NODES > 1), each seeing them all alive, and sets $resp
# to the first one's RESP port.
start_dynakv() {
  dynakv_launch "$work/$1.env" --nodes "$2" --name "${1:0:1}" --dir "$work/$1" --storage memory \
    --secret redis-suite --log-level error -- --max-value-bytes 8388608
  pids+=("$LAUNCH_PID")
  resp=${DYNAKV_RESP[0]##*:}
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
      start_dynakv single 1
      run_target single "$resp"
      ;;
    cluster)
      start_dynakv cluster 3
      run_target cluster "$resp"
      ;;
    redis)
      port=$(free_ports 1)
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
