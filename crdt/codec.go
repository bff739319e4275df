package crdt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Encoding versions: each structure starts with its own, and a decoder refuses
// versions it does not know.
const (
	contextVersion = 1
	fieldVersion   = 1
	deltaVersion   = 1
)

// Decoder limits. Counters stay at or below MaxCounter, so Next never overflows a
// decoded context; actors are as long as vclock allows.
const (
	MaxCounter  = 1 << 63
	MaxActorLen = 255
)

// ErrBadEncoding is what every decoder here wraps when it refuses its input.
var ErrBadEncoding = errors.New("crdt: invalid encoding")

// AppendBinary appends the binary form of c: version, actor count, then per actor
// its name, its run count and each run as (gap from the previous run's end, length
// - 1), all uvarints. The encoding is canonical: equal contexts encode equally.
func (c Context) AppendBinary(b []byte) []byte {
	b = append(b, contextVersion)
	b = binary.AppendUvarint(b, uint64(len(c.as)))
	for _, a := range c.as {
		b = appendActor(b, a.actor)
		b = binary.AppendUvarint(b, uint64(len(a.runs)))
		prev := uint64(0)
		for _, r := range a.runs {
			b = binary.AppendUvarint(b, r.lo-prev)
			b = binary.AppendUvarint(b, r.hi-r.lo)
			prev = r.hi
		}
	}
	return b
}

// DecodeContext decodes a context from the front of b and returns the rest.
func DecodeContext(b []byte) (Context, []byte, error) {
	r := reader{b: b}
	c := r.context()
	if r.bad != "" {
		return Context{}, nil, r.error("context")
	}
	return c, r.b, nil
}

const (
	hasData = 1 << iota
	hasTS
	hasI
	hasF
	isFloat // no payload: Entry.IsFloat (added after version 1 shipped; old bytes never set it)
	// Added later still, so bytes written before decode as before (no observed
	// totals, no chain base):
	hasObs  // registers: uvarint len(Obs)<<1 | Del, then each Total
	hasBase // increments: uvarint Base
)

// AppendBinary appends the binary form of f: version, entry count, then per entry
// its dot (actor, counter), kind, a byte saying which payload fields follow (and
// whether the entry IsFloat), and those fields (TS and I varints, F 8 bytes little
// endian, Data length-prefixed, a register's observed totals and removal flag, an
// increment's chain base). An observed Total is its dot, a byte saying which of
// I, F and IsFloat it holds, then I (varint) and F (8 bytes).
func (f Field) AppendBinary(b []byte) []byte {
	b = append(b, fieldVersion)
	return appendEntries(b, f)
}

func appendEntries(b []byte, f Field) []byte {
	b = binary.AppendUvarint(b, uint64(len(f)))
	for _, e := range f {
		b = appendDot(b, e.Dot)
		var has byte
		if len(e.Data) > 0 {
			has |= hasData
		}
		if e.TS != 0 {
			has |= hasTS
		}
		if e.I != 0 {
			has |= hasI
		}
		if math.Float64bits(e.F) != 0 {
			has |= hasF
		}
		if e.IsFloat {
			has |= isFloat
		}
		if len(e.Obs) > 0 || e.Del {
			has |= hasObs
		}
		if e.Base != 0 {
			has |= hasBase
		}
		b = append(b, byte(e.Kind), has)
		if has&hasTS != 0 {
			b = binary.AppendVarint(b, e.TS)
		}
		if has&hasI != 0 {
			b = binary.AppendVarint(b, e.I)
		}
		if has&hasF != 0 {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(e.F))
		}
		if has&hasData != 0 {
			b = binary.AppendUvarint(b, uint64(len(e.Data)))
			b = append(b, e.Data...)
		}
		if has&hasObs != 0 {
			hdr := uint64(len(e.Obs)) << 1
			if e.Del {
				hdr |= 1
			}
			b = binary.AppendUvarint(b, hdr)
			for _, t := range e.Obs {
				b = appendTotal(b, t)
			}
		}
		if has&hasBase != 0 {
			b = binary.AppendUvarint(b, e.Base)
		}
	}
	return b
}

func appendTotal(b []byte, t Total) []byte {
	b = appendDot(b, t.Dot)
	var has byte
	if t.I != 0 {
		has |= hasI
	}
	if math.Float64bits(t.F) != 0 {
		has |= hasF
	}
	if t.IsFloat {
		has |= isFloat
	}
	b = append(b, has)
	if has&hasI != 0 {
		b = binary.AppendVarint(b, t.I)
	}
	if has&hasF != 0 {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(t.F))
	}
	return b
}

