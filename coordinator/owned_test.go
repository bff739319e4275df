package coordinator

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/vclock"
)

// poison overwrites b, as a front end's next read overwrites the input buffer
// a request's key and value were parsed from.
func poison(b []byte) {
	for i := range b {
		b[i] = 'X'
	}
}

// TestBackgroundOwnsWhatItKeeps: the work a request leaves running after it
// returns (a replica write past W that fails and leaves a hint, a read repair
// after a slow replica's late answer, a GetBatch's message still in flight)
// uses copies of the caller's key and value, not the caller's buffers: the
// caller overwrites them once the call returned (under -race, a data race
// otherwise) and every replica and hint still holds the original key and
// value, none the overwritten one.
func TestBackgroundOwnsWhatItKeeps(t *testing.T) {
	const key, val = "own-key", "own-value"
	t.Run("write hint", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tc := newDetectCluster(t, 3, time.Hour)
			defer tc.Close()
			pl := tc.prefs(key)
			tc.net.Slow(pl[2], -1) // its write fails at the deadline: a hint
			kb, vb := []byte(key), []byte(val)
			if _, err := tc.cos[pl[0]].Put(context.Background(), kb, nil, vclock.Value{Data: vb, Timestamp: 1}, WriteOptions{W: 2}); err != nil {
				t.Fatal(err)
			}
			poison(kb)
			poison(vb)
			time.Sleep(3 * time.Second)
			if h, ok := tc.hint(pl[0], pl[2], key); !ok || !slices.Equal(data(h), []string{val}) {
				t.Errorf("hint for %s: %v %v, want %q", pl[2], data(h), ok, val)
			}
			tc.checkUnpoisoned(key, val)
		})
	})
	for _, batched := range []bool{false, true} {
		name := map[bool]string{false: "read repair", true: "batched read repair"}[batched]
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tc := newDetectCluster(t, 3, time.Hour)
				defer tc.Close()
				pl := tc.prefs(key)
				old := vclock.Update(vclock.Set{}, nil, "w:1", value("stale"), 1, 1)
				cur := vclock.Update(old, old.Join(), "w:1", value(val), 2, 2)
				for i, o := range pl[:3] {
					rec := cur
					if i == 1 {
						rec = old
					}
					if _, err := tc.stores[o].Update([]byte(key), mergeInto(record.String(rec))); err != nil {
						t.Fatal(err)
					}
				}
				// pl[1] answers after ReplicaTimeout: pl[2] answers for it, and
				// its stale record, arriving after the read returned, is repaired.
				tc.net.Slow(pl[1], 400*time.Millisecond)
				kb := []byte(key)
				co := tc.cos[pl[0]]
				var rec record.Record
				var err error
				if batched {
					res := co.GetBatch(context.Background(), [][]byte{kb, []byte("other")}, ReadOptions{})
					rec, err = res[0].Record, res[0].Err
				} else {
					rec, err = co.Get(context.Background(), kb, ReadOptions{})
				}
				if err != nil || !slices.Equal(data(rec), []string{val}) {
					t.Fatalf("read: %v, %v", data(rec), err)
				}
				poison(kb)
				time.Sleep(3 * time.Second)
				tc.net.Slow(pl[1], 0)
				if got := data(tc.local(pl[1], key)); !slices.Equal(got, []string{val}) {
					t.Errorf("%s after read repair: %v, want %q", pl[1], got, val)
				}
				tc.checkUnpoisoned(key, val)
			})
		})
	}
}

// checkUnpoisoned checks that no node holds a record or hint under a poisoned
// key, or a poisoned value under key.
func (tc *testCluster) checkUnpoisoned(key, val string) {
	tc.t.Helper()
	bad := bytes.Repeat([]byte("X"), len(key))
	for _, n := range tc.names {
		if rec, found, _ := tc.stores[n].Get(bad); found {
			tc.t.Errorf("%s holds %v under the overwritten key", n, data(rec))
		}
		for _, o := range tc.names {
			if _, found := tc.hint(n, o, string(bad)); found {
				tc.t.Errorf("%s holds a hint for %s under the overwritten key", n, o)
			}
			if h, found := tc.hint(n, o, key); found && slices.Contains(data(h), string(bytes.Repeat([]byte("X"), len(val)))) {
				tc.t.Errorf("%s holds a hint for %s with the overwritten value", n, o)
			}
		}
		if slices.Contains(data(tc.local(n, key)), string(bytes.Repeat([]byte("X"), len(val)))) {
			tc.t.Errorf("%s holds the overwritten value", n)
		}
	}
}
