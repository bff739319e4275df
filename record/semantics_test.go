package record

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/dynakv/dynakv/crdt"
	"github.com/dynakv/dynakv/vclock"
)

func liveTypes(v View) []Type {
	var ts []Type
	for _, l := range v.Live {
		ts = append(ts, l.Type)
	}
	return ts
}

// TestTypeConflict is 1.5's example: A and B are partitioned; through A, SET k
// "s" at t1; through B, SADD k m at t2. After healing every node resolves the
// greater timestamp's layer, DGET lists both (winner first), and a SET through
// either node then leaves only the string.
func TestTypeConflict(t *testing.T) {
	cases := []struct {
		name   string
		t1, t2 int64
		want   []Type // the View after healing, winner first
	}{
		{"set later", now, now + 5, []Type{Set, Plain}},
		{"string later", now + 5, now, []Type{Plain, Set}},
		{"same time, dots decide", now, now, nil}, // computed below: by dot, then type
	}
	for _, c := range cases {
		for _, via := range []int{0, 1} {
			t.Run(fmt.Sprintf("%s/SET via %d", c.name, via), func(t *testing.T) {
				a, b := newReplica(0), newReplica(1)
				a.setString(a.rec.Context(), "s", c.t1)
				b.sadd("m", c.t2)
				a.mergeFrom(t, b)
				b.mergeFrom(t, a)
				if !equalState(a, b) {
					t.Fatalf("healed replicas differ:\n%+v\n%+v", a.rec, b.rec)
				}
				at := max(c.t1, c.t2) + 1
				v := Resolve(a.rec, at)
				want := c.want
				if want == nil {
					// Equal timestamps: the greater dot wins; the string's is A's
					// floor-started dot, the set's B's, and B's floor is higher.
					want = []Type{Set, Plain}
				}
				if got := liveTypes(v); !slices.Equal(got, want) {
					t.Fatalf("live layers %v, want %v", got, want)
				}
				if typ, _ := v.Type(); typ == Set && v.Has(Plain) && string(v.Str.Data) != "s" {
					t.Fatalf("the losing string layer shows %q, want s", v.Str.Data)
				}
				if !slices.Equal(liveTypes(Resolve(b.rec, at)), want) {
					t.Fatal("the other node resolves differently")
				}
				if !Counts(a.rec) || GraveTime(a.rec) != 0 {
					t.Fatal("a live conflicted key does not count, or is a grave")
				}
				// SET k x through one node supersedes both layers it observed.
				w := []*replica{a, b}[via]
				w.setString(w.rec.Context(), "x", at+1)
				for _, r := range []*replica{a, b} {
					r.mergeFrom(t, w)
				}
				for i, r := range []*replica{a, b} {
					v := Resolve(r.rec, at+2)
					if got := liveTypes(v); !slices.Equal(got, []Type{Plain}) || string(v.Str.Data) != "x" {
						t.Fatalf("replica %d after SET: live %v, string %q; want only the string x", i, got, v.Str.Data)
					}
					if l := r.layer(Set); l.Coll.Len != 0 || len(r.elems[Set]) != 0 || l.Dead != at+1 {
						t.Fatalf("replica %d: the set layer kept %d elements (Dead %d)", i, len(r.elems[Set]), l.Dead)
					}
				}
			})
		}
	}
}

// TestConcurrentAddSurvivesString: a SET supersedes only what it observed; an
// SADD concurrent with it survives, and resolves against the SET by timestamp.
func TestConcurrentAddSurvivesString(t *testing.T) {
	a, b := newReplica(0), newReplica(1)
	a.sadd("x", now)
	b.mergeFrom(t, a)
	a.setString(a.rec.Context(), "s", now+10) // observed x
	b.sadd("y", now+5)                        // concurrent
	a.mergeFrom(t, b)
	b.mergeFrom(t, a)
	if !equalState(a, b) {
		t.Fatal("replicas differ after healing")
	}
	if got := slices.Sorted(maps.Keys(a.elems[Set])); !slices.Equal(got, []string{"y"}) {
		t.Fatalf("set members %v, want [y]", got)
	}
	if got := liveTypes(Resolve(a.rec, now+20)); !slices.Equal(got, []Type{Plain, Set}) {
		t.Fatalf("live %v, want the later string first, then the surviving set", got)
	}
}

