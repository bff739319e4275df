package crdt

import (
	"errors"
	"math"
	"slices"
	"strconv"
	"testing"
)

func TestCounterValue(t *testing.T) {
	const notInt, notFloat = "!", "!"
	for _, tc := range []struct {
		field     string
		get       string
		int, flt  string // Int64 and Float64, "!" when refused
		isNumeric bool
	}{
		{"", "0", "0", "0", true},
		// No increment: the register's bytes exactly, read as Redis reads them.
		{"a1=10", "10", "10", "10", true},
		{"a1=010", "010", notInt, "10", true},
		{"a1=-0", "-0", notInt, "-0", true},
		{"a1=+5", "+5", notInt, "5", true},
		{"a1=5.0e3", "5.0e3", notInt, "5000", true},
		{"a1=0x1p3", "0x1p3", notInt, "8", true},
		{"a1=9223372036854775808", "9223372036854775808", notInt, "9223372036854775808", true},
		{"a1=␠11", " 11", notInt, notFloat, false},
		{"a1=1_0", "1_0", notInt, notFloat, false},
		{"a1=inf", "inf", notInt, notFloat, false},
		{"a1=abc", "abc", notInt, notFloat, false},
		// Registers resolve by (TS, dot).
		{"a1=5@2 b1=7@1", "5", "5", "5", true},
		{"a2=5@1 b1=7@1", "7", "7", "7", true},
		// Increments: exact 128-bit sums.
		{"b1+1", "1", "1", "1", true},
		{"a1=5 b1+1", "6", "6", "6", true},
		{"a1=5 b1+1 c1+-10", "-4", "-4", "-4", true},
		{"b1+9223372036854775807 c1+1", "9223372036854775808", notInt, "9223372036854775808", true},
		{"b1+-9223372036854775808 c1+-1", "-9223372036854775809", notInt, "-9223372036854775808", true},
		{"a1=9223372036854775807 b1+9223372036854775807 c1+9223372036854775807 d1+9223372036854775807",
			"36893488147419103228", notInt, "36893488147419103228", true},
		{"a1=-9223372036854775808 b1+9223372036854775807 c1+1", "0", "0", "0", true},
		{"a1=9007199254740993 b1+0", "9007199254740993", "9007199254740993", "9007199254740992", true},
		// A float part: INCRBYFLOAT's rendering.
		{"a1=10.5 b1~0.1", "10.6", notInt, "10.6", true},
		{"a1=5.0e3 b1~0", "5000", "5000", "5000", true},
		{"a1=010 b1+1", "11", "11", "11", true},
		{"b1~0.5 c1~-0.5", "0", "0", "0", true},
		{"b1~-0", "0", "0", "0", true},
		{"b1~1.5 c1+1", "2.5", notInt, "2.5", true},
		{"a1=1.5 b1~0.5", "2", "2", "2", true},
		{"b1~1e20", "100000000000000000000", notInt, "1e+20", true},
		{"b1~1e-7", "0.0000001", notInt, "1e-07", true},
		// A register that is not a number shows as itself, increments hidden.
		{"a1=abc b1+1", "abc", notInt, notFloat, false},
		{"a1=␠1 b1~0.5", " 1", notInt, notFloat, false},
		// Entries of other kinds are not the counter's.
		{"a1 b1+2", "2", "2", "2", true},
	} {
		c := CounterOf(field(tc.field))
		if got := string(c.AppendText(nil)); got != tc.get {
			t.Errorf("%s: GET %q, want %q", tc.field, got, tc.get)
		}
		i, ok := c.Int64()
		if got := strconv.FormatInt(i, 10); !ok {
			got = notInt
			if i != 0 {
				t.Errorf("%s: refused Int64 returned %d", tc.field, i)
			}
		} else if got != tc.int {
			t.Errorf("%s: Int64 %s, want %s", tc.field, got, tc.int)
		}
		x, ok := c.Float64()
		if got := strconv.FormatFloat(x, 'g', -1, 64); !ok {
			got = notFloat
		} else if want, _ := strconv.ParseFloat(tc.flt, 64); tc.flt == notFloat || x != want {
			t.Errorf("%s: Float64 %s, want %s", tc.field, got, tc.flt)
		}
		if ok && tc.flt == notFloat {
			t.Errorf("%s: Float64 %v, want refused", tc.field, x)
		}
		if len(field(tc.field)) > 0 {
			if w, okw := field(tc.field).Winner(KindReg); okw && IsCounterNumber(w.Data) != tc.isNumeric {
				t.Errorf("%s: IsCounterNumber(%q) = %v", tc.field, w.Data, !tc.isNumeric)
			}
		}
	}
}

