#!/usr/bin/env bash
# Side-by-side redis-benchmark of dynakv and redis-server on this machine, in one run.
#
#   bench/redis-benchmark.sh            # the issue's workload, -P 1 and -P 16
#   REQUESTS=50000 bench/redis-benchmark.sh
#
# Starts its own redis-server (--save '' --appendonly no) and dynakv (--storage disk by
# default; STORAGE=memory to change) on free loopback ports, runs
#   redis-benchmark -t set,get -n $REQUESTS -c 50 -r 100000 -d 100 -P {1,16}
# against each (and against redis-server --appendonly yes --appendfsync $AOF_FSYNC,
# the durability of dynakv's --fsync $FSYNC: everysec for interval, always for always),
# alternating, for $ROUNDS rounds (default 3: throughput here drifts by 10-15% from
# minute to minute), and prints requests/s, p50 and p99 of each run, then the
# medians and their ratios. BASELINE=1 adds go-baseline-evloop (`dynakv
# bench-baseline --io-model loop`: dynakv's event loops with only a map behind them,
# the ceiling of its network model) to the rotation.
#
# Then the bulk load: $LOADKEYS (default 1,000,000) SETs of 100 bytes through
# `redis-cli --pipe` into redis-server and into dynakv, one after the other, timed;
# RSS of both after the load, and again after $IDLE_WAIT seconds idle (default 0:
# not measured; bench/table.sh waits 120).
#
# FSYNC=always|interval|none picks dynakv's --fsync (default interval); DYNAKV_ARGS adds
# flags (DYNAKV_ARGS="--io-model goroutine" for the A/B of the client I/O model).
# SUMMARY=FILE appends "name value" lines of every median for bench/table.sh.
# Needs redis-server, redis-benchmark, redis-cli (make tools).
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-200000}
ROUNDS=${ROUNDS:-3}
STORAGE=${STORAGE:-disk}
LOADKEYS=${LOADKEYS:-1000000}
IDLE_WAIT=${IDLE_WAIT:-0}
FSYNC=${FSYNC:-interval}
BASELINE=${BASELINE:-0}
read -r -a EXTRA <<<"${DYNAKV_ARGS:-}"
EXTRA+=(--fsync "$FSYNC")
AOF_FSYNC=everysec
[ "$FSYNC" = always ] && AOF_FSYNC=always
. bench/lib.sh

read -r RPORT APORT BPORT BMPORT <<<"$(free_ports 4 | tr '\n' ' ')"
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >"$work/redis.log" 2>&1 &
RPID=$!
pids+=("$RPID")
# The same durability as dynakv's default: fsync before acknowledging every write.
mkdir -p "$work/aof"
redis-server --port "$APORT" --bind 127.0.0.1 --save '' --appendonly yes --appendfsync "$AOF_FSYNC" \
  --dir "$work/aof" --daemonize no >"$work/redis-aof.log" 2>&1 &
pids+=($!)
servers=(redis redis-aof dynakv)
if [ "$BASELINE" = 1 ]; then
  "$DYNAKV" bench-baseline --io-model loop --resp "127.0.0.1:$BPORT" --memcache "127.0.0.1:$BMPORT" \
    >"$work/baseline.log" 2>&1 &
  pids+=($!)
  servers+=(go-baseline-evloop)
