package memstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/internal/memstore"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/repair"
	"github.com/dynakv/dynakv/ring"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/tictac"
	"github.com/dynakv/dynakv/vclock"
)

// The interface checks live here: coordinator's own tests import memstore, so
// memstore.go cannot import coordinator.
var (
	_ coordinator.Store      = (*memstore.Store)(nil)
	_ repair.HintStore       = (*memstore.Store)(nil)
	_ repair.AAEStore        = (*memstore.Store)(nil)
	_ tictac.PartitionLocker = (*memstore.Store)(nil)
	_ coordinator.Store      = (*storage.Store)(nil)
	_ repair.HintStore       = (*storage.Store)(nil)
	_ repair.AAEStore        = (*storage.Store)(nil)
	_ tictac.PartitionLocker = (*storage.Store)(nil)
)

// store is what both implementations offer and the test drives.
type store interface {
	coordinator.Store
	repair.HintStore
	repair.AAEStore
	tictac.PartitionLocker
	Graves(before int64, limit int) ([]storage.Grave, error)
	DropPartition(p int) error
	DropHints(owner string) error
}

func enc(r record.Record) string { return string(r.AppendBinary(nil)) }

// visit is one callback of a scan.
type visit struct {
	h   uint64
	key string
	rec string
}

// TestAgreesWithStorage runs the same random operations on a memstore and on a ref
// (in-memory Pebble) storage.Store and compares every result: the fast thing
// checked against the ref thing. Each store feeds a tictac.Trees as its observer,
// and the trees must agree after every step (roots, record counts and change
// versions: handoff drops a partition only while its version stands still), and
// equal trees rebuilt from scratch at the end.
func TestAgreesWithStorage(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			const q = 8
			var clock atomic.Int64 // unix ms, what the reference store's reaper sees
			refTrees, fakeTrees := tictac.NewTrees(q), tictac.NewTrees(q)
			ref, err := storage.Open(storage.Config{InMemory: true, Partitions: q,
				Logger: slog.New(slog.DiscardHandler), ReapInterval: time.Hour, Observer: refTrees,
				Now: func() time.Time { return time.UnixMilli(clock.Load()) }})
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Close()
			fake := memstore.New(q)
			fake.SetObserver(fakeTrees)
			reap := func(now int64) (int, int, error, error) {
				clock.Store(now)
				a, errA := fake.Reap(now)
				b, errB := ref.Reap(1 << 30)
				return a, b, errA, errB
			}
			agree(t, rand.New(rand.NewPCG(seed, 7)), q, fake, ref, reap, fakeTrees, refTrees)
		})
	}
}

// reapFunc runs both stores' reapers at now and returns how many records each
// rewrote.
type reapFunc func(now int64) (fakeN, refN int, fakeErr, refErr error)

