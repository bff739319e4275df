package storage

import (
	"testing"

	"github.com/dynakv/dynakv/evict"
	"github.com/dynakv/dynakv/ring"
)

// TestGetTouchesAccess: a Get that finds a record touches its key's word;
// misses, writes and the encoded reads of repair do not.
func TestGetTouchesAccess(t *testing.T) {
	for _, cache := range []int64{0, -1} { // record cache on and off
		s := openMem(t, Config{Partitions: 8, RecordCacheBytes: cache})
		now := int64(1_700_000_000_000)
		tb, err := evict.NewTable(evict.KindLRU, 0, now, 1)
		if err != nil {
			t.Fatal(err)
		}
		put(t, s, "a", rec(val("v", 0)))
		mustGet(t, s, "a") // no table yet
		s.SetAccess(tb)
		if s.Access() != tb {
			t.Fatal("Access")
		}
		hash := func(k string) uint64 { return ring.KeyHash([]byte(k)) }
		if _, ok := tb.Lookup(hash("a")); ok {
			t.Fatal("a Get before SetAccess touched")
		}
		put(t, s, "b", rec(val("v", 0)))
		if _, err := s.GetEncoded([]byte("b")); err != nil {
			t.Fatal(err)
		}
		if err := s.ScanEncoded(s.PartitionOf([]byte("b")), 0, func(uint64, []byte, []byte) bool { return true }); err != nil {
			t.Fatal(err)
		}
		if _, ok := tb.Lookup(hash("b")); ok {
			t.Error("a write, GetEncoded or ScanEncoded touched")
		}
		tb.Tick(now + 7000)
		mustGet(t, s, "a")
		if w, ok := tb.Lookup(hash("a")); !ok || w != evict.LRUClock(now+7000) {
			t.Errorf("cache %d: Get did not touch: %d %v", cache, w, ok)
		}
		if _, found := mustGet(t, s, "absent"); found {
			t.Fatal("absent found")
		}
		if _, ok := tb.Lookup(hash("absent")); ok {
			t.Error("a miss touched")
		}
		s.SetAccess(nil)
		tb.Tick(now + 60_000)
		mustGet(t, s, "a")
		if w, _ := tb.Lookup(hash("a")); w != evict.LRUClock(now+7000) {
			t.Error("touched after SetAccess(nil)")
		}
	}
}

// BenchmarkGetAccess measures Get of a cached 100-byte record in memory
// without an access table, and with an LRU and an LFU table.
func BenchmarkGetAccess(b *testing.B) {
	for _, kind := range []evict.Kind{evict.KindNone, evict.KindLRU, evict.KindLFU} {
		b.Run(kind.String(), func(b *testing.B) {
			s := openMem(b, Config{Partitions: 1024})
			if kind != evict.KindNone {
				tb, err := evict.NewTable(kind, evict.SlotsFor(64<<20), 1_700_000_000_000, 1)
				if err != nil {
					b.Fatal(err)
				}
				s.SetAccess(tb)
			}
			keys := benchKeys(1000)
			for _, k := range keys {
				put(b, s, string(k), rec(val(string(make([]byte, 100)), 0)))
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, _, err := s.Get(keys[i%len(keys)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
