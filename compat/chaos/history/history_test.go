package history

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dynakv/dynakv/vclock"
)

// ctx builds a context string from actor/counter pairs: ctx("a", 1, "b", 2).
func ctx(pairs ...any) string {
	var c vclock.Clock
	for i := 0; i < len(pairs); i += 2 {
		c = c.Merge(vclock.Clock{{Actor: pairs[i].(string), Counter: uint64(pairs[i+1].(int))}})
	}
	return c.String()
}

// builder appends ops with increasing ids; times are in seconds.
type builder struct{ h History }

func (b *builder) add(o Op, invoke, complete int) *builder {
	o.ID = len(b.h.Ops) + 1
	o.Invoke, o.Complete = time.Duration(invoke)*time.Second, time.Duration(complete)*time.Second
	if o.Outcome == "" {
		o.Outcome = OK
	}
	b.h.Ops = append(b.h.Ops, o)
	return b
}

func (b *builder) final(key, context string, values ...string) *builder {
	if b.h.Final == nil {
		b.h.Final = map[string]Record{}
	}
	b.h.Final[key] = Record{Context: context, Values: values}
	return b
}

func rules(r *Report) []string {
	var out []string
	for _, v := range r.Violations {
		out = append(out, v.Rule)
	}
	return out
}

func TestCheck(t *testing.T) {
	cases := []struct {
		name  string
		build func(b *builder)
		want  []string // violated rules, in order; nil: passes
		stale int
	}{
		{"set overwritten by a later set", func(b *builder) {
			b.add(Op{Kind: Set, Key: "s", Value: "v1"}, 1, 2).
				add(Op{Kind: Set, Key: "s", Value: "v2"}, 3, 4).
				final("s", ctx("n1", 2), "v2")
		}, nil, 0},
		{"set present as a sibling", func(b *builder) {
			b.add(Op{Kind: Set, Key: "s", Value: "v1", EX: 600}, 1, 2).
				final("s", ctx("n1", 1, "n2", 1), "v1", "v0")
		}, nil, 0},
		{"set lost: the only other write finished before it began", func(b *builder) {
			b.add(Op{Kind: Set, Key: "s", Value: "v1"}, 1, 2).
				add(Op{Kind: Set, Key: "s", Value: "v2"}, 3, 4).
				final("s", ctx("n1", 2), "v1")
		}, []string{RuleLostWrite}, 0},
		{"set superseded by a concurrent set", func(b *builder) {
			b.add(Op{Kind: Set, Key: "s", Value: "v1"}, 1, 5).
				add(Op{Kind: Set, Key: "s", Value: "v2"}, 2, 3).
				final("s", ctx("n1", 2), "v1")
		}, nil, 0},
		{"set superseded by a failed earlier write that may have applied late", func(b *builder) {
			b.add(Op{Kind: Set, Key: "s", Value: "v1", Outcome: Unknown}, 1, 2).
				add(Op{Kind: Set, Key: "s", Value: "v2"}, 3, 4).
				final("s", ctx("n1", 2), "v1")
		}, nil, 0},
		{"set lost with no other write", func(b *builder) {
			b.add(Op{Kind: Set, Key: "s", Value: "v1"}, 1, 2).
				final("s", "")
		}, []string{RuleLostWrite}, 0},
		{"unacknowledged set may vanish", func(b *builder) {
			b.add(Op{Kind: Set, Key: "s", Value: "v1", Outcome: Fail}, 1, 2).
				final("s", "")
		}, nil, 0},
		{"incr present", func(b *builder) {
			b.add(Op{Kind: Incr, Key: "i", Value: "1"}, 1, 2).
				add(Op{Kind: Incr, Key: "i", Value: "2"}, 3, 4).
				final("i", ctx("n1", 2), "2")
		}, nil, 0},
		{"incr lost", func(b *builder) {
			b.add(Op{Kind: Incr, Key: "i", Value: "1"}, 1, 2).
				add(Op{Kind: Incr, Key: "i", Value: "2"}, 3, 4).
				final("i", ctx("n1", 2), "1")
		}, []string{RuleLostWrite}, 0},
		{"dput chain", func(b *builder) {
			b.add(Op{Kind: DPut, Key: "d", Value: "a", Context: "", Result: ctx("n1", 1)}, 1, 2).
				add(Op{Kind: DGet, Key: "d", Result: ctx("n1", 1), Values: []string{"a"}}, 3, 4).
				add(Op{Kind: DPut, Key: "d", Value: "b", Context: ctx("n1", 1), Result: ctx("n1", 2)}, 5, 6).
				final("d", ctx("n1", 2), "b")
		}, nil, 0},
		{"dput lost", func(b *builder) {
			b.add(Op{Kind: DPut, Key: "d", Value: "a", Context: "", Result: ctx("n1", 1)}, 1, 2).
				add(Op{Kind: DPut, Key: "d", Value: "b", Context: "", Result: ctx("n1", 2)}, 3, 4).
				final("d", ctx("n1", 2), "b")
		}, []string{RuleLostWrite}, 0},
		{"dput lost: the other write's context is from another actor", func(b *builder) {
			b.add(Op{Kind: DPut, Key: "d", Value: "a", Context: ctx("n2", 3), Result: ctx("n1", 1, "n2", 3)}, 1, 2).
				add(Op{Kind: DPut, Key: "d", Value: "b", Context: ctx("n2", 3), Result: ctx("n2", 4)}, 3, 4).
				final("d", ctx("n1", 1, "n2", 4), "b")
		}, []string{RuleLostWrite}, 0},
		{"dput superseded by a delete", func(b *builder) {
			b.add(Op{Kind: DPut, Key: "d", Value: "a", Context: "", Result: ctx("n1", 1)}, 1, 2).
				add(Op{Kind: DDel, Key: "d", Context: ctx("n1", 1), Outcome: Unknown}, 3, 4).
				final("d", ctx("n1", 2))
		}, nil, 0},
		{"dput superseded by a reader that saw its dot but not a concurrent sibling", func(b *builder) {
			// a's coordinator n1 also held c (dot n2:1): a's result covers both.
			// The later writer saw only a, so its context does not descend a's result,
			// yet it covers a's dot: a legitimate supersession, not a loss.
			b.add(Op{Kind: DPut, Key: "d", Value: "c", Context: "", Result: ctx("n2", 1)}, 1, 2).
				add(Op{Kind: DPut, Key: "d", Value: "a", Context: "", Result: ctx("n1", 1, "n2", 1)}, 1, 2).
				add(Op{Kind: DPut, Key: "d", Value: "b", Context: ctx("n1", 1), Result: ctx("n1", 2)}, 3, 4).
				final("d", ctx("n1", 2, "n2", 1), "b", "c")
		}, nil, 0},
		{"forgotten dput context", func(b *builder) {
			b.add(Op{Kind: DPut, Key: "d", Value: "a", Context: "", Result: ctx("n1", 3)}, 1, 2).
				final("d", ctx("n1", 2), "a")
		}, []string{RuleForgottenCtx}, 0},
		{"forgotten dget context", func(b *builder) {
			b.add(Op{Kind: DGet, Key: "d", Result: ctx("n1", 1, "n3", 1)}, 1, 2).
				final("d", ctx("n1", 1))
		}, []string{RuleForgottenCtx}, 0},
		{"concurrent siblings", func(b *builder) {
			b.add(Op{Kind: DPut, Key: "d", Value: "a", Context: "", Result: ctx("n1", 1)}, 1, 2).
				add(Op{Kind: DPut, Key: "d", Value: "b", Context: "", Result: ctx("n1", 2)}, 1, 2).
				add(Op{Kind: DGet, Key: "d", Result: ctx("n1", 2), Values: []string{"a", "b"}}, 3, 4).
				final("d", ctx("n1", 2), "a", "b")
		}, nil, 0},
		{"sibling without concurrency in a read", func(b *builder) {
			b.add(Op{Kind: DPut, Key: "d", Value: "a", Context: "", Result: ctx("n1", 1)}, 1, 2).
				add(Op{Kind: DPut, Key: "d", Value: "b", Context: ctx("n1", 1), Result: ctx("n1", 2)}, 3, 4).
				add(Op{Kind: DGet, Key: "d", Result: ctx("n1", 2), Values: []string{"b", "a"}}, 5, 6).
				final("d", ctx("n1", 2), "b")
		}, []string{RuleFalseSibling}, 0},
		{"sibling without concurrency in the converged record", func(b *builder) {
			b.add(Op{Kind: DPut, Key: "d", Value: "a", Context: "", Result: ctx("n1", 1)}, 1, 2).
				add(Op{Kind: DPut, Key: "d", Value: "b", Context: ctx("n1", 1), Outcome: Unknown}, 3, 4).
				final("d", ctx("n1", 2), "a", "b")
		}, []string{RuleFalseSibling}, 0},
		{"false sibling after a forwarded dput fails too", func(b *builder) {
			b.h.Preflists = map[string][]string{"d": {"n2", "n3", "n4"}}
			b.add(Op{Kind: DPut, Key: "d", Node: "n1", Value: "a", Context: "", Result: ctx("n1", 1)}, 1, 2).
				add(Op{Kind: DPut, Key: "d", Node: "n2", Value: "b", Context: ctx("n1", 1), Result: ctx("n1", 2)}, 3, 4).
				add(Op{Kind: DGet, Key: "d", Result: ctx("n1", 2, "n2", 1), Values: []string{"b", "a"}}, 5, 6).
				final("d", ctx("n1", 2, "n2", 1), "b")
		}, []string{RuleFalseSibling}, 0},
		{"false sibling through a replica fails", func(b *builder) {
			b.h.Preflists = map[string][]string{"d": {"n2", "n3", "n4"}}
			b.add(Op{Kind: DPut, Key: "d", Node: "n3", Value: "a", Context: "", Result: ctx("n1", 1)}, 1, 2).
				add(Op{Kind: DPut, Key: "d", Node: "n2", Value: "b", Context: ctx("n1", 1), Result: ctx("n1", 2)}, 3, 4).
				add(Op{Kind: DGet, Key: "d", Result: ctx("n1", 2, "n2", 1), Values: []string{"b", "a"}}, 5, 6).
				final("d", ctx("n1", 2, "n2", 1), "b")
		}, []string{RuleFalseSibling}, 0},
		{"ambiguous coordinator is not flagged as a false sibling", func(b *builder) {
			// a's result moved both n1 and n2 past its input; b covers only n1's.
			b.add(Op{Kind: DPut, Key: "d", Value: "a", Context: "", Result: ctx("n1", 1, "n2", 1)}, 1, 2).
				add(Op{Kind: DPut, Key: "d", Value: "b", Context: ctx("n1", 1), Result: ctx("n1", 2, "n2", 1)}, 3, 4).
				final("d", ctx("n1", 2, "n2", 1), "a", "b")
		}, nil, 0},
		{"stale read before convergence is allowed", func(b *builder) {
			b.h.Converged = 10 * time.Second
			b.add(Op{Kind: DGet, Key: "d", Session: 1, Result: ctx("n1", 2)}, 1, 2).
				add(Op{Kind: DGet, Key: "d", Session: 1, Result: ctx("n1", 1)}, 3, 4).
				final("d", ctx("n1", 2))
		}, nil, 1},
		{"non-monotonic read after convergence", func(b *builder) {
			b.h.Converged = 10 * time.Second
			b.add(Op{Kind: DGet, Key: "d", Session: 1, Result: ctx("n1", 2)}, 1, 2).
				add(Op{Kind: DGet, Key: "d", Session: 1, Result: ctx("n1", 1)}, 11, 12).
				final("d", ctx("n1", 2))
		}, []string{RuleMonotonic}, 0},
		{"other sessions do not count", func(b *builder) {
			b.h.Converged = 10 * time.Second
			b.add(Op{Kind: DGet, Key: "d", Session: 1, Result: ctx("n1", 2)}, 1, 2).
				add(Op{Kind: DGet, Key: "d", Session: 2, Result: ctx("n1", 1)}, 11, 12).
				final("d", ctx("n1", 2))
		}, nil, 0},
		{"never converged: every stale read is before convergence", func(b *builder) {
			b.add(Op{Kind: DGet, Key: "d", Session: 1, Result: ctx("n1", 2)}, 1, 2).
				add(Op{Kind: DGet, Key: "d", Session: 1, Result: ctx("n1", 1)}, 11, 12).
				final("d", ctx("n1", 2))
		}, nil, 1},
		{"missing final record", func(b *builder) {
			b.add(Op{Kind: Set, Key: "s", Value: "v1", Outcome: Fail}, 1, 2)
		}, []string{RuleMissingFinal}, 0},
		{"set with a TTL lost although it could not have expired by the final read", func(b *builder) {
			b.add(Op{Kind: Set, Key: "e", Value: "v1", EX: 5}, 1, 2).
				final("e", "")
			b.h.Healed, b.h.FinalAt = 3*time.Second, 4*time.Second
		}, []string{RuleLostWrite}, 0},
		{"set with a TTL that expired before a final read taken after convergence failed", func(b *builder) {
			b.add(Op{Kind: Set, Key: "e", Value: "v1", EX: 5}, 1, 2).
				final("e", "")
			b.h.Healed, b.h.FinalAt = 3*time.Second, 70*time.Second // never converged: read at the end of the wait
		}, nil, 0},
		{"reads alone need no final record", func(b *builder) {
			b.add(Op{Kind: Get, Key: "s"}, 1, 2)
		}, nil, 0},
		{"malformed context", func(b *builder) {
			b.add(Op{Kind: DPut, Key: "d", Value: "a", Context: "!!", Outcome: Fail}, 1, 2).
				final("d", "")
		}, []string{RuleMalformed}, 0},
		{"duplicate dput value", func(b *builder) {
			b.add(Op{Kind: DPut, Key: "d", Value: "a", Context: "", Result: ctx("n1", 1)}, 1, 2).
				add(Op{Kind: DPut, Key: "d", Value: "a", Context: ctx("n1", 1), Result: ctx("n1", 2)}, 3, 4).
				final("d", ctx("n1", 2), "a")
		}, []string{RuleDuplicateValue}, 0},
		{"unknown outcome", func(b *builder) {
			b.add(Op{Kind: Get, Key: "s", Outcome: "maybe"}, 1, 2)
		}, []string{RuleMalformed}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := &builder{}
			tc.build(b)
			r := Check(&b.h)
			if got := strings.Join(rules(r), ","); got != strings.Join(tc.want, ",") {
				t.Errorf("violations %q, want %q\n%s", got, tc.want, r.Summary())
			}
			if r.Failed() != (len(tc.want) > 0) {
				t.Errorf("Failed() = %v with violations %q", r.Failed(), rules(r))
			}
			if len(r.StaleReads) != tc.stale {
				t.Errorf("stale reads %d, want %d", len(r.StaleReads), tc.stale)
			}
		})
	}
}

