package crdt

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
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
	reg   []byte  // the winning value register's bytes (nil when there is none)
	base  numKind // what reg holds
	live  bool    // a value register, or an increment the winner did not observe
	incrs bool    // some increment counts: the winner did not observe it
	float bool    // some counted increment is a float one, or the register holds a float
	sum   int128  // the integer register plus every counted increment's I
	total float64 // when float: the float register + sum + (every counted F, in dot order)
}

// CounterOf resolves f, the same on every replica:
//
//   - the winner is the value register (a register entry that is not a removal
//     marker) with the greatest Stamp; the observation it subtracts is its Obs.
//     With no value register, every removal marker removes what it observed: the
//     observation is the join of their Obs (per actor the greatest dot).
//   - each increment entry counts its totals minus the totals the observation
//     holds for its actor (observed), or whole when the observation holds none
//     of its chain (no total of the actor, or one below the entry's Base), or
//     not at all when the observation holds its dot or a later one.
//   - value = the winner's number (0 when it is a removal, absent or not a
//     number) + the counted I, summed exactly in 128 bits, + the counted F,
//     summed in dot order and added last, so every replica computes the same
//     float (10 with INCRBYFLOAT 0.1 and 0.2 gives 10.3, not 10.299999999999999).
//   - it is live while there is a value register or an increment counts.
//
// Entries of other kinds are ignored.
func CounterOf(f Field) Counter {
	var c Counter
	var regF float64
	win, hasWin := counterWinner(f)
	obs := win.Obs
	if hasWin {
		c.reg, c.live = win.Data, true
		if n, ok := parseInt(win.Data); ok {
			c.base, c.sum = numInt, int128From(n)
		} else if x, ok := parseFloat(win.Data); ok {
			c.base, c.float, regF = numFloat, true, x
		} else {
			c.base = numString
		}
	} else {
		obs = joinMarkers(f)
	}
	var fsum float64
	for _, e := range f {
		if e.Kind != KindIncr {
			continue
		}
		o, counts := unobserved(e, obs)
		if !counts {
			continue
		}
		c.incrs, c.live = true, true
		c.sum = c.sum.add(e.I).sub(o.I)
		// The actor's increments since the observation are float ones when they
		// changed F or made the entry a float one.
		if math.Float64bits(e.F) != math.Float64bits(o.F) {
			c.float = true
			fsum += e.F - o.F
		} else if e.floatIncr() && !o.floatTotal() {
			c.float = true
		}
	}
	if c.float {
		c.total = regF + c.sum.float64() + fsum
	}
	return c
}

// CounterLive reports whether a counter Field holds a value: a value register, or
// an increment the winning register did not observe. A counter layer whose Val is
// not live is absent (a DEL's removal marker and the increments it observed are
// its grave).
func CounterLive(f Field) bool { return CounterOf(f).live }

// counterWinner returns f's value register with the greatest Stamp.
func counterWinner(f Field) (Entry, bool) {
	var w Entry
	ok := false
	for _, e := range f {
		if e.Kind == KindReg && !e.Del && (!ok || e.Stamp().Compare(w.Stamp()) > 0) {
			w, ok = e, true
		}
	}
	return w, ok
}

// joinMarkers returns the join of the observations of f's removal markers: per
// actor the total with the greatest dot (the greater Total if a reused dot makes
// two differ), sorted by actor.
func joinMarkers(f Field) []Total {
	var out []Total
	n := 0
	for _, e := range f {
		if e.Kind == KindReg && e.Del {
			n++
			if n == 1 {
				out = e.Obs
				continue
			}
			out = joinTotals(out, e.Obs)
		}
	}
	return out
}

// joinTotals joins two observations sorted by actor into a fresh one.
func joinTotals(a, b []Total) []Total {
	out := make([]Total, 0, max(len(a), len(b)))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i].Dot.Actor < b[j].Dot.Actor):
			out = append(out, a[i])
			i++
		case i == len(a) || b[j].Dot.Actor < a[i].Dot.Actor:
			out = append(out, b[j])
			j++
		default:
			t := a[i]
			if compareTotal(b[j], t) > 0 {
				t = b[j]
			}
			out = append(out, t)
			i++
			j++
		}
	}
	return out
}

