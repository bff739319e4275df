package record

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/dynakv/dynakv/crdt"
	"github.com/dynakv/dynakv/vclock"
)

// Encoding versions: the first byte of an encoded record. Version 1 is
// vclock.Set's own encoding.
const (
	versionString = 1
	versionTyped  = 2
)

// Decoder limits.
const (
	// MaxBuckets bounds a collection's bucket digests (2.2 uses 64).
	MaxBuckets  = 64
	maxActorLen = 255
)

// ErrBadRecord is what Decode wraps when it refuses a version 2 record or an
// unknown version. A version 1 record's errors are vclock's (vclock.ErrBadRecord).
var ErrBadRecord = errors.New("record: invalid record")

// AppendBinary appends the binary form of r: its string layer's encoding
// (version 1) when r has no typed part, else version 2 (see the package doc).
func (r Record) AppendBinary(b []byte) []byte {
	if !r.Typed() {
		return r.Str.AppendBinary(b)
	}
	b = appendHeader(b, versionTyped, r.Str, r.Ctx, r.TTL)
	b = binary.AppendUvarint(b, uint64(len(r.Layers)))
	for _, l := range r.Layers {
		b = l.appendBinary(b)
	}
	return b
}

func (l Layer) appendBinary(b []byte) []byte {
	b = appendLayerHead(b, l.Type, l.Stamp, l.Dead, l.Val)
	if l.Coll == nil {
		return append(b, 0)
	}
	return l.Coll.appendBinary(append(b, 1))
}

// appendHeader appends what a record and a delta begin with: the version, the
// string layer (length-prefixed, version 1), the meta context and the TTL.
func appendHeader(b []byte, version byte, str vclock.Set, ctx crdt.Context, ttl crdt.Field) []byte {
	b = append(b, version)
	enc := str.AppendBinary(nil)
	b = binary.AppendUvarint(b, uint64(len(enc)))
	b = append(b, enc...)
	b = ctx.AppendBinary(b)
	return ttl.AppendBinary(b)
}

// appendLayerHead appends what a record's layer and a delta's share.
func appendLayerHead(b []byte, t Type, s crdt.Stamp, dead int64, val crdt.Field) []byte {
	b = append(b, byte(t))
	b = binary.AppendVarint(b, s.TS)
	b = appendString(b, s.Dot.Actor)
	b = binary.AppendUvarint(b, s.Dot.Counter)
	b = binary.AppendVarint(b, dead)
	return val.AppendBinary(b)
}

