package vclock

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"testing"
)

// Table tests for the DVV set algebra. Rows marked "dvvset" port the eunit tests of
// Riak's dvvset.erl (ricardobcl/Dotted-Version-Vectors) to this API:
//
//	update(new(V), I)                  -> Update(Set{}, nil, I, V, ...)
//	update(new(join(C), V), I)         -> Update(Set{}, C.Join(), I, V, ...)
//	update(new(join(C), V), Local, I)  -> Update(Local, C.Join(), I, V, ...)

func TestUpdate(t *testing.T) {
	tests := []struct {
		name         string
		local        string // set notation (helpers_test.go)
		ctx          string // clock notation
		actor, value string
		floor        uint64
		want         string
	}{
		// dvvset update_test, event_test, sync_update_test.
		{"dvvset A0 first write", "", "", "a", "v1", 1, "a:1[v1]"},
		{"dvvset A1 overwrite with the read context", "a:1[v1]", "a:1", "a", "v2", 1, "a:2[v2]"},
		{"dvvset A2 other coordinator supersedes what it read", "a:2[v2]", "a:2", "b", "v3", 1, "a:2[] b:1[v3]"},
		{"dvvset A3 stale context at other coordinator", "a:2[v2]", "a:1", "b", "v4", 1, "a:2[v2] b:1[v4]"},
		{"dvvset A4 stale context at same coordinator", "a:2[v2]", "a:1", "a", "v5", 1, "a:3[v5,v2]"},
		{"dvvset event same actor", "a:1[v1]", "", "a", "v2", 1, "a:2[v2,v1]"},
		{"dvvset event new actor", "a:1[v1]", "", "b", "v2", 1, "a:1[v1] b:1[v2]"},
		{"dvvset sync_update Peter supersedes only v1", "a:2[v2,v1]", "a:1", "a", "v3", 1, "a:3[v3,v2]"},

		// Classic scenarios.
		{"two blind writes through one coordinator are siblings", "a:1[v1]", "", "a", "v2", 1, "a:2[v2,v1]"},
		{"empty context supersedes nothing anywhere", "a:2[v2] b:1[w1]", "", "b", "w2", 1, "a:2[v2] b:2[w2,w1]"},
		{"context of a full read supersedes every sibling", "a:2[v2,v1] b:1[w1]", "a:2 b:1", "b", "x", 1, "a:2[] b:2[x]"},
		{"context covers part of a run", "a:4[v4,v3,v2] b:1[w]", "a:3", "a", "v5", 1, "a:5[v5,v4] b:1[w]"},
		{"context newer than the local record", "a:1[v1]", "a:3 b:2", "c", "x", 1, "a:3[] b:2[] c:1[x]"},
		{"context naming an actor the record lacks", "b:1[w]", "a:2", "b", "x", 1, "a:2[] b:2[x,w]"},
		{"tombstone is a write like any other", "a:1[v1]", "a:1", "b", "~", 1, "a:1[] b:1[~]"},

		// Fresh-counter floor (see the package doc).
		{"floor starts a new entry", "", "", "a", "v1", 1000, "a:1000[v1]"},
		{"floor 0 behaves as 1", "", "", "a", "v1", 0, "a:1[v1]"},
		{"floor ignored while the entry holds a value", "a:7[v7]", "", "a", "v8", 1000, "a:8[v8,v7]"},
		{"floor applies once the context superseded the entry's values", "a:7[v7]", "a:7", "a", "v8", 1000, "a:1000[v8]"},
		{"floor applies to an idle entry of the record", "a:7[] b:1[w]", "b:1", "a", "v8", 1000, "a:1000[v8] b:1[]"},
		// Regression: the record was reaped (or its entry pruned) and the client's
		// context, read from a stale replica, names the actor. ctx+1 = a:6 may be a dot
		// a already issued and another replica still holds; the floor must win.
		{"floor applies when only the context names the actor", "b:1[w]", "a:5 b:1", "a", "v", 1000, "a:1000[v] b:1[]"},
		{"context counter above the floor", "", "a:2000", "a", "v", 1000, "a:2001[v]"},

		// Anonymous values follow dvvset's sync: dropped when the other side strictly
		// dominates, kept otherwise. Records built by Update never hold any.
		{"anonymous values survive a concurrent context", "a:1[v1] | w", "", "b", "v2", 1, "a:1[v1] b:1[v2] | w"},
		{"anonymous values survive an equal context", "a:1[v1] | w", "a:1", "b", "v2", 1, "a:1[] b:1[v2] | w"},
		{"anonymous values dropped by a dominating context", "a:1[v1] | w", "a:2", "b", "v2", 1, "a:2[] b:1[v2]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			local := mustParseSet(t, tt.local)
			ctx := mustParseClock(t, tt.ctx)
			before := cloneSet(local)
			v := parseValues(tt.value)
			if len(v) == 0 {
				v = []Value{{}}
			}
			got := Update(local, ctx, tt.actor, v[0], 0, tt.floor)
			want := mustParseSet(t, tt.want)
			if !equalSets(got, want) {
				t.Errorf("Update(%q, %q, %s, %s) = %q, want %q", tt.local, tt.ctx, tt.actor, tt.value, fmtSet(got), tt.want)
			}
			if bad := checkInvariants(got); bad != "" {
				t.Errorf("result breaks invariants: %s", bad)
			}
			if !identicalSets(local, before) {
				t.Errorf("Update mutated its argument: %q -> %q", fmtSet(before), fmtSet(local))
			}
		})
	}
}

