package crdt

import (
	"math"
	"slices"
	"testing"

	"github.com/dynakv/dynakv/vclock"
)

func TestContextOf(t *testing.T) {
	for _, tc := range []struct {
		dots, want string
		gaps       int
	}{
		{"", "", 0},
		{"a1", "a:1", 0},
		{"a3 a1 a2 a2", "a:1-3", 0},
		{"a5", "a:5", 1},
		{"a1 a2 a4 a7 a8 b9", "a:1-2,4,7-8 b:9", 3},
		{"b1 a1", "a:1 b:1", 0},
	} {
		c := ContextOf(dots(tc.dots)...)
		checkContext(t, c)
		if got := c.String(); got != tc.want {
			t.Errorf("ContextOf(%s) = %q, want %q", tc.dots, got, tc.want)
		}
		if got := c.Gaps(); got != tc.gaps {
			t.Errorf("ContextOf(%s).Gaps() = %d, want %d", tc.dots, got, tc.gaps)
		}
	}
}

func TestContextCovers(t *testing.T) {
	c := ctx(t, "a:1-3,6,9-10 b:4")
	for _, tc := range []struct {
		d    string
		want bool
	}{
		{"a1", true}, {"a3", true}, {"a4", false}, {"a6", true}, {"a7", false},
		{"a10", true}, {"a11", false}, {"b3", false}, {"b4", true}, {"c1", false},
	} {
		if got := c.Covers(dot(tc.d)); got != tc.want {
			t.Errorf("%s covers %s = %v, want %v", c, tc.d, got, tc.want)
		}
	}
	if c.Covers(Dot{Actor: "a", Counter: 0}) {
		t.Error("a context covers a zero dot")
	}
	if got, want := c.Clock(), (vclock.Clock{{Actor: "a", Counter: 3}}); !slices.Equal(got, want) {
		t.Errorf("Clock() = %v, want %v", got, want)
	}
	if got := ContextOfClock(vclock.Clock{{Actor: "a", Counter: 3}, {Actor: "b", Counter: 1}}).String(); got != "a:1-3 b:1" {
		t.Errorf("ContextOfClock = %q", got)
	}
}

func TestContextNext(t *testing.T) {
	c := ctx(t, "a:1-3,9 b:4")
	for _, tc := range []struct {
		actor string
		floor uint64
		want  Dot
	}{
		{"a", 0, Dot{Actor: "a", Counter: 10}},
		{"a", 1000, Dot{Actor: "a", Counter: 10}}, // the actor has dots here: one above the highest
		{"b", 0, Dot{Actor: "b", Counter: 5}},
		{"c", 0, Dot{Actor: "c", Counter: 1}},
		{"c", 1_700_000_000, Dot{Actor: "c", Counter: 1_700_000_000}}, // none: the floor
	} {
		if got := c.Next(tc.actor, tc.floor); got != tc.want {
			t.Errorf("Next(%s, %d) = %v, want %v", tc.actor, tc.floor, got, tc.want)
		}
	}
	// A floor-started actor's later dots extend one run, they do not pile up.
	var d Context
	for range 100 {
		d = d.Join(ContextOf(d.Next("z", 1<<40)))
	}
	if got := d.String(); got != "z:1099511627776-1099511627875" {
		t.Errorf("100 dots from a floor: %q", got)
	}
}

