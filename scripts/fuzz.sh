#!/usr/bin/env bash
# Runs every fuzz target of the module (each `func FuzzXxx(f *testing.F)` in a
# _test.go file) for a bounded time, FUZZ_JOBS targets at a time with one fuzzing
# worker each (-parallel=1), and prints one summary line per target. Fails if any
# target fails; a target that finds a crash leaves the input under its package's
# testdata/fuzz/<Target>/, where it becomes a regression test: commit it with the fix.
#
#   FUZZTIME       time per target (default 30s)
#   FUZZTIME_CORE  time for the targets issue 6 names: the RESP parser, the
#                  memcached parser (its tokenizer and its byte-slice reader, the
#                  latter against the bufio path it replaced), the internode message
#                  decoder, the client context decoders (vclock's version 1 and
#                  record's version 2), the record decoder, record's delta
#                  decoder (issue 20's write and hint payload), the crdt decoders
#                  of issue 20 (context, field, element delta), storage's element
#                  key decoder; and for the RESP
#                  parser's differential target (its spans against its canonical
#                  frames parsed by redcon) (default: FUZZTIME)
#   FUZZ_JOBS      targets run at once (default 2: a 2-core machine)
#   FUZZ_MINIMIZE  -fuzzminimizetime (default 10s), so minimizing an input cannot eat
#                  a target's whole budget
#   FUZZ_MATCH     only targets whose "pkg/Target" matches this extended regexp
#
# Go 1.26's fuzzing coordinator can fail a target with a bare "context deadline
# exceeded" when -fuzztime ends while a worker is busy (golang/go#75804, fixed in
# Go 1.27): no input failed and none is written. Such a run is repeated once, and
# reported as a flake, not a failure, if it happens again.
#
#   FUZZ_KEEP      after a passing run, copy inputs the fuzzer found interesting
#                  (smallest first, none over 16KB) from the Go cache into the
#                  target's testdata/fuzz/<Target>/ until it holds this many files
#                  (default 0: copy nothing); how the committed corpora were grown
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-30s}
FUZZTIME_CORE=${FUZZTIME_CORE:-$FUZZTIME}
FUZZ_JOBS=${FUZZ_JOBS:-2}
FUZZ_MINIMIZE=${FUZZ_MINIMIZE:-10s}
FUZZ_MATCH=${FUZZ_MATCH:-.}
FUZZ_KEEP=${FUZZ_KEEP:-0}
CORE="resp/FuzzServer resp/FuzzFramerSpans memcache/FuzzParse memcache/FuzzReader peer/FuzzDecodeMessage vclock/FuzzParseContext storage/FuzzDecodeRecord record/FuzzDecodeRecord record/FuzzParseContext record/FuzzDecodeDelta crdt/FuzzDecodeContext crdt/FuzzDecodeField crdt/FuzzDecodeElemDelta storage/FuzzParseElemKey"

# Targets as "dir/Target", the core ones first: they run longest.
mapfile -t all < <(grep -rHo --include='*_test.go' --exclude-dir=node_modules --exclude-dir=testdata --exclude-dir='.?*' '^func Fuzz[A-Za-z0-9_]*(f \*testing\.F)' . |
	sed -E 's#^\./(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*#\1/\2#' | sort -u | grep -E -- "$FUZZ_MATCH" || true)
targets=()
for t in "${all[@]}"; do [[ " $CORE " == *" $t "* ]] && targets+=("$t"); done
for t in "${all[@]}"; do [[ " $CORE " == *" $t "* ]] || targets+=("$t"); done
for c in $CORE; do
	if [[ "$FUZZ_MATCH" == . && " ${all[*]} " != *" $c "* ]]; then
		echo "fuzz: core target $c not found" >&2
		exit 1
	fi
done
if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz: no target matches $FUZZ_MATCH" >&2
	exit 1
fi

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
start=$(date +%s)
echo "== fuzz: ${#targets[@]} targets, $FUZZ_JOBS at a time, $FUZZTIME each ($FUZZTIME_CORE for the core ones)"

