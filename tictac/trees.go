package tictac

import "sync"

// Trees holds one tree per partition, kept in step with a store by being its
// observer (storage.Observer: RecordChanged and PartitionsDropped). It is safe for
// concurrent use.
type Trees struct {
	parts []partTree
}

type partTree struct {
	mu      sync.Mutex
	tree    Tree
	keys    int64  // records in the partition
	version uint64 // changes seen since start: handoff drops only an unchanged partition
}

// NewTrees returns empty trees for partitions partitions.
func NewTrees(partitions int) *Trees { return &Trees{parts: make([]partTree, partitions)} }

// Partitions is the number of trees.
func (t *Trees) Partitions() int { return len(t.parts) }

// RecordChanged records that the record of key, whose hash is h, in partition p
// changed from encoding old to next (empty: no record). It implements
// storage.Observer.
func (t *Trees) RecordChanged(p int, h uint64, key, old, next []byte) {
	oldItem, nextItem := ItemHash(key, old), ItemHash(key, next)
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
	pt.tree.Update(h, oldItem, nextItem)
}

// PartitionsDropped empties the trees of partitions first to last. It implements
// storage.Observer.
func (t *Trees) PartitionsDropped(first, last int) {
	for p := first; p <= last; p++ {
		pt := &t.parts[p]
		pt.mu.Lock()
		pt.tree, pt.keys = Tree{}, 0
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
	return pt.tree.Root(), pt.keys, pt.version
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
	return pt.tree.BranchHashes()
}

// LeafHashes returns the leaf hashes of branch b of partition p.
func (t *Trees) LeafHashes(p, b int) [SegmentsPerBranch]uint64 {
	pt := &t.parts[p]
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.tree.LeafHashes(b)
}

// DiffBranches is Tree.DiffBranches of partition p's tree.
func (t *Trees) DiffBranches(p int, theirs *[Branches]uint64) []int {
	pt := &t.parts[p]
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.tree.DiffBranches(theirs)
}

// DiffSegments is Tree.DiffSegments of partition p's tree.
func (t *Trees) DiffSegments(p int, branches []int, theirs []uint64) []int {
	pt := &t.parts[p]
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.tree.DiffSegments(branches, theirs)
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
// (the reaper runs from Open on) and the trees always equal a fresh scan. Rebuild
// does no I/O of its own: it reads through st.
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
