package storage

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dynakv/dynakv/vclock"
)

// recordingObserver keeps what a Store told it.
type recordingObserver struct {
	mu      sync.Mutex
	changes []string
	drops   [][2]int
}

func (o *recordingObserver) RecordChanged(p int, h uint64, key, old, new []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if Hash(key) != h {
		o.changes = append(o.changes, "bad hash")
	}
	o.changes = append(o.changes, fmt.Sprintf("%s:%d>%d", key, len(old), len(new)))
}

func (o *recordingObserver) PartitionsDropped(first, last int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.drops = append(o.drops, [2]int{first, last})
}

func TestObserverSeesEveryRecordChange(t *testing.T) {
	obs := &recordingObserver{}
	s := openMem(t, Config{Partitions: 16, Observer: obs})
	a, b := rec(val("1", 0)), rec(val("22", 0))
	put(t, s, "k", a)
	put(t, s, "k", b)
	// ErrNoChange is no change.
	if _, err := s.Update([]byte("k"), func(vclock.Set, bool) (vclock.Set, error) { return vclock.Set{}, ErrNoChange }); err != nil {
		t.Fatal(err)
	}
	// Hints are not records.
	putHint(t, s, "owner", "k", a)
	put(t, s, "k", vclock.Set{})
	la, lb := len(a.AppendBinary(nil)), len(b.AppendBinary(nil))
	want := []string{fmt.Sprintf("k:0>%d", la), fmt.Sprintf("k:%d>%d", la, lb), fmt.Sprintf("k:%d>0", lb)}
	if fmt.Sprint(obs.changes) != fmt.Sprint(want) {
		t.Fatalf("changes = %v, want %v", obs.changes, want)
	}
	if err := s.DropPartition(3); err != nil {
		t.Fatal(err)
	}
	if err := s.DropAll(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(obs.drops) != "[[3 3] [0 15]]" {
		t.Fatalf("drops = %v", obs.drops)
	}
}

func TestDropPartitionIf(t *testing.T) {
	s := openMem(t, Config{Partitions: 1})
	put(t, s, "k", rec(val("v", 0)))
	dropped, err := s.DropPartitionIf(0, func() bool { return false })
	if err != nil || dropped {
		t.Fatalf("DropPartitionIf(false) = %v, %v", dropped, err)
	}
	if _, found := mustGet(t, s, "k"); !found {
		t.Fatal("a refused drop deleted the record")
	}
	if dropped, err = s.DropPartitionIf(0, func() bool { return true }); err != nil || !dropped {
		t.Fatalf("DropPartitionIf(true) = %v, %v", dropped, err)
	}
	if _, found := mustGet(t, s, "k"); found || s.Count() != 0 {
		t.Fatal("the drop kept the record")
	}
	if _, err := s.DropPartitionIf(1, nil); err == nil {
		t.Fatal("DropPartitionIf accepted a partition out of range")
	}
}

func grave(ts int64) vclock.Value { return vclock.Value{Tombstone: true, Timestamp: ts} }

func TestGravesIndexTombstoneRecords(t *testing.T) {
	s := openMem(t, Config{Partitions: 8})
	put(t, s, "old", rec(grave(100)))
	put(t, s, "new", rec(grave(300)))
	put(t, s, "mixed", rec(grave(50), val("live", 0))) // a live sibling: not a grave
	put(t, s, "two", rec(grave(10), grave(200)))       // the newest tombstone counts
	put(t, s, "value", rec(val("v", 0)))

	gs, err := s.Graves(250, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range gs {
		got = append(got, fmt.Sprintf("%s@%d", g.Key, g.Written))
		cur, _ := mustGet(t, s, string(g.Key))
		if !bytes.Equal(cur.AppendBinary(nil), g.Record) {
			t.Fatalf("grave %s: record differs from the stored one", g.Key)
		}
	}
	if fmt.Sprint(got) != "[old@100 two@200]" {
		t.Fatalf("Graves(250) = %v", got)
	}
	if gs, _ := s.Graves(1000, 1); len(gs) != 1 || string(gs[0].Key) != "old" {
		t.Fatalf("Graves limit 1 = %v", gs)
	}
	// A grave brought back to life leaves the index; its stale entry is cleaned.
	put(t, s, "old", rec(val("back", 0)))
	if gs, _ := s.Graves(1000, 100); len(gs) != 2 {
		t.Fatalf("after revival: %d graves, want 2", len(gs))
	}
	// Dropped partitions leave dangling entries that Graves skips.
	if err := s.DropAll(); err != nil {
		t.Fatal(err)
	}
	if gs, _ := s.Graves(1000, 100); len(gs) != 0 {
		t.Fatalf("after DropAll: %v", gs)
	}
}

func TestDeleteIfComparesTheEncoding(t *testing.T) {
	s := openMem(t, Config{Partitions: 8})
	r := rec(grave(100))
	put(t, s, "k", r)
	enc := r.AppendBinary(nil)
	if ok, err := s.DeleteIf([]byte("k"), append(bytes.Clone(enc), 0)); ok || err != nil {
		t.Fatalf("DeleteIf(other) = %v, %v", ok, err)
	}
	if ok, err := s.DeleteIf([]byte("k"), enc); !ok || err != nil {
		t.Fatalf("DeleteIf(same) = %v, %v", ok, err)
	}
	if _, found := mustGet(t, s, "k"); found {
		t.Fatal("record still there")
	}
	if ok, err := s.DeleteIf([]byte("k"), enc); ok || err != nil {
		t.Fatalf("DeleteIf(absent) = %v, %v", ok, err)
	}
	if gs, _ := s.Graves(1000, 100); len(gs) != 0 {
		t.Fatalf("grave index kept a deleted record: %v", gs)
	}
}

func TestGetEncoded(t *testing.T) {
	s := openMem(t, Config{Partitions: 8})
	if enc, err := s.GetEncoded([]byte("k")); enc != nil || err != nil {
		t.Fatalf("absent: %x, %v", enc, err)
	}
	r := rec(val("v", 0))
	put(t, s, "k", r)
	if enc, err := s.GetEncoded([]byte("k")); !bytes.Equal(enc, r.AppendBinary(nil)) || err != nil {
		t.Fatalf("GetEncoded = %x, %v", enc, err)
	}
}

// TestReapCollectsATombstoneWithAnExpiredSibling is finding 6 of issue 15: a DEL
// and a concurrent SET EX leave a tombstone and an expiring value as siblings.
// Once the value expires the record is dead: the reaper must bury it, the grave
// index must hand it to tombstone purge, and DBSIZE must stop counting it.
func TestReapCollectsATombstoneWithAnExpiredSibling(t *testing.T) {
	clk := newFakeClock()
	s := openMem(t, Config{Partitions: 8, Now: clk.Now})
	now := clk.Millis()
	exp := now + 1000
	del := vclock.Update(vclock.Set{}, nil, "a", vclock.Value{Tombstone: true, Timestamp: now}, now, 1)
	set := vclock.Update(vclock.Set{}, nil, "b", vclock.Value{Data: []byte("v"), Timestamp: now + 1, Expiry: exp}, now+1, 1)
	put(t, s, "k", vclock.Sync(del, set))
	if s.Count() != 1 {
		t.Fatalf("Count = %d before the expiry, want 1 (the value is newer)", s.Count())
	}
	clk.Advance(2 * time.Second)
	if n, err := s.Reap(100); err != nil || n != 1 {
		t.Fatalf("Reap = %d, %v; the record is dead once its value expired", n, err)
	}
	if s.Count() != 0 {
		t.Fatalf("Count = %d after the reap, want 0", s.Count())
	}
	gs, err := s.Graves(exp+1, 10)
	if err != nil || len(gs) != 1 || gs[0].Written != exp {
		t.Fatalf("Graves = %+v, %v; want the record, dead at the expiry", gs, err)
	}
	if ok, err := s.DeleteIf([]byte("k"), gs[0].Record); !ok || err != nil {
		t.Fatalf("DeleteIf = %v, %v", ok, err)
	}
	if _, found := mustGet(t, s, "k"); found || s.Count() != 0 {
		t.Fatal("the record survived its purge")
	}
}