func TestCounterValueDeterministic(t *testing.T) {
	// Non-finite sums come only from fields no mutator writes; they still render
	// one way.
	for _, tc := range []struct {
		f    Field
		want string
	}{
		{Field{{Dot: dot("a1"), Kind: KindIncr, F: math.Inf(1)}}, "inf"},
		{Field{{Dot: dot("a1"), Kind: KindIncr, F: math.Inf(-1)}}, "-inf"},
		{Field{{Dot: dot("a1"), Kind: KindIncr, F: math.Inf(-1)}, {Dot: dot("b1"), Kind: KindIncr, F: math.Inf(1)}}, "nan"},
		{Field{{Dot: dot("a1"), Kind: KindIncr, F: math.MaxFloat64}, {Dot: dot("b1"), Kind: KindIncr, F: math.MaxFloat64}}, "inf"},
	} {
		c := CounterOf(tc.f)
		if got := string(c.AppendText(nil)); got != tc.want {
			t.Errorf("%s: %q, want %q", fmtField(tc.f), got, tc.want)
		}
		if _, ok := c.Float64(); ok {
			t.Errorf("%s: Float64 accepted", fmtField(tc.f))
		}
		if _, ok := c.Int64(); ok {
			t.Errorf("%s: Int64 accepted", fmtField(tc.f))
		}
	}
}

// counterNode is one replica's counter: its field, its context and its actor. The
// command methods run the mutators as a coordinator would and apply the delta
// locally.
type counterNode struct {
	actor string
	f     Field
	ctx   Context
	ts    int64
}

func (n *counterNode) apply(d ElemDelta) { n.f, n.ctx = ApplyElemDelta(n.f, n.ctx, d) }

func (n *counterNode) incr(delta int64) (string, error) {
	d, v, err := CounterIncr(n.f, n.ctx, n.actor, 1, delta)
	if err != nil {
		return "", err
	}
	n.apply(d)
	return strconv.FormatInt(v, 10), nil
}

func (n *counterNode) incrFloat(delta float64) (string, error) {
	d, v, err := CounterIncrFloat(n.f, n.ctx, n.actor, 1, delta)
	if err != nil {
		return "", err
	}
	n.apply(d)
	return string(v), nil
}

func (n *counterNode) set(v string) (string, error) {
	n.ts++
	n.apply(CounterReset(n.f, n.ctx, n.actor, 1, []byte(v), n.ts))
	return "OK", nil
}

func (n *counterNode) del() {
	d, _ := CounterDel(n.f, n.ctx, n.actor, 1)
	n.apply(d)
}

// get answers as GET: the value, or "(nil)" when the counter is not live.
func (n *counterNode) get() string {
	c := CounterOf(n.f)
	if !CounterLive(n.f) {
		return "(nil)"
	}
	return string(c.AppendText(nil))
}

// merge joins o's state into n (meta is shipped whole: a plain state join).
func (n *counterNode) merge(o *counterNode) {
	n.f, n.ctx = MergeElem(n.f, n.ctx, o.f, o.ctx), n.ctx.Join(o.ctx)
}

