package storage

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/ring"
	"github.com/dynakv/dynakv/vclock"
)

// recountMemory sums, by a full scan of Pebble, what Memory and PartitionMemory
// should say: the reference the incremental sums are checked against.
func recountMemory(t testing.TB, s *Store) (MemoryStats, []MemoryStats) {
	t.Helper()
	parts := make([]MemoryStats, s.Partitions())
	var total MemoryStats
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{spaceData}, UpperBound: []byte{spaceData + 1}})
	if err != nil {
		t.Fatal(err)
	}
	for it.First(); it.Valid(); it.Next() {
		p, _, _, err := parseDataKey(it.Key())
		if err != nil {
			t.Fatal(err)
		}
		r, err := record.Decode(it.Value())
		if err != nil {
			t.Fatal(err)
		}
		size := recordSize(len(it.Key()), len(it.Value()), ReapTime(r), GraveTime(r))
		if GraveTime(r) != 0 {
			parts[p].Graves += size
			total.Graves += size
		} else {
			parts[p].Live += size
			total.Live += size
		}
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	it, err = s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{spaceHint}, UpperBound: []byte{spaceHint + 1}})
	if err != nil {
		t.Fatal(err)
	}
	for it.First(); it.Valid(); it.Next() {
		total.Hints += hintSize(len(it.Key()), len(it.Value()))
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	return total, parts
}

// checkMemory fails t unless the store's sums equal a recount.
func checkMemory(t testing.TB, s *Store, what string) {
	t.Helper()
	total, parts := recountMemory(t, s)
	if got := s.Memory(); got != total {
		t.Fatalf("%s: Memory() = %+v, a recount gives %+v", what, got, total)
	}
	for p, want := range parts {
		if got := s.PartitionMemory(p); got != want {
			t.Fatalf("%s: PartitionMemory(%d) = %+v, a recount gives %+v", what, p, got, want)
		}
	}
	// The young graves: at least a recount's (more after a partition drop,
	// whose graves the ring keeps until their seconds pass), at most Graves.
	now := time.Now()
	if s.cfg.Now != nil {
		now = s.cfg.Now()
	}
	const window = time.Minute
	got, want := s.YoungGraves(now, window), recountYoung(t, s, now, window)
	if got < want || got > total.Graves {
		t.Fatalf("%s: YoungGraves = %d, a recount gives %d (graves %d)", what, got, want, total.Graves)
	}
}

// recountYoung sums the graves whose GraveTime's second is within window of
// now's, as YoungGraves counts them.
func recountYoung(t testing.TB, s *Store, now time.Time, window time.Duration) int64 {
	t.Helper()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{spaceData}, UpperBound: []byte{spaceData + 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	sec, w := now.Unix(), int64(window/time.Second)
	var n int64
	for it.First(); it.Valid(); it.Next() {
		r, err := record.Decode(it.Value())
		if err != nil {
			t.Fatal(err)
		}
		if g := GraveTime(r); g != 0 && g/1000 >= sec-w && g/1000 <= sec+w {
			n += recordSize(len(it.Key()), len(it.Value()), ReapTime(r), g)
		}
	}
	return n
}

// TestMemoryOfOneRecord pins the size rule on single records: the data key, the
// encoding, the overhead, and one index entry per index the record is in.
func TestMemoryOfOneRecord(t *testing.T) {
	clk := newFakeClock()
	now := clk.Millis()
	const key = "some-key"
	dk := len(dataKey(nil, 0, 0, []byte(key)))
	ix := len(expiryKey(nil, 0, 0, 0, []byte(key))) + indexOverhead
	tests := []struct {
		name  string
		r     record.Record
		index int // index entries
		grave bool
	}{
		{"live", rec(val("value", 0)), 0, false},
		{"expiring", rec(val("value", now+1000)), 1, false},
		{"live beside a tombstone", rec(val("value", 0), tomb()), 0, false},
		{"expiring beside a tombstone", rec(val("value", now+1000), tomb()), 1, false},
		{"grave", rec(tomb()), 1, true},
		{"two tombstones", rec(tomb(), tomb()), 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openMem(t, Config{Partitions: 8, Now: clk.Now})
			put(t, s, key, tt.r)
			want := int64(dk + len(tt.r.AppendBinary(nil)) + recordOverhead + tt.index*ix)
			m := s.Memory()
			got := m.Live
			if tt.grave {
				got = m.Graves
			}
			if got != want || m.Total() != want {
				t.Fatalf("Memory() = %+v, want %d as %s", m, want, map[bool]string{true: "graves", false: "live"}[tt.grave])
			}
			if pm := s.PartitionMemory(s.PartitionOf([]byte(key))); pm.Total() != want {
				t.Fatalf("PartitionMemory = %+v, want %d", pm, want)
			}
			put(t, s, key, record.Record{})
			if m := s.Memory(); m != (MemoryStats{}) {
				t.Fatalf("Memory() = %+v after the delete, want zero", m)
			}
		})
	}
	t.Run("hint", func(t *testing.T) {
		s := openMem(t, Config{Partitions: 8})
		r := rec(val("value", 0))
		putHint(t, s, "owner", key, r)
		want := int64(len(hintKey(nil, "owner", []byte(key))) + len(r.AppendBinary(nil)) + recordOverhead)
		if m := s.Memory(); m != (MemoryStats{Hints: want}) {
			t.Fatalf("Memory() = %+v, want Hints %d", m, want)
		}
	})
}

