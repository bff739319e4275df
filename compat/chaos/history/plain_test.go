package history

import (
	"strings"
	"testing"
	"time"
)

// fault adds a fault on node from start to end (seconds); offset is a clock
// offset in seconds.
func (b *builder) fault(kind, node string, start, end, offset int) *builder {
	b.h.Faults = append(b.h.Faults, Fault{Kind: kind, Target: node, Nodes: []string{node},
		Start: time.Duration(start) * time.Second, End: time.Duration(end) * time.Second,
		Offset: time.Duration(offset) * time.Second})
	return b
}

func (b *builder) converged(at int) *builder {
	b.h.Converged = time.Duration(at) * time.Second
	return b
}

// TestCheckPlainReads covers rules 7 to 10 and the purge exemption of rules 3 and
// 5: each rule catching a violation and accepting the legal histories next to it.
// Times are in seconds; the lateness is DefaultLateness (2 s).
func TestCheckPlainReads(t *testing.T) {
	found := func(v string) Op { return Op{Kind: Get, Key: "k", Node: "n4", Value: v, Found: true} }
	cases := []struct {
		name  string
		build func(b *builder)
		want  []string
	}{
		// Rule 7, deletes.
		{"deleted value returned", func(b *builder) {
			b.add(Op{Kind: Set, Key: "k", Node: "n1", Value: "v1"}, 1, 2).
				add(Op{Kind: Del, Key: "k", Node: "n2"}, 5, 6).
				converged(10).add(found("v1"), 11, 12).
				final("k", ctx("n1", 1, "n2", 1), "v1")
		}, []string{RuleDeletedReturned}},
		{"delete concurrent with the write", func(b *builder) {
			b.add(Op{Kind: Set, Key: "k", Node: "n1", Value: "v1"}, 1, 4).
				add(Op{Kind: Del, Key: "k", Node: "n2"}, 3, 5).
				converged(10).add(found("v1"), 11, 12).
				final("k", ctx("n1", 1, "n2", 1), "v1")
		}, nil},
		{"delete within the lateness of the write", func(b *builder) {
			b.add(Op{Kind: Set, Key: "k", Node: "n1", Value: "v1"}, 1, 2).
				add(Op{Kind: Del, Key: "k", Node: "n2"}, 4, 5).
				converged(10).add(found("v1"), 11, 12).
				final("k", ctx("n1", 1, "n2", 1), "v1")
		}, nil},
		{"a delete that found nothing deleted nothing", func(b *builder) {
			b.add(Op{Kind: Set, Key: "k", Node: "n1", Value: "v1"}, 1, 2).
				add(Op{Kind: Del, Key: "k", Node: "n2", Noop: true}, 5, 6).
				converged(10).add(found("v1"), 11, 12).
				final("k", ctx("n1", 1), "v1")
		}, nil},
		{"unknown write stamped before the client gave up, then deleted", func(b *builder) {
			b.add(Op{Kind: Set, Key: "k", Node: "n1", Value: "v1", Outcome: Unknown}, 1, 4).
				add(Op{Kind: Del, Key: "k", Node: "n2"}, 7, 8).
				converged(10).add(found("v1"), 11, 12).
				final("k", ctx("n1", 1, "n2", 1), "v1")
		}, []string{RuleDeletedReturned}},
		{"unknown write may be stamped until then", func(b *builder) {
			b.add(Op{Kind: Set, Key: "k", Node: "n1", Value: "v1", Outcome: Unknown}, 1, 4).
				add(Op{Kind: Del, Key: "k", Node: "n2"}, 5, 6).
				converged(10).add(found("v1"), 11, 12).
				final("k", ctx("n1", 1, "n2", 1), "v1")
		}, nil},
		{"unknown write through a paused node may be accepted when it resumes", func(b *builder) {
			b.fault(FaultPause, "n1", 0, 9, 0).
				add(Op{Kind: Set, Key: "k", Node: "n1", Value: "v1", Outcome: Unknown}, 1, 4).
				add(Op{Kind: Del, Key: "k", Node: "n2"}, 10, 11).
				converged(20).add(found("v1"), 21, 22).
				final("k", ctx("n1", 1, "n2", 1), "v1")
		}, nil},
		{"a failed write was stamped before its error", func(b *builder) {
			b.fault(FaultPause, "n1", 0, 9, 0).
				add(Op{Kind: Set, Key: "k", Node: "n1", Value: "v1", Outcome: Fail}, 1, 4).
				add(Op{Kind: Del, Key: "k", Node: "n2"}, 10, 11).
				converged(20).add(found("v1"), 21, 22).
				final("k", ctx("n1", 1, "n2", 1), "v1")
		}, []string{RuleDeletedReturned}},
		{"written again after the delete", func(b *builder) {
			b.add(Op{Kind: Set, Key: "k", Node: "n1", Value: "v1"}, 1, 2).
				add(Op{Kind: Del, Key: "k", Node: "n2"}, 5, 6).
				add(Op{Kind: Set, Key: "k", Node: "n3", Value: "v2"}, 7, 8).
				converged(10).add(found("v2"), 11, 12).
				final("k", ctx("n3", 1), "v2")
		}, nil},
		{"a deleted and overwritten value is reported as deleted", func(b *builder) {
			b.add(Op{Kind: Set, Key: "k", Node: "n1", Value: "v1"}, 1, 2).
				add(Op{Kind: Del, Key: "k", Node: "n2"}, 5, 6).
				add(Op{Kind: Set, Key: "k", Node: "n3", Value: "v2"}, 7, 8).
				converged(10).add(found("v1"), 11, 12).
				final("k", ctx("n1", 1, "n3", 1), "v1", "v2")
		}, []string{RuleDeletedReturned}},
		{"reads before convergence are not final", func(b *builder) {
			b.add(Op{Kind: Set, Key: "k", Node: "n1", Value: "v1"}, 1, 2).
				add(Op{Kind: Del, Key: "k", Node: "n2"}, 5, 6).
				add(found("v1"), 7, 8).converged(10).
				final("k", ctx("n2", 1))
		}, nil},
		{"memcached delete and get", func(b *builder) {
			b.add(Op{Kind: MSet, Key: "k", Node: "n1", Value: "v1"}, 1, 2).
				add(Op{Kind: MDel, Key: "k", Node: "n2"}, 5, 6).
				converged(10).add(Op{Kind: MGet, Key: "k", Node: "n3", Value: "v1", Found: true}, 11, 12).
				final("k", ctx("n1", 1, "n2", 1), "v1")
		}, []string{RuleDeletedReturned}},
		{"cas overwrite returned", func(b *builder) {
			b.add(Op{Kind: MSet, Key: "k", Node: "n1", Value: "v1"}, 1, 2).
				add(Op{Kind: MCas, Key: "k", Node: "n2", Value: "v2"}, 5, 6).
				converged(10).add(found("v1"), 11, 12).
				final("k", ctx("n1", 1, "n2", 1), "v1", "v2")
		}, []string{RuleOverwrittenReturned}},
		{"a cas that did not store overwrote nothing", func(b *builder) {
			b.add(Op{Kind: MSet, Key: "k", Node: "n1", Value: "v1"}, 1, 2).
				add(Op{Kind: MCas, Key: "k", Node: "n2", Value: "v2", Noop: true}, 5, 6).
				converged(10).add(found("v1"), 11, 12).
				final("k", ctx("n1", 1), "v1")
		}, nil},
		{"phantom value", func(b *builder) {
			b.add(Op{Kind: Set, Key: "k", Node: "n1", Value: "v1"}, 1, 2).
				converged(10).add(found("zz"), 11, 12).
				final("k", ctx("n1", 1), "v1")
		}, []string{RulePhantomValue}},

		// Rule 7, expiring overwrites, and rule 8.
		{"expired overwrite brings the older value back", func(b *builder) {
			b.add(Op{Kind: Set, Key: "k", Node: "n1", Value: "old"}, 1, 2).
				add(Op{Kind: Set, Key: "k", Node: "n2", Value: "new", EX: 2}, 5, 6).
				converged(20).add(found("old"), 21, 22).
				final("k", ctx("n1", 1), "old")
		}, []string{RuleExpiredOverwritten}},
		{"an overwrite with a TTL past the run is a plain overwrite", func(b *builder) {
			b.add(Op{Kind: Set, Key: "k", Node: "n1", Value: "old"}, 1, 2).
				add(Op{Kind: Set, Key: "k", Node: "n2", Value: "new", EX: 3600}, 5, 6).
				converged(20).add(found("old"), 21, 22).
				final("k", ctx("n1", 1, "n2", 1), "old", "new")
		}, []string{RuleOverwrittenReturned}},
		{"memcached expiring overwrite, absent after expiry", func(b *builder) {
			b.add(Op{Kind: MSet, Key: "k", Node: "n1", Value: "old"}, 1, 2).
				add(Op{Kind: MSet, Key: "k", Node: "n2", Value: "new", EX: 2}, 5, 6).
				converged(20).add(Op{Kind: MGet, Key: "k", Node: "n3"}, 21, 22).
				final("k", ctx("n1", 1, "n2", 1))
		}, nil},
		{"expired value returned", func(b *builder) {
			b.add(Op{Kind: Set, Key: "k", Node: "n2", Value: "new", PX: 2000}, 5, 6).
				converged(20).add(found("new"), 21, 22).
				final("k", ctx("n2", 1), "new")
		}, []string{RuleExpiredValue}},
		{"value read before its expiry", func(b *builder) {
			b.add(Op{Kind: Set, Key: "k", Node: "n2", Value: "new", EX: 60}, 5, 6).
				converged(20).add(found("new"), 21, 22).
				final("k", ctx("n2", 1), "new")
		}, nil},
		{"expiry counted from a clock running ahead", func(b *builder) {
			b.fault(FaultClockOffset, "n2", 4, 9, 120).
				add(Op{Kind: Set, Key: "k", Node: "n2", Value: "new", EX: 2}, 5, 6).
				converged(20).add(found("new"), 21, 22).
				final("k", ctx("n2", 1), "new")
		}, nil},

		// Clock offsets.
		{"the delete's node ran behind", func(b *builder) {
			b.fault(FaultClockOffset, "n2", 4, 9, -120).
				add(Op{Kind: Set, Key: "k", Node: "n1", Value: "v1"}, 1, 2).
				add(Op{Kind: Del, Key: "k", Node: "n2"}, 5, 6).
				converged(10).add(found("v1"), 11, 12).
				final("k", ctx("n1", 1, "n2", 1), "v1")
		}, nil},
		{"the write's node ran ahead", func(b *builder) {
			b.fault(FaultClockOffset, "n1", 0, 3, 120).
				add(Op{Kind: Set, Key: "k", Node: "n1", Value: "v1"}, 1, 2).
				add(Op{Kind: Del, Key: "k", Node: "n2"}, 5, 6).
				converged(10).add(found("v1"), 11, 12).
				final("k", ctx("n1", 1, "n2", 1), "v1")
		}, nil},
		{"an offset outside the write's window changes nothing", func(b *builder) {
			b.fault(FaultClockOffset, "n1", 3, 9, 120).
				add(Op{Kind: Set, Key: "k", Node: "n1", Value: "v1"}, 1, 2).
				add(Op{Kind: Del, Key: "k", Node: "n2"}, 5, 6).
				converged(10).add(found("v1"), 11, 12).
				final("k", ctx("n1", 1, "n2", 1), "v1")
		}, []string{RuleDeletedReturned}},
		{"a write stamped behind may have superseded the delete", func(b *builder) {
			b.fault(FaultClockOffset, "n3", 6, 9, -120).
				add(Op{Kind: Set, Key: "k", Node: "n1", Value: "v1"}, 1, 2).
				add(Op{Kind: Del, Key: "k", Node: "n2"}, 5, 6).
				add(Op{Kind: Del, Key: "k", Node: "n3"}, 7, 8).
				converged(10).add(found("v1"), 11, 12).
				final("k", ctx("n1", 1, "n3", 1), "v1")
		}, nil},

		// Rule 9 and rule 7 on counters.
		{"counter at an acknowledged value", func(b *builder) {
			b.add(Op{Kind: Incr, Key: "k", Node: "n1", Value: "1"}, 1, 2).
				add(Op{Kind: Incr, Key: "k", Node: "n2", Value: "2"}, 3, 4).
				converged(10).add(found("2"), 11, 12).
				final("k", ctx("n2", 1), "2")
		}, nil},
		{"counter above the attempted increments", func(b *builder) {
			b.add(Op{Kind: Incr, Key: "k", Node: "n1", Value: "1"}, 1, 2).
				add(Op{Kind: Incr, Key: "k", Node: "n2", Value: "2"}, 3, 4).
				converged(10).add(found("3"), 11, 12).
				final("k", ctx("n2", 1), "2")
		}, []string{RuleCounter}},
		{"counter at a value an unknown increment may have written", func(b *builder) {
			b.add(Op{Kind: Incr, Key: "k", Node: "n1", Value: "1"}, 1, 2).
				add(Op{Kind: Incr, Key: "k", Node: "n2", Outcome: Unknown}, 3, 4).
				converged(10).add(found("2"), 11, 12).
				final("k", ctx("n2", 1), "2")
		}, nil},
		{"counter at a value no increment returned", func(b *builder) {
			b.add(Op{Kind: Incr, Key: "k", Node: "n1", Value: "1"}, 1, 2).
				add(Op{Kind: Incr, Key: "k", Node: "n2", Value: "1"}, 1, 2).
				converged(10).add(found("2"), 11, 12).
				final("k", ctx("n2", 1), "1")
		}, []string{RuleCounter}},
		{"counter older than an acknowledged increment", func(b *builder) {
			b.add(Op{Kind: Incr, Key: "k", Node: "n1", Value: "1"}, 1, 2).
				add(Op{Kind: Incr, Key: "k", Node: "n2", Value: "2"}, 5, 6).
				converged(10).add(found("1"), 11, 12).
				final("k", ctx("n1", 1), "1")
		}, []string{RuleLostWrite, RuleOverwrittenReturned}},
		{"concurrent increments: one lost to the other (last writer wins)", func(b *builder) {
			b.add(Op{Kind: Incr, Key: "k", Node: "n1", Value: "1"}, 1, 4).
				add(Op{Kind: Incr, Key: "k", Node: "n2", Value: "2"}, 2, 3).
				converged(10).add(found("1"), 11, 12).
				final("k", ctx("n1", 1), "1")
		}, nil},
		{"counter lost entirely", func(b *builder) {
			b.add(Op{Kind: Incr, Key: "k", Node: "n1", Value: "1"}, 1, 2).
				converged(10).add(Op{Kind: Get, Key: "k", Node: "n2"}, 11, 12).
				final("k", ctx("n1", 1), "1")
		}, []string{RuleCounter}},
		{"memcached counter from its initial set", func(b *builder) {
			b.add(Op{Kind: Set, Key: "k", Node: "n1", Value: "0"}, 0, 1).
				add(Op{Kind: MIncr, Key: "k", Node: "n1", Value: "1"}, 2, 3).
				add(Op{Kind: MIncr, Key: "k", Node: "n2", Outcome: Unknown}, 4, 5).
				converged(10).add(Op{Kind: MGet, Key: "k", Node: "n3", Value: "2", Found: true}, 11, 12).
				final("k", ctx("n2", 1), "2")
		}, nil},
		{"crdt counter within acknowledged and attempted", func(b *builder) {
			b.h.CRDTCounters = true
			b.add(Op{Kind: Incr, Key: "k", Node: "n1", Value: "1"}, 1, 2).
				add(Op{Kind: Incr, Key: "k", Node: "n2", Value: "1"}, 1, 2).
				add(Op{Kind: Incr, Key: "k", Node: "n2", Outcome: Unknown}, 3, 4).
				converged(10).add(found("3"), 11, 12).
				final("k", ctx("n2", 1), "3")
		}, nil},
		{"crdt counter below the acknowledged increments", func(b *builder) {
			b.h.CRDTCounters = true
			b.add(Op{Kind: Incr, Key: "k", Node: "n1", Value: "1"}, 1, 2).
				add(Op{Kind: Incr, Key: "k", Node: "n2", Value: "1"}, 1, 2).
				converged(10).add(found("1"), 11, 12).
				final("k", ctx("n2", 1), "1")
		}, []string{RuleCounter}},

		// Rule 10.
		{"noquorum with two of four nodes down", func(b *builder) {
			b.h.Outages = []Outage{{Start: 10 * time.Second, End: 20 * time.Second, Down: []string{"n1", "n3"}, Alive: 2}}
			b.add(Op{Kind: MIncr, Key: "k", Node: "n2", Outcome: Fail, Err: `strconv.ParseUint: parsing "SERVER_ERROR noquorum reached 1 of 2 replicas"`}, 13, 14).
				final("k", "")
		}, []string{RuleUnavailable}},
		{"noquorum with one node down", func(b *builder) {
			b.h.Outages = []Outage{{Start: 10 * time.Second, End: 20 * time.Second, Down: []string{"n1"}, Alive: 4}}
			b.add(Op{Kind: Set, Key: "k", Node: "n2", Value: "v1", Outcome: Fail, Err: "NOQUORUM reached 1 of 2 replicas"}, 13, 14).
				final("k", "")
		}, []string{RuleUnavailable}},
		{"noquorum right after the crash", func(b *builder) {
			b.h.Outages = []Outage{{Start: 10 * time.Second, End: 20 * time.Second, Down: []string{"n1"}, Alive: 4}}
			b.add(Op{Kind: Set, Key: "k", Node: "n2", Value: "v1", Outcome: Fail, Err: "NOQUORUM reached 1 of 2 replicas"}, 10, 11).
				add(Op{Kind: Set, Key: "k", Node: "n1", Value: "v3", Outcome: Fail, Err: "NOQUORUM reached 1 of 2 replicas"}, 13, 14).
				add(Op{Kind: MSet, Key: "k", Node: "n3", Value: "v2", Outcome: Fail, Err: "SERVER_ERROR noquorum"}, 15, 21).
				final("k", "")
		}, nil},
		{"noquorum through the other zones while a zone is cut off", func(b *builder) {
			b.h.Outages = []Outage{{Start: 10 * time.Second, End: 20 * time.Second, Down: []string{"n1", "n4"}, Alive: 4, Cut: true}}
			b.add(Op{Kind: DGet, Key: "k", Node: "n2", Outcome: Fail, Err: "NOQUORUM reached 1 of 2 replicas"}, 13, 14).
				final("k", "")
		}, []string{RuleUnavailable}},
		{"noquorum inside the zone that is cut off", func(b *builder) {
			b.h.Outages = []Outage{{Start: 10 * time.Second, End: 20 * time.Second, Down: []string{"n1", "n4"}, Alive: 4, Cut: true}}
			b.add(Op{Kind: DGet, Key: "k", Node: "n4", Outcome: Fail, Err: "NOQUORUM reached 1 of 2 replicas"}, 13, 14).
				final("k", "")
		}, nil},
		{"noquorum with too few nodes up", func(b *builder) {
			b.h.Outages = []Outage{{Start: 10 * time.Second, End: 20 * time.Second, Down: []string{"n1", "n3", "n4"}, Alive: 1}}
			b.add(Op{Kind: Set, Key: "k", Node: "n2", Value: "v1", Outcome: Fail, Err: "NOQUORUM reached 1 of 2 replicas"}, 13, 14).
				final("k", "")
		}, nil},

		// Rules 3 and 5 with purges.
		{"contexts given before a purge may be forgotten", func(b *builder) {
			b.add(Op{Kind: DPut, Key: "d", Session: 1, Value: "a", Context: "", Result: ctx("n1", 1)}, 1, 2).
				add(Op{Kind: DGet, Key: "d", Session: 1, Result: ctx("n1", 1), Values: []string{"a"}}, 2, 3).
				add(Op{Kind: DDel, Key: "d", Session: 1, Context: ctx("n1", 1), Result: ctx("n1", 2)}, 3, 4).
				add(Op{Kind: DPut, Key: "d", Session: 2, Value: "b", Context: "", Result: ctx("n2", 5)}, 8, 9).
				converged(20).
				add(Op{Kind: DGet, Key: "d", Session: 1, Result: ctx("n2", 5), Values: []string{"b"}}, 21, 22).
				final("d", ctx("n2", 5), "b")
		}, nil},
		{"contexts given after the last possible purge are kept", func(b *builder) {
			b.add(Op{Kind: DPut, Key: "d", Session: 1, Value: "a", Context: "", Result: ctx("n1", 1)}, 1, 2).
				add(Op{Kind: DDel, Key: "d", Session: 1, Context: ctx("n1", 1), Result: ctx("n1", 2)}, 3, 4).
				add(Op{Kind: DPut, Key: "d", Session: 2, Value: "b", Context: "", Result: ctx("n2", 5)}, 8, 9).
				add(Op{Kind: DGet, Key: "d", Session: 1, Result: ctx("n2", 5, "n3", 1), Values: []string{"b"}}, 10, 11).
				converged(20).
				add(Op{Kind: DGet, Key: "d", Session: 1, Result: ctx("n2", 5), Values: []string{"b"}}, 21, 22).
				final("d", ctx("n2", 5), "b")
		}, []string{RuleForgottenCtx, RuleMonotonic}},
		{"a delete with an unknown outcome keeps the purge possible", func(b *builder) {
			b.add(Op{Kind: DPut, Key: "d", Session: 1, Value: "a", Context: "", Result: ctx("n1", 1)}, 1, 2).
				add(Op{Kind: DPut, Key: "d", Session: 2, Value: "b", Context: ctx("n1", 1), Result: ctx("n1", 2)}, 3, 4).
				add(Op{Kind: DDel, Key: "d", Session: 1, Context: ctx("n1", 2), Outcome: Unknown}, 5, 8).
				final("d", "")
		}, nil},
		{"an expiring write counts as a delete for the purge", func(b *builder) {
			b.add(Op{Kind: Set, Key: "p", Value: "x", EX: 1}, 1, 2).
				add(Op{Kind: DGet, Key: "p", Result: ctx("n1", 1), Values: []string{"x"}}, 2, 3).
				add(Op{Kind: Get, Key: "p"}, 9, 10).
				final("p", "")
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := &builder{}
			tc.build(b)
			r := Check(&b.h)
			if got := strings.Join(rules(r), ","); got != strings.Join(tc.want, ",") {
				t.Errorf("violations %q, want %q\n%s", got, tc.want, r.Summary())
			}
		})
	}
}

