# dynakv — see README.md. Every target works on a fresh machine with Go installed;
# `make tools` installs the external programs some tests use (redis-cli, redis-benchmark).

GO        ?= go
BIN       := bin/dynakv
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
FUZZTIME  ?= 30s
PKGS      := ./...

.PHONY: all build run test test-short race fuzz bench lint tools clean compat

all: build

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/dynakv

# Until the cluster lands, `make run` starts one node on the default ports.
run: build
	@printf '%s\n' \
	  'dynakv: starting one node (data in ./data/dynakv1). Reach it with:' \
	  '  redis-cli -p 6379 SET k v; redis-cli -p 6379 DGET k     (Redis protocol, DGET/DPUT/DDEL)' \
	  '  printf "set k 0 0 1\r\nv\r\nget k\r\n" | nc -q1 127.0.0.1 11211   (memcached text protocol)' \
	  '  curl -s 127.0.0.1:9121/metrics                             (Prometheus metrics)' \
	  'Ctrl-C stops it.'
	./$(BIN) server --name dynakv1

# The whole suite, race detector on. compat/ builds the binary itself and uses
# redis-cli/redis-benchmark when installed (`make tools`), skipping those parts otherwise.
test:
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

test-short:
	$(GO) test -short -count=1 $(PKGS)

compat: build
	$(GO) test -race -count=1 -v ./compat/...

# Each fuzz target runs FUZZTIME (30s by default).
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$t"; $(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) $$pkg; \
	  done; \
	done

bench:
	$(GO) test -run='^$$' -bench=. -benchmem $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# External programs the compat tests use. Debian/Ubuntu.
tools:
	./scripts/install-tools.sh

clean:
	rm -rf bin data