func TestUpdateActive(t *testing.T) {
	s := Update(Set{}, nil, "a", val("v1"), 50, 1)
	s = Update(s, s.Join(), "b", val("v2"), 40, 1) // needs a (supersedes v1): already active at 50
	s = Update(s, mustParseClock(t, "c:3"), "a", val("v3"), 30, 1)
	s = Update(s, mustParseClock(t, "c:2"), "b", val("v4"), 60, 1)
	want := "a:2@50[v3] b:2@60[v4,v2] c:3@30[]"
	if got := fmtSet(s); got != want {
		t.Errorf("got %q, want %q (Active is the max of now seen, by the actor's writes and by writes that need its entry)", got, want)
	}
}

func TestSync(t *testing.T) {
	tests := []struct {
		name    string
		a, b    string
		want    string
		wantLen int
	}{
		// dvvset sync_test.
		{"dvvset W Z", "a:1[]", "a:2[v2,v1]", "a:2[v2]", 1},
		{"dvvset A A1", "a:1[v1]", "a:2[v2]", "a:2[v2]", 1},
		{"dvvset A4 A3", "a:2[] c:1[v3]", "a:2[] b:1[v3]", "a:2[] b:1[v3] c:1[v3]", 2},
		{"dvvset X A", "x:1[]", "a:1[v1]", "a:1[v1] x:1[]", 1},
		{"dvvset A Y", "a:1[v1]", "b:1[v2]", "a:1[v1] b:1[v2]", 2},

		{"empty and empty", "", "", "", 0},
		{"empty and a record", "", "a:2[v2,v1] b:1[w]", "a:2[v2,v1] b:1[w]", 3},
		{"same record", "a:2[v2,v1] b:1[w]", "a:2[v2,v1] b:1[w]", "a:2[v2,v1] b:1[w]", 3},
		{"divergent replicas keep what the other has not seen", "a:3[v3,v2] b:1[]", "a:2[v2] b:2[w2]", "a:3[v3,v2] b:2[w2]", 3},
		{"runs overlap, the more superseded low end wins", "a:5[v5,v4,v3]", "a:4[v4]", "a:5[v5,v4]", 2},
		{"runs overlap the other way", "a:5[v5]", "a:4[v4,v3,v2]", "a:5[v5]", 1},
		{"equal counters, shorter run wins", "a:3[v3,v2]", "a:3[v3]", "a:3[v3]", 1},
		{"higher counter, longer run reaching below", "a:6[v6,v5,v4,v3]", "a:4[v4]", "a:6[v6,v5,v4]", 3},
		{"idle entry on one side supersedes the other's old values", "a:9[] b:1[w]", "a:4[v4,v3]", "a:9[] b:1[w]", 1},
		{"disjoint actors interleave", "a:1[x] c:1[z]", "b:1[y] d:2[q]", "a:1[x] b:1[y] c:1[z] d:2[q]", 4},
		{"activity is the max", "a:2@7[v2]", "a:2@9[v2]", "a:2@9[v2]", 1},

		// Anonymous values (dvvset sync).
		{"anon: concurrent entries union", "a:1[] | w1", "b:1[] | w2", "a:1[] b:1[] | w1,w2", 2},
		{"anon: equal entries union and dedup", "a:1[] | w1,w2", "a:1[] | w2,w3", "a:1[] | w1,w2,w3", 3},
		{"anon: dominated side dropped", "a:1[] | w1", "a:2[] | w2", "a:2[] | w2", 1},
		{"anon: no entries both sides", "| w1", "| w1", "| w1", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := mustParseSet(t, tt.a), mustParseSet(t, tt.b)
			ca, cb := cloneSet(a), cloneSet(b)
			want := mustParseSet(t, tt.want)
			for _, got := range []Set{Sync(a, b), Sync(b, a)} {
				if !equalSets(got, want) {
					t.Errorf("Sync(%q, %q) = %q, want %q", tt.a, tt.b, fmtSet(got), tt.want)
				}
				if got.Len() != tt.wantLen {
					t.Errorf("Len = %d, want %d", got.Len(), tt.wantLen)
				}
			}
			if !identicalSets(a, ca) || !identicalSets(b, cb) {
				t.Errorf("Sync mutated its arguments")
			}
		})
	}
}

func TestDiscard(t *testing.T) {
	tests := []struct{ s, ctx, want string }{
		{"a:3[v3,v2,v1] b:1[w]", "", "a:3[v3,v2,v1] b:1[w]"},
		{"a:3[v3,v2,v1] b:1[w]", "a:2", "a:3[v3] b:1[w]"},
		{"a:3[v3,v2,v1] b:1[w]", "a:3 b:1", "a:3[] b:1[]"},
		{"a:3[v3,v2,v1] b:1[w]", "a:5 c:1", "a:5[] b:1[w] c:1[]"},
		{"", "a:2", "a:2[]"},
		{"a:2@8[v2]", "a:1", "a:2@8[v2]"},
	}
	for _, tt := range tests {
		s := mustParseSet(t, tt.s)
		got := Discard(s, mustParseClock(t, tt.ctx))
		if want := mustParseSet(t, tt.want); !equalSets(got, want) {
			t.Errorf("Discard(%q, %q) = %q, want %q", tt.s, tt.ctx, fmtSet(got), tt.want)
		}
	}
}

