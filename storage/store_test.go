package storage

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/dynakv/dynakv/internal/fakeclock"
	"io"
	"log"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/lni/goutils/leaktest"

	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/ring"
	"github.com/dynakv/dynakv/vclock"
)

// fakeClock is the tests' settable clock.
type fakeClock = fakeclock.Clock

func newFakeClock() *fakeClock { return fakeclock.New(time.UnixMilli(1_700_000_000_000)) }

// quietLogger discards everything, so tests never write to stderr.
func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// openMem opens an in-memory store closed when t ends. The reaper ticks rarely so
// that tests drive Reap themselves.
func openMem(t testing.TB, cfg Config) *Store {
	t.Helper()
	cfg.InMemory = true
	return open(t, cfg)
}

func open(t testing.TB, cfg Config) *Store {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	if cfg.ReapInterval == 0 {
		cfg.ReapInterval = time.Hour
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func val(data string, expiry int64) vclock.Value {
	return vclock.Value{Data: []byte(data), Timestamp: 1, Expiry: expiry}
}

func tomb() vclock.Value { return vclock.Value{Tombstone: true, Timestamp: 1} }

// rec builds a record holding vals as siblings of one actor.
func rec(vals ...vclock.Value) record.Record {
	return record.String(vclock.Set{Entries: []vclock.Entry{{Actor: "n1", Counter: uint64(len(vals)) + 10, Values: vals, Active: 5}}})
}

func put(t testing.TB, s *Store, key string, r record.Record) {
	t.Helper()
	if _, err := s.Update([]byte(key), func(record.Record, bool) (record.Record, error) { return r, nil }); err != nil {
		t.Fatalf("Update(%q): %v", key, err)
	}
}

func mustGet(t testing.TB, s *Store, key string) (record.Record, bool) {
	t.Helper()
	r, found, err := s.Get([]byte(key))
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return r, found
}

func sameRecord(a, b record.Record) bool {
	return bytes.Equal(a.AppendBinary(nil), b.AppendBinary(nil))
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr error // nil: valid; errAny: some error
	}{
		{"defaults in memory", Config{InMemory: true}.EnsureDefaults(), nil},
		{"defaults on disk", Config{Dir: "/x"}.EnsureDefaults(), nil},
		{"one partition", Config{InMemory: true, Partitions: 1}, nil},
		{"max partitions", Config{InMemory: true, Partitions: 1 << 16}, nil},
		{"zero partitions without defaults", Config{InMemory: true}, ErrPartitions},
		{"negative partitions", Config{InMemory: true, Partitions: -4}, ErrPartitions},
		{"not a power of two", Config{InMemory: true, Partitions: 3}, ErrPartitions},
		{"not a power of two, large", Config{InMemory: true, Partitions: 1000}, ErrPartitions},
		{"too many partitions", Config{InMemory: true, Partitions: 1 << 17}, ErrPartitions},
		{"disk without dir", Config{Partitions: 8}, errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr == errAny && err == nil:
				t.Fatal("Validate() = nil, want an error")
			case tt.wantErr != nil && tt.wantErr != errAny && !errors.Is(err, tt.wantErr):
				t.Fatalf("Validate() = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestEnsureDefaultsDoesNotMutate(t *testing.T) {
	cfg := Config{InMemory: true}
	d := cfg.EnsureDefaults()
	if cfg.Partitions != 0 || cfg.Now != nil || cfg.Logger != nil {
		t.Fatalf("EnsureDefaults mutated its receiver: %+v", cfg)
	}
	if d.Partitions != 1024 || d.CacheBytes != 64<<20 || d.ReapInterval != time.Second || d.ReapBatch != 10000 || d.Now == nil || d.Logger == nil {
		t.Fatalf("EnsureDefaults() = %+v", d)
	}
}

func TestOpenRefusesBadConfig(t *testing.T) {
	if _, err := Open(Config{InMemory: true, Partitions: 6, Logger: quietLogger()}); !errors.Is(err, ErrPartitions) {
		t.Errorf("Open with 6 partitions: err = %v, want ErrPartitions", err)
	}
	if _, err := Open(Config{Logger: quietLogger()}); err == nil {
		t.Error("Open on disk without Dir succeeded")
	}
}

func TestReopenWithOtherPartitionCountRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir, Partitions: 16, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "k", rec(val("v", 0)))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, q := range []int{8, 32, 1024} {
		if s, err := Open(Config{Dir: dir, Partitions: q, Logger: quietLogger()}); !errors.Is(err, ErrPartitions) {
			if err == nil {
				s.Close()
			}
			t.Errorf("reopen with %d partitions: err = %v, want ErrPartitions", q, err)
		}
	}
	// The refused opens left the directory usable with the right count.
	s = open(t, Config{Dir: dir, Partitions: 16})
	if _, found := mustGet(t, s, "k"); !found {
		t.Fatal("record lost after refused reopens")
	}
	if v, ok, err := s.GetMeta("partitions"); err != nil || !ok || string(v) != "16" {
		t.Fatalf("meta partitions = %q, %v, %v", v, ok, err)
	}
}

func TestUpdate(t *testing.T) {
	errBoom := errors.New("boom")
	v1, v2 := rec(val("one", 0)), rec(val("two", 0))
	tests := []struct {
		name      string
		initial   *record.Record // nil: no record
		fn        UpdateFunc
		wantErr   error
		wantRet   record.Record // what Update returns
		wantFound bool
		wantRec   record.Record // what Get sees afterwards
		wantCount int64
	}{
		{
			name:      "create",
			fn:        func(cur record.Record, found bool) (record.Record, error) { return v1, nil },
			wantRet:   v1,
			wantFound: true, wantRec: v1, wantCount: 1,
		},
		{
			name:      "update",
			initial:   &v1,
			fn:        func(record.Record, bool) (record.Record, error) { return v2, nil },
			wantRet:   v2,
			wantFound: true, wantRec: v2, wantCount: 1,
		},
		{
			name:      "ErrNoChange leaves the record",
			initial:   &v1,
			fn:        func(record.Record, bool) (record.Record, error) { return v2, ErrNoChange },
			wantRet:   v1,
			wantFound: true, wantRec: v1, wantCount: 1,
		},
		{
			name:      "wrapped ErrNoChange leaves the record",
			initial:   &v1,
			fn:        func(record.Record, bool) (record.Record, error) { return v2, fmt.Errorf("nah: %w", ErrNoChange) },
			wantRet:   v1,
			wantFound: true, wantRec: v1, wantCount: 1,
		},
		{
			name:    "ErrNoChange on a missing key creates nothing",
			fn:      func(record.Record, bool) (record.Record, error) { return v2, ErrNoChange },
			wantRet: record.Record{},
		},
		{
			name:    "empty set deletes",
			initial: &v1,
			fn:      func(record.Record, bool) (record.Record, error) { return record.Record{}, nil },
			wantRet: record.Record{},
		},
		{
			name:    "empty set on a missing key",
			fn:      func(record.Record, bool) (record.Record, error) { return record.Record{}, nil },
			wantRet: record.Record{},
		},
		{
			name:      "other error aborts",
			initial:   &v1,
			fn:        func(record.Record, bool) (record.Record, error) { return v2, errBoom },
			wantErr:   errBoom,
			wantFound: true, wantRec: v1, wantCount: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openMem(t, Config{Partitions: 16})
			if tt.initial != nil {
				put(t, s, "k", *tt.initial)
			}
			var sawFound bool
			var sawCur record.Record
			got, err := s.Update([]byte("k"), func(cur record.Record, found bool) (record.Record, error) {
				sawCur, sawFound = cur, found
				return tt.fn(cur, found)
			})
			if sawFound != (tt.initial != nil) {
				t.Errorf("fn saw found = %v", sawFound)
			}
			if tt.initial != nil && !sameRecord(sawCur, *tt.initial) {
				t.Errorf("fn saw %+v, want %+v", sawCur, *tt.initial)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Update err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && !sameRecord(got, tt.wantRet) {
				t.Errorf("Update returned %+v, want %+v", got, tt.wantRet)
			}
			r, found := mustGet(t, s, "k")
			if found != tt.wantFound || (found && !sameRecord(r, tt.wantRec)) {
				t.Errorf("Get = %+v, %v; want %+v, %v", r, found, tt.wantRec, tt.wantFound)
			}
			if n := s.Count(); n != tt.wantCount {
				t.Errorf("Count = %d, want %d", n, tt.wantCount)
			}
		})
	}
}

func TestCountSemantics(t *testing.T) {
	clk := newFakeClock()
	now := clk.Millis()
	tests := []struct {
		name  string
		rec   record.Record
		count bool
	}{
		{"live value", rec(val("v", 0)), true},
		{"empty data value", rec(val("", 0)), true},
		{"tombstone only", rec(tomb()), false},
		{"two tombstones", rec(tomb(), tomb()), false},
		// The plain-GET winner (greatest timestamp, then dot) decides.
		{"tombstone newer than the value", rec(tomb(), val("v", 0)), false},
		{"value newer than the tombstone", rec(val("v", 0), tomb()), true},
		{"tombstone written later, older dot", rec(val("v", 0), vclock.Value{Tombstone: true, Timestamp: 2}), false},
		{"expired but not reaped", rec(val("v", now-1000)), true},
		{"expired value newer than a live one", rec(val("new", now-1000), val("old", 0)), true},
		{"reaped value newer than a live one", rec(val("new", now-1000).Tomb(), val("old", 0)), false},
		{"anonymous value", record.String(vclock.Set{Anon: []vclock.Value{val("a", 0)}}), true},
		{"anonymous tombstone", record.String(vclock.Set{Anon: []vclock.Value{tomb()}}), false},
		{"entries without values", record.String(vclock.Set{Entries: []vclock.Entry{{Actor: "n1", Counter: 3}}}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openMem(t, Config{Partitions: 4, Now: clk.Now})
			put(t, s, "k", tt.rec)
			want := int64(0)
			if tt.count {
				want = 1
			}
			if n := s.Count(); n != want {
				t.Fatalf("Count = %d, want %d", n, want)
			}
			if n := s.PartitionCount(s.PartitionOf([]byte("k"))); n != want {
				t.Fatalf("PartitionCount = %d, want %d", n, want)
			}
			if m := s.Metrics(); m.Keys != want {
				t.Fatalf("Metrics().Keys = %d, want %d", m.Keys, want)
			}
		})
	}
}

func TestCountTransitions(t *testing.T) {
	s := openMem(t, Config{Partitions: 4})
	steps := []struct {
		rec  record.Record // empty: delete
		want int64
	}{
		{rec(tomb()), 0},
		{rec(val("v", 0)), 1},
		{rec(val("w", 0)), 1},
		{rec(tomb()), 0},
		{rec(tomb(), tomb()), 0},
		{rec(val("v", 0), tomb()), 1},
		{record.Record{}, 0},
		{record.Record{}, 0},
		{rec(val("v", 0)), 1},
	}
	for i, st := range steps {
		put(t, s, "k", st.rec)
		if n := s.Count(); n != st.want {
			t.Fatalf("step %d: Count = %d, want %d", i, n, st.want)
		}
	}
}

func TestCountsAfterReopen(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	cfg := Config{Dir: dir, Partitions: 8, Now: clk.Now, Sync: SyncNone, Logger: quietLogger(), ReapInterval: time.Hour}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		k := fmt.Sprintf("k%03d", i)
		switch i % 3 {
		case 0:
			put(t, s, k, rec(val("v", 0)))
		case 1:
			put(t, s, k, rec(tomb()))
		case 2:
			put(t, s, k, rec(val("x", clk.Millis()-1))) // expired, not reaped
		}
	}
	want := make([]int64, 8)
	for p := range want {
		want[p] = s.PartitionCount(p)
	}
	if s.Count() != 200 {
		t.Fatalf("Count = %d, want 200", s.Count())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, cfg)
	if s.Count() != 200 {
		t.Fatalf("Count after reopen = %d, want 200", s.Count())
	}
	for p := range want {
		if got := s.PartitionCount(p); got != want[p] {
			t.Errorf("PartitionCount(%d) after reopen = %d, want %d", p, got, want[p])
		}
	}
}

func TestPartitionOfMatchesHash(t *testing.T) {
	s := openMem(t, Config{Partitions: 64})
	for i := range 1000 {
		k := []byte(strconv.Itoa(i))
		if got, want := s.PartitionOf(k), int(ring.KeyHash(k)%64); got != want {
			t.Fatalf("PartitionOf(%q) = %d, want %d", k, got, want)
		}
	}
	if s.Partitions() != 64 {
		t.Fatalf("Partitions() = %d", s.Partitions())
	}
}

type scanned struct {
	h   uint64
	key string
}

func scanAll(t testing.TB, s *Store, p int, from uint64) []scanned {
	t.Helper()
	var out []scanned
	err := s.Scan(p, from, func(h uint64, key []byte, r record.Record) bool {
		out = append(out, scanned{h, string(key)})
		return true
	})
	if err != nil {
		t.Fatalf("Scan(%d, %d): %v", p, from, err)
	}
	return out
}

func TestScan(t *testing.T) {
	const q, n = 8, 500
	s := openMem(t, Config{Partitions: q})
	want := map[string]bool{}
	for i := range n {
		k := fmt.Sprintf("key-%d", i)
		put(t, s, k, rec(val(k, 0)))
		want[k] = true
	}
	seen := map[string]bool{}
	for p := range q {
		got := scanAll(t, s, p, 0)
		if int64(len(got)) != s.PartitionCount(p) {
			t.Errorf("partition %d: scanned %d, PartitionCount %d", p, len(got), s.PartitionCount(p))
		}
		for i, sc := range got {
			if sc.h != ring.KeyHash([]byte(sc.key)) {
				t.Fatalf("partition %d: hash %x of %q is not ring.KeyHash(key)", p, sc.h, sc.key)
			}
			if s.PartitionOf([]byte(sc.key)) != p {
				t.Fatalf("partition %d holds %q of partition %d", p, sc.key, s.PartitionOf([]byte(sc.key)))
			}
			if i > 0 && got[i-1].h >= sc.h {
				t.Fatalf("partition %d: not in hash order at %d", p, i)
			}
			if seen[sc.key] {
				t.Fatalf("%q scanned twice", sc.key)
			}
			seen[sc.key] = true
			r, _ := mustGet(t, s, sc.key)
			if string(r.Str.Siblings()[0].Data) != sc.key {
				t.Fatalf("record of %q has the wrong value", sc.key)
			}
		}
		// Resuming from the hash of the i-th record yields exactly the suffix.
		for _, i := range []int{0, 1, len(got) / 2, len(got) - 1} {
			if i < 0 || i >= len(got) {
				continue
			}
			if suffix := scanAll(t, s, p, got[i].h); !slices.Equal(suffix, got[i:]) {
				t.Fatalf("partition %d: resume from record %d gave %d records, want %d", p, i, len(suffix), len(got)-i)
			}
			// One past a record's hash skips it.
			if suffix := scanAll(t, s, p, got[i].h+1); !slices.Equal(suffix, got[i+1:]) {
				t.Fatalf("partition %d: resume after record %d gave %d records, want %d", p, i, len(suffix), len(got)-i-1)
			}
		}
		// A fromHash below the partition's range (e.g. the partition number) is the start.
		if all := scanAll(t, s, p, uint64(p)); !slices.Equal(all, got) {
			t.Fatalf("partition %d: scan from %d differs from a scan from 0", p, p)
		}
		if none := scanAll(t, s, p, ^uint64(0)); len(none) != 0 && none[0].h != ^uint64(0) {
			t.Fatalf("partition %d: scan from max hash returned %v", p, none)
		}
	}
	if len(seen) != n {
		t.Fatalf("scanned %d keys, want %d", len(seen), n)
	}
	// Stopping early.
	calls := 0
	if err := s.Scan(0, 0, func(uint64, []byte, record.Record) bool { calls++; return calls < 3 }); err != nil {
		t.Fatal(err)
	}
	if calls != 3 {
		t.Fatalf("fn called %d times after returning false on the third", calls)
	}
}

func TestScanLastPartition(t *testing.T) {
	// Partition 0xffff's upper bound is the end of the data space.
	s := openMem(t, Config{Partitions: 1 << 16})
	var k []byte
	for i := 0; ; i++ {
		k = []byte(fmt.Sprint(i))
		if s.PartitionOf(k) == 0xffff {
			break
		}
	}
	put(t, s, string(k), rec(val("v", 0)))
	if err := s.PutMeta("zz", []byte("meta after data")); err != nil {
		t.Fatal(err)
	}
	got := scanAll(t, s, 0xffff, 0)
	if len(got) != 1 || got[0].key != string(k) {
		t.Fatalf("Scan(0xffff) = %v", got)
	}
	if err := s.DropPartition(0xffff); err != nil {
		t.Fatal(err)
	}
	if _, found := mustGet(t, s, string(k)); found {
		t.Fatal("record survived DropPartition(0xffff)")
	}
	if v, ok, _ := s.GetMeta("zz"); !ok || string(v) != "meta after data" {
		t.Fatal("DropPartition(0xffff) touched metadata")
	}
}

func TestDropPartitionAndDropAll(t *testing.T) {
	const q = 8
	clk := newFakeClock()
	s := openMem(t, Config{Partitions: q, Now: clk.Now})
	byPart := map[int][]string{}
	for i := range 400 {
		k := fmt.Sprintf("k%d", i)
		put(t, s, k, rec(val("v", clk.Millis()+int64(i)+1)))
		p := s.PartitionOf([]byte(k))
		byPart[p] = append(byPart[p], k)
	}
	if err := s.PutMeta("node", []byte("n1")); err != nil {
		t.Fatal(err)
	}
	before := make([]int64, q)
	for p := range q {
		before[p] = s.PartitionCount(p)
	}
	if err := s.DropPartition(3); err != nil {
		t.Fatal(err)
	}
	for p := range q {
		want := before[p]
		if p == 3 {
			want = 0
		}
		if got := s.PartitionCount(p); got != want {
			t.Errorf("PartitionCount(%d) = %d, want %d", p, got, want)
		}
		n := len(scanAll(t, s, p, 0))
		if int64(n) != want {
			t.Errorf("partition %d holds %d records, want %d", p, n, want)
		}
	}
	for _, k := range byPart[3] {
		if _, found := mustGet(t, s, k); found {
			t.Fatalf("%q survived DropPartition", k)
		}
	}
	for _, k := range byPart[4] {
		if _, found := mustGet(t, s, k); !found {
			t.Fatalf("%q of another partition was dropped", k)
		}
	}
	if s.Count() != 400-before[3] {
		t.Fatalf("Count = %d, want %d", s.Count(), 400-before[3])
	}
	// Writing into a dropped partition works and counts again.
	put(t, s, byPart[3][0], rec(val("again", 0)))
	if s.PartitionCount(3) != 1 {
		t.Fatalf("PartitionCount(3) after rewrite = %d", s.PartitionCount(3))
	}

	if err := s.DropAll(); err != nil {
		t.Fatal(err)
	}
	if s.Count() != 0 {
		t.Fatalf("Count after DropAll = %d", s.Count())
	}
	for p := range q {
		if s.PartitionCount(p) != 0 || len(scanAll(t, s, p, 0)) != 0 {
			t.Fatalf("partition %d not empty after DropAll", p)
		}
	}
	if v, ok, err := s.GetMeta("node"); err != nil || !ok || string(v) != "n1" {
		t.Fatalf("DropAll lost metadata: %q %v %v", v, ok, err)
	}
	// DropAll clears the expiry index too.
	if n := countExpiryEntries(t, s); n != 0 {
		t.Fatalf("%d expiry entries left after DropAll", n)
	}
}

func countExpiryEntries(t testing.TB, s *Store) int {
	t.Helper()
	it, err := s.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		if it.Key()[0] == spaceExpiry {
			n++
		}
	}
	return n
}

