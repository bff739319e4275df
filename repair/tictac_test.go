package repair_test

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/dynakv/dynakv/internal/fakeclock"
	"github.com/dynakv/dynakv/internal/fuzzcheck"
	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/repair"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/vclock"
)

// TestTreesIncrementalEqualsRebuild: whatever order writes, overwrites, deletes and
// drops come in, the incrementally kept trees equal trees rebuilt from the store,
// and two stores with the same records have the same roots.
func TestTreesIncrementalEqualsRebuild(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 1))
			trees := repair.NewTrees(8)
			st, err := storage.Open(storage.Config{InMemory: true, Partitions: 8, Observer: trees,
				Logger: slog.New(slog.DiscardHandler), ReapInterval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			for range 400 {
				k := []byte(fmt.Sprintf("k%d", rng.IntN(60)))
				var next vclock.Set
				switch rng.IntN(10) {
				case 0: // delete
				case 1:
					if err := st.DropPartition(rng.IntN(8)); err != nil {
						t.Fatal(err)
					}
					continue
				default:
					next = vclock.New(nil, vclock.Value{Data: []byte(fmt.Sprint(rng.IntN(5))), Timestamp: 1})
				}
				if _, err := st.Update(k, func(vclock.Set, bool) (vclock.Set, error) { return next, nil }); err != nil {
					t.Fatal(err)
				}
			}
			fresh := repair.NewTrees(8)
			if err := fresh.Rebuild(st); err != nil {
				t.Fatal(err)
			}
			for p := range 8 {
				r1, k1, _ := trees.Root(p)
				r2, k2, _ := fresh.Root(p)
				if r1 != r2 || k1 != k2 || trees.BranchHashes(p) != fresh.BranchHashes(p) {
					t.Fatalf("partition %d: incremental root %x/%d, rebuilt %x/%d", p, r1, k1, r2, k2)
				}
				if k1 != st.PartitionCount(p) {
					t.Fatalf("partition %d: tree counts %d records, store %d", p, k1, st.PartitionCount(p))
				}
				for b := range repair.Branches {
					if trees.LeafHashes(p, b) != fresh.LeafHashes(p, b) {
						t.Fatalf("partition %d branch %d: leaves differ", p, b)
					}
				}
			}
		})
	}
}

