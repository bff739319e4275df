package record

import (
	"slices"

	"github.com/dynakv/dynakv/crdt"
	"github.com/dynakv/dynakv/vclock"
)

// Clear is element work a record change leaves to storage: every element of the
// key's layer Type whose dots Ctx covers is dead (1.6). Full: Ctx covered the
// layer's whole element context before the clear, so every element key of the
// layer goes (one DeleteRange) and the record already has Len, Bytes, Buckets and
// Actors zeroed and no pending clear; otherwise elements added concurrently may
// survive, the record's Coll.Clear holds Ctx and its sweep restarts (SweepFrom
// empty), and storage sweeps (2.6).
type Clear struct {
	Type Type
	Ctx  crdt.Context
	Full bool
}

// clearColl applies the clear of cc to a collection header: the context joins cc;
// a full clear (cc covers the whole context) zeroes the derived fields and ends any
// sweep, a partial one adds cc to the pending clear and restarts the sweep.
func clearColl(c *Coll, cc crdt.Context) (*Coll, bool) {
	full := cc.Includes(c.Ctx)
	n := &Coll{Ctx: c.Ctx.Join(cc)}
	if !full {
		n.Clear = c.Clear.Join(cc)
		n.Len, n.Bytes, n.Buckets, n.Actors = c.Len, c.Bytes, c.Buckets, c.Actors
		n.SweepFrom = []byte{}
	}
	return n, full
}

// StringWrite is a string write through a coordinator (SET, DPUT, APPEND, GETSET,
// a memcached set...): what UpdateString applies besides the record.
type StringWrite struct {
	// Obs is what the write observed and supersedes: Obs.Clock the string values
	// (as vclock.Update's context), Obs.Meta the TTL and Val entries, Obs.Elems
	// each collection's elements. A plain client's write observed the whole
	// record the coordinator read (Record.Context); DPUT's is the client's.
	Obs   Context
	Actor string       // the coordinator's actor for the key's partition
	Value vclock.Value // the new value; Value.Timestamp is the op's accepted time
	Now   int64        // unix ms: vclock.Update's activity stamp
	Floor uint64       // the node's fresh-counter floor
	// Prune bounds the string layer (vclock.Prune) once the write leaves more than
	// Prune.Limit entries; Keep, Needed and Now are filled in (the actor, what the
	// write needs, Now). Limit <= 0: no pruning.
	Prune vclock.PruneOptions
}

// UpdateString applies a string write to rec, superseding what it observed in
// every layer (1.5): the string layer becomes vclock.Update(rec.Str, Obs.Clock,
// Actor, Value, Now, Floor), pruned as the coordinator prunes today; the observed
// TTL entries are removed (the string keeps its expiry in its value); a counter's
// observed entries end by crdt.CounterDel (a removal marker when it holds
// increments, so no increment it observed comes back), an hll's observed entries
// are removed, and each collection is cleared of its observed element context
// (the returned Clears, for storage). Obs.Meta joins the meta context. Layers
// emptied this way get Dead = Value.Timestamp; their Stamp is left, so a layer an
// unobserved concurrent write keeps alive resolves by that write's stamp.
//
// On a string-only record with an Obs that holds only a Clock, the result is
// exactly today's write: record.String of the updated, pruned string layer.
func UpdateString(rec Record, w StringWrite) (Record, []Clear) {
	out := rec
	out.Str = vclock.Update(rec.Str, w.Obs.Clock, w.Actor, w.Value, w.Now, w.Floor)
	if w.Prune.Limit > 0 && len(out.Str.Entries) > w.Prune.Limit {
		o := w.Prune
		o.Keep, o.Needed, o.Now = w.Actor, vclock.Needed(rec.Str, w.Obs.Clock), w.Now
		out.Str = vclock.Prune(out.Str, o)
	}
	if !out.Typed() && !w.Obs.Typed() {
		return out, nil
	}
	return supersedeTyped(out, w.Obs, Plain, true, w.Actor, w.Value.Timestamp, w.Floor)
}

