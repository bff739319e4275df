package record

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dynakv/dynakv/crdt"
)

// versionDelta is the first byte of an encoded Delta.
const versionDelta = 1

// ErrBadDelta is what DecodeDelta wraps when it refuses its input.
var ErrBadDelta = errors.New("record: invalid delta")

// AppendBinary appends the binary form of d: [1][len][Str, vclock.Set's
// version 1][Ctx][TTL][n layers]{type, stamp, dead, Val, ClearC}[n elements]
// {type, len, elem, crdt.ElemDelta}. Contexts, fields and element deltas carry
// their own version bytes.
func (d Delta) AppendBinary(b []byte) []byte {
	b = appendHeader(b, versionDelta, d.Str, d.Ctx, d.TTL)
	b = binary.AppendUvarint(b, uint64(len(d.Layers)))
	for _, l := range d.Layers {
		b = appendLayerHead(b, l.Type, l.Stamp, l.Dead, l.Val)
		b = l.ClearC.AppendBinary(b)
	}
	b = binary.AppendUvarint(b, uint64(len(d.Elems)))
	for _, e := range d.Elems {
		b = append(b, byte(e.Type))
		b = binary.AppendUvarint(b, uint64(len(e.Elem)))
		b = append(b, e.Elem...)
		b = e.D.AppendBinary(b)
	}
	return b
}

// DecodeDelta decodes a whole delta. It refuses (ErrBadDelta) an unknown
// version, trailing bytes, layers out of type order or repeated, a clear on a
// layer that is not a collection, elements of a type that is not a collection,
// elements out of (type, name) order or repeated, and empty element deltas. The
// result does not alias b.
func DecodeDelta(b []byte) (Delta, error) {
	if len(b) == 0 || b[0] != versionDelta {
		if len(b) == 0 {
			return Delta{}, fmt.Errorf("%w: empty", ErrBadDelta)
		}
		return Delta{}, fmt.Errorf("%w: unknown version %d", ErrBadDelta, b[0])
	}
	r := reader{b: b[1:], sentinel: ErrBadDelta}
	var d Delta
	d.Str, d.Ctx, d.TTL = r.header()
	n := r.count(7) // a layer needs at least 7 bytes
	if n > 0 {
		d.Layers = make([]DeltaLayer, 0, n)
	}
	for i := 0; i < n && r.bad == ""; i++ {
		var l DeltaLayer
		l.Type, l.Stamp, l.Dead, l.Val = r.layerHead()
		l.ClearC = r.context("clear context")
		switch {
		case r.bad != "":
		case i > 0 && l.Type <= d.Layers[i-1].Type:
			r.fail("layers out of order")
		case !l.ClearC.Empty() && !l.Type.Collection():
			r.fail(fmt.Sprintf("clear on layer type %d", l.Type))
		}
		d.Layers = append(d.Layers, l)
	}
	n = r.count(3) // an element needs at least 3 bytes
	if n > 0 {
		d.Elems = make([]ElemDelta, 0, n)
	}
	for i := 0; i < n && r.bad == ""; i++ {
		e := ElemDelta{Type: Type(r.byte())}
		e.Elem = r.take(r.uvarint())
		if r.bad == "" {
			var err error
			if e.D, r.b, err = crdt.DecodeElemDelta(r.b); err != nil {
				r.fail("element delta")
				r.err = err
			}
		}
		switch {
		case r.bad != "":
		case !e.Type.Collection():
			r.fail(fmt.Sprintf("element of layer type %d", e.Type))
		case i > 0 && compareElem(d.Elems[i-1], e) >= 0:
			r.fail("elements out of order")
		case e.D.Empty():
			r.fail("empty element delta")
		}
		d.Elems = append(d.Elems, e)
	}
	if r.bad == "" && len(r.b) != 0 {
		r.fail(fmt.Sprintf("%d trailing bytes", len(r.b)))
	}
	if r.bad != "" {
		return Delta{}, r.error()
	}
	return d, nil
}