// TestTreesRebuildRacesWritesAndReaps is finding 5 of issue 15: a node rebuilds its
// trees at start while the store's reaper (and, later, anything else) may be
// writing. Rebuild zeroed a partition before it scanned it, so a change committed
// in between was XORed out of a tree that never had it (keys = -1 on an empty
// partition, or a held record counted 0 and never handed off). Whatever writes and
// reaps interleave with rebuilds, the trees must equal a fresh scan of the store.
func TestTreesRebuildRacesWritesAndReaps(t *testing.T) {
	const q = 4
	rounds := 15
	if testing.Short() {
		rounds = 5
	}
	clk := fakeclock.New(time.UnixMilli(1_700_000_000_000))
	trees := repair.NewTrees(q)
	st, err := storage.Open(storage.Config{InMemory: true, Partitions: q, Observer: trees,
		Logger: slog.New(slog.DiscardHandler), ReapInterval: time.Hour, Now: clk.Now, Sync: storage.SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for round := range rounds {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, 3)
		// Each goroutine says once when it is under way (or done).
		var started sync.WaitGroup
		started.Add(3)
		goroutine := func(body func(underway func())) {
			wg.Go(func() {
				var once sync.Once
				underway := func() { once.Do(started.Done) }
				defer underway()
				body(underway)
			})
		}
		for w := range 2 {
			goroutine(func(underway func()) { // writers: sets (some expiring), overwrites, deletes
				rng := rand.New(rand.NewPCG(uint64(round), uint64(w)))
				for i := 0; i < 20_000; i++ {
					if i == 10 {
						underway()
					}
					select {
					case <-stop:
						return
					default:
					}
					k := []byte(fmt.Sprintf("k%d", rng.IntN(24)))
					now := clk.Millis()
					var next vclock.Set
					if rng.IntN(5) != 0 {
						v := vclock.Value{Data: []byte(fmt.Sprint(rng.IntN(5))), Timestamp: now}
						if rng.IntN(2) == 0 {
							v.Expiry = now + 1 + rng.Int64N(3)
						}
						next = vclock.Update(vclock.Set{}, nil, "a", v, now, uint64(i+1))
					}
					if _, err := st.Update(k, func(vclock.Set, bool) (vclock.Set, error) { return next, nil }); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		goroutine(func(underway func()) { // the reaper, on a clock that moves
			for i := 0; i < 20_000; i++ {
				if i == 10 {
					underway()
				}
				select {
				case <-stop:
					return
				default:
				}
				clk.Advance(time.Millisecond)
				if _, err := st.Reap(1000); err != nil {
					errs <- err
					return
				}
			}
		})
		started.Wait() // every goroutine is under way
		for range 10 {
			if err := trees.Rebuild(st); err != nil {
				t.Fatal(err)
			}
		}
		close(stop)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		fresh := repair.NewTrees(q)
		if err := fresh.Rebuild(st); err != nil {
			t.Fatal(err)
		}
		for p := range q {
			r1, k1, _ := trees.Root(p)
			r2, k2, _ := fresh.Root(p)
			if r1 != r2 || k1 != k2 || trees.BranchHashes(p) != fresh.BranchHashes(p) {
				t.Fatalf("round %d partition %d: trees %x/%d keys, a fresh scan %x/%d", round, p, r1, k1, r2, k2)
			}
		}
	}
}

func TestItemHash(t *testing.T) {
	if repair.ItemHash([]byte("k"), nil) != 0 {
		t.Fatal("no record must hash to 0")
	}
	// The key is length-prefixed: moving a byte between key and record changes it.
	if repair.ItemHash([]byte("ab"), []byte("c")) == repair.ItemHash([]byte("a"), []byte("bc")) {
		t.Fatal("key and record boundary not hashed")
	}
	if repair.SegmentOf(0) != 0 || repair.SegmentOf(^uint64(0)) != repair.Segments-1 {
		t.Fatal("segments do not span the hash space")
	}
}

// FuzzServe feeds arbitrary messages of every type to the handlers Register
// registers, a node's answer to a peer's anti-entropy request: it must answer or
// refuse with peer.ErrBadMessage, never panic, and every answer starts with the
// message version. peer's FuzzDecodeAAEMessage checks the decoders themselves.
func FuzzServe(f *testing.F) {
	rec := vclock.Update(vclock.Set{}, nil, "n9:1", vclock.Value{Data: []byte("pushed"), Timestamp: 5}, 5, 1).AppendBinary(nil)
	keyRec := append([]byte{1, 1, 1, 'k', byte(len(rec))}, rec...)
	for _, s := range []struct {
		name string
		typ  peer.MsgType
		b    []byte
	}{
		{"roots", peer.MsgRoots, append([]byte{1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3}, make([]byte, 8)...)},
		{"roots-partition-too-big", peer.MsgRoots, append([]byte{1, 1, 4}, make([]byte, 8)...)},
		{"branches", peer.MsgBranches, []byte{1, 1, 2}},
		{"branches-two-partitions", peer.MsgBranches, []byte{1, 2, 0, 1}},
		{"leaves", peer.MsgLeaves, []byte{1, 0, 1, 2, 0, repair.Branches - 1}},
		{"keys", peer.MsgKeys, []byte{1, 1, 1, 3, 0, 0x80, 0x04, 0xff, 0x07}},
		{"fetch", peer.MsgFetch, []byte{1, 2, 1, 'k', 0}},
		{"push", peer.MsgPush, keyRec},
		{"push-no-record", peer.MsgPush, []byte{1, 1, 1, 'k', 0}},
		{"push-bad-record", peer.MsgPush, []byte{1, 1, 1, 'k', 2, 2, 0}},
		{"purge", peer.MsgPurge, keyRec},
		{"holds", peer.MsgHolds, keyRec},
		{"holds-no-record", peer.MsgHolds, []byte{1, 1, 1, 'k', 0}},
		{"holds-bad-record", peer.MsgHolds, []byte{1, 1, 1, 'k', 2, 2, 0}},
		{"unknown-type", 0, []byte{1, 0}},
	} {
		fuzzcheck.Seed(f, s.name, uint8(s.typ), s.b)
	}
	c := newAAECluster(f, 4, 2, "a", "b")
	c.write("k", nil, "v", 0, false, "a")
	mux := c.nodes["a"].mux
	f.Fuzz(func(t *testing.T, typ uint8, req []byte) {
		out, err := mux.ServeCluster(t.Context(), "b", typ, req)
		if err != nil {
			if !errors.Is(err, peer.ErrBadMessage) {
				t.Fatalf("Serve(%d) failed with %v, not ErrBadMessage", typ, err)
			}
			return
		}
		if len(out) == 0 || out[0] != 1 {
			t.Fatalf("Serve(%d) answered %x", typ, out)
		}
	})
}
