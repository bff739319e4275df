package history

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dynakv/dynakv/vclock"
)

// Kind is the client command an Op ran.
type Kind string

// The kinds of operation the harness runs: RESP commands, then memcached ones.
const (
	Set  Kind = "set"  // SET key value [EX s | PX ms]: Value is what was written
	Get  Kind = "get"  // GET key: Value is what was read, Found whether it existed
	Incr Kind = "incr" // INCR key: Value is the number returned
	Del  Kind = "del"  // DEL key: Noop when it answered 0
	DGet Kind = "dget" // DGET key: Result is the context, Values the siblings
	DPut Kind = "dput" // DPUT key Context Value: Result is the new context
	DDel Kind = "ddel" // DDEL key Context: Result is the new context

	MSet  Kind = "mc-set"    // set key (exptime in EX): Value is what was written
	MGet  Kind = "mc-get"    // get/gets key: Value and Found as for GET
	MDel  Kind = "mc-delete" // delete key: Noop when NOT_FOUND
	MCas  Kind = "mc-cas"    // cas key (a unique from gets): Value; Noop on EXISTS or NOT_FOUND
	MIncr Kind = "mc-incr"   // incr key 1: Value is the number returned; Noop on NOT_FOUND
)

// Kinds lists every Kind in report order.
var Kinds = []Kind{Set, Get, Incr, Del, DGet, DPut, DDel, MSet, MGet, MDel, MCas, MIncr}

// writes reports whether k may change the key.
func (k Kind) writes() bool {
	switch k {
	case Set, Incr, Del, DPut, DDel, MSet, MDel, MCas, MIncr:
		return true
	}
	return false
}

// deletes reports whether k writes a tombstone.
func (k Kind) deletes() bool { return k == Del || k == DDel || k == MDel }

// increments reports whether k is a plain read-modify-write increment.
func (k Kind) increments() bool { return k == Incr || k == MIncr }

// plainRead reports whether k is a plain read (last writer wins among siblings).
func (k Kind) plainRead() bool { return k == Get || k == MGet }

// uniqueValue reports whether the values k writes are unique in a history (the
// harness makes them so): a read of such a value names the write that made it.
func (k Kind) uniqueValue() bool { return k == Set || k == MSet || k == MCas || k == DPut }

// Outcome is how an operation completed.
type Outcome string

// Outcomes. Only OK says anything about the store; Fail (the server answered an
// error) and Unknown (timeout or broken connection) writes may or may not have been
// applied, now or later.
const (
	OK      Outcome = "ok"
	Fail    Outcome = "fail"
	Unknown Outcome = "unknown"
)

// Op is one client operation.
type Op struct {
	ID      int    `json:"id"`
	Session int    `json:"session"`
	Node    string `json:"node"`
	Kind    Kind   `json:"kind"`
	Key     string `json:"key"`
	// Value: SET and DPUT the value written, GET the value read, INCR the number
	// returned.
	Value string `json:"value,omitempty"`
	// EX and PX are SET's (and memcached set's exptime) expiry in seconds and
	// milliseconds (0: none). A write whose expiry may have passed before the run
	// ended is exempt from rule 1; otherwise it must survive like any other.
	EX int `json:"ex,omitempty"`
	PX int `json:"px,omitempty"`
	// Found: GET found the key.
	Found bool `json:"found,omitempty"`
	// Noop: an acknowledged write the server said it did not make (DEL answered
	// 0, memcached NOT_FOUND, cas EXISTS). It changed nothing and counts as no write.
	Noop bool `json:"noop,omitempty"`
	// Context is DPUT's and DDEL's input context.
	Context string `json:"context,omitempty"`
	// Result is the context DGET, DPUT and DDEL returned.
	Result string `json:"result,omitempty"`
	// Values are DGET's siblings.
	Values   []string      `json:"values,omitempty"`
	Invoke   time.Duration `json:"invoke"`
	Complete time.Duration `json:"complete"`
	Outcome  Outcome       `json:"outcome"`
	Err      string        `json:"err,omitempty"`
}

// write reports whether o may have changed its key.
func (o *Op) write() bool { return o.Kind.writes() && !(o.Outcome == OK && o.Noop) }

// ttl is o's expiry as a duration (0: none).
func (o *Op) ttl() time.Duration {
	return time.Duration(o.EX)*time.Second + time.Duration(o.PX)*time.Millisecond
}

