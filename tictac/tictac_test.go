package tictac_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/dynakv/dynakv/tictac"
)

func TestItemHash(t *testing.T) {
	if tictac.ItemHash([]byte("k"), nil) != 0 {
		t.Fatal("no record must hash to 0")
	}
	// The key is length-prefixed: moving a byte between key and record changes it.
	if tictac.ItemHash([]byte("ab"), []byte("c")) == tictac.ItemHash([]byte("a"), []byte("bc")) {
		t.Fatal("key and record boundary not hashed")
	}
	if tictac.SegmentOf(0) != 0 || tictac.SegmentOf(^uint64(0)) != tictac.Segments-1 {
		t.Fatal("segments do not span the hash space")
	}
}

func TestSegmentRange(t *testing.T) {
	prevHi := uint64(0)
	for s := range tictac.Segments {
		lo, hi := tictac.SegmentRange(s)
		if tictac.SegmentOf(lo) != s || tictac.SegmentOf(hi) != s {
			t.Fatalf("segment %d: range [%#x, %#x] not in it", s, lo, hi)
		}
		if s > 0 && lo != prevHi+1 {
			t.Fatalf("segment %d starts at %#x, the previous one ended at %#x", s, lo, prevHi)
		}
		prevHi = hi
	}
	if prevHi != ^uint64(0) {
		t.Fatalf("the last segment ends at %#x", prevHi)
	}
}

// model is the simple thing a tree summarizes: per key, its hash and item hash.
type model map[string][2]uint64

// segments returns, per segment, the XOR of its items: what the tree's leaves must be.
func (m model) leaves() map[int]uint64 {
	out := map[int]uint64{}
	for _, hi := range m {
		out[tictac.SegmentOf(hi[0])] ^= hi[1]
	}
	return out
}

// diffModels returns, sorted, the segments a diff must find between trees holding
// a and b: those whose leaves differ, in branches whose hashes differ. (Leaves
// that differ in a branch whose hashes agree, their differences cancelling out,
// are not found: a 64-bit collision, see the collision script.)
func diffModels(a, b model) []int {
	la, lb := a.leaves(), b.leaves()
	var ba, bb [tictac.Branches]uint64
	for s := range tictac.Segments {
		ba[s/tictac.SegmentsPerBranch] ^= la[s]
		bb[s/tictac.SegmentsPerBranch] ^= lb[s]
	}
	var out []int
	for s := range tictac.Segments {
		if la[s] != lb[s] && ba[s/tictac.SegmentsPerBranch] != bb[s/tictac.SegmentsPerBranch] {
			out = append(out, s)
		}
	}
	return out
}

// diffSets returns, sorted, the segments in which a and b hold different keys or
// items: what diffModels finds when no hashes collide.
func diffSets(a, b model) []int {
	var out []int
	for _, m := range []model{a, b} {
		for k, hi := range m {
			if a[k] != b[k] {
				out = append(out, tictac.SegmentOf(hi[0]))
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestTreeAgainstModel checks the fast thing against the simple thing: whatever
// puts, overwrites and deletes two trees see, in whatever order, each level is the
// XOR of the items below it, a tree depends only on what it holds, and the
// two-level diff finds exactly the segments whose items differ.
func TestTreeAgainstModel(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 2))
			var trees [2]tictac.Tree
			models := [2]model{{}, {}}
			// Few keys, spread over few segments of few branches, so that
			// segments and branches hold several keys and often agree.
			hashOf := func(k int) uint64 {
				lo, _ := tictac.SegmentRange([]int{0, 1, 31, 32, 500, 501, 1023}[k%7])
				return lo | uint64(k)
			}
			for range 300 {
				i, k := rng.IntN(2), rng.IntN(40)
				key := fmt.Sprint(k)
				old := models[i][key][1]
				var next uint64
				if rng.IntN(4) != 0 {
					// Few values, so replicas often agree; hashed with the
					// key, as records are, so no two items collide.
					next = tictac.ItemHash([]byte(key), []byte{byte(rng.IntN(3))})
				}
				trees[i].Update(hashOf(k), old, next)
				if next == 0 {
					delete(models[i], key)
				} else {
					models[i][key] = [2]uint64{hashOf(k), next}
				}
				checkTree(t, &trees[i], models[i])
				segs := checkDiff(t, &trees[0], &trees[1], models[0], models[1])
				if want := diffSets(models[0], models[1]); !slices.Equal(segs, want) {
					t.Fatalf("diff found segments %v, the trees hold different keys in %v", segs, want)
				}
			}
			// A tree built afresh, in another order, from what a tree holds
			// equals it.
			for i := range trees {
				var fresh tictac.Tree
				keys := slicesOfKeys(models[i])
				rng.Shuffle(len(keys), func(a, b int) { keys[a], keys[b] = keys[b], keys[a] })
				for _, k := range keys {
					fresh.Update(models[i][k][0], 0, models[i][k][1])
				}
				if fresh.Root() != trees[i].Root() || fresh.BranchHashes() != trees[i].BranchHashes() ||
					fresh.DiffSegments(allBranches(), leavesOf(&trees[i], allBranches())) != nil {
					t.Fatalf("tree %d differs from one built afresh from its items", i)
				}
			}
		})
	}
}

