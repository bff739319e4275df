package repair_test

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dynakv/dynakv/internal/fuzzcheck"
	"github.com/dynakv/dynakv/repair"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/vclock"
)

// TestTreesIncrementalEqualsRebuild: whatever order writes, overwrites, deletes and
// drops come in, the incrementally kept trees equal trees rebuilt from the store,
// and two stores with the same records have the same roots.
func TestTreesIncrementalEqualsRebuild(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 1))
			trees := repair.NewTrees(8)
			st, err := storage.Open(storage.Config{InMemory: true, Partitions: 8, Observer: trees,
				Logger: slog.New(slog.DiscardHandler), ReapInterval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			for range 400 {
				k := []byte(fmt.Sprintf("k%d", rng.IntN(60)))
				var next vclock.Set
				switch rng.IntN(10) {
				case 0: // delete
				case 1:
					if err := st.DropPartition(rng.IntN(8)); err != nil {
						t.Fatal(err)
					}
					continue
				default:
					next = vclock.New(nil, vclock.Value{Data: []byte(fmt.Sprint(rng.IntN(5))), Timestamp: 1})
				}
				if _, err := st.Update(k, func(vclock.Set, bool) (vclock.Set, error) { return next, nil }); err != nil {
					t.Fatal(err)
				}
			}
			fresh := repair.NewTrees(8)
			if err := fresh.Rebuild(st); err != nil {
				t.Fatal(err)
			}
			for p := range 8 {
				r1, k1, _ := trees.Root(p)
				r2, k2, _ := fresh.Root(p)
				if r1 != r2 || k1 != k2 || trees.BranchHashes(p) != fresh.BranchHashes(p) {
					t.Fatalf("partition %d: incremental root %x/%d, rebuilt %x/%d", p, r1, k1, r2, k2)
				}
				if k1 != st.PartitionCount(p) {
					t.Fatalf("partition %d: tree counts %d records, store %d", p, k1, st.PartitionCount(p))
				}
				for b := range repair.Branches {
					if trees.LeafHashes(p, b) != fresh.LeafHashes(p, b) {
						t.Fatalf("partition %d branch %d: leaves differ", p, b)
					}
				}
			}
		})
	}
}

func TestItemHash(t *testing.T) {
	if repair.ItemHash([]byte("k"), nil) != 0 {
		t.Fatal("no record must hash to 0")
	}
	// The key is length-prefixed: moving a byte between key and record changes it.
	if repair.ItemHash([]byte("ab"), []byte("c")) == repair.ItemHash([]byte("a"), []byte("bc")) {
		t.Fatal("key and record boundary not hashed")
	}
	if repair.SegmentOf(0) != 0 || repair.SegmentOf(^uint64(0)) != repair.Segments-1 {
		t.Fatal("segments do not span the hash space")
	}
}

// FuzzServe feeds arbitrary messages of every type to Serve, a node's answer to a
// peer's anti-entropy request: it must answer or refuse with ErrBadMessage, never
// panic, and every answer starts with the message version. FuzzDecodeMessages
// checks the decoders themselves.
func FuzzServe(f *testing.F) {
	rec := vclock.Update(vclock.Set{}, nil, "n9:1", vclock.Value{Data: []byte("pushed"), Timestamp: 5}, 5, 1).AppendBinary(nil)
	keyRec := append([]byte{1, 1, 1, 'k', byte(len(rec))}, rec...)
	for _, s := range []struct {
		name string
		typ  uint8
		b    []byte
	}{
		{"roots", repair.MsgRoots, append([]byte{1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3}, make([]byte, 8)...)},
		{"roots-partition-too-big", repair.MsgRoots, append([]byte{1, 1, 4}, make([]byte, 8)...)},
		{"branches", repair.MsgBranches, []byte{1, 1, 2}},
		{"branches-two-partitions", repair.MsgBranches, []byte{1, 2, 0, 1}},
		{"leaves", repair.MsgLeaves, []byte{1, 0, 1, 2, 0, repair.Branches - 1}},
		{"keys", repair.MsgKeys, []byte{1, 1, 1, 3, 0, 0x80, 0x04, 0xff, 0x07}},
		{"fetch", repair.MsgFetch, []byte{1, 2, 1, 'k', 0}},
		{"push", repair.MsgPush, keyRec},
		{"push-no-record", repair.MsgPush, []byte{1, 1, 1, 'k', 0}},
		{"push-bad-record", repair.MsgPush, []byte{1, 1, 1, 'k', 2, 2, 0}},
		{"purge", repair.MsgPurge, keyRec},
		{"unknown-type", 0, []byte{1, 0}},
	} {
		fuzzcheck.Seed(f, s.name, s.typ, s.b)
	}
	c := newAAECluster(f, 4, 2, "a", "b")
	c.write("k", nil, "v", 0, false, "a")
	a := c.nodes["a"].aae
	f.Fuzz(func(t *testing.T, typ uint8, req []byte) {
		out, err := a.Serve(t.Context(), typ, req)
		if err != nil {
			if !errors.Is(err, repair.ErrBadMessage) {
				t.Fatalf("Serve(%d) failed with %v, not ErrBadMessage", typ, err)
			}
			return
		}
		if len(out) == 0 || out[0] != 1 {
			t.Fatalf("Serve(%d) answered %x", typ, out)
		}
	})
}
