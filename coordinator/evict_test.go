package coordinator

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dynakv/dynakv/internal/memstore"
	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/peer/peertest"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/ring"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/vclock"
)

func stamped(s string, ts int64) vclock.Value { return vclock.Value{Data: []byte(s), Timestamp: ts} }

// plainGet is what plain GET answers from a record: the winner's data when it
// is live (at time 0: no expiry in these tests).
func plainGet(rec record.Record) (string, bool) {
	w, ok := vclock.Winner(rec.Str.Siblings())
	if !ok || !w.Live(0) {
		return "", false
	}
	return string(w.Data), true
}

// evictedTomb returns the tombstone Evict wrote into rec (by actor), if any.
func evictedTomb(rec record.Record, actor string) (vclock.Value, bool) {
	for _, e := range rec.Str.Entries {
		if e.Actor == actor && len(e.Values) > 0 && e.Values[0].Tombstone {
			return e.Values[0], true
		}
	}
	return vclock.Value{}, false
}

// evictKey is the key the eviction tests evict.
const evictKey = "evict"

// newEvictCluster starts a cluster of nodes whose key holds "old", stamped 100,
// on its three owners, and returns it with key's preference list.
func newEvictCluster(t *testing.T, nodes int, cfg func(*Config)) (*testCluster, []string) {
	tc := newTestCluster(t, nodes, cfg)
	pl := tc.prefs(evictKey)
	if _, err := tc.cos[pl[0]].Put(context.Background(), []byte(evictKey), nil, stamped("old", 100), WriteOptions{W: 3}); err != nil {
		t.Fatal(err)
	}
	return tc, pl
}

// TestEvictTombstone: the tombstone supersedes exactly the evicted record; a
// write concurrent with the eviction survives as a sibling on every replica and
// wins plain GET when it is stamped later than the evicted value, and plain GET
// answers absent when it is stamped earlier.
func TestEvictTombstone(t *testing.T) {
	for _, tt := range []struct {
		name     string
		concTS   int64 // the concurrent write's timestamp; the evicted value's is 100
		wantData string
		wantOK   bool
	}{
		{"concurrent write newer wins", 200, "conc", true},
		{"concurrent write older: absent", 50, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tc, pl := newEvictCluster(t, 3, func(c *Config) { c.Now = func() time.Time { return time.UnixMilli(5000) } })
				defer tc.Close()
				ctx, key := context.Background(), evictKey
				seen := tc.local(pl[1], key) // the evictor's sample
				// A write concurrent with the eviction (empty context), on every replica.
				conc, err := writtenRecord(tc.cos[pl[2]].Put(ctx, []byte(key), nil, stamped("conc", tt.concTS), WriteOptions{W: 3}))
				if err != nil {
					t.Fatal(err)
				}
				concDot := dotOf(conc, pl[2]+":1")
				res, err := tc.cos[pl[1]].Evict(ctx, []byte(key), seen, false)
				if err != nil || !res.Evicted || !res.Acked || res.Deleted {
					t.Fatalf("Evict: %+v, %v", res, err)
				}
				tomb, ok := evictedTomb(res.Record, pl[1]+":1")
				if !ok || tomb.Timestamp != 100 || tomb.Expiry != 5000 {
					t.Fatalf("tombstone %+v (found %v): want the evicted winner's Timestamp 100 and Expiry = eviction time 5000", tomb, ok)
				}
				synctest.Wait()
				for _, r := range pl {
					rec := tc.local(r, key)
					if got := liveData(rec); len(got) != 1 || got[0] != "conc" {
						t.Errorf("%s holds %v, want only the concurrent write and the tombstone", r, got)
					}
					if !covers(rec, concDot) || !rec.Str.Join().Descends(seen.Str.Join()) {
						t.Errorf("%s: record %v", r, rec)
					}
					if d, ok := plainGet(rec); d != tt.wantData || ok != tt.wantOK {
						t.Errorf("%s: plain GET = %q, %v; want %q, %v", r, d, ok, tt.wantData, tt.wantOK)
					}
				}
				// A quorum read agrees.
				got, err := tc.cos[pl[0]].Get(ctx, []byte(key), ReadOptions{})
				if d, ok := plainGet(got); err != nil || d != tt.wantData || ok != tt.wantOK {
					t.Errorf("quorum GET = %q, %v, %v", d, ok, err)
				}
			})
		})
	}
}

