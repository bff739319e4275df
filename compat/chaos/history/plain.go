package history

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// Failover is how long after a node goes down rule 10 lets requests fail for want
// of a quorum (issue 15: "from the first second after a crash"): a coordinator must
// replace an unreachable replica by a fallback at once, not when gossip declares it
// dead.
const Failover = time.Second

// MinAlive is the fewest live members for which rule 10 applies: the harness's
// R and W (2), since a write needs W live reachable nodes of its key's extended
// preference list, which is every member.
const MinAlive = 2

// skew returns the least and greatest clock offset node ran with at some moment of
// [from, to] (0 when none: the harness's clock).
func (c *checker) skew(node string, from, to time.Duration) (lo, hi time.Duration) {
	for _, f := range c.skews[node] {
		if f.Start <= to && f.End >= from {
			lo, hi = min(lo, f.Offset), max(hi, f.Offset)
		}
	}
	return lo, hi
}

// accepted returns the latest moment at which o's front node can have accepted it
// (read the command), on the harness's clock: its completion, or for a request
// whose outcome is unknown, the end of any pause of the front node that overlaps
// it plus the lateness (a stopped node reads the command when it resumes).
func (c *checker) accepted(o *Op) time.Duration {
	hi := o.Complete
	if o.Outcome == Unknown {
		for _, f := range c.pauses[o.Node] {
			if f.Start <= o.Complete && f.End >= o.Invoke {
				hi = max(hi, f.End+c.late)
			}
		}
	}
	return hi
}

// stamp returns the earliest and latest value o's timestamp can have, as a time on
// the harness's clock: its front node fixed it when it accepted o, reading its own
// clock, which a clock-offset fault may have skewed. With skewed false it ignores
// clock offsets (to count the verdicts they leave open).
func (c *checker) stamp(o *Op, skewed bool) (lo, hi time.Duration) {
	hi = c.accepted(o)
	if !skewed {
		return o.Invoke, hi
	}
	slo, shi := c.skew(o.Node, o.Invoke, hi)
	return o.Invoke + slo, hi + shi
}

// mayExpire reports whether o wrote a value whose expiry may have passed before
// the end of the history.
func (c *checker) mayExpire(o *Op) bool {
	if o.ttl() <= 0 {
		return false
	}
	lo, _ := c.stamp(o, true)
	return lo+o.ttl() < c.end
}

// horizon returns the time after which no purge can have dropped key's record:
// 0 when nothing ever made it dead (no delete, no value that may expire), else the
// completion of the first acknowledged write of a live value invoked after every
// tombstone could have been made (the record is never all dead again, so never
// purged), or forever when there is none.
func (c *checker) horizon(key string) time.Duration {
	if h, ok := c.horizons[key]; ok {
		return h
	}
	ops := c.byKey[key]
	var h, lastDead time.Duration
	dead := false
	for _, x := range ops {
		if x.write() && (x.Kind.deletes() || c.mayExpire(x)) {
			_, hi := c.stamp(x, true)
			lastDead, dead = max(lastDead, hi+c.late), true
		}
	}
	if dead {
		h = math.MaxInt64
		for _, y := range ops {
			if y.Outcome == OK && y.write() && !y.Kind.deletes() && y.ttl() == 0 && y.Invoke > lastDead {
				h = min(h, y.Complete)
			}
		}
	}
	c.horizons[key] = h
	return h
}

// overwrites reports whether the acknowledged write d surely left a sibling that
// beats w's value for plain reads until something newer replaced it (rule 7):
// d's timestamp is later than w's by more than the lateness, and no write that
// may have superseded d can have got a timestamp earlier than w's (only a clock
// offset can do that). negSkewed are the key's writes whose front node ran with a
// negative clock offset.
func (c *checker) overwrites(d, w *Op, negSkewed []*Op, skewed bool) bool {
	if d == w || d.Outcome != OK || !d.write() {
		return false
	}
	dlo, _ := c.stamp(d, skewed)
	_, whi := c.stamp(w, skewed)
	if dlo <= whi+c.late {
		return false
	}
	if !skewed {
		return true
	}
	for _, x := range negSkewed {
		if x == d || x == w || (x.Outcome == OK && x.Complete < d.Invoke) {
			continue
		}
		slo, _ := c.skew(x.Node, x.Invoke, c.accepted(x))
		if max(x.Invoke, d.Invoke-c.late)+slo <= whi {
			return false
		}
	}
	return true
}