// Record is one key's record as DGET shows it: context and live siblings.
type Record struct {
	Context string   `json:"context"`
	Values  []string `json:"values"`
}

// Equal reports whether r and o have the same context and the same siblings in any
// order.
func (r Record) Equal(o Record) bool {
	if r.Context != o.Context || len(r.Values) != len(o.Values) {
		return false
	}
	a, b := slices.Clone(r.Values), slices.Clone(o.Values)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// Fault is one injected fault.
type Fault struct {
	Kind   string        `json:"kind"`
	Target string        `json:"target"`
	Start  time.Duration `json:"start"`
	End    time.Duration `json:"end"`
	// Nodes are the nodes it acted on; the checker reads them for "pause" (a
	// stopped front node may accept a command late) and "clock-offset" (Offset is
	// the skew of Nodes[0]'s clock from Start to End).
	Nodes  []string      `json:"nodes,omitempty"`
	Offset time.Duration `json:"offset,omitempty"`
}

// Fault kinds the checker reads.
const (
	FaultPause       = "pause"
	FaultClockOffset = "clock-offset"
)

// Outage is a time when the nodes in Down were killed (or removed), or, when Cut,
// cut from every other member by a partition, and every other member, Alive of
// them, was running, connected and unpaused (rule 10).
type Outage struct {
	Start time.Duration `json:"start"`
	End   time.Duration `json:"end"`
	Down  []string      `json:"down"`
	Alive int           `json:"alive"`
	Cut   bool          `json:"cut,omitempty"`
}

// History is everything a run recorded.
type History struct {
	Seed   int64   `json:"seed"`
	Ops    []Op    `json:"ops"`
	Faults []Fault `json:"faults"`
	// Healed is when the last fault was undone.
	Healed time.Duration `json:"healed"`
	// Converged is when every replica of every key was seen equal with no hint
	// pending; 0 when that never happened.
	Converged time.Duration `json:"converged"`
	// FinalAt is when Final was read: at Converged, or, when the replicas never
	// converged, when the harness gave up and read each key by quorum. A value
	// with a TTL may have expired by then.
	FinalAt time.Duration `json:"final_at"`
	// Final is the converged record of every key the run wrote.
	Final map[string]Record `json:"final"`
	// Preflists are the names of each key's N replicas when the replicas
	// converged (the ring changes during a run).
	Preflists map[string][]string `json:"preflists,omitempty"`
	// Lateness bounds how long after its front node accepted it a request may
	// still be executed: the nodes' --request-timeout plus a margin (0:
	// DefaultLateness). See "When a write is stamped" in the package doc.
	Lateness time.Duration `json:"lateness,omitempty"`
	// Outages are the times some members were down and the rest healthy (rule 10).
	Outages []Outage `json:"outages,omitempty"`
	// Zones are the nodes' zones (--zone) when the run had zones.
	Zones map[string]string `json:"zones,omitempty"`
	// CRDTCounters: INCR keys are counters whose concurrent increments all count
	// (the data-types design); rule 9 then checks the sum. False: today's INCR, a
	// read-modify-write with last writer wins.
	CRDTCounters bool `json:"crdt_counters,omitempty"`
}

// DefaultLateness is History.Lateness when it is 0.
const DefaultLateness = 2 * time.Second

// Counts are the operations of one kind by outcome.
type Counts struct {
	Attempted, OK, Fail, Unknown int
}

// Violation is one broken rule, with the operations that show it.
type Violation struct {
	Rule   string `json:"rule"`
	Key    string `json:"key"`
	Detail string `json:"detail"`
	Ops    []int  `json:"ops,omitempty"`
}

// Report is the checker's verdict.
type Report struct {
	Ops    map[Kind]*Counts
	Faults map[string]int
	// Violations are failures: lost writes, forgotten contexts, siblings without
	// concurrency, non-monotonic reads after convergence, malformed input.
	Violations []Violation
	// StaleReads are monotonic-read violations before convergence (allowed).
	StaleReads []Violation
	// SiblingReads counts acknowledged DGETs that returned more than one value;
	// MaxSiblings is the most values one returned; FinalSiblingKeys counts keys
	// whose converged record has more than one value.
	SiblingReads, MaxSiblings, FinalSiblingKeys int
	// AckedWrites counts acknowledged writes whose survival was checked.
	AckedWrites int
	// FinalReads counts plain reads after convergence checked by rules 7 to 9;
	// SkewExempt counts the ones whose verdict a clock offset left open.
	FinalReads, SkewExempt int
	// PurgeExempt counts contexts rules 3 and 5 did not check because a purge
	// may have dropped the key's record after they were given.
	PurgeExempt int
	// Latency is the outcomes and latencies of reads and writes by window (the
	// whole load, outside faults, zone-down faults): see Latencies.
	Latency []Window
}

// Failed reports whether any rule was broken.
func (r *Report) Failed() bool { return len(r.Violations) > 0 }

// LostWrites counts the violations of rules 1 and 2.
func (r *Report) LostWrites() int {
	n := 0
	for _, v := range r.Violations {
		if v.Rule == RuleLostWrite {
			n++
		}
	}
	return n
}

// Rule names used in Violations.
const (
	RuleLostWrite      = "lost-write"
	RuleForgottenCtx   = "forgotten-context"
	RuleFalseSibling   = "sibling-without-concurrency"
	RuleMonotonic      = "monotonic-read"
	RuleMalformed      = "malformed-history"
	RuleMissingFinal   = "missing-final-record"
	RuleDuplicateValue = "duplicate-value"
	// Rule 7: a plain read after convergence returned a value an acknowledged
	// later delete, expiring overwrite or overwrite surely superseded.
	RuleDeletedReturned     = "deleted-value-returned"
	RuleExpiredOverwritten  = "expired-overwrite-returned"
	RuleOverwrittenReturned = "overwritten-value-returned"
	RulePhantomValue        = "phantom-value"
	// Rule 8: a plain read returned a value whose expiry had surely passed.
	RuleExpiredValue = "expired-value-returned"
	// Rule 9: a counter's final value no increment sequence could produce.
	RuleCounter = "counter-out-of-range"
	// Rule 10: a request through a live node failed for want of a quorum while
	// enough nodes were up.
	RuleUnavailable = "noquorum-while-available"
)

// ctxWrite is a context write decoded once: its input and result clocks.
type ctxWrite struct {
	op         *Op
	in, result vclock.Clock
	acked      bool
}

// candidates are the actors that may have coordinated w: those its result moved
// past its input.
func (w *ctxWrite) candidates() []string {
	var out []string
	for _, d := range w.result {
		if d.Counter > w.in.Get(d.Actor) {
			out = append(out, d.Actor)
		}
	}
	return out
}

// maySupersede reports whether a write with input context j could cover w's dot.
func (w *ctxWrite) maySupersede(j vclock.Clock) bool {
	for _, a := range w.candidates() {
		if j.Get(a) > w.in.Get(a) {
			return true
		}
	}
	return false
}

// surelySupersedes reports whether a write with input context j certainly covers
// w's dot.
func (w *ctxWrite) surelySupersedes(j vclock.Clock) bool {
	cands := w.candidates()
	if len(cands) == 0 {
		return false
	}
	for _, a := range cands {
		if j.Get(a) < w.result.Get(a) {
			return false
		}
	}
	return true
}

// checker holds one Check run's decoded state.
type checker struct {
	h      *History
	rep    *Report
	byKey  map[string][]*Op
	writes map[string]*ctxWrite // DPUT value -> write
	ctx    map[*Op]*ctxWrite    // DPUT/DDEL op -> decoded write
	// skews and pauses are the clock-offset and pause faults by node.
	skews, pauses map[string][]Fault
	late          time.Duration // History.Lateness or its default
	end           time.Duration // the last moment the history covers
	horizons      map[string]time.Duration
}

// Check verifies h against rules 1 to 5 and 7 to 10 of the package doc and
// summarises it (rule 6 is CompareReplicas, which the harness polls).
func Check(h *History) *Report {
	c := &checker{
		h:        h,
		rep:      &Report{Ops: map[Kind]*Counts{}, Faults: map[string]int{}},
		byKey:    map[string][]*Op{},
		writes:   map[string]*ctxWrite{},
		ctx:      map[*Op]*ctxWrite{},
		skews:    map[string][]Fault{},
		pauses:   map[string][]Fault{},
		late:     cmp.Or(h.Lateness, DefaultLateness),
		end:      max(h.Healed, h.Converged, h.FinalAt),
		horizons: map[string]time.Duration{},
	}
	for _, k := range Kinds {
		c.rep.Ops[k] = &Counts{}
	}
	for _, f := range h.Faults {
		c.rep.Faults[f.Kind]++
		if len(f.Nodes) == 0 {
			continue
		}
		switch f.Kind {
		case FaultClockOffset:
			c.skews[f.Nodes[0]] = append(c.skews[f.Nodes[0]], f)
		case FaultPause:
			for _, n := range f.Nodes {
				c.pauses[n] = append(c.pauses[n], f)
			}
		}
	}
	for i := range h.Ops {
		c.end = max(c.end, h.Ops[i].Complete)
	}
	c.index()
	keys := make([]string, 0, len(c.byKey))
	for k := range c.byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		c.checkKey(k)
		c.checkPlainReads(k)
	}
	c.checkSessions()
	c.checkOutages()
	c.rep.Latency = Latencies(h)
	return c.rep
}