// TestEvictResurrection: replicas that missed the eviction, and a stale copy
// delivered later (a hint, a read repair from an old read), merge into the
// tombstone: the evicted value never comes back.
func TestEvictResurrection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc, pl := newEvictCluster(t, 3, nil)
		defer tc.Close()
		ctx, key := context.Background(), evictKey
		stale := tc.local(pl[2], key)
		tc.net.Partition([]string{pl[2]})
		res, err := tc.cos[pl[0]].Evict(ctx, []byte(key), tc.local(pl[0], key), true)
		if err != nil || !res.Acked {
			t.Fatalf("Evict: %+v, %v", res, err)
		}
		// A grave from the eviction time on (the tombstone grace runs from
		// there), which the reaper leaves alone.
		tomb, _ := evictedTomb(res.Record, pl[0]+":1")
		if g := storage.GraveTime(res.Record); g != time.Now().UnixMilli() || g != tomb.Expiry || storage.ReapTime(res.Record) != 0 {
			t.Errorf("GraveTime %d, ReapTime %d of the evicted record; want the eviction time %d and 0",
				g, storage.ReapTime(res.Record), time.Now().UnixMilli())
		}
		tc.net.Heal()
		// An R=3 read merges the stale replica's copy with the tombstone and
		// repairs it; a stale copy arriving afterwards changes nothing.
		got, err := tc.cos[pl[1]].Get(ctx, []byte(key), ReadOptions{R: 3})
		if _, ok := plainGet(got); err != nil || ok || len(liveData(got)) != 0 {
			t.Fatalf("R=3 read after the eviction: %v, %v", liveData(got), err)
		}
		synctest.Wait()
		for _, r := range pl {
			if err := tc.cos[r].HandleWrite(peer.WriteRequest{Key: []byte(key), Record: stale}); err != nil {
				t.Fatal(err)
			}
			if rec := tc.local(r, key); len(liveData(rec)) != 0 || !sameRecord(rec, res.Record) {
				t.Errorf("%s after a stale copy: %v, want the tombstone record %v", r, rec, res.Record)
			}
		}
	})
}

// TestEvictExactRefuses: with exact, a record that changed since the sample is
// left alone (ErrNoWrite, nothing written anywhere).
func TestEvictExactRefuses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc, pl := newEvictCluster(t, 3, nil)
		defer tc.Close()
		ctx, key := context.Background(), evictKey
		seen := tc.local(pl[0], key)
		if _, err := tc.cos[pl[1]].Put(ctx, []byte(key), nil, stamped("conc", 200), WriteOptions{W: 3}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		before := map[string]record.Record{}
		for _, r := range pl {
			before[r] = tc.local(r, key)
		}
		res, err := tc.cos[pl[0]].Evict(ctx, []byte(key), seen, true)
		if !errors.Is(err, ErrNoWrite) || res.Evicted || res.Acked || !sameRecord(res.Record, before[pl[0]]) {
			t.Fatalf("Evict of a changed record with exact: %+v, %v; want ErrNoWrite and the record as found", res, err)
		}
		synctest.Wait()
		for _, r := range pl {
			if !sameRecord(tc.local(r, key), before[r]) {
				t.Errorf("%s changed after a refused eviction", r)
			}
		}
		if _, err := tc.cos[pl[0]].Evict(ctx, []byte(key), record.Record{}, false); !errors.Is(err, ErrNoWrite) {
			t.Errorf("Evict of an empty record: %v, want ErrNoWrite", err)
		}
	})
}

