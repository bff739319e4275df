package vclock

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cespare/xxhash/v2"
)

// Encoding versions. A decoder refuses versions it does not know.
const (
	contextVersion = 1
	setVersion     = 1
)

// Limits on what a decoder accepts, so that a hostile context cannot make a node
// allocate much. A context never legitimately has more than a few dozen entries.
const (
	MaxActorLen   = 255
	MaxContextLen = 16 << 10 // encoded (base64) bytes
	// MaxCounter bounds the counters a context may carry. Update adds one per write,
	// so a record grown from any accepted context never overflows its uint64 counter
	// (which would break len(Values) <= Counter and make Sync panic). Floors (unix
	// microseconds) stay far below it. Records accept up to maxRecordCounter, which
	// leaves room for 2^62 writes on top of the largest context.
	MaxCounter       = 1 << 62
	maxRecordCounter = 1 << 63
)

// Sentinel errors. Decoders wrap them with detail.
var (
	ErrBadContext = errors.New("vclock: invalid context")
	ErrBadRecord  = errors.New("vclock: invalid record")
)

// AppendBinary appends the compact binary form of c: a version byte, the entry count,
// then (actor length, actor, counter) per entry, all lengths and counters as uvarints.
func (c Clock) AppendBinary(b []byte) []byte {
	return appendContext(b, c, func(d Dot) (string, uint64) { return d.Actor, d.Counter })
}

// appendContext encodes the dots of xs (a Clock, or a Set's entries) as a context.
func appendContext[T any](b []byte, xs []T, dot func(T) (string, uint64)) []byte {
	b = append(b, contextVersion)
	b = binary.AppendUvarint(b, uint64(len(xs)))
	for _, x := range xs {
		actor, counter := dot(x)
		b = binary.AppendUvarint(b, uint64(len(actor)))
		b = append(b, actor...)
		b = binary.AppendUvarint(b, counter)
	}
	return b
}

// String encodes c as the opaque context handed to clients: base64url (no padding) of
// its binary form. The empty clock encodes as "".
func (c Clock) String() string {
	if len(c) == 0 {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(c.AppendBinary(nil))
}

// Hash returns a 64-bit hash of c, never 0: the memcached cas unique of a record.
func (c Clock) Hash() uint64 {
	if len(c) == 0 {
		return 1
	}
	var buf [128]byte
	return contextHash(c.AppendBinary(buf[:0]))
}

// ContextHash is s.Join().Hash() without building the clock: what every read
// computes for the cas unique.
func (s Set) ContextHash() uint64 {
	if len(s.Entries) == 0 {
		return 1
	}
	var buf [128]byte
	return contextHash(appendContext(buf[:0], s.Entries, func(e Entry) (string, uint64) { return e.Actor, e.Counter }))
}

func contextHash(enc []byte) uint64 {
	if h := xxhash.Sum64(enc); h != 0 {
		return h
	}
	return 1
}

// ParseContext decodes a context produced by Clock.String. "" is the empty clock.
func ParseContext(s string) (Clock, error) {
	if s == "" {
		return nil, nil
	}
	if len(s) > MaxContextLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrBadContext, MaxContextLen)
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadContext, err)
	}
	c, rest, err := DecodeClock(raw)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrBadContext, len(rest))
	}
	return c, nil
}

// DecodeClock decodes a clock from the front of b and returns the remaining bytes.
func DecodeClock(b []byte) (Clock, []byte, error) {
	r := reader{b: b, err: ErrBadContext}
	if v := r.byte(); r.bad == "" && v != contextVersion {
		r.fail(fmt.Sprintf("unknown version %d", v))
	}
	n := r.count(2) // an entry needs at least 2 bytes
	var c Clock
	if n > 0 {
		c = make(Clock, 0, n)
	}
	for i := 0; i < n && r.bad == ""; i++ {
		actor := r.actor()
		counter := r.uvarint()
		if r.bad != "" {
			break
		}
		if counter == 0 {
			r.fail("zero counter")
		} else if counter > MaxCounter {
			r.fail("counter too large")
		} else if i > 0 && actor <= c[i-1].Actor {
			r.fail("actors out of order")
		}
		c = append(c, Dot{actor, counter})
	}
	if r.bad != "" {
		return nil, nil, r.error()
	}
	return c, r.b, nil
}

const (
	flagTombstone = 1 << iota
	flagExpiry
	flagFlags
)

// AppendBinary appends the binary form of s, the record format on disk and on the
// wire: version, entries (actor, counter, active, values), anonymous values.
func (s Set) AppendBinary(b []byte) []byte {
	b = slices.Grow(b, s.encodedSizeBound())
	b = append(b, setVersion)
	b = binary.AppendUvarint(b, uint64(len(s.Entries)))
	for _, e := range s.Entries {
		b = binary.AppendUvarint(b, uint64(len(e.Actor)))
		b = append(b, e.Actor...)
		b = binary.AppendUvarint(b, e.Counter)
		b = binary.AppendVarint(b, e.Active)
		b = appendValues(b, e.Values)
	}
	return appendValues(b, s.Anon)
}

