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

// replica is a test model of one replica of one key: its record and, for each
// collection layer, its elements (what storage keeps as element keys). Ops go
// through record's API (UpdateString, Supersede, Reap, MergeSafe) and crdt's
// mutators, as the coordinator and storage will; the model does storage's part:
// it applies Clears to the elements, keeps the derived fields (Len counts live
// elements, Bytes 10 per element key), merges elements with crdt.MergeElem and
// joins the other side's element context only after that (the range exchange).
type replica struct {
	name  string
	floor uint64
	rec   Record
	elems map[Type]map[string]crdt.Field
	// logging makes the ops record their delta's clears and element deltas
	// (opDelta).
	logging bool
	clears  []Clear
	elemLog []ElemDelta
}

func newReplica(i int) *replica {
	return &replica{name: fmt.Sprintf("n%d", i), floor: uint64(i+1) << 40, elems: map[Type]map[string]crdt.Field{}}
}

func (r *replica) clone() *replica {
	c := *r
	c.elems = map[Type]map[string]crdt.Field{}
	c.logging, c.clears, c.elemLog = false, nil, nil
	for t, es := range r.elems {
		c.elems[t] = maps.Clone(es)
	}
	return &c
}

// layer returns r's layer of type t, or a new empty one.
func (r *replica) layer(t Type) Layer {
	for _, l := range r.rec.Layers {
		if l.Type == t {
			return l
		}
	}
	l := Layer{Type: t}
	if t.Collection() {
		l.Coll = &Coll{}
	}
	return l
}

// setLayer stores l in r's record, in type order.
func (r *replica) setLayer(l Layer) {
	ls := slices.Clone(r.rec.Layers)
	i, found := slices.BinarySearchFunc(ls, l.Type, func(x Layer, t Type) int { return int(x.Type) - int(t) })
	if found {
		ls[i] = l
	} else {
		ls = slices.Insert(ls, i, l)
	}
	r.rec.Layers = ls
}

// derive recomputes a collection's derived fields from the model's elements and
// ends any sweep: the model sweeps at once.
func (r *replica) derive(t Type, ctx crdt.Context) {
	l := r.layer(t)
	c := &Coll{Ctx: ctx}
	for _, f := range r.elems[t] {
		c.Bytes += 10
		if (t == Set && crdt.SetLive(f)) || (t == Hash && crdt.HashLive(f)) {
			c.Len++
		}
	}
	l.Coll = c
	r.setLayer(l)
}

// applyClears does storage's part of clears: the covered dots leave every
// element, emptied elements go.
func (r *replica) applyClears(cs []Clear) {
	if r.logging {
		r.clears = append(r.clears, cs...)
	}
	for _, c := range cs {
		es := r.elems[c.Type]
		for k, f := range es {
			if f = f.Remove(c.Ctx); len(f) == 0 {
				delete(es, k)
			} else {
				es[k] = f
			}
		}
		r.derive(c.Type, r.layer(c.Type).Coll.Ctx)
	}
}

// setString is SET (or DPUT with obs) of s at ts.
func (r *replica) setString(obs Context, s string, ts int64) {
	rec, clears := UpdateString(r.rec, StringWrite{
		Obs: obs, Actor: r.name, Value: vclock.Value{Data: []byte(s), Timestamp: ts}, Now: ts, Floor: r.floor,
		Prune: vclock.PruneOptions{Limit: vclock.MaxEntries},
	})
	r.rec = rec
	r.applyClears(clears)
}

// typed runs Supersede for a write of type t at ts with r's own view.
func (r *replica) typed(t Type, ts int64) {
	rec, clears := Supersede(r.rec, TypedWrite{Obs: r.rec.Context(), Type: t, Actor: r.name, TS: ts, Floor: r.floor})
	r.rec = rec
	r.applyClears(clears)
}

// meta applies a delta on layer t's Val (t Plain: the TTL) and bumps its stamp
// when it adds.
func (r *replica) meta(t Type, d crdt.ElemDelta, ts int64) {
	if t == Plain {
		r.rec.TTL, r.rec.Ctx = crdt.ApplyElemDelta(r.rec.TTL, r.rec.Ctx, d)
		return
	}
	l := r.layer(t)
	l.Val, r.rec.Ctx = crdt.ApplyElemDelta(l.Val, r.rec.Ctx, d)
	for _, e := range d.Dots {
		l.Stamp = l.Stamp.Join(crdt.Stamp{TS: ts, Dot: e.Dot})
	}
	r.setLayer(l)
}

func (r *replica) incr(n int64, ts int64) {
	r.typed(Counter, ts)
	d, _, err := crdt.CounterIncr(r.layer(Counter).Val, r.rec.Ctx, r.name, r.floor, n)
	if err == nil {
		r.meta(Counter, d, ts)
	}
}

func (r *replica) reset(v string, ts int64) {
	r.typed(Counter, ts)
	r.meta(Counter, crdt.CounterReset(r.layer(Counter).Val, r.rec.Ctx, r.name, r.floor, []byte(v), ts), ts)
}

func (r *replica) pfadd(regs string, ts int64) {
	r.typed(HLL, ts)
	val := r.layer(HLL).Val
	e := crdt.Entry{Dot: r.rec.Ctx.Next(r.name, r.floor), Kind: crdt.KindHLL, Data: []byte(regs)}
	r.meta(HLL, crdt.NewElemDelta(crdt.Field{e}, val.Dots()), ts)
}