fi
dynakv_launch "$work/dynakv.env" --nodes 1 --name bench --dir "$work" --storage "$STORAGE" -- "${EXTRA[@]}"
pids+=("$LAUNCH_PID")
DPORT=${DYNAKV_RESP[0]##*:} DPID=${DYNAKV_PID[0]}
for p in "$RPORT" "$APORT" $([ "$BASELINE" = 1 ] && echo "$BPORT"); do
  for _ in $(seq 100); do redis-cli -p "$p" PING >/dev/null 2>&1 && break; sleep 0.1; done
done

# run PORT PIPELINE -> lines "TEST rps p50 p99"
run() {
  redis-benchmark -p "$1" -t set,get -n "$REQUESTS" -c 50 -r 100000 -d 100 -P "$2" --csv 2>/dev/null |
    awk -F, 'NR>1 { gsub(/"/,""); print $1, $2, $5, $7 }'
}
printf '%-5s %-4s %-3s %-18s %12s %9s %9s\n' round test P server 'requests/s' 'p50 ms' 'p99 ms'
declare -A rps p99s
for round in $(seq "$ROUNDS"); do
  for P in 1 16; do
    for server in "${servers[@]}"; do
      case $server in redis) port=$RPORT ;; redis-aof) port=$APORT ;; dynakv) port=$DPORT ;; *) port=$BPORT ;; esac
      while read -r test r p50 p99; do
        printf '%-5s %-4s %-3s %-18s %12s %9s %9s\n' "$round" "$test" "$P" "$server" "$r" "$p50" "$p99"
        rps[$test-$P-$server]+="$r "
        p99s[$test-$P-$server]+="$p99 "
      done < <(run "$port" "$P")
    done
  done
done
echo
echo "medians of $ROUNDS rounds (requests/s):"
for P in 1 16; do
  for test in SET GET; do
    d=$(median "${rps[$test-$P-dynakv]}") r=$(median "${rps[$test-$P-redis]}") a=$(median "${rps[$test-$P-redis-aof]}")
    awk -v d="$d" -v r="$r" -v a="$a" -v t="$test" -v p="$P" -v f="$AOF_FSYNC" 'BEGIN {
      printf "%s -P %-2s dynakv %9.0f  redis %9.0f  ratio %.2f   redis-aof(appendfsync %s) %9.0f  ratio %.2f\n", t, p, d, r, d / r, f, a, d / a }'
    for server in "${servers[@]}"; do
      summary "rb.$test.P$P.$server.rps" "$(median "${rps[$test-$P-$server]}")"
      summary "rb.$test.P$P.$server.p99" "$(median "${p99s[$test-$P-$server]}")"
    done
  done
done

[ "$LOADKEYS" -gt 0 ] || exit 0
echo
rss_mib() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }
/usr/bin/python3 - "$LOADKEYS" >"$work/load.resp" <<'PY'
import sys
n = int(sys.argv[1]); v = b"x" * 100; out = sys.stdout.buffer
for i in range(n):
    k = b"key:%d" % i
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$100\r\n%s\r\n" % (len(k), k, v))
PY
for server in redis dynakv; do
  case $server in redis) port=$RPORT pid=$RPID ;; dynakv) port=$DPORT pid=$DPID ;; esac
  redis-cli -p "$port" FLUSHALL >/dev/null
  echo "loading $LOADKEYS keys of 100 bytes into $server with redis-cli --pipe..."
  start=$(date +%s.%N)
  redis-cli -p "$port" --pipe <"$work/load.resp" | tail -1
  secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }')
  echo "$server: $secs s ($(awk -v n="$LOADKEYS" -v s="$secs" 'BEGIN { printf "%.0f", n / s }') SETs/s), dbsize $(redis-cli -p "$port" DBSIZE), RSS $(rss_mib "$pid") MiB"
  summary "load.keys" "$LOADKEYS"
  summary "load.$server.secs" "$secs"
  summary "load.$server.rss_mib" "$(rss_mib "$pid")"
done
[ "$STORAGE" = disk ] && echo "dynakv data dir: $(du -sh "${DYNAKV_DATA[0]}" | cut -f1)"
if [ "$IDLE_WAIT" -gt 0 ]; then
  echo "both idle for $IDLE_WAIT s..."
  sleep "$IDLE_WAIT"
  for server in redis dynakv; do
    case $server in redis) pid=$RPID ;; dynakv) pid=$DPID ;; esac
    echo "$server RSS after $IDLE_WAIT s idle: $(rss_mib "$pid") MiB"
    summary "idle.$server.rss_mib" "$(rss_mib "$pid")"
  done
fi
