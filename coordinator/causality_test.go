package coordinator

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/vclock"
)

// Regression test for issue 15's finding 4: pruning never drops the coverage a
// write's own context supplies.

// TestPruneKeepsCoverageOfContext: a key with more than MaxEntries actors. A
// client reads v from replica b, then writes with that
// context through a, whose own copy is behind (it missed every earlier write).
// The write covers v, so once the replicas sync v must be gone; before, a pruned
// the entries that only the context supplied (active 0, so first to go) and v
// came back as a sibling of the write.
func TestPruneKeepsCoverageOfContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestCluster(t, 3, nil)
		defer tc.Close()
		ctx := context.Background()
		key := []byte("k")
		pl := tc.prefs("k")
		a, b, c := pl[0], pl[1], pl[2]
		// The record b and c hold: v under actor "a00" (first in actor order), and
		// idle entries of MaxEntries other actors, all long inactive.
		var rec record.Record
		rec.Str.Entries = append(rec.Str.Entries, vclock.Entry{Actor: "a00", Counter: 7, Values: []vclock.Value{value("v")}, Active: 1})
		for i := 1; i <= vclock.MaxEntries; i++ {
			rec.Str.Entries = append(rec.Str.Entries, vclock.Entry{Actor: fmt.Sprintf("a%02d", i), Counter: uint64(i), Active: int64(1 + i)})
		}
		for _, n := range []string{b, c} {
			if _, err := tc.stores[n].Update(key, mergeInto(rec)); err != nil {
				t.Fatal(err)
			}
		}
		read, err := tc.cos[b].Get(ctx, key, ReadOptions{Local: true})
		if err != nil || !slices.Equal(data(read), []string{"v"}) {
			t.Fatalf("DGET: %v, %v", data(read), err)
		}
		if !tc.local(a, "k").Empty() {
			t.Fatal("a is not behind")
		}
		if _, err := tc.cos[a].Put(ctx, key, read.Str.Join(), value("w"), WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		got, err := tc.cos[a].Get(ctx, key, ReadOptions{R: 3})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(data(got), []string{"w"}) {
			t.Fatalf("after a DPUT with the context that read v: %v (%s), want w alone", data(got), fmtRecord(got))
		}
	})
}

func fmtRecord(rec record.Record) string {
	var b []byte
	for i, e := range rec.Str.Entries {
		if i > 0 {
			b = append(b, ' ')
		}
		b = fmt.Appendf(b, "%s:%d@%d%q", e.Actor, e.Counter, e.Active, data(record.String(vclock.Set{Entries: []vclock.Entry{e}})))
	}
	return string(b)
}
