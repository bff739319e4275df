package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"

	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/ring"
	"github.com/dynakv/dynakv/tictac"
	"github.com/dynakv/dynakv/vclock"
)

// wsOp is one random write of the oracle test: fn is deterministic, so running it
// on the same record in two stores gives the same result.
type wsOp struct {
	key string
	fn  UpdateFunc
}

var errOp = errors.New("op refused")

// randomOp draws a write over a few keys: a value (some expiring), a delete, a
// tombstone (a grave, young by the clock), an append to what is there (so a
// write depends on the one before), no change, or an error.
func randomOp(rng *rand.Rand, now int64) wsOp {
	key := fmt.Sprintf("k%d", rng.IntN(24))
	data := fmt.Sprint(rng.IntN(1000))
	switch rng.IntN(8) {
	case 0:
		return wsOp{key, setTo(record.Record{})}
	case 1:
		return wsOp{key, setTo(rec(vclock.Value{Tombstone: true, Timestamp: now - rng.Int64N(5000)}))}
	case 2:
		return wsOp{key, setTo(rec(val(data, now+1+rng.Int64N(60_000))))}
	case 3:
		return wsOp{key, func(cur record.Record, found bool) (record.Record, error) {
			prev := ""
			if found && len(cur.Str.Siblings()) > 0 {
				prev = string(cur.Str.Siblings()[0].Data)
			}
			return rec(val(prev+"+"+data, 0)), nil
		}}
	case 4:
		return wsOp{key, func(record.Record, bool) (record.Record, error) { return record.Record{}, ErrNoChange }}
	case 5:
		return wsOp{key, func(record.Record, bool) (record.Record, error) { return record.Record{}, errOp }}
	default:
		return wsOp{key, setTo(rec(val(data, 0), val(data+"'", 0)))}
	}
}