// TestCounterCommands plays Redis's tests/unit/type/incr.tcl cases (and a few of
// the design's) on one node: each step is a command and its reply, an error as the
// sentinel it wraps.
func TestCounterCommands(t *testing.T) {
	type step struct {
		cmd  string // incr N, float X, set V, get
		arg  string
		want string
		err  error
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"INCR against non existing key", []step{{"incr", "1", "1", nil}, {"get", "", "1", nil}, {"incr", "1", "2", nil}, {"incr", "-1", "1", nil}}},
		{"INCR against key originally set with SET", []step{{"set", "100", "OK", nil}, {"incr", "1", "101", nil}}},
		{"INCR over 32bit value", []step{{"set", "17179869184", "OK", nil}, {"incr", "1", "17179869185", nil}}},
		{"INCRBY over 32bit value with over 32bit increment", []step{{"set", "17179869184", "OK", nil}, {"incr", "17179869184", "34359738368", nil}}},
		{"INCR fails against key with spaces (left)", []step{{"set", " 11", "OK", nil}, {"incr", "1", "", ErrNotInteger}, {"get", "", " 11", nil}}},
		{"INCR fails against key with spaces (right)", []step{{"set", "11 ", "OK", nil}, {"incr", "1", "", ErrNotInteger}}},
		{"INCR fails against key with spaces (both)", []step{{"set", " 11 ", "OK", nil}, {"incr", "1", "", ErrNotInteger}}},
		{"INCR on leading zeros", []step{{"set", "010", "OK", nil}, {"incr", "1", "", ErrNotInteger}, {"get", "", "010", nil}}},
		{"INCR on a float", []step{{"set", "1.5", "OK", nil}, {"incr", "1", "", ErrNotInteger}}},
		{"INCR overflow at int64 max", []step{{"set", "9223372036854775807", "OK", nil}, {"incr", "1", "", ErrOverflow}, {"get", "", "9223372036854775807", nil}}},
		{"DECR underflow at int64 min", []step{{"set", "-9223372036854775808", "OK", nil}, {"incr", "-1", "", ErrOverflow}, {"incr", "0", "-9223372036854775808", nil}}},
		{"INCRBY to int64 max", []step{{"incr", "9223372036854775806", "9223372036854775806", nil}, {"incr", "1", "9223372036854775807", nil}, {"incr", "1", "", ErrOverflow}}},
		{"DECRBY over 32bit value with over 32bit increment, negative result", []step{{"set", "17179869184", "OK", nil}, {"incr", "-17179869185", "-1", nil}}},
		{"INCRBYFLOAT against non existing key", []step{{"float", "1", "1", nil}, {"get", "", "1", nil}, {"float", "0.25", "1.25", nil}, {"get", "", "1.25", nil}}},
		{"INCRBYFLOAT against key originally set with SET", []step{{"set", "1.5", "OK", nil}, {"float", "1.5", "3", nil}}},
		{"INCRBYFLOAT over 32bit value", []step{{"set", "17179869184", "OK", nil}, {"float", "1.5", "17179869185.5", nil}}},
		{"INCRBYFLOAT over 32bit value with over 32bit increment", []step{{"set", "17179869184", "OK", nil}, {"float", "17179869184", "34359738368", nil}}},
		{"INCRBYFLOAT fails against key with spaces (left)", []step{{"set", " 11", "OK", nil}, {"float", "1", "", ErrNotFloat}}},
		{"INCRBYFLOAT fails against key with spaces (right)", []step{{"set", "11 ", "OK", nil}, {"float", "1", "", ErrNotFloat}}},
		{"INCRBYFLOAT reads the value before the increment", []step{{"set", "abc", "OK", nil}, {"float", "inf", "", ErrNotFloat}}},
		{"INCRBYFLOAT does not allow NaN or Infinity", []step{{"set", "0", "OK", nil}, {"float", "+inf", "", ErrNaN}, {"float", "NaN", "", ErrNaN}, {"get", "", "0", nil}}},
		{"INCRBYFLOAT to infinity", []step{{"float", "1.7e308", strconv.FormatFloat(1.7e308, 'f', -1, 64), nil}, {"float", "1.7e308", "", ErrNaN}}},
		{"INCRBYFLOAT decrement", []step{{"set", "1", "OK", nil}, {"float", "-1.1", "-0.10000000000000009", nil}}},
		{"string to double with null terminator", []step{{"set", "1\x002", "OK", nil}, {"float", "1", "", ErrNotFloat}}},
		{"No negative zero", []step{{"float", strconv.FormatFloat(1.0/41, 'g', -1, 64), "0.024390243902439025", nil}, {"float", strconv.FormatFloat(-1.0/41, 'g', -1, 64), "0", nil}, {"get", "", "0", nil}}},
		{"INCRBYFLOAT 10.5 + 0.1", []step{{"set", "10.5", "OK", nil}, {"float", "0.1", "10.6", nil}, {"get", "", "10.6", nil}}},
		{"INCRBYFLOAT 5.0e3", []step{{"set", "5.0e3", "OK", nil}, {"get", "", "5.0e3", nil}, {"float", "0", "5000", nil}, {"get", "", "5000", nil}}},
		{"INCRBYFLOAT on leading zeros", []step{{"set", "010", "OK", nil}, {"float", "1", "11", nil}, {"incr", "1", "12", nil}}},
		{"INCR after INCRBYFLOAT gives an integer", []step{{"set", "1.5", "OK", nil}, {"float", "0.5", "2", nil}, {"incr", "1", "3", nil}, {"get", "", "3", nil}}},
		{"INCR after INCRBYFLOAT with a fraction", []step{{"float", "0.5", "0.5", nil}, {"incr", "1", "", ErrNotInteger}}},
		{"SET resets increments", []step{{"incr", "5", "5", nil}, {"set", "010", "OK", nil}, {"get", "", "010", nil}, {"set", "7", "OK", nil}, {"incr", "1", "8", nil}}},
		{"HINCRBY on a string field", []step{{"set", "abc", "OK", nil}, {"incr", "1", "", ErrNotInteger}, {"float", "1", "", ErrNotFloat}, {"get", "", "abc", nil}}},
		{"a stored infinity is not a float", []step{{"set", "inf", "OK", nil}, {"float", "1", "", ErrNotFloat}}},
	} {
		n := &counterNode{actor: "n"}
		for i, s := range tc.steps {
			var got string
			var err error
			switch s.cmd {
			case "incr":
				d, _ := strconv.ParseInt(s.arg, 10, 64)
				got, err = n.incr(d)
			case "float":
				x, _ := strconv.ParseFloat(s.arg, 64)
				got, err = n.incrFloat(x)
			case "set":
				got, err = n.set(s.arg)
			case "get":
				got = n.get()
			}
			if got != s.want || !errors.Is(err, s.err) || (err == nil) != (s.err == nil) {
				t.Errorf("%s: step %d %s %s = %q, %v; want %q, %v", tc.name, i, s.cmd, s.arg, got, err, s.want, s.err)
				break
			}
			checkField(t, n.f, n.ctx)
		}
	}
}