func TestJoin(t *testing.T) {
	// dvvset join_test.
	a := New(nil, val("v1"))
	a1 := Update(Set{}, nil, "a", val("v1"), 0, 1)
	b1 := Update(a1, a1.Join(), "b", val("v2"), 0, 1)
	for _, tt := range []struct {
		s    Set
		want string
	}{
		{a, ""},
		{a1, "a:1"},
		{b1, "a:1 b:1"},
		{mustParseSet(t, "a:4[v4] b:2[] c:1[z] | w"), "a:4 b:2 c:1"},
	} {
		got := tt.s.Join()
		if fmtClock(got) != tt.want {
			t.Errorf("Join(%q) = %q, want %q", fmtSet(tt.s), fmtClock(got), tt.want)
		}
		if len(got) == 0 && got != nil {
			t.Errorf("Join of an entry-less set should be nil")
		}
	}
	if n := New(mustParseClock(t, "a:2 b:1"), val("x")); fmtSet(n) != "a:2[] b:1[] | x" {
		t.Errorf("New = %q", fmtSet(n))
	}
}

func TestLess(t *testing.T) {
	// dvvset less_test.
	up := func(local Set, ctx Clock, actor, v string) Set { return Update(local, ctx, actor, val(v), 0, 1) }
	A := up(Set{}, nil, "a", "v1")
	B := up(Set{}, A.Join(), "a", "v2")
	B2 := up(Set{}, A.Join(), "b", "v2")
	B3 := up(Set{}, A.Join(), "z", "v2")
	C := up(A, B.Join(), "c", "v3")
	D := up(B2, C.Join(), "d", "v4")
	for _, tt := range []struct {
		name string
		x, y Set
		want bool
	}{
		{"A<B", A, B, true}, {"A<C", A, C, true}, {"B<C", B, C, true}, {"B<D", B, D, true},
		{"B2<D", B2, D, true}, {"A<D", A, D, true},
		{"B2<C", B2, C, false}, {"B<B2", B, B2, false}, {"B2<B", B2, B, false},
		{"A<A", A, A, false}, {"C<C", C, C, false}, {"D<B2", D, B2, false}, {"B3<D", B3, D, false},
	} {
		if got := less(tt.x.Entries, tt.y.Entries); got != tt.want {
			t.Errorf("less(%s) = %v, want %v (x=%q y=%q)", tt.name, got, tt.want, fmtSet(tt.x), fmtSet(tt.y))
		}
		// less agrees with the clocks: strictly dominated.
		jx, jy := tt.x.Join(), tt.y.Join()
		if strict := jy.Descends(jx) && !jx.Descends(jy); strict != tt.want {
			t.Errorf("clock order of %s = %v, want %v", tt.name, strict, tt.want)
		}
	}
}

// TestScenarios tells the classic DVV stories end to end over replicas.
func TestScenarios(t *testing.T) {
	up := func(local Set, ctx Clock, actor, v string, ts int64) Set {
		return Update(local, ctx, actor, Value{Data: []byte(v), Timestamp: ts}, ts, 1)
	}
	wantSibs := func(t *testing.T, what string, s Set, want ...string) {
		t.Helper()
		slices.Sort(want)
		if got := sibData(s); !slices.Equal(got, want) {
			t.Errorf("%s: siblings %q, want %q (set %q)", what, got, want, fmtSet(s))
		}
	}

	t.Run("blind writes through one coordinator become siblings", func(t *testing.T) {
		r := up(Set{}, nil, "A", "mary", 1)
		r = up(r, nil, "A", "peter", 2)
		wantSibs(t, "after two blind writes", r, "mary", "peter")
		if w, _ := Winner(r.Siblings()); string(w.Data) != "peter" {
			t.Errorf("plain GET returns %q, want the later write", w.Data)
		}
	})

	t.Run("a write with a read's context supersedes exactly what it read", func(t *testing.T) {
		r := up(Set{}, nil, "A", "v1", 1)
		read := r.Join() // Peter reads v1
		r = up(r, nil, "A", "v2", 2)
		r = up(r, read, "A", "v3", 3) // Peter writes with v1's context
		wantSibs(t, "v3 supersedes v1 only", r, "v2", "v3")
		r = up(r, r.Join(), "A", "v4", 4)
		wantSibs(t, "a full read supersedes both", r, "v4")
	})

	t.Run("concurrent writes through different coordinators", func(t *testing.T) {
		ra := up(Set{}, nil, "A", "v1", 1)
		rb := ra // replicated
		ctx := ra.Join()
		ra = up(ra, ctx, "A", "x", 2)
		rb = up(rb, ctx, "B", "y", 3)
		wantSibs(t, "A alone", ra, "x")
		wantSibs(t, "B alone", rb, "y")
		ab, ba := Sync(ra, rb), Sync(rb, ra)
		wantSibs(t, "after sync", ab, "x", "y")
		if !equalSets(ab, ba) {
			t.Errorf("replicas differ after sync: %q vs %q", fmtSet(ab), fmtSet(ba))
		}
		// Resolving with the merged context collapses the siblings everywhere.
		r := up(ab, ab.Join(), "B", "z", 4)
		wantSibs(t, "resolved", Sync(ba, r), "z")
	})

	t.Run("replica sync after divergent updates", func(t *testing.T) {
		// Three replicas of one key. C is partitioned away after the first write.
		ra := up(Set{}, nil, "A", "v1", 1)
		rb, rc := ra, ra
		ra = up(ra, ra.Join(), "A", "v2", 2) // supersedes v1 on A
		rb = Sync(rb, ra)                    // B catches up
		rb = up(rb, nil, "B", "blind", 3)    // blind write at B: sibling of v2
		rc = up(rc, rc.Join(), "C", "c1", 4) // C, cut off, overwrites v1 only
		wantSibs(t, "B before heal", rb, "v2", "blind")
		wantSibs(t, "C before heal", rc, "c1")

		// Heal: anti-entropy in an arbitrary order; all three converge.
		rc = Sync(rc, rb)
		ra = Sync(ra, rc)
		rb = Sync(rb, ra)
		rc = Sync(rc, ra)
		for name, r := range map[string]Set{"A": ra, "B": rb, "C": rc} {
			wantSibs(t, name+" after heal", r, "v2", "blind", "c1")
			if !equalSets(r, ra) {
				t.Errorf("%s = %q, A = %q", name, fmtSet(r), fmtSet(ra))
			}
		}
		if got := fmtClock(ra.Join()); got != "A:2 B:1 C:1" {
			t.Errorf("healed context %q", got)
		}
	})

	t.Run("delete then concurrent write keeps the write", func(t *testing.T) {
		r := up(Set{}, nil, "A", "v1", 1)
		ctx := r.Join()
		del := Update(r, ctx, "A", Value{Tombstone: true, Timestamp: 2}, 2, 1)
		other := up(r, ctx, "B", "v2", 3)
		m := Sync(del, other)
		if m.Len() != 2 {
			t.Fatalf("want tombstone and v2 as siblings, got %q", fmtSet(m))
		}
		if w, _ := Winner(m.Siblings()); string(w.Data) != "v2" || w.Tombstone {
			t.Errorf("winner %+v, want v2", w)
		}
	})
}