// dump returns every Pebble entry of the data, expiry and grave spaces: the
// records and both indexes.
func dump(t testing.TB, s *Store) []string {
	t.Helper()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{spaceData}, UpperBound: []byte{spaceGrave + 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []string
	for it.First(); it.Valid(); it.Next() {
		switch it.Key()[0] {
		case spaceData, spaceExpiry, spaceGrave:
			out = append(out, fmt.Sprintf("%x=%x", it.Key(), it.Value()))
		}
	}
	return out
}

// sameState fails t unless a and b hold the same records and index entries, with
// the same counts, memory sums (each equal to its recount) and Merkle roots.
func sameState(t *testing.T, what string, a, b *Store, ta, tb *tictac.Trees) {
	t.Helper()
	if da, db := dump(t, a), dump(t, b); !slices.Equal(da, db) {
		t.Fatalf("%s: stores differ:\n%v\n%v", what, da, db)
	}
	checkMemory(t, a, what)
	checkMemory(t, b, what)
	if a.Memory() != b.Memory() {
		t.Fatalf("%s: Memory %+v vs %+v", what, a.Memory(), b.Memory())
	}
	for p := range a.Partitions() {
		if a.PartitionCount(p) != b.PartitionCount(p) || a.PartitionMemory(p) != b.PartitionMemory(p) {
			t.Fatalf("%s: partition %d: count %d vs %d, memory %+v vs %+v", what, p,
				a.PartitionCount(p), b.PartitionCount(p), a.PartitionMemory(p), b.PartitionMemory(p))
		}
		ra, ka, _ := ta.Root(p)
		rb, kb, _ := tb.Root(p)
		if ra != rb || ka != kb {
			t.Fatalf("%s: partition %d: Merkle roots %x/%d vs %x/%d", what, p, ra, ka, rb, kb)
		}
	}
	if got, want := a.Count(), recountKeys(t, a); got != want {
		t.Fatalf("%s: Count %d, a recount gives %d", what, got, want)
	}
}

// recountKeys counts the records that count for DBSIZE by a scan.
func recountKeys(t testing.TB, s *Store) int64 {
	var n int64
	for p := range s.Partitions() {
		if err := s.Scan(p, 0, func(_ uint64, _ []byte, r record.Record) bool {
			if Counts(r) {
				n++
			}
			return true
		}); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// TestWriteSetMatchesUpdate: random writes staged in WriteSets, committed at
// random points, leave the store exactly as the same writes made one by one with
// Update, and as UpdateBatch with the same groups: records, indexes, counts,
// memory sums and Merkle roots; each staged write returns what Update returns,
// and the set's Get answers what Get answers after those Updates.
func TestWriteSetMatchesUpdate(t *testing.T) {
	for seed := range uint64(30) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			clk := newFakeClock()
			now := clk.Millis()
			var trees [3]*tictac.Trees
			var stores [3]*Store // one by one, write sets, UpdateBatch
			for i := range stores {
				trees[i] = tictac.NewTrees(8)
				stores[i] = openMem(t, Config{Partitions: 8, Now: clk.Now, Observer: trees[i]})
			}
			oracle, sets, batches := stores[0], stores[1], stores[2]
			ws := sets.NewWriteSet()
			for round := range 40 {
				if rng.IntN(10) == 0 {
					p := rng.IntN(8)
					for _, s := range stores {
						if err := s.DropPartition(p); err != nil {
							t.Fatal(err)
						}
					}
				}
				var keys [][]byte
				var fns []UpdateFunc
				for range 1 + rng.IntN(30) {
					op := randomOp(rng, now)
					want, wantErr := oracle.Update([]byte(op.key), op.fn)
					got, err := ws.Update([]byte(op.key), op.fn)
					if !errors.Is(err, wantErr) || !sameRecord(got, want) {
						t.Fatalf("round %d: staged write of %s = %v, %v; Update gave %v, %v", round, op.key, got, err, want, wantErr)
					}
					keys, fns = append(keys, []byte(op.key)), append(fns, op.fn)
					if rng.IntN(3) == 0 {
						k := fmt.Appendf(nil, "k%d", rng.IntN(24))
						want, wantOK := mustGet(t, oracle, string(k))
						got, ok, err := ws.Get(k)
						if err != nil || ok != wantOK || !sameRecord(got, want) {
							t.Fatalf("round %d: set's Get(%s) = %v, %v, %v; Get after Update %v, %v", round, k, got, ok, err, want, wantOK)
						}
					}
				}
				if err := ws.Commit(rng.IntN(2) == 0); err != nil {
					t.Fatal(err)
				}
				for i, err := range batches.UpdateBatch(keys, fns) {
					if err != nil && !errors.Is(err, errOp) {
						t.Fatalf("UpdateBatch write %d: %v", i, err)
					}
				}
				sameState(t, fmt.Sprintf("round %d, write sets", round), oracle, sets, trees[0], trees[1])
				sameState(t, fmt.Sprintf("round %d, UpdateBatch", round), oracle, batches, trees[0], trees[2])
			}
		})
	}
}

// snapshot is what a would-block must not change.
type snapshot struct {
	dump    []string
	count   int64
	mem     MemoryStats
	commits CommitStats
	cached  []string
}

func snap(t testing.TB, s *Store, keys []string) snapshot {
	sn := snapshot{dump: dump(t, s), count: s.Count(), mem: s.Memory(), commits: s.CommitStats()}
	for _, k := range keys {
		h := ring.KeyHash([]byte(k))
		enc, ok := s.rc.get(nil, dataKey(nil, s.partition(h), h, []byte(k))) // no fill
		sn.cached = append(sn.cached, fmt.Sprintf("%s:%v:%x", k, ok, enc))
	}
	return sn
}

func (a snapshot) equal(b snapshot) bool {
	return slices.Equal(a.dump, b.dump) && a.count == b.count && a.mem == b.mem && a.commits == b.commits && slices.Equal(a.cached, b.cached)
}