func TestCounterIncrDelta(t *testing.T) {
	// The actor's own entry is superseded, nobody else's; the dot is above every
	// dot of the actor the context holds, or the floor.
	f := field("a3=5@1 b2+1 n4+2")
	c := ctx(t, "a:1-3 b:1-2 n:1-6")
	d, v, err := CounterIncr(f, c, "n", 100, 3)
	if err != nil || v != 11 {
		t.Fatalf("CounterIncr = %d, %v", v, err)
	}
	if got := fmtField(d.Dots); got != "n7+5" || len(d.Seen) != 1 || d.Seen[0] != dot("n4") {
		t.Errorf("delta %s seen %v", got, d.Seen)
	}
	d, _, _ = CounterIncr(f, c, "m", 100, 3)
	if got := fmtField(d.Dots); got != "m100+3^100" || d.Seen != nil { // a chain begins
		t.Errorf("first increment of m: %s seen %v", got, d.Seen)
	}
	// A float increment keeps the actor's integer part and marks the entry.
	d, r, err := CounterIncrFloat(f, c, "n", 1, 0.5)
	if err != nil || string(r) != "8.5" || fmtField(d.Dots) != "n7+2~0.5" { // 5+1+2+0.5
		t.Errorf("CounterIncrFloat = %s %q %v", fmtField(d.Dots), r, err)
	}
	// Two entries of one actor (a state no mutator writes, or a clear not yet
	// here): the greatest one's chain goes on, and both are superseded.
	d, v, _ = CounterIncr(field("n1+2 n2+3^2"), ctx(t, "n:1-2"), "n", 1, 1)
	if fmtField(d.Dots) != "n3+4^2" || len(d.Seen) != 2 || v != 4 {
		t.Errorf("folding two own entries: %s %v %d", fmtField(d.Dots), d.Seen, v)
	}
}

func TestCounterIncrOwnOverflow(t *testing.T) {
	// n's own increments are at int64 max and a concurrent reset to a large
	// negative number keeps the value small: the value could take more, n's entry
	// cannot. Refused, not wrapped.
	f := field("a1=-9223372036854775808@1 n1+9223372036854775807")
	_, _, err := CounterIncr(f, f.Context(), "n", 1, 1)
	if !errors.Is(err, ErrOverflow) {
		t.Fatalf("err = %v, want ErrOverflow", err)
	}
	// Another actor is free to add.
	if _, v, err := CounterIncr(f, f.Context(), "m", 1, 1); err != nil || v != 0 {
		t.Errorf("m: %d, %v", v, err)
	}
}