# run_one dir/Target: fuzzes one target and prints its summary line; the exit status
# is go test's.
run_one() {
	local t=$1 dir=${1%/*} name=${1##*/} time=$FUZZTIME log="$logs/${1//\//_}.log" t0 rc=0
	[[ " $CORE " == *" $t "* ]] && time=$FUZZTIME_CORE
	t0=$(date +%s)
	local stats crasher attempt note=""
	for attempt in 1 2; do
		rc=0
		"$GO" test -run='^$' -fuzz="^$name\$" -fuzztime="$time" -fuzzminimizetime="$FUZZ_MINIMIZE" \
			-parallel=1 -timeout=30m "./$dir" >"$log" 2>&1 || rc=$?
		crasher=$(sed -nE 's#^ *Failing input written to (testdata/fuzz/.*)$#\1#p' "$log" | head -1)
		if [ $rc -ne 0 ] && [ -z "$crasher" ] && coordinator_flake "$log"; then
			note="after golang/go#75804 ('context deadline exceeded', no input failed)"
			[ $attempt -eq 1 ] && continue
			printf 'FLAKE %-34s %5s  %3ds  twice %s\n' "$t" "$time" $(($(date +%s) - t0)) "$note"
			return 0
		fi
		break
	done
	stats=$(grep -E '^fuzz: elapsed' "$log" | tail -1 | sed -E 's/^fuzz: elapsed: [^,]*, //; s/ \([0-9]+\/sec\)//') || true
	if [ $rc -eq 0 ]; then
		[ "$FUZZ_KEEP" -gt 0 ] && keep "$dir" "$name"
		printf 'ok    %-34s %5s  %3ds  %s%s\n' "$t" "$time" $(($(date +%s) - t0)) "$stats" "${note:+, rerun $note}"
		return 0
	fi
	printf 'FAIL  %-34s %5s  %3ds  %s\n' "$t" "$time" $(($(date +%s) - t0)) "${crasher:+crasher $dir/$crasher}"
	grep -vE '^fuzz: elapsed' "$log" | head -40 | sed 's/^/      /'
	return $rc
}

# coordinator_flake log: whether a failed run's only complaint is the fuzzing
# coordinator's "context deadline exceeded" (golang/go#75804).
coordinator_flake() {
	grep -qE '^ *context deadline exceeded$' "$1" &&
		! grep -qE 'panic:|Failing input|_test\.go:[0-9]+:' "$1"
}

# keep dir Target: grows dir/testdata/fuzz/Target to FUZZ_KEEP files from the cache
# of interesting inputs, then checks that the target still passes on them (they are
# dropped again otherwise).
keep() {
	local dir=$1 name=$2 cache corpus have added=() f
	cache="$("$GO" env GOCACHE)/fuzz/$("$GO" list "./$dir")/$name"
	corpus="$dir/testdata/fuzz/$name"
	[ -d "$cache" ] || return 0
	mkdir -p "$corpus"
	have=$(find "$corpus" -type f | wc -l)
	while read -r f; do
		[ "$have" -ge "$FUZZ_KEEP" ] && break
		[ -e "$corpus/${f##*/}" ] && continue
		cp "$f" "$corpus/" && added+=("$corpus/${f##*/}") && have=$((have + 1))
	done < <(find "$cache" -type f -size -16k -printf '%s %p\n' | sort -n | cut -d' ' -f2-)
	if [ ${#added[@]} -gt 0 ] && ! "$GO" test -count=1 -run="^$name\$" "./$dir" >/dev/null 2>&1; then
		rm -f "${added[@]}"
	fi
}

failed=()
declare -A running=() # pid -> target
for t in "${targets[@]}"; do
	while [ ${#running[@]} -ge "$FUZZ_JOBS" ]; do
		pid=""
		wait -n -p pid "${!running[@]}" || failed+=("${running[$pid]}")
		unset "running[$pid]"
	done
	run_one "$t" &
	running[$!]=$t
done
while [ ${#running[@]} -gt 0 ]; do
	pid=""
	wait -n -p pid "${!running[@]}" || failed+=("${running[$pid]}")
	unset "running[$pid]"
done

echo "== fuzz: ${#targets[@]} targets in $(($(date +%s) - start))s, ${#failed[@]} failed${failed:+: ${failed[*]}}"
if [ ${#failed[@]} -gt 0 ]; then
	echo "   Crashing inputs were written under <package>/testdata/fuzz/<Target>/: fix the bug and commit them." >&2
	exit 1
fi