// TestEvictNoHints: with an owner down, the tombstone goes to the live owners
// only: no fallback is written and no hint kept, where a plain write keeps one.
// With too few live owners the quorum fails, and the local tombstone stays.
func TestEvictNoHints(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc, pl := newEvictCluster(t, 4, nil)
		defer tc.Close()
		ctx, key := context.Background(), evictKey
		hints := func() (n int64) {
			for _, st := range tc.stores {
				n += st.HintCount()
			}
			return n
		}
		synctest.Wait()
		tc.crash(pl[2])
		res, err := tc.cos[pl[0]].Evict(ctx, []byte(key), tc.local(pl[0], key), true)
		if err != nil || !res.Evicted || !res.Acked {
			t.Fatalf("Evict with one owner down: %+v, %v", res, err)
		}
		synctest.Wait()
		if n := hints(); n != 0 {
			t.Errorf("%d hints kept for the eviction", n)
		}
		if rec := tc.local(pl[3], key); !rec.Empty() {
			t.Errorf("fallback %s got %v", pl[3], rec)
		}
		if d := liveData(tc.local(pl[1], key)); len(d) != 0 {
			t.Errorf("live owner %s still holds %v", pl[1], d)
		}
		// The same situation keeps a hint for a plain write (the check can fail).
		if _, err := tc.cos[pl[0]].Put(ctx, []byte(key), nil, stamped("new", 300), WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if _, ok := tc.hint(pl[3], pl[2], key); !ok {
			t.Errorf("a plain write with an owner down kept no hint on the fallback %s", pl[3])
		}

		// Two owners down: no quorum, the local tombstone stays, still no hint.
		key2 := "evict2"
		pl2 := tc.prefs(key2)
		coord := pl2[0]
		if coord == pl[2] {
			coord = pl2[1]
		}
		for _, r := range pl2 {
			if r != pl[2] {
				if err := tc.cos[r].HandleWrite(peer.WriteRequest{Key: []byte(key2), Record: record.String(vclock.Update(vclock.Set{}, nil, "x:1", stamped("v", 1), 1, 1))}); err != nil {
					t.Fatal(err)
				}
			}
		}
		before := hints()
		for _, r := range pl2 {
			if r != coord && r != pl[2] {
				tc.crash(r)
			}
		}
		res, err = tc.cos[coord].Evict(ctx, []byte(key2), tc.local(coord, key2), true)
		var qe *QuorumError
		if !errors.As(err, &qe) || !res.Evicted || res.Acked {
			t.Fatalf("Evict with two owners down: %+v, %v; want a QuorumError with the local tombstone written", res, err)
		}
		if d := liveData(tc.local(coord, key2)); len(d) != 0 {
			t.Errorf("the evicting node still holds %v after a failed quorum", d)
		}
		if _, ok := evictedTomb(tc.local(coord, key2), coord+":1"); !ok {
			t.Errorf("no local tombstone after a failed quorum: %v", tc.local(coord, key2))
		}
		synctest.Wait()
		if n := hints(); n != before {
			t.Errorf("hints %d -> %d for an eviction without quorum", before, n)
		}
	})
}

// ringView is a Membership whose ring can change.
type ringView struct {
	rg atomic.Pointer[ring.Ring]
}

func (v *ringView) Ring() *ring.Ring      { return v.rg.Load() }
func (v *ringView) Alive(string) bool     { return true }
func (v *ringView) set(rg *ring.Ring)     { v.rg.Store(rg) }
func newRingView(rg *ring.Ring) *ringView { v := &ringView{}; v.set(rg); return v }

// joinOnDelete runs join when the store's DeleteIf has deleted: a member
// joining between Evict's ring check and its delete.
type joinOnDelete struct {
	*memstore.Store
	join func()
}

func (s *joinOnDelete) DeleteIf(key, enc []byte) (bool, error) {
	ok, err := s.Store.DeleteIf(key, enc)
	if ok && s.join != nil {
		s.join()
	}
	return ok, err
}

