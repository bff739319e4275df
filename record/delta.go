package record

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"

	"github.com/dynakv/dynakv/crdt"
	"github.com/dynakv/dynakv/vclock"
)

// Delta is what a write ships to the replicas of a key, and what a hint
// accumulates (issue 20's design, 2.4 and 2.5): a small state, so applying it is
// idempotent and joining two deltas (JoinDeltas) has the effect of applying both,
// in either order, any number of times.
//
// Its header part (Str, Ctx, TTL, each layer's Stamp, Dead and Val) is the
// writer's whole header state but element contexts, merged as MergeSafe merges a
// record; the element part is deltas, never whole elements; the clears name the
// element dots that died without naming the elements.
//
// A string write's delta (DeltaOf of the written record) carries exactly what
// the write's record carries today, Str and, on a typed key, the header and its
// clears. For a string-only key the wire keeps the version 1 record bytes,
// unchanged: the delta travels beside them only for typed keys.
type Delta struct {
	Str    vclock.Set   // the string layer, whole: merged by vclock.Sync
	Ctx    crdt.Context // the meta context, whole: dots of TTL and Val events seen
	TTL    crdt.Field   // the TTL register, whole: dot -> absolute expiry ms (0: PERSIST)
	Layers []DeltaLayer // sorted by Type, at most one per type
	Elems  []ElemDelta  // sorted by (Type, Elem), at most one per element
}

// DeltaLayer is a Delta's header state of one layer.
type DeltaLayer struct {
	Type  Type
	Stamp crdt.Stamp // max (accepted ts, dot) of the ops on this layer: joined by max
	Dead  int64      // unix ms the layer was last emptied (0: never): joined by max
	Val   crdt.Field // a counter's or an hll's payload, whole; empty for collections
	// ClearC is the element context a clear of this collection observed (DEL,
	// expiry, a string or other type's write over it, 1.6): every element dot it
	// covers is dead. Empty: no clear. Collections only.
	ClearC crdt.Context
}

// ElemDelta is the change to one element of a collection layer: D.Dots its new
// entries, D.Seen the dots of that element the write superseded or removed. It
// carries its own context (D.Dots ∪ D.Seen) and nothing of the collection's.
type ElemDelta struct {
	Type Type   // the collection layer
	Elem []byte // the member (Set) or field (Hash) name
	D    crdt.ElemDelta
}

// Apply is the storage side of an element delta: stored is the element as
// stored (nil: absent), collCtx its collection's element context (Coll.Ctx).
// It returns the element to store (empty: delete its key) and the collection's
// new element context: L' = (L \ Seen) ∪ (Dots \ Cl), Cl' = Cl ∪ Dots ∪ Seen
// (crdt.ApplyElemDelta).
func (e ElemDelta) Apply(stored crdt.Field, collCtx crdt.Context) (crdt.Field, crdt.Context) {
	return crdt.ApplyElemDelta(stored, collCtx, e.D)
}

// Equal reports whether e and o are identical.
func (e ElemDelta) Equal(o ElemDelta) bool {
	return e.Type == o.Type && bytes.Equal(e.Elem, o.Elem) && e.D.Equal(o.D)
}

func compareElem(a, b ElemDelta) int {
	return cmp.Or(cmp.Compare(a.Type, b.Type), bytes.Compare(a.Elem, b.Elem))
}

// Equal reports whether l and o are identical.
func (l DeltaLayer) Equal(o DeltaLayer) bool {
	return l.Type == o.Type && l.Stamp == o.Stamp && l.Dead == o.Dead && l.Val.Equal(o.Val) && l.ClearC.Equal(o.ClearC)
}

// Equal reports whether d and o are the same delta (equal encodings).
func (d Delta) Equal(o Delta) bool {
	return bytes.Equal(d.Str.AppendBinary(nil), o.Str.AppendBinary(nil)) && d.Ctx.Equal(o.Ctx) &&
		d.TTL.Equal(o.TTL) && slices.EqualFunc(d.Layers, o.Layers, DeltaLayer.Equal) &&
		slices.EqualFunc(d.Elems, o.Elems, ElemDelta.Equal)
}

// Empty reports whether d changes nothing.
func (d Delta) Empty() bool {
	return d.Str.Empty() && d.Ctx.Empty() && len(d.TTL) == 0 && len(d.Layers) == 0 && len(d.Elems) == 0
}

