#!/usr/bin/env bash
# What an idle client connection costs: RSS of redis-server and of a dynakv node before
# and after $CONNS (default 10000) connections that each sent one PING and then sit
# idle, in one run on this machine:
#
#   bench/idle-conns.sh
#   CONNS=2000 DYNAKV_ARGS="--io-model goroutine" bench/idle-conns.sh
#
# Prints each server's RSS before and after, the bytes per connection, and dynakv's
# ratio to redis-server (the event-loop issue's target: at most 2x). DYNAKV_ARGS are
# extra flags for the dynakv node (one --storage $STORAGE node, disk by default).
# SUMMARY=FILE appends "name value" lines of the figures for bench/table.sh.
# Needs redis-server and redis-cli (make tools) and /usr/bin/python3.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-10000}
STORAGE=${STORAGE:-disk}
read -r -a XARGS <<<"${DYNAKV_ARGS:-}"
. bench/lib.sh
[ "$(ulimit -n)" -gt $((CONNS + 64)) ] || ulimit -n $((CONNS + 1024))

RPORT=$(free_ports 1)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --maxclients $((CONNS + 100)) \
  --daemonize no >"$work/redis.log" 2>&1 &
RPID=$!
pids+=("$RPID")
dynakv_launch "$work/dynakv.env" --nodes 1 --name idle --dir "$work" --storage "$STORAGE" -- \
  --max-clients $((CONNS + 100)) ${XARGS[@]+"${XARGS[@]}"}
pids+=("$LAUNCH_PID")
DPORT=${DYNAKV_RESP[0]##*:} DPID=${DYNAKV_PID[0]}
for _ in $(seq 100); do redis-cli -p "$RPORT" PING >/dev/null 2>&1 && break; sleep 0.1; done

# measure NAME PORT PID -> "NAME before_kib after_kib bytes_per_conn"
measure() {
  /usr/bin/python3 - "$@" "$CONNS" <<'PY'
import socket, sys, time
name, port, pid, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
def rss():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
time.sleep(1)
before = rss()
conns = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"PING\r\n")
    conns.append(s)
    if len(conns) % 500 == 0 or i == n - 1:  # read the PONGs of the last 500 in one pass
        for c in conns[-500:]:
            got = b""
            while not got.endswith(b"\r\n"):
                chunk = c.recv(64)
                if not chunk:
                    sys.exit(f"{name}: connection {i} closed: {got!r}")
                got += chunk
            if got != b"+PONG\r\n":
                sys.exit(f"{name}: connection {i} answered {got!r}")
time.sleep(2)
after = rss()
print(name, before, after, (after - before) * 1024 // n)
for c in conns:
    c.close()
PY
}
printf '%-8s %7s %12s %12s %12s\n' server conns 'RSS before' 'RSS after' 'per conn'
declare -A per
while read -r name before after bytes; do
  printf '%-8s %7d %9d KiB %9d KiB %8d B\n' "$name" "$CONNS" "$before" "$after" "$bytes"
  per[$name]=$bytes
  summary "conns.$name.before_kib" "$before"; summary "conns.$name.after_kib" "$after"
  summary "conns.$name.per_conn_bytes" "$bytes"
done < <(measure redis "$RPORT" "$RPID"; measure dynakv "$DPORT" "$DPID")
awk -v d="${per[dynakv]}" -v r="${per[redis]}" 'BEGIN { if (r > 0) printf "dynakv/redis per connection: %.2fx\n", d / r }'
