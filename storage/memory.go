package storage

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble"
)

// Memory accounting: the logical bytes a store holds, kept exact on every commit
// so that a node can bound its memory (maxmemory) without scanning.
//
// A record costs its data key, its stored encoding and recordOverhead, plus, for
// each of its expiry and grave index entries (ReapTime, GraveTime non-zero), the
// index key and indexOverhead. A record is live when some value in it is not a
// tombstone (GraveTime 0), else a grave: tombstones wait for purge, and a node
// that must shed memory can only evict live records. A hint costs its key, its
// encoding and recordOverhead. The figures are logical: what Pebble holds for
// the same records physically (PhysicalBytes) differs by compression, space
// amplification, obsolete files and the WAL, and the memory-mode calibration
// test (TestMemoryCalibration) keeps the two within a stated band.
//
// Invariant: at every quiescent point (no call in progress), each partition's
// live and grave sums, their totals and the hint bytes equal a full recount of
// what Pebble holds (the Open scan does that recount). Each change adds its
// difference after its commit, under its key lock, like the partition counts;
// the partition drops reset the dropped partitions under every key lock.

// Per-record overheads, in bytes, on top of the Pebble key and value lengths.
// recordOverhead stands for what Pebble keeps per entry beside the key and value
// (the 8-byte trailer, length varints, a memtable skiplist node until the flush,
// the sstable index and bloom bits after it); indexOverhead is the same for an
// index entry, whose value is empty. TestMemoryCalibration measures them.
const (
	recordOverhead = 40
	indexOverhead  = 24
)

// indexKeyExtra is how much longer an expiry or grave index key is than the
// data key of the same record: the time (be64) the index is ordered by.
const indexKeyExtra = 8

// MemoryStats is the logical memory of a store, in bytes (see Store.Memory).
type MemoryStats struct {
	Live   int64 // records holding some value that is not a tombstone, with their index entries
	Graves int64 // records of tombstones only, with their index entries
	Hints  int64 // hints kept for other nodes
}

// Total is the sum of every figure.
func (m MemoryStats) Total() int64 { return m.Live + m.Graves + m.Hints }

// partMemory is one partition's sums. The two sit together, so that a change
// moving a record from live to grave touches one cache line.
type partMemory struct{ live, graves atomic.Int64 }

// memory holds the store's sums: per partition, their totals (so Memory is
// O(1)) and the hints'.
type memory struct {
	parts        []partMemory
	live, graves atomic.Int64
	hints        atomic.Int64
	young        graveAges
}

// recordSize is what a record costs: its data key of dkLen bytes, its encoding of
// encLen, and its index entries (reap, grave: ReapTime and GraveTime, 0 when the
// record has no such entry).
func recordSize(dkLen, encLen int, reap, grave int64) int64 {
	n := int64(dkLen + encLen + recordOverhead)
	if reap != 0 {
		n += int64(dkLen + indexKeyExtra + indexOverhead)
	}
	if grave != 0 {
		n += int64(dkLen + indexKeyExtra + indexOverhead)
	}
	return n
}

// hintSize is what a hint costs, by its key and encoding lengths.
func hintSize(hkLen, encLen int) int64 { return int64(hkLen + encLen + recordOverhead) }

// add adds live and graves bytes (negative: takes them off) to partition p's
// sums and their totals; a change of one record moves one or both.
func (m *memory) add(p int, live, graves int64) {
	if live != 0 {
		m.parts[p].live.Add(live)
		m.live.Add(live)
	}
	if graves != 0 {
		m.parts[p].graves.Add(graves)
		m.graves.Add(graves)
	}
}

// graveChanged records a grave's bytes (negative: taken off) by its GraveTime
// (unix ms) for YoungGraves.
func (m *memory) graveChanged(at, bytes int64) { m.young.add(at, bytes) }

// youngSpan is how far back, in seconds, the grave bytes are kept by age: the
// longest window YoungGraves answers exactly.
const youngSpan = 128

// graveAges keeps the grave bytes by the second of their GraveTime, over the
// last youngSpan seconds seen: a ring of one-second buckets, each holding the
// second it counts. A grave older than its bucket's second (the ring has moved
// on) is no longer young, and neither its addition nor its removal is kept.
//
// Invariant: each bucket's bytes are the sum of the graves whose GraveTime falls
// in its second and that were added since the bucket was last reset, less those
// removed since, and never below zero. A partition drop does not take its graves
// off (the ring does not know which partition a grave was in): until their
// seconds age out of the window the sum can be larger than the young graves held,
// so YoungGraves caps it at the store's grave total, which a drop does update.
type graveAges struct {
	mu    sync.Mutex
	sec   [youngSpan]int64
	bytes [youngSpan]int64
}

func (g *graveAges) add(at, bytes int64) {
	if at <= 0 || bytes == 0 {
		return
	}
	sec := at / 1000
	i := sec % youngSpan
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.sec[i] == sec:
		g.bytes[i] = max(g.bytes[i]+bytes, 0)
	case g.sec[i] < sec && bytes > 0:
		g.sec[i], g.bytes[i] = sec, bytes
	}
	// Otherwise the grave is older than its bucket's second (out of the
	// window), or a removal of one added before the bucket was reset.
}

