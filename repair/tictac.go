package repair

import (
	"sync"

	"github.com/cespare/xxhash/v2"
)

// Tictac tree shape. A partition's keys are spread over Segments leaves by the top
// bits of their hash (the partition is the bottom bits, so every leaf of a partition
// is used); leaves are grouped Segments/Branches to a branch. The levels are
// combined with XOR, so a write updates a leaf, its branch and the root with the
// same delta, with no reads: old ^ new.
const (
	Segments    = 1024
	Branches    = 32
	segmentBits = 10 // log2(Segments)
	perBranch   = Segments / Branches
)

// SegmentOf is the leaf of a key with hash h.
func SegmentOf(h uint64) int { return int(h >> (64 - segmentBits)) }

// segmentHashRange is the [lo, hi] hash range of segment s (inclusive).
func segmentHashRange(s int) (lo, hi uint64) {
	lo = uint64(s) << (64 - segmentBits)
	return lo, lo | (1<<(64-segmentBits) - 1)
}

// ItemHash is a record's contribution to its leaf: a hash of the key and the
// record's encoding (which holds its version vector, values, timestamps and
// expiries, so replicas with equal records agree bit for bit). No record is 0.
func ItemHash(key, enc []byte) uint64 {
	if len(enc) == 0 {
		return 0
	}
	var d xxhash.Digest
	d.Reset()
	var n [4]byte
	n[0], n[1], n[2], n[3] = byte(len(key)>>24), byte(len(key)>>16), byte(len(key)>>8), byte(len(key))
	d.Write(n[:])
	d.Write(key)
	d.Write(enc)
	return d.Sum64()
}

// Trees holds one tictac Merkle tree per partition, kept in step with the store by
// being its storage.Observer. It is safe for concurrent use.
type Trees struct {
	parts []partTree
}

type partTree struct {
	mu       sync.Mutex
	leaves   *[Segments]uint64 // nil while the partition is empty since start
	branches [Branches]uint64
	root     uint64
	keys     int64  // records in the partition
	version  uint64 // changes seen since start: handoff drops only an unchanged partition
}

// NewTrees returns empty trees for partitions partitions.
func NewTrees(partitions int) *Trees { return &Trees{parts: make([]partTree, partitions)} }

// Partitions is the number of trees.
func (t *Trees) Partitions() int { return len(t.parts) }

// RecordChanged implements storage.Observer.
func (t *Trees) RecordChanged(p int, h uint64, key, old, next []byte) {
	delta := ItemHash(key, old) ^ ItemHash(key, next)
	pt := &t.parts[p]
	pt.mu.Lock()
	defer pt.mu.Unlock()
	pt.version++
	switch {
	case len(old) == 0 && len(next) != 0:
		pt.keys++
	case len(old) != 0 && len(next) == 0:
		pt.keys--
	}
	if delta == 0 {
		return
	}
	if pt.leaves == nil {
		pt.leaves = new([Segments]uint64)
	}
	s := SegmentOf(h)
	pt.leaves[s] ^= delta
	pt.branches[s/perBranch] ^= delta
	pt.root ^= delta
}

// PartitionsDropped implements storage.Observer.
func (t *Trees) PartitionsDropped(first, last int) {
	for p := first; p <= last; p++ {
		pt := &t.parts[p]
		pt.mu.Lock()
		pt.leaves, pt.branches, pt.root, pt.keys = nil, [Branches]uint64{}, 0, 0
		pt.version++
		pt.mu.Unlock()
	}
}

// Root returns partition p's root hash (0 when it holds nothing), its record count
// and its change version.
func (t *Trees) Root(p int) (root uint64, keys int64, version uint64) {
	pt := &t.parts[p]
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.root, pt.keys, pt.version
}

// Version is partition p's change version: it moves on every change to p.
func (t *Trees) Version(p int) uint64 {
	_, _, v := t.Root(p)
	return v
}

// BranchHashes returns partition p's branch hashes.
func (t *Trees) BranchHashes(p int) [Branches]uint64 {
	pt := &t.parts[p]
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.branches
}

// LeafHashes returns the leaf hashes of branch b of partition p.
func (t *Trees) LeafHashes(p, b int) [perBranch]uint64 {
	pt := &t.parts[p]
	pt.mu.Lock()
	defer pt.mu.Unlock()
	var out [perBranch]uint64
	if pt.leaves != nil {
		copy(out[:], pt.leaves[b*perBranch:(b+1)*perBranch])
	}
	return out
}

// RecordScanner reads a partition's records in hash order (*storage.Store).
type RecordScanner interface {
	Partitions() int
	ScanEncoded(p int, fromHash uint64, fn func(h uint64, key, enc []byte) bool) error
}

// PartitionLocker runs a function with no record of one partition changing
// (*storage.Store's ExclusivePartition).
type PartitionLocker interface {
	RecordScanner
	ExclusivePartition(p int, fn func() error) error
}

// Rebuild recomputes every tree from the store, one partition at a time, each
// while the store keeps every writer of that partition out (ExclusivePartition):
// the tree is reset and filled from a scan with no change in between, and changes
// committed before were reported before it began, those after are reported after
// it ends, to the rebuilt tree. So Rebuild may run while the store is written to
// (the reaper runs from Open on) and the trees always equal a fresh scan.
func (t *Trees) Rebuild(st PartitionLocker) error {
	for p := range t.parts {
		err := st.ExclusivePartition(p, func() error {
			t.PartitionsDropped(p, p)
			err := st.ScanEncoded(p, 0, func(h uint64, key, enc []byte) bool {
				t.RecordChanged(p, h, key, nil, enc)
				return true
			})
			pt := &t.parts[p]
			pt.mu.Lock()
			pt.version = 0
			pt.mu.Unlock()
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}
