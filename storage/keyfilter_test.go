package storage

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dynakv/dynakv/record"
)

// TestKeyFilterNoFalseNegatives adds random hashes past several growths and
// checks every one is still held, and that hashes never added are mostly ruled
// out (the filter is useful, not only safe).
func TestKeyFilterNoFalseNegatives(t *testing.T) {
	for _, n := range []int{0, 1, 1000, filterMinKeys, 5 * filterMinKeys} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(n), 7))
			f := newKeyFilter(0)
			added := make([]uint64, n)
			for i := range added {
				added[i] = r.Uint64()
				f.add(added[i])
			}
			for i, h := range added {
				if !f.mayHold(h) {
					t.Fatalf("hash %d of %d (%x) added but ruled out", i, n, h)
				}
			}
			fp := 0
			const probes = 100_000
			for range probes {
				if f.mayHold(r.Uint64()) {
					fp++
				}
			}
			// Each layer is at most ~1% at capacity; a stack of k layers at most ~k%.
			layers := len(*f.layers.Load())
			if max := probes * (layers + 1) / 100; fp > max {
				t.Fatalf("%d false positives in %d probes with %d layers (want <= %d)", fp, probes, layers, max)
			}
			if n > filterMinKeys && layers < 2 {
				t.Fatalf("%d hashes in %d layer(s): the filter did not grow", n, layers)
			}
		})
	}
}

// TestKeyFilterConcurrentAdds races adds (and growth) against each other and
// against readers; run under -race.
func TestKeyFilterConcurrentAdds(t *testing.T) {
	f := newKeyFilter(0)
	const workers, each = 4, filterMinKeys
	var wg sync.WaitGroup
	var stop atomic.Bool
	wg.Go(func() {
		for !stop.Load() {
			f.mayHold(rand.Uint64())
		}
	})
	hashes := make([][]uint64, workers)
	var adders sync.WaitGroup
	for w := range workers {
		adders.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range each {
				h := r.Uint64()
				f.add(h)
				hashes[w] = append(hashes[w], h)
			}
		})
	}
	adders.Wait()
	stop.Store(true)
	wg.Wait()
	for w := range workers {
		for _, h := range hashes[w] {
			if !f.mayHold(h) {
				t.Fatalf("worker %d's hash %x ruled out", w, h)
			}
		}
	}
}

// TestKeyFilterSkipsReadsOfNewKeys checks both sides of the filter in a store:
// writes of keys never stored do not read Pebble (no cache fill happens), and
// after a reopen every stored key is still found (Open adds them all), so a write
// merges with the record it finds instead of replacing it.
func TestKeyFilterSkipsReadsOfNewKeys(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	var fills atomic.Int64
	s.testHookFill = func([]byte) { fills.Add(1) }
	const n = 2000
	for i := range n {
		put(t, s, fmt.Sprintf("k%d", i), rec(val("v", 0)))
	}
	if got := fills.Load(); got != 0 {
		t.Fatalf("%d Pebble reads (cache fills) for %d writes of new keys, want 0", got, n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, Config{Dir: dir})
	for i := range n {
		key := fmt.Sprintf("k%d", i)
		var found bool
		if _, err := s.Update([]byte(key), func(cur record.Record, f bool) (record.Record, error) {
			found = f
			return cur, ErrNoChange
		}); err != nil {
			t.Fatal(err)
		}
		if !found {
			t.Fatalf("after reopen, %q is not found: the filter ruled out a stored key", key)
		}
	}
}