// reset forgets every bucket: the store dropped all its graves.
func (g *graveAges) reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sec, g.bytes = [youngSpan]int64{}, [youngSpan]int64{}
}

// sum returns the bytes of the buckets whose second lies in [from, to].
func (g *graveAges) sum(from, to int64) int64 {
	var n int64
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, sec := range g.sec {
		if sec >= from && sec <= to {
			n += g.bytes[i]
		}
	}
	return n
}

// YoungGraves returns the bytes of the graves (records of tombstones only, as in
// MemoryStats.Graves) whose GraveTime is within window of now (and not later
// than now plus window): a node leaves out of its memory limit the tombstones
// its purge cannot have reached yet. window is capped at youngSpan-1 seconds;
// the figure is at most Memory().Graves.
func (s *Store) YoungGraves(now time.Time, window time.Duration) int64 {
	w := min(int64(window/time.Second), youngSpan-1)
	if w <= 0 {
		return 0
	}
	sec := now.Unix()
	return min(s.mem.young.sum(sec-w, sec+w), s.mem.graves.Load())
}

// dropPartition zeroes partition p's sums and takes them off the totals. The
// caller holds every key lock of p.
func (m *memory) dropPartition(p int) {
	m.live.Add(-m.parts[p].live.Swap(0))
	m.graves.Add(-m.parts[p].graves.Swap(0))
}

// Memory returns the logical memory the store holds (see MemoryStats): O(1),
// atomic loads only. Between concurrent changes the figures may be a change
// apart; once the store is quiescent they equal a full recount.
func (s *Store) Memory() MemoryStats {
	return MemoryStats{Live: s.mem.live.Load(), Graves: s.mem.graves.Load(), Hints: s.mem.hints.Load()}
}

// PartitionMemory returns the live and grave bytes of partition p's records
// (Hints is 0: hints belong to no partition).
func (s *Store) PartitionMemory(p int) MemoryStats {
	return MemoryStats{Live: s.mem.parts[p].live.Load(), Graves: s.mem.parts[p].graves.Load()}
}

// PhysicalStats is what Pebble holds, in bytes: the figures a node compares
// with its logical memory in memory mode, where Pebble's files are in RAM.
type PhysicalStats struct {
	// FS is every file Pebble keeps (sstables live and obsolete, WAL segments,
	// manifests): on disk, or on the in-memory filesystem (Config.InMemory).
	FS uint64
	// Tables is the part of FS in the live sstables: the records once flushed,
	// without the WAL, obsolete files and the files being compacted.
	Tables uint64
	// Memtables is the memory of the memtables (their arenas, allocated whole)
	// and of large batches not yet flushed.
	Memtables uint64
	// WAL is the part of FS in write-ahead log segments (live and recycled):
	// the writes of the memtables not flushed yet, bounded by their size.
	WAL uint64
	// BlockCache is what Pebble's block cache holds (Config.CacheBytes at
	// most): copies of sstable blocks, outside the Go heap.
	BlockCache uint64
}

// Total is FS plus Memtables: what Pebble holds in memory mode, beside its
// block cache.
func (p PhysicalStats) Total() uint64 { return p.FS + p.Memtables }

// Physical returns Pebble's physical figures (zero once the store is closed or
// failed). It asks Pebble for its metrics, which takes Pebble's locks and walks
// its levels: call it on demand (INFO) or about once a second, not per write.
func (s *Store) Physical() PhysicalStats {
	if s.enter() != nil {
		return PhysicalStats{}
	}
	defer s.exit(nil)
	m := s.db.Metrics()
	out := PhysicalStats{FS: diskUsage(m), Memtables: m.MemTable.Size, BlockCache: uint64(max(m.BlockCache.Size, 0)),
		WAL: m.WAL.PhysicalSize + m.WAL.ObsoletePhysicalSize}
	for _, l := range m.Levels {
		out.Tables += uint64(max(l.Size, 0))
	}
	return out
}

// diskUsage is m.DiskSpaceUsage without the terms Pebble's accounting can drive
// below zero. Pebble v1.1.5 keeps Table.ObsoleteSize (unsigned) by adding and
// subtracting, and after the delete-only compactions that follow a dropped range
// it is seen at minus tens of MB, wrapped to about 2^64: the sum then wraps too,
// and a node's physical valve and INFO would read about 16 EiB for the rest of
// the process. A wrapped term is taken out (the subtraction undoes its addition
// exactly, modulo 2^64): the obsolete files it stood for are gone or going.
func diskUsage(m *pebble.Metrics) uint64 {
	u := m.DiskSpaceUsage()
	for _, term := range []uint64{m.Table.ObsoleteSize, m.Table.ZombieSize, uint64(m.Compact.InProgressBytes)} {
		if int64(term) < 0 {
			u -= term
		}
	}
	return u
}