// DecodeField decodes a field from the front of b and returns the rest. The result
// does not alias b.
func DecodeField(b []byte) (Field, []byte, error) {
	r := reader{b: b}
	if v := r.byte(); r.bad == "" && v != fieldVersion {
		r.fail(fmt.Sprintf("unknown field version %d", v))
	}
	f := r.entries()
	if r.bad != "" {
		return nil, nil, r.error("field")
	}
	return f, r.b, nil
}

// AppendBinary appends the binary form of d: version, its entries as a field's,
// then the count and dots of Seen.
func (d ElemDelta) AppendBinary(b []byte) []byte {
	b = append(b, deltaVersion)
	b = appendEntries(b, d.Dots)
	b = binary.AppendUvarint(b, uint64(len(d.Seen)))
	for _, x := range d.Seen {
		b = appendDot(b, x)
	}
	return b
}

// DecodeElemDelta decodes an element delta from the front of b and returns the
// rest. The result does not alias b.
func DecodeElemDelta(b []byte) (ElemDelta, []byte, error) {
	r := reader{b: b}
	if v := r.byte(); r.bad == "" && v != deltaVersion {
		r.fail(fmt.Sprintf("unknown delta version %d", v))
	}
	var d ElemDelta
	d.Dots = r.entries()
	n := r.count(3)
	if n > 0 {
		d.Seen = make([]Dot, 0, n)
	}
	for i := 0; i < n && r.bad == ""; i++ {
		x := r.dot()
		switch {
		case r.bad != "":
		case i > 0 && x.Compare(d.Seen[i-1]) <= 0:
			r.fail("seen dots out of order")
		default:
			if _, ok := d.Dots.Get(x); ok {
				r.fail("seen dot among the delta's dots")
			}
		}
		d.Seen = append(d.Seen, x)
	}
	if r.bad != "" {
		return ElemDelta{}, nil, r.error("element delta")
	}
	return d, r.b, nil
}

func appendActor(b []byte, actor string) []byte {
	b = binary.AppendUvarint(b, uint64(len(actor)))
	return append(b, actor...)
}

func appendDot(b []byte, d Dot) []byte {
	return binary.AppendUvarint(appendActor(b, d.Actor), d.Counter)
}

// reader decodes and remembers the first failure, so decoding code reads straight
// through and checks once.
type reader struct {
	b   []byte
	bad string
}

func (r *reader) fail(why string) {
	if r.bad == "" {
		r.bad = why
	}
}