// TestCheckPlainReadsCounts checks the figures rules 7 to 9 add to the report.
func TestCheckPlainReadsCounts(t *testing.T) {
	b := &builder{}
	b.fault(FaultClockOffset, "n2", 4, 9, -120).
		add(Op{Kind: Set, Key: "k", Node: "n1", Value: "v1"}, 1, 2).
		add(Op{Kind: Del, Key: "k", Node: "n2"}, 5, 6).
		converged(10).
		add(Op{Kind: Get, Key: "k", Node: "n1", Value: "v1", Found: true}, 11, 12).
		add(Op{Kind: MGet, Key: "k", Node: "n3", Value: "v1", Found: true}, 11, 12).
		final("k", ctx("n1", 1, "n2", 1), "v1")
	r := Check(&b.h)
	if r.Failed() || r.FinalReads != 2 || r.SkewExempt != 2 {
		t.Errorf("failed %v, final reads %d, skew exempt %d, want false 2 2\n%s", r.Failed(), r.FinalReads, r.SkewExempt, r.Summary())
	}
	if s := r.Summary(); !strings.Contains(s, "plain reads after convergence checked: 2 (verdict left open by a clock offset: 2)") {
		t.Errorf("summary:\n%s", s)
	}
	// The same history with a second delete on an unskewed node fails, once per
	// value read, with the rule counted.
	b.add(Op{Kind: MDel, Key: "k", Node: "n3"}, 7, 8)
	r = Check(&b.h)
	if got := strings.Join(rules(r), ","); got != RuleDeletedReturned {
		t.Fatalf("violations %q\n%s", got, r.Summary())
	}
	if s := r.Summary(); !strings.Contains(s, "violations by rule: deleted-value-returned=1") {
		t.Errorf("summary:\n%s", s)
	}
}
