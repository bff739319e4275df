package crdt

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
)

// Counter errors, one per Redis refusal; callers map them to their wire text with
// errors.Is (the text after "crdt: " is Redis's). A refused command changes nothing.
var (
	ErrNotInteger = errors.New("crdt: value is not an integer or out of range")
	ErrOverflow   = errors.New("crdt: increment or decrement would overflow")
	ErrNotFloat   = errors.New("crdt: value is not a valid float")
	ErrNaN        = errors.New("crdt: increment would produce NaN or Infinity")
)

// numKind is what a counter's register holds.
type numKind uint8

const (
	numNone   numKind = iota // no register: the base is 0
	numInt                   // an integer by Redis's string2ll
	numFloat                 // a finite float by Redis's string2ld, not an integer
	numString                // neither: the value is the register's bytes
)

// Counter is the resolved value of a counter Field: a counter layer's Val or a
// hash field (3.2, 3.3 of the issue 20 design). Build it with CounterOf.
type Counter struct {
	reg   []byte  // the winning register's bytes (nil when there is none)
	base  numKind // what reg holds
	incrs bool    // the field holds an increment entry
	float bool    // some increment is a float one, or the register holds a float
	sum   int128  // the integer register plus every increment's I
	total float64 // when float: the float register + sum + (every F, in dot order)
}

// CounterOf resolves f: the register with the greatest Stamp (0 when none) plus
// every increment entry's I, summed exactly in 128 bits, plus every increment's F,
// summed in dot order so that every replica computes the same float. The F sum is
// added last, so small fractions add up before they meet a large base (10 with
// INCRBYFLOAT 0.1 and 0.2 gives 10.3, not 10.299999999999999). Entries of other
// kinds are ignored.
func CounterOf(f Field) Counter {
	var c Counter
	var regF float64
	if w, ok := f.Winner(KindReg); ok {
		c.reg = w.Data
		if n, ok := parseInt(w.Data); ok {
			c.base, c.sum = numInt, int128From(n)
		} else if x, ok := parseFloat(w.Data); ok {
			c.base, c.float, regF = numFloat, true, x
		} else {
			c.base = numString
		}
	}
	for _, e := range f {
		if e.Kind == KindIncr {
			c.incrs = true
			c.sum = c.sum.add(e.I)
			c.float = c.float || e.floatIncr()
		}
	}
	if !c.float {
		return c
	}
	var fsum float64
	for _, e := range f {
		if e.Kind == KindIncr && e.floatIncr() {
			fsum += e.F
		}
	}
	c.total = regF + c.sum.float64() + fsum
	return c
}

// floatIncr reports whether an increment entry makes its counter a float one.
func (e Entry) floatIncr() bool { return e.IsFloat || math.Float64bits(e.F) != 0 }

// AppendText appends c as GET shows it, the way Redis would store it:
//
//   - no increment entry: the register's bytes exactly (SET 010, GET gives 010),
//     or "0" when there is no register either;
//   - a register that is not a number (a hash field HSET to "abc" concurrently
//     with an HINCRBY): its bytes, the increments kept but not shown;
//   - no float part: the exact decimal integer, which may exceed int64;
//   - a float part: INCRBYFLOAT's rendering (appendFloat).
func (c Counter) AppendText(b []byte) []byte {
	switch {
	case !c.incrs && c.base != numNone, c.base == numString:
		return append(b, c.reg...)
	case c.float:
		return appendFloat(b, c.total)
	}
	return c.sum.appendDecimal(b)
}

// Int64 returns c as INCR reads it: its rendering parsed by Redis's string2ll, so
// "010", a float part with digits after the point, and sums beyond int64 are not
// integers. A float-part value that renders as an integer ("2" after INCRBYFLOAT
// 1.5 and 0.5) is one, as in Redis.
func (c Counter) Int64() (int64, bool) {
	switch {
	case c.base == numString:
		return 0, false
	case !c.float: // the rendering is sum's decimal, or the register's canonical one
		return c.sum.int64()
	}
	var buf [32]byte
	return parseInt(c.AppendText(buf[:0]))
}

// Float64 returns c as INCRBYFLOAT reads it: its rendering parsed by Redis's
// string2ld. An infinity is refused, as proxy refuses a stored one today.
func (c Counter) Float64() (float64, bool) {
	switch {
	case c.base == numString:
		return 0, false
	case !c.float: // strtold of a decimal integer rounds to nearest, as this does
		return c.sum.float64(), true
	}
	// The rendering is the shortest that reads back as total, or a float register's
	// bytes, which read as total when there is no increment.
	if math.IsInf(c.total, 0) || math.IsNaN(c.total) {
		return 0, false
	}
	return c.total, true
}

