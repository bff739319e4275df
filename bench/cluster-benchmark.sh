#!/usr/bin/env bash
# Side-by-side redis-benchmark of a local 3-node dynakv cluster (N=3, R=2, W=2, three
# processes) and redis-server on this machine, in one run:
#
#   bench/cluster-benchmark.sh
#   REQUESTS=50000 STORAGE=memory bench/cluster-benchmark.sh
#
# Runs  redis-benchmark -t set,get -n $REQUESTS -c 50 -r 100000 -d 100 -P $P  for each
# P in $PIPELINES (default "1 16") against redis-server (--save '' --appendonly no) and
# against the cluster's first node, then with the 50 connections spread over the three
# nodes, and prints requests/s, p50, p99 and the ratio to redis-server; ROUNDS=3
# repeats that in alternation and prints the medians. PROFILE=1 also saves a 10 s CPU profile of the
# first node during the SET run to bench/cluster-set.pprof.
# DYNAKV_ARGS adds flags to every node (e.g. "--io-model goroutine"). SUMMARY=FILE
# appends "name value" lines of every figure for bench/table.sh.
# Needs redis-server, redis-benchmark, redis-cli (make tools).
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-200000}
PIPELINES=${PIPELINES:-1 16}
ROUNDS=${ROUNDS:-1}
STORAGE=${STORAGE:-disk}
. bench/lib.sh

RPORT=$(free_ports 1)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >"$work/redis.log" 2>&1 &
pids+=($!)
# Three nodes bench1..3, each seeing the three alive before this goes on.
read -r -a XARGS <<<"${DYNAKV_ARGS:-}"
dynakv_launch "$work/cluster.env" --nodes 3 --name bench --dir "$work" --storage "$STORAGE" --secret bench \
  ${XARGS[@]+-- "${XARGS[@]}"}
pids+=("$LAUNCH_PID")
RESP=("${DYNAKV_RESP[@]##*:}") HTTP=("${DYNAKV_HTTP[@]}")
for _ in $(seq 100); do redis-cli -p "$RPORT" PING >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "${RESP[0]}" INFO cluster | tr -d '\r' | grep -E '^(cluster_members|n|r|w):'

# run PORT REQUESTS CLIENTS -> lines "TEST rps p50 p99" (pipeline $P)
run() {
  redis-benchmark -p "$1" -t set,get -n "$2" -c "$3" -r 100000 -d 100 -P "$P" --csv 2>/dev/null |
    awk -F, 'NR>1 { gsub(/"/,""); print $1, $2, $5, $7 }'
}
wait_spread() {
  local tmp=$work/spread jobs=()
  rm -f "$tmp".*
  for i in 0 1 2; do run "${RESP[$i]}" $((REQUESTS / 3)) 17 >"$tmp.$i" & jobs+=($!); done
  for j in "${jobs[@]}"; do wait "$j"; done
  for test in SET GET; do
    awk -v t="$test" '$1 == t { r += $2; p50 += $3; if ($4 > p99) p99 = $4; n++ }
      END { printf "%s %.2f %.3f %.3f\n", t, r, p50 / n, p99 }' "$tmp".*
  done
}
printf '%-5s %-4s %-26s %12s %9s %9s\n' round test server 'requests/s' 'p50 ms' 'p99 ms'
declare -A rps p99s
# record ROUND MODE P < "TEST rps p50 p99" lines: prints and keeps them for the medians
record() {
  local test r p50 p99
  while read -r test r p50 p99; do
    printf '%-5s %-4s %-26s %12s %9s %9s\n' "$1" "$test" "$2 P$3" "$r" "$p50" "$p99"
    rps[$test-$3-$2]+="$r " p99s[$test-$3-$2]+="$p99 "
  done
}
for round in $(seq "$ROUNDS"); do
  for P in $PIPELINES; do
    record "$round" redis "$P" < <(run "$RPORT" "$REQUESTS" 50)
    if [ "${PROFILE:-0}" = 1 ] && [ "$P" = 1 ] && [ "$round" = 1 ]; then
      (sleep 1; curl -s -H "Authorization: Bearer $("$DYNAKV" admin token --secret bench)" "http://${HTTP[0]}/debug/pprof/profile?seconds=10" -o bench/cluster-set.pprof) &
    fi
    record "$round" one "$P" < <(run "${RESP[0]}" "$REQUESTS" 50)
    record "$round" spread "$P" < <(wait_spread)
  done
done
echo
echo "medians of $ROUNDS rounds; one: 50 clients on the first node; spread: 17 on each node"
for P in $PIPELINES; do
  for test in SET GET; do
    for mode in redis one spread; do
      summary "cl.$test.P$P.$mode.rps" "$(median "${rps[$test-$P-$mode]}")"
      summary "cl.$test.P$P.$mode.p99" "$(median "${p99s[$test-$P-$mode]}")"
    done
    for mode in one spread; do
      awk -v a="$(median "${rps[$test-$P-$mode]}")" -v b="$(median "${rps[$test-$P-redis]}")" -v t="$test" -v m="$mode" -v p="$P" \
        'BEGIN { printf "ratio dynakv 3-node (%s) / redis %s P%s: %.2f\n", m, t, p, a / b }'
    done
  done
done
for i in 0 1 2; do
  redis-cli -p "${RESP[$i]}" INFO cluster | tr -d '\r' | grep -E '^(hints_pending|read_repairs|ops_forwarded):' | sed "s/^/bench$((i+1)) /"
done