func (c *checker) violate(rule, key, detail string, ops ...*Op) {
	v := Violation{Rule: rule, Key: key, Detail: detail}
	for _, o := range ops {
		v.Ops = append(v.Ops, o.ID)
	}
	c.rep.Violations = append(c.rep.Violations, v)
}

// clock parses a context, reporting a malformed one.
func (c *checker) clock(s string, o *Op) (vclock.Clock, bool) {
	cl, err := vclock.ParseContext(s)
	if err != nil {
		c.violate(RuleMalformed, o.Key, fmt.Sprintf("op %d: context %q: %v", o.ID, s, err), o)
		return nil, false
	}
	return cl, true
}

// index counts the ops, groups them by key and decodes the context writes.
func (c *checker) index() {
	for i := range c.h.Ops {
		o := &c.h.Ops[i]
		cnt, ok := c.rep.Ops[o.Kind]
		if !ok {
			c.violate(RuleMalformed, o.Key, fmt.Sprintf("op %d: unknown kind %q", o.ID, o.Kind), o)
			continue
		}
		cnt.Attempted++
		switch o.Outcome {
		case OK:
			cnt.OK++
		case Fail:
			cnt.Fail++
		case Unknown:
			cnt.Unknown++
		default:
			c.violate(RuleMalformed, o.Key, fmt.Sprintf("op %d: unknown outcome %q", o.ID, o.Outcome), o)
			continue
		}
		c.byKey[o.Key] = append(c.byKey[o.Key], o)
		if o.Kind == DGet && o.Outcome == OK && len(o.Values) > 1 {
			c.rep.SiblingReads++
			c.rep.MaxSiblings = max(c.rep.MaxSiblings, len(o.Values))
		}
		if o.Kind != DPut && o.Kind != DDel {
			continue
		}
		in, ok := c.clock(o.Context, o)
		if !ok {
			continue
		}
		w := &ctxWrite{op: o, in: in}
		if o.Outcome == OK {
			if w.result, ok = c.clock(o.Result, o); !ok {
				continue
			}
			w.acked = true
		}
		c.ctx[o] = w
		if o.Kind == DPut {
			if prev, dup := c.writes[o.Value]; dup {
				c.violate(RuleDuplicateValue, o.Key, fmt.Sprintf("value %q written by ops %d and %d: the harness must write unique DPUT values", o.Value, prev.op.ID, o.ID), prev.op, o)
				continue
			}
			c.writes[o.Value] = w
		}
	}
}