// TestDotReuseAfterReap is the failing case behind the fix in Update: a coordinator
// whose record was reaped (or whose entry was pruned) gets a context from a stale
// replica that names it. Before the fix the new value took dot ctx+1, a dot the
// coordinator had already issued and another replica still held; Sync then kept one
// value or the other depending on argument order, and because both replicas had the
// same version vector anti-entropy would never notice.
func TestDotReuseAfterReap(t *testing.T) {
	v := func(s string, ts int64) Value { return Value{Data: []byte(s), Timestamp: ts} }
	x := Update(Set{}, nil, "x", v("v5", 1), 1, 100) // x:100
	stale := x                                       // replica B stops here
	x = Update(x, x.Join(), "x", v("v6", 2), 2, 200) // x:101
	c := x                                           // replica C holds x:101 = v6
	x = Set{}                                        // x's record is reaped
	x = Update(x, stale.Join(), "x", v("v7", 3), 3, 300)

	if d := x.Siblings()[0].Dot; d.Counter <= 101 {
		t.Fatalf("new write got dot %v, reusing a dot x already issued", d)
	}
	for _, m := range []Set{Sync(x, c), Sync(c, x)} {
		if got := sibData(m); !slices.Equal(got, []string{"v7"}) {
			t.Errorf("after sync: %q, want the new write v7 (set %q)", got, fmtSet(m))
		}
	}
}

// TestContextCounterOverflow is the failing case behind the counter limit in the
// decoders: a client-supplied context naming the coordinator with counter 2^64-1 made
// Update wrap the counter to 0 (len(Values) > Counter), after which the record no
// longer decoded and Sync with any other copy panicked with a slice bound out of range.
func TestContextCounterOverflow(t *testing.T) {
	for _, c := range []uint64{math.MaxUint64, MaxCounter + 1} {
		enc := Clock{{"x", c}}.String()
		if _, err := ParseContext(enc); err == nil {
			t.Errorf("ParseContext accepted counter %d", c)
		}
	}
	ctx, err := ParseContext(Clock{{"x", MaxCounter}}.String())
	if err != nil {
		t.Fatalf("ParseContext(MaxCounter): %v", err)
	}
	s := Update(Set{}, ctx, "x", val("a"), 1, 1)
	other := Update(Set{}, nil, "x", val("b"), 1, 5)
	m := Sync(s, other) // must not panic
	if bad := checkInvariants(m); bad != "" {
		t.Fatal(bad)
	}
	if _, err := DecodeSet(m.AppendBinary(nil)); err != nil {
		t.Fatalf("record grown from the largest context does not decode: %v", err)
	}
	// A record beyond the record limit is refused, so a hostile peer cannot
	// smuggle in a counter Update would overflow.
	huge := Set{Entries: []Entry{{Actor: "x", Counter: math.MaxUint64, Values: []Value{val("a")}}}}
	if _, err := DecodeSet(huge.AppendBinary(nil)); err == nil {
		t.Errorf("DecodeSet accepted counter 2^64-1")
	}
}