// memOps is the random history of TestMemoryMatchesRecount.
type memOps struct {
	t    *testing.T
	rng  *rand.Rand
	clk  *fakeClock
	keys []string
}

func (o *memOps) key() []byte { return []byte(o.keys[o.rng.IntN(len(o.keys))]) }

// record returns a random record: values and tombstones, some expiring (some
// already expired), or now and then none (a delete).
func (o *memOps) record() record.Record {
	n := o.rng.IntN(4)
	if n == 0 && o.rng.IntN(2) == 0 {
		return record.Record{}
	}
	now := o.clk.Millis()
	vals := make([]vclock.Value, 0, n+1)
	for range n + 1 {
		switch o.rng.IntN(4) {
		case 0:
			vals = append(vals, vclock.Value{Tombstone: true, Timestamp: now - o.rng.Int64N(1000)})
		case 1:
			vals = append(vals, vclock.Value{Data: bytes.Repeat([]byte("e"), o.rng.IntN(60)), Timestamp: now, Expiry: now + o.rng.Int64N(3000) - 500})
		default:
			vals = append(vals, vclock.Value{Data: bytes.Repeat([]byte("v"), o.rng.IntN(60)), Timestamp: now})
		}
	}
	return rec(vals...)
}

// update returns an UpdateFunc that writes a random record, or changes nothing.
func (o *memOps) update() UpdateFunc {
	if o.rng.IntN(8) == 0 {
		return func(record.Record, bool) (record.Record, error) { return record.Record{}, ErrNoChange }
	}
	r := o.record()
	return func(record.Record, bool) (record.Record, error) { return r, nil }
}