// checkKey applies rules 1 to 4 to one key.
func (c *checker) checkKey(key string) {
	ops := c.byKey[key]
	hasWrite := slices.ContainsFunc(ops, func(o *Op) bool { return o.write() })
	final, ok := c.h.Final[key]
	if !ok {
		if hasWrite {
			c.violate(RuleMissingFinal, key, "the key was written but has no converged record")
		}
		return
	}
	fctx, err := vclock.ParseContext(final.Context)
	if err != nil {
		c.violate(RuleMalformed, key, fmt.Sprintf("final context %q: %v", final.Context, err))
		return
	}
	if len(final.Values) > 1 {
		c.rep.FinalSiblingKeys++
	}
	present := map[string]bool{}
	for _, v := range final.Values {
		present[v] = true
	}
	for _, o := range ops {
		if o.Outcome != OK {
			continue
		}
		// Rule 3.
		if o.Kind == DGet || o.Kind == DPut || o.Kind == DDel {
			if got, ok := c.clock(o.Result, o); ok && !fctx.Descends(got) {
				if o.Invoke < c.horizon(key) {
					c.rep.PurgeExempt++
				} else {
					c.violate(RuleForgottenCtx, key, fmt.Sprintf("op %d (%s) was given context %s; the converged context %s does not descend it", o.ID, o.Kind, got.String(), final.Context), o)
				}
			}
		}
		if o.Noop {
			continue
		}
		// Rules 1 and 2.
		switch o.Kind {
		case Set, Incr, MSet, MCas, MIncr:
			if c.mayExpire(o) || (c.h.CRDTCounters && o.Kind.increments()) {
				continue
			}
			c.rep.AckedWrites++
			if !present[o.Value] && !c.plainSuperseded(o, ops) {
				c.violate(RuleLostWrite, key, fmt.Sprintf("op %d %s %q acknowledged at %v is not among the converged siblings %q, and every other write to the key was acknowledged before it was invoked", o.ID, o.Kind, o.Value, o.Complete, final.Values), o)
			}
		case DPut:
			w := c.ctx[o]
			if w == nil {
				continue
			}
			c.rep.AckedWrites++
			if !present[o.Value] && !c.ctxSuperseded(w, ops) {
				c.violate(RuleLostWrite, key, fmt.Sprintf("op %d DPUT %q (context %q -> %q) is not among the converged siblings %q, and no write's context could cover its dot (actors %v)", o.ID, o.Value, o.Context, o.Result, final.Values, w.candidates()), o)
			}
		}
	}
	// Rule 4, over every sibling set seen.
	for _, o := range ops {
		if o.Kind == DGet && o.Outcome == OK && len(o.Values) > 1 {
			c.checkSiblings(key, o.Values, o)
		}
	}
	if len(final.Values) > 1 {
		c.checkSiblings(key, final.Values, nil)
	}
}

