#!/usr/bin/env bash
# The event-loop issue's whole table in one command (`make bench-table`): dynakv
# side by side with redis-server, memcached and go-baseline-evloop (dynakv's own event
# loops with only a map behind them: the ceiling of its network model), every
# throughput the median of $ROUNDS alternating rounds (default 3). It runs, one after
# the other, on an otherwise idle machine:
#
#   bench/redis-benchmark.sh    1 node: redis-benchmark P1 and P16, p99, then the bulk
#                               load of $LOADKEYS SETs with redis-cli --pipe and RSS
#                               after it and after $IDLE_WAIT s idle (default 120)
#   bench/cluster-benchmark.sh  3 nodes N=3 R=2 W=2, P1 and P16
#   dynakv bench --compare      memcached protocol SET / GET against memcached
#   bench/idle-conns.sh         RSS with $CONNS idle client connections (10000)
#
# and prints the table in Markdown, with each target and whether it is met; the table
# also goes to bin/bench-table.md and every raw figure to bin/bench-table.txt, the
# scripts' own output to bin/bench-table.log. About 20 minutes with the defaults;
# REQUESTS=20000 ROUNDS=1 LOADKEYS=100000 IDLE_WAIT=5 CONNS=1000 checks the plumbing in
# two. Needs redis-server, redis-benchmark, redis-cli, memcached (make tools).
set -euo pipefail
cd "$(dirname "$0")/.."
export ROUNDS=${ROUNDS:-3} REQUESTS=${REQUESTS:-200000} LOADKEYS=${LOADKEYS:-1000000}
export IDLE_WAIT=${IDLE_WAIT:-120} CONNS=${CONNS:-10000}
command -v memcached >/dev/null || { echo "missing memcached: run make tools" >&2; exit 1; }
mkdir -p bin
out=bin/bench-table.txt log=bin/bench-table.log
export SUMMARY=$PWD/$out
: >"$out"
: >"$log"
step() { echo "== $*" | tee -a "$log" >&2; }

step "1 node, redis-benchmark and bulk load (bench/redis-benchmark.sh)"
BASELINE=1 bench/redis-benchmark.sh >>"$log" 2>&1
step "3 nodes (bench/cluster-benchmark.sh)"
bench/cluster-benchmark.sh >>"$log" 2>&1
step "memcached protocol (dynakv bench --compare)"
go build -o bin/dynakv ./cmd/dynakv
./bin/dynakv bench --compare --no-cluster --baseline --rounds "$ROUNDS" --conns 50 --pipeline 1 \
  --requests "$REQUESTS" --keys 100000 --value-size 100 -q --json bin/bench-table-compare.json >>"$log" 2>&1
/usr/bin/python3 - bin/bench-table-compare.json >>"$out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for res in r["results"]:
    if res["protocol"] != "memcache":
        continue
    for op in res["ops"]:
        print(f"mc.{op['op']}.{res['name']}.rps {op['ops_per_sec']:.0f}")
PY
step "idle connections (bench/idle-conns.sh)"
bench/idle-conns.sh >>"$log" 2>&1

/usr/bin/python3 - "$out" "$CONNS" "$IDLE_WAIT" <<'PY' | tee bin/bench-table.md
import sys
conns, idle = int(sys.argv[2]), int(sys.argv[3])
v = {}
for line in open(sys.argv[1]):
    k, x = line.split()
    v[k] = float(x)
def g(k):
    return v.get(k)
rows = []
def row(workload, dyn, ref, base, unit, target, higher=True, fmt="{:,.0f}", note=""):
    d, r, b = g(dyn), g(ref), (g(base) if base else None)
    if d is None or r is None:
        rows.append((workload, "-", "-", "-", "-", f"{target:g}x", "not measured"))
        return
    ratio = d / r
    met = ratio >= target if higher else ratio <= target
    rows.append((workload, fmt.format(d) + unit, fmt.format(r) + unit,
                 (fmt.format(b) + unit) if b is not None else "",
                 f"{ratio:.2f}x", ("≥ " if higher else "≤ ") + f"{target:g}x",
                 ("met" if met else "**not met**") + note))
for p, ts, tg in (("1", 0.85, 1.0), ("16", 0.5, 0.9)):
    row(f"1 node, redis-benchmark P{p} SET", f"rb.SET.P{p}.dynakv.rps", f"rb.SET.P{p}.redis.rps", f"rb.SET.P{p}.go-baseline-evloop.rps", "/s", ts)
    row(f"1 node, redis-benchmark P{p} GET", f"rb.GET.P{p}.dynakv.rps", f"rb.GET.P{p}.redis.rps", f"rb.GET.P{p}.go-baseline-evloop.rps", "/s", tg)
row("1 node, memcached protocol SET", "mc.SET.dynakv-1.rps", "mc.SET.memcached.rps", "mc.SET.go-baseline-evloop.rps", "/s", 0.8)
row("1 node, memcached protocol GET", "mc.GET.dynakv-1.rps", "mc.GET.memcached.rps", "mc.GET.go-baseline-evloop.rps", "/s", 1.0)
for p, ts, tg in (("1", 0.4, 0.6), ("16", 0.3, 0.5)):
    for mode in ("one", "spread"):
        row(f"3 nodes ({mode}), P{p} SET", f"cl.SET.P{p}.{mode}.rps", f"cl.SET.P{p}.redis.rps", None, "/s", ts)
        row(f"3 nodes ({mode}), P{p} GET", f"cl.GET.P{p}.{mode}.rps", f"cl.GET.P{p}.redis.rps", None, "/s", tg)
for t in ("SET", "GET"):
    row(f"p99 at P1, 50 clients, 1 node, {t}", f"rb.{t}.P1.dynakv.p99", f"rb.{t}.P1.redis.p99", f"rb.{t}.P1.go-baseline-evloop.p99", " ms", 2.0, higher=False, fmt="{:.2f}")
row(f"RSS per idle connection ({conns:,})", "conns.dynakv.per_conn_bytes", "conns.redis.per_conn_bytes", None, " B", 2.0, higher=False)
row(f"RSS with {conns:,} idle connections, whole process", "conns.dynakv.after_kib", "conns.redis.after_kib", None, " KiB", 2.0, higher=False)
n = int(v.get("load.keys", 0))
if n and "load.dynakv.secs" in v and "load.redis.secs" in v:
    v["load.dynakv.rate"] = n / v["load.dynakv.secs"]
    v["load.redis.rate"] = n / v["load.redis.secs"]
row(f"bulk load, {n:,} SETs of 100 B, redis-cli --pipe", "load.dynakv.rate", "load.redis.rate", None, " SETs/s", 0.4)
row("RSS after that load", "load.dynakv.rss_mib", "load.redis.rss_mib", None, " MiB", 2.0, higher=False)
row(f"RSS after {idle} s idle", "idle.dynakv.rss_mib", "idle.redis.rss_mib", None, " MiB", 2.0, higher=False)
print("| workload | dynakv | redis-server / memcached | go-baseline-evloop | ratio | target | |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
PY
echo "(bin/bench-table.md; raw figures in $out; the runs' output in $log)"
