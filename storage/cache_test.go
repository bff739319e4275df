package storage

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/ring"
)

// pebbleRecord reads key's record from Pebble itself, around the record cache.
func pebbleRecord(t testing.TB, s *Store, key string) ([]byte, bool) {
	t.Helper()
	h := ring.KeyHash([]byte(key))
	enc, found, err := s.getEncoded(dataKey(nil, s.partition(h), h, []byte(key)))
	if err != nil {
		t.Fatal(err)
	}
	return enc, found
}

// cachedRecord reads key's record through the store (the record cache first).
func cachedRecord(t testing.TB, s *Store, key string) ([]byte, bool) {
	t.Helper()
	enc, err := s.GetEncoded([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return enc, enc != nil
}

// TestRecordCacheFollowsEveryChange: each way a record changes (write, delete,
// reap, drop of its partition, FLUSHALL) is seen by the next read through the
// cache, after that read (or an earlier one) filled the cache.
func TestRecordCacheFollowsEveryChange(t *testing.T) {
	clock := newFakeClock()
	s := openMem(t, Config{Partitions: 8, Now: clock.Now})
	same := func(step, key string) {
		t.Helper()
		want, wantFound := pebbleRecord(t, s, key)
		got, gotFound := cachedRecord(t, s, key)
		if gotFound != wantFound || !bytes.Equal(got, want) {
			t.Fatalf("%s: %q through the cache = %x (%v), in Pebble %x (%v)", step, key, got, gotFound, want, wantFound)
		}
		r, found := mustGet(t, s, key)
		if found != wantFound || (found && !bytes.Equal(r.AppendBinary(nil), want)) {
			t.Fatalf("%s: Get(%q) = %v, %v; Pebble has %x", step, key, r, found, want)
		}
	}
	same("absent", "k") // caches the absence
	put(t, s, "k", rec(val("v1", 0)))
	same("written", "k")
	put(t, s, "k", rec(val("v2", 0), val("v3", 0)))
	same("rewritten", "k")
	put(t, s, "k", record.Record{})
	same("deleted", "k")

	put(t, s, "e", rec(val("x", clock.Now().UnixMilli()+10)))
	same("with expiry", "e")
	clock.Advance(20 * time.Millisecond)
	if n, err := s.Reap(100); err != nil || n != 1 {
		t.Fatalf("Reap = %d, %v; want 1", n, err)
	}
	same("reaped", "e")

	put(t, s, "p", rec(val("y", 0)))
	same("before drop", "p")
	if err := s.DropPartition(s.PartitionOf([]byte("p"))); err != nil {
		t.Fatal(err)
	}
	same("partition dropped", "p")

	put(t, s, "f", rec(val("z", 0)))
	same("before flush", "f")
	if err := s.DropAll(); err != nil {
		t.Fatal(err)
	}
	same("flushed", "f")

	big := rec(val(strings.Repeat("b", maxCachedEntry), 0))
	put(t, s, "big", rec(val("small", 0)))
	same("small before big", "big")
	put(t, s, "big", big) // too large to cache: the small entry must go
	same("too large to cache", "big")
}

// TestRecordCacheRacingReadsAndWrites: readers that miss and fill the cache race
// writers, deleters and partition drops on a few keys; when they are done every
// key reads through the cache exactly as Pebble has it. A fill that could land
// after a newer write (the race the key lock closes) leaves an older record
// cached, and the final comparison catches it.
func TestRecordCacheRacingReadsAndWrites(t *testing.T) {
	s := openMem(t, Config{Partitions: 4})
	keys := []string{"a", "b", "c", "d"}
	const rounds = 3000
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := range rounds {
				key := keys[(i+w)%len(keys)]
				next := rec(val(fmt.Sprintf("w%d-%d", w, i), 0))
				if i%17 == 0 {
					next = record.Record{}
				}
				if _, err := s.Update([]byte(key), func(record.Record, bool) (record.Record, error) { return next, nil }); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for r := range 3 {
		wg.Go(func() {
			for i := range 2 * rounds {
				key := keys[(i*7+r)%len(keys)]
				if _, _, err := s.Get([]byte(key)); err != nil {
					t.Error(err)
					return
				}
				if i%500 == 0 {
					s.rc.reset() // as an eviction would: the next reads miss and fill
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 20 {
			if err := s.DropPartition(i % s.Partitions()); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	for _, key := range keys {
		want, wantFound := pebbleRecord(t, s, key)
		got, gotFound := cachedRecord(t, s, key)
		if gotFound != wantFound || !bytes.Equal(got, want) {
			t.Errorf("%q through the cache = %x (%v), in Pebble %x (%v)", key, got, gotFound, want, wantFound)
		}
	}
}

// TestRecordCacheFillRacesWrite: a write that commits while a read that missed
// is between its Pebble read and its cache fill must not be overwritten in the
// cache by the older record that read found. The write is started from the fill
// hook and given 100 ms; with the key lock held by the filling read it cannot
// finish before the fill, which is what keeps the cache coherent.
func TestRecordCacheFillRacesWrite(t *testing.T) {
	s := openMem(t, Config{})
	put(t, s, "k", rec(val("old", 0)))
	s.rc.reset()
	var first atomic.Bool
	s.testHookFill = func([]byte) {
		if first.Swap(true) {
			return // the racing write's own read
		}
		func() {
			done := make(chan struct{})
			go func() {
				defer close(done)
				put(t, s, "k", rec(val("new", 0)))
			}()
			select {
			case <-done:
			case <-time.After(100 * time.Millisecond):
			}
		}()
	}
	if _, _, err := s.Get([]byte("k")); err != nil {
		t.Fatal(err)
	}
	// Wait for the write, however it went.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if enc, _ := pebbleRecord(t, s, "k"); bytes.Equal(enc, rec(val("new", 0)).AppendBinary(nil)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the racing write never landed")
		}
		time.Sleep(time.Millisecond)
	}
	s.testHookFill = nil
	if r, _ := mustGet(t, s, "k"); !sameRecord(r, rec(val("new", 0))) {
		t.Fatalf("after the racing write the cache serves %v; Pebble has the new record", r)
	}
}

// TestRecordCacheOff: a negative size turns the cache off and reads go to Pebble.
func TestRecordCacheOff(t *testing.T) {
	s := openMem(t, Config{RecordCacheBytes: -1})
	if s.rc != nil {
		t.Fatal("record cache on with RecordCacheBytes -1")
	}
	put(t, s, "k", rec(val("v", 0)))
	if r, found := mustGet(t, s, "k"); !found || !sameRecord(r, rec(val("v", 0))) {
		t.Fatalf("Get = %v, %v", r, found)
	}
	if st := s.Metrics().Cache; st != (CacheStats{}) {
		t.Fatalf("cache stats with the cache off: %+v", st)
	}
}
