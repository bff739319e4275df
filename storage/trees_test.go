package storage_test

// The store's side of the anti-entropy trees' contract (tictac.Trees): as the
// store's Observer the trees stay equal to a Rebuild from the store, and a Rebuild
// racing writes and reaps (ExclusivePartition) comes out exact.

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/dynakv/dynakv/internal/fakeclock"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/tictac"
	"github.com/dynakv/dynakv/vclock"
)

// TestTreesIncrementalEqualsRebuild: whatever order writes, overwrites, deletes and
// drops come in, the incrementally kept trees equal trees rebuilt from the store,
// and two stores with the same records have the same roots.
func TestTreesIncrementalEqualsRebuild(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 1))
			trees := tictac.NewTrees(8)
			// 1024 stripes: each rebuild takes a partition's stripes (see WithStripes).
			st, err := storage.Open(storage.WithStripes(storage.Config{InMemory: true, Partitions: 8, Observer: trees,
				Logger: slog.New(slog.DiscardHandler), ReapInterval: time.Hour}, 1024))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			for range 400 {
				k := []byte(fmt.Sprintf("k%d", rng.IntN(60)))
				var next record.Record
				switch rng.IntN(10) {
				case 0: // delete
				case 1:
					if err := st.DropPartition(rng.IntN(8)); err != nil {
						t.Fatal(err)
					}
					continue
				default:
					next = record.String(vclock.New(nil, vclock.Value{Data: []byte(fmt.Sprint(rng.IntN(5))), Timestamp: 1}))
				}
				if _, err := st.Update(k, func(record.Record, bool) (record.Record, error) { return next, nil }); err != nil {
					t.Fatal(err)
				}
			}
			fresh := tictac.NewTrees(8)
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
				for b := range tictac.Branches {
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
	trees := tictac.NewTrees(q)
	// 1024 stripes: each rebuild takes a partition's stripes (see WithStripes).
	st, err := storage.Open(storage.WithStripes(storage.Config{InMemory: true, Partitions: q, Observer: trees,
		Logger: slog.New(slog.DiscardHandler), ReapInterval: time.Hour, Now: clk.Now, Sync: storage.SyncNone}, 1024))
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
					var next record.Record
					if rng.IntN(5) != 0 {
						v := vclock.Value{Data: []byte(fmt.Sprint(rng.IntN(5))), Timestamp: now}
						if rng.IntN(2) == 0 {
							v.Expiry = now + 1 + rng.Int64N(3)
						}
						next = record.String(vclock.Update(vclock.Set{}, nil, "a", v, now, uint64(i+1)))
					}
					if _, err := st.Update(k, func(record.Record, bool) (record.Record, error) { return next, nil }); err != nil {
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
		fresh := tictac.NewTrees(q)
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