// expire is EXPIRE (at > 0) or PERSIST of the typed part; on an expired key it
// does nothing, as on a missing key.
func (r *replica) expire(at, ts int64) {
	if crdt.Expired(r.rec.TTL, ts) {
		return
	}
	e := crdt.TTLEntry(r.rec.Ctx.Next(r.name, r.floor), at, ts)
	r.meta(Plain, crdt.NewElemDelta(crdt.Field{e}, r.rec.TTL.Dots()), ts)
}

// elem applies an element op of collection t on member k: mut gets the member's
// field and the element context and returns the delta.
func (r *replica) elem(t Type, k string, ts int64, mut func(f crdt.Field, ctx crdt.Context) crdt.ElemDelta) {
	r.typed(t, ts)
	l := r.layer(t)
	d := mut(r.elems[t][k], l.Coll.Ctx)
	if d.Empty() {
		return
	}
	if r.logging {
		r.elemLog = append(r.elemLog, ElemDelta{Type: t, Elem: []byte(k), D: d})
	}
	f, ctx := crdt.ApplyElemDelta(r.elems[t][k], l.Coll.Ctx, d)
	if r.elems[t] == nil {
		r.elems[t] = map[string]crdt.Field{}
	}
	if len(f) == 0 {
		delete(r.elems[t], k)
	} else {
		r.elems[t][k] = f
	}
	for _, e := range d.Dots {
		l.Stamp = l.Stamp.Join(crdt.Stamp{TS: ts, Dot: e.Dot})
	}
	r.setLayer(l)
	r.derive(t, ctx)
}

func (r *replica) sadd(m string, ts int64) {
	r.elem(Set, m, ts, func(f crdt.Field, ctx crdt.Context) crdt.ElemDelta {
		d, _ := crdt.SetAdd(f, ctx, r.name, r.floor)
		return d
	})
}

func (r *replica) srem(m string, ts int64) {
	r.elem(Set, m, ts, func(f crdt.Field, _ crdt.Context) crdt.ElemDelta {
		d, _ := crdt.SetRem(f)
		return d
	})
}

func (r *replica) hset(k, v string, ts int64) {
	r.elem(Hash, k, ts, func(f crdt.Field, ctx crdt.Context) crdt.ElemDelta {
		d, _ := crdt.HashSet(f, ctx, r.name, r.floor, []byte(v), ts)
		return d
	})
}

func (r *replica) reap(now int64) {
	rec, clears, _ := Reap(r.rec, now)
	r.rec = rec
	r.applyClears(clears)
}

// mergeFrom is a full exchange of o's state into r: MergeSafe for the header,
// then each collection's elements merged with both element contexts, and o's
// element context joined last.
func (r *replica) mergeFrom(t testing.TB, o *replica) {
	t.Helper()
	rec, err := MergeSafe(r.rec, o.rec)
	if err != nil {
		t.Fatal(err)
	}
	mine, theirs := r.rec, o.rec
	r.rec = rec
	for _, l := range rec.Layers {
		if !l.Type.Collection() {
			continue
		}
		lc, oc := collCtx(mine, l.Type), collCtx(theirs, l.Type)
		es := map[string]crdt.Field{}
		for _, k := range slices.Concat(slices.Collect(maps.Keys(r.elems[l.Type])), slices.Collect(maps.Keys(o.elems[l.Type]))) {
			if f := crdt.MergeElem(r.elems[l.Type][k], lc, o.elems[l.Type][k], oc); len(f) > 0 {
				es[k] = f
			}
		}
		r.elems[l.Type] = es
		r.derive(l.Type, lc.Join(oc))
	}
}

func collCtx(rec Record, t Type) crdt.Context {
	for _, l := range rec.Layers {
		if l.Type == t && l.Coll != nil {
			return l.Coll.Ctx
		}
	}
	return crdt.Context{}
}

// equalState reports whether two replicas hold the same record and elements.
func equalState(a, b *replica) bool {
	if !a.rec.Equal(b.rec) {
		return false
	}
	for _, t := range []Type{Set, Hash} {
		if !maps.EqualFunc(a.elems[t], b.elems[t], crdt.Field.Equal) && len(a.elems[t])+len(b.elems[t]) > 0 {
			return false
		}
	}
	return true
}

// randomOp runs one random op at r at time ts; others are the other replicas
// (for DPUT's foreign contexts and merges).
func randomOp(t testing.TB, rng *rand.Rand, r *replica, others []*replica, ts int64) string {
	m := fmt.Sprintf("m%d", rng.IntN(4))
	switch op := rng.IntN(13); op {
	case 0:
		r.setString(r.rec.Context(), fmt.Sprint("s", rng.IntN(100)), ts)
		return "SET"
	case 1:
		o := others[rng.IntN(len(others))]
		r.setString(o.rec.Context(), "dput", ts)
		return "DPUT foreign"
	case 2:
		r.incr(rng.Int64N(10)-3, ts)
		return "INCR"
	case 3:
		r.reset(fmt.Sprint(rng.IntN(50)), ts)
		return "SET counter"
	case 4:
		r.pfadd(fmt.Sprint("hll", rng.IntN(1000)), ts)
		return "PFADD"
	case 5, 6:
		r.sadd(m, ts)
		return "SADD"
	case 7:
		r.srem(m, ts)
		return "SREM"
	case 8:
		r.hset(m, fmt.Sprint(rng.IntN(9)), ts)
		return "HSET"
	case 9:
		if rng.IntN(3) == 0 {
			r.expire(0, ts)
			return "PERSIST"
		}
		r.expire(ts+rng.Int64N(400), ts)
		return "EXPIRE"
	case 10:
		r.reap(ts)
		return "reap"
	default:
		r.mergeFrom(t, others[rng.IntN(len(others))])
		return "merge"
	}
}
