package tictac

import "github.com/cespare/xxhash/v2"

// Tree shape. A partition's keys are spread over Segments leaves by the top bits of
// their hash (the partition is the bottom bits, so every leaf of a partition is
// used); leaves are grouped SegmentsPerBranch to a branch. The levels are combined
// with XOR, so a write updates a leaf, its branch and the root with the same delta,
// with no reads: old ^ new.
const (
	Segments          = 1024
	Branches          = 32
	SegmentsPerBranch = Segments / Branches
	segmentBits       = 10 // log2(Segments)
)

// SegmentOf is the leaf of a key with hash h.
func SegmentOf(h uint64) int { return int(h >> (64 - segmentBits)) }

// SegmentRange is the [lo, hi] hash range of segment s (inclusive).
func SegmentRange(s int) (lo, hi uint64) {
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

// Tree is one partition's tictac tree. The zero value is an empty tree; it holds
// no leaves until a change needs them. A Tree is not safe for concurrent use.
type Tree struct {
	leaves   *[Segments]uint64 // nil while every leaf is 0 since the tree was made
	branches [Branches]uint64
	root     uint64
}

// Update records that the item hash of a key with hash h changed from old to next
// (0: no record): put is Update(h, 0, item), delete Update(h, item, 0).
func (t *Tree) Update(h, old, next uint64) {
	delta := old ^ next
	if delta == 0 {
		return
	}
	if t.leaves == nil {
		t.leaves = new([Segments]uint64)
	}
	s := SegmentOf(h)
	t.leaves[s] ^= delta
	t.branches[s/SegmentsPerBranch] ^= delta
	t.root ^= delta
}

// Root is the tree's root hash: 0 when it holds nothing.
func (t *Tree) Root() uint64 { return t.root }

// BranchHashes returns the tree's branch hashes.
func (t *Tree) BranchHashes() [Branches]uint64 { return t.branches }

// LeafHashes returns the leaf hashes of branch b: those of segments
// b*SegmentsPerBranch to (b+1)*SegmentsPerBranch-1.
func (t *Tree) LeafHashes(b int) [SegmentsPerBranch]uint64 {
	var out [SegmentsPerBranch]uint64
	if t.leaves != nil {
		copy(out[:], t.leaves[b*SegmentsPerBranch:(b+1)*SegmentsPerBranch])
	}
	return out
}

// DiffBranches returns, in ascending order, the branches whose hash differs from
// theirs (another tree's BranchHashes).
func (t *Tree) DiffBranches(theirs *[Branches]uint64) []int {
	var out []int
	for b := range Branches {
		if t.branches[b] != theirs[b] {
			out = append(out, b)
		}
	}
	return out
}

// DiffSegments returns, in ascending order of branches, the segments of branches
// whose leaf hash differs from theirs: another tree's LeafHashes of each of branches
// in turn, SegmentsPerBranch per branch. It panics unless len(theirs) is
// len(branches)*SegmentsPerBranch and every branch is below Branches.
func (t *Tree) DiffSegments(branches []int, theirs []uint64) []int {
	if len(theirs) != len(branches)*SegmentsPerBranch {
		panic("tictac: DiffSegments: leaf count does not match the branches")
	}
	var out []int
	for i, b := range branches {
		mine := t.LeafHashes(b)
		for j := range SegmentsPerBranch {
			if mine[j] != theirs[i*SegmentsPerBranch+j] {
				out = append(out, b*SegmentsPerBranch+j)
			}
		}
	}
	return out
}