// TestMemoryMatchesRecount: after every step of a random history of every
// operation that changes records or hints (writes synced or not, batches with
// repeated keys, reaps, compare-and-deletes, hint writes and deletes, hint and
// partition drops, reopens), the sums equal a full recount.
func TestMemoryMatchesRecount(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"record cache", Config{}},
		{"no record cache, observer", Config{RecordCacheBytes: -1, Observer: &recordingObserver{}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			clk := newFakeClock()
			cfg := c.cfg
			cfg.Dir, cfg.Partitions, cfg.Sync, cfg.Now = t.TempDir(), 8, SyncNone, clk.Now
			s := open(t, cfg)
			o := &memOps{t: t, rng: rand.New(rand.NewPCG(seed, 18)), clk: clk}
			for i := range 40 {
				o.keys = append(o.keys, fmt.Sprintf("k%d", i))
			}
			owners := []string{"a", "bb"}
			steps := 1500
			if testing.Short() || raceEnabled {
				steps = 400
			}
			for step := range steps {
				var what string
				switch op := o.rng.IntN(100); {
				case op < 25:
					what = "Update"
					if _, err := s.Update(o.key(), o.update()); err != nil {
						t.Fatal(err)
					}
				case op < 40:
					what = "UpdateNoSync"
					if _, err := s.UpdateNoSync(o.key(), o.update()); err != nil {
						t.Fatal(err)
					}
				case op < 52:
					what = "UpdateBatch"
					n := 1 + o.rng.IntN(6)
					keys, fns := make([][]byte, n), make([]UpdateFunc, n)
					for i := range keys {
						keys[i], fns[i] = o.key(), o.update()
					}
					for _, err := range s.UpdateBatch(keys, fns) {
						if err != nil {
							t.Fatal(err)
						}
					}
				case op < 62:
					what = "Reap"
					clk.Advance(time.Duration(o.rng.IntN(800)) * time.Millisecond)
					if _, err := s.Reap(1 + o.rng.IntN(8)); err != nil {
						t.Fatal(err)
					}
				case op < 70:
					what = "DeleteIf"
					k := o.key()
					enc, err := s.GetEncoded(k)
					if err != nil {
						t.Fatal(err)
					}
					if o.rng.IntN(4) == 0 {
						enc = o.record().AppendBinary(nil) // most likely not what is stored
					}
					if _, err := s.DeleteIf(k, enc); err != nil {
						t.Fatal(err)
					}
				case op < 80:
					what = "UpdateHint"
					if _, err := s.UpdateHint(owners[o.rng.IntN(2)], o.key(), o.update()); err != nil {
						t.Fatal(err)
					}
				case op < 86:
					what = "DeleteHint"
					owner, k := owners[o.rng.IntN(2)], o.key()
					r, found, err := s.GetHint(owner, k)
					if err != nil {
						t.Fatal(err)
					}
					if !found || o.rng.IntN(4) == 0 {
						r = o.record()
					}
					if _, err := s.DeleteHint(owner, k, r); err != nil {
						t.Fatal(err)
					}
				case op < 88:
					what = "DropHints"
					if err := s.DropHints(owners[o.rng.IntN(2)]); err != nil {
						t.Fatal(err)
					}
				case op < 93:
					what = "DropPartitionIf"
					drop := o.rng.IntN(3) > 0
					if _, err := s.DropPartitionIf(o.rng.IntN(s.Partitions()), func() bool { return drop }); err != nil {
						t.Fatal(err)
					}
				case op < 94:
					what = "DropAll"
					if err := s.DropAll(); err != nil {
						t.Fatal(err)
					}
				default:
					what = "reopen"
					before := s.Memory()
					if err := s.Close(); err != nil {
						t.Fatal(err)
					}
					s = open(t, cfg)
					if got := s.Memory(); got != before {
						t.Fatalf("step %d: Memory() = %+v after reopen, %+v before", step, got, before)
					}
				}
				checkMemory(t, s, fmt.Sprintf("step %d (%s)", step, what))
			}
			if s.Memory().Total() == 0 {
				t.Log("the history ended empty")
			}
		})
	}
}

