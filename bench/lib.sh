# Shared by the bench/*.sh scripts (sourced, not run): checks the tools, builds
# bin/dynakv, makes a work directory, sources scripts/lib.sh (dynakv_launch,
# free_ports), and on exit stops every process in pids (dynakv launchers stop their
# nodes). DYNAKV_BIN runs another dynakv binary instead (an A/B of two builds).
for t in redis-server redis-benchmark redis-cli; do
  command -v $t >/dev/null || { echo "missing $t: run make tools" >&2; exit 1; }
done
go build -o bin/dynakv ./cmd/dynakv
DYNAKV=${DYNAKV_BIN:-bin/dynakv}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
. scripts/lib.sh

# summary NAME VALUE appends "NAME VALUE" to $SUMMARY when it is set: the figures
# bench/table.sh gathers from the other scripts.
summary() { [ -z "${SUMMARY:-}" ] || echo "$1 $2" >>"$SUMMARY"; }

# median LIST -> the median of a space-separated list of numbers
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