// IsCounterNumber reports whether b is a number a counter register holds as one:
// an integer by Redis's string2ll or a finite float by its string2ld. A SET of such
// bytes on a counter is a reset (CounterReset); of other bytes, a string write.
func IsCounterNumber(b []byte) bool {
	if _, ok := parseInt(b); ok {
		return true
	}
	_, ok := parseFloat(b)
	return ok
}

// CounterIncr is INCR, INCRBY, DECR and DECRBY (and HINCRBY on a hash field) by
// delta at actor: it supersedes the actor's own increment entries with one fresh
// dot (ctx.Next(actor, floor)) holding their I plus delta and their F. f is the
// coordinator's view (ReadFirst) and ctx the context f is stored under, so the new
// dot is above every dot of the actor f could hold. It returns the delta and the
// value after it, as INCR replies.
//
// It refuses, changing nothing, with ErrNotInteger when the current value is not
// an integer (Counter.Int64) and with ErrOverflow when the value plus delta, or the
// actor's own sum plus delta, leaves int64. The latter needs a concurrent reset to
// a large number of the other sign, and would otherwise need a second entry.
func CounterIncr(f Field, ctx Context, actor string, floor uint64, delta int64) (ElemDelta, int64, error) {
	cur, ok := CounterOf(f).Int64()
	if !ok {
		return ElemDelta{}, 0, ErrNotInteger
	}
	if _, ok := addInt64(cur, delta); !ok {
		return ElemDelta{}, 0, fmt.Errorf("%w: %d%+d", ErrOverflow, cur, delta)
	}
	e, seen, ok := ownIncr(f, actor)
	sum, fits := addInt64(e.I, delta)
	if !ok || !fits {
		return ElemDelta{}, 0, fmt.Errorf("%w: actor %s's increments %d%+d", ErrOverflow, actor, e.I, delta)
	}
	e.I = sum
	d, next := supersede(f, ctx, actor, floor, e, seen)
	v, ok := next.Int64()
	if !ok { // a float part rounded past int64
		return ElemDelta{}, 0, fmt.Errorf("%w: %d%+d with a float part", ErrOverflow, cur, delta)
	}
	return d, v, nil
}

// CounterIncrFloat is INCRBYFLOAT (and HINCRBYFLOAT) by delta at actor, as
// CounterIncr: the actor's own increments superseded by one entry with F plus delta,
// marked IsFloat. It returns the delta and the value after it as INCRBYFLOAT
// replies (and GET then shows). It refuses, in Redis's order, with ErrNotFloat
// when the current value is not a float (Counter.Float64), then with ErrNaN when
// delta or the result is NaN or infinite.
func CounterIncrFloat(f Field, ctx Context, actor string, floor uint64, delta float64) (ElemDelta, []byte, error) {
	if _, ok := CounterOf(f).Float64(); !ok {
		return ElemDelta{}, nil, ErrNotFloat
	}
	if math.IsNaN(delta) || math.IsInf(delta, 0) {
		return ElemDelta{}, nil, ErrNaN
	}
	e, seen, ok := ownIncr(f, actor)
	if !ok {
		return ElemDelta{}, nil, fmt.Errorf("%w: actor %s's increments", ErrOverflow, actor)
	}
	e.F += delta
	e.IsFloat = true
	d, next := supersede(f, ctx, actor, floor, e, seen)
	if _, ok := next.Float64(); !ok {
		return ElemDelta{}, nil, ErrNaN
	}
	return d, next.AppendText(nil), nil
}

// CounterReset is SET (SETEX, GETSET...) of data on a counter, and HSET of a hash
// field: it removes every register and increment entry of f (what the coordinator
// observed) and adds one register entry with data at time ts under a fresh dot.
// Increments f does not hold survive the merge: SET 5 concurrent with INCR at
// another node gives 6. Whether data is a number is the caller's business
// (IsCounterNumber); a register that is not renders as its bytes.
func CounterReset(f Field, ctx Context, actor string, floor uint64, data []byte, ts int64) ElemDelta {
	var seen []Dot
	for _, e := range f {
		if e.Kind == KindReg || e.Kind == KindIncr {
			seen = append(seen, e.Dot)
		}
	}
	e := Entry{Dot: ctx.Next(actor, floor), Kind: KindReg, Data: bytes.Clone(data), TS: ts}
	return NewElemDelta(Field{e}, seen)
}

// ownIncr returns actor's increment entries of f folded into one (I summed, F in
// dot order, IsFloat if any) and their dots; ok is false when their I sum leaves
// int64 (only a state no mutator wrote has two such entries).
func ownIncr(f Field, actor string) (e Entry, seen []Dot, ok bool) {
	e.Kind = KindIncr
	ok = true
	for _, x := range f {
		if x.Kind != KindIncr || x.Dot.Actor != actor {
			continue
		}
		seen = append(seen, x.Dot)
		var fits bool
		e.I, fits = addInt64(e.I, x.I)
		ok = ok && fits
		e.F += x.F
		e.IsFloat = e.IsFloat || x.floatIncr()
	}
	return e, seen, ok
}