// TestMemoryRecountedAtOpen: the sums of a directory written by another store
// (here one whose sums are thrown away) come back from Open's scan, records and
// hints alike.
func TestMemoryRecountedAtOpen(t *testing.T) {
	clk := newFakeClock()
	cfg := Config{Dir: t.TempDir(), Partitions: 4, Sync: SyncNone, Now: clk.Now}
	s := open(t, cfg)
	put(t, s, "live", rec(val("v", 0)))
	put(t, s, "expiring", rec(val("v", clk.Millis()+1000)))
	put(t, s, "grave", rec(tomb()))
	putHint(t, s, "owner", "live", rec(val("hinted", 0)))
	want := s.Memory()
	if want.Live == 0 || want.Graves == 0 || want.Hints == 0 {
		t.Fatalf("Memory() = %+v, want every figure set", want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, cfg)
	if got := s.Memory(); got != want {
		t.Fatalf("Memory() = %+v after reopen, want %+v", got, want)
	}
	checkMemory(t, s, "reopened")
}

// TestMemoryCalibration writes records of 100-byte random values in memory mode
// and compares Pebble's physical figures with the logical sum, which the
// overhead constants are chosen for: the live sstables once compacted hold at
// most the logical bytes and at least half of them (the logical figure stands for
// a record in a memtable too, where it costs more than compressed in an sstable),
// and with 200k records (not -short, not -race), Pebble's whole footprint as
// written (files, the WAL among them, and memtables) is within [0.8, 1.5] of the
// logical sum. The measured ratios are logged: go test -run MemoryCalibration -v.
func TestMemoryCalibration(t *testing.T) {
	n, full := 200_000, true
	if testing.Short() || raceEnabled {
		n, full = 20_000, false
	}
	for _, c := range []struct {
		name   string
		n      int
		expiry bool
	}{{"persistent", n, false}, {"expiring", n / 4, true}} {
		t.Run(c.name, func(t *testing.T) {
			clk := newFakeClock()
			s := openMem(t, Config{Partitions: 1024, Sync: SyncNone, Now: clk.Now, RecordCacheBytes: -1, CacheBytes: 8 << 20})
			rng := rand.New(rand.NewPCG(1, 2))
			const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
			const batch = 1000
			keys, fns := make([][]byte, 0, batch), make([]UpdateFunc, 0, batch)
			var expiry int64
			if c.expiry {
				expiry = clk.Millis() + int64(time.Hour/time.Millisecond)
			}
			for i := range c.n {
				data := make([]byte, 100)
				for j := range data {
					data[j] = alnum[rng.IntN(len(alnum))]
				}
				r := vclock.Update(vclock.Set{}, nil, "node-1", vclock.Value{Data: data, Timestamp: clk.Millis(), Expiry: expiry}, clk.Millis(), 1)
				keys = append(keys, fmt.Appendf(nil, "key:%012d", i))
				fns = append(fns, func(record.Record, bool) (record.Record, error) { return record.String(r), nil })
				if len(keys) == batch || i == c.n-1 {
					for _, err := range s.UpdateBatch(keys, fns) {
						if err != nil {
							t.Fatal(err)
						}
					}
					keys, fns = keys[:0], fns[:0]
				}
			}
			logical := s.Memory().Total()
			written := s.Physical()
			if err := s.db.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := s.db.Compact([]byte{0}, []byte{0xff}, true); err != nil {
				t.Fatal(err)
			}
			compacted := s.Physical()
			asWritten := float64(written.Total()) / float64(logical)
			tables := float64(compacted.Tables) / float64(logical)
			t.Logf("%d records: logical %d B (%.1f B/record); as written: %d B files + %d B memtables = %.2f x logical; compacted: %d B live sstables = %.2f x logical (%.1f B/record)",
				c.n, logical, float64(logical)/float64(c.n), written.FS, written.Memtables, asWritten, compacted.Tables, tables, float64(compacted.Tables)/float64(c.n))
			if tables < 0.5 || tables > 1 {
				t.Errorf("compacted sstables / logical = %.2f, want within [0.5, 1]: recalibrate recordOverhead", tables)
			}
			if full && c.n == n && (asWritten < 0.8 || asWritten > 1.5) {
				t.Errorf("physical as written / logical = %.2f, want within [0.8, 1.5]: recalibrate recordOverhead", asWritten)
			}
		})
	}
}

// TestMemoryPartitionOf: a record's bytes land in its key's partition.
func TestMemoryPartitionOf(t *testing.T) {
	s := openMem(t, Config{Partitions: 16})
	put(t, s, "k", rec(val("v", 0)))
	p := ring.PartitionOf([]byte("k"), 16)
	for q := range 16 {
		if got := s.PartitionMemory(q).Live; (got != 0) != (q == p) {
			t.Fatalf("PartitionMemory(%d).Live = %d; the key is in partition %d", q, got, p)
		}
	}
	if err := s.DropPartition(p); err != nil {
		t.Fatal(err)
	}
	if m := s.Memory(); m != (MemoryStats{}) {
		t.Fatalf("Memory() = %+v after dropping the key's partition", m)
	}
}

// BenchmarkMemoryAccounting is what accounting adds to a commit that replaces a
// live record by another (committed): two sizes and the partition's and total's
// atomic adds.
func BenchmarkMemoryAccounting(b *testing.B) {
	m := memory{parts: make([]partMemory, 1024)}
	for i := 0; b.Loop(); i++ {
		old := recordSize(30, 130, 0, 0)
		m.add(i&1023, recordSize(30, 131+i&1, 0, 0)-old, 0)
	}
}

// TestGraveAges: the ring keeps grave bytes by second over the last youngSpan
// seconds; a removal takes off what its second's bucket holds (never below
// zero); a bucket reused by a later second forgets the earlier one, whose
// removals are then ignored; sum counts the seconds asked for.
func TestGraveAges(t *testing.T) {
	type op struct{ sec, bytes int64 }
	for _, tc := range []struct {
		name     string
		ops      []op
		from, to int64
		want     int64
	}{
		{"empty", nil, 0, 1 << 40, 0},
		{"adds", []op{{1000, 10}, {1000, 5}, {1001, 7}}, 1000, 1001, 22},
		{"window", []op{{1000, 10}, {1001, 7}, {1002, 3}}, 1001, 1001, 7},
		{"removal", []op{{1000, 10}, {1000, -4}}, 0, 2000, 6},
		{"removal never below zero", []op{{1000, 10}, {1000, -40}}, 0, 2000, 0},
		{"removal of an unknown second", []op{{1000, -4}}, 0, 2000, 0},
		{"reuse forgets", []op{{1000, 10}, {1000 + youngSpan, 3}}, 0, 1 << 40, 3},
		{"removal after reuse ignored", []op{{1000, 10}, {1000 + youngSpan, 3}, {1000, -10}}, 0, 1 << 40, 3},
		{"older add ignored", []op{{1000 + youngSpan, 3}, {1000, 10}}, 0, 1 << 40, 3},
		{"unset time ignored", []op{{0, 10}}, -1 << 40, 1 << 40, 0},
	} {
		var g graveAges
		for _, o := range tc.ops {
			at := o.sec*1000 + 999
			if o.sec == 0 {
				at = 0
			}
			g.add(at, o.bytes)
		}
		if got := g.sum(tc.from, tc.to); got != tc.want {
			t.Errorf("%s: sum(%d, %d) = %d, want %d", tc.name, tc.from, tc.to, got, tc.want)
		}
	}
}

// TestDropAllFreesFiles: in memory mode, FLUSHALL's files leave soon after it
// (the range deletions are flushed, and Pebble drops the tables they cover)
// instead of staying until ordinary compactions reach them, while the file
// bytes stay a sane figure (diskUsage); and the young graves go with the graves.
func TestDropAllFreesFiles(t *testing.T) {
	s, err := Open(Config{InMemory: true, Partitions: 16, Logger: quietLogger(), MemTableBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v := bytes.Repeat([]byte("v"), 1000)
	for i := range 20000 {
		k := []byte(fmt.Sprint("k", i))
		if _, err := s.Update(k, func(cur record.Record, _ bool) (record.Record, error) {
			val := vclock.Value{Data: v, Timestamp: time.Now().UnixMilli(), Tombstone: i%4 == 0}
			return record.String(vclock.Update(cur.Str, nil, "a", val, val.Timestamp, 1)), nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	// The tables (not the WAL, which a memtable's writes bound, and which the
	// evictor's valve leaves out).
	before := s.Physical().Tables
	if before < 1<<20 || s.YoungGraves(time.Now(), time.Minute) == 0 {
		t.Fatalf("tables %d bytes, young graves %d after 20 MB of writes", before, s.YoungGraves(time.Now(), time.Minute))
	}
	if err := s.DropAll(); err != nil {
		t.Fatal(err)
	}
	if g := s.YoungGraves(time.Now(), time.Minute); g != 0 {
		t.Errorf("young graves %d after DropAll", g)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Physical().Tables > before/4 {
		if ph := s.Physical(); ph.FS > 1<<40 {
			t.Fatalf("file bytes wrapped after DropAll: %+v", ph)
		}
		if time.Now().After(deadline) {
			t.Fatalf("tables %d bytes 10 s after DropAll, %d before (%+v)", s.Physical().Tables, before, s.Physical())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDiskUsageLeavesWrappedTerms: a term Pebble's accounting drove below zero
// (seen for Table.ObsoleteSize after a dropped range's delete-only compactions)
// is left out of the store's file bytes instead of wrapping the sum to ~2^64.
func TestDiskUsageLeavesWrappedTerms(t *testing.T) {
	neg := func(n int64) uint64 { return uint64(-n) }
	for _, tc := range []struct {
		name string
		set  func(m *pebble.Metrics)
		want uint64
	}{
		{"sane", func(m *pebble.Metrics) {
			m.Table.ObsoleteSize, m.Table.ZombieSize, m.Compact.InProgressBytes = 10, 20, 30
		}, 1000 + 10 + 20 + 30},
		{"obsolete wrapped", func(m *pebble.Metrics) { m.Table.ObsoleteSize = neg(19_500_000) }, 1000},
		{"zombie wrapped", func(m *pebble.Metrics) { m.Table.ZombieSize, m.Table.ObsoleteSize = neg(5), 7 }, 1007},
		{"in progress negative", func(m *pebble.Metrics) { m.Compact.InProgressBytes = -40 }, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m pebble.Metrics
			m.WAL.PhysicalSize = 600
			m.Levels[0].Size, m.Levels[6].Size = 100, 300
			tc.set(&m)
			if got := diskUsage(&m); got != tc.want {
				t.Fatalf("diskUsage = %d, want %d (Pebble's sum: %d)", got, tc.want, m.DiskSpaceUsage())
			}
		})
	}
}