func agree(t *testing.T, rng *rand.Rand, q int, fake, ref store, reap reapFunc, fakeTrees, refTrees *tictac.Trees) {
	t.Helper()
	keys := make([][]byte, 24)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key-%d", i)
	}
	owners := []string{"a", "ab", "b", "node-3"}
	actors := []string{"n1:1", "n2:1", "n3:2"}
	errBoom := errors.New("boom")
	now := int64(1_700_000_000_000)
	// dangling is set while storage's grave index may hold entries of dropped
	// records (a DropPartition leaves them; DropAll and a walk over every grave
	// clean them), whose pages may then stop short of their limit.
	dangling := false
	// mutate returns an UpdateFunc chosen by r (drawn once, so both stores get the
	// same decision).
	mutate := func() storage.UpdateFunc {
		choice := rng.IntN(10)
		actor := actors[rng.IntN(len(actors))]
		data := fmt.Appendf(nil, "v%d", rng.IntN(100))
		tomb := rng.IntN(4) == 0
		blind := rng.IntN(3) == 0
		var expiry int64
		if !tomb && rng.IntN(3) == 0 {
			expiry = now + 1 + rng.Int64N(40)
		}
		now++
		return func(cur record.Record, found bool) (record.Record, error) {
			switch {
			case choice == 0:
				return record.Record{}, storage.ErrNoChange
			case choice == 1:
				return record.Record{}, errBoom
			case choice == 2:
				return record.Record{}, nil // delete
			}
			ctx := cur.Str.Join()
			if blind {
				ctx = nil
			}
			v := vclock.Value{Data: data, Timestamp: now, Tombstone: tomb, Expiry: expiry}
			if tomb {
				v.Data = nil
			}
			return record.String(vclock.Update(cur.Str, ctx, actor, v, now, 1)), nil
		}
	}
	for step := range 600 {
		key := keys[rng.IntN(len(keys))]
		owner := owners[rng.IntN(len(owners))]
		op := rng.IntN(22)
		where := func() string { return fmt.Sprintf("step %d op %d key %q owner %q", step, op, key, owner) }
		switch op {
		case 0, 1, 2:
			fn := mutate()
			a, errA := fake.Update(key, fn)
			b, errB := ref.Update(key, fn)
			if enc(a) != enc(b) || !errors.Is(errA, errB) && errA != errB {
				t.Fatalf("%s: Update: memstore %v %v, storage %v %v", where(), a, errA, b, errB)
			}
		case 3:
			fn := mutate()
			a, errA := fake.UpdateNoSync(key, fn)
			b, errB := ref.UpdateNoSync(key, fn)
			if enc(a) != enc(b) || (errA == nil) != (errB == nil) {
				t.Fatalf("%s: UpdateNoSync: memstore %v %v, storage %v %v", where(), a, errA, b, errB)
			}
		case 13:
			// A batch of writes, keys may repeat: the same outcomes as the
			// writes one by one, and the same records after.
			n := 1 + rng.IntN(6)
			bk, fns := make([][]byte, n), make([]storage.UpdateFunc, n)
			for i := range n {
				bk[i], fns[i] = keys[rng.IntN(len(keys))], mutate()
			}
			errsA, errsB := fake.UpdateBatch(bk, fns), ref.UpdateBatch(bk, fns)
			for i := range n {
				if (errsA[i] == nil) != (errsB[i] == nil) {
					t.Fatalf("%s: UpdateBatch write %d of %q: memstore %v, storage %v", where(), i, bk, errsA[i], errsB[i])
				}
			}
			for _, k := range bk {
				a, _, _ := fake.Get(k)
				b, _, _ := ref.Get(k)
				if enc(a) != enc(b) {
					t.Fatalf("%s: after UpdateBatch(%q), %q: memstore %v, storage %v", where(), bk, k, a, b)
				}
			}
		case 4, 5:
			fn := mutate()
			a, errA := fake.UpdateHint(owner, key, fn)
			b, errB := ref.UpdateHint(owner, key, fn)
			if enc(a) != enc(b) || (errA == nil) != (errB == nil) {
				t.Fatalf("%s: UpdateHint: memstore %v %v, storage %v %v", where(), a, errA, b, errB)
			}
		case 6:
			// Delete with the current hint, or with a stale one.
			cur, _, _ := ref.GetHint(owner, key)
			if rng.IntN(3) == 0 {
				cur = record.String(vclock.Update(cur.Str, nil, "x:1", vclock.Value{Data: []byte("stale")}, now, 1))
			}
			a, errA := fake.DeleteHint(owner, key, cur)
			b, errB := ref.DeleteHint(owner, key, cur)
			if a != b || errA != nil || errB != nil {
				t.Fatalf("%s: DeleteHint: memstore %v %v, storage %v %v", where(), a, errA, b, errB)
			}
		case 7:
			if rng.IntN(20) == 0 {
				p := rng.IntN(q)
				if errA, errB := fake.DropPartition(p), ref.DropPartition(p); errA != nil || errB != nil {
					t.Fatal(errA, errB)
				}
				dangling = true
			}
		case 8:
			if rng.IntN(10) == 0 {
				if errA, errB := fake.DropHints(owner), ref.DropHints(owner); errA != nil || errB != nil {
					t.Fatal(errA, errB)
				}
			}
		case 9:
			if rng.IntN(40) == 0 {
				if errA, errB := fake.DropAll(), ref.DropAll(); errA != nil || errB != nil {
					t.Fatal(errA, errB)
				}
				dangling = false
			}
		case 10:
			p := rng.IntN(q)
			from := rng.Uint64() & ^uint64(0xff) // keep some hashes above it
			if rng.IntN(2) == 0 {
				from = 0
			}
			limit := rng.IntN(5) + 1
			scan := func(s store) []visit {
				var out []visit
				if err := s.Scan(p, from, func(h uint64, key []byte, rec record.Record) bool {
					out = append(out, visit{h, string(key), enc(rec)})
					return len(out) < limit
				}); err != nil {
					t.Fatal(err)
				}
				return out
			}
			if a, b := scan(fake), scan(ref); !slices.Equal(a, b) {
				t.Fatalf("%s: Scan(%d, %x): memstore %v, storage %v", where(), p, from, a, b)
			}
		case 11:
			from := []byte(nil)
			if rng.IntN(2) == 0 {
				from = keys[rng.IntN(len(keys))]
			}
			scan := func(s store) []visit {
				var out []visit
				if err := s.ScanHints(owner, from, func(key []byte, rec record.Record) bool {
					out = append(out, visit{0, string(key), enc(rec)})
					return true
				}); err != nil {
					t.Fatal(err)
				}
				return out
			}
			if a, b := scan(fake), scan(ref); !slices.Equal(a, b) {
				t.Fatalf("%s: ScanHints(%q): memstore %v, storage %v", where(), from, a, b)
			}
		case 14:
			// The reaper, some time later: expired values become tombstones.
			now += rng.Int64N(20)
			a, b, errA, errB := reap(now)
			if a != b || errA != nil || errB != nil {
				t.Fatalf("%s: Reap at %d: memstore %d %v, storage %d %v", where(), now, a, errA, b, errB)
			}
			// Checked against the rule itself, not only the other store: after
			// a reap no value expired by then keeps its data, whatever its
			// siblings (a live one without expiry included), and a key counts
			// exactly when its plain-GET winner is not a tombstone.
			var live int64
			for _, k := range keys {
				r, _, _ := fake.Get(k)
				for v := range r.Str.Values() {
					if v.Expiring() && v.Expired(now) {
						t.Fatalf("%s: after Reap at %d, %q keeps the expired value %q: %v", where(), now, k, v.Data, r.Str.Siblings())
					}
				}
				if w, ok := vclock.Winner(r.Str.Siblings()); ok && !w.Tombstone {
					live++
				}
			}
			if fake.Count() != live {
				t.Fatalf("%s: after Reap at %d, Count %d, but %d keys' winners are values", where(), now, fake.Count(), live)
			}
		case 15:
			a, errA := fake.GetEncoded(key)
			b, errB := ref.GetEncoded(key)
			if !bytes.Equal(a, b) || errA != nil || errB != nil {
				t.Fatalf("%s: GetEncoded: memstore %x %v, storage %x %v", where(), a, errA, b, errB)
			}
		case 16:
			p := rng.IntN(q)
			limit := rng.IntN(5) + 1
			scan := func(s store) []visit {
				var out []visit
				if err := s.ScanEncoded(p, 0, func(h uint64, key, enc []byte) bool {
					out = append(out, visit{h, string(key), string(enc)})
					return len(out) < limit
				}); err != nil {
					t.Fatal(err)
				}
				return out
			}
			if a, b := scan(fake), scan(ref); !slices.Equal(a, b) {
				t.Fatalf("%s: ScanEncoded(%d): memstore %v, storage %v", where(), p, a, b)
			}
		case 17:
			// The tombstone purge's listing: graves that died before a time. With
			// no limit in the way both list every one; with a limit storage may
			// list fewer (index entries of changed or dropped records it meets
			// count toward the limit, and it cleans them as it goes), but never
			// others: what it lists starts memstore's list.
			before, limit := now-20+rng.Int64N(30), 1+rng.IntN(6)
			if rng.IntN(2) == 0 {
				limit = 1 << 20
			}
			a, errA := fake.Graves(before, limit)
			b, errB := ref.Graves(before, limit)
			same := func(x, y storage.Grave) bool {
				return bytes.Equal(x.Key, y.Key) && x.Written == y.Written && bytes.Equal(x.Record, y.Record)
			}
			if errA != nil || errB != nil || len(a) > limit || len(b) > len(a) || !slices.EqualFunc(a[:len(b)], b, same) ||
				limit == 1<<20 && len(a) != len(b) {
				t.Fatalf("%s: Graves(%d, %d): memstore %v %v, storage %v %v", where(), before, limit, a, errA, b, errB)
			}
		case 18:
			// Compare-and-delete with the current record, or a stale one.
			enc, _ := ref.GetEncoded(key)
			if rng.IntN(3) == 0 {
				enc, _ = ref.GetEncoded(keys[rng.IntN(len(keys))])
			}
			a, errA := fake.DeleteIf(key, enc)
			b, errB := ref.DeleteIf(key, enc)
			if a != b || errA != nil || errB != nil {
				t.Fatalf("%s: DeleteIf: memstore %v %v, storage %v %v", where(), a, errA, b, errB)
			}
		case 19:
			p := rng.IntN(q)
			if rng.IntN(2) == 0 {
				// The drop handoff makes: only if the partition's tree did not
				// change, which the condition reads with the writers held out.
				hold := rng.IntN(3) == 0
				a, errA := fake.DropPartitionIf(p, func() bool { return hold })
				b, errB := ref.DropPartitionIf(p, func() bool { return hold })
				if a != b || a != hold || errA != nil || errB != nil {
					t.Fatalf("%s: DropPartitionIf(%d, %v): memstore %v %v, storage %v %v", where(), p, hold, a, errA, b, errB)
				}
				dangling = dangling || a
				break
			}
			// A scan with the partition's writers held out, and the function's error.
			var seen [2][]visit
			for i, s := range []store{fake, ref} {
				err := s.ExclusivePartition(p, func() error {
					return s.ScanEncoded(p, 0, func(h uint64, key, enc []byte) bool {
						seen[i] = append(seen[i], visit{h, string(key), string(enc)})
						return true
					})
				})
				if err != nil {
					t.Fatal(err)
				}
				if err := s.ExclusivePartition(p, func() error { return errBoom }); !errors.Is(err, errBoom) {
					t.Fatalf("%s: ExclusivePartition returned %v, want the function's error", where(), err)
				}
			}
			if !slices.Equal(seen[0], seen[1]) {
				t.Fatalf("%s: ExclusivePartition(%d) scan: memstore %v, storage %v", where(), p, seen[0], seen[1])
			}
		case 20, 21:
			// The tombstone purge's walk: pages of graves that died before a
			// time, in the partitions a node decides, with cursors. Both stores
			// go on from storage's cursor, which memstore takes as its own.
			// Without dangling index entries the pages and cursors are equal;
			// with them storage's page may stop short (a dropped record's entry
			// counts toward the limit and is cleaned), so it starts memstore's,
			// and its walk goes on at least as long as memstore's (it may visit
			// dangling entries after the last grave).
			before, limit := now-20+rng.Int64N(30), 1+rng.IntN(6)
			if rng.IntN(4) == 0 {
				limit = 1 << 20
			}
			var keep func(p int) bool
			if rng.IntN(2) == 0 {
				mask := rng.IntN(1 << q)
				keep = func(p int) bool { return mask&(1<<p) != 0 }
			}
			same := func(x, y storage.Grave) bool {
				return bytes.Equal(x.Key, y.Key) && x.Written == y.Written && bytes.Equal(x.Record, y.Record)
			}
			var cursor []byte
			var walkA, walkB []storage.Grave
			for page := 0; ; page++ {
				a, nextA, errA := fake.GravesFrom(cursor, before, limit, keep)
				b, nextB, errB := ref.GravesFrom(cursor, before, limit, keep)
				if errA != nil || errB != nil || len(a) > limit || len(b) > len(a) || !slices.EqualFunc(a[:len(b)], b, same) ||
					nextA != nil && nextB == nil || !dangling && (len(a) != len(b) || !bytes.Equal(nextA, nextB)) {
					t.Fatalf("%s: GravesFrom(%x, %d, %d) page %d (dangling entries: %v): memstore %v next %x %v, storage %v next %x %v",
						where(), cursor, before, limit, page, dangling, a, nextA, errA, b, nextB, errB)
				}
				for _, g := range b {
					if keep != nil && !keep(ring.PartitionOf(g.Key, q)) {
						t.Fatalf("%s: GravesFrom returned %q, whose partition keep refuses", where(), g.Key)
					}
				}
				walkA, walkB = append(walkA, a...), append(walkB, b...)
				if nextB == nil {
					break
				}
				cursor = nextB
			}
			// The whole walk lists every grave before before that keep accepts,
			// each once, on both: what Graves lists, filtered by keep.
			all, err := fake.Graves(before, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			all = slices.DeleteFunc(all, func(g storage.Grave) bool { return keep != nil && !keep(ring.PartitionOf(g.Key, q)) })
			if !slices.EqualFunc(walkB, all, same) || !dangling && !slices.EqualFunc(walkA, all, same) {
				t.Fatalf("%s: a walk of GravesFrom(%d, %d): storage %v, memstore %v, want %v", where(), before, limit, walkB, walkA, all)
			}
			// A limit of 0 lists nothing and keeps the cursor.
			if gs, next, err := fake.GravesFrom(cursor, before, 0, keep); len(gs) != 0 || !bytes.Equal(next, cursor) || err != nil {
				t.Fatalf("%s: GravesFrom(limit 0) = %v, %x, %v", where(), gs, next, err)
			}
			// A walk over every grave (none died after now) reads every index
			// entry, cleaning the dangling ones.
			if keep == nil && before > now {
				dangling = false
			}
		case 12:
			a, okA, errA := fake.Get(key)
			b, okB, errB := ref.Get(key)
			if enc(a) != enc(b) || okA != okB || errA != nil || errB != nil {
				t.Fatalf("%s: Get: memstore %v %v %v, storage %v %v %v", where(), a, okA, errA, b, okB, errB)
			}
			a, okA, errA = fake.GetHint(owner, key)
			b, okB, errB = ref.GetHint(owner, key)
			if enc(a) != enc(b) || okA != okB || errA != nil || errB != nil {
				t.Fatalf("%s: GetHint: memstore %v %v %v, storage %v %v %v", where(), a, okA, errA, b, okB, errB)
			}
		}
		// The counters and the owner list after every step.
		if a, b := fake.Count(), ref.Count(); a != b {
			t.Fatalf("%s: Count: memstore %d, storage %d", where(), a, b)
		}
		for p := range q {
			if a, b := fake.PartitionCount(p), ref.PartitionCount(p); a != b {
				t.Fatalf("%s: PartitionCount(%d): memstore %d, storage %d", where(), p, a, b)
			}
		}
		for p := range q {
			if a, b := fake.Epoch(p), ref.Epoch(p); a != b {
				t.Fatalf("%s: Epoch(%d): memstore %d, storage %d", where(), p, a, b)
			}
		}
		if a, b := fake.HintCount(), ref.HintCount(); a != b {
			t.Fatalf("%s: HintCount: memstore %d, storage %d", where(), a, b)
		}
		for p := range q {
			ra, ka, va := fakeTrees.Root(p)
			rb, kb, vb := refTrees.Root(p)
			if ra != rb || ka != kb || va != vb {
				t.Fatalf("%s: the observers' trees of partition %d: memstore root %x, %d keys, version %d; storage %x, %d, %d",
					where(), p, ra, ka, va, rb, kb, vb)
			}
		}
		oa, errA := fake.HintOwners()
		ob, errB := ref.HintOwners()
		if !slices.Equal(oa, ob) || errA != nil || errB != nil {
			t.Fatalf("%s: HintOwners: memstore %v %v, storage %v %v", where(), oa, errA, ob, errB)
		}
	}
	// Finally every record, both ways, and trees rebuilt from each store equal the
	// ones their observers kept.
	for _, key := range keys {
		a, _, _ := fake.Get(key)
		b, _, _ := ref.Get(key)
		if !bytes.Equal(a.AppendBinary(nil), b.AppendBinary(nil)) {
			t.Fatalf("final %q: memstore %v, storage %v", key, a, b)
		}
	}
	for _, x := range []struct {
		name  string
		s     store
		trees *tictac.Trees
	}{{"memstore", fake, fakeTrees}, {"storage", ref, refTrees}} {
		fresh := tictac.NewTrees(q)
		if err := fresh.Rebuild(x.s); err != nil {
			t.Fatal(err)
		}
		for p := range q {
			ra, ka, _ := x.trees.Root(p)
			rb, kb, _ := fresh.Root(p)
			if ra != rb || ka != kb {
				t.Fatalf("%s: partition %d: the observer's tree has root %x, %d keys; a rebuild %x, %d", x.name, p, ra, ka, rb, kb)
			}
		}
	}
}

