package storage

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble"
)

func epochs(s *Store) []uint64 {
	out := make([]uint64, s.Partitions())
	for p := range out {
		out[p] = s.Epoch(p)
	}
	return out
}

func wantEpochs(t *testing.T, s *Store, what string, want map[int]uint64) {
	t.Helper()
	for p, got := range epochs(s) {
		if got != want[p] {
			t.Fatalf("%s: Epoch(%d) = %d, want %d (all: %v)", what, p, got, want[p], epochs(s))
		}
	}
}

// TestPartitionEpochs: a partition's epoch is 0 until it is dropped, every drop
// raises it (DropAll raises all), a drop that does not happen leaves it, and the
// epochs survive a restart.
func TestPartitionEpochs(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, Partitions: 8, Sync: SyncNone, Logger: quietLogger()}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "k", rec(val("v", 0)))
	p := s.PartitionOf([]byte("k"))
	wantEpochs(t, s, "fresh", nil)
	if err := s.DropPartition(p); err != nil {
		t.Fatal(err)
	}
	wantEpochs(t, s, "after DropPartition", map[int]uint64{p: 1})
	if dropped, err := s.DropPartitionIf(p, func() bool { return false }); err != nil || dropped {
		t.Fatalf("DropPartitionIf(false) = %v, %v", dropped, err)
	}
	wantEpochs(t, s, "after a drop that did not happen", map[int]uint64{p: 1})
	if dropped, err := s.DropPartitionIf(p, nil); err != nil || !dropped {
		t.Fatalf("DropPartitionIf(nil) = %v, %v", dropped, err)
	}
	wantEpochs(t, s, "after DropPartitionIf", map[int]uint64{p: 2})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	wantEpochs(t, s, "after a restart", map[int]uint64{p: 2})
	if err := s.DropAll(); err != nil {
		t.Fatal(err)
	}
	all := map[int]uint64{}
	for q := range s.Partitions() {
		all[q] = 1
	}
	all[p] = 3
	wantEpochs(t, s, "after DropAll", all)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, cfg)
	wantEpochs(t, s, "after another restart", all)
	if v, ok, err := s.GetMeta("partitions"); err != nil || !ok || string(v) != "8" {
		t.Fatalf("DropAll lost other metadata: %q, %v, %v", v, ok, err)
	}
}

// TestDropCommitsEpochWithIt: the new epoch is written in the drop's own batch
// (so no crash can keep one without the other), and it is in place before any
// writer can see the partition empty.
func TestDropCommitsEpochWithIt(t *testing.T) {
	for _, tt := range []struct {
		name        string
		drop        func(s *Store) error
		first, last int
	}{
		{"DropPartition", func(s *Store) error { return s.DropPartition(5) }, 5, 5},
		{"DropAll", func(s *Store) error { return s.DropAll() }, 0, 7},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := openMem(t, Config{Partitions: 8})
			before := epochs(s)
			var sets map[int]uint64
			var deletes [][2][]byte
			s.testHookDrop = func(b *pebble.Batch) {
				sets = map[int]uint64{}
				r := b.Reader()
				for {
					kind, k, v, ok, err := r.Next()
					if err != nil {
						t.Fatal(err)
					}
					if !ok {
						break
					}
					switch {
					case kind == pebble.InternalKeyKindRangeDelete:
						deletes = append(deletes, [2][]byte{k, v})
					case kind == pebble.InternalKeyKindSet && bytes.HasPrefix(k, metaKey(metaEpoch)):
						sets[int(binary.BigEndian.Uint16(k[len(k)-2:]))] = binary.BigEndian.Uint64(v)
					}
				}
				if got := epochs(s); !slices.Equal(got, before) {
					t.Errorf("epochs changed before the commit: %v", got)
				}
			}
			if err := tt.drop(s); err != nil {
				t.Fatal(err)
			}
			lo, _ := partitionBounds(tt.first)
			_, hi := partitionBounds(tt.last)
			found := false
			for _, d := range deletes {
				found = found || bytes.Equal(d[0], lo) && bytes.Equal(d[1], hi)
			}
			if !found {
				t.Fatalf("the batch does not delete the partitions: %q", deletes)
			}
			if len(sets) != tt.last-tt.first+1 {
				t.Fatalf("the batch sets %d epochs, want %d: %v", len(sets), tt.last-tt.first+1, sets)
			}
			for p := tt.first; p <= tt.last; p++ {
				if sets[p] != before[p]+1 || s.Epoch(p) != before[p]+1 {
					t.Fatalf("partition %d: batch epoch %d, Epoch %d, want %d", p, sets[p], s.Epoch(p), before[p]+1)
				}
			}
		})
	}
}

// TestMalformedEpochRefused: a damaged epoch entry fails Open rather than
// restarting the partition's epochs (which could reuse an actor).
func TestMalformedEpochRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, Partitions: 8, Sync: SyncNone, Logger: quietLogger()}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutMeta(metaEpoch+"\x00\x01", []byte("short")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(cfg); err == nil {
		s.Close()
		t.Fatal("Open accepted a malformed epoch")
	}
}