func TestPrune(t *testing.T) {
	tests := []struct {
		name string
		s    string
		o    PruneOptions
		want string
	}{
		{"under the limit", "a:1@1[] b:1@2[]", PruneOptions{Limit: 2}, "a:1@1[] b:1@2[]"},
		{"limit 0 disables", "a:1@1[] b:1@2[] c:1@3[]", PruneOptions{}, "a:1@1[] b:1@2[] c:1@3[]"},
		{"negative limit disables", "a:1@1[] b:1@2[]", PruneOptions{Limit: -1}, "a:1@1[] b:1@2[]"},
		{"least active idle entry goes first", "a:1@5[] b:1@1[] c:1@3[]", PruneOptions{Limit: 2}, "a:1@5[] c:1@3[]"},
		{"entries holding values stay", "a:1@1[x] b:1@2[] c:1@3[y]", PruneOptions{Limit: 1}, "a:1@1[x] c:1@3[y]"},
		{"all writers concurrent: nothing to prune", "a:1@1[x] b:1@2[y] c:1@3[z]", PruneOptions{Limit: 1}, "a:1@1[x] b:1@2[y] c:1@3[z]"},
		{"ties broken by actor", "a:1@1[] b:1@1[] c:1@1[]", PruneOptions{Limit: 1}, "c:1@1[]"},
		{"anonymous values untouched", "a:1@1[] b:1@2[] | w", PruneOptions{Limit: 1}, "b:1@2[] | w"},
		{"inactive entries go first", "a:3[] b:1@9[x] c:2@4[]", PruneOptions{Limit: 2}, "b:1@9[x] c:2@4[]"},
		{"the kept actor stays", "a:1@1[] b:1@2[] c:1@3[]", PruneOptions{Limit: 1, Keep: "a"}, "a:1@1[]"},
		{"needed entries stay", "a:3[] b:1@2[] c:2@4[] d:1@5[w]", PruneOptions{Limit: 2, Needed: Clock{{"a", 3}, {"c", 1}}},
			"a:3[] c:2@4[] d:1@5[w]"},
		{"young entries stay", "a:1@1[] b:1@2[] c:1@8[] d:1@9[]", PruneOptions{Limit: 1, Now: 10, MinAge: 5},
			"c:1@8[] d:1@9[]"},
		{"an entry is young after Now-MinAge", "a:1@5[] b:1@6[]", PruneOptions{Limit: 1, Now: 10, MinAge: 5}, "b:1@6[]"},
		{"above the hard limit young ones go, oldest first", "a:1@1[] b:1@7[] c:1@8[] d:1@9[] e:1@10[]",
			PruneOptions{Limit: 1, Now: 10, MinAge: 5, HardLimit: 3}, "c:1@8[] d:1@9[] e:1@10[]"},
		{"a hard limit below the limit is the limit", "a:1@7[] b:1@8[] c:1@9[]",
			PruneOptions{Limit: 2, Now: 10, MinAge: 5, HardLimit: 1}, "b:1@8[] c:1@9[]"},
		{"the hard limit never drops needed or own entries", "a:1@7[] b:1@8[] c:1@9[] d:1@9[x]",
			PruneOptions{Limit: 1, Keep: "a", Needed: Clock{{"b", 1}}, Now: 10, MinAge: 5, HardLimit: 2}, "a:1@7[] b:1@8[] d:1@9[x]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParseSet(t, tt.s)
			before := cloneSet(s)
			got := Prune(s, tt.o)
			if want := mustParseSet(t, tt.want); !equalSets(got, want) {
				t.Errorf("Prune(%q, %+v) = %q, want %q", tt.s, tt.o, fmtSet(got), tt.want)
			}
			if !slices.Equal(sibData(got), sibData(s)) {
				t.Errorf("Prune lost values")
			}
			if !identicalSets(s, before) {
				t.Errorf("Prune mutated its argument")
			}
		})
	}
	// Pruning then syncing with a stale copy resurrects an overwritten value as a
	// sibling (the documented cost, once the overwrite is older than MinAge); it
	// never loses the overwrite.
	stale := mustParseSet(t, "a:1@1[old]")
	fresh := mustParseSet(t, "a:1@1[] b:1@2[x] c:1@3[] d:1@4[]")
	pruned := Prune(fresh, PruneOptions{Limit: 3})
	if fmtSet(pruned) != "b:1@2[x] c:1@3[] d:1@4[]" {
		t.Fatalf("pruned = %q", fmtSet(pruned))
	}
	if got := sibData(Sync(pruned, stale)); !slices.Equal(got, []string{"old", "x"}) {
		t.Errorf("after prune+sync: %q, want old resurrected next to x", got)
	}
	// Within MinAge of the overwrite that needed it, the entry stays.
	if kept := Prune(fresh, PruneOptions{Limit: 3, Now: 5, MinAge: 10}); !equalSets(kept, fresh) {
		t.Errorf("a young entry was pruned: %q", fmtSet(kept))
	}
}

func TestNeeded(t *testing.T) {
	for _, tt := range []struct {
		local, ctx, want string
	}{
		{"", "", ""},
		{"", "a:3 b:1", "a:3 b:1"}, // coverage only the context supplies
		{"a:3[x] b:2[]", "a:3 b:2", "a:3"},
		{"a:3[x] b:2[]", "a:2 b:1", ""},            // covers nothing local did not know superseded
		{"a:5[x,y,z] b:2[]", "a:3 b:3", "a:3 b:3"}, // supersedes a:3 here; b:3 is news
		{"a:5[x,y] b:2[]", "a:3", ""},              // a:3 was already superseded
		{"a:5[x,y] c:1[]", "a:4 b:1 d:2", "a:4 b:1 d:2"},
	} {
		got := Needed(mustParseSet(t, tt.local), mustParseClock(t, tt.ctx))
		if fmtClock(got) != tt.want {
			t.Errorf("Needed(%q, %q) = %q, want %q", tt.local, tt.ctx, fmtClock(got), tt.want)
		}
	}
}