// TestEvictOneMember: alone, Evict deletes the record outright (no cluster, or a
// ring of this node and no hints); exact refuses a changed record; with a hint
// kept it writes a tombstone; a member joining between the check and the delete
// gets the tombstone over the copy its handoff may have taken.
func TestEvictOneMember(t *testing.T) {
	ctx := context.Background()
	put := func(t *testing.T, c *Coordinator, key string, v vclock.Value) record.Record {
		rec, err := writtenRecord(c.Put(ctx, []byte(key), nil, v, WriteOptions{}))
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	t.Run("no cluster", func(t *testing.T) {
		st := memstore.New(64)
		c, err := New(Config{Actor: "a"}, st)
		if err != nil {
			t.Fatal(err)
		}
		seen := put(t, c, "k", stamped("v", 1))
		res, err := c.Evict(ctx, []byte("k"), seen, true)
		if err != nil || !res.Deleted || !res.Evicted || !res.Acked {
			t.Fatalf("Evict: %+v, %v", res, err)
		}
		if _, found, _ := st.Get([]byte("k")); found {
			t.Fatal("record still there")
		}
		// exact, changed: refused; not exact: a tombstone over exactly seen.
		old := put(t, c, "k2", stamped("v", 1))
		put(t, c, "k2", stamped("w", 2)) // overwrites (empty context: a sibling)
		if _, err := c.Evict(ctx, []byte("k2"), old, true); !errors.Is(err, ErrNoWrite) {
			t.Fatalf("exact Evict of a changed record: %v", err)
		}
		res, err = c.Evict(ctx, []byte("k2"), old, false)
		if err != nil || res.Deleted || !res.Evicted || !res.Acked {
			t.Fatalf("non-exact Evict of a changed record: %+v, %v", res, err)
		}
		if d := liveData(res.Record); len(d) != 1 || d[0] != "w" {
			t.Fatalf("after the eviction: %v, want the newer write only", d)
		}
	})
	t.Run("one-member ring", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			net, err := peertest.NewNetwork(1, 64, 100*time.Millisecond, "n1", "n2")
			if err != nil {
				t.Fatal(err)
			}
			view := newRingView(testRing(t, "n1"))
			st1 := &joinOnDelete{Store: memstore.New(64)}
			c1, err := New(Config{Actor: "n1:1", Node: "n1", Cluster: view, Peers: RemotePeers(net.Caller("n1"))}, st1)
			if err != nil {
				t.Fatal(err)
			}
			defer c1.Close()
			st2 := memstore.New(64)
			c2, err := New(Config{Actor: "n2:1", Node: "n2", Cluster: net.View("n2"), Peers: RemotePeers(net.Caller("n2"))}, st2)
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			net.Start("n1", serverOf(c1))
			net.Start("n2", serverOf(c2))

			seen := put(t, c1, "k", stamped("v", 1))
			res, err := c1.Evict(ctx, []byte("k"), seen, true)
			if err != nil || !res.Deleted || !res.Acked {
				t.Fatalf("Evict alone: %+v, %v", res, err)
			}
			if _, found, _ := st1.Get([]byte("k")); found {
				t.Fatal("record still there")
			}

			// A hint kept for another node: not alone, a tombstone instead.
			seen = put(t, c1, "h", stamped("v", 1))
			if _, err := st1.UpdateHint("gone", []byte("x"), mergeInto(seen)); err != nil {
				t.Fatal(err)
			}
			res, err = c1.Evict(ctx, []byte("h"), seen, true)
			if err != nil || res.Deleted || !res.Evicted || !res.Acked {
				t.Fatalf("Evict with a hint kept: %+v, %v", res, err)
			}
			if _, ok := evictedTomb(res.Record, "n1:1"); !ok {
				t.Fatalf("no tombstone: %v", res.Record)
			}
			if err := st1.DropHints("gone"); err != nil {
				t.Fatal(err)
			}

			// n2 joins between the check and the delete, having taken a copy.
			seen = put(t, c1, "j", stamped("v", 1))
			if err := c2.HandleWrite(peer.WriteRequest{Key: []byte("j"), Record: seen}); err != nil {
				t.Fatal(err)
			}
			st1.join = func() { view.set(net.Ring()) }
			res, err = c1.Evict(ctx, []byte("j"), seen, true)
			if err != nil || !res.Deleted || !res.Evicted || !res.Acked {
				t.Fatalf("Evict with a join in between: %+v, %v", res, err)
			}
			synctest.Wait()
			for name, st := range map[string]*memstore.Store{"n1": st1.Store, "n2": st2} {
				rec, _, _ := st.Get([]byte("j"))
				if _, ok := evictedTomb(rec, "n1:1"); !ok || len(liveData(rec)) != 0 || !rec.Str.Join().Descends(seen.Str.Join()) {
					t.Errorf("%s after the join: %v, want the tombstone over the evicted copy", name, rec)
				}
			}
		})
	})
}

// liveData returns the payloads of rec's siblings that are not tombstones, sorted.
func liveData(rec record.Record) []string {
	var out []string
	for _, d := range data(rec) {
		if d != "<tombstone>" {
			out = append(out, d)
		}
	}
	return out
}