// plainSuperseded reports whether some other write to v's key could have been
// applied after v (rule 1's time rule).
func (c *checker) plainSuperseded(v *Op, ops []*Op) bool {
	for _, w := range ops {
		if w != v && w.write() && mayFollow(w, v) {
			return true
		}
	}
	return false
}

// mayFollow reports whether w may have been applied after v was.
func mayFollow(w, v *Op) bool { return w.Outcome != OK || w.Complete > v.Invoke }

// ctxSuperseded reports whether some write could have covered w's dot (rule 2).
func (c *checker) ctxSuperseded(w *ctxWrite, ops []*Op) bool {
	for _, o := range ops {
		if o == w.op || !o.write() {
			continue
		}
		switch o.Kind {
		case DPut, DDel:
			if x := c.ctx[o]; x != nil && w.maySupersede(x.in) {
				return true
			}
		default:
			if mayFollow(o, w.op) {
				return true
			}
		}
	}
	return false
}

// checkSiblings flags pairs of siblings where one certainly superseded the other.
func (c *checker) checkSiblings(key string, values []string, seen *Op) {
	where := "the converged record"
	if seen != nil {
		where = fmt.Sprintf("op %d's DGET", seen.ID)
	}
	for _, a := range values {
		wa := c.writes[a]
		if wa == nil || !wa.acked {
			continue
		}
		for _, b := range values {
			wb := c.writes[b]
			if wb == nil || wb == wa || wb.op.Key != key || !wa.surelySupersedes(wb.in) {
				continue
			}
			ops := []*Op{wa.op, wb.op}
			if seen != nil {
				ops = append(ops, seen)
			}
			c.violate(RuleFalseSibling, key, fmt.Sprintf("%s shows %q and %q as siblings, but %q (op %d) was written with context %q, which covers %q (op %d via %s, result %q)", where, a, b, b, wb.op.ID, wb.op.Context, a, wa.op.ID, wa.op.Node, wa.op.Result), ops...)
		}
	}
}