func (r *reader) error(what string) error {
	return fmt.Errorf("%w: %s: %s", ErrBadEncoding, what, r.bad)
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

// count reads an element count and refuses one the remaining bytes cannot hold at
// minSize bytes per element, so a header never makes the decoder allocate much.
func (r *reader) count(minSize int) int {
	n := r.uvarint()
	if r.bad == "" && n > uint64(len(r.b)/minSize) {
		r.fail("count exceeds input")
		return 0
	}
	return int(n)
}

// take returns the next n bytes, copied.
func (r *reader) take(n uint64) []byte {
	if r.bad == "" && n > uint64(len(r.b)) {
		r.fail("truncated")
	}
	if r.bad != "" {
		return nil
	}
	v := slices.Clone(r.b[:n])
	r.b = r.b[n:]
	return v
}

func (r *reader) actor() string {
	n := r.uvarint()
	if r.bad == "" && (n == 0 || n > MaxActorLen) {
		r.fail("bad actor length")
	}
	return string(r.take(n))
}

func (r *reader) dot() Dot {
	d := Dot{Actor: r.actor(), Counter: r.uvarint()}
	if r.bad == "" && (d.Counter == 0 || d.Counter > MaxCounter) {
		r.fail("bad counter")
	}
	return d
}

func (r *reader) context() Context {
	if v := r.byte(); r.bad == "" && v != contextVersion {
		r.fail(fmt.Sprintf("unknown context version %d", v))
	}
	n := r.count(4)
	var c Context
	if n > 0 {
		c.as = make([]actorDots, 0, n)
	}
	for i := 0; i < n && r.bad == ""; i++ {
		a := actorDots{actor: r.actor()}
		if r.bad == "" && i > 0 && a.actor <= c.as[i-1].actor {
			r.fail("actors out of order")
		}
		k := r.count(2)
		if r.bad == "" && k == 0 {
			r.fail("actor without dots")
		}
		a.runs = make([]run, 0, k)
		prev := uint64(0)
		for j := 0; j < k && r.bad == ""; j++ {
			gap, length := r.uvarint(), r.uvarint()
			minGap := uint64(2) // runs are not adjacent
			if j == 0 {
				minGap = 1
			}
			if r.bad == "" && (gap < minGap || gap > MaxCounter-prev || length > MaxCounter-prev-gap) {
				r.fail("bad run")
			}
			lo := prev + gap
			a.runs = append(a.runs, run{lo, lo + length})
			prev = lo + length
		}
		c.as = append(c.as, a)
	}
	if r.bad != "" {
		return Context{}
	}
	return c
}

func (r *reader) entries() Field {
	n := r.count(5)
	var f Field
	if n > 0 {
		f = make(Field, 0, n)
	}
	for i := 0; i < n && r.bad == ""; i++ {
		e := Entry{Dot: r.dot(), Kind: Kind(r.byte())}
		has := r.byte()
		if r.bad == "" && (e.Kind == 0 || e.Kind > maxKind) {
			r.fail("unknown kind")
		}
		if r.bad == "" && has&^(hasData|hasTS|hasI|hasF|isFloat|hasObs|hasBase) != 0 {
			r.fail("unknown payload flags")
		}
		if has&isFloat != 0 {
			if e.IsFloat = true; e.Kind != KindIncr {
				r.fail("float flag on a non-increment entry")
			}
		}
		if has&hasTS != 0 {
			if e.TS = r.varint(); e.TS == 0 {
				r.fail("zero TS present")
			}
		}
		e.I, e.F = r.sums(has)
		if has&hasData != 0 {
			if e.Data = r.take(r.uvarint()); r.bad == "" && len(e.Data) == 0 {
				r.fail("empty data present")
			}
		}
		if has&hasObs != 0 {
			if r.bad == "" && e.Kind != KindReg {
				r.fail("observed totals on a non-register entry")
			}
			e.Obs, e.Del = r.totals()
		}
		if has&hasBase != 0 {
			if r.bad == "" && e.Kind != KindIncr {
				r.fail("chain base on a non-increment entry")
			}
			if e.Base = r.uvarint(); r.bad == "" && (e.Base == 0 || e.Base > e.Dot.Counter) {
				r.fail("bad chain base")
			}
		}
		if r.bad == "" && i > 0 && e.Dot.Compare(f[i-1].Dot) <= 0 {
			r.fail("dots out of order")
		}
		f = append(f, e)
	}
	if r.bad != "" {
		return nil
	}
	return f
}

// totals reads a register's observed totals and removal flag: at most one total
// per actor, sorted by actor, and not both absent (then the flag is not set).
func (r *reader) totals() ([]Total, bool) {
	hdr := r.uvarint()
	if r.bad == "" && hdr == 0 {
		r.fail("empty observation present")
	}
	n := hdr >> 1
	if r.bad == "" && n > uint64(len(r.b)/4) {
		r.fail("count exceeds input")
	}
	if r.bad != "" {
		return nil, false
	}
	var ts []Total
	if n > 0 {
		ts = make([]Total, 0, n)
	}
	for i := uint64(0); i < n && r.bad == ""; i++ {
		t := Total{Dot: r.dot()}
		has := r.byte()
		if r.bad == "" && has&^(hasI|hasF|isFloat) != 0 {
			r.fail("unknown total flags")
		}
		t.IsFloat = has&isFloat != 0
		t.I, t.F = r.sums(has)
		if r.bad == "" && i > 0 && t.Dot.Actor <= ts[i-1].Dot.Actor {
			r.fail("observed totals out of order")
		}
		ts = append(ts, t)
	}
	if r.bad != "" {
		return nil, false
	}
	return ts, hdr&1 != 0
}

// sums reads the I and F payloads the flags has say follow (an entry's or an
// observed total's); a present one must not be zero, which the encoder omits.
func (r *reader) sums(has byte) (i int64, f float64) {
	if has&hasI != 0 {
		if i = r.varint(); i == 0 {
			r.fail("zero I present")
		}
	}
	if has&hasF != 0 {
		raw := r.take(8)
		if len(raw) == 8 {
			if bits := binary.LittleEndian.Uint64(raw); bits == 0 {
				r.fail("zero F present")
			} else {
				f = math.Float64frombits(bits)
			}
		}
	}
	return i, f
}
