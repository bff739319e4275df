package storage

import (
	"errors"
	"fmt"

	"github.com/dynakv/dynakv/crdt"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/tictac"
)

// A collection header's derived fields (docs/design/issue20-data-types.md 2.2):
// storage keeps them from the element keys it writes, in the batch that writes
// them, under the key's lock; nothing above storage sets them (UpdateKey and
// Update overwrite what a caller put there).
//
//   - Len: the layer's live elements (elemRules.Live); a hash field's grave (a
//     removal marker with the increments it observed) is an element key but not
//     live.
//   - Bytes: the sum of recordSize(len(element key), len(encoding), 0, 0) over the
//     layer's element keys, live or not; so a layer holds element keys exactly
//     when its Bytes is above 0.
//   - Buckets: collBuckets XOR digests, tictac.ItemHash(elem, encoding) of each
//     element key, by the top bits of its ehash; nil while every one is 0.
//
// Coll.Actors (2.7) is not derived yet (S11): it is the caller's.

// collBuckets is the number of a collection's bucket digests (record.MaxBuckets).
const collBuckets = record.MaxBuckets

// bucketOf is the digest bucket of an element whose hash is ehash.
func bucketOf(ehash uint64) int { return int(ehash >> 58) }

// ErrBadHeader is what UpdateKey (and Update) refuse to store: a header whose
// layers record/ could not decode (out of type order or repeated, an unknown type,
// a collection layer without its Coll or another with one), or one that drops a
// collection layer whose element keys remain, or element keys written for a
// layer the header does not have. Nothing is written.
var ErrBadHeader = errors.New("storage: header does not fit its elements")

// ErrElemType is the error of an element operation on a type that keeps no
// element keys (record.Type.Collection), or on one whose elements storage cannot
// derive fields for yet (issue 21's ZSet and List).
var ErrElemType = errors.New("storage: not an element type")

// elemRules is what storage needs to know of an element's state beyond its
// bytes. record/ is to provide it with the semantics of S3 (record.Resolve's
// liveness); until then it is crdtRules.
type elemRules interface {
	// Live reports whether an element of layer typ holding f counts in Coll.Len.
	Live(typ record.Type, f crdt.Field) bool
}

// rules is the store's elemRules.
var rules elemRules = crdtRules{}

// crdtRules reads liveness from crdt: a set member is live while it holds an
// add (crdt.SetLive), a hash field while it holds a value (crdt.HashLive).
type crdtRules struct{}

func (crdtRules) Live(typ record.Type, f crdt.Field) bool {
	switch typ {
	case record.Set:
		return crdt.SetLive(f)
	case record.Hash:
		return crdt.HashLive(f)
	}
	return false
}

// checkElemType refuses the types UpdateKey keeps no elements of.
func checkElemType(typ record.Type) error {
	if typ != record.Set && typ != record.Hash {
		return fmt.Errorf("%w: type %d", ErrElemType, typ)
	}
	return nil
}

// collDelta is the change of one layer's derived fields.
type collDelta struct {
	typ        record.Type
	len, bytes int64
	buckets    [collBuckets]uint64 // XORed into the header's
}

// add counts (sign +1) or uncounts (-1) an element key ek (element elem, hash
// ehash) holding enc, live or not.
func (d *collDelta) add(sign int64, ek, elem []byte, ehash uint64, enc []byte, live bool) {
	if live {
		d.len += sign
	}
	d.bytes += sign * recordSize(len(ek), len(enc), 0, 0)
	d.buckets[bucketOf(ehash)] ^= tictac.ItemHash(elem, enc)
}

// deltaOf returns ds's delta of layer typ, nil when it has none.
func deltaOf(ds []*collDelta, typ record.Type) *collDelta {
	for _, d := range ds {
		if d.typ == typ {
			return d
		}
	}
	return nil
}

// deriveHeader returns next, the header a change leaves, with the derived fields
// of its collection layers set to those of base (the stored header) plus ds (the
// change's element writes), and checks it (ErrBadHeader). It never changes next's
// layers or colls, which may be the caller's: it copies what it sets. Even with
// an error it returns next with every derived field it could set, for a read
// inside a transaction (KeyTxn.Record).
func deriveHeader(base, next record.Record, ds []*collDelta) (record.Record, error) {
	if len(base.Layers) == 0 && len(next.Layers) == 0 && len(ds) == 0 {
		return next, nil // a string key: nothing to derive
	}
	var err error
	bad := func(format string, args ...any) {
		if err == nil {
			err = fmt.Errorf("%w: "+format, append([]any{ErrBadHeader}, args...)...)
		}
	}
	if len(next.Layers) > 0 {
		layers := make([]record.Layer, len(next.Layers))
		copy(layers, next.Layers)
		next.Layers = layers
	}
	for i := range next.Layers {
		l := &next.Layers[i]
		switch {
		case l.Type == 0 || l.Type > record.List:
			bad("unknown layer type %d", l.Type)
		case i > 0 && l.Type <= next.Layers[i-1].Type:
			bad("layers out of type order")
		case (l.Coll != nil) != l.Type.Collection():
			bad("layer type %d with a collection flag that does not match it", l.Type)
		}
		if l.Coll == nil {
			continue
		}
		c := *l.Coll
		c.Len, c.Bytes, c.Buckets = derived(base, l.Type, deltaOf(ds, l.Type))
		l.Coll = &c
	}
	// Element keys must stay under a layer of theirs: a layer that is gone must
	// have none left, and elements written need their layer.
	check := func(typ record.Type) {
		if layerOf(next, typ) != nil {
			return
		}
		if _, bytes, _ := derived(base, typ, deltaOf(ds, typ)); bytes != 0 {
			bad("element keys of type %d without their layer", typ)
		}
	}
	for _, l := range base.Layers {
		if l.Coll != nil {
			check(l.Type)
		}
	}
	for _, d := range ds {
		check(d.typ)
	}
	return next, err
}

// derived returns the derived fields of layer typ: base's (the stored header's)
// with d (nil: none) applied.
func derived(base record.Record, typ record.Type, d *collDelta) (n, bytes int64, buckets []uint64) {
	if l := layerOf(base, typ); l != nil {
		n, bytes, buckets = l.Coll.Len, l.Coll.Bytes, l.Coll.Buckets
	}
	if d == nil {
		return n, bytes, buckets
	}
	var out [collBuckets]uint64
	copy(out[:], buckets)
	nz := false
	for i := range out {
		out[i] ^= d.buckets[i]
		nz = nz || out[i] != 0
	}
	buckets = nil
	if nz {
		buckets = out[:]
	}
	return n + d.len, bytes + d.bytes, buckets
}

// layerOf returns r's collection layer of type typ, nil when it has none.
func layerOf(r record.Record, typ record.Type) *record.Layer {
	for i := range r.Layers {
		if l := &r.Layers[i]; l.Type == typ && l.Coll != nil {
			return l
		}
	}
	return nil
}