// unobserved returns the totals obs holds of increment entry e's chain (zero when
// none) and whether e counts at all: false when obs holds e's dot or a later one
// of its actor.
func unobserved(e Entry, obs []Total) (Total, bool) {
	i, ok := slices.BinarySearchFunc(obs, e.Dot.Actor, func(t Total, a string) int { return strings.Compare(t.Dot.Actor, a) })
	if !ok || obs[i].Dot.Counter < e.Base {
		return Total{}, true // nothing of this chain observed
	}
	if obs[i].Dot.Counter >= e.Dot.Counter {
		return Total{}, false
	}
	return obs[i], true
}

// observe returns the observation a register written on view f records: per
// actor, its increment entry with the greatest dot.
func observe(f Field) []Total {
	var out []Total
	for _, e := range f {
		if e.Kind != KindIncr {
			continue
		}
		t := Total{Dot: e.Dot, I: e.I, F: e.F, IsFloat: e.IsFloat}
		// Entries are sorted by dot: a later one of the same actor replaces it.
		if n := len(out); n > 0 && out[n-1].Dot.Actor == e.Dot.Actor {
			out[n-1] = t
		} else {
			out = append(out, t)
		}
	}
	return out
}

// floatIncr reports whether an increment entry makes its counter a float one.
func (e Entry) floatIncr() bool { return e.IsFloat || math.Float64bits(e.F) != 0 }