func TestMetadata(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, Partitions: 4}
	s := open(t, cfg)
	if _, ok, err := s.GetMeta("missing"); ok || err != nil {
		t.Fatalf("GetMeta(missing) = %v, %v", ok, err)
	}
	if err := s.PutMeta("a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMeta("a", []byte("2")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMeta("empty", nil); err != nil {
		t.Fatal(err)
	}
	v, ok, err := s.GetMeta("a")
	if err != nil || !ok || string(v) != "2" {
		t.Fatalf("GetMeta(a) = %q, %v, %v", v, ok, err)
	}
	v[0] = 'X' // the returned slice is the caller's
	if v, _, _ := s.GetMeta("a"); string(v) != "2" {
		t.Fatal("GetMeta returned a slice aliasing the store")
	}
	// Metadata is not data: it is neither counted nor scanned.
	if s.Count() != 0 {
		t.Fatalf("metadata counted: %d", s.Count())
	}
	for p := range 4 {
		if n := len(scanAll(t, s, p, 0)); n != 0 {
			t.Fatalf("metadata scanned in partition %d", p)
		}
	}
	s.Close()
	s = open(t, cfg)
	if v, ok, _ := s.GetMeta("a"); !ok || string(v) != "2" {
		t.Fatalf("GetMeta(a) after reopen = %q, %v", v, ok)
	}
	if v, ok, _ := s.GetMeta("empty"); !ok || len(v) != 0 {
		t.Fatalf("GetMeta(empty) after reopen = %q, %v", v, ok)
	}
}

