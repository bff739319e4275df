package coordinator_test

// The rules of issue 15, checked against the simulation's reference model: every
// write that reached a store is recorded with its dot, its causal context (the
// clock it was written with), its value (timestamp, expiry, tombstone) and its
// client operation's invocation and completion; every purge with the clock of the
// record it deleted. The simulation knows each write's timestamp exactly (the
// front node's skewed clock stamped it), so "later" for plain reads is judged on
// those stamps, the order last-writer-wins promises, not on real time, which a
// skewed clock may reorder.
//
//   - Every dot is accounted for (a DPUT with context C supersedes at most the
//     dots C covers): a write whose dot the final clock covers is in the final
//     record (as itself, or as the tombstone a reaper made of it), or some
//     recorded write's context covered it, or it was a tombstone (an expired value
//     included) that a purge deleted. An acknowledged write's dot is in the final
//     clock unless a purge deleted it (invariant 1, sound under purges).
//   - A write supersedes at least what its context covers: no sibling of the
//     final record has a dot the context of a write that took effect covers.
//   - Plain reads are last writer wins, deletes and expiry included: the final
//     plain GET of a key (after convergence) returns a value only if every write d
//     that took effect and is stamped later (timestamp, then dot) than the value's
//     write w was itself superseded by a write stamped no later than w (a later
//     write, by the stamps, exists), or was purged before w was invoked. A d that
//     is a delete is "an acknowledged delete stays deleted unless a later write
//     exists" (the issue's rule: there, w completed before d was invoked), a d with
//     a TTL is "an expired overwrite never brings the older value back". And the
//     GET answers what the converged record's winner is.
//   - No expired value is read: a plain read or DGET never returns a value whose
//     expiry its node's clock had passed when it accepted the read.
//   - Purges never resurrect: once a purge deleted a record of tombstones with
//     clock C, no read invoked later returns a value whose dot C covers, and no
//     final record on any node holds one live.

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/dynakv/dynakv/proxy"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/vclock"
)

// madeBy reports whether v, found at w's dot, is w's value: as written, or as the
// tombstone the reaper makes of it once it expired.
func madeBy(w *write, v vclock.Value) bool {
	return w.value.Equal(v) || w.value.Expiring() && w.value.Tomb().Equal(v)
}

// purgedAt returns when a purge of key first deleted a record whose clock covers
// d, if one did.
func (s *sim) purgedAt(key string, d vclock.Dot) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var at time.Duration
	found := false
	for _, p := range s.x.purges[key] {
		if p.clk.Covers(d) && (!found || p.at < at) {
			at, found = p.at, true
		}
	}
	return at, found
}

// checkAccounted checks that every write of key is accounted for by the final
// record (clk its clock, present the dots of its siblings), invariant 1 included.
func (s *sim) checkAccounted(key string, clk vclock.Clock, present map[vclock.Dot]bool) {
	t := s.t
	for _, w := range s.writes[key] {
		_, purged := s.purgedAt(key, w.dot)
		if !clk.Covers(w.dot) {
			if w.acked && !purged {
				t.Errorf("invariant 1: %s: final clock %v lacks the acknowledged write %s", key, clk, w.op)
			}
			continue
		}
		if present[w.dot] {
			continue
		}
		superseded := slices.ContainsFunc(s.writes[key], func(o *write) bool { return o.ctx.Covers(w.dot) })
		dead := w.value.Tombstone || w.value.Expiry != 0
		switch {
		case superseded || dead && purged:
		case w.acked:
			t.Errorf("invariant 1: %s: acknowledged write %s is gone, and no write had seen it", key, w.op)
		default:
			t.Errorf("%s: write %s is gone, no write had seen it, yet the final clock %v covers its dot (a write over-claimed it)",
				key, w.op, clk)
		}
	}
}

