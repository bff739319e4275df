package record

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/dynakv/dynakv/vclock"
)

// The oracles below are copies of what storage and the coordinator computed from
// a string layer before record/ had typed layers (storage/store.go's Counts,
// ReapTime and GraveTime, storage/reaper.go's use of vclock.Bury, and
// coordinator/coordinator.go's localWrite), kept here so that the string-only
// equivalence tests compare against the code that ran, not against record's own.

func legacyCounts(s vclock.Set) bool {
	w, ok := vclock.Winner(s.Siblings())
	return ok && !w.Tombstone
}

func legacyReapTime(s vclock.Set) int64 {
	var at int64
	for v := range s.Values() {
		if v.Expiring() && (at == 0 || v.Expiry < at) {
			at = v.Expiry
		}
	}
	return at
}

func legacyGraveTime(s vclock.Set) int64 {
	var at int64
	for v := range s.Values() {
		if !v.Tombstone {
			return 0
		}
		at = max(at, v.Timestamp, v.Expiry, 1)
	}
	return at
}

// legacyWrite is the coordinator's localWrite of a string: Update, then Prune
// when the record has more than maxEntries entries.
func legacyWrite(cur vclock.Set, clk vclock.Clock, actor string, v vclock.Value, now int64, floor uint64, maxEntries int, minAge int64) vclock.Set {
	next := vclock.Update(cur, clk, actor, v, now, floor)
	if len(next.Entries) <= maxEntries {
		return next
	}
	return vclock.Prune(next, vclock.PruneOptions{
		Limit: maxEntries, Keep: actor, Needed: vclock.Needed(cur, clk), Now: now,
		MinAge: minAge, HardLimit: 5 * maxEntries,
	})
}

// stringHistory runs random string writes (SET, DEL, expiring values, stale and
// empty contexts), syncs and reaps at nActors replicas, calling visit with every
// replica's set after each step.
func stringHistory(rng *rand.Rand, nActors, steps int, visit func(step int, s vclock.Set, now int64)) {
	sets := make([]vclock.Set, nActors)
	t := now
	for step := range steps {
		t += rng.Int64N(50)
		i := rng.IntN(nActors)
		actor := fmt.Sprintf("n%d", i)
		switch op := rng.IntN(10); {
		case op < 5: // a write, with the local context, a stale one or none
			var clk vclock.Clock
			switch rng.IntN(3) {
			case 0:
				clk = sets[i].Join()
			case 1:
				clk = sets[rng.IntN(nActors)].Join()
			}
			v := vclock.Value{Data: []byte(fmt.Sprint(rng.IntN(1000))), Timestamp: t - rng.Int64N(20), Flags: uint32(rng.IntN(3))}
			switch rng.IntN(4) {
			case 0:
				v.Expiry = t + rng.Int64N(200)
			case 1:
				v = vclock.Value{Tombstone: true, Timestamp: t}
			}
			sets[i] = legacyWrite(sets[i], clk, actor, v, t, 1<<40+uint64(t), 3, 100)
		case op < 8:
			j := rng.IntN(nActors)
			sets[i] = vclock.Sync(sets[i], sets[j])
		default:
			sets[i], _ = vclock.Bury(sets[i], t)
		}
		visit(step, sets[i], t+rng.Int64N(300)-100)
	}
}

// TestStringEquivalence: on string-only records, Counts, ReapTime, GraveTime,
// Reap and Resolve give exactly what storage and plain GET computed from the
// string layer, and MergeSafe and UpdateString are vclock.Sync and the
// coordinator's write, byte for byte.
func TestStringEquivalence(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 15))
		var prev vclock.Set
		stringHistory(rng, 3+int(seed%3), 200, func(step int, s vclock.Set, at int64) {
			fail := func(format string, args ...any) {
				t.Helper()
				t.Fatalf("seed %d step %d: %s", seed, step, fmt.Sprintf(format, args...))
			}
			rec := String(s)
			if got, want := Counts(rec), legacyCounts(s); got != want {
				fail("Counts = %v, want %v", got, want)
			}
			if got, want := ReapTime(rec), legacyReapTime(s); got != want {
				fail("ReapTime = %d, want %d", got, want)
			}
			if got, want := GraveTime(rec), legacyGraveTime(s); got != want {
				fail("GraveTime = %d, want %d", got, want)
			}
			reaped, clears, changed := Reap(rec, at)
			buried, bchanged := vclock.Bury(s, at)
			if changed != bchanged || clears != nil || reaped.Typed() || !bytes.Equal(reaped.AppendBinary(nil), buried.AppendBinary(nil)) {
				fail("Reap = %+v %v %v, want vclock.Bury's %+v %v", reaped, clears, changed, buried, bchanged)
			}
			v := Resolve(rec, at)
			w, ok := vclock.Winner(s.Siblings())
			if live := ok && w.Live(at); live == v.Absent() {
				fail("Resolve absent = %v, plain GET live = %v", v.Absent(), live)
			}
			if !v.Absent() {
				if typ, _ := v.Type(); typ != Plain || len(v.Live) != 1 || !v.Str.Equal(w.Value) || v.Str.Dot != w.Dot {
					fail("Resolve = %+v, want the string winner %+v", v, w)
				}
			}
			m, err := MergeSafe(rec, String(prev))
			if err != nil || m.Typed() || !bytes.Equal(m.AppendBinary(nil), vclock.Sync(s, prev).AppendBinary(nil)) {
				fail("MergeSafe = %+v, %v; want vclock.Sync's", m, err)
			}
			if c := rec.Context(); c.Typed() || c.String() != s.Join().String() || c.Hash() != s.Join().Hash() {
				fail("Context %q, want the clock's %q", c.String(), s.Join().String())
			}
			// A write over it, with its own context, a stale one or none.
			clk := [...]vclock.Clock{s.Join(), prev.Join(), nil}[step%3]
			val := vclock.Value{Data: []byte("w"), Timestamp: at}
			got, clears := UpdateString(rec, StringWrite{
				Obs: Context{Clock: clk}, Actor: "n1", Value: val, Now: at, Floor: 1 << 41,
				Prune: vclock.PruneOptions{Limit: 3, MinAge: 100, HardLimit: 15},
			})
			want := legacyWrite(s, clk, "n1", val, at, 1<<41, 3, 100)
			if clears != nil || got.Typed() || !bytes.Equal(got.AppendBinary(nil), want.AppendBinary(nil)) {
				fail("UpdateString = %+v %v, want the coordinator's %+v", got, clears, want)
			}
			prev = s
		})
	}
}
