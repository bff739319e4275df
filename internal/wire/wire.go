// Package wire has the few primitives of dynakv's internode binary messages: a
// length-prefixed byte string and a Reader that decodes them defensively.
//
// Invariants: a Reader never panics and never allocates more than its input can
// hold (counts are checked against the bytes left); after the first problem every
// read returns a zero value and Done reports that first problem, wrapped in the
// caller's sentinel error.
package wire

import (
	"encoding/binary"
	"fmt"
)

// AppendBytes appends a uvarint length and then p.
func AppendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

// Reader decodes a message, remembering the first problem.
type Reader struct {
	b   []byte
	bad string
}

// NewReader reads b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Fail records a problem (the first one wins) and stops further reads.
func (r *Reader) Fail(why string) {
	if r.bad == "" {
		r.bad = why
	}
	r.b = nil
}

// Failed reports whether a problem was recorded.
func (r *Reader) Failed() bool { return r.bad != "" }

// Problem is the first problem recorded ("" if none).
func (r *Reader) Problem() string { return r.bad }

// Rest returns the unread bytes and consumes them.
func (r *Reader) Rest() []byte {
	b := r.b
	r.b = nil
	return b
}

// Done returns nil if the whole message was read without a problem, or else the
// problem wrapped in sentinel.
func (r *Reader) Done(sentinel error) error {
	if r.bad == "" && len(r.b) != 0 {
		r.Fail(fmt.Sprintf("%d trailing bytes", len(r.b)))
	}
	if r.bad != "" {
		return fmt.Errorf("%w: %s", sentinel, r.bad)
	}
	return nil
}

// Version reads a version byte and fails unless it is v.
func (r *Reader) Version(v byte) {
	if r.Byte() != v && r.bad == "" {
		r.Fail("version")
	}
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if len(r.b) < 1 {
		r.Fail("short")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// U64 reads a big-endian uint64.
func (r *Reader) U64() uint64 {
	if len(r.b) < 8 {
		r.Fail("short")
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

// Uvarint reads a uvarint.
func (r *Reader) Uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.Fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// Count reads an element count, refusing one the remaining bytes cannot hold at
// minSize bytes per element.
func (r *Reader) Count(minSize int) int {
	n := r.Uvarint()
	if n > uint64(len(r.b)/minSize) {
		r.Fail("count exceeds message")
		return 0
	}
	return int(n)
}

// Bytes reads a length-prefixed byte string into a fresh slice (never nil).
func (r *Reader) Bytes() []byte {
	n := r.Uvarint()
	if n > uint64(len(r.b)) {
		r.Fail("length exceeds message")
		return []byte{}
	}
	out := append([]byte{}, r.b[:n]...)
	r.b = r.b[n:]
	return out
}
