#!/usr/bin/env bash
# Foreground cost of anti-entropy: a local 3-node cluster (N=3, --storage memory,
# --hinted-handoff=false) loses its third node's data (it restarts empty after
# KEYS keys were written), then redis-benchmark measures SET and GET on the first
# node while anti-entropy copies everything back to the third, throttled by
# --aae-max-keys-per-sec. The same run with anti-entropy off is the baseline:
#
#   bench/aae-benchmark.sh
#   KEYS=200000 REQUESTS=200000 AAE_RATE=50000 bench/aae-benchmark.sh
#
# Prints requests/s and p99 for both and the p99 ratio (on/off), and how many keys
# the third node got back during the run. Needs redis-benchmark, redis-cli.
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-100000}
REQUESTS=${REQUESTS:-200000}
AAE_RATE=${AAE_RATE:-20000}
. bench/lib.sh

declare -a RESP GOSSIP
# launch ENV ARGS...: a launcher of nodes named aae<i>, in-memory, hinted handoff
# off, anti-entropy every $interval (off when negative).
launch() {
  local env=$1
  shift
  dynakv_launch "$env" --name aae --dir "$work/$mode" --storage memory --secret bench "$@" \
    -- --hinted-handoff=false --aae-interval "$interval" --aae-max-keys-per-sec "$AAE_RATE"
  pids+=("$LAUNCH_PID")
}
field() { redis-cli -p "$1" INFO cluster | tr -d '\r' | awk -F: -v f="$2" '$1 == f {print $2}'; }
wait_alive() { for _ in $(seq 300); do [ "$(field "${RESP[0]}" cluster_members_alive)" = "$1" ] && return; sleep 0.1; done; }

printf '%-14s %-4s %12s %9s %9s\n' anti-entropy test 'requests/s' 'p50 ms' 'p99 ms'
declare -A p99
for mode in off on; do
  interval=-1s; [ $mode = on ] && interval=1s
  launch "$work/$mode.env" --nodes 3
  RESP=("${DYNAKV_RESP[@]##*:}") GOSSIP=("${DYNAKV_GOSSIP[@]}") third=${DYNAKV_PID[2]}
  # Preload KEYS writes over a keyspace ten times larger (about 95% distinct keys);
  # the measured run then uses only the first tenth of it, so most of what the third
  # node gets back comes from anti-entropy, not from the measured writes.
  redis-benchmark -p "${RESP[0]}" -t set -n "$KEYS" -r $((KEYS * 10)) -c 50 -d 100 -q >/dev/null 2>&1
  # The third node stops and starts again empty (--storage memory) under its name
  # and gossip address.
  kill "$third"
  while kill -0 "$third" 2>/dev/null; do sleep 0.05; done
  launch "$work/$mode-again.env" --nodes 1 --first 3 --gossip "${GOSSIP[2]}" --join "${GOSSIP[0]}" --members 3
  RESP[2]=${DYNAKV_RESP[0]##*:}
  wait_alive 3
  while read -r test r p50 p99v; do
    printf '%-14s %-4s %12s %9s %9s\n' "$mode" "$test" "$r" "$p50" "$p99v"; p99[$mode-$test]=$p99v
  done < <(redis-benchmark -p "${RESP[0]}" -t set,get -n "$REQUESTS" -c 50 -r "$KEYS" -d 100 --csv 2>/dev/null |
    awk -F, 'NR>1 { gsub(/"/,""); print $1, $2, $5, $7 }')
  repaired=0; for i in 0 1 2; do repaired=$((repaired + $(field "${RESP[$i]}" aae_keys_repaired))); done
  echo "  during the run anti-entropy repaired $repaired keys (all nodes)"
  dynakv_stop "${pids[@]}"
  pids=()
done
for t in SET GET; do
  awk -v on="${p99[on-$t]}" -v off="${p99[off-$t]}" -v t=$t 'BEGIN { printf "%s p99 with anti-entropy repairing / without: %.2f\n", t, on/off }'
done