// overwriters returns the acknowledged writes that surely overwrote w (rule 7).
func (c *checker) overwriters(w *Op, ops, negSkewed []*Op, skewed bool) []*Op {
	var out []*Op
	for _, d := range ops {
		if c.overwrites(d, w, negSkewed, skewed) {
			out = append(out, d)
		}
	}
	return out
}

// overwriteRule names the violation the overwriters ds show: a delete first, then
// a write whose TTL may have passed, then any overwrite.
func (c *checker) overwriteRule(ds []*Op) (string, *Op) {
	for _, d := range ds {
		if d.Kind.deletes() {
			return RuleDeletedReturned, d
		}
	}
	for _, d := range ds {
		if c.mayExpire(d) {
			return RuleExpiredOverwritten, d
		}
	}
	return RuleOverwrittenReturned, ds[0]
}

func describe(o *Op) string {
	s := fmt.Sprintf("op %d %s", o.ID, o.Kind)
	if o.Value != "" {
		s += fmt.Sprintf(" %q", o.Value)
	}
	if t := o.ttl(); t > 0 {
		s += fmt.Sprintf(" ttl %v", t)
	}
	return s + fmt.Sprintf(" via %s [%v, %v] %s", o.Node, o.Invoke.Round(time.Millisecond), o.Complete.Round(time.Millisecond), o.Outcome)
}

// checkPlainReads applies rules 7 to 9 to the plain reads of key made after the
// replicas converged.
func (c *checker) checkPlainReads(key string) {
	if c.h.Converged == 0 {
		return
	}
	ops := c.byKey[key]
	var reads, negSkewed []*Op
	counter := false
	for _, o := range ops {
		if o.Kind.increments() {
			counter = true
		}
		if o.write() {
			if lo, _ := c.skew(o.Node, o.Invoke, c.accepted(o)); lo < 0 {
				negSkewed = append(negSkewed, o)
			}
		}
		if o.Kind.plainRead() && o.Outcome == OK && o.Invoke >= c.h.Converged {
			reads = append(reads, o)
		}
	}
	if len(reads) == 0 {
		return
	}
	c.rep.FinalReads += len(reads)
	flagged := map[string]bool{} // rule + value: report each once
	flag := func(rule, detail string, ops ...*Op) {
		id := rule + "\x00" + ops[0].Value + "\x00" + strconv.FormatBool(ops[0].Found)
		if !flagged[id] {
			flagged[id] = true
			c.violate(rule, key, detail, ops...)
		}
	}
	if counter {
		c.checkCounter(key, ops, reads, negSkewed, flag)
		return
	}
	for _, r := range reads {
		if !r.Found {
			continue
		}
		i := slices.IndexFunc(ops, func(o *Op) bool { return o.Kind.uniqueValue() && o.Value == r.Value && o.write() })
		if i < 0 {
			flag(RulePhantomValue, fmt.Sprintf("op %d %s via %s read %q, which no write wrote", r.ID, r.Kind, r.Node, r.Value), r)
			continue
		}
		w := ops[i]
		// Rule 8.
		if t := w.ttl(); t > 0 {
			if _, hi := c.stamp(w, true); r.Invoke > hi+t+c.late {
				flag(RuleExpiredValue, fmt.Sprintf("op %d %s via %s at %v read %q, written by %s, which expired by %v at the latest", r.ID, r.Kind, r.Node, r.Invoke.Round(time.Millisecond), r.Value, describe(w), (hi+t).Round(time.Millisecond)), r, w)
			}
		}
		// Rule 7.
		ds := c.overwriters(w, ops, negSkewed, true)
		if len(ds) == 0 {
			if len(negSkewed) > 0 && len(c.overwriters(w, ops, nil, false)) > 0 {
				c.rep.SkewExempt++
			}
			continue
		}
		rule, d := c.overwriteRule(ds)
		flag(rule, fmt.Sprintf("op %d %s via %s read %q, written by %s; acknowledged %s began %v after it was stamped (%d such writes)", r.ID, r.Kind, r.Node, r.Value, describe(w), describe(d), (d.Invoke-c.accepted(w)).Round(time.Millisecond), len(ds)), r, w, d)
	}
}

