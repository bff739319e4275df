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
# medians and their ratios. Then it
# loads 1,000,000 keys of 100 bytes into dynakv with redis-cli --pipe and reports RSS.
# FSYNC=always|interval|none picks dynakv's --fsync (default interval); DYNAKV_ARGS adds
# flags (DYNAKV_ARGS="--io-model goroutine" for the A/B of the client I/O model).
# Needs redis-server, redis-benchmark, redis-cli (make tools).
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-200000}
ROUNDS=${ROUNDS:-3}
STORAGE=${STORAGE:-disk}
LOADKEYS=${LOADKEYS:-1000000}
FSYNC=${FSYNC:-interval}
read -r -a EXTRA <<<"${DYNAKV_ARGS:-}"
EXTRA+=(--fsync "$FSYNC")
AOF_FSYNC=everysec
[ "$FSYNC" = always ] && AOF_FSYNC=always
. bench/lib.sh

read -r RPORT APORT <<<"$(free_ports 2 | tr '\n' ' ')"
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >"$work/redis.log" 2>&1 &
pids+=($!)
# The same durability as dynakv's default: fsync before acknowledging every write.
mkdir -p "$work/aof"
redis-server --port "$APORT" --bind 127.0.0.1 --save '' --appendonly yes --appendfsync "$AOF_FSYNC" \
  --dir "$work/aof" --daemonize no >"$work/redis-aof.log" 2>&1 &
pids+=($!)
dynakv_launch "$work/dynakv.env" --nodes 1 --name bench --dir "$work" --storage "$STORAGE" -- "${EXTRA[@]}"
pids+=("$LAUNCH_PID")
DPORT=${DYNAKV_RESP[0]##*:} DPID=${DYNAKV_PID[0]}
for p in "$RPORT" "$APORT"; do
  for _ in $(seq 100); do redis-cli -p "$p" PING >/dev/null 2>&1 && break; sleep 0.1; done
done

# run PORT PIPELINE -> lines "TEST rps p50 p99"
run() {
  redis-benchmark -p "$1" -t set,get -n "$REQUESTS" -c 50 -r 100000 -d 100 -P "$2" --csv 2>/dev/null |
    awk -F, 'NR>1 { gsub(/"/,""); print $1, $2, $5, $7 }'
}
printf '%-5s %-4s %-3s %-10s %12s %9s %9s\n' round test P server 'requests/s' 'p50 ms' 'p99 ms'
declare -A rps
for round in $(seq "$ROUNDS"); do
  for P in 1 16; do
    for server in redis redis-aof dynakv; do
      case $server in redis) port=$RPORT ;; redis-aof) port=$APORT ;; dynakv) port=$DPORT ;; esac
      while read -r test r p50 p99; do
        printf '%-5s %-4s %-3s %-10s %12s %9s %9s\n' "$round" "$test" "$P" "$server" "$r" "$p50" "$p99"
        rps[$test-$P-$server]+="$r "
      done < <(run "$port" "$P")
    done
  done
done
# median LIST -> the median of a space-separated list of numbers
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo
echo "medians of $ROUNDS rounds (requests/s):"
for P in 1 16; do
  for test in SET GET; do
    d=$(median "${rps[$test-$P-dynakv]}") r=$(median "${rps[$test-$P-redis]}") a=$(median "${rps[$test-$P-redis-aof]}")
    awk -v d="$d" -v r="$r" -v a="$a" -v t="$test" -v p="$P" -v f="$AOF_FSYNC" 'BEGIN {
      printf "%s -P %-2s dynakv %9.0f  redis %9.0f  ratio %.2f   redis-aof(appendfsync %s) %9.0f  ratio %.2f\n", t, p, d, r, d / r, f, a, d / a }'
  done
done

echo
echo "loading $LOADKEYS keys of 100 bytes into dynakv ($STORAGE)..."
redis-cli -p "$DPORT" FLUSHALL >/dev/null
python3 - "$LOADKEYS" <<'PY' | redis-cli -p "$DPORT" --pipe | tail -1
import sys
n = int(sys.argv[1]); v = b"x" * 100; out = sys.stdout.buffer
for i in range(n):
    k = b"key:%d" % i
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$100\r\n%s\r\n" % (len(k), k, v))
PY
echo "dbsize: $(redis-cli -p "$DPORT" DBSIZE)"
echo "dynakv RSS after load: $(awk '/VmRSS/ {printf "%.0f MiB", $2/1024}' /proc/$DPID/status)"
[ "$STORAGE" = disk ] && echo "dynakv data dir: $(du -sh "${DYNAKV_DATA[0]}" | cut -f1)"