func (c *Coll) appendBinary(b []byte) []byte {
	b = c.Ctx.AppendBinary(b)
	b = c.Clear.AppendBinary(b)
	b = binary.AppendVarint(b, c.Len)
	b = binary.AppendVarint(b, c.Bytes)
	// Buckets, sparse: the length, then (index, digest) of each non-zero one.
	b = binary.AppendUvarint(b, uint64(len(c.Buckets)))
	nz := 0
	for _, d := range c.Buckets {
		if d != 0 {
			nz++
		}
	}
	b = binary.AppendUvarint(b, uint64(nz))
	for i, d := range c.Buckets {
		if d != 0 {
			b = binary.AppendUvarint(b, uint64(i))
			b = binary.LittleEndian.AppendUint64(b, d)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(c.Actors)))
	for _, a := range slices.Sorted(maps.Keys(c.Actors)) {
		b = appendString(b, a)
		b = binary.AppendVarint(b, c.Actors[a])
	}
	if c.SweepFrom == nil {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(c.SweepFrom))+1)
	return append(b, c.SweepFrom...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Decode decodes a whole record: version 1 as Record{Str: set}, version 2 typed.
// It refuses anything else, trailing bytes included. The result does not alias b.
func Decode(b []byte) (Record, error) {
	if len(b) == 0 || b[0] == versionString {
		s, err := vclock.DecodeSet(b)
		if err != nil {
			return Record{}, err
		}
		return Record{Str: s}, nil
	}
	if b[0] != versionTyped {
		return Record{}, fmt.Errorf("%w: unknown version %d", ErrBadRecord, b[0])
	}
	r := reader{b: b[1:]}
	var rec Record
	rec.Str, rec.Ctx, rec.TTL = r.header()
	n := r.count(6) // a layer needs at least 6 bytes
	if n > 0 {
		rec.Layers = make([]Layer, 0, n)
	}
	for i := 0; i < n && r.bad == ""; i++ {
		l := r.layer()
		if r.bad == "" && i > 0 && l.Type <= rec.Layers[i-1].Type {
			r.fail("layers out of order")
		}
		rec.Layers = append(rec.Layers, l)
	}
	if r.bad == "" && len(r.b) != 0 {
		r.fail(fmt.Sprintf("%d trailing bytes", len(r.b)))
	}
	if r.bad == "" && !rec.Typed() {
		r.fail("version 2 without a typed part")
	}
	if r.bad != "" {
		return Record{}, r.error()
	}
	return rec, nil
}

// header reads what a record and a delta begin with: the string layer, the
// meta context and the TTL register.
func (r *reader) header() (vclock.Set, crdt.Context, crdt.Field) {
	return r.set(), r.context("meta context"), r.field("ttl")
}

// set reads a length-prefixed string layer (vclock.Set's version 1 encoding).
func (r *reader) set() vclock.Set {
	var s vclock.Set
	if n := r.uvarint(); r.bad == "" {
		if n > uint64(len(r.b)) {
			r.fail("string layer truncated")
		} else if s, r.err = vclock.DecodeSet(r.b[:n]); r.err != nil {
			r.fail("string layer")
		} else {
			r.b = r.b[n:]
		}
	}
	return s
}

func (r *reader) layer() Layer {
	var l Layer
	l.Type, l.Stamp, l.Dead, l.Val = r.layerHead()
	switch has := r.byte(); {
	case r.bad != "":
	case has > 1:
		r.fail("bad collection flag")
	case (has == 1) != l.Type.Collection():
		r.fail(fmt.Sprintf("collection flag %d on layer type %d", has, l.Type))
	case has == 1:
		l.Coll = r.coll()
	}
	return l
}

// layerHead reads what a record's layer and a delta's share: type, stamp, dead
// time and value.
func (r *reader) layerHead() (t Type, s crdt.Stamp, dead int64, val crdt.Field) {
	if t = Type(r.byte()); r.bad == "" && (t == 0 || t > maxType) {
		r.fail(fmt.Sprintf("unknown layer type %d", t))
	}
	s.TS = r.varint()
	s.Dot.Actor = r.string(maxActorLen)
	s.Dot.Counter = r.uvarint()
	if r.bad == "" && ((s.Dot.Actor == "") != (s.Dot.Counter == 0) || s.Dot.Counter > crdt.MaxCounter) {
		r.fail("bad stamp dot")
	}
	if dead = r.varint(); r.bad == "" && dead < 0 {
		r.fail("negative dead time")
	}
	return t, s, dead, r.field("layer value")
}

func (r *reader) coll() *Coll {
	c := &Coll{Ctx: r.context("collection context"), Clear: r.context("clear context")}
	c.Len, c.Bytes = r.varint(), r.varint()
	if r.bad == "" && (c.Len < 0 || c.Bytes < 0) {
		r.fail("negative collection size")
	}
	nb := r.uvarint()
	if r.bad == "" && nb > MaxBuckets {
		r.fail("too many buckets")
	}
	if r.bad == "" && nb > 0 {
		c.Buckets = make([]uint64, nb)
	}
	nz := r.count(9)
	for i, last := 0, -1; i < nz && r.bad == ""; i++ {
		at := r.uvarint()
		d := r.uint64()
		switch {
		case r.bad != "":
		case at >= nb || int(at) <= last:
			r.fail("bad bucket index")
		case d == 0:
			r.fail("zero bucket present")
		default:
			c.Buckets[at], last = d, int(at)
		}
	}
	if na := r.count(3); na > 0 {
		c.Actors = make(map[string]int64, na)
		last := ""
		for i := 0; i < na && r.bad == ""; i++ {
			a := r.string(maxActorLen)
			v := r.varint()
			switch {
			case r.bad != "":
			case a == "" || (i > 0 && a <= last):
				r.fail("bad or unordered actor")
			case v <= 0:
				r.fail("bad actor dot count")
			default:
				c.Actors[a], last = v, a
			}
		}
	}
	if n := r.uvarint(); r.bad == "" && n > 0 {
		if c.SweepFrom = r.take(n - 1); c.SweepFrom == nil && r.bad == "" {
			c.SweepFrom = []byte{}
		}
	}
	return c
}

// reader decodes and remembers the first failure, so decoding reads straight
// through and checks once.
type reader struct {
	b        []byte
	bad      string
	err      error // the failure of a nested decoder, wrapped by error
	sentinel error // what error wraps; nil: ErrBadRecord
}

func (r *reader) fail(why string) {
	if r.bad == "" {
		r.bad = why
	}
}

func (r *reader) error() error {
	s := cmp.Or(r.sentinel, ErrBadRecord)
	if r.err != nil {
		return fmt.Errorf("%w: %s: %w", s, r.bad, r.err)
	}
	return fmt.Errorf("%w: %s", s, r.bad)
}

func (r *reader) byte() byte {
	if r.bad == "" && len(r.b) == 0 {
		r.fail("truncated")
	}
	if r.bad != "" {
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) uvarint() uint64 { return readVarint(r, binary.Uvarint) }

func (r *reader) varint() int64 { return readVarint(r, binary.Varint) }

func readVarint[T int64 | uint64](r *reader, dec func([]byte) (T, int)) T {
	if r.bad != "" {
		return 0
	}
	v, n := dec(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// uint64 reads 8 little-endian bytes in place: a Coll's 64 bucket digests cost
// no allocation.
func (r *reader) uint64() uint64 {
	if raw := r.next(8); len(raw) == 8 {
		return binary.LittleEndian.Uint64(raw)
	}
	return 0
}

// count reads an element count and refuses one the remaining bytes cannot hold
// at minSize bytes per element, so a header never makes the decoder allocate much.
func (r *reader) count(minSize int) int {
	n := r.uvarint()
	if r.bad == "" && n > uint64(len(r.b)/minSize) {
		r.fail("count exceeds input")
		return 0
	}
	return int(n)
}

// take returns the next n bytes, copied (nil for none).
func (r *reader) take(n uint64) []byte {
	if v := r.next(n); v != nil {
		return slices.Clone(v)
	}
	return nil
}

// next returns the next n bytes in place, aliasing the input (nil for none).
func (r *reader) next(n uint64) []byte {
	if r.bad == "" && n > uint64(len(r.b)) {
		r.fail("truncated")
	}
	if r.bad != "" || n == 0 {
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) string(maxLen uint64) string {
	n := r.uvarint()
	if r.bad == "" && n > maxLen {
		r.fail("string too long")
	}
	return string(r.take(n))
}

func (r *reader) context(what string) crdt.Context {
	if r.bad != "" {
		return crdt.Context{}
	}
	c, rest, err := crdt.DecodeContext(r.b)
	if err != nil {
		r.fail(what)
		r.err = err
		return crdt.Context{}
	}
	r.b = rest
	return c
}

func (r *reader) field(what string) crdt.Field {
	if r.bad != "" {
		return nil
	}
	f, rest, err := crdt.DecodeField(r.b)
	if err != nil {
		r.fail(what)
		r.err = err
		return nil
	}
	r.b = rest
	return f
}