// floatTotal reports whether observed totals were a float one's.
func (t Total) floatTotal() bool { return t.IsFloat || math.Float64bits(t.F) != 0 }

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
// delta at actor: it supersedes the actor's own increment entry with one fresh dot
// (ctx.Next(actor, floor)) holding its totals plus delta, in the same chain
// (Base); with no entry of the actor in f, the new entry starts a chain at its
// own dot. No other entry is touched. f is the coordinator's view (ReadFirst) and
// ctx the context f is stored under, so the new dot is above every dot of the
// actor f could hold. It returns the delta and the value after it, as INCR
// replies.
//
// It refuses, changing nothing, with ErrNotInteger when the current value is not
// an integer (Counter.Int64) and with ErrOverflow when the value plus delta, or
// the actor's own total plus delta, leaves int64. The actor's total is the net
// sum of all its increments of the field since its chain began (resets do not
// end a chain), so the latter needs 2^63 of net increments by one node, or a
// concurrent reset to a large number of the other sign.
func CounterIncr(f Field, ctx Context, actor string, floor uint64, delta int64) (ElemDelta, int64, error) {
	cur, ok := CounterOf(f).Int64()
	if !ok {
		return ElemDelta{}, 0, ErrNotInteger
	}
	if _, ok := addInt64(cur, delta); !ok {
		return ElemDelta{}, 0, fmt.Errorf("%w: %d%+d", ErrOverflow, cur, delta)
	}
	e, seen := ownIncr(f, actor)
	sum, fits := addInt64(e.I, delta)
	if !fits {
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
// CounterIncr: the actor's own increment entry superseded by one with F plus
// delta, marked IsFloat. It returns the delta and the value after it as
// INCRBYFLOAT replies (and GET then shows). It refuses, in Redis's order, with
// ErrNotFloat when the current value is not a float (Counter.Float64), then with
// ErrNaN when delta or the result is NaN or infinite.
func CounterIncrFloat(f Field, ctx Context, actor string, floor uint64, delta float64) (ElemDelta, []byte, error) {
	if _, ok := CounterOf(f).Float64(); !ok {
		return ElemDelta{}, nil, ErrNotFloat
	}
	if math.IsNaN(delta) || math.IsInf(delta, 0) {
		return ElemDelta{}, nil, ErrNaN
	}
	e, seen := ownIncr(f, actor)
	e.F += delta
	e.IsFloat = true
	d, next := supersede(f, ctx, actor, floor, e, seen)
	if _, ok := next.Float64(); !ok {
		return ElemDelta{}, nil, ErrNaN
	}
	return d, next.AppendText(nil), nil
}

// CounterReset is SET (SETEX, GETSET...) of data on a counter, and HSET of a hash
// field: one register entry with data at time ts under a fresh dot that records
// the increment totals f holds (what the coordinator observed, Obs) and
// supersedes every register and removal marker of f. Increment entries stay:
// while the new register wins, each counts only what its actor added since the
// register observed it, so SET 5 concurrent with INCR at another node gives 6
// whether or not that node had incremented before, and a concurrent SET that
// wins instead counts the increments it did not observe. Whether data is a
// number is the caller's business (IsCounterNumber); a register that is not
// renders as its bytes.
func CounterReset(f Field, ctx Context, actor string, floor uint64, data []byte, ts int64) ElemDelta {
	e := Entry{Dot: ctx.Next(actor, floor), Kind: KindReg, Data: bytes.Clone(data), TS: ts, Obs: observe(f)}
	return NewElemDelta(Field{e}, registerDots(f))
}

// CounterDel is DEL (and any write that ends a counter: a type change, GETDEL) of
// a counter whose Val in the coordinator's view is f, and HDEL of a hash field:
// removed reports that f was live, and when it was not the delta is empty. Without
// increment entries it removes exactly the register dots f holds, leaving nothing
// of the counter. With
// them it writes a removal marker (a register with Del set) under a fresh dot
// that records their totals and supersedes every register and marker of f: an
// increment it observed no longer counts, one concurrent with it counts only what
// it added since (DEL concurrent with INCR gives 1), and the counter is live again
// only by such an increment or a value register. The marker and the increment
// entries stay as the counter's grave until the tombstone purge removes them.
func CounterDel(f Field, ctx Context, actor string, floor uint64) (d ElemDelta, removed bool) {
	if !CounterLive(f) {
		return ElemDelta{}, false
	}
	obs := observe(f)
	if len(obs) == 0 {
		return NewElemDelta(nil, registerDots(f)), true
	}
	e := Entry{Dot: ctx.Next(actor, floor), Kind: KindReg, Del: true, Obs: obs}
	return NewElemDelta(Field{e}, registerDots(f)), true
}

// registerDots returns the dots of f's register entries (values and markers).
func registerDots(f Field) []Dot {
	var ds []Dot
	for _, e := range f {
		if e.Kind == KindReg {
			ds = append(ds, e.Dot)
		}
	}
	return ds
}

// ownIncr returns the entry actor's next increment continues (a copy of its
// increment entry of f with the greatest dot, or a zero one starting a chain) and
// the dots of all its increment entries, which the next one supersedes (more than
// one only in a state no mutator wrote, or one whose clear has not reached this
// replica yet).
func ownIncr(f Field, actor string) (e Entry, seen []Dot) {
	e.Kind = KindIncr
	for _, x := range f {
		if x.Kind == KindIncr && x.Dot.Actor == actor {
			seen = append(seen, x.Dot)
			e = Entry{Kind: KindIncr, I: x.I, F: x.F, IsFloat: x.IsFloat, Base: x.Base}
		}
	}
	return e, seen
}

// supersede returns the delta replacing seen with e under actor's next dot, and the
// counter f becomes with it. An e that continues no entry starts a chain there.
func supersede(f Field, ctx Context, actor string, floor uint64, e Entry, seen []Dot) (ElemDelta, Counter) {
	e.Dot = ctx.Next(actor, floor)
	if len(seen) == 0 {
		e.Base = e.Dot.Counter
	}
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

// sub returns a-v.
func (a int128) sub(v int64) int128 {
	lo := a.lo - uint64(v)
	hi := a.hi - v>>63
	if a.lo < uint64(v) {
		hi-- // borrow from the high word
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