func TestCounterIncrBeyondInt64(t *testing.T) {
	// Concurrent increments that each fit sum past int64: the value renders
	// exactly, and the next INCR answers not an integer, as 3.2 says.
	a, b := &counterNode{actor: "a"}, &counterNode{actor: "b"}
	for _, n := range []*counterNode{a, b} {
		if _, err := n.incr(math.MaxInt64 - 1); err != nil {
			t.Fatal(err)
		}
	}
	a.merge(b)
	if got := a.get(); got != "18446744073709551612" {
		t.Errorf("GET %s", got)
	}
	if _, err := a.incr(-1); !errors.Is(err, ErrNotInteger) {
		t.Errorf("INCR past int64: %v", err)
	}
	if got, err := a.incrFloat(1); err != nil || got != "18446744073709552000" {
		t.Errorf("INCRBYFLOAT past int64: %q, %v", got, err)
	}
}

func TestCounterConcurrent(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b func(a, b *counterNode)
		want string
	}{
		{"SET 5 concurrent with INCR at another node gives 6",
			func(a, _ *counterNode) { a.set("5") }, func(_, b *counterNode) { b.incr(1) }, "6"},
		{"SET concurrent with SET: the later wins, increments it did not observe count",
			func(a, _ *counterNode) { a.ts = 10; a.set("100") }, func(_, b *counterNode) { b.incr(3); b.set("7"); b.incr(1) }, "104"},
		{"SET that observed an increment, concurrent with the actor's next one",
			func(a, b *counterNode) { b.incr(10); a.merge(b); a.set("5") }, func(_, b *counterNode) { b.incr(1) }, "6"},
		{"DEL concurrent with INCR: the increment alone",
			func(a, b *counterNode) { b.incr(10); a.merge(b); a.del() }, func(_, b *counterNode) { b.incr(1) }, "1"},
		{"DEL then INCR, as on Redis",
			func(a, _ *counterNode) { a.incr(4); a.del(); a.incr(1) }, nil, "1"},
		{"concurrent DELs remove what either observed",
			func(a, b *counterNode) { b.incr(10); a.merge(b); a.del() }, func(_, b *counterNode) { b.incr(1); b.del() }, "(nil)"},
		{"SET concurrent with DEL: the value wins, with what it did not observe",
			func(a, b *counterNode) { a.incr(2); a.del() }, func(_, b *counterNode) { b.ts = 50; b.incr(3); b.set("7") }, "9"},
		{"INCR at both",
			func(a, _ *counterNode) { a.incr(2) }, func(_, b *counterNode) { b.incr(-5) }, "7"},
		{"INCRBYFLOAT at both, in dot order",
			func(a, _ *counterNode) { a.incrFloat(0.1) }, func(_, b *counterNode) { b.incrFloat(0.2) }, "10.3"},
		{"SET of a string concurrent with INCR: the string shows",
			func(a, _ *counterNode) { a.set("abc") }, func(_, b *counterNode) { b.incr(1) }, "abc"},
	} {
		a, b := &counterNode{actor: "a"}, &counterNode{actor: "b"}
		a.set("10")
		b.merge(a)
		tc.a(a, b)
		if tc.b != nil {
			tc.b(a, b)
		}
		a2, b2 := *a, *b
		a.merge(&b2)
		b.merge(&a2)
		if ga, gb := a.get(), b.get(); ga != tc.want || gb != tc.want {
			t.Errorf("%s: a %q (%s), b %q (%s), want %q", tc.name, ga, fmtField(a.f), gb, fmtField(b.f), tc.want)
		}
	}
}

func TestCounterResetObserved(t *testing.T) {
	// The reset supersedes exactly the registers it saw and records the
	// increments' totals, which stay: not other kinds, not entries it did not hold.
	f := field("a1=5@1 b1+2 c1 d1~0.5 e3!{b1+1}")
	d := CounterReset(f, ctx(t, "a:1 b:1-3 c:1 d:1 e:1-3"), "b", 1, []byte("9"), 7)
	if got := fmtField(d.Dots); got != "b4=9@7{b1+2,d1~0.5}" {
		t.Errorf("reset adds %s", got)
	}
	if want := dots("a1 e3"); !slices.Equal(d.Seen, want) {
		t.Errorf("reset saw %v, want %v", d.Seen, want)
	}
	// The data is copied: the caller's buffer may be reused.
	buf := []byte("42")
	d = CounterReset(nil, Context{}, "x", 1, buf, 1)
	buf[0] = '9'
	if string(d.Dots[0].Data) != "42" {
		t.Error("CounterReset aliases its data")
	}
}
