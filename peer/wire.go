package peer

import (
	"encoding/binary"
	"fmt"

	"github.com/dynakv/dynakv/record"
)

// The primitives of every message: a version byte first, uvarint counts and
// lengths, big-endian fixed-width hashes, length-prefixed byte strings.

// version is the first byte of every request and reply body.
const version = 1

// appendBytes appends a uvarint length and then p.
func appendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

// reader decodes a message, remembering the first problem. It never panics and
// never allocates more than its input can hold (counts are checked against the
// bytes left); after the first problem every read returns a zero value and done
// reports that problem, wrapped in ErrBadMessage.
type reader struct {
	b   []byte
	bad string
}

// newReader reads b.
func newReader(b []byte) *reader { return &reader{b: b} }

// msgReader reads a message starting with its version byte.
func msgReader(b []byte) *reader {
	r := newReader(b)
	r.version()
	return r
}

// version reads a version byte and fails unless it is version.
func (r *reader) version() {
	if r.byte() != version && r.bad == "" {
		r.fail("version")
	}
}

// fail records a problem (the first one wins) and stops further reads.
func (r *reader) fail(why string) {
	if r.bad == "" {
		r.bad = why
	}
	r.b = nil
}

// failed reports whether a problem was recorded.
func (r *reader) failed() bool { return r.bad != "" }

// rest returns the unread bytes and consumes them.
func (r *reader) rest() []byte {
	b := r.b
	r.b = nil
	return b
}

// done returns nil if the whole message was read without a problem, or else the
// problem wrapped in ErrBadMessage.
func (r *reader) done() error {
	if r.bad == "" && len(r.b) != 0 {
		r.fail(fmt.Sprintf("%d trailing bytes", len(r.b)))
	}
	if r.bad != "" {
		return fmt.Errorf("%w: %s", ErrBadMessage, r.bad)
	}
	return nil
}

// byte reads one byte.
func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.fail("short")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// u64 reads a big-endian uint64.
func (r *reader) u64() uint64 {
	if len(r.b) < 8 {
		r.fail("short")
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

// uvarint reads a uvarint.
func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads an element count, refusing one the remaining bytes cannot hold at
// minSize bytes per element.
func (r *reader) count(minSize int) int {
	n := r.uvarint()
	if n > uint64(len(r.b)/minSize) {
		r.fail("count exceeds message")
		return 0
	}
	return int(n)
}

// bytes reads a length-prefixed byte string into a fresh slice (never nil).
func (r *reader) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail("length exceeds message")
		return []byte{}
	}
	out := append([]byte{}, r.b[:n]...)
	r.b = r.b[n:]
	return out
}

// partition reads a partition number (< 2^16, as storage allows).
func (r *reader) partition() int {
	p := r.uvarint()
	if p >= 1<<16 {
		r.fail("partition out of range")
		return 0
	}
	return int(p)
}

// record decodes the rest of the message as a record.
func (r *reader) record() record.Record {
	if r.failed() {
		return record.Record{}
	}
	rec, err := record.Decode(r.rest())
	if err != nil {
		r.fail(err.Error())
		return record.Record{}
	}
	return rec
}