// TestWriteSetWouldBlockLeavesNoTrace: an Update that finds its key's stripe
// busy, or the set full, returns ErrWouldBlock without running its function,
// and the store (records, indexes, counts, memory, commits, cache) and the set
// (its writes, its locks) are as before; the set's writes commit as if it had
// never been tried.
func TestWriteSetWouldBlockLeavesNoTrace(t *testing.T) {
	s := openMem(t, Config{Partitions: 8})
	var keys []string
	for i := range 300 {
		keys = append(keys, fmt.Sprintf("key-%d", i))
	}
	put(t, s, keys[0], rec(val("old", 0)))
	ran := false
	spy := func(record.Record, bool) (record.Record, error) { ran = true; return rec(val("new", 0)), nil }

	other := s.NewWriteSet()
	if _, err := other.Update([]byte(keys[0]), setTo(rec(val("other", 0)))); err != nil {
		t.Fatal(err)
	}
	ws := s.NewWriteSet()
	if _, err := ws.Update([]byte(keys[1]), setTo(rec(val("mine", 0)))); err != nil {
		t.Fatal(err)
	}
	before, held := snap(t, s, keys[:3]), len(ws.held)
	_, err := ws.Update([]byte(keys[0]), spy)
	if !errors.Is(err, ErrWouldBlock) || !errors.Is(err, ErrLockBusy) || ran {
		t.Fatalf("Update of a key another set holds: %v (fn ran: %v), want ErrLockBusy without running", err, ran)
	}
	if !snap(t, s, keys[:3]).equal(before) || len(ws.held) != held || ws.Len() != 1 {
		t.Fatal("a would-block left a trace")
	}
	if err := other.Commit(true); err != nil {
		t.Fatal(err)
	}
	if err := ws.Commit(true); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{keys[0]: "other", keys[1]: "mine"} {
		if r, _ := mustGet(t, s, k); string(r.Str.Siblings()[0].Data) != want {
			t.Errorf("%s = %v, want %s", k, r, want)
		}
	}

	// Full by writes.
	for i := range maxSetWrites {
		if _, err := ws.Update([]byte(keys[i%20]), setTo(rec(val("w", 0)))); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	before, held = snap(t, s, keys[:30]), len(ws.held)
	if _, err := ws.Update([]byte(keys[299]), spy); !errors.Is(err, ErrSetFull) || ran {
		t.Fatalf("Update of a full set: %v (fn ran: %v), want ErrSetFull", err, ran)
	}
	if !snap(t, s, keys[:30]).equal(before) || len(ws.held) != held || ws.Len() != maxSetWrites {
		t.Fatal("a would-block left a trace")
	}
	ws.Discard()
	// Full by bytes: a large write fills it; the next one waits for the commit.
	big := string(make([]byte, maxSetBytes))
	if _, err := ws.Update([]byte(keys[5]), setTo(rec(val(big, 0)))); err != nil {
		t.Fatal(err)
	}
	if _, err := ws.Update([]byte(keys[6]), spy); !errors.Is(err, ErrSetFull) || ran {
		t.Fatalf("Update of a set past its bytes: %v (fn ran: %v), want ErrSetFull", err, ran)
	}
	if err := ws.Commit(true); err != nil {
		t.Fatal(err)
	}
	if _, err := ws.Update([]byte(keys[6]), spy); err != nil || !ran {
		t.Fatalf("Update after the commit: %v", err)
	}
	ws.Discard()
	checkMemory(t, s, "after would-blocks")
}

// TestWriteSetWouldBlockProperty: random staged writes, some on keys whose stripe
// another holder has, in random order; each would-block leaves the store and the
// set as they were, and what commits equals Update of the writes that did not
// block.
func TestWriteSetWouldBlockProperty(t *testing.T) {
	for seed := range uint64(10) {
		rng := rand.New(rand.NewPCG(seed, 3))
		clk := newFakeClock()
		s := openMem(t, Config{Partitions: 8, Now: clk.Now})
		oracle := openMem(t, Config{Partitions: 8, Now: clk.Now})
		ws := s.NewWriteSet()
		for range 20 {
			// Another holder locks a few keys' stripes; the cache starts empty,
			// so a would-block that read the store would fill it.
			s.rc.reset()
			var locked []*sync.Mutex
			for range rng.IntN(4) {
				mu := s.lock(ring.KeyHash(fmt.Appendf(nil, "k%d", rng.IntN(24))))
				if !slices.Contains(locked, mu) {
					mu.Lock()
					locked = append(locked, mu)
				}
			}
			for range 1 + rng.IntN(20) {
				op := randomOp(rng, clk.Millis())
				before, n := snap(t, s, []string{op.key}), ws.Len()
				got, err := ws.Update([]byte(op.key), op.fn)
				if errors.Is(err, ErrWouldBlock) {
					if !snap(t, s, []string{op.key}).equal(before) || ws.Len() != n {
						t.Fatalf("seed %d: a would-block of %s left a trace", seed, op.key)
					}
					continue
				}
				want, wantErr := oracle.Update([]byte(op.key), op.fn)
				if !errors.Is(err, wantErr) || !sameRecord(got, want) {
					t.Fatalf("seed %d: %s: %v, %v; want %v, %v", seed, op.key, got, err, want, wantErr)
				}
			}
			if err := ws.Commit(true); err != nil {
				t.Fatal(err)
			}
			for _, mu := range locked {
				mu.Unlock()
			}
			if !slices.Equal(dump(t, s), dump(t, oracle)) {
				t.Fatalf("seed %d: the store differs from the oracle", seed)
			}
			checkMemory(t, s, "would-block property")
		}
	}
}

// TestWriteSetReadsItsOwnWrites: the set's Get sees its staged writes, nobody else
// does before Commit, and TryGet never waits for the lock the set holds.
func TestWriteSetReadsItsOwnWrites(t *testing.T) {
	s := openMem(t, Config{Partitions: 8})
	put(t, s, "k", rec(val("old", 0)))
	ws := s.NewWriteSet()
	if _, err := ws.Update([]byte("k"), setTo(rec(val("new", 0)))); err != nil {
		t.Fatal(err)
	}
	if _, err := ws.Update([]byte("gone"), setTo(record.Record{})); err != nil {
		t.Fatal(err)
	}
	if r, ok, err := ws.Get([]byte("k")); err != nil || !ok || string(r.Str.Siblings()[0].Data) != "new" {
		t.Fatalf("the set's Get(k) = %v, %v, %v; want its own write", r, ok, err)
	}
	if _, ok, err := ws.Get([]byte("gone")); err != nil || ok {
		t.Fatalf("the set's Get(gone) = %v, %v; want none", ok, err)
	}
	done := make(chan record.Record)
	go func() {
		r, _, err := s.TryGet([]byte("k"))
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	select {
	case r := <-done:
		if string(r.Str.Siblings()[0].Data) != "old" {
			t.Fatalf("TryGet before the commit = %v, want the committed record", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("TryGet waited for the key lock the set holds")
	}
	if err := ws.Commit(true); err != nil {
		t.Fatal(err)
	}
	if r, _ := mustGet(t, s, "k"); string(r.Str.Siblings()[0].Data) != "new" {
		t.Fatalf("Get after the commit = %v", r)
	}
	if enc, ok := cachedRecord(t, s, "k"); !ok || !bytes.Equal(enc, rec(val("new", 0)).AppendBinary(nil)) {
		t.Fatalf("cache after the commit = %x, %v", enc, ok)
	}
}

// TestWriteSetWithDrops runs write sets (which hold stripes between their
// Updates and their Commit, and never wait) against partition drops, FLUSHALL
// and plain Updates, with the Merkle trees as observer: no deadlock, and the
// counts, memory sums and trees exact afterwards. Run it with -race.
func TestWriteSetWithDrops(t *testing.T) {
	trees := tictac.NewTrees(8)
	s := openMem(t, Config{Partitions: 8, Observer: trees})
	const rounds = 300
	var wg sync.WaitGroup
	var blocked, staged atomic.Int64
	errc := make(chan error, 4)
	for w := range 2 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			ws := s.NewWriteSet()
			for range rounds {
				for range 1 + rng.IntN(16) {
					op := randomOp(rng, time.Now().UnixMilli())
					_, err := ws.Update([]byte(op.key), op.fn)
					switch {
					case errors.Is(err, ErrWouldBlock):
						blocked.Add(1)
					case err == nil || errors.Is(err, errOp):
						staged.Add(1)
					default:
						errc <- err
						return
					}
				}
				if err := ws.Commit(rng.IntN(2) == 0); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(9, 9))
		for i := range rounds / 3 {
			var err error
			if i%10 == 9 {
				err = s.DropAll()
			} else {
				err = s.DropPartition(rng.IntN(8))
			}
			if err != nil {
				errc <- err
				return
			}
		}
	})
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(8, 8))
		for range rounds {
			op := randomOp(rng, time.Now().UnixMilli())
			if _, err := s.Update([]byte(op.key), op.fn); err != nil && !errors.Is(err, errOp) {
				errc <- err
				return
			}
		}
	})
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	t.Logf("%d writes staged, %d would-blocks", staged.Load(), blocked.Load())
	checkMemory(t, s, "after the race")
	if got, want := s.Count(), recountKeys(t, s); got != want {
		t.Fatalf("Count %d, a recount gives %d", got, want)
	}
	fresh := tictac.NewTrees(8)
	if err := fresh.Rebuild(s); err != nil {
		t.Fatal(err)
	}
	for p := range 8 {
		r1, k1, _ := trees.Root(p)
		r2, k2, _ := fresh.Root(p)
		if r1 != r2 || k1 != k2 {
			t.Fatalf("partition %d: incremental root %x/%d, rebuilt %x/%d", p, r1, k1, r2, k2)
		}
	}
	checkUnlocked(t, s)
}