// checkSessions applies rule 5.
func (c *checker) checkSessions() {
	type sk struct {
		session int
		key     string
	}
	reads := map[sk][]*Op{}
	for i := range c.h.Ops {
		o := &c.h.Ops[i]
		if o.Kind == DGet && o.Outcome == OK {
			k := sk{o.Session, o.Key}
			reads[k] = append(reads[k], o)
		}
	}
	keys := make([]sk, 0, len(reads))
	for k := range reads {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b sk) int {
		return cmp.Or(cmp.Compare(a.session, b.session), strings.Compare(a.key, b.key))
	})
	for _, k := range keys {
		rs := reads[k]
		slices.SortStableFunc(rs, func(a, b *Op) int { return cmp.Compare(a.Invoke, b.Invoke) })
		var prev *Op
		var prevClock vclock.Clock
		for _, o := range rs {
			cl, ok := c.clock(o.Result, o)
			if !ok {
				continue
			}
			if prev != nil && !cl.Descends(prevClock) && prev.Invoke < c.horizon(o.Key) {
				c.rep.PurgeExempt++
			} else if prev != nil && !cl.Descends(prevClock) {
				after := c.h.Converged > 0 && o.Invoke >= c.h.Converged
				v := Violation{Rule: RuleMonotonic, Key: o.Key, Ops: []int{prev.ID, o.ID},
					Detail: fmt.Sprintf("session %d: DGET op %d at %v returned %q, which does not descend op %d's %q", o.Session, o.ID, o.Invoke, o.Result, prev.ID, prev.Result)}
				if after {
					v.Detail += " (after convergence)"
					c.rep.Violations = append(c.rep.Violations, v)
				} else {
					c.rep.StaleReads = append(c.rep.StaleReads, v)
				}
			}
			prev, prevClock = o, cl
		}
	}
}

// CompareReplicas decides rule 6 for one key: every replica's LOCAL record must
// be equal. records maps node name to its record; it returns "" when they are all
// equal, or a description of the difference.
func CompareReplicas(records map[string]Record) string {
	names := make([]string, 0, len(records))
	for n := range records {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names[min(1, len(names)):] {
		if !records[n].Equal(records[names[0]]) {
			var b strings.Builder
			for _, m := range names {
				fmt.Fprintf(&b, "%s=%q%q ", m, records[m].Context, records[m].Values)
			}
			return strings.TrimSpace(b.String())
		}
	}
	return ""
}

// countRules renders the number of violations of each rule, "" when none.
func (r *Report) countRules() string {
	counts := map[string]int{}
	for _, v := range r.Violations {
		counts[v.Rule]++
	}
	rules := make([]string, 0, len(counts))
	for k := range counts {
		rules = append(rules, k)
	}
	slices.Sort(rules)
	var parts []string
	for _, k := range rules {
		parts = append(parts, fmt.Sprintf("%s=%d", k, counts[k]))
	}
	return strings.Join(parts, " ")
}

// Summary renders the report for people.
func (r *Report) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-9s %9s %9s %9s %9s\n", "op", "attempted", "ok", "failed", "unknown")
	for _, k := range Kinds {
		c := r.Ops[k]
		if c.Attempted == 0 && k != Set {
			continue
		}
		fmt.Fprintf(&b, "%-9s %9d %9d %9d %9d\n", k, c.Attempted, c.OK, c.Fail, c.Unknown)
	}
	kinds := make([]string, 0, len(r.Faults))
	for k := range r.Faults {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	b.WriteString("faults:")
	for _, k := range kinds {
		fmt.Fprintf(&b, " %s=%d", k, r.Faults[k])
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "acknowledged writes checked: %d, lost: %d\n", r.AckedWrites, r.LostWrites())
	fmt.Fprintf(&b, "siblings: %d DGET replies with siblings (max %d values), %d keys converged with siblings\n", r.SiblingReads, r.MaxSiblings, r.FinalSiblingKeys)
	fmt.Fprintf(&b, "stale reads before convergence (allowed): %d\n", len(r.StaleReads))
	fmt.Fprintf(&b, "plain reads after convergence checked: %d (verdict left open by a clock offset: %d); contexts a purge may have dropped: %d\n", r.FinalReads, r.SkewExempt, r.PurgeExempt)
	b.WriteString(latencyTable(r.Latency))
	if n := r.countRules(); n != "" {
		fmt.Fprintf(&b, "violations by rule: %s\n", n)
	}
	fmt.Fprintf(&b, "violations: %d\n", len(r.Violations))
	for i, v := range r.Violations {
		if i == 20 {
			fmt.Fprintf(&b, "  ... %d more (see the JSON history)\n", len(r.Violations)-i)
			break
		}
		fmt.Fprintf(&b, "  %s %s: %s\n", v.Rule, v.Key, v.Detail)
	}
	return b.String()
}