// TestStringOverCounter: a SET over a counter with increments ends it with a
// removal marker, so neither the increments it observed nor a later INCR by the
// same actor bring the old total back; an INCR it did not observe counts only
// itself.
func TestStringOverCounter(t *testing.T) {
	a, b := newReplica(0), newReplica(1)
	b.incr(10, now)
	a.mergeFrom(t, b)
	a.setString(a.rec.Context(), "s", now+10) // observed b's 10
	b.incr(1, now+5)                          // concurrent: b's total is now 11
	a.mergeFrom(t, b)
	b.mergeFrom(t, a)
	if !equalState(a, b) {
		t.Fatal("replicas differ after healing")
	}
	c := crdt.CounterOf(a.layer(Counter).Val)
	if got := string(c.AppendText(nil)); got != "1" {
		t.Fatalf("counter after SET ∥ INCR = %s, want 1 (only the unobserved increment)", got)
	}
	if got := liveTypes(Resolve(a.rec, now+20)); !slices.Equal(got, []Type{Plain, Counter}) {
		t.Fatalf("live %v, want [string counter]", got)
	}
	// The next SET observed everything: the counter is a grave, the key a string.
	a.setString(a.rec.Context(), "t", now+30)
	if crdt.CounterLive(a.layer(Counter).Val) || !slices.Equal(liveTypes(Resolve(a.rec, now+31)), []Type{Plain}) {
		t.Fatal("a SET that observed the counter left it live")
	}
}

// TestSupersedeDiscardsString: a typed write discards the string values it
// observed and keeps one written concurrently.
func TestSupersedeDiscardsString(t *testing.T) {
	a, b := newReplica(0), newReplica(1)
	a.setString(Context{}, "old", now)
	b.mergeFrom(t, a)
	b.sadd("m", now+10)                // observed "old"
	a.setString(Context{}, "new", now) // concurrent, earlier timestamp
	a.mergeFrom(t, b)
	sibs := a.rec.Str.Siblings()
	if len(sibs) != 1 || string(sibs[0].Data) != "new" {
		t.Fatalf("string siblings %+v, want only the concurrent one", sibs)
	}
	if got := liveTypes(Resolve(a.rec, now+20)); !slices.Equal(got, []Type{Set, Plain}) {
		t.Fatalf("live %v, want [set string]", got)
	}
}

// TestExpiryReapsIntoGrave: an expired typed key reads as absent at once, is
// reaped like a DEL (a full clear, Dead = the expiry, TTL entries kept) and is
// then a grave of that time; a write after the expiry starts a new incarnation
// with no TTL.
func TestExpiryReapsIntoGrave(t *testing.T) {
	// A type conflict (an SADD ∥ an INCR) with a TTL: every typed layer expires.
	a, b := newReplica(0), newReplica(1)
	a.sadd("m", now)
	b.incr(3, now)
	a.mergeFrom(t, b)
	a.expire(now+100, now+1)
	if got := ReapTime(a.rec); got != now+100 {
		t.Fatalf("ReapTime %d, want the expiry %d", got, now+100)
	}
	if !Resolve(a.rec, now+99).Has(Set) || !Resolve(a.rec, now+100).Absent() {
		t.Fatal("the key is not live before its expiry, or not absent at it")
	}
	if !Counts(a.rec) || GraveTime(a.rec) != 0 {
		t.Fatal("an unreaped expired key must count and not be a grave")
	}
	if _, _, changed := Reap(a.rec, now+99); changed {
		t.Fatal("Reap before the expiry changed the record")
	}
	rec, clears, changed := Reap(a.rec, now+150)
	if !changed || len(clears) != 1 || clears[0].Type != Set || !clears[0].Full || !clears[0].Ctx.Equal(a.layer(Set).Coll.Ctx) {
		t.Fatalf("Reap: changed %v, clears %+v", changed, clears)
	}
	a.rec = rec
	a.applyClears(clears)
	for _, typ := range []Type{Counter, Set} {
		if l := a.layer(typ); l.Dead != now+100 || len(l.Val) != 0 {
			t.Fatalf("%s layer after reap: Dead %d, Val %v", typ, l.Dead, l.Val)
		}
	}
	if Counts(a.rec) || ReapTime(a.rec) != 0 || GraveTime(a.rec) != now+100 || len(a.rec.TTL) != 1 {
		t.Fatalf("after reap: Counts %v, ReapTime %d, GraveTime %d, TTL %v", Counts(a.rec), ReapTime(a.rec), GraveTime(a.rec), a.rec.TTL)
	}
	if again, _, changed := Reap(a.rec, now+200); changed || !again.Equal(a.rec) {
		t.Fatal("a second reap changed the record")
	}
	// A late copy of the expired incarnation is expired again.
	late := newReplica(2)
	late.sadd("late", now+50)
	late.expire(now+100, now+51)
	a.mergeFrom(t, late)
	if !Resolve(a.rec, now+300).Absent() || ReapTime(a.rec) != now+100 {
		t.Fatal("a late element of the expired incarnation is live, or not due for reaping")
	}
	a.reap(now + 300)
	// A write after the expiry: a new incarnation without a TTL.
	a.sadd("n", now+400)
	if len(a.rec.TTL) != 0 || !Resolve(a.rec, now+1e9).Has(Set) {
		t.Fatalf("new incarnation: TTL %v, live %v", a.rec.TTL, liveTypes(Resolve(a.rec, now+1e9)))
	}
	if got := slices.Sorted(maps.Keys(a.elems[Set])); !slices.Equal(got, []string{"n"}) {
		t.Fatalf("members %v, want [n]", got)
	}
}

