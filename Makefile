# dynakv — see README.md. Every target works on a fresh machine with Go installed;
# `make tools` installs the external programs some tests use (redis-cli, redis-benchmark).

GO        ?= go
BIN       := bin/dynakv
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
FUZZTIME  ?= 30s
PKGS      := ./...

.PHONY: all build run test test-short soak fuzz bench bench-cluster bench-aae bench-idle bench-compare bench-table lint tools clean chaos chaos-zones compat compat-redis compat-memcached compat-suites

all: build

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/dynakv

# A local 3-node cluster (N=3, R=2, W=2) in one process, data under ./data/; it
# prints how to reach each node. Ctrl-C stops it.
run: build
	./$(BIN) demo --nodes 3

# The whole suite, race detector on. compat/ builds the binary itself and uses
# redis-cli/redis-benchmark when installed (`make tools`), skipping those parts otherwise.
test:
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

test-short:
	$(GO) test -short -count=1 $(PKGS)

# The cluster simulation over many more seeds than `make test` runs (SEEDS, default 5000).
SEEDS ?= 5000
soak:
	DYNAKV_SIM_SEEDS=$(SEEDS) $(GO) test -count=1 -timeout 60m -run 'TestSim$$' ./coordinator/

# Everything issue 5 names, from a fresh machine: installs the tools, then the
# real-process tests with real clients (compat/), then both servers' own suites.
compat: build tools
	$(GO) test -race -count=1 -v ./compat/...
	$(MAKE) compat-suites

# Redis 7's own Tcl suite (Debian's redis source package) against a dynakv node, a
# 3-node cluster and redis-server; fails if a dynakv count drops below
# compat/suites/redis/floor.txt. REDIS_SUITE_ARGS="--results compat/RESULTS.md"
# rewrites the table.
compat-redis:
	scripts/redis-suite.sh $(REDIS_SUITE_ARGS)

# memcached's own t/ suite (Debian's source package) against a dynakv node, a 3-node
# cluster and real memcached; fails below compat/suites/memcached/floor.txt. Installs
# what it needs with apt (root or sudo). Counts: compat/RESULTS.md.
compat-memcached:
	scripts/memcached-suite.sh

# Five nodes in network namespaces under a fault schedule (kill -9, rolling kills,
# SIGSTOP, partitions, slow links, clock offset, full disk, join/leave/remove), with
# RESP and memcached clients and a 3 s tombstone grace, then the history checker's
# verdict (compat/chaos). Needs root; skips otherwise. CHAOS_ARGS adds flags
# (--seed N to replay a schedule).
CHAOS_DURATION ?= 5m
chaos: build
	$(GO) build -o bin/dynakv-chaos ./compat/chaos
	./bin/dynakv-chaos --duration $(CHAOS_DURATION) $(CHAOS_ARGS)

# The same schedule over zones: six nodes round-robin in three zones (--zone z1..z3)
# plus a spare, a simulated WAN of 20-50 ms one way between zones on the internode
# transport, and zone-down faults (every node of a zone killed at once, or the zone
# cut off), with p50/p99 of reads and writes in and out of them. History and logs
# under bin/chaos-zones/. CI runs it for 1m after the 2m run above.
CHAOS_ZONES_DURATION ?= 2m
chaos-zones: build
	$(GO) build -o bin/dynakv-chaos ./compat/chaos
	./bin/dynakv-chaos --duration $(CHAOS_ZONES_DURATION) --zones 3 --out bin/chaos-zones $(CHAOS_ARGS)

# Both servers' own suites.
compat-suites: compat-redis compat-memcached

# Every fuzz target for FUZZTIME (30s by default; FUZZTIME_CORE for those issue 6
# names and resp's differential FuzzFramerSpans), two at a time with one worker
# each; one summary line per target. A crash fails the run and leaves its input
# under <pkg>/testdata/fuzz/<Target>/ to commit with the fix. scripts/fuzz.sh lists
# the knobs (FUZZ_JOBS, FUZZ_MATCH, ...).
FUZZTIME_CORE ?= $(FUZZTIME)
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) FUZZTIME_CORE=$(FUZZTIME_CORE) scripts/fuzz.sh

bench:
	$(GO) test -run='^$$' -bench=. -benchmem $(PKGS)

# redis-benchmark against a local 3-node cluster and redis-server, side by side.
bench-cluster:
	bench/cluster-benchmark.sh

# Foreground throughput and p99 while anti-entropy refills a wiped node, vs off.
bench-aae:
	bench/aae-benchmark.sh

# RSS per idle client connection, dynakv against redis-server (CONNS, default 10000).
bench-idle:
	bench/idle-conns.sh

# dynakv bench --compare: redis-server, memcached, the Go baseline (the ceiling of
# the network model), a dynakv node and a 3-node cluster started as child processes
# and measured side by side (SETs, then GETs, both protocols); prints ratios and
# writes bin/bench-compare.{json,html}. Needs
# redis-server and memcached (make tools); BENCH_ARGS replaces the workload flags.
BENCH_ARGS ?= --conns 50 --pipeline 1 --requests 200000 --keys 100000 --value-size 100
bench-compare: build
	./$(BIN) bench --compare --baseline $(BENCH_ARGS) --json bin/bench-compare.json --html bin/bench-compare.html

# The event-loop issue's whole table (bench/table.sh): 1 node and 3 nodes with
# redis-benchmark P1/P16, memcached protocol, p99, idle connections, the bulk load and
# RSS, side by side with redis-server, memcached and go-baseline-evloop, medians of
# ROUNDS (3) alternating rounds; prints Markdown, also in bin/bench-table.md. About
# 20 minutes on an idle machine. Needs make tools.
bench-table: build
	bench/table.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# External programs the compat tests use. Debian/Ubuntu.
tools:
	./scripts/install-tools.sh

clean:
	rm -rf bin data