// encodedSizeBound is at least the length of s.AppendBinary(nil), so that one
// allocation holds the encoding.
func (s Set) encodedSizeBound() int {
	n := 1 + binary.MaxVarintLen64
	values := func(vs []Value) {
		n += binary.MaxVarintLen64
		for _, v := range vs {
			n += 1 + 4*binary.MaxVarintLen64 + len(v.Data)
		}
	}
	for _, e := range s.Entries {
		n += 3*binary.MaxVarintLen64 + len(e.Actor)
		values(e.Values)
	}
	values(s.Anon)
	return n
}

func appendValues(b []byte, vs []Value) []byte {
	b = binary.AppendUvarint(b, uint64(len(vs)))
	for _, v := range vs {
		var f byte
		if v.Tombstone {
			f |= flagTombstone
		}
		if v.Expiry != 0 {
			f |= flagExpiry
		}
		if v.Flags != 0 {
			f |= flagFlags
		}
		b = append(b, f)
		b = binary.AppendVarint(b, v.Timestamp)
		if v.Expiry != 0 {
			b = binary.AppendVarint(b, v.Expiry)
		}
		if v.Flags != 0 {
			b = binary.AppendUvarint(b, uint64(v.Flags))
		}
		b = binary.AppendUvarint(b, uint64(len(v.Data)))
		b = append(b, v.Data...)
	}
	return b
}

// DecodeSet decodes a record written by Set.AppendBinary. The result does not alias
// b: it holds one private copy of the payload bytes, so callers may reuse b.
func DecodeSet(b []byte) (Set, error) {
	owned := make([]byte, len(b))
	copy(owned, b)
	s, rest, err := decodeSet(owned)
	if err != nil {
		return Set{}, err
	}
	if len(rest) != 0 {
		return Set{}, fmt.Errorf("%w: %d trailing bytes", ErrBadRecord, len(rest))
	}
	return s, nil
}

func decodeSet(b []byte) (Set, []byte, error) {
	r := reader{b: b, err: ErrBadRecord}
	if v := r.byte(); r.bad == "" && v != setVersion {
		r.fail(fmt.Sprintf("unknown version %d", v))
	}
	var s Set
	n := r.count(4)
	if n > 0 {
		s.Entries = make([]Entry, 0, n)
	}
	for i := 0; i < n && r.bad == ""; i++ {
		e := Entry{Actor: r.actor(), Counter: r.uvarint(), Active: r.varint()}
		e.Values = r.values()
		switch {
		case r.bad != "":
		case e.Counter == 0:
			r.fail("zero counter")
		case e.Counter > maxRecordCounter:
			r.fail("counter too large")
		case uint64(len(e.Values)) > e.Counter:
			r.fail("more values than counter")
		case i > 0 && e.Actor <= s.Entries[i-1].Actor:
			r.fail("actors out of order")
		}
		s.Entries = append(s.Entries, e)
	}
	s.Anon = r.values()
	if r.bad != "" {
		return Set{}, nil, r.error()
	}
	return s, r.b, nil
}

// reader decodes little structures and remembers the first failure, so decoding code
// reads straight through and checks once.
type reader struct {
	b   []byte
	err error
	bad string
}

func (r *reader) fail(why string) {
	if r.bad == "" {
		r.bad = why
	}
}

func (r *reader) error() error { return fmt.Errorf("%w: %s", r.err, r.bad) }

func (r *reader) byte() byte {
	if r.bad != "" {
		return 0
	}
	if len(r.b) == 0 {
		r.fail("truncated")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) uvarint() uint64 {
	if r.bad != "" {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.bad != "" {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads an element count and refuses one that the remaining bytes cannot
// hold at minSize bytes per element, so a header never makes us allocate.
func (r *reader) count(minSize int) int {
	n := r.uvarint()
	if r.bad == "" && n > uint64(len(r.b)/minSize) {
		r.fail("count exceeds input")
		return 0
	}
	return int(n)
}

func (r *reader) bytes(n uint64) []byte {
	if r.bad != "" {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail("truncated")
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) actor() string {
	n := r.uvarint()
	if r.bad == "" && (n == 0 || n > MaxActorLen) {
		r.fail("bad actor length")
		return ""
	}
	return string(r.bytes(n))
}

func (r *reader) values() []Value {
	n := r.count(3)
	var vs []Value
	if n > 0 {
		vs = make([]Value, 0, n)
	}
	for i := 0; i < n && r.bad == ""; i++ {
		f := r.byte()
		if f&^(flagTombstone|flagExpiry|flagFlags) != 0 {
			r.fail("unknown value flags")
		}
		v := Value{Tombstone: f&flagTombstone != 0, Timestamp: r.varint()}
		if f&flagExpiry != 0 {
			v.Expiry = r.varint()
		}
		if f&flagFlags != 0 {
			fl := r.uvarint()
			if fl > 0xffffffff {
				r.fail("flags overflow")
			}
			v.Flags = uint32(fl)
		}
		v.Data = r.bytes(r.uvarint())
		if len(v.Data) == 0 {
			v.Data = nil
		}
		vs = append(vs, v)
	}
	return vs
}
