package record

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/dynakv/dynakv/crdt"
)

// applyDelta is storage's part of a delta in the model: ApplyDelta, the clears
// (swept at once), then each element's work against the collection's context.
func (r *replica) applyDelta(t testing.TB, d Delta) {
	t.Helper()
	rec, clears, work, err := ApplyDelta(r.rec, d)
	if err != nil {
		t.Fatal(err)
	}
	r.rec = rec
	r.applyClears(clears)
	for _, w := range work {
		f, ctx := w.Apply(r.elems[w.Type][string(w.Elem)], r.layer(w.Type).Coll.Ctx)
		if r.elems[w.Type] == nil {
			r.elems[w.Type] = map[string]crdt.Field{}
		}
		if len(f) == 0 {
			delete(r.elems[w.Type], string(w.Elem))
		} else {
			r.elems[w.Type][string(w.Elem)] = f
		}
		r.derive(w.Type, ctx)
	}
}

// opDelta runs one random op at r and returns the delta it ships: DeltaOf the
// record it left and its clears, plus its element delta. Merges and reaps ship
// none (ok false): a read merge or repair is a different path, a reap is local.
func opDelta(t testing.TB, rng *rand.Rand, r *replica, others []*replica, ts int64) (d Delta, op string, ok bool) {
	r.logging, r.clears, r.elemLog = true, nil, nil
	op = randomOp(t, rng, r, others, ts)
	d = DeltaOf(r.rec, r.clears)
	d.Elems = r.elemLog
	r.logging, r.clears, r.elemLog = false, nil, nil
	return d, op, op != "merge" && op != "reap"
}

// deltaHistory runs a random history at n replicas and returns snapshots of
// replicas along it and the deltas its writes shipped. Each write's delta,
// applied to the replica's state before the write, must give its state after.
func deltaHistory(t *testing.T, seed uint64, n, steps int) ([]*replica, []Delta) {
	rng := rand.New(rand.NewPCG(seed, 24))
	reps := make([]*replica, n)
	for i := range reps {
		reps[i] = newReplica(i)
	}
	var snaps []*replica
	var deltas []Delta
	ts := now
	for step := range steps {
		ts += rng.Int64N(40)
		i := rng.IntN(n)
		others := slices.Concat(reps[:i], reps[i+1:])
		pre := reps[i].clone()
		d, op, ok := opDelta(t, rng, reps[i], others, ts+int64(i*7)-10)
		snaps = append(snaps, reps[i].clone())
		if !ok {
			continue
		}
		enc := d.AppendBinary(nil)
		if dec, err := DecodeDelta(enc); err != nil || !dec.Equal(d) {
			t.Fatalf("seed %d step %d (%s): delta does not round-trip: %v", seed, step, op, err)
		}
		deltas = append(deltas, d)
		pre.applyDelta(t, d)
		if !equalState(pre, reps[i]) {
			t.Fatalf("seed %d step %d (%s): the write's delta on the state before it:\n%+v\nwant\n%+v", seed, step, op, pre.rec, reps[i].rec)
		}
	}
	return snaps, deltas
}

// TestDeltaLaws: on deltas of random writes (SET, DPUT with foreign contexts,
// INCR, counter SET, PFADD, SADD, SREM, HSET, EXPIRE, PERSIST, with reaps and
// merges between them) at 3 to 5 actors, applied to random replica states of the
// same history: applying a delta twice changes nothing; applying a then b equals
// applying JoinDeltas(a, b), records and elements; JoinDeltas is commutative,
// associative and idempotent, and its result round-trips through the codec.
func TestDeltaLaws(t *testing.T) {
	for seed := range uint64(10) {
		snaps, deltas := deltaHistory(t, seed, 3+int(seed%3), 250)
		rng := rand.New(rand.NewPCG(seed, 2))
		for i := range 200 {
			base := snaps[rng.IntN(len(snaps))]
			a, b, c := deltas[rng.IntN(len(deltas))], deltas[rng.IntN(len(deltas))], deltas[rng.IntN(len(deltas))]

			once := base.clone()
			once.applyDelta(t, a)
			twice := once.clone()
			twice.applyDelta(t, a)
			if !equalState(once, twice) {
				t.Fatalf("seed %d case %d: applying a delta twice:\n%+v\nonce:\n%+v", seed, i, twice.rec, once.rec)
			}

			seq := once.clone()
			seq.applyDelta(t, b)
			ab := mustJoin(t, a, b)
			joined := base.clone()
			joined.applyDelta(t, ab)
			if !equalState(seq, joined) {
				t.Fatalf("seed %d case %d: a then b:\n%+v %v\njoined:\n%+v %v", seed, i, seq.rec, seq.elems, joined.rec, joined.elems)
			}

			if ba := mustJoin(t, b, a); !ab.Equal(ba) {
				t.Fatalf("seed %d case %d: JoinDeltas not commutative:\n%+v\n%+v", seed, i, ab, ba)
			}
			if aa := mustJoin(t, a, a); !aa.Equal(a) {
				t.Fatalf("seed %d case %d: JoinDeltas not idempotent:\n%+v\n%+v", seed, i, aa, a)
			}
			if l, r := mustJoin(t, ab, c), mustJoin(t, a, mustJoin(t, b, c)); !l.Equal(r) {
				t.Fatalf("seed %d case %d: JoinDeltas not associative:\n%+v\n%+v", seed, i, l, r)
			}
			if dec, err := DecodeDelta(ab.AppendBinary(nil)); err != nil || !dec.Equal(ab) {
				t.Fatalf("seed %d case %d: joined delta does not round-trip: %v", seed, i, err)
			}
		}
	}
}