func TestWinner(t *testing.T) {
	sib := func(data string, ts int64, actor string, n uint64) Sibling {
		return Sibling{Value: Value{Data: []byte(data), Timestamp: ts}, Dot: Dot{actor, n}}
	}
	tests := []struct {
		name string
		sibs []Sibling
		want string
	}{
		{"single", []Sibling{sib("x", 1, "a", 1)}, "x"},
		{"greatest timestamp", []Sibling{sib("old", 1, "z", 9), sib("new", 2, "a", 1), sib("mid", 1, "b", 1)}, "new"},
		{"timestamp tie: greater actor", []Sibling{sib("a", 5, "a", 9), sib("b", 5, "b", 1)}, "b"},
		{"timestamp tie: greater counter", []Sibling{sib("lo", 5, "a", 1), sib("hi", 5, "a", 2)}, "hi"},
		{"anonymous loses a tie to a dotted value", []Sibling{sib("anon", 5, "", 0), sib("dotted", 5, "a", 1)}, "dotted"},
		{"full tie: greater data", []Sibling{sib("p", 5, "", 0), sib("q", 5, "", 0)}, "q"},
		{"negative timestamps", []Sibling{sib("x", -5, "a", 1), sib("y", -1, "a", 2)}, "y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The verdict must not depend on the order siblings are listed in.
			perm := slices.Clone(tt.sibs)
			for range len(perm) {
				w, ok := Winner(perm)
				if !ok || string(w.Data) != tt.want {
					t.Errorf("Winner(%v) = %q, %v; want %q", perm, w.Data, ok, tt.want)
				}
				perm = append(perm[1:], perm[0])
			}
			slices.Reverse(perm)
			if w, _ := Winner(perm); string(w.Data) != tt.want {
				t.Errorf("reversed: Winner = %q, want %q", w.Data, tt.want)
			}
		})
	}
	if _, ok := Winner(nil); ok {
		t.Errorf("Winner(nil) ok")
	}
}

func TestClock(t *testing.T) {
	c := mustParseClock(t, "a:3 b:1 d:7")
	for _, tt := range []struct {
		actor string
		want  uint64
	}{{"a", 3}, {"b", 1}, {"c", 0}, {"d", 7}, {"", 0}, {"z", 0}} {
		if got := c.Get(tt.actor); got != tt.want {
			t.Errorf("Get(%q) = %d, want %d", tt.actor, got, tt.want)
		}
	}
	for _, tt := range []struct {
		d    Dot
		want bool
	}{
		{Dot{"a", 1}, true}, {Dot{"a", 3}, true}, {Dot{"a", 4}, false},
		{Dot{"c", 1}, false}, {Dot{"d", 7}, true}, {Dot{}, false}, {Dot{"a", 0}, false},
	} {
		if got := c.Covers(tt.d); got != tt.want {
			t.Errorf("Covers(%v) = %v, want %v", tt.d, got, tt.want)
		}
	}

	for _, tt := range []struct {
		x, y        string
		merge       string
		xDy, yDx    bool // x descends y, y descends x
		description string
	}{
		{"", "", "", true, true, "empty"},
		{"a:1", "", "a:1", true, false, "anything descends empty"},
		{"a:2 b:1", "a:1 b:1", "a:2 b:1", true, false, "dominates"},
		{"a:2 b:1", "a:2 b:1", "a:2 b:1", true, true, "equal"},
		{"a:2", "b:1", "a:2 b:1", false, false, "disjoint"},
		{"a:2 b:1", "a:1 b:2", "a:2 b:2", false, false, "crossed"},
		{"a:1 c:5", "b:2 c:1 d:1", "a:1 b:2 c:5 d:1", false, false, "interleaved"},
		{"a:1 b:1 c:1", "b:1", "a:1 b:1 c:1", true, false, "superset of actors"},
	} {
		x, y := mustParseClock(t, tt.x), mustParseClock(t, tt.y)
		if got := fmtClock(x.Merge(y)); got != tt.merge {
			t.Errorf("%s: Merge = %q, want %q", tt.description, got, tt.merge)
		}
		if got := fmtClock(y.Merge(x)); got != tt.merge {
			t.Errorf("%s: Merge reversed = %q, want %q", tt.description, got, tt.merge)
		}
		if got := x.Descends(y); got != tt.xDy {
			t.Errorf("%s: %q.Descends(%q) = %v", tt.description, tt.x, tt.y, got)
		}
		if got := y.Descends(x); got != tt.yDx {
			t.Errorf("%s: %q.Descends(%q) = %v", tt.description, tt.y, tt.x, got)
		}
		m := x.Merge(y)
		if !m.Descends(x) || !m.Descends(y) {
			t.Errorf("%s: merge does not descend its inputs", tt.description)
		}
	}
}

func TestSiblingsLenEmpty(t *testing.T) {
	s := mustParseSet(t, "a:5[v5,v4] b:1[] c:2[w2] | x,y")
	want := []Sibling{
		{val("v5"), Dot{"a", 5}}, {val("v4"), Dot{"a", 4}}, {val("w2"), Dot{"c", 2}},
		{val("x"), Dot{}}, {val("y"), Dot{}},
	}
	got := s.Siblings()
	if !slices.EqualFunc(got, want, func(a, b Sibling) bool { return a.Dot == b.Dot && a.Equal(b.Value) }) {
		t.Errorf("Siblings = %+v, want %+v", got, want)
	}
	if s.Len() != 5 {
		t.Errorf("Len = %d", s.Len())
	}
	for _, tt := range []struct {
		s    string
		want bool
	}{{"", true}, {"a:1[]", false}, {"| x", false}} {
		if got := mustParseSet(t, tt.s).Empty(); got != tt.want {
			t.Errorf("Empty(%q) = %v", tt.s, got)
		}
	}
}

