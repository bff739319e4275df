package storage

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/ring"
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
	if ring.KeyHash(key) != h {
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
	if _, err := s.Update([]byte("k"), func(record.Record, bool) (record.Record, error) { return record.Record{}, ErrNoChange }); err != nil {
		t.Fatal(err)
	}
	// Hints are not records.
	putHint(t, s, "owner", "k", a)
	put(t, s, "k", record.Record{})
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
	put(t, s, "k", record.String(vclock.Sync(del, set)))
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

// TestReapBuriesAnExpiredWinnerBesideALiveSibling: a record holds old (no TTL,
// older timestamp) and a concurrent new EX 1 (newer timestamp). Plain GET answers
// absent once new expired (new wins and is expired), so DBSIZE must stop counting
// the key: the reaper buries new although old never expires, and the record is
// indexed again at its next expiry (none here). An expired sibling that lost the
// plain-GET order is buried too: it keeps no data.
func TestReapBuriesAnExpiredWinnerBesideALiveSibling(t *testing.T) {
	clk := newFakeClock()
	s := openMem(t, Config{Partitions: 8, Now: clk.Now})
	now := clk.Millis()
	old := vclock.Update(vclock.Set{}, nil, "a", vclock.Value{Data: []byte("old"), Timestamp: now}, now, 1)
	exp := now + 1000
	nw := vclock.Update(vclock.Set{}, nil, "b", vclock.Value{Data: []byte("new"), Timestamp: now + 1, Expiry: exp}, now+1, 1)
	put(t, s, "k", record.String(vclock.Sync(old, nw)))
	// The loser: an expiring value beside a newer live one, which wins.
	short := vclock.Update(vclock.Set{}, nil, "a", vclock.Value{Data: []byte("short"), Timestamp: now, Expiry: exp}, now, 1)
	long := vclock.Update(vclock.Set{}, nil, "b", vclock.Value{Data: []byte("forever"), Timestamp: now + 1}, now+1, 1)
	put(t, s, "loser", record.String(vclock.Sync(short, long)))
	if s.Count() != 2 {
		t.Fatalf("Count = %d before the expiry, want 2", s.Count())
	}
	clk.Advance(time.Hour)
	if n, err := s.Reap(100); err != nil || n != 2 {
		t.Fatalf("Reap an hour later = %d, %v; want 2", n, err)
	}
	got, _ := mustGet(t, s, "k")
	w, _ := vclock.Winner(got.Str.Siblings())
	if !w.Tombstone {
		t.Fatalf("k after the reap: winner %+v; GET answers absent, so DBSIZE must not count it", w)
	}
	if want, _ := vclock.Bury(vclock.Sync(old, nw), clk.Millis()); !sameRecord(got, record.String(want)) {
		t.Fatalf("k reaped to %+v, want %+v", got.Str.Siblings(), want.Siblings())
	}
	got, _ = mustGet(t, s, "loser")
	for v := range got.Str.Values() {
		if v.Expiring() {
			t.Fatalf("loser keeps the expired value %q", v.Data)
		}
	}
	if s.Count() != 1 {
		t.Fatalf("Count = %d after the reap, want 1 (k's winner is a tombstone; loser's is live)", s.Count())
	}
	if n := countExpiryEntries(t, s); n != 0 {
		t.Fatalf("%d expiry entries left; nothing expires any more", n)
	}
	if n, err := s.Reap(100); err != nil || n != 0 {
		t.Fatalf("second Reap = %d, %v", n, err)
	}
}

// TestReapReindexesAtTheNextExpiry: a record whose values expire at different
// times is reaped at each, each time burying the values expired by then.
func TestReapReindexesAtTheNextExpiry(t *testing.T) {
	clk := newFakeClock()
	s := openMem(t, Config{Partitions: 8, Now: clk.Now})
	now := clk.Millis()
	a := vclock.Update(vclock.Set{}, nil, "a", vclock.Value{Data: []byte("a"), Timestamp: now, Expiry: now + 1000}, now, 1)
	b := vclock.Update(vclock.Set{}, nil, "b", vclock.Value{Data: []byte("b"), Timestamp: now + 2, Expiry: now + 3000}, now, 1)
	c := vclock.Update(vclock.Set{}, nil, "c", vclock.Value{Data: []byte("c"), Timestamp: now + 1}, now, 1)
	put(t, s, "k", record.String(vclock.Sync(vclock.Sync(a, b), c)))
	live := func() (n int) {
		r, _ := mustGet(t, s, "k")
		for v := range r.Str.Values() {
			if !v.Tombstone {
				n++
			}
		}
		return n
	}
	for _, step := range []struct {
		advance   time.Duration
		reaped    int
		live      int
		count     int64
		indexLeft int
	}{
		{999 * time.Millisecond, 0, 3, 1, 1},
		{time.Millisecond, 1, 2, 1, 1}, // a buried: b (the newest) still wins
		{time.Second, 0, 2, 1, 1},
		{time.Second, 1, 1, 0, 0}, // b buried, and its tombstone wins over c: absent
	} {
		clk.Advance(step.advance)
		if n, err := s.Reap(100); err != nil || n != step.reaped {
			t.Fatalf("at +%v: Reap = %d, %v; want %d", time.Duration(clk.Millis()-now)*time.Millisecond, n, err, step.reaped)
		}
		if live() != step.live || s.Count() != step.count || countExpiryEntries(t, s) != step.indexLeft {
			t.Fatalf("at +%v: %d live values, Count %d, %d expiry entries; want %d, %d, %d",
				time.Duration(clk.Millis()-now)*time.Millisecond, live(), s.Count(), countExpiryEntries(t, s), step.live, step.count, step.indexLeft)
		}
	}
}

// TestOpenIndexesRecordsTheOldBinaryLeftUnindexed: the binary before issue 15
// indexed for expiry only records whose every value had an expiry, and had no
// grave index for buried values; a record holding a tombstone and an expiring
// value (finding 6), or a live value and a newer expiring one, was never
// indexed. The first Open of such a data directory adds the missing entries
// (once: a later Open trusts the index), so the reaper and the purge find them.
func TestOpenIndexesRecordsTheOldBinaryLeftUnindexed(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	cfg := Config{Dir: dir, Partitions: 8, Now: clk.Now, Sync: SyncNone, Logger: quietLogger(), ReapInterval: time.Hour}
	now := clk.Millis()
	exp := now + 1000
	del := vclock.Update(vclock.Set{}, nil, "a", vclock.Value{Tombstone: true, Timestamp: now}, now, 1)
	set := vclock.Update(vclock.Set{}, nil, "b", vclock.Value{Data: []byte("v"), Timestamp: now + 1, Expiry: exp}, now+1, 1)
	old := vclock.Update(vclock.Set{}, nil, "a", vclock.Value{Data: []byte("old"), Timestamp: now}, now, 1)
	records := map[string]record.Record{
		"tomb-and-expiring": record.String(vclock.Sync(del, set)),
		"live-and-expiring": record.String(vclock.Sync(old, set)),
		"grave":             record.String(del),
		"live":              record.String(old),
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// What the old binary left: the records alone, and no index version.
	if err := s.db.Delete(metaKey(metaIndexVersion), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	for k, r := range records {
		h := ring.KeyHash([]byte(k))
		if err := s.db.Set(dataKey(nil, s.partition(h), h, []byte(k)), r.AppendBinary(nil), pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, cfg)
	if n := countExpiryEntries(t, s); n != 2 {
		t.Fatalf("%d expiry entries after Open, want 2 (the records with an expiring value)", n)
	}
	if gs, err := s.Graves(now+1, 10); err != nil || len(gs) != 1 || string(gs[0].Key) != "grave" {
		t.Fatalf("Graves after Open = %+v, %v; want the grave", gs, err)
	}
	if s.Count() != 3 {
		t.Fatalf("Count = %d, want 3 (the expiring values win until reaped)", s.Count())
	}
	clk.Advance(2 * time.Second)
	if n, err := s.Reap(100); err != nil || n != 2 {
		t.Fatalf("Reap = %d, %v; want both records holding an expired value", n, err)
	}
	if s.Count() != 1 {
		t.Fatalf("Count = %d after the reap, want 1 (live)", s.Count())
	}
	if gs, err := s.Graves(exp+1, 10); err != nil || len(gs) != 2 {
		t.Fatalf("Graves after the reap = %+v, %v; want grave and tomb-and-expiring", gs, err)
	}
	// Done once: an Open of an indexed directory does not scan for entries again
	// (an entry removed behind the store's back stays missing).
	put(t, s, "later", rec(val("v", clk.Millis()+1000)))
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{spaceExpiry}, UpperBound: []byte{spaceExpiry + 1}})
	if err != nil {
		t.Fatal(err)
	}
	for it.First(); it.Valid(); it.Next() {
		if err := s.db.Delete(it.Key(), pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	it.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, cfg)
	if n := countExpiryEntries(t, s); n != 0 {
		t.Fatalf("a second Open re-indexed %d records: the version mark is not trusted", n)
	}
}

// TestGravesFromWalksWithACursor: a walk of the grave index in small pages, with
// a partition filter, returns every kept grave once, oldest first, and ends with
// a nil cursor; graves refused by the filter do not fill its pages.
func TestGravesFromWalksWithACursor(t *testing.T) {
	s := openMem(t, Config{Partitions: 8})
	want := map[int64]string{}
	keep := func(p int) bool { return p%2 == 0 }
	for i := range 200 {
		k := fmt.Sprintf("k%03d", i)
		put(t, s, k, rec(grave(int64(1000+i))))
		if keep(s.PartitionOf([]byte(k))) && i < 150 {
			want[int64(1000+i)] = k
		}
	}
	put(t, s, "young", rec(grave(5000)))
	var cursor []byte
	var got []string
	last := int64(0)
	for calls := 0; ; calls++ {
		if calls > 200 {
			t.Fatal("the walk does not end")
		}
		gs, next, err := s.GravesFrom(cursor, 1150, 7, keep)
		if err != nil {
			t.Fatal(err)
		}
		if len(gs) > 7 {
			t.Fatalf("page of %d graves, limit 7", len(gs))
		}
		for _, g := range gs {
			if !keep(s.PartitionOf(g.Key)) || g.Written < last || g.Written >= 1150 {
				t.Fatalf("grave %s@%d out of the walk (after %d)", g.Key, g.Written, last)
			}
			last = g.Written
			got = append(got, string(g.Key))
		}
		if next == nil {
			break
		}
		cursor = next
	}
	if len(got) != len(want) {
		t.Fatalf("walk returned %d graves, want %d: %v", len(got), len(want), got)
	}
	// A page that stops on the limit goes on after its last grave.
	gs, next, err := s.GravesFrom(nil, 1150, 1, nil)
	if err != nil || len(gs) != 1 || next == nil {
		t.Fatalf("GravesFrom(limit 1) = %v, %v, %v", gs, next, err)
	}
	if gs2, _, err := s.GravesFrom(next, 1150, 1, nil); err != nil || len(gs2) != 1 || gs2[0].Written <= gs[0].Written {
		t.Fatalf("GravesFrom(after %s) = %v, %v", gs[0].Key, gs2, err)
	}
	if gs, _, err := s.GravesFrom(nil, 1150, 0, nil); err != nil || len(gs) != 0 {
		t.Fatalf("GravesFrom(limit 0) = %v, %v", gs, err)
	}
}