func checkTree(t *testing.T, tr *tictac.Tree, m model) {
	t.Helper()
	leaves := m.leaves()
	var branches [tictac.Branches]uint64
	var root uint64
	for s, h := range leaves {
		branches[s/tictac.SegmentsPerBranch] ^= h
		root ^= h
	}
	if tr.Root() != root || tr.BranchHashes() != branches {
		t.Fatalf("root %#x, want %#x; branches %x, want %x", tr.Root(), root, tr.BranchHashes(), branches)
	}
	for b := range tictac.Branches {
		ls := tr.LeafHashes(b)
		for j, h := range ls {
			if s := b*tictac.SegmentsPerBranch + j; h != leaves[s] {
				t.Fatalf("segment %d: leaf %#x, want %#x", s, h, leaves[s])
			}
		}
	}
}

// checkDiff checks the two-level diff of a and b against their models, and returns
// the segments it found.
func checkDiff(t *testing.T, a, b *tictac.Tree, ma, mb model) []int {
	t.Helper()
	theirs := b.BranchHashes()
	branches := a.DiffBranches(&theirs)
	segs := a.DiffSegments(branches, leavesOf(b, branches))
	if want := diffModels(ma, mb); !slices.Equal(segs, want) {
		t.Fatalf("diff found segments %v, want %v", segs, want)
	}
	for _, s := range segs {
		if !slices.Contains(branches, s/tictac.SegmentsPerBranch) {
			t.Fatalf("segment %d outside the differing branches %v", s, branches)
		}
	}
	if (a.Root() == b.Root()) != (len(branches) == 0) {
		t.Fatalf("roots %#x and %#x, differing branches %v", a.Root(), b.Root(), branches)
	}
	return segs
}

// leavesOf is what a replica sends for a leaves request: the leaf hashes of
// branches, in turn.
func leavesOf(tr *tictac.Tree, branches []int) []uint64 {
	out := make([]uint64, 0, len(branches)*tictac.SegmentsPerBranch)
	for _, b := range branches {
		ls := tr.LeafHashes(b)
		out = append(out, ls[:]...)
	}
	return out
}

func allBranches() []int {
	out := make([]int, tictac.Branches)
	for b := range out {
		out[b] = b
	}
	return out
}

func slicesOfKeys(m model) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestDiffSegmentsRefusesMismatchedLeaves(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("DiffSegments accepted leaves of the wrong length")
		}
	}()
	var tr tictac.Tree
	tr.DiffSegments([]int{1, 2}, make([]uint64, tictac.SegmentsPerBranch))
}

// TestTreesFollowChanges: Trees as an observer keeps per partition the tree of its
// records' item hashes, its record count and a version that moves on every change.
func TestTreesFollowChanges(t *testing.T) {
	trees := tictac.NewTrees(2)
	lo, _ := tictac.SegmentRange(100)
	h := lo | 5
	trees.RecordChanged(1, h, []byte("k"), nil, []byte("v1"))
	trees.RecordChanged(1, h, []byte("k"), []byte("v1"), []byte("v2"))
	var want tictac.Tree
	want.Update(h, 0, tictac.ItemHash([]byte("k"), []byte("v2")))
	root, keys, version := trees.Root(1)
	if root != want.Root() || keys != 1 || version != 2 || trees.BranchHashes(1) != want.BranchHashes() ||
		trees.LeafHashes(1, 100/tictac.SegmentsPerBranch) != want.LeafHashes(100/tictac.SegmentsPerBranch) {
		t.Fatalf("root %#x keys %d version %d, want %#x 1 2", root, keys, version, want.Root())
	}
	if r, k, v := trees.Root(0); r != 0 || k != 0 || v != 0 {
		t.Fatalf("untouched partition: root %#x keys %d version %d", r, k, v)
	}
	theirs := want.BranchHashes()
	if d := trees.DiffBranches(1, &theirs); d != nil {
		t.Fatalf("differing branches %v", d)
	}
	trees.RecordChanged(1, h, []byte("k"), []byte("v2"), nil)
	if r, k, v := trees.Root(1); r != 0 || k != 0 || v != 3 {
		t.Fatalf("after the delete: root %#x keys %d version %d", r, k, v)
	}
	trees.RecordChanged(1, h, []byte("k"), nil, []byte("v1"))
	trees.PartitionsDropped(0, 1)
	if r, k, v := trees.Root(1); r != 0 || k != 0 || v != 5 || trees.Version(0) != 1 {
		t.Fatalf("after the drop: root %#x keys %d version %d", r, k, v)
	}
}
