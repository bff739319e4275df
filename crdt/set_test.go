package crdt

import (
	"slices"
	"testing"
)

// TestSetCommands plays Redis's tests/unit/type/set.tcl cases for SADD, SREM and
// SISMEMBER on one node.
func TestSetCommands(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"SADD, SISMEMBER", []step{
			{"SADD foo", "1", nil}, {"SADD foo", "0", nil}, {"SADD bar baz", "2", nil},
			{"SISMEMBER foo", "1", nil}, {"SISMEMBER bar", "1", nil}, {"SISMEMBER nope", "0", nil},
		}},
		{"SADD counts a member named twice once", []step{{"SADD a a b", "2", nil}, {"SADD a c c", "1", nil}}},
		{"SREM basics", []step{
			{"SADD foo bar ciao", "3", nil}, {"SREM qux", "0", nil}, {"SREM foo", "1", nil},
			{"SISMEMBER foo", "0", nil}, {"SISMEMBER bar", "1", nil},
		}},
		{"SREM with multiple arguments", []step{
			{"SADD a b c d", "4", nil}, {"SREM k k k", "0", nil}, {"SREM b d x y", "2", nil},
			{"SISMEMBER a", "1", nil}, {"SISMEMBER b", "0", nil}, {"SISMEMBER c", "1", nil},
		}},
		{"SREM variadic version with more args needed to destroy the key", []step{
			{"SADD a b c", "3", nil}, {"SREM k z a b c", "3", nil}, {"SREM a", "0", nil},
		}},
		{"SADD after SREM", []step{{"SADD x", "1", nil}, {"SREM x", "1", nil}, {"SADD x", "1", nil}, {"SISMEMBER x", "1", nil}}},
	} {
		runScript(t, tc.name, newTypedNode("n"), tc.steps)
	}
}

func TestSetAddDots(t *testing.T) {
	// One command's members take consecutive dots above the actor's highest dot in
	// the collection context, never one it holds, never the same one twice.
	c := ctx(t, "a:1-3,7 n:1-4,9")
	src := NewDots(c, "n", 100)
	var got []Dot
	for _, m := range []Field{nil, field("a2"), field("n9"), nil} {
		d, _ := src.SetAdd(m)
		if len(d.Dots) != 1 || d.Dots[0].Kind != KindFlag {
			t.Fatalf("SetAdd adds %s", fmtField(d.Dots))
		}
		if !slices.Equal(d.Seen, m.Dots()) {
			t.Errorf("SetAdd of %s saw %v", fmtField(m), d.Seen)
		}
		got = append(got, d.Dots[0].Dot)
	}
	if want := dots("n10 n11 n12 n13"); !slices.Equal(got, want) {
		t.Errorf("dots %v, want %v", got, want)
	}
	// An actor the context does not hold starts at the floor.
	src = NewDots(c, "m", 100)
	if a, b := src.Next(), src.Next(); a != dot("m100") || b != dot("m101") {
		t.Errorf("from the floor: %v %v", a, b)
	}
	// The one-member form takes ctx.Next.
	if d, added := SetAdd(field("a1 a7"), c, "a", 1); fmtField(d.Dots) != "a8" || !slices.Equal(d.Seen, dots("a1 a7")) || added {
		t.Errorf("SetAdd of a live member: %s %v %v", fmtField(d.Dots), d.Seen, added)
	}
}

func TestSetRem(t *testing.T) {
	if d, removed := SetRem(nil); !d.Empty() || removed {
		t.Errorf("SREM of an absent member: %v %v", d, removed)
	}
	d, removed := SetRem(field("a2 b5"))
	if !removed || d.Dots != nil || !slices.Equal(d.Seen, dots("a2 b5")) {
		t.Errorf("SREM: %v %v", d, removed)
	}
	if SetLive(nil) || !SetLive(field("a1")) || SetLive(field("a1=x")) {
		t.Error("SetLive counts only flag entries")
	}
}

// TestSetConcurrent plays two nodes of one set: each runs its commands on its own
// view, then they exchange deltas, both ways.
func TestSetConcurrent(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before []string // commands at a, shipped to b before the concurrent ones
		a, b   []string
		want   map[string]bool
	}{
		{"an add concurrent with a remove survives (add-wins)",
			[]string{"SADD x"}, []string{"SADD x"}, []string{"SREM x"}, map[string]bool{"x": true}},
		{"a remove removes what it observed",
			[]string{"SADD x y"}, []string{"SADD z"}, []string{"SREM x y z"}, map[string]bool{"z": true}},
		{"a remove that observed nothing removes nothing",
			nil, []string{"SADD x"}, []string{"SREM x"}, map[string]bool{"x": true}},
		{"concurrent adds: one member",
			nil, []string{"SADD x"}, []string{"SADD x y"}, map[string]bool{"x": true, "y": true}},
		{"two SPOPs of one member through different nodes both remove it",
			[]string{"SADD x y"}, []string{"SREM x"}, []string{"SREM x"}, map[string]bool{"y": true}},
		{"SREM then SADD at one node, concurrent SREM at the other",
			[]string{"SADD x"}, []string{"SREM x", "SADD x"}, []string{"SREM x"}, map[string]bool{"x": true}},
	} {
		a, b := newTypedNode("a"), newTypedNode("b")
		for _, c := range tc.before {
			a.do(t, c)
		}
		exchange(a, b)
		for _, c := range tc.a {
			a.do(t, c)
		}
		for _, c := range tc.b {
			b.do(t, c)
		}
		exchange(a, b)
		for _, n := range []*typedNode{a, b} {
			for _, m := range []string{"x", "y", "z"} {
				if got := n.sismember(m); got != tc.want[m] {
					t.Errorf("%s: SISMEMBER %s at %s = %v, want %v (%v)", tc.name, m, n.actor, got, tc.want[m], n.c)
				}
			}
		}
		if !a.c.equal(b.c) {
			t.Errorf("%s: a %v, b %v", tc.name, a.c, b.c)
		}
	}
}