// DeltaOf returns the delta of a write that left rec (the writer's record after
// the write) and clears (what UpdateString, Supersede or Reap returned): rec's
// header state but element contexts, each clear's context as its layer's
// ClearC. A typed write then adds its element deltas to Elems. For a
// string-only rec it is Delta{Str: rec.Str}: what the version 1 record carries.
func DeltaOf(rec Record, clears []Clear) Delta {
	d := Delta{Str: rec.Str, Ctx: rec.Ctx, TTL: rec.TTL}
	if len(rec.Layers) > 0 {
		d.Layers = make([]DeltaLayer, len(rec.Layers))
		for i, l := range rec.Layers {
			d.Layers[i] = DeltaLayer{Type: l.Type, Stamp: l.Stamp, Dead: l.Dead, Val: l.Val}
		}
	}
	for _, c := range clears {
		i, found := slices.BinarySearchFunc(d.Layers, c.Type, cmpLayerType)
		if !found {
			d.Layers = slices.Insert(d.Layers, i, DeltaLayer{Type: c.Type})
		}
		d.Layers[i].ClearC = d.Layers[i].ClearC.Join(c.Ctx)
	}
	return d
}

func cmpLayerType(l DeltaLayer, t Type) int { return cmp.Compare(l.Type, t) }

// header returns d's header part as a record MergeSafe can join: each layer
// with an empty Coll when it is a collection, and, when withElems, an empty
// layer for each collection d has elements of but no header for.
func (d Delta) header(withElems bool) Record {
	rec := Record{Str: d.Str, Ctx: d.Ctx, TTL: d.TTL}
	for _, l := range d.Layers {
		rec.Layers = append(rec.Layers, Layer{Type: l.Type, Stamp: l.Stamp, Dead: l.Dead, Val: l.Val})
	}
	if withElems {
		for _, e := range d.Elems {
			i, found := slices.BinarySearchFunc(rec.Layers, e.Type, func(l Layer, t Type) int { return cmp.Compare(l.Type, t) })
			if !found {
				rec.Layers = slices.Insert(rec.Layers, i, Layer{Type: e.Type})
			}
		}
	}
	for i := range rec.Layers {
		if rec.Layers[i].Type.Collection() {
			rec.Layers[i].Coll = &Coll{}
		}
	}
	return rec
}

// check reports whether d keeps the invariants DecodeDelta enforces.
func (d Delta) check() error {
	for i, l := range d.Layers {
		switch {
		case l.Type == Plain || l.Type > maxType:
			return fmt.Errorf("%w: delta layer type %d", ErrInvalid, l.Type)
		case i > 0 && l.Type <= d.Layers[i-1].Type:
			return fmt.Errorf("%w: delta layers out of order", ErrInvalid)
		case !l.ClearC.Empty() && !l.Type.Collection():
			return fmt.Errorf("%w: clear on layer type %s", ErrInvalid, l.Type)
		}
	}
	for i, e := range d.Elems {
		switch {
		case !e.Type.Collection():
			return fmt.Errorf("%w: element of layer type %s", ErrInvalid, e.Type)
		case i > 0 && compareElem(d.Elems[i-1], e) >= 0:
			return fmt.Errorf("%w: delta elements out of order", ErrInvalid)
		}
	}
	return nil
}

// clearOf returns the ClearC of d's layer of type t.
func (d Delta) clearOf(t Type) crdt.Context {
	if i, found := slices.BinarySearchFunc(d.Layers, t, cmpLayerType); found {
		return d.Layers[i].ClearC
	}
	return crdt.Context{}
}

