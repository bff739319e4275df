package crdt

import (
	"errors"
	"math"
)

// Hash errors: Redis's refusals of HINCRBY and HINCRBYFLOAT that differ from
// INCRBY's and INCRBYFLOAT's. The text after "crdt: " is Redis's. An increment
// that overflows, or a sum that is NaN or infinite, gives the counter errors
// (ErrOverflow, ErrNaN), whose texts Redis's hash commands share. They are distinct
// values, not wrappers of the counter errors, so a table mapping errors to wire
// text with errors.Is finds exactly one row whatever its order.
var (
	ErrHashNotInteger = errors.New("crdt: hash value is not an integer")
	ErrHashNotFloat   = errors.New("crdt: hash value is not a float")
	// ErrHashIncrNaN: HINCRBYFLOAT's increment itself is NaN or infinite, refused
	// before the field is read (Redis 7's hincrbyfloatCommand; INCRBYFLOAT reads
	// the value first and answers ErrNotFloat or ErrNaN instead).
	ErrHashIncrNaN = errors.New("crdt: value is NaN or Infinity")
)

// Hashes are OR-maps of registers and counters (3.3 of the issue 20 design): a
// field is an element whose Field holds register entries (HSET's bytes at its
// time, HDEL's removal markers) and increment entries (HINCRBY, HINCRBYFLOAT),
// read as a counter.

// HashLive reports whether a hash field's Field holds a value: HEXISTS, and
// whether HSET creates the field. It is CounterLive: a value register, or an
// increment the winning register did not observe. A field removed by HDEL
// while it held increments is not live: its marker and increments are a grave.
func HashLive(elem Field) bool { return CounterLive(elem) }

// HashValue returns a hash field's value as HGET shows it, and false when the
// field is not live. It is the field read as a counter (CounterOf, AppendText):
// the value register with the greatest (TS, dot), plus what each actor
// incremented since that register observed it.
//
//   - Only a register: its bytes exactly (HSET 010, HGET 010).
//   - Increments the register did not observe (with or without a numeric
//     register): the rendered sum, as HINCRBY and HINCRBYFLOAT answered.
//   - A register that is not a number, with increments it did not observe (HSET
//     f abc at one node concurrent with HINCRBY f 1 at another): the register's
//     bytes, "abc", the increments kept but not shown. That is the value of every
//     serial order of the two on Redis (HINCRBY then HSET gives abc; HSET then
//     HINCRBY refuses and leaves abc), so a user sees what a single server could
//     have left. The next HINCRBY refuses with ErrHashNotInteger, as Redis would;
//     the next HSET that observed the field no longer counts them.
func HashValue(elem Field) ([]byte, bool) {
	c := CounterOf(elem)
	if !c.live {
		return nil, false
	}
	return c.AppendText(nil), true
}

// HashSet is HSET (HMSET) of one field whose Field in the coordinator's view is
// elem: one fresh register dot holding value at time ts that records the
// increment totals elem holds and supersedes every register and marker of elem
// (CounterReset). Increments it did not observe add to a numeric value while it
// wins; a concurrent HDEL leaves it (a value register beats every marker). created
// reports that the field was not live before, which HSET counts.
func (s *Dots) HashSet(elem Field, value []byte, ts int64) (d ElemDelta, created bool) {
	// CounterReset's dot is ctx.Next(actor, floor): with an empty context, exactly
	// floor, here the dot s hands out.
	return CounterReset(elem, Context{}, s.actor, s.Next().Counter, value, ts), !HashLive(elem)
}

// HashSetNX is HSETNX: HashSet when the field is not live in the view, else
// nothing (the empty delta and false), as HSETNX answers 0.
func (s *Dots) HashSetNX(elem Field, value []byte, ts int64) (d ElemDelta, set bool) {
	if HashLive(elem) {
		return ElemDelta{}, false
	}
	return s.HashSet(elem, value, ts)
}

// HashSet is HSET of one field by actor on a hash with element context ctx, as
// (*Dots).HashSet with the dot ctx.Next(actor, floor). A command setting several
// fields takes their dots from one NewDots instead.
func HashSet(elem Field, ctx Context, actor string, floor uint64, value []byte, ts int64) (d ElemDelta, created bool) {
	return NewDots(ctx, actor, floor).HashSet(elem, value, ts)
}

// HashDel is HDEL of one field whose Field in the coordinator's view is elem
// (CounterDel). removed reports that the field was live, which HDEL counts; a
// field not live in the view gives the empty delta. A field without increment
// entries is removed outright: its observed dots go, so a concurrent HSET or
// HINCRBY survives and nothing is left behind. A field with increments gets a
// removal marker under a fresh dot (taken from s only then) recording their
// totals: an HINCRBY concurrent with the HDEL brings the field back with only
// what it added, and the marker and increments stay as the field's grave (not
// live, not counted by HLEN) until the tombstone purge.
func (s *Dots) HashDel(elem Field) (d ElemDelta, removed bool) {
	if !HashLive(elem) {
		return ElemDelta{}, false
	}
	if len(observe(elem)) == 0 {
		return removeObserved(elem), true
	}
	return CounterDel(elem, Context{}, s.actor, s.Next().Counter)
}

// HashDel is HDEL of one field by actor on a hash with element context ctx, as
// (*Dots).HashDel with the dot ctx.Next(actor, floor). A command removing several
// fields takes their dots from one NewDots instead.
func HashDel(elem Field, ctx Context, actor string, floor uint64) (d ElemDelta, removed bool) {
	return NewDots(ctx, actor, floor).HashDel(elem)
}

// HashIncr is HINCRBY: CounterIncr on the field, with Redis's hash error for a
// value that is not an integer (ErrHashNotInteger); an overflow is ErrOverflow. It
// returns the delta and the value after it, as HINCRBY replies. A hash command
// touches one field, so it takes its dot from (ctx, actor, floor).
func HashIncr(elem Field, ctx Context, actor string, floor uint64, delta int64) (ElemDelta, int64, error) {
	d, v, err := CounterIncr(elem, ctx, actor, floor, delta)
	if errors.Is(err, ErrNotInteger) {
		err = ErrHashNotInteger
	}
	return d, v, err
}

// HashIncrFloat is HINCRBYFLOAT: CounterIncrFloat on the field, refusing in
// Redis's order: an increment that is NaN or infinite with ErrHashIncrNaN, before
// the field is read; a value that is not a float with ErrHashNotFloat; a result
// that is NaN or infinite with ErrNaN. It returns the delta and the value after
// it, as HINCRBYFLOAT replies.
func HashIncrFloat(elem Field, ctx Context, actor string, floor uint64, delta float64) (ElemDelta, []byte, error) {
	if math.IsNaN(delta) || math.IsInf(delta, 0) {
		return ElemDelta{}, nil, ErrHashIncrNaN
	}
	d, v, err := CounterIncrFloat(elem, ctx, actor, floor, delta)
	if errors.Is(err, ErrNotFloat) {
		err = ErrHashNotFloat
	}
	return d, v, err
}