// checkSupersedes checks that no sibling of the final record of key survived a
// write that took effect with a context covering it.
func (s *sim) checkSupersedes(key string, final record.Record, byDot map[vclock.Dot]*write) {
	clk := final.Str.Join()
	for _, sb := range final.Str.Siblings() {
		for _, x := range s.writes[key] {
			if !x.ctx.Covers(sb.Dot) {
				continue
			}
			if _, purged := s.purgedAt(key, x.dot); x.acked || clk.Covers(x.dot) || purged {
				s.t.Errorf("%s: %s at %v survived a write whose context covered it:\n\t%s\n\t%s", key, show(sb.Value), sb.Dot,
					x.op, opOf(byDot[sb.Dot]))
				break
			}
		}
	}
}

func opOf(w *write) any {
	if w == nil {
		return "(no recorded write)"
	}
	return w.op
}

// stamp orders writes as plain reads do: timestamp, then dot.
func stamp(a, b *write) int {
	return cmp.Or(cmp.Compare(a.value.Timestamp, b.value.Timestamp), a.dot.Compare(b.dot))
}

// tookEffect reports whether w took effect: acknowledged, or its dot is in the
// final clock or was purged.
func (s *sim) tookEffect(w *write, clk vclock.Clock) bool {
	_, purged := s.purgedAt(w.key, w.dot)
	return w.acked || clk.Covers(w.dot) || purged
}

// hides returns a write that must hide w from plain reads, if one does: it took
// effect, is stamped later than w, was not superseded by a write stamped no later
// than w, and was not purged before w was invoked.
func (s *sim) hides(w *write, clk vclock.Clock) *write {
	for _, d := range s.writes[w.key] {
		if d == w || stamp(d, w) <= 0 || !s.tookEffect(d, clk) {
			continue
		}
		if at, ok := s.purgedAt(w.key, d.dot); ok && at <= w.op.start {
			continue
		}
		later := slices.ContainsFunc(s.writes[w.key], func(x *write) bool { return x.ctx.Covers(d.dot) && stamp(x, w) <= 0 })
		if !later {
			return d
		}
	}
	return nil
}

// lwwRule names the rule a write d that hides w makes.
func lwwRule(d, w *write) string {
	var rule string
	switch {
	case evicted(d):
		rule = "evicted value returned (an eviction is undone only by a later write)"
	case d.value.Tombstone && (d.op.kind == "DEL" || d.op.kind == "DDEL"):
		rule = "deleted value returned (an acknowledged delete stays deleted unless a later write exists)"
	case d.value.Expiry != 0:
		rule = "expired overwrite returned (an expired overwrite never brings the older value back)"
	default:
		rule = "overwritten value returned (last writer wins)"
	}
	if w.op.end < d.op.start {
		rule += ", and the value's write completed before the hiding one was invoked"
	}
	return rule
}

// finalReads reads every key with a plain GET through a running member after
// convergence and checks the answer against the history and the converged record.
func (s *sim) finalReads(keys []string, finals map[string]record.Record) {
	var reader *simNode
	for _, n := range s.running() {
		if n.x.phase == phaseMember && s.x.members.latest().states[n.name] == stateActive {
			reader = n
			break
		}
	}
	if reader == nil {
		s.t.Errorf("no running member for the final reads")
		return
	}
	for _, key := range keys {
		o := &op{client: -1, seq: len(s.x.finals), node: reader.name, kind: "GET", key: key, start: s.now()}
		o.accepted = reader.x.now().UnixMilli()
		o.res, o.err = reader.px.Do(context.Background(), proxy.Op{Kind: proxy.OpGet, Key: []byte(key)})
		o.end = s.now()
		s.mu.Lock()
		s.ops = append(s.ops, o)
		s.x.finals = append(s.x.finals, o)
		s.mu.Unlock()
		if o.err != nil {
			s.t.Errorf("final %s: %v", o, o.err)
			continue
		}
		final := finals[key]
		clk := final.Str.Join()
		// The GET answers the converged record's winner (greatest stamp among all
		// siblings, tombstones and expired values included), when it is live.
		win, ok := vclock.Winner(final.Str.Siblings())
		want := ok && win.Live(o.accepted)
		if o.res.Found != want || want && string(o.res.Item.Value) != string(win.Data) {
			s.t.Errorf("final %s: the converged record %s resolves to found=%v %q", o, s.describe(final), want, win.Data)
		}
		if !o.res.Found {
			continue
		}
		var cands []*write
		for _, sb := range final.Str.Siblings() {
			if sb.Live(o.accepted) && string(sb.Data) == string(o.res.Item.Value) {
				if w := s.writeAt(key, sb.Dot); w != nil {
					cands = append(cands, w)
				}
			}
		}
		if len(cands) == 0 {
			s.t.Errorf("final %s: no live sibling of the converged record made by a recorded write holds that value", o)
			continue
		}
		var d *write
		for _, w := range cands {
			if d = s.hides(w, clk); d == nil {
				break
			}
		}
		if d != nil {
			w := cands[0]
			s.t.Errorf("rule: %s: %s:\n\treturned %s\n\tits write %s (stamp %d)\n\thidden by %s (stamp %d)",
				key, lwwRule(d, w), o, w.op, w.value.Timestamp, d.op, d.value.Timestamp)
		}
	}
}