// ApplyDelta applies d to rec, the receiver's record (2.5), and returns the new
// record and the element work left to storage, which does it under UpdateKey in
// one batch with the record, in this order:
//
//  1. the clears, as for UpdateString: a Full one deletes every element key of
//     its layer (the record already has its derived fields zeroed); a partial
//     one is pending in Coll.Clear and swept (2.6).
//  2. each element delta in order: stored, ctx := work.Apply(stored, ctx), with
//     ctx starting as the layer's Coll.Ctx in the returned record and stored read
//     as the clears left it (absent after a full clear; a partial clear's dots
//     may still be in it until the sweep, and stay dead); storage stores the
//     element (deleting an empty one), sets the layer's Coll.Ctx to its final
//     ctx and maintains the derived fields.
//
// The header part: Str by vclock.Sync; Ctx, TTL and each layer's Stamp, Dead and
// Val joined as MergeSafe joins them; a collection the receiver lacks gets a
// layer (also for elements with no header in d); each ClearC is joined into its
// Coll.Ctx by the clear. An element delta whose dots the clear covers adds
// nothing (they are in Coll.Ctx by then).
//
// Applying d twice changes nothing, records and elements, once storage has done
// the work and swept: a second application of a clear can find it partial (the
// first one's elements arrived since), leave it pending and sweep again,
// removing nothing. Likewise applying a then b equals applying JoinDeltas(a, b)
// (a full clear of one may be a partial one of the other, same outcome). It fails only with ErrInvalid, on a record or delta the
// decoders would refuse.
func ApplyDelta(rec Record, d Delta) (Record, []Clear, []ElemDelta, error) {
	if err := d.check(); err != nil {
		return Record{}, nil, nil, fmt.Errorf("apply delta: %w", err)
	}
	out, err := MergeSafe(rec, d.header(true))
	if err != nil {
		return Record{}, nil, nil, fmt.Errorf("apply delta: %w", err)
	}
	var clears []Clear
	for _, dl := range d.Layers {
		if dl.ClearC.Empty() {
			continue
		}
		i, _ := slices.BinarySearchFunc(out.Layers, dl.Type, func(l Layer, t Type) int { return cmp.Compare(l.Type, t) })
		l := out.Layers[i] // MergeSafe made it
		var full bool
		l.Coll, full = clearColl(l.Coll, dl.ClearC)
		out.Layers[i] = l
		clears = append(clears, Clear{Type: dl.Type, Ctx: dl.ClearC, Full: full})
	}
	var work []ElemDelta
	for _, e := range d.Elems {
		if !e.D.Empty() {
			work = append(work, e)
		}
	}
	return out, clears, work, nil
}

// JoinDeltas joins two deltas of one key into one whose effect equals applying
// both, in either order (a hint accumulates a key's deltas this way): the header
// parts joined as MergeSafe joins records, the clears' contexts joined, and the
// element deltas of one element joined by crdt.JoinDelta. An element's new dots
// that either clear covers become seen ones: the clear removed them. It is
// commutative, associative and idempotent, and fails only with ErrInvalid, on a
// delta DecodeDelta would refuse.
func JoinDeltas(a, b Delta) (Delta, error) {
	if err := a.check(); err != nil {
		return Delta{}, fmt.Errorf("join deltas: %w", err)
	}
	if err := b.check(); err != nil {
		return Delta{}, fmt.Errorf("join deltas: %w", err)
	}
	h, err := MergeSafe(a.header(false), b.header(false))
	if err != nil {
		return Delta{}, fmt.Errorf("join deltas: %w", err)
	}
	out := DeltaOf(h, nil)
	for i, l := range out.Layers {
		out.Layers[i].ClearC = a.clearOf(l.Type).Join(b.clearOf(l.Type))
	}
	ea, eb := a.Elems, b.Elems
	for len(ea) > 0 || len(eb) > 0 {
		var e ElemDelta
		switch {
		case len(eb) == 0 || (len(ea) > 0 && compareElem(ea[0], eb[0]) < 0):
			e, ea = ea[0], ea[1:]
		case len(ea) == 0 || compareElem(eb[0], ea[0]) < 0:
			e, eb = eb[0], eb[1:]
		default:
			e = ElemDelta{Type: ea[0].Type, Elem: ea[0].Elem, D: crdt.JoinDelta(ea[0].D, eb[0].D)}
			ea, eb = ea[1:], eb[1:]
		}
		if cc := out.clearOf(e.Type); !cc.Empty() {
			e.D = cleared(e.D, cc)
		}
		if !e.D.Empty() {
			out.Elems = append(out.Elems, e)
		}
	}
	return out, nil
}

// cleared returns d with the new dots cc covers moved to its seen dots.
func cleared(d crdt.ElemDelta, cc crdt.Context) crdt.ElemDelta {
	if !slices.ContainsFunc(d.Dots, func(e crdt.Entry) bool { return cc.Covers(e.Dot) }) {
		return d
	}
	var dots crdt.Field
	seen := slices.Clone(d.Seen)
	for _, e := range d.Dots {
		if cc.Covers(e.Dot) {
			seen = append(seen, e.Dot)
		} else {
			dots = append(dots, e)
		}
	}
	return crdt.NewElemDelta(dots, seen)
}
