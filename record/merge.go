package record

import (
	"errors"
	"fmt"

	"github.com/dynakv/dynakv/crdt"
	"github.com/dynakv/dynakv/vclock"
)

// ErrInvalid is what MergeSafe wraps when a record breaks the invariants Decode
// checks (layers out of type order or repeated, an unknown type, a collection
// without its Coll or a Coll on another type): a record built by hand, never
// one that was decoded.
var ErrInvalid = errors.New("record: record breaks its invariants")

// MergeSafe joins the state b ships into a, the receiver's record: everything
// but element contexts (1.2, 2.5).
//
//   - Str: vclock.Sync.
//   - Ctx, the meta context: joined.
//   - TTL, and each layer's Val: merged with both meta contexts (crdt.MergeElem),
//     so an entry survives unless the other side saw its dot and dropped it. A
//     layer one side lacks counts as an empty Val there, so removals reach it.
//   - each layer's Stamp: the greater; Dead: the maximum.
//   - Coll: a's, as it is (element context, pending clear, derived fields and
//     sweep cursor), or an empty one when only b has the layer. b's element
//     context travels only with b's elements (the safety rule): the caller
//     merges elements with crdt.MergeElem and joins b's Coll.Ctx only after
//     every element it covers was merged. Storage maintains the derived fields.
//
// Its laws: on everything b ships (all but Coll) it is commutative, associative
// and idempotent, a join-semilattice like vclock.Sync; the whole result is
// associative and idempotent, and keeps the receiver's Coll. On string-only
// records it is exactly Record{Str: vclock.Sync(a.Str, b.Str)}. It fails only
// with ErrInvalid, on a record Decode would refuse.
func MergeSafe(a, b Record) (Record, error) {
	if err := a.check(); err != nil {
		return Record{}, fmt.Errorf("merge: receiver: %w", err)
	}
	if err := b.check(); err != nil {
		return Record{}, fmt.Errorf("merge: other: %w", err)
	}
	out := Record{
		Str: vclock.Sync(a.Str, b.Str),
		Ctx: a.Ctx.Join(b.Ctx),
		TTL: crdt.MergeElem(a.TTL, a.Ctx, b.TTL, b.Ctx),
	}
	if len(a.Layers)+len(b.Layers) == 0 {
		return out, nil
	}
	out.Layers = make([]Layer, 0, max(len(a.Layers), len(b.Layers)))
	la, lb := a.Layers, b.Layers
	for len(la) > 0 || len(lb) > 0 {
		var x, y Layer // x from a, y from b; a zero Type: that side lacks the layer
		switch {
		case len(lb) == 0 || (len(la) > 0 && la[0].Type < lb[0].Type):
			x, la = la[0], la[1:]
		case len(la) == 0 || lb[0].Type < la[0].Type:
			y, lb = lb[0], lb[1:]
		default:
			x, y = la[0], lb[0]
			la, lb = la[1:], lb[1:]
		}
		out.Layers = append(out.Layers, mergeLayer(x, a.Ctx, y, b.Ctx))
	}
	return out, nil
}

// mergeLayer merges layer x of the receiver (meta context ac) with y of the
// other side (bc); either may be the zero Layer, absent on its side.
func mergeLayer(x Layer, ac crdt.Context, y Layer, bc crdt.Context) Layer {
	l := Layer{
		Type:  max(x.Type, y.Type),
		Stamp: x.Stamp.Join(y.Stamp),
		Dead:  max(x.Dead, y.Dead),
		Val:   crdt.MergeElem(x.Val, ac, y.Val, bc),
		Coll:  x.Coll,
	}
	switch {
	case x.Type == Plain: // only b has it: b's element context stays with b
		l.Stamp = y.Stamp
		if l.Type.Collection() {
			l.Coll = &Coll{}
		}
	case y.Type == Plain:
		l.Stamp = x.Stamp
	}
	return l
}

// check reports whether r keeps the invariants of Record that Decode enforces
// and the merges rely on.
func (r Record) check() error {
	for i, l := range r.Layers {
		switch {
		case l.Type == Plain || l.Type > maxType:
			return fmt.Errorf("%w: layer type %d", ErrInvalid, l.Type)
		case i > 0 && l.Type <= r.Layers[i-1].Type:
			return fmt.Errorf("%w: layers out of order", ErrInvalid)
		case (l.Coll != nil) != l.Type.Collection():
			return fmt.Errorf("%w: collection state on layer type %s", ErrInvalid, l.Type)
		}
	}
	return nil
}
