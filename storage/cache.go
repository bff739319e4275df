package storage

import (
	"sync"

	"github.com/VictoriaMetrics/fastcache"
)

// recordCache keeps the stored encodings of recently read and written records in
// memory, so that a GET, and the read half of a read-merge-write, of a key seen
// lately skips Pebble's lookup (a memtable seek plus a seek per level, a quarter
// of a node's CPU per GET without it). It remembers absent keys too, as an empty
// entry.
//
// Coherence rests on the key locks, not on timing:
//
//   - every change of a record (Store.write) updates its entry after the Pebble
//     commit, under the key's lock, before the write is acknowledged;
//   - a read that missed fills the entry only if it can take the key's lock
//     (TryLock) and reads Pebble while holding it, so no write of that key can
//     commit between its read and its fill (a racing write would otherwise
//     leave the older record cached after the newer one);
//   - dropping partitions (DropPartition, FLUSHALL) resets the whole cache while
//     it holds every dropped key's lock, so no entry of a dropped record survives
//     and no fill from before the drop lands after it (entries of other keys it
//     loses are only misses later).
//
// Entries too large for the cache (64 KiB with the key) are deleted instead of
// stored: fastcache ignores such a Set, which would leave an older entry behind.
// The cache is off-heap (fastcache allocates its chunks outside the Go heap) and
// bounded by its size; eviction is by age of insertion.
type recordCache struct {
	c    *fastcache.Cache
	bufs sync.Pool // *[]byte scratch for hits that are decoded at once
}

// maxCachedEntry is fastcache's limit on a key, a value and its 4-byte header.
const maxCachedEntry = 64 << 10

func newRecordCache(bytes int64) *recordCache {
	if bytes <= 0 {
		return nil
	}
	return &recordCache{c: fastcache.New(int(bytes))}
}

// get returns the cached encoding of the record under Pebble key dk appended to
// dst: ok is false on a miss, and a hit with an empty encoding means there is no
// record.
func (rc *recordCache) get(dst, dk []byte) (enc []byte, ok bool) {
	if rc == nil {
		return nil, false
	}
	return rc.c.HasGet(dst, dk)
}

// set records the encoding of dk's record (empty: no record). The caller holds
// dk's key lock and has committed that record (or read it under the lock).
func (rc *recordCache) set(dk, enc []byte) {
	if rc == nil {
		return
	}
	if 4+len(dk)+len(enc) >= maxCachedEntry {
		rc.c.Del(dk)
		return
	}
	rc.c.Set(dk, enc)
}

// forget drops dk's entry; the caller holds dk's key lock.
func (rc *recordCache) forget(dk []byte) {
	if rc != nil {
		rc.c.Del(dk)
	}
}

// reset empties the cache; the caller holds the lock of every key whose record
// is gone.
func (rc *recordCache) reset() {
	if rc != nil {
		rc.c.Reset()
	}
}

// scratch and release lend a buffer for a hit that is decoded (and so copied)
// at once.
func (rc *recordCache) scratch() *[]byte {
	if b, ok := rc.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 512)
	return &b
}

func (rc *recordCache) release(b *[]byte, used []byte) {
	if cap(used) > 64<<10 {
		return // do not keep a buffer grown for a rare large record
	}
	*b = used[:0]
	rc.bufs.Put(b)
}

// CacheStats are the record cache's figures.
type CacheStats struct {
	Lookups, Misses uint64 // since Open
	Entries         uint64
	Bytes           uint64 // memory the cache holds
}

// CacheStats returns the record cache's figures (zero when it is off), without
// the cost of Metrics' Pebble figures.
func (s *Store) CacheStats() CacheStats { return s.rc.stats() }

func (rc *recordCache) stats() CacheStats {
	if rc == nil {
		return CacheStats{}
	}
	var st fastcache.Stats
	rc.c.UpdateStats(&st)
	return CacheStats{Lookups: st.GetCalls, Misses: st.Misses, Entries: st.EntriesCount, Bytes: st.BytesSize}
}