func TestMap(t *testing.T) {
	s := mustParseSet(t, "a:5[v5,v4] b:1[] | x")
	before := cloneSet(s)
	got := Map(s, func(v Value) Value {
		v.Data = []byte(strings.ToUpper(string(v.Data)))
		return v
	})
	if want := "a:5[V5,V4] b:1[] | X"; fmtSet(got) != want {
		t.Errorf("Map = %q, want %q", fmtSet(got), want)
	}
	if !identicalSets(s, before) {
		t.Errorf("Map mutated its argument")
	}
	// Turning expired values into tombstones keeps causality intact.
	now := int64(100)
	s = Set{Entries: []Entry{{Actor: "a", Counter: 2, Values: []Value{{Data: []byte("x"), Expiry: 50}, {Data: []byte("y")}}}}}
	got = Map(s, func(v Value) Value {
		if v.Expired(now) {
			return Value{Tombstone: true, Timestamp: v.Timestamp}
		}
		return v
	})
	if fmtSet(got) != "a:2[~,y]" || !slices.Equal(got.Join(), s.Join()) {
		t.Errorf("Map to tombstones = %q", fmtSet(got))
	}
}

func TestValue(t *testing.T) {
	for _, tt := range []struct {
		expiry, now int64
		want        bool
	}{{0, 1 << 60, false}, {10, 9, false}, {10, 10, true}, {10, 11, true}, {-1, 0, true}} {
		if got := (Value{Expiry: tt.expiry}).Expired(tt.now); got != tt.want {
			t.Errorf("Expiry %d at %d: Expired = %v", tt.expiry, tt.now, got)
		}
	}
	base := Value{Data: []byte("x"), Flags: 1, Timestamp: 2, Expiry: 3, Tombstone: true}
	if !base.Equal(base) {
		t.Errorf("value not equal to itself")
	}
	for i, o := range []Value{
		{Data: []byte("y"), Flags: 1, Timestamp: 2, Expiry: 3, Tombstone: true},
		{Data: []byte("x"), Flags: 9, Timestamp: 2, Expiry: 3, Tombstone: true},
		{Data: []byte("x"), Flags: 1, Timestamp: 9, Expiry: 3, Tombstone: true},
		{Data: []byte("x"), Flags: 1, Timestamp: 2, Expiry: 9, Tombstone: true},
		{Data: []byte("x"), Flags: 1, Timestamp: 2, Expiry: 3},
	} {
		if base.Equal(o) || o.Equal(base) {
			t.Errorf("case %d: values differing in one field compare equal", i)
		}
	}
	if !(Value{Data: nil}).Equal(Value{Data: []byte{}}) {
		t.Errorf("nil and empty data differ")
	}
}

func TestDotCompare(t *testing.T) {
	ds := []Dot{{}, {"a", 1}, {"a", 2}, {"a", 10}, {"b", 1}, {"ba", 1}}
	for i := range ds {
		for j := range ds {
			if got, want := ds[i].Compare(ds[j]), cmp.Compare(i, j); got != want {
				t.Errorf("Compare(%v, %v) = %d", ds[i], ds[j], got)
			}
		}
	}
}

// TestPruneKeepsOwnEntry: if the coordinator forgot its own idle entry, read repair
// from a stale replica would bring back an old counter and its next write would reuse
// a dot another replica holds, losing that write there. Prune keeps the coordinator's
// entry, so the next dot is fresh and the write survives every merge.
func TestPruneKeepsOwnEntry(t *testing.T) {
	up := func(s Set, ctx Clock, actor, v string, now int64) Set {
		return Update(s, ctx, actor, Value{Data: []byte(v), Timestamp: now}, now, uint64(now)*1000)
	}
	x := up(Set{}, nil, "x", "v1", 1)               // x:1000 on X, B, C
	stale := x                                      // B misses everything after this
	x = up(x, x.Join(), "x", "v2", 2)               // x:1001
	x = up(x, x.Join(), "a", "w", 3)                // a supersedes v2; x's entry goes idle
	c := x                                          // C has x:1001, idle
	x = Prune(x, PruneOptions{Limit: 1, Keep: "x"}) // X keeps its own idle entry
	if _, ok := entry(x, "x"); !ok {
		t.Fatalf("Prune dropped the coordinator's own entry: %q", fmtSet(x))
	}
	x = Sync(x, stale)                // read repair from B
	x = up(x, x.Join(), "x", "v3", 4) // acknowledged write
	for _, m := range []Set{Sync(x, c), Sync(c, x)} {
		if got := sibData(m); !slices.Contains(got, "v3") {
			t.Errorf("acknowledged write v3 lost: %q", fmtSet(m))
		}
	}
}