func TestContextJoin(t *testing.T) {
	for _, tc := range []struct{ a, b, want string }{
		{"", "", ""},
		{"a:1-2", "", "a:1-2"},
		{"a:1-2", "a:3", "a:1-3"},
		{"a:1,5", "a:3", "a:1,3,5"},
		{"a:1,5", "a:2-4", "a:1-5"},
		{"a:2-9", "a:1,11", "a:1-9,11"},
		{"a:1 c:1", "b:2", "a:1 b:2 c:1"},
		{"a:4-6", "a:1-10", "a:1-10"},
	} {
		a, b := ctx(t, tc.a), ctx(t, tc.b)
		for _, j := range []Context{a.Join(b), b.Join(a)} {
			checkContext(t, j)
			if got := j.String(); got != tc.want {
				t.Errorf("%s ⊔ %s = %q, want %q", tc.a, tc.b, got, tc.want)
			}
			if !j.Includes(a) || !j.Includes(b) {
				t.Errorf("%s ⊔ %s does not include both", tc.a, tc.b)
			}
		}
	}
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"a:1-5", "a:2-3", true}, {"a:1-5", "a:2,6", false}, {"a:1,3", "a:1-3", false},
		{"a:1", "b:1", false}, {"a:1", "", true}, {"", "a:1", false}, {"a:1-3,7-9 b:1", "a:8", true},
	} {
		if got := ctx(t, tc.a).Includes(ctx(t, tc.b)); got != tc.want {
			t.Errorf("%s includes %s = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestMergeElem(t *testing.T) {
	for _, tc := range []struct {
		name               string
		l, lc, r, rc, want string
	}{
		{"both hold it", "a1", "a:1", "a1", "a:1", "a1"},
		{"unseen add survives", "", "a:1", "b1", "b:1", "b1"},
		{"observed remove wins", "", "a:1-2", "a2", "a:1-2", ""},
		{"add concurrent with remove wins", "", "a:1", "a1 b1", "a:1 b:1", "b1"},
		{"update supersedes the observed", "b1=new", "a:1 b:1", "a1=old", "a:1", "b1=new"},
		{"concurrent updates both stay", "a2=x", "a:1-2", "b1=y", "a:1 b:1", "a2=x b1=y"},
		{"cloud dot covers", "", "a:1,5", "a5", "a:5", ""},
		{"dot not yet seen", "a1", "a:1", "a5", "a:5", "a1 a5"},
		{"a removed dot in the other cloud", "a1", "a:1", "a5", "a:1,5", "a5"},
		{"reused dot keeps the greater", "a1=p", "a:1", "a1=q", "a:1", "a1=q"},
	} {
		l, r := field(tc.l), field(tc.r)
		lc, rc := ctx(t, tc.lc), ctx(t, tc.rc)
		for _, got := range []Field{MergeElem(l, lc, r, rc), MergeElem(r, rc, l, lc)} {
			if fmtField(got) != tc.want {
				t.Errorf("%s: merge = %q, want %q", tc.name, fmtField(got), tc.want)
			}
			checkField(t, got, lc.Join(rc))
		}
	}
}

func TestApplyElemDelta(t *testing.T) {
	for _, tc := range []struct {
		name, l, lc, dots, seen, want, wantCtx string
	}{
		{"add", "", "", "a1", "", "a1", "a:1"},
		{"add superseding", "a1 b1", "a:1 b:1", "a2", "a1 b1", "a2", "a:1-2 b:1"},
		{"remove observed only", "a1 b1", "a:1 b:1", "", "a1", "b1", "a:1 b:1"},
		{"duplicate is a no-op", "a2", "a:1-2", "a2", "a1", "a2", "a:1-2"},
		{"late add already removed", "", "a:1-2", "a1", "", "", "a:1-2"},
		{"remove arriving first", "", "", "", "c7", "", "c:7"},
		{"then the add it removed", "", "c:7", "c7", "", "", "c:7"},
	} {
		d := NewElemDelta(field(tc.dots), dots(tc.seen))
		l, lc := field(tc.l), ctx(t, tc.lc)
		got, gotCtx := ApplyElemDelta(l, lc, d)
		if fmtField(got) != tc.want || gotCtx.String() != tc.wantCtx {
			t.Errorf("%s: apply = %q under %q, want %q under %q", tc.name, fmtField(got), gotCtx, tc.want, tc.wantCtx)
		}
		if want := MergeElem(l, lc, d.Dots, d.Context()); !got.Equal(want) {
			t.Errorf("%s: apply %q differs from the state join %q", tc.name, fmtField(got), fmtField(want))
		}
	}
}

func TestJoinDelta(t *testing.T) {
	add := NewElemDelta(field("a1"), nil)
	update := NewElemDelta(field("a2=x"), dots("a1"))
	remove := NewElemDelta(nil, dots("a2"))
	j := JoinDelta(JoinDelta(add, update), remove)
	if len(j.Dots) != 0 || !slices.Equal(j.Seen, dots("a1 a2")) {
		t.Errorf("add, update, remove joined = %q seen %v", fmtField(j.Dots), j.Seen)
	}
	other := NewElemDelta(field("b1"), nil)
	j = JoinDelta(remove, other)
	if fmtField(j.Dots) != "b1" || !slices.Equal(j.Seen, dots("a2")) {
		t.Errorf("remove ⊔ concurrent add = %q seen %v", fmtField(j.Dots), j.Seen)
	}
	if d := NewElemDelta(field("a3"), dots("a3 a1 a1 b0")); !slices.Equal(d.Seen, dots("a1")) {
		t.Errorf("NewElemDelta seen = %v, want [a1]", d.Seen)
	}
}

func TestFieldRemoveAndWinner(t *testing.T) {
	f := field("a1=x a2+3 b4=y c1")
	if got := fmtField(f.Remove(ctx(t, "a:1 c:1"))); got != "a2+3 b4=y" {
		t.Errorf("Remove = %q", got)
	}
	if got := f.Remove(ctx(t, "a:1-2 b:4 c:1")); got != nil {
		t.Errorf("Remove of everything = %q, want nil", fmtField(got))
	}
	if got := f.Remove(Context{}); !got.Equal(f) {
		t.Errorf("Remove of nothing changed the field")
	}
	f[0].TS, f[2].TS = 5, 5
	w, ok := f.Winner(KindReg)
	if !ok || w.Dot != dot("b4") {
		t.Errorf("Winner = %v %v, want b4 (same TS, greater dot)", w.Dot, ok)
	}
	f[0].TS = 6
	if w, _ := f.Winner(KindReg); w.Dot != dot("a1") {
		t.Errorf("Winner = %v, want a1 (greater TS)", w.Dot)
	}
	if _, ok := f.Winner(KindHLL); ok {
		t.Error("Winner of an absent kind")
	}
}

// TestStampMatchesWinner checks that Stamp orders as vclock.Winner picks plain
// GET's winner among siblings with distinct dots.
func TestStampMatchesWinner(t *testing.T) {
	sibs := []vclock.Sibling{
		{Value: vclock.Value{Timestamp: 5}, Dot: Dot{Actor: "b", Counter: 1}},
		{Value: vclock.Value{Timestamp: 7}, Dot: Dot{Actor: "a", Counter: 1}},
		{Value: vclock.Value{Timestamp: 7}, Dot: Dot{Actor: "a", Counter: 3}},
		{Value: vclock.Value{Timestamp: 7}, Dot: Dot{Actor: "0", Counter: 9}},
	}
	w, _ := vclock.Winner(sibs)
	best := Stamp{TS: sibs[0].Timestamp, Dot: sibs[0].Dot}
	for _, s := range sibs[1:] {
		best = best.Join(Stamp{TS: s.Timestamp, Dot: s.Dot})
	}
	if best != (Stamp{TS: w.Timestamp, Dot: w.Dot}) {
		t.Errorf("Stamp order picks %v, vclock.Winner %v", best, w.Dot)
	}
}

func TestEffectiveTTL(t *testing.T) {
	e := func(d string, exp int64) Entry { return TTLEntry(dot(d), exp, 1) }
	for _, tc := range []struct {
		name    string
		ttl     Field
		want    int64
		wantOK  bool
		expired bool // at now = 150
	}{
		{"none", nil, 0, false, false},
		{"one", Field{e("a1", 100)}, 100, true, true},
		{"longest wins", Field{e("a1", 100), e("b1", 200)}, 200, true, false},
		{"persist beats any", Field{e("a1", 100), e("b1", 0), e("c1", 300)}, 0, false, false},
		{"negative is persist", Field{e("a1", -5)}, 0, false, false},
	} {
		got, ok := EffectiveTTL(tc.ttl)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("%s: EffectiveTTL = %d %v, want %d %v", tc.name, got, ok, tc.want, tc.wantOK)
		}
		if Expired(tc.ttl, 150) != tc.expired {
			t.Errorf("%s: Expired(150) = %v", tc.name, !tc.expired)
		}
	}
	// Concurrent EXPIREs through a merge: both entries stay, the longer wins.
	l, r := Field{e("a1", 100)}, Field{e("b1", 200)}
	if got, _ := EffectiveTTL(MergeElem(l, ctx(t, "a:1"), r, ctx(t, "b:1"))); got != 200 {
		t.Errorf("merged concurrent EXPIREs = %d, want 200", got)
	}
}

func TestEntryEqualFloatBits(t *testing.T) {
	a := Entry{Dot: dot("a1"), Kind: KindIncr, F: math.NaN()}
	if !a.Equal(a) {
		t.Error("NaN entry not equal to itself")
	}
	b := a
	b.F = math.Copysign(0, -1)
	if b.Equal(Entry{Dot: dot("a1"), Kind: KindIncr}) {
		t.Error("-0 equals +0")
	}
}

func TestEntryIsFloat(t *testing.T) {
	a := Entry{Dot: dot("a1"), Kind: KindIncr, I: 2}
	b := a
	b.IsFloat = true
	if a.Equal(b) {
		t.Error("IsFloat ignored by Equal")
	}
	// A dot held twice, once with the flag: every merge keeps the flagged copy.
	l := MergeElem(Field{a}, ctx(t, "a:1"), Field{b}, ctx(t, "a:1"))
	r := MergeElem(Field{b}, ctx(t, "a:1"), Field{a}, ctx(t, "a:1"))
	if !l.Equal(Field{b}) || !r.Equal(Field{b}) {
		t.Errorf("merge of a dot with and without IsFloat: %v, %v", l, r)
	}
}
