package tictac_test

// Scripted tests of trees and their diffs (testdata/*), in the style of etcd raft's
// quorum/testdata and pebble's datadriven tests. Each script keeps named trees, and
// beside each the keys it holds (the simple model the output is checked against).
// Commands:
//
//	put <tree>          input: one "<key> <item hash> [seg=<segment>]" per line:
//	                    sets the key's item hash (replacing the one it had). The
//	                    key's hash is xxhash64(key), or with seg= a hash in that
//	                    segment. Prints the tree's root and key count.
//	delete <tree>       input: one key per line: removes it. Prints as put does.
//	show <tree>         prints the root, then each branch with a non-zero hash or
//	                    leaf and, under it, each non-zero leaf with the keys in its
//	                    segment.
//	diff <a> <b>        descends as anti-entropy does: prints both roots, the
//	                    branches whose hashes differ, then for each of those only
//	                    the segments whose leaves differ, with the keys each tree
//	                    holds there.
//
// Rewrite the expected output after a deliberate change with
// `go test ./tictac -run TestScripts -rewrite`.

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/datadriven"

	"github.com/dynakv/dynakv/tictac"
)

func TestScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		s := &script{trees: map[string]*scriptTree{}}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return s.run(t, d)
		})
	})
}

type script struct {
	trees map[string]*scriptTree
}

type scriptTree struct {
	tree tictac.Tree
	keys model // key -> (key hash, item hash)
}

// tree returns the tree named by the command's i-th argument, creating it.
func (s *script) tree(t *testing.T, d *datadriven.TestData, i int) (string, *scriptTree) {
	if len(d.CmdArgs) <= i || len(d.CmdArgs[i].Vals) != 0 {
		d.Fatalf(t, "%s: want a tree name as argument %d", d.Cmd, i+1)
	}
	name := d.CmdArgs[i].Key
	st := s.trees[name]
	if st == nil {
		st = &scriptTree{keys: model{}}
		s.trees[name] = st
	}
	return name, st
}

func (s *script) run(t *testing.T, d *datadriven.TestData) string {
	switch d.Cmd {
	case "put", "delete":
		name, st := s.tree(t, d, 0)
		for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				st.apply(t, d, line)
			}
		}
		checkTree(t, &st.tree, st.keys)
		return fmt.Sprintf("%s: root %#x, keys %d\n", name, st.tree.Root(), len(st.keys))
	case "show":
		_, st := s.tree(t, d, 0)
		return st.show()
	case "diff":
		na, a := s.tree(t, d, 0)
		nb, b := s.tree(t, d, 1)
		return diff(t, na, nb, a, b)
	}
	d.Fatalf(t, "unknown command %q", d.Cmd)
	return ""
}

// apply runs one input line of put or delete.
func (st *scriptTree) apply(t *testing.T, d *datadriven.TestData, line string) {
	f := strings.Fields(line)
	key := f[0]
	old := st.keys[key]
	if d.Cmd == "delete" {
		if len(f) != 1 || old[1] == 0 {
			d.Fatalf(t, "delete %q: want one key the tree holds", line)
		}
		st.tree.Update(old[0], old[1], 0)
		delete(st.keys, key)
		return
	}
	if len(f) < 2 || len(f) > 3 {
		d.Fatalf(t, "put %q: want <key> <item hash> [seg=<segment>]", line)
	}
	item, err := strconv.ParseUint(f[1], 0, 64)
	if err != nil || item == 0 {
		d.Fatalf(t, "put %q: item hash must be a non-zero number", line)
	}
	h := xxhash.Sum64String(key)
	if len(f) == 3 {
		seg, err := strconv.Atoi(strings.TrimPrefix(f[2], "seg="))
		if err != nil || !strings.HasPrefix(f[2], "seg=") || seg < 0 || seg >= tictac.Segments {
			d.Fatalf(t, "put %q: bad segment", line)
		}
		lo, _ := tictac.SegmentRange(seg)
		h = lo | h>>10 // 10 bits of segment, the rest of the key's own hash
	}
	if old[1] != 0 && old[0] != h {
		st.tree.Update(old[0], old[1], 0) // the key moved segments: its hash is its own
		old = [2]uint64{}
	}
	st.tree.Update(h, old[1], item)
	st.keys[key] = [2]uint64{h, item}
}

// inSegment lists "key=item" of the keys the tree holds in segment s, sorted, or "-".
func (st *scriptTree) inSegment(s int) string {
	var out []string
	for _, k := range slicesOfKeys(st.keys) {
		if hi := st.keys[k]; tictac.SegmentOf(hi[0]) == s {
			out = append(out, fmt.Sprintf("%s=%#x", k, hi[1]))
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, " ")
}

func (st *scriptTree) show() string {
	var b strings.Builder
	fmt.Fprintf(&b, "root %#x\n", st.tree.Root())
	branches := st.tree.BranchHashes()
	for i, bh := range branches {
		leaves := st.tree.LeafHashes(i)
		if bh == 0 && leaves == [tictac.SegmentsPerBranch]uint64{} {
			continue
		}
		fmt.Fprintf(&b, "branch %d %#x\n", i, bh)
		for j, lh := range leaves {
			if lh != 0 {
				s := i*tictac.SegmentsPerBranch + j
				fmt.Fprintf(&b, "  segment %d %#x: %s\n", s, lh, st.inSegment(s))
			}
		}
	}
	return b.String()
}

func diff(t *testing.T, na, nb string, a, b *scriptTree) string {
	checkDiff(t, &a.tree, &b.tree, a.keys, b.keys)
	var out strings.Builder
	fmt.Fprintf(&out, "roots: %s %#x, %s %#x\n", na, a.tree.Root(), nb, b.tree.Root())
	theirs := b.tree.BranchHashes()
	branches := a.tree.DiffBranches(&theirs)
	if len(branches) == 0 {
		out.WriteString("equal\n")
		return out.String()
	}
	fmt.Fprintf(&out, "branches: %s\n", strings.Trim(fmt.Sprint(branches), "[]"))
	segs := a.tree.DiffSegments(branches, leavesOf(&b.tree, branches))
	for _, s := range segs {
		fmt.Fprintf(&out, "segment %d: %s %s | %s %s\n", s, na, a.inSegment(s), nb, b.inSegment(s))
	}
	if !slices.IsSorted(segs) {
		t.Fatalf("segments %v not in order", segs)
	}
	return out.String()
}