// TestReapTimeTable: the typed parts of ReapTime and GraveTime.
func TestReapTimeTable(t *testing.T) {
	d := func(n uint64) crdt.Dot { return crdt.Dot{Actor: "a", Counter: n} }
	ttl := crdt.Field{crdt.TTLEntry(d(1), now+500, now)}
	hll := Layer{Type: HLL, Val: crdt.Field{{Dot: d(2), Kind: crdt.KindHLL, Data: []byte("r")}}}
	tomb := vclock.Update(vclock.Set{}, nil, "b", vclock.Value{Tombstone: true, Timestamp: now + 7}, now, 1)
	expiring := vclock.Update(vclock.Set{}, nil, "b", vclock.Value{Data: []byte("v"), Expiry: now + 200}, now, 1)
	cases := []struct {
		name        string
		rec         Record
		reap, grave int64
		counts      bool
	}{
		{"hll with ttl", Record{Ctx: crdt.ContextOf(d(1), d(2)), TTL: ttl, Layers: []Layer{hll}}, now + 500, 0, true},
		{"string expires first", Record{Str: expiring, Ctx: crdt.ContextOf(d(1), d(2)), TTL: ttl, Layers: []Layer{hll}}, now + 200, 0, true},
		{"empty hll layer is a grave", Record{Ctx: crdt.ContextOf(d(1)), TTL: ttl, Layers: []Layer{{Type: HLL, Dead: now + 3}}}, 0, now + 3, false},
		{"tombstone later than dead", Record{Str: tomb, Ctx: crdt.ContextOf(d(1)), Layers: []Layer{{Type: HLL, Dead: now + 3}}}, 0, now + 7, false},
		{"pending clear is due now", Record{Layers: []Layer{{Type: Set, Coll: &Coll{Ctx: crdt.ContextOf(d(5)), Clear: crdt.ContextOf(d(5))}}}}, 1, 0, false},
		{"element graves only", Record{Layers: []Layer{{Type: Hash, Dead: 9, Coll: &Coll{Ctx: crdt.ContextOf(d(5)), Bytes: 40}}}}, 0, 0, false},
		{"no ttl, live set", Record{Layers: []Layer{{Type: Set, Coll: &Coll{Ctx: crdt.ContextOf(d(5)), Len: 1, Bytes: 40}}}}, 0, 0, true},
		{"persist beats ttl", Record{Ctx: crdt.ContextOf(d(1), d(2), d(3)), TTL: append(slices.Clone(ttl), crdt.TTLEntry(d(3), 0, now)), Layers: []Layer{hll}}, 0, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ReapTime(c.rec); got != c.reap {
				t.Errorf("ReapTime %d, want %d", got, c.reap)
			}
			if got := GraveTime(c.rec); got != c.grave {
				t.Errorf("GraveTime %d, want %d", got, c.grave)
			}
			if got := Counts(c.rec); got != c.counts {
				t.Errorf("Counts %v, want %v", got, c.counts)
			}
		})
	}
}