// supersede returns the delta replacing seen with e under actor's next dot, and the
// counter f becomes with it.
func supersede(f Field, ctx Context, actor string, floor uint64, e Entry, seen []Dot) (ElemDelta, Counter) {
	e.Dot = ctx.Next(actor, floor)
	d := NewElemDelta(Field{e}, seen)
	// What ApplyElemDelta(f, ctx, d) leaves, without joining the context: seen are
	// f's entries and e's dot is above every dot of actor that ctx holds.
	next := make(Field, 0, len(f)+1)
	placed := false
	for _, x := range f {
		if x.Dot.Actor == actor && x.Kind == KindIncr {
			continue
		}
		if !placed && e.Dot.Compare(x.Dot) < 0 {
			next, placed = append(next, e), true
		}
		next = append(next, x)
	}
	if !placed {
		next = append(next, e)
	}
	return d, CounterOf(next)
}

// addInt64 returns a+b and whether it did not overflow.
func addInt64(a, b int64) (int64, bool) {
	s := a + b
	return s, (s > a) == (b > 0)
}

// int128 is a signed 128-bit integer, hi*2^64 + lo. Counters sum their increments
// in it: one entry per actor, each within int64, so no realistic field reaches its
// bounds (it would take 2^63 entries).
type int128 struct {
	hi int64
	lo uint64
}

func int128From(v int64) int128 { return int128{hi: v >> 63, lo: uint64(v)} }

// add returns a+v.
func (a int128) add(v int64) int128 {
	lo := a.lo + uint64(v)
	hi := a.hi + v>>63 // v's high word: 0 or -1
	if lo < a.lo {
		hi++ // carry out of the low word
	}
	return int128{hi: hi, lo: lo}
}

// int64 returns a and whether it fits in an int64.
func (a int128) int64() (int64, bool) {
	v := int64(a.lo)
	if a.hi != v>>63 {
		return 0, false
	}
	return v, true
}

func (a int128) big() *big.Int {
	x := new(big.Int).Lsh(big.NewInt(a.hi), 64)
	return x.Add(x, new(big.Int).SetUint64(a.lo))
}

// float64 returns a rounded to the nearest float64.
func (a int128) float64() float64 {
	if v, ok := a.int64(); ok {
		return float64(v)
	}
	f, _ := new(big.Float).SetInt(a.big()).Float64()
	return f
}

// appendDecimal appends a in decimal.
func (a int128) appendDecimal(b []byte) []byte {
	if v, ok := a.int64(); ok {
		return strconv.AppendInt(b, v, 10)
	}
	return a.big().Append(b, 10)
}

// appendFloat appends f as proxy formats INCRBYFLOAT's reply (proxy.FormatFloat),
// which stands for Redis's ld2string(LD_STR_HUMAN), "%.17Lf" with its trailing
// zeros trimmed, on a float64: plain decimal notation, no exponent, the shortest
// digits that read back as f, and "0" for negative zero. Infinities and NaN, which
// only a field no mutator wrote can sum to, render as "inf", "-inf" and "nan".
func appendFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "nan"...)
	case math.IsInf(f, 1):
		return append(b, "inf"...)
	case math.IsInf(f, -1):
		return append(b, "-inf"...)
	case f == 0:
		f = 0 // -0 == 0: drop the sign
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64)
}

// parseInt parses b as Redis's string2ll: the canonical decimal form of an int64
// only (an optional '-', no '+', no spaces, no leading zeros, no "-0"). It checks
// that form by formatting the number again, so it shares no code with
// internal/num.ParseInt, which crdt may not import (DESIGN.md's layout); the tests
// check both agree.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 { // "-9223372036854775808" is 20 bytes
		return 0, false
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, false
	}
	var buf [20]byte
	if !bytes.Equal(strconv.AppendInt(buf[:0], n, 10), b) {
		return 0, false
	}
	return n, true
}

// maxFloatLen is Redis's MAX_LONG_DOUBLE_CHARS: string2ld refuses this many bytes.
const maxFloatLen = 5 * 1024

// parseFloat parses b as Redis's string2ld (strtold) for a counter: no leading
// space, the whole of b used, shorter than 5 KiB, and a finite result (Redis takes
// "inf" but then refuses to add to it; proxy refuses it as not a float). Go's
// digit separators ("1_0") are refused: strtold stops at '_'. Known differences,
// shared with internal/num: a hex float needs its 'p' exponent ("0x10" is refused,
// strtold reads 16), and float64's range is narrower than long double's (1e400 is
// refused, 1e-400 reads as 0).
func parseFloat(b []byte) (float64, bool) {
	if len(b) == 0 || len(b) >= maxFloatLen || bytes.IndexByte(b, '_') >= 0 {
		return 0, false
	}
	switch b[0] {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return 0, false
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}