// TestCheckCounts checks the summary's figures and the JSON form of a history.
func TestCheckCounts(t *testing.T) {
	b := &builder{}
	b.h.Faults = []Fault{{Kind: "kill"}, {Kind: "kill"}, {Kind: "pause"}}
	b.add(Op{Kind: Set, Key: "s", Value: "v1"}, 1, 2).
		add(Op{Kind: Set, Key: "s", Value: "v2", Outcome: Unknown}, 3, 4).
		add(Op{Kind: Get, Key: "s", Value: "v1", Found: true, Outcome: Fail}, 3, 4).
		add(Op{Kind: DPut, Key: "d", Value: "a", Context: "", Result: ctx("n1", 1)}, 1, 2).
		add(Op{Kind: DPut, Key: "d", Value: "b", Context: "", Result: ctx("n1", 2)}, 1, 2).
		add(Op{Kind: DGet, Key: "d", Result: ctx("n1", 2), Values: []string{"a", "b"}}, 3, 4).
		final("s", ctx("n1", 2), "v1", "v2").
		final("d", ctx("n1", 2), "a", "b")
	r := Check(&b.h)
	if r.Failed() {
		t.Fatalf("unexpected violations:\n%s", r.Summary())
	}
	if c := *r.Ops[Set]; c != (Counts{Attempted: 2, OK: 1, Unknown: 1}) {
		t.Errorf("set counts %+v", c)
	}
	if c := *r.Ops[Get]; c != (Counts{Attempted: 1, Fail: 1}) {
		t.Errorf("get counts %+v", c)
	}
	if r.Faults["kill"] != 2 || r.Faults["pause"] != 1 {
		t.Errorf("faults %v", r.Faults)
	}
	if r.AckedWrites != 3 || r.SiblingReads != 1 || r.MaxSiblings != 2 || r.FinalSiblingKeys != 2 {
		t.Errorf("acked %d sibling reads %d max %d final sibling keys %d", r.AckedWrites, r.SiblingReads, r.MaxSiblings, r.FinalSiblingKeys)
	}
	s := r.Summary()
	for _, want := range []string{"set               2         1         0         1", "faults: kill=2 pause=1", "lost: 0", "violations: 0"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	// The history round-trips through JSON, the form the harness writes.
	data, err := json.Marshal(&b.h)
	if err != nil {
		t.Fatal(err)
	}
	var back History
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if r2 := Check(&back); r2.Failed() || r2.AckedWrites != r.AckedWrites {
		t.Errorf("after a JSON round trip: %s", r2.Summary())
	}
}

func TestCompareReplicas(t *testing.T) {
	a := Record{Context: ctx("n1", 2), Values: []string{"x", "y"}}
	if d := CompareReplicas(map[string]Record{"n1": a, "n2": {Context: a.Context, Values: []string{"y", "x"}}, "n3": a}); d != "" {
		t.Errorf("equal records differ: %s", d)
	}
	if d := CompareReplicas(map[string]Record{"n1": a}); d != "" {
		t.Errorf("one record differs: %s", d)
	}
	for name, other := range map[string]Record{
		"context": {Context: ctx("n1", 3), Values: a.Values},
		"values":  {Context: a.Context, Values: []string{"x"}},
		"value":   {Context: a.Context, Values: []string{"x", "z"}},
	} {
		d := CompareReplicas(map[string]Record{"n1": a, "n2": a, "n3": other})
		if d == "" || !strings.Contains(d, "n3=") {
			t.Errorf("%s: difference not reported: %q", name, d)
		}
	}
}
