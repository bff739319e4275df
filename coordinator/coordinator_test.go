package coordinator

import (
	"context"
	"errors"
	"fmt"
	"github.com/dynakv/dynakv/internal/fakeclock"
	"github.com/dynakv/dynakv/ring"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/vclock"
)

// fakeClock is the tests' settable clock.
type fakeClock = fakeclock.Clock

func newFakeClock() *fakeClock { return fakeclock.New(time.UnixMilli(1_700_000_000_000)) }

func newStore(t testing.TB, partitions int) *storage.Store {
	t.Helper()
	st, err := storage.Open(storage.Config{InMemory: true, Partitions: partitions,
		Logger: slog.New(slog.DiscardHandler), ReapInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newCoordinator(t testing.TB, partitions int, now func() time.Time) (*Coordinator, *storage.Store) {
	t.Helper()
	st := newStore(t, partitions)
	c, err := New(Config{Actor: "n1", Now: now}, st)
	if err != nil {
		t.Fatal(err)
	}
	return c, st
}

func value(s string) vclock.Value { return vclock.Value{Data: []byte(s), Timestamp: 1} }

// data returns the payloads of rec's siblings, sorted.
func data(rec record.Record) []string {
	var out []string
	for _, s := range rec.Str.Siblings() {
		if s.Tombstone {
			out = append(out, "<tombstone>")
		} else {
			out = append(out, string(s.Data))
		}
	}
	slices.Sort(out)
	return out
}

func TestConfig(t *testing.T) {
	st := newStore(t, 4)
	for _, actor := range []string{"", strings.Repeat("a", MaxActorLen+1)} {
		if _, err := New(Config{Actor: actor}, st); err == nil {
			t.Errorf("New accepted actor of %d bytes", len(actor))
		}
	}
	longest := strings.Repeat("a", MaxActorLen)
	c, err := New(Config{Actor: longest}, st)
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.MaxEntries != vclock.MaxEntries || c.cfg.Now == nil || c.cfg.PruneAge != 24*time.Hour {
		t.Fatalf("defaults not applied: %+v", c.cfg)
	}
	cfg := Config{Actor: "x"}
	if d := cfg.EnsureDefaults(); cfg.MaxEntries != 0 || d.MaxEntries != vclock.MaxEntries {
		t.Fatal("EnsureDefaults mutated its receiver or missed MaxEntries")
	}
	if c.Actor() != longest {
		t.Fatal("Actor()")
	}
	// The longest actor with the largest epoch is still a valid actor, and a
	// record written by it after a drop decodes.
	if n := len(longest + ":" + strconv.FormatUint(math.MaxUint64, 10)); n > vclock.MaxActorLen {
		t.Fatalf("an epoch actor can be %d bytes, beyond vclock.MaxActorLen", n)
	}
	key := []byte("k")
	if err := st.DropPartition(st.PartitionOf(key)); err != nil {
		t.Fatal(err)
	}
	rec, err := writtenRecord(c.Put(context.Background(), key, nil, value("v"), WriteOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	if want := longest + ":1"; rec.Str.Entries[0].Actor != want || c.ActorFor(key) != want {
		t.Fatalf("after a drop the write's actor is %q (ActorFor %q), want %q", rec.Str.Entries[0].Actor, c.ActorFor(key), want)
	}
	if _, err := record.Decode(rec.AppendBinary(nil)); err != nil {
		t.Fatal(err)
	}
}

func TestPutContexts(t *testing.T) {
	ctx := context.Background()
	c, _ := newCoordinator(t, 16, nil)
	key := []byte("k")
	put := func(clk vclock.Clock, v string) record.Record {
		t.Helper()
		rec, err := writtenRecord(c.Put(ctx, key, clk, value(v), WriteOptions{}))
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Get(ctx, key, ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(data(got), data(rec)) {
			t.Fatalf("Put returned %v, Get sees %v", data(rec), data(got))
		}
		return rec
	}
	r1 := put(nil, "a")
	if got := data(r1); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("first put: %v", got)
	}
	r2 := put(nil, "b") // empty context: concurrent with everything
	if got := data(r2); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("second put with an empty context: %v, want siblings a, b", got)
	}
	r3 := put(r1.Str.Join(), "c") // covers a only
	if got := data(r3); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("put with a's context: %v, want b, c", got)
	}
	r4 := put(r3.Str.Join(), "d") // covers everything
	if got := data(r4); !slices.Equal(got, []string{"d"}) {
		t.Fatalf("put with the latest context: %v, want d", got)
	}
	if !r4.Str.Join().Descends(r3.Str.Join()) || r3.Str.Join().Descends(r4.Str.Join()) {
		t.Fatal("a write's context does not strictly descend the one it superseded")
	}
	r5 := put(r2.Str.Join(), "e") // stale context: covers a and b, not d
	if got := data(r5); !slices.Equal(got, []string{"d", "e"}) {
		t.Fatalf("put with a stale context: %v, want d, e", got)
	}
	// A tombstone with the full context leaves only the tombstone.
	r6, err := writtenRecord(c.Put(ctx, key, r5.Str.Join(), vclock.Value{Tombstone: true, Timestamp: 2}, WriteOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	if got := data(r6); !slices.Equal(got, []string{"<tombstone>"}) {
		t.Fatalf("delete with the full context: %v", got)
	}
	// Every value carries a dot of this coordinator's actor.
	for _, s := range r5.Str.Siblings() {
		if s.Dot.Actor != "n1" {
			t.Fatalf("sibling %q has dot %+v", s.Data, s.Dot)
		}
	}
}

// TestPutPrunesContext: the entries a write's context supplies are kept by that
// write (other replicas may hold the values it replaced) and by later writes for
// PruneAge; after that a write that does not need them prunes the record back to
// MaxEntries. Within PruneAge, young entries go only above 5*MaxEntries.
func TestPutPrunesContext(t *testing.T) {
	ctx := context.Background()
	st := newStore(t, 16)
	clk := newFakeClock()
	c, err := New(Config{Actor: "n1", MaxEntries: 4, PruneAge: time.Minute, Now: clk.Now}, st)
	if err != nil {
		t.Fatal(err)
	}
	key := []byte("k")
	var wide vclock.Clock
	for i := range 12 {
		wide = append(wide, vclock.Dot{Actor: fmt.Sprintf("peer%02d", i), Counter: uint64(i + 1)})
	}
	rec, err := writtenRecord(c.Put(ctx, key, wide, value("v"), WriteOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Str.Join().Descends(wide) || len(rec.Str.Entries) != 13 {
		t.Fatalf("the write dropped entries its context needs: %s", fmtRecord(rec))
	}
	// A second write needs none of them (its context covers only n1's value) and
	// they are young: kept, up to 5*MaxEntries.
	clk.Advance(time.Second)
	rec, err = writtenRecord(c.Put(ctx, key, vclock.Clock{rec.Str.Join()[0]}, value("w"), WriteOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Str.Entries) != 13 {
		t.Fatalf("young entries pruned: %s", fmtRecord(rec))
	}
	// Past PruneAge they go, least recently active first, never the writer's own
	// or the one holding a value.
	clk.Advance(time.Minute)
	rec, err = writtenRecord(c.Put(ctx, key, rec.Str.Join(), value("x"), WriteOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Str.Entries); n != 4 {
		t.Fatalf("record keeps %d entries, MaxEntries is 4: %s", n, fmtRecord(rec))
	}
	if got := data(rec); !slices.Equal(got, []string{"x"}) {
		t.Fatalf("pruning lost the value: %v", got)
	}
	if rec.Str.Join().Get("n1") == 0 {
		t.Fatal("pruning dropped the entry that holds the value")
	}
	// A context of more than 5*MaxEntries young entries is cut back to that bound
	// by the next write that does not need them.
	wide = wide[:0]
	for i := range 30 {
		wide = append(wide, vclock.Dot{Actor: fmt.Sprintf("wide%02d", i), Counter: 1})
	}
	if _, err := c.Put(ctx, key, wide, value("y"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	rec, err = writtenRecord(c.Put(ctx, key, nil, value("z"), WriteOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Str.Entries); n != 20 {
		t.Fatalf("record keeps %d entries, want the hard bound 20: %s", n, fmtRecord(rec))
	}
}

func TestModify(t *testing.T) {
	ctx := context.Background()
	c, _ := newCoordinator(t, 16, nil)
	key := []byte("k")
	// Modify sees the current record and supersedes what it read.
	if _, err := c.Put(ctx, key, nil, value("a"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, key, nil, value("b"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	rec, err := writtenRecord(c.Modify(ctx, key, func(cur record.Record) (vclock.Clock, vclock.Value, error) {
		if got := data(cur); !slices.Equal(got, []string{"a", "b"}) {
			t.Errorf("Modify saw %v", got)
		}
		return cur.Str.Join(), value("ab"), nil
	}, WriteOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	if got := data(rec); !slices.Equal(got, []string{"ab"}) {
		t.Fatalf("after Modify: %v", got)
	}

	// ErrNoWrite leaves the key and returns the record as found.
	before, _ := c.Get(ctx, key, ReadOptions{})
	rec, err = writtenRecord(c.Modify(ctx, key, func(record.Record) (vclock.Clock, vclock.Value, error) {
		return nil, vclock.Value{}, fmt.Errorf("skip: %w", ErrNoWrite)
	}, WriteOptions{}))
	if err != nil {
		t.Fatalf("Modify with ErrNoWrite: %v", err)
	}
	after, _ := c.Get(ctx, key, ReadOptions{})
	if !slices.Equal(data(rec), data(before)) || before.Str.Join().String() != after.Str.Join().String() {
		t.Fatal("ErrNoWrite changed the record")
	}
	// ErrNoWrite on a missing key creates nothing.
	if _, err := c.Modify(ctx, []byte("missing"), func(record.Record) (vclock.Clock, vclock.Value, error) {
		return nil, vclock.Value{}, ErrNoWrite
	}, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.Count(ctx); n != 1 {
		t.Fatalf("Count = %d after ErrNoWrite on a missing key", n)
	}

	// Another error aborts and is returned as is.
	errBoom := errors.New("boom")
	if _, err := c.Modify(ctx, key, func(record.Record) (vclock.Clock, vclock.Value, error) {
		return nil, value("x"), errBoom
	}, WriteOptions{}); !errors.Is(err, errBoom) {
		t.Fatalf("Modify err = %v, want boom", err)
	}
	if got, _ := c.Get(ctx, key, ReadOptions{}); !slices.Equal(data(got), []string{"ab"}) {
		t.Fatalf("aborted Modify wrote: %v", data(got))
	}

	// A cancelled context does nothing.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	called := false
	if _, err := c.Modify(cctx, key, func(record.Record) (vclock.Clock, vclock.Value, error) {
		called = true
		return nil, value("x"), nil
	}, WriteOptions{}); !errors.Is(err, context.Canceled) || called {
		t.Fatalf("Modify with a cancelled context: err = %v, called = %v", err, called)
	}
	if _, err := c.Put(cctx, key, nil, value("x"), WriteOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a cancelled context: %v", err)
	}
	if _, err := c.Get(cctx, key, ReadOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a cancelled context: %v", err)
	}
	if _, err := c.Count(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Count with a cancelled context: %v", err)
	}
	if err := c.FlushAll(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("FlushAll with a cancelled context: %v", err)
	}
	if _, err := c.ScanPage(cctx, 0, 10, func([]byte, record.Record) bool { return true }); !errors.Is(err, context.Canceled) {
		t.Fatalf("ScanPage with a cancelled context: %v", err)
	}
}

// TestModifyAtomic runs an INCR through Modify from many goroutines: no increment
// is lost and no sibling appears, because each write supersedes what it read.
func TestModifyAtomic(t *testing.T) {
	ctx := context.Background()
	c, _ := newCoordinator(t, 16, nil)
	const goroutines, perG = 16, 100
	incr := func(cur record.Record) (vclock.Clock, vclock.Value, error) {
		n := 0
		if sibs := cur.Str.Siblings(); len(sibs) > 0 {
			if len(sibs) != 1 {
				return nil, vclock.Value{}, fmt.Errorf("%d siblings", len(sibs))
			}
			var err error
			if n, err = strconv.Atoi(string(sibs[0].Data)); err != nil {
				return nil, vclock.Value{}, err
			}
		}
		return cur.Str.Join(), value(strconv.Itoa(n + 1)), nil
	}
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range perG {
				if _, err := c.Modify(ctx, []byte("counter"), incr, WriteOptions{}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	rec, err := c.Get(ctx, []byte("counter"), ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := data(rec); !slices.Equal(got, []string{strconv.Itoa(goroutines * perG)}) {
		t.Fatalf("counter = %v, want %d", got, goroutines*perG)
	}
}

func TestFreshCounter(t *testing.T) {
	clk := newFakeClock()
	c, _ := newCoordinator(t, 16, clk.Now)
	prev := uint64(0)
	for i := range 1000 {
		if i%100 == 50 {
			clk.Advance(-time.Hour) // a clock stepping back never makes a counter repeat
		}
		if i%100 == 0 {
			clk.Advance(3 * time.Hour)
		}
		n := c.freshCounter()
		if n <= prev {
			t.Fatalf("freshCounter went from %d to %d", prev, n)
		}
		if now := uint64(clk.Now().UnixMicro()); n < now && i%100 < 50 {
			t.Fatalf("freshCounter %d below the clock's %d µs", n, now)
		}
		prev = n
	}

	// Concurrent callers never get the same counter.
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			local := make([]uint64, 0, 500)
			for range 500 {
				local = append(local, c.freshCounter())
			}
			if !slices.IsSorted(local) {
				t.Error("counters not increasing within a goroutine")
			}
			mu.Lock()
			defer mu.Unlock()
			for _, n := range local {
				if seen[n] {
					t.Errorf("counter %d handed out twice", n)
				}
				seen[n] = true
			}
		})
	}
	wg.Wait()
}

// TestFreshEntryAfterReap: a key whose record disappeared (reaped, purged, dropped)
// and is written again gets a dot above every dot it had before.
func TestFreshEntryAfterReap(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	c, st := newCoordinator(t, 16, clk.Now)
	key := []byte("k")
	var last uint64
	for round := range 5 {
		var rec record.Record
		var err error
		for range 50 { // many writes within the same microsecond
			rec, err = writtenRecord(c.Modify(ctx, key, func(cur record.Record) (vclock.Clock, vclock.Value, error) {
				return cur.Str.Join(), value("v"), nil
			}, WriteOptions{}))
			if err != nil {
				t.Fatal(err)
			}
		}
		n := rec.Str.Join().Get("n1")
		if n <= last {
			t.Fatalf("round %d: counter %d not above the previous incarnation's %d", round, n, last)
		}
		if first := n - 49; first < uint64(clk.Now().UnixMicro()) {
			t.Fatalf("round %d: fresh entry started at %d, below now %d µs", round, first, clk.Now().UnixMicro())
		}
		last = n
		// The record disappears, as when the reaper removes it.
		if _, err := st.Update(key, func(record.Record, bool) (record.Record, error) { return record.Record{}, nil }); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCountAndFlushAll(t *testing.T) {
	ctx := context.Background()
	c, _ := newCoordinator(t, 64, nil)
	for i := range 300 {
		if _, err := c.Put(ctx, []byte(strconv.Itoa(i)), nil, value("v"), WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Put(ctx, []byte("0"), nil, vclock.Value{Tombstone: true}, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Count(ctx); err != nil || n != 300 {
		t.Fatalf("Count = %d, %v (a sibling tombstone does not uncount a live value)", n, err)
	}
	rec, _ := c.Get(ctx, []byte("0"), ReadOptions{})
	if _, err := c.Put(ctx, []byte("0"), rec.Str.Join(), vclock.Value{Tombstone: true}, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.Count(ctx); n != 299 {
		t.Fatalf("Count after a delete = %d", n)
	}
	if err := c.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.Count(ctx); n != 0 {
		t.Fatalf("Count after FlushAll = %d", n)
	}
	if rec, _ := c.Get(ctx, []byte("5"), ReadOptions{}); !rec.Empty() {
		t.Fatalf("record survived FlushAll: %+v", rec)
	}
	visited := 0
	if next, err := c.ScanPage(ctx, 0, 1000, func([]byte, record.Record) bool { visited++; return true }); err != nil || next != 0 || visited != 0 {
		t.Fatalf("ScanPage after FlushAll: next %d, visited %d, %v", next, visited, err)
	}
	// Writing after a flush works, and the new write is not a sibling of anything.
	rec, err := writtenRecord(c.Put(ctx, []byte("5"), nil, value("new"), WriteOptions{}))
	if err != nil || !slices.Equal(data(rec), []string{"new"}) {
		t.Fatalf("write after FlushAll: %v, %v", data(rec), err)
	}
}

// scanAll runs a full scan with the given page size and returns the keys in visit
// order and the cursors it went through.
func scanAll(t *testing.T, c *Coordinator, count int, between func(page int)) (keys []string, cursors []uint64) {
	t.Helper()
	ctx := context.Background()
	cursor := uint64(0)
	for page := 0; ; page++ {
		accepted := 0
		next, err := c.ScanPage(ctx, cursor, count, func(key []byte, rec record.Record) bool {
			keys = append(keys, string(key))
			accepted++
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		if accepted > count {
			t.Fatalf("page %d accepted %d records, count is %d", page, accepted, count)
		}
		if next != 0 && accepted < count {
			t.Fatalf("page %d: %d records and cursor %d: a short page must end the scan", page, accepted, next)
		}
		cursors = append(cursors, next)
		if next == 0 {
			return keys, cursors
		}
		if page > 1_000_000 {
			t.Fatal("scan does not terminate")
		}
		cursor = next
		if between != nil {
			between(page)
		}
	}
}

func TestScanPageVisitsEveryKeyOnce(t *testing.T) {
	const n = 5000
	for _, q := range []int{1, 64, 1024} {
		ctx := context.Background()
		c, _ := newCoordinator(t, q, nil)
		want := map[string]bool{}
		for i := range n {
			k := fmt.Sprintf("key:%d", i)
			want[k] = true
			if _, err := c.Put(ctx, []byte(k), nil, value(k), WriteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		for _, count := range []int{1, 10, 1000, n + 1} {
			t.Run(fmt.Sprintf("Q=%d/count=%d", q, count), func(t *testing.T) {
				keys, cursors := scanAll(t, c, count, nil)
				seen := map[string]int{}
				for _, k := range keys {
					seen[k]++
				}
				for k := range want {
					if seen[k] != 1 {
						t.Fatalf("%q visited %d times", k, seen[k])
					}
				}
				if len(keys) != n {
					t.Fatalf("visited %d keys, want %d", len(keys), n)
				}
				if wantPages := (n + count - 1) / count; len(cursors) < wantPages {
					t.Fatalf("%d pages, want at least %d", len(cursors), wantPages)
				}
				// A cursor resumes exactly: a scan restarted from any returned
				// cursor visits the rest of the keys in the same order.
				if count == 10 {
					for _, i := range []int{0, len(cursors) / 3, len(cursors) - 2} {
						if i < 0 || cursors[i] == 0 {
							continue
						}
						var rest []string
						cur := cursors[i]
						for cur != 0 {
							var err error
							cur, err = c.ScanPage(ctx, cur, 10, func(key []byte, _ record.Record) bool {
								rest = append(rest, string(key))
								return true
							})
							if err != nil {
								t.Fatal(err)
							}
						}
						if !slices.Equal(rest, keys[(i+1)*10:]) {
							t.Fatalf("resuming at cursor %d (page %d) gave %d keys, want %d", cursors[i], i, len(rest), len(keys[(i+1)*10:]))
						}
					}
				}
			})
		}
	}
}

// TestScanPageCursorOrder: visit order is partition order, then hash order, and the
// returned cursor encodes the partition in its low bits.
func TestScanPageCursorOrder(t *testing.T) {
	ctx := context.Background()
	const q = 32
	c, st := newCoordinator(t, q, nil)
	for i := range 2000 {
		if _, err := c.Put(ctx, []byte(strconv.Itoa(i)), nil, value("v"), WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	keys, cursors := scanAll(t, c, 7, nil)
	for i := 1; i < len(keys); i++ {
		a, b := []byte(keys[i-1]), []byte(keys[i])
		pa, pb := st.PartitionOf(a), st.PartitionOf(b)
		if pa > pb || (pa == pb && ring.KeyHash(a) >= ring.KeyHash(b)) {
			t.Fatalf("keys %d and %d out of (partition, hash) order", i-1, i)
		}
	}
	for i, cur := range cursors[:len(cursors)-1] {
		// The cursor is the hash of the next key to visit, or the next partition's
		// number at a partition boundary: either way its low bits name the partition
		// of the key visited next.
		next := []byte(keys[(i+1)*7])
		if int(cur&(q-1)) != st.PartitionOf(next) {
			t.Fatalf("cursor %d names partition %d, next key is in %d", cur, cur&(q-1), st.PartitionOf(next))
		}
		if cur > ring.KeyHash(next) {
			t.Fatalf("cursor %d is past the next key's hash %d", cur, ring.KeyHash(next))
		}
	}
}

func TestScanPageRejectedRecordsDoNotCount(t *testing.T) {
	ctx := context.Background()
	c, _ := newCoordinator(t, 16, nil)
	for i := range 100 {
		if _, err := c.Put(ctx, []byte(strconv.Itoa(i)), nil, value("v"), WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// fn accepts only even keys; a page holds count accepted records.
	var got []string
	cursor := uint64(0)
	for {
		accepted := 0
		next, err := c.ScanPage(ctx, cursor, 5, func(key []byte, _ record.Record) bool {
			n, _ := strconv.Atoi(string(key))
			if n%2 == 0 {
				got = append(got, string(key))
				accepted++
				return true
			}
			return false
		})
		if err != nil {
			t.Fatal(err)
		}
		if next != 0 && accepted != 5 {
			t.Fatalf("page accepted %d, want 5", accepted)
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	if len(got) != 50 {
		t.Fatalf("accepted %d even keys, want 50", len(got))
	}
	// fn rejecting everything scans to the end in one call.
	next, err := c.ScanPage(ctx, 0, 1, func([]byte, record.Record) bool { return false })
	if err != nil || next != 0 {
		t.Fatalf("rejecting scan: next %d, %v", next, err)
	}
}

// TestScanPageWithConcurrentChanges adds and removes keys between pages: every key
// present for the whole scan is still visited (exactly once, as no two keys share a
// hash here).
func TestScanPageWithConcurrentChanges(t *testing.T) {
	ctx := context.Background()
	for _, count := range []int{1, 10, 1000} {
		t.Run(fmt.Sprint("count=", count), func(t *testing.T) {
			c, _ := newCoordinator(t, 64, nil)
			rng := rand.New(rand.NewPCG(uint64(count), 7))
			stable := map[string]bool{}
			for i := range 3000 {
				k := fmt.Sprintf("stable:%d", i)
				stable[k] = true
				if _, err := c.Put(ctx, []byte(k), nil, value("v"), WriteOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			var volatile []string
			for i := range 1000 {
				k := fmt.Sprintf("volatile:%d", i)
				volatile = append(volatile, k)
				if _, err := c.Put(ctx, []byte(k), nil, value("v"), WriteOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			added := 0
			keys, _ := scanAll(t, c, count, func(page int) {
				// Between pages: delete some volatile keys, add new ones (at most
				// 1500 added in all, so the scan ends).
				for range max(1, count/4) {
					if added >= 1500 {
						return
					}
					if len(volatile) > 0 {
						i := rng.IntN(len(volatile))
						k := volatile[i]
						volatile = slices.Delete(volatile, i, i+1)
						if _, err := c.store.Update([]byte(k), func(record.Record, bool) (record.Record, error) { return record.Record{}, nil }); err != nil {
							t.Fatal(err)
						}
					}
					k := fmt.Sprintf("added:%d", added)
					added++
					if _, err := c.Put(ctx, []byte(k), nil, value("v"), WriteOptions{}); err != nil {
						t.Fatal(err)
					}
				}
			})
			seen := map[string]int{}
			for _, k := range keys {
				seen[k]++
			}
			for k := range stable {
				if seen[k] != 1 {
					t.Fatalf("stable key %q visited %d times", k, seen[k])
				}
			}
			for k, n := range seen {
				if n != 1 {
					t.Fatalf("%q visited %d times", k, n)
				}
			}
		})
	}
}

// TestRequestContext checks the deadlines replica calls get: RequestTimeout from
// now, late by at most RequestTimeout/64 and shared while that holds, the caller's
// own deadline when earlier, and never the caller's cancellation; Close ends them.
func TestRequestContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _ := newCoordinator(t, 16, nil)
		timeout := c.cfg.RequestTimeout
		slack := timeout / 64
		within := func(ctx context.Context, want time.Time) {
			t.Helper()
			d, ok := ctx.Deadline()
			if !ok || d.Before(want) || d.Sub(want) > slack {
				t.Fatalf("deadline %v (set %v), want in [%v, +%v]", d, ok, want, slack)
			}
		}
		parent, cancelParent := context.WithCancel(context.Background())
		a, cancelA := c.requestContext(parent)
		within(a, time.Now().Add(timeout))
		time.Sleep(slack / 2)
		b, cancelB := c.requestContext(parent)
		within(b, time.Now().Add(timeout))
		if a != b {
			t.Fatal("requests within the slack got different contexts")
		}
		time.Sleep(slack)
		d, cancelD := c.requestContext(parent)
		within(d, time.Now().Add(timeout))
		if d == a {
			t.Fatal("a context was shared past its slack")
		}
		short, cancelShort := context.WithTimeout(parent, timeout/2)
		e, cancelE := c.requestContext(short)
		if got, _ := e.Deadline(); !got.Equal(time.Now().Add(timeout / 2)) {
			t.Fatalf("caller's earlier deadline: got %v", got)
		}
		cancelParent()
		cancelShort()
		cancelA()
		cancelB()
		if a.Err() != nil || d.Err() != nil || e.Err() != nil {
			t.Fatal("a request context ended with its caller")
		}
		time.Sleep(timeout + 2*slack)
		if !errors.Is(a.Err(), context.DeadlineExceeded) || !errors.Is(d.Err(), context.DeadlineExceeded) {
			t.Fatalf("past the deadline: %v, %v", a.Err(), d.Err())
		}
		f, cancelF := c.requestContext(context.Background())
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if f.Err() == nil {
			t.Fatal("Close left a request context running")
		}
		cancelD()
		cancelE()
		cancelF()
	})
}

// TestSharedDeadlineConcurrent asks for contexts from many goroutines at once:
// every one must end no earlier than asked and at most the slack later.
func TestSharedDeadlineConcurrent(t *testing.T) {
	var s sharedDeadline
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	const slack = time.Millisecond
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 2000 {
				want := time.Now().Add(time.Second)
				d, ok := s.get(parent, want, slack).Deadline()
				if !ok || d.Before(want) || d.Sub(want) > slack {
					t.Errorf("deadline %v (set %v), want in [%v, +%v]", d, ok, want, slack)
					return
				}
			}
		})
	}
	wg.Wait()
}