// checkUnlocked fails t if any key lock stripe is held.
func checkUnlocked(t testing.TB, s *Store) {
	t.Helper()
	for i := range s.locks {
		if !s.locks[i].TryLock() {
			t.Fatalf("stripe %d still held", i)
		}
		s.locks[i].Unlock()
	}
}

// TestWriteSetFailedCommit: a commit that fails (the disk fails under the WAL)
// fails the set's every write: Commit returns the engine failure, no lock stays
// held, and the store fails as for any write. A set committed after Close gets
// ErrClosed and releases its locks too.
func TestWriteSetFailedCommit(t *testing.T) {
	t.Run("engine", func(t *testing.T) {
		var failures atomic.Int64
		fs := &failingFS{FS: vfs.Default, write: true}
		s := openFailing(t, Config{Sync: SyncAlways}, fs, &failures)
		put(t, s, "k", rec(val("kept", 0)))
		ws := s.NewWriteSet()
		for _, k := range []string{"k", "j", "i"} {
			if _, err := ws.Update([]byte(k), setTo(rec(val("lost", 0)))); err != nil {
				t.Fatal(err)
			}
		}
		fs.armed.Store(true)
		if err := ws.Commit(true); !errors.Is(err, ErrEngineFailed) || !strings.Contains(err.Error(), syscall.ENOSPC.Error()) {
			t.Fatalf("Commit on a failed disk: %v, want ErrEngineFailed for ENOSPC", err)
		}
		if ws.Len() != 0 || len(ws.held) != 0 {
			t.Fatal("the set is not empty after its commit failed")
		}
		checkUnlocked(t, s)
		if _, err := ws.Update([]byte("k"), setTo(rec(val("later", 0)))); !errors.Is(err, ErrEngineFailed) {
			t.Fatalf("Update on the failed store: %v", err)
		}
		checkFailed(t, s, &failures)
	})
	t.Run("closed", func(t *testing.T) {
		s, err := Open(Config{InMemory: true, Partitions: 8, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		ws := s.NewWriteSet()
		if _, err := ws.Update([]byte("k"), setTo(rec(val("v", 0)))); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := ws.Commit(true); !errors.Is(err, ErrClosed) {
			t.Fatalf("Commit after Close: %v, want ErrClosed", err)
		}
		checkUnlocked(t, s)
	})
}