func TestReap(t *testing.T) {
	clk := newFakeClock()
	s := openMem(t, Config{Partitions: 8, Now: clk.Now})
	now := clk.Millis()
	put(t, s, "expires", rec(val("a", now+1000)))
	put(t, s, "expires-two", rec(val("a", now+500), val("b", now+1000)))
	put(t, s, "later", rec(val("a", now+5000)))
	put(t, s, "forever", rec(val("a", 0)))
	put(t, s, "mixed", rec(val("a", now+1000), val("b", 0)))
	put(t, s, "tombstone", rec(tomb()))
	put(t, s, "tomb-and-expiring", rec(tomb(), val("a", now+1000)))
	put(t, s, "extended", rec(val("a", now+1000)))
	put(t, s, "persisted", rec(val("a", now+1000)))
	put(t, s, "deleted", rec(val("a", now+1000)))
	// Rewrites after the index entries were written.
	put(t, s, "extended", rec(val("a", now+10_000)))
	put(t, s, "persisted", rec(val("a", 0)))
	put(t, s, "deleted", record.Record{})

	reap := func(limit int) int {
		t.Helper()
		n, err := s.Reap(limit)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := reap(100); n != 0 {
		t.Fatalf("reaped %d before anything expired", n)
	}
	before := map[string]record.Record{}
	for _, k := range []string{"expires", "expires-two", "tomb-and-expiring", "mixed", "later", "extended"} {
		before[k], _ = mustGet(t, s, k)
	}
	// Reaped records stay, with every value expired by then turned into its
	// tombstone, same dots (vclock.Bury); allDead says whether none is left live.
	checkBuried := func(allDead bool, keys ...string) {
		t.Helper()
		for _, key := range keys {
			got, found := mustGet(t, s, key)
			want, _ := vclock.Bury((before[key]).Str, clk.Millis())
			if !found || !sameRecord(got, record.String(want)) || allTombstones(got) != allDead {
				t.Errorf("%s: reaped to %+v (found %v), want %+v", key, got, found, want)
			}
		}
	}
	countBefore := s.Count()
	clk.Advance(999 * time.Millisecond)
	// expires-two's first value expired at +500: it is buried, and since it was
	// the plain-GET winner (the higher dot), the key no longer counts.
	if n := reap(100); n != 1 {
		t.Fatalf("reaped %d one ms before the expiry, want 1 (expires-two's first value)", n)
	}
	checkBuried(false, "expires-two")
	if s.Count() != countBefore-1 {
		t.Fatalf("Count = %d, want %d (expires-two's winner is buried)", s.Count(), countBefore-1)
	}
	clk.Advance(time.Millisecond) // now+1000: expiry reached (Expired is expiry <= now)
	if n := reap(100); n != 4 {
		t.Fatalf("reaped %d at the expiry, want 4 (expires, expires-two, mixed, tomb-and-expiring)", n)
	}
	// expires and mixed (whose expiring value was the winner) stop counting;
	// tomb-and-expiring never counted: its tombstone wins.
	if s.Count() != countBefore-3 {
		t.Fatalf("Count = %d, want %d", s.Count(), countBefore-3)
	}
	if s.Metrics().Reaped != 5 {
		t.Fatalf("Metrics().Reaped = %d", s.Metrics().Reaped)
	}
	checkBuried(true, "expires", "expires-two", "tomb-and-expiring")
	checkBuried(false, "mixed") // its value without expiry stays
	for key, want := range map[string]bool{
		"later": false, "forever": false, "mixed": false, "tombstone": true, "extended": false,
		"persisted": false,
	} {
		if r, found := mustGet(t, s, key); !found || allTombstones(r) != want {
			t.Errorf("%s: found = %v, all tombstones = %v, want %v", key, found, allTombstones(r), want)
		}
	}
	if _, found := mustGet(t, s, "deleted"); found {
		t.Error("deleted came back")
	}
	clk.Advance(time.Hour)
	if n := reap(100); n != 2 {
		t.Fatalf("reaped %d an hour later, want 2 (later, extended)", n)
	}
	checkBuried(true, "later", "extended")
	for _, key := range []string{"forever", "mixed", "persisted"} {
		if r, found := mustGet(t, s, key); !found || allTombstones(r) {
			t.Errorf("%s was reaped whole", key)
		}
	}
	if n := countExpiryEntries(t, s); n != 0 {
		t.Fatalf("%d expiry entries left; no value left expires", n)
	}
	if n, _ := s.Reap(100); n != 0 {
		t.Fatalf("reaped %d records of tombstones again", n)
	}
}

// TestReapKeepsAnExpiredOverwriteAsHistory is finding 1 of issue 15: SET k old,
// then SET k new EX 1 over it. Once new expires the reaper must not delete the
// record (that forgets that old was superseded, and a replica that missed the
// overwrite brings old back): it keeps new's dot as a tombstone, which the grave
// index hands to tombstone purge once the grace period has run from the expiry.
func TestReapKeepsAnExpiredOverwriteAsHistory(t *testing.T) {
	clk := newFakeClock()
	s := openMem(t, Config{Partitions: 8, Now: clk.Now})
	now := clk.Millis()
	old := vclock.Update(vclock.Set{}, nil, "a", vclock.Value{Data: []byte("old"), Timestamp: now}, now, 1)
	exp := now + 1000
	over := vclock.Update(old, old.Join(), "a", vclock.Value{Data: []byte("new"), Timestamp: now + 1, Expiry: exp}, now+1, 1)
	put(t, s, "k", record.String(over))
	if s.Count() != 1 {
		t.Fatalf("Count = %d before the expiry", s.Count())
	}
	clk.Advance(2 * time.Second)
	if n, err := s.Reap(100); err != nil || n != 1 {
		t.Fatalf("Reap = %d, %v", n, err)
	}
	got, found := mustGet(t, s, "k")
	if !found {
		t.Fatal("the reaper deleted the record: the overwrite of old is forgotten")
	}
	if !slices.Equal(got.Str.Join(), over.Join()) || !allTombstones(got) {
		t.Fatalf("reaped record = %+v, want the clock %v with tombstones only", got, over.Join())
	}
	// A stale replica's old merges into the reaped record and stays superseded.
	if m := vclock.Sync(got.Str, old); !sameRecord(record.String(m), got) {
		t.Fatalf("Sync with the stale copy = %+v: old came back", m.Siblings())
	}
	if s.Count() != 0 {
		t.Fatalf("Count = %d after the reap", s.Count())
	}
	// The grave's time is when new died (its expiry), not when it was written.
	if gs, err := s.Graves(exp, 10); err != nil || len(gs) != 0 {
		t.Fatalf("Graves(expiry) = %v, %v; want none", gs, err)
	}
	gs, err := s.Graves(exp+1, 10)
	if err != nil || len(gs) != 1 || string(gs[0].Key) != "k" || gs[0].Written != exp || !bytes.Equal(gs[0].Record, got.AppendBinary(nil)) {
		t.Fatalf("Graves(expiry+1) = %+v, %v", gs, err)
	}
}

// allTombstones reports whether every value of r is a tombstone.
func allTombstones(r record.Record) bool {
	for v := range r.Str.Values() {
		if !v.Tombstone {
			return false
		}
	}
	return r.Str.Len() > 0
}

func TestReapLimitOldestFirst(t *testing.T) {
	clk := newFakeClock()
	s := openMem(t, Config{Partitions: 8, Now: clk.Now})
	now := clk.Millis()
	for i := range 10 {
		put(t, s, fmt.Sprintf("k%d", i), rec(val("v", now+int64(i)+1)))
	}
	clk.Advance(time.Minute)
	n, err := s.Reap(3)
	if err != nil || n != 3 {
		t.Fatalf("Reap(3) = %d, %v", n, err)
	}
	for i := range 10 {
		r, _ := mustGet(t, s, fmt.Sprintf("k%d", i))
		if allTombstones(r) != (i < 3) {
			t.Fatalf("k%d reaped = %v after reaping the 3 oldest", i, allTombstones(r))
		}
	}
	if n, _ := s.Reap(100); n != 7 {
		t.Fatalf("second Reap = %d, want 7", n)
	}
}

// TestReapRacesWrite replays the reaper's race with a write: the reaper read an
// index entry, then a write extended the record's expiry before the reaper took the
// key lock. The record must survive.
func TestReapRacesWrite(t *testing.T) {
	clk := newFakeClock()
	s := openMem(t, Config{Partitions: 8, Now: clk.Now})
	now := clk.Millis()
	key := []byte("k")
	h := ring.KeyHash(key)
	p := s.PartitionOf(key)
	put(t, s, "k", rec(val("v", now+100)))
	put(t, s, "k", rec(val("v", now+10_000))) // the racing write
	clk.Advance(time.Second)
	reaped, err := s.reapOne(now+100, p, h, key, clk.Millis()) // the stale entry
	if err != nil || reaped {
		t.Fatalf("reapOne(stale entry) = %v, %v", reaped, err)
	}
	if r, found := mustGet(t, s, "k"); !found || allTombstones(r) {
		t.Fatal("a write that extended the expiry lost its record to the reaper")
	}
	// Same race with a write that removed the expiry altogether.
	put(t, s, "k", rec(val("v", now+200)))
	put(t, s, "k", rec(val("v", 0)))
	if reaped, err := s.reapOne(now+200, p, h, key, clk.Millis()); err != nil || reaped {
		t.Fatalf("reapOne(stale entry) = %v, %v", reaped, err)
	}
	if r, found := mustGet(t, s, "k"); !found || allTombstones(r) {
		t.Fatal("a write that removed the expiry lost its record to the reaper")
	}
	// An entry not due yet is left alone.
	put(t, s, "k", rec(val("v", clk.Millis()+500)))
	if reaped, err := s.reapOne(clk.Millis()+500, p, h, key, clk.Millis()); err != nil || reaped {
		t.Fatalf("reapOne(entry not due) = %v, %v", reaped, err)
	}
	if r, found := mustGet(t, s, "k"); !found || allTombstones(r) {
		t.Fatal("record reaped before its time")
	}
}

func TestReapCleansDanglingEntries(t *testing.T) {
	clk := newFakeClock()
	s := openMem(t, Config{Partitions: 8, Now: clk.Now})
	now := clk.Millis()
	var keys []string
	for i := range 50 {
		k := fmt.Sprintf("k%d", i)
		keys = append(keys, k)
		put(t, s, k, rec(val("v", now+100)))
	}
	drop := s.PartitionOf([]byte(keys[0]))
	inDropped := 0
	for _, k := range keys {
		if s.PartitionOf([]byte(k)) == drop {
			inDropped++
		}
	}
	if err := s.DropPartition(drop); err != nil {
		t.Fatal(err)
	}
	if n := countExpiryEntries(t, s); n != 50 {
		t.Fatalf("%d expiry entries before reaping, want 50 (dangling ones included)", n)
	}
	// Rewrite one dropped key with a later expiry: its old entry is dangling, the new
	// one is live.
	put(t, s, keys[0], rec(val("v", now+100_000)))
	clk.Advance(time.Second)
	n, err := s.Reap(1000)
	if err != nil {
		t.Fatal(err)
	}
	if n != 50-inDropped {
		t.Fatalf("reaped %d, want %d (dangling entries are not reaps)", n, 50-inDropped)
	}
	if n := countExpiryEntries(t, s); n != 1 {
		t.Fatalf("%d expiry entries left, want 1 (the rewritten key's)", n)
	}
	if r, found := mustGet(t, s, keys[0]); !found || allTombstones(r) {
		t.Fatal("rewritten key reaped through its dangling entry")
	}
	clk.Advance(time.Hour)
	if n, _ := s.Reap(1000); n != 1 {
		t.Fatalf("reaped %d, want 1", n)
	}
	if n := countExpiryEntries(t, s); n != 0 || s.Count() != 0 {
		t.Fatalf("left %d entries, %d records", n, s.Count())
	}
}

// TestReaperGoroutine checks the background reaper reaps on its own, and stops on
// Close. It runs in a synctest bubble, so the reaper's ticker is on fake time.
func TestReaperGoroutine(t *testing.T) {
	defer leaktest.AfterTest(t)()
	synctest.Test(t, func(t *testing.T) {
		s, err := Open(Config{InMemory: true, Partitions: 8, ReapInterval: time.Second, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UnixMilli()
		put(t, s, "soon", rec(val("v", now+1500)))
		put(t, s, "later", rec(val("v", now+3500)))
		put(t, s, "never", rec(val("v", 0)))
		time.Sleep(1100 * time.Millisecond) // one tick: nothing due
		synctest.Wait()
		if s.Metrics().Reaped != 0 {
			t.Fatalf("reaped %d after the first tick", s.Metrics().Reaped)
		}
		time.Sleep(time.Second) // second tick at 2s: "soon" is due
		synctest.Wait()
		if r, _ := mustGet(t, s, "soon"); !allTombstones(r) || s.Metrics().Reaped != 1 {
			t.Fatalf("after 2s: soon = %+v, reaped = %d", r, s.Metrics().Reaped)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if r, _ := mustGet(t, s, "later"); !allTombstones(r) || s.Metrics().Reaped != 2 {
			t.Fatalf("after 4s: later = %+v, reaped = %d", r, s.Metrics().Reaped)
		}
		if r, found := mustGet(t, s, "never"); !found || allTombstones(r) {
			t.Fatal("a record without expiry was reaped")
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		// synctest.Test fails if the reaper (or anything else) is still running here.
	})
}

func TestCloseIdempotentAndErrClosed(t *testing.T) {
	defer leaktest.AfterTest(t)()
	s, err := Open(Config{InMemory: true, Partitions: 4, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, err := s.Get([]byte("k")); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
	if _, err := s.Update([]byte("k"), func(record.Record, bool) (record.Record, error) { return rec(val("v", 0)), nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Update after Close: %v", err)
	}
	if err := s.Scan(0, 0, func(uint64, []byte, record.Record) bool { return true }); !errors.Is(err, ErrClosed) {
		t.Errorf("Scan after Close: %v", err)
	}
	if err := s.DropPartition(0); !errors.Is(err, ErrClosed) {
		t.Errorf("DropPartition after Close: %v", err)
	}
	if err := s.DropAll(); !errors.Is(err, ErrClosed) {
		t.Errorf("DropAll after Close: %v", err)
	}
	if _, err := s.Reap(10); !errors.Is(err, ErrClosed) {
		t.Errorf("Reap after Close: %v", err)
	}
}

func TestDurableAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	cfg := Config{Dir: dir, Partitions: 16, Now: clk.Now}
	s := open(t, cfg)
	want := map[string]record.Record{}
	for i := range 200 {
		k := fmt.Sprintf("key%d", i)
		r := rec(val(fmt.Sprint("value", i), 0))
		if i%10 == 0 {
			r = rec(val("a", clk.Millis()+1000), tomb())
		}
		put(t, s, k, r)
		want[k] = r
	}
	for i := 0; i < 200; i += 7 { // some deletes
		k := fmt.Sprintf("key%d", i)
		put(t, s, k, record.Record{})
		delete(want, k)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, cfg)
	n := 0
	for p := range 16 {
		for _, sc := range scanAll(t, s, p, 0) {
			n++
			w, ok := want[sc.key]
			if !ok {
				t.Fatalf("%q resurrected after reopen", sc.key)
			}
			r, _ := mustGet(t, s, sc.key)
			if !sameRecord(r, w) {
				t.Fatalf("%q = %+v after reopen, want %+v", sc.key, r, w)
			}
		}
	}
	if n != len(want) {
		t.Fatalf("%d records after reopen, want %d", n, len(want))
	}
	// The expiry index survived too: the expiring records (an expiring value and a
	// tombstone) are reaped after reopen.
	expiring := 0
	for _, r := range want {
		if ReapTime(r) != 0 {
			expiring++
		}
	}
	clk.Advance(time.Hour)
	reaped, err := s.Reap(1000)
	if err != nil {
		t.Fatal(err)
	}
	if reaped != expiring || expiring == 0 {
		t.Fatalf("reaped %d records, want %d", reaped, expiring)
	}
	put(t, s, "exp", rec(val("v", clk.Millis()+1)))
	s.Close()
	s = open(t, cfg)
	clk.Advance(time.Second)
	if reaped, err := s.Reap(1000); err != nil || reaped != 1 {
		t.Fatalf("Reap after reopen = %d, %v; want 1", reaped, err)
	}
}

func TestConcurrentUpdateSameKey(t *testing.T) {
	s := openMem(t, Config{Partitions: 16})
	const goroutines, perG = 16, 200
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for range goroutines {
		wg.Go(func() {
			for range perG {
				if _, err := s.Update([]byte("counter"), incr); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	// Concurrent readers and scanners of the same partition must not disturb it.
	wg.Go(func() {
		for range 200 {
			if _, _, err := s.Get([]byte("counter")); err != nil {
				errs <- err
				return
			}
			if err := s.Scan(s.PartitionOf([]byte("counter")), 0, func(uint64, []byte, record.Record) bool { return true }); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	r, _ := mustGet(t, s, "counter")
	if got := string(r.Str.Siblings()[0].Data); got != strconv.Itoa(goroutines*perG) {
		t.Fatalf("counter = %s, want %d", got, goroutines*perG)
	}
	if s.Count() != 1 {
		t.Fatalf("Count = %d", s.Count())
	}
}

// TestConcurrentCountsExact writes, deletes and drops concurrently and checks the
// counters against a fresh count of the records.
func TestConcurrentCountsExact(t *testing.T) {
	const q = 8
	s := openMem(t, Config{Partitions: q})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 300 {
				k := fmt.Sprintf("k%d", (i*7+g)%97)
				r := rec(val("v", 0))
				switch i % 4 {
				case 1:
					r = rec(tomb())
				case 2:
					r = record.Record{}
				}
				put(t, s, k, r)
			}
		})
	}
	wg.Go(func() {
		for i := range 20 {
			if err := s.DropPartition(i % q); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	for p := range q {
		live := int64(0)
		if err := s.Scan(p, 0, func(_ uint64, _ []byte, r record.Record) bool {
			if Counts(r) {
				live++
			}
			return true
		}); err != nil {
			t.Fatal(err)
		}
		if got := s.PartitionCount(p); got != live {
			t.Errorf("PartitionCount(%d) = %d, records say %d", p, got, live)
		}
	}
}

func TestInMemory(t *testing.T) {
	s := openMem(t, Config{Partitions: 4})
	put(t, s, "k", rec(val("v", 0)))
	r, found := mustGet(t, s, "k")
	if !found || string(r.Str.Siblings()[0].Data) != "v" {
		t.Fatalf("Get = %+v, %v", r, found)
	}
	if err := s.PutMeta("m", []byte("x")); err != nil {
		t.Fatal(err)
	}
	// Two in-memory stores are independent.
	s2 := openMem(t, Config{Partitions: 4})
	if _, found := mustGet(t, s2, "k"); found {
		t.Fatal("in-memory stores share data")
	}
	if s.Metrics().Keys != 1 {
		t.Fatalf("Metrics = %+v", s.Metrics())
	}
}

// lockedBuffer is an io.Writer safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestPebbleLogsGoToLogger runs a workload that makes Pebble flush and compact with
// stderr and the standard log package redirected, and checks nothing reached them,
// and that Pebble's logger writes to Config.Logger.
func TestPebbleLogsGoToLogger(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var stray lockedBuffer
	copied := make(chan struct{})
	go func() {
		io.Copy(&stray, r)
		close(copied)
	}()
	oldStderr, oldLog := os.Stderr, log.Writer()
	os.Stderr = w
	log.SetOutput(w)
	restore := func() {
		os.Stderr = oldStderr
		log.SetOutput(oldLog)
		w.Close()
		<-copied
		r.Close()
	}

	var logs lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := Open(Config{Dir: t.TempDir(), Partitions: 8, Sync: SyncNone, Logger: logger, ReapInterval: time.Millisecond})
	if err != nil {
		restore()
		t.Fatal(err)
	}
	for i := range 2000 {
		put(t, s, fmt.Sprint(i), rec(val(strings.Repeat("x", 100), 0)))
	}
	if err := s.db.Flush(); err != nil {
		t.Error(err)
	}
	if err := s.db.Compact([]byte{0}, []byte{0xff}, true); err != nil {
		t.Error(err)
	}
	if err := s.DropAll(); err != nil {
		t.Error(err)
	}
	s.Close()

	// Pebble's logger is wired to Config.Logger, tagged.
	pebbleLogger{logger.With("component", "pebble")}.Infof("hello %d", 42)
	restore()
	if got := stray.String(); got != "" {
		t.Errorf("the store wrote to stderr or the log package:\n%s", got)
	}
	if got := logs.String(); !strings.Contains(got, "component=pebble") || !strings.Contains(got, "hello 42") {
		t.Errorf("pebble log line not in Config.Logger's output:\n%s", got)
	}
	// Fatalf does not return (Pebble relies on it): it logs why and panics, for the
	// store's boundary to recover (TestEngineFailure).
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "corrupt sstable") {
				t.Errorf("Fatalf panicked with %v, want the message", r)
			}
		}()
		pebbleLogger{logger}.Fatalf("corrupt %s", "sstable")
		t.Error("Fatalf returned")
	}()
	if got := logs.String(); !strings.Contains(got, "corrupt sstable") {
		t.Errorf("Fatalf did not log why:\n%s", got)
	}
}

// TestCloseRacesCalls closes the store while goroutines use it. Before Close waited
// for calls in progress, this panicked with "pebble: closed" (a Get or Update that
// passed the closed check before Close closed Pebble).
func TestCloseRacesCalls(t *testing.T) {
	defer leaktest.AfterTest(t)()
	for range 20 {
		s, err := Open(Config{InMemory: true, Partitions: 8, Logger: quietLogger(), ReapInterval: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		var wg, started sync.WaitGroup
		const workers = 4
		started.Add(workers)
		for w := range workers {
			wg.Go(func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("panic racing Close: %v", r)
					}
				}()
				started.Done()
				for i := range 1000 {
					var err error
					switch (i + w) % 6 {
					case 0:
						_, err = s.Update([]byte("k"), func(record.Record, bool) (record.Record, error) { return rec(val("v", 1)), nil })
					case 1:
						_, _, err = s.Get([]byte("k"))
					case 2:
						// A call nested in a Scan callback must not deadlock Close.
						err = s.Scan(s.PartitionOf([]byte("k")), 0, func(uint64, []byte, record.Record) bool {
							s.Get([]byte("k"))
							return true
						})
					case 3:
						_, _, err = s.GetMeta("partitions")
					case 4:
						_, err = s.Reap(10)
						s.Metrics()
					case 5:
						err = s.DropPartition(i % 8)
					}
					if err != nil && !errors.Is(err, ErrClosed) {
						t.Errorf("call racing Close: %v", err)
						return
					}
				}
			})
		}
		started.Wait()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		if err := s.PutMeta("x", nil); !errors.Is(err, ErrClosed) {
			t.Fatalf("PutMeta after Close: %v", err)
		}
		if m := s.Metrics(); m.DiskBytes != 0 {
			t.Fatalf("Metrics after Close = %+v", m)
		}
	}
}

// TestPartitionOfMatchesRing: the store groups records by the partition ring/ places
// them in, for every power-of-two Q.
func TestPartitionOfMatchesRing(t *testing.T) {
	for _, q := range []int{1, 2, 64, 1024, 1 << 16} {
		s := openMem(t, Config{Partitions: q})
		for i := range 2000 {
			k := []byte(fmt.Sprint("key-", i))
			if got, want := s.PartitionOf(k), ring.PartitionOf(k, q); got != want {
				t.Fatalf("Q=%d: PartitionOf(%q) = %d, ring says %d", q, k, got, want)
			}
		}
		s.Close()
	}
}

// TestPartitionStripes: ExclusivePartition locks every stripe a key of the
// partition can take, and partitions of one store share no stripe when Q is at
// most the stripe count.
func TestPartitionStripes(t *testing.T) {
	for _, q := range []int{1, 8, lockStripes, 4 * lockStripes} {
		owner := make([]int, lockStripes) // stripe -> partition + 1 (0: none yet)
		for p := range q {
			stripes := partitionStripes(p, q, lockStripes)
			if !slices.IsSorted(stripes) || len(stripes) != max(1, lockStripes/q) {
				t.Fatalf("q=%d p=%d: stripes %v", q, p, stripes)
			}
			for _, i := range stripes {
				if o := owner[i]; o != 0 && q <= lockStripes {
					t.Fatalf("q=%d: stripe %d held by partitions %d and %d", q, i, o-1, p)
				}
				owner[i] = p + 1
			}
		}
		for i := range 5000 {
			h := ring.KeyHash(fmt.Appendf(nil, "key-%d", i))
			p := int(h & uint64(q-1))
			// Up to lockStripes partitions, each stripe has one owner (checked
			// above); past it, a partition has one stripe.
			locked := owner[h%lockStripes] == p+1
			if q > lockStripes {
				locked = slices.Contains(partitionStripes(p, q, lockStripes), int(h%lockStripes))
			}
			if !locked {
				t.Fatalf("q=%d: key %d of partition %d is on stripe %d, not locked", q, i, p, h%lockStripes)
			}
		}
	}
}

// TestExclusivePartitionKeepsWritersOut: a write to the partition waits until fn
// returns; fn reads the store freely; a bad partition is refused.
func TestExclusivePartitionKeepsWritersOut(t *testing.T) {
	s := openMem(t, Config{Partitions: 8})
	key := []byte("k")
	p := s.PartitionOf(key)
	put(t, s, "k", rec(val("before", 0)))
	var wrote atomic.Bool
	done := make(chan struct{})
	err := s.ExclusivePartition(p, func() error {
		go func() {
			defer close(done)
			put(t, s, "k", rec(val("during", 0)))
			wrote.Store(true)
		}()
		// Reads do not wait for the locks held here.
		for range 100 {
			r, _ := mustGet(t, s, "k")
			if enc, err := s.GetEncoded(key); err != nil || !bytes.Equal(enc, r.AppendBinary(nil)) {
				t.Errorf("GetEncoded = %x, %v", enc, err)
			}
			if string(r.Str.Siblings()[0].Data) != "before" || wrote.Load() {
				return errors.New("a write got in while the partition was held")
			}
			runtime.Gosched()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	<-done
	if r, _ := mustGet(t, s, "k"); string(r.Str.Siblings()[0].Data) != "during" {
		t.Fatalf("the waiting write was lost: %v", r.Str.Siblings())
	}
	if err := s.ExclusivePartition(8, func() error { return nil }); err == nil {
		t.Fatal("partition out of range accepted")
	}
}

// TestDefaultMemTableBytes: the memtable size storage leaves to Pebble is the
// one it tells callers (node/ counts it in the Go memory limit).
func TestDefaultMemTableBytes(t *testing.T) {
	if got := (&pebble.Options{}).EnsureDefaults().MemTableSize; got != DefaultMemTableBytes {
		t.Errorf("Pebble's default MemTableSize is %d, DefaultMemTableBytes %d", got, DefaultMemTableBytes)
	}
}