// history runs random ops at n replicas and returns them, with every record
// they passed through (a pool for the law tests).
func history(t *testing.T, seed uint64, n, steps int) ([]*replica, []Record) {
	rng := rand.New(rand.NewPCG(seed, 20))
	reps := make([]*replica, n)
	for i := range reps {
		reps[i] = newReplica(i)
	}
	var pool []Record
	ts := now
	for range steps {
		ts += rng.Int64N(40)
		i := rng.IntN(n)
		others := slices.Concat(reps[:i], reps[i+1:])
		skew := int64(i*7) - 10
		randomOp(t, rng, reps[i], others, ts+skew)
		checkInvariants(t, seed, reps[i], ts)
		pool = append(pool, reps[i].rec)
	}
	return reps, pool
}

// checkInvariants: a grave neither counts nor resolves live; records round-trip
// through the codec.
func checkInvariants(t *testing.T, seed uint64, r *replica, ts int64) {
	t.Helper()
	if GraveTime(r.rec) != 0 && (Counts(r.rec) || !Resolve(r.rec, ts).Absent()) {
		t.Fatalf("seed %d: a grave counts or is live: %+v", seed, r.rec)
	}
	if dec, err := Decode(r.rec.AppendBinary(nil)); err != nil || !dec.Equal(r.rec) {
		t.Fatalf("seed %d: record does not round-trip: %v", seed, err)
	}
}

// shipped is rec without the receiver-local collection state, what MergeSafe's
// commutativity is stated on.
func shipped(rec Record) Record {
	rec.Layers = slices.Clone(rec.Layers)
	for i := range rec.Layers {
		if rec.Layers[i].Coll != nil {
			rec.Layers[i].Coll = &Coll{}
		}
	}
	return rec
}