// TypedWrite is the part of a typed write (SADD, HSET, INCR, PFADD, EXPIRE...)
// that Supersede applies before the write's own delta.
type TypedWrite struct {
	Obs   Context // what the write observed (Record.Context of the coordinator's view)
	Type  Type    // the layer the write changes: kept, unless expired
	Actor string
	TS    int64 // the op's accepted time, unix ms: expiry is judged at it, and cleared layers' Dead
	Floor uint64
}

// Supersede is the first half of a typed write (1.5, 1.6): it discards the
// string values Obs.Clock covers (vclock.Discard) and clears the other typed
// layers as UpdateString does, so a conflict between types ends with the next
// write that observed it. When the TTL register has expired at TS, the write
// observes an expired key (Redis Active-Active's "expire before modifying"): the
// layer of w.Type is cleared too and the observed TTL entries are removed, so the
// write starts a new incarnation with no TTL. Otherwise the TTL is untouched
// (SADD, HSET, INCR never change it). The write's own delta then applies to the
// result, computed on its view of that.
func Supersede(rec Record, w TypedWrite) (Record, []Clear) {
	out := rec
	if len(w.Obs.Clock) > 0 {
		out.Str = vclock.Discard(rec.Str, w.Obs.Clock)
	}
	keep, ttl := w.Type, false
	if crdt.Expired(rec.TTL, w.TS) {
		keep, ttl = Plain, true
	}
	return supersedeTyped(out, w.Obs, keep, ttl, w.Actor, w.TS, w.Floor)
}

// supersedeTyped removes from rec's typed layers (but keep's) what obs observed,
// and the observed TTL entries when ttl. Layers it empties get Dead = ts.
func supersedeTyped(rec Record, obs Context, keep Type, ttl bool, actor string, ts int64, floor uint64) (Record, []Clear) {
	rec.Ctx = rec.Ctx.Join(obs.Meta)
	if ttl {
		rec.TTL = rec.TTL.Remove(obs.Meta)
	}
	var clears []Clear
	layers := slices.Clone(rec.Layers)
	// A clear reaches a collection this replica does not hold yet: its layer is
	// made, so the clear's context is here when the elements it covers arrive.
	for _, e := range obs.Elems {
		i, found := slices.BinarySearchFunc(layers, e.Type, func(l Layer, t Type) int { return int(l.Type) - int(t) })
		if !found && e.Type != keep && e.Type.Collection() && !e.Ctx.Empty() {
			layers = slices.Insert(layers, i, Layer{Type: e.Type, Coll: &Coll{}})
		}
	}
	for i, l := range layers {
		if l.Type == keep {
			continue
		}
		cleared := false
		switch {
		case l.Type == Counter:
			d, removed := crdt.CounterDel(observed(l.Val, obs.Meta), rec.Ctx, actor, floor)
			if removed {
				l.Val, rec.Ctx = crdt.ApplyElemDelta(l.Val, rec.Ctx, d)
				cleared = true
			}
		case l.Type.Collection():
			if cc := obs.Elem(l.Type); !cc.Empty() {
				var full bool
				l.Coll, full = clearColl(l.Coll, cc)
				clears = append(clears, Clear{Type: l.Type, Ctx: cc, Full: full})
				cleared = true
			}
		default:
			if v := l.Val.Remove(obs.Meta); len(v) != len(l.Val) {
				l.Val, cleared = v, true
			}
		}
		if cleared {
			l.Dead = max(l.Dead, ts)
			layers[i] = l
		}
	}
	rec.Layers = layers
	return rec, clears
}

// observed returns the entries of f whose dots c covers: the part of f a write
// with context c saw.
func observed(f crdt.Field, c crdt.Context) crdt.Field {
	var out crdt.Field
	for _, e := range f {
		if c.Covers(e.Dot) {
			out = append(out, e)
		}
	}
	return out
}