// writeAt returns key's recorded write with dot d.
func (s *sim) writeAt(key string, d vclock.Dot) *write {
	for _, w := range s.writes[key] {
		if w.dot == d {
			return w
		}
	}
	return nil
}

func (s *sim) describe(rec record.Record) string {
	var b []byte
	for _, sb := range rec.Str.Siblings() {
		b = append(b, show(sb.Value)...)
		b = append(b, '@')
		b = append(b, sb.Dot.Actor...)
		b = append(b, ' ')
	}
	return "{" + string(b) + "}"
}

// readValues returns what a read op returned: GET's item, DGET's siblings.
func readValues(o *op) []string {
	switch {
	case o.err != nil:
		return nil
	case o.kind == "GET" && o.res.Found:
		return []string{string(o.res.Item.Value)}
	case o.kind == "DGET":
		var out []string
		for _, v := range o.res.Values {
			out = append(out, string(v))
		}
		return out
	}
	return nil
}

// checkReads checks every read of a register (or sibling key) during and after
// the run: no expired value, no value a purge had deleted the history of. (Their
// values are unique: each names its write.)
func (s *sim) checkReads() {
	s.mu.Lock()
	ops := slices.Clone(s.ops)
	s.mu.Unlock()
	for _, o := range ops {
		if o.kind != "GET" && o.kind != "DGET" || strings.HasPrefix(o.key, "ctr") {
			continue
		}
		for _, v := range readValues(o) {
			var ws []*write
			for _, w := range s.writes[o.key] {
				if !w.value.Tombstone && string(w.value.Data) == v {
					ws = append(ws, w)
				}
			}
			if len(ws) == 0 {
				s.t.Errorf("%s returned %q, which no recorded write wrote", o, v)
				continue
			}
			w := ws[0]
			if w.value.Expired(o.accepted) {
				s.t.Errorf("rule: %s: expired value read: %s returned the value of %s, which expired at %d", o.key, o, w.op, w.value.Expiry)
			}
			for _, p := range s.x.purges[o.key] {
				if p.at < o.start && p.clk.Covers(w.dot) {
					s.t.Errorf("rule: %s: a purge resurrected: %s returned the value of %s, whose history %s on %s purged at %v",
						o.key, o, w.op, s.describe(p.rec), p.node, p.at)
					break
				}
			}
		}
	}
}

// checkPurged checks that no node's final record of a key holds live a value a
// purge of the key had deleted the history of.
func (s *sim) checkPurged(keys []string) {
	for _, key := range keys {
		for _, n := range s.allNodes() {
			if n.x.phase != phaseMember {
				continue
			}
			rec, _, _ := n.store.Get([]byte(key))
			for _, sb := range rec.Str.Siblings() {
				if sb.Tombstone {
					continue
				}
				for _, p := range s.x.purges[key] {
					if p.clk.Covers(sb.Dot) {
						s.t.Errorf("rule: %s: a purge resurrected: %s holds %s at %v, whose history %s on %s purged at %v",
							key, n.name, show(sb.Value), sb.Dot, s.describe(p.rec), p.node, p.at)
						break
					}
				}
			}
		}
	}
}