func mustMerge(t *testing.T, a, b Record) Record {
	t.Helper()
	m, err := MergeSafe(a, b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestMergeSafeLaws: on records from random histories (SET, DPUT with foreign
// contexts, INCR, counter SET, PFADD, SADD, SREM, HSET, EXPIRE, PERSIST, reaps
// and merges at 3 to 5 actors), MergeSafe is idempotent and associative, and
// commutative on everything but the receiver's collection state, which it keeps.
func TestMergeSafeLaws(t *testing.T) {
	for seed := range uint64(12) {
		_, pool := history(t, seed, 3+int(seed%3), 250)
		rng := rand.New(rand.NewPCG(seed, 1))
		for i := range 300 {
			x, y, z := pool[rng.IntN(len(pool))], pool[rng.IntN(len(pool))], pool[rng.IntN(len(pool))]
			if xx := mustMerge(t, x, x); !xx.Equal(x) {
				t.Fatalf("seed %d case %d: not idempotent:\n%+v\n%+v", seed, i, xx, x)
			}
			xy, yx := mustMerge(t, x, y), mustMerge(t, y, x)
			if !shipped(xy).Equal(shipped(yx)) {
				t.Fatalf("seed %d case %d: not commutative:\n%+v\n%+v", seed, i, xy, yx)
			}
			for _, l := range xy.Layers {
				if l.Coll != nil && (l.Coll.Len != 0 || !l.Coll.Ctx.Empty()) && !slices.ContainsFunc(x.Layers, func(o Layer) bool { return o.Coll == l.Coll }) {
					t.Fatalf("seed %d case %d: merged collection state is not the receiver's", seed, i)
				}
			}
			if l, r := mustMerge(t, xy, z), mustMerge(t, x, mustMerge(t, y, z)); !l.Equal(r) {
				t.Fatalf("seed %d case %d: not associative:\n%+v\n%+v", seed, i, l, r)
			}
		}
	}
}

// TestResolveEveryMergeOrder: replicas that exchanged their full states (header
// by MergeSafe, elements by MergeElem, element contexts joined last) in any order
// hold the same state and resolve alike at every time.
func TestResolveEveryMergeOrder(t *testing.T) {
	for seed := range uint64(12) {
		reps, _ := history(t, seed, 3+int(seed%2), 200)
		var first *replica
		for _, order := range permutations(len(reps)) {
			acc := reps[order[0]].clone()
			for _, i := range order[1:] {
				acc.mergeFrom(t, reps[i])
			}
			if first == nil {
				first = acc
				continue
			}
			if !equalState(acc, first) {
				t.Fatalf("seed %d order %v: state differs:\n%+v\n%+v", seed, order, acc.rec, first.rec)
			}
			for _, at := range []int64{now, now + 2000, now + 5000, now + 1e7} {
				a, b := Resolve(acc.rec, at), Resolve(first.rec, at)
				if !slices.Equal(a.Live, b.Live) || !a.Str.Equal(b.Str.Value) {
					t.Fatalf("seed %d order %v at %d: %+v vs %+v", seed, order, at, a, b)
				}
			}
		}
		// A SET through the converged state supersedes every layer it observed.
		first.setString(first.rec.Context(), "last", now+1e6)
		if got := liveTypes(Resolve(first.rec, now+1e6)); !slices.Equal(got, []Type{Plain}) {
			t.Fatalf("seed %d: after a SET that observed everything, live %v", seed, got)
		}
		for _, l := range first.rec.Layers {
			if l.live() {
				t.Fatalf("seed %d: layer %s still holds content after the SET", seed, l.Type)
			}
		}
		// Its removals reach every replica: none of them brings a layer back.
		for i, r := range reps {
			r = r.clone()
			r.mergeFrom(t, first)
			if got := liveTypes(Resolve(r.rec, now+1e6)); !slices.Equal(got, []Type{Plain}) {
				t.Fatalf("seed %d: replica %d after merging the SET: live %v", seed, i, got)
			}
		}
	}
}

func permutations(n int) [][]int {
	if n == 1 {
		return [][]int{{0}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := slices.Insert(slices.Clone(p), i, n-1)
			out = append(out, q)
		}
	}
	return out
}

// TestMergeSafeRefuses: records Decode would refuse are refused.
func TestMergeSafeRefuses(t *testing.T) {
	bad := []Record{
		{Layers: []Layer{{Type: Plain}}},
		{Layers: []Layer{{Type: maxType + 1}}},
		{Layers: []Layer{{Type: Set}}},
		{Layers: []Layer{{Type: Counter, Coll: &Coll{}}}},
		{Layers: []Layer{{Type: Hash, Coll: &Coll{}}, {Type: Counter}}},
	}
	for i, r := range bad {
		if _, err := MergeSafe(Record{}, r); err == nil {
			t.Errorf("case %d: MergeSafe accepted %+v", i, r)
		}
		if _, err := MergeSafe(r, Record{}); err == nil {
			t.Errorf("case %d: MergeSafe accepted %+v as receiver", i, r)
		}
	}
}

// TestClearReachesMissingLayer: a write whose observation covers elements of a
// collection this replica never held records the clear here (a layer holding
// the context), so those elements are dropped when they arrive; a partial clear
// keeps the concurrent elements and leaves a sweep.
func TestClearReachesMissingLayer(t *testing.T) {
	other := newReplica(1)
	other.sadd("m", now)
	a := newReplica(0)
	a.setString(other.rec.Context(), "s", now+10) // DPUT with the context read from other
	if l := a.layer(Set); l.Coll.Ctx.Empty() || l.Dead != now+10 {
		t.Fatalf("no clear recorded: %+v", l)
	}
	a.mergeFrom(t, other)
	if len(a.elems[Set]) != 0 || Resolve(a.rec, now+20).Has(Set) {
		t.Fatal("an element the write observed came back")
	}

	// Partial: the local replica holds an element the clear did not cover.
	b := newReplica(2)
	b.sadd("local", now)
	rec, clears := UpdateString(b.rec, StringWrite{Obs: other.rec.Context(), Actor: "n2", Value: vclock.Value{Data: []byte("s"), Timestamp: now + 10}, Now: now + 10, Floor: 1})
	l := rec.Layers[0]
	if len(clears) != 1 || clears[0].Full || !l.Coll.Clear.Equal(other.layer(Set).Coll.Ctx) || l.Coll.SweepFrom == nil || l.Coll.Len != 1 {
		t.Fatalf("partial clear: %+v, layer %+v", clears, l.Coll)
	}
	if ReapTime(rec) != 1 || GraveTime(rec) != 0 {
		t.Fatalf("pending clear: ReapTime %d, GraveTime %d", ReapTime(rec), GraveTime(rec))
	}
}