// TestDotCollisionResolvesToNewer: should a dot ever be issued twice, Sync keeps
// the newer value for it on both sides, so replicas still converge.
func TestDotCollisionResolvesToNewer(t *testing.T) {
	old := Set{Entries: []Entry{{Actor: "x", Counter: 5, Values: []Value{{Data: []byte("old"), Timestamp: 1}}}}}
	nw := Set{Entries: []Entry{{Actor: "x", Counter: 5, Values: []Value{{Data: []byte("new"), Timestamp: 2}}}}}
	for _, m := range []Set{Sync(old, nw), Sync(nw, old)} {
		if got := sibData(m); !slices.Equal(got, []string{"new"}) {
			t.Errorf("collision kept %q, want [new]", got)
		}
	}
}

// TestPruneKeepsContextCoverage (issue 15, finding 4): with more than MaxEntries
// actors on a key, a client reads v from a replica and writes w with that context
// through a coordinator whose own copy is behind. The write covers v, so once the
// replicas sync v must be gone: pruning may not drop the entries that only the
// context supplied.
func TestPruneKeepsContextCoverage(t *testing.T) {
	replica := mustParseSet(t, "a00:7@1[v] a01:1@2[] a02:2@3[] a03:3@4[] a04:4@5[] a05:5@6[] a06:6@7[] a07:7@8[] a08:8@9[] a09:9@10[] a10:10@11[]")
	for _, local := range []Set{{}, mustParseSet(t, "a00:5@1[u] a03:3@4[]")} {
		ctx := replica.Join()
		got := Update(local, ctx, "x", val("w"), 100, 1)
		got = Prune(got, PruneOptions{Limit: MaxEntries, Keep: "x", Needed: Needed(local, ctx), Now: 100})
		for _, m := range []Set{Sync(got, replica), Sync(replica, got)} {
			if d := sibData(m); !slices.Equal(d, []string{"w"}) {
				t.Fatalf("local %q: after the write and a sync: %q, want w alone (record %q)", fmtSet(local), fmtSet(m), fmtSet(got))
			}
		}
	}
}

// TestSyncPrefersTheReapedForm: replicas reap at different moments, so one may
// hold a dot's expired value and another the tombstone its reaper made of it
// (Value.Tomb). Sync must merge them to the tombstone, in either order and
// whatever else the entries hold, or anti-entropy would undo the reaper's
// conversion and the reaper redo it forever.
func TestSyncPrefersTheReapedForm(t *testing.T) {
	v := Value{Data: []byte("new"), Flags: 7, Timestamp: 10, Expiry: 20}
	w := Value{Data: []byte("w"), Timestamp: 5, Expiry: 15}
	tv, tw := v.Tomb(), w.Tomb()
	if want := (Value{Timestamp: 10, Expiry: 20, Tombstone: true}); !tv.Equal(want) {
		t.Fatalf("Tomb() = %+v, want %+v", tv, want)
	}
	e := func(c uint64, vs ...Value) Set { return Set{Entries: []Entry{{Actor: "x", Counter: c, Values: vs}}} }
	for _, tt := range []struct {
		name string
		a, b Set
		want Set
	}{
		{"same dot", e(5, v), e(5, tv), e(5, tv)},
		{"longer run on the reaped side", e(5, v), e(5, tv, tw), e(5, tv)},
		{"longer run on the live side", e(5, v, w), e(5, tv), e(5, tv)},
		{"each side reaped one", e(5, v, tw), e(5, tv, w), e(5, tv, tw)},
		{"higher counter on the live side", e(6, Value{Data: []byte("z")}, v), e(5, tv), e(6, Value{Data: []byte("z")}, tv)},
	} {
		for _, m := range []Set{Sync(tt.a, tt.b), Sync(tt.b, tt.a)} {
			if !identicalSets(m, tt.want) {
				t.Errorf("%s: Sync = %q, want %q", tt.name, fmtSet(m), fmtSet(tt.want))
			}
		}
	}
}

// TestBury: the reaper's conversion turns exactly the expired values into their
// tombstones, keeps every dot, and is deterministic.
func TestBury(t *testing.T) {
	s := Set{Entries: []Entry{
		{Actor: "a", Counter: 3, Active: 9, Values: []Value{{Data: []byte("x"), Timestamp: 1, Expiry: 50}, {Data: []byte("y"), Timestamp: 2}}},
		{Actor: "b", Counter: 1, Values: []Value{{Tombstone: true, Timestamp: 3}, {Data: []byte("z"), Expiry: 200}}[:1]},
	}}
	before := cloneSet(s)
	got, changed := Bury(s, 100)
	if !changed {
		t.Fatal("Bury reported no change")
	}
	want := Set{Entries: []Entry{
		{Actor: "a", Counter: 3, Active: 9, Values: []Value{{Timestamp: 1, Expiry: 50, Tombstone: true}, {Data: []byte("y"), Timestamp: 2}}},
		{Actor: "b", Counter: 1, Values: []Value{{Tombstone: true, Timestamp: 3}}},
	}}
	if !identicalSets(got, want) {
		t.Fatalf("Bury = %q, want %q", fmtSet(got), fmtSet(want))
	}
	if !identicalSets(s, before) {
		t.Fatal("Bury mutated its argument")
	}
	if again, changed := Bury(got, 100); changed || !identicalSets(again, got) {
		t.Fatalf("Bury not idempotent: %q, changed %v", fmtSet(again), changed)
	}
	if same, changed := Bury(s, 49); changed || !identicalSets(same, s) {
		t.Fatalf("Bury before the expiry changed %q", fmtSet(same))
	}
}