func TestOwnerAndClose(t *testing.T) {
	s := memstore.New(4)
	for _, owner := range []string{"", string(make([]byte, 256))} {
		if _, err := s.UpdateHint(owner, []byte("k"), nil); !errors.Is(err, storage.ErrHintOwner) {
			t.Errorf("UpdateHint(owner of %d bytes): %v, want ErrHintOwner", len(owner), err)
		}
	}
	if _, err := s.Update([]byte("k"), func(record.Record, bool) (record.Record, error) {
		return record.String(vclock.Update(vclock.Set{}, nil, "a", vclock.Value{Data: []byte("v")}, 1, 1)), nil
	}); err != nil {
		t.Fatal(err)
	}
	// A scan callback may call the store.
	if err := s.Scan(s.PartitionOf([]byte("k")), 0, func(_ uint64, key []byte, _ record.Record) bool {
		_, err := s.Update(key, func(record.Record, bool) (record.Record, error) { return record.Record{}, nil })
		return err == nil
	}); err != nil {
		t.Fatal(err)
	}
	if s.Count() != 0 {
		t.Fatalf("Count after a delete inside Scan: %d", s.Count())
	}
	s.Close()
	s.Close()
	if _, _, err := s.Get([]byte("k")); !errors.Is(err, memstore.ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
}
