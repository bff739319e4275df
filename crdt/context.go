package crdt

import (
	"slices"
	"strconv"
	"strings"

	"github.com/dynakv/dynakv/vclock"
)

// Dot names one event: the Counter-th event of Actor. It is vclock's Dot, so the
// string layer's dots and the typed layers' dots are the same kind of name.
type Dot = vclock.Dot

// run is the inclusive range of counters lo..hi of one actor, lo >= 1.
type run struct{ lo, hi uint64 }

// actorDots is every dot of one actor a Context holds: runs sorted by lo, disjoint
// and not adjacent (each run starts at least two above the previous one's hi).
type actorDots struct {
	actor string
	runs  []run
}

// Context is a causal context: the set of dots a replica has seen. It is a version
// vector (for each actor, every counter 1..n) plus a cloud of dots above it, kept
// compact as runs of consecutive counters, so a cloud costs one run per gap, not one
// entry per dot. The zero Context is empty and ready to use.
//
// A Context is a value: every method returns a fresh one and never modifies its
// receiver or arguments, so Contexts may be shared between goroutines.
type Context struct {
	as []actorDots // sorted by actor, each with at least one run
}

// ContextOf returns the context holding exactly the given dots (in any order, with
// duplicates). Dots with a zero counter are ignored.
func ContextOf(dots ...Dot) Context {
	ds := slices.Clone(dots)
	slices.SortFunc(ds, Dot.Compare)
	var c Context
	for _, d := range ds {
		if d.Counter == 0 {
			continue
		}
		n := len(c.as)
		if n == 0 || c.as[n-1].actor != d.Actor {
			c.as = append(c.as, actorDots{actor: d.Actor, runs: []run{{d.Counter, d.Counter}}})
			continue
		}
		rs := &c.as[n-1].runs
		last := &(*rs)[len(*rs)-1]
		switch {
		case d.Counter <= last.hi: // duplicate
		case d.Counter == last.hi+1:
			last.hi++
		default:
			*rs = append(*rs, run{d.Counter, d.Counter})
		}
	}
	return c
}

// ContextOfClock returns the context a version vector describes: every dot at or
// below each actor's counter.
func ContextOfClock(vv vclock.Clock) Context {
	var c Context
	for _, d := range vv {
		if d.Counter > 0 {
			c.as = append(c.as, actorDots{actor: d.Actor, runs: []run{{1, d.Counter}}})
		}
	}
	return c
}

// Empty reports whether c holds no dot.
func (c Context) Empty() bool { return len(c.as) == 0 }

func (c Context) find(actor string) (actorDots, bool) {
	i, ok := slices.BinarySearchFunc(c.as, actor, func(a actorDots, s string) int { return strings.Compare(a.actor, s) })
	if !ok {
		return actorDots{}, false
	}
	return c.as[i], true
}

// Covers reports whether c holds the dot d.
func (c Context) Covers(d Dot) bool {
	a, ok := c.find(d.Actor)
	if !ok || d.Counter == 0 {
		return false
	}
	i, _ := slices.BinarySearchFunc(a.runs, d.Counter, func(r run, n uint64) int {
		if r.hi < n {
			return -1
		}
		return 0
	})
	return i < len(a.runs) && a.runs[i].lo <= d.Counter
}

// Max returns the highest counter c holds for actor, 0 when none.
func (c Context) Max(actor string) uint64 {
	a, ok := c.find(actor)
	if !ok {
		return 0
	}
	return a.runs[len(a.runs)-1].hi
}

// Next returns the dot actor's next event takes: one above the highest counter c
// holds for it, or floor (at least 1) when c holds none. The floor is the caller's
// fresh-counter floor (vclock's package doc): node-wide and monotonically
// increasing, so a key whose record was purged and written again never reuses a
// dot an old copy still carries. The caller adds the dot to its context when it
// applies its own event, before the event leaves the node.
func (c Context) Next(actor string, floor uint64) Dot {
	if m := c.Max(actor); m > 0 {
		return Dot{Actor: actor, Counter: m + 1}
	}
	return Dot{Actor: actor, Counter: max(floor, 1)}
}

// Clock returns the version-vector part of c: for each actor, the n such that c
// holds every dot 1..n (actors with n = 0 left out). The cloud is not in it.
func (c Context) Clock() vclock.Clock {
	var vv vclock.Clock
	for _, a := range c.as {
		if a.runs[0].lo == 1 {
			vv = append(vv, Dot{Actor: a.actor, Counter: a.runs[0].hi})
		}
	}
	return vv
}

// Gaps returns how many runs of missing counters c has below the highest dot of
// some actor: the size of its cloud, in runs. A context with no cloud has 0.
func (c Context) Gaps() int {
	n := 0
	for _, a := range c.as {
		n += len(a.runs)
		if a.runs[0].lo == 1 {
			n--
		}
	}
	return n
}

// Join returns the union of c and o.
func (c Context) Join(o Context) Context {
	if len(o.as) == 0 {
		return c
	}
	if len(c.as) == 0 {
		return o
	}
	out := make([]actorDots, 0, max(len(c.as), len(o.as)))
	i, j := 0, 0
	for i < len(c.as) || j < len(o.as) {
		switch {
		case j == len(o.as) || (i < len(c.as) && c.as[i].actor < o.as[j].actor):
			out = append(out, c.as[i])
			i++
		case i == len(c.as) || o.as[j].actor < c.as[i].actor:
			out = append(out, o.as[j])
			j++
		default:
			out = append(out, actorDots{actor: c.as[i].actor, runs: unionRuns(c.as[i].runs, o.as[j].runs)})
			i++
			j++
		}
	}
	return Context{as: out}
}

// unionRuns merges two valid run lists into one (sorted, disjoint, not adjacent).
func unionRuns(a, b []run) []run {
	if slices.Equal(a, b) {
		return a
	}
	out := make([]run, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		var r run
		if j == len(b) || (i < len(a) && a[i].lo <= b[j].lo) {
			r = a[i]
			i++
		} else {
			r = b[j]
			j++
		}
		if n := len(out); n > 0 && r.lo <= out[n-1].hi+1 {
			out[n-1].hi = max(out[n-1].hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

// Includes reports whether c holds every dot of o.
func (c Context) Includes(o Context) bool {
	for _, b := range o.as {
		a, ok := c.find(b.actor)
		if !ok {
			return false
		}
		i := 0
		for _, r := range b.runs {
			for i < len(a.runs) && a.runs[i].hi < r.lo {
				i++
			}
			if i == len(a.runs) || a.runs[i].lo > r.lo || a.runs[i].hi < r.hi {
				return false
			}
		}
	}
	return true
}

// Equal reports whether c and o hold the same dots.
func (c Context) Equal(o Context) bool {
	return slices.EqualFunc(c.as, o.as, func(a, b actorDots) bool {
		return a.actor == b.actor && slices.Equal(a.runs, b.runs)
	})
}

// String renders c for tests and logs: "a:1-3,5 b:7".
func (c Context) String() string {
	var sb strings.Builder
	for i, a := range c.as {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(a.actor)
		sb.WriteByte(':')
		for k, r := range a.runs {
			if k > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(strconv.FormatUint(r.lo, 10))
			if r.hi != r.lo {
				sb.WriteByte('-')
				sb.WriteString(strconv.FormatUint(r.hi, 10))
			}
		}
	}
	return sb.String()
}