// checkCounter applies rules 9 and 7 to a counter key's reads.
func (c *checker) checkCounter(key string, ops, reads, negSkewed []*Op, flag func(string, string, ...*Op)) {
	var acked, attempted int64
	var base int64 // the largest number a SET wrote
	for _, o := range ops {
		switch {
		case o.Kind.increments() && o.write():
			attempted++
			if o.Outcome == OK {
				acked++
			}
		case (o.Kind == Set || o.Kind == MSet) && o.write():
			if n, err := strconv.ParseInt(o.Value, 10, 64); err == nil {
				base = max(base, n)
			}
		}
	}
	for _, r := range reads {
		if !r.Found {
			if acked > 0 {
				flag(RuleCounter, fmt.Sprintf("op %d %s via %s found no value, but %d increments were acknowledged and nothing deletes a counter", r.ID, r.Kind, r.Node, acked), r)
			}
			continue
		}
		n, err := strconv.ParseInt(r.Value, 10, 64)
		if err != nil {
			flag(RuleCounter, fmt.Sprintf("op %d %s via %s read %q, not a number", r.ID, r.Kind, r.Node, r.Value), r)
			continue
		}
		if c.h.CRDTCounters {
			if base == 0 && (n < acked || n > attempted) {
				flag(RuleCounter, fmt.Sprintf("op %d %s via %s read %d, outside [%d acknowledged, %d attempted] increments", r.ID, r.Kind, r.Node, n, acked, attempted), r)
			}
			continue
		}
		// Which writes can have written n: an acknowledged one that returned it, a
		// SET of it, or an increment whose outcome is unknown, if n increments can
		// have been applied before it ran.
		var cands []*Op
		for _, x := range ops {
			if !x.write() || !(x.Kind.increments() || x.Kind == Set || x.Kind == MSet) {
				continue
			}
			switch {
			case x.Value == r.Value && (x.Outcome == OK || !x.Kind.increments()):
				cands = append(cands, x)
			case x.Outcome != OK && x.Kind.increments() && n >= 1 && n <= base+c.incrementsBefore(ops, c.accepted(x)+c.late):
				cands = append(cands, x)
			}
		}
		if len(cands) == 0 {
			flag(RuleCounter, fmt.Sprintf("op %d %s via %s read %d: no increment can have written it (%d acknowledged, %d attempted, base %d)", r.ID, r.Kind, r.Node, n, acked, attempted, base), r)
			continue
		}
		var ds []*Op
		for _, x := range cands {
			xs := c.overwriters(x, ops, negSkewed, true)
			if len(xs) == 0 {
				ds = nil
				break
			}
			ds = append(ds, xs[0])
		}
		if len(ds) > 0 {
			flag(RuleOverwrittenReturned, fmt.Sprintf("op %d %s via %s read %d; each of the %d writes that can have written it was surely overwritten, e.g. %s by acknowledged %s", r.ID, r.Kind, r.Node, n, len(cands), describe(cands[0]), describe(ds[0])), r, cands[0], ds[0])
		}
	}
}

// incrementsBefore counts the increments of ops invoked before t.
func (c *checker) incrementsBefore(ops []*Op, t time.Duration) int64 {
	var n int64
	for _, o := range ops {
		if o.Kind.increments() && o.write() && o.Invoke < t {
			n++
		}
	}
	return n
}

// checkOutages applies rule 10.
func (c *checker) checkOutages() {
	for i := range c.h.Ops {
		o := &c.h.Ops[i]
		if !noQuorum(o) {
			continue
		}
		for _, out := range c.h.Outages {
			if out.Alive < MinAlive || slices.Contains(out.Down, o.Node) || o.Invoke < out.Start+Failover || o.Complete > out.End {
				continue
			}
			how := "down"
			if out.Cut {
				how = "cut off"
			}
			c.violate(RuleUnavailable, o.Key, fmt.Sprintf("%s failed (%s) while only %v were %s (%d members alive, %v after)", describe(o), o.Err, out.Down, how, out.Alive, (o.Invoke-out.Start).Round(time.Millisecond)), o)
			break
		}
	}
}
