package crdt

import (
	"errors"
	"slices"
	"strconv"
	"testing"
)

// TestHashCommands plays Redis's tests/unit/type/hash.tcl cases for HSET, HSETNX,
// HDEL, HEXISTS, HINCRBY and HINCRBYFLOAT on one node (a node is one hash).
func TestHashCommands(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"HSET in update and insert mode", []step{
			{"HSET k val", "1", nil}, {"HSET k newval1", "0", nil}, {"HGET k", "newval1", nil},
			{"HSET foobar newval", "1", nil}, {"HDEL foobar", "1", nil},
		}},
		{"HSET of several fields", []step{{"HSET a 1 b 2 c 3", "3", nil}, {"HSET a 9 d 4", "1", nil}, {"HGET a", "9", nil}}},
		{"HSET of one field twice in a command", []step{{"HSET x 1 x 2", "1", nil}, {"HGET x", "2", nil}}},
		{"HSET keeps the bytes", []step{{"HSET f 010", "1", nil}, {"HGET f", "010", nil}, {"HSET e ␠", "1", nil}, {"HGET e", " ", nil}}},
		{"HSETNX target key missing, then exists", []step{
			{"HSETNX k foo", "1", nil}, {"HGET k", "foo", nil}, {"HSETNX k bar", "0", nil}, {"HGET k", "foo", nil},
		}},
		{"HSETNX on a field HINCRBY created", []step{{"HINCRBY k 1", "1", nil}, {"HSETNX k bar", "0", nil}, {"HGET k", "1", nil}}},
		{"HGET against non existing field", []step{{"HGET nope", "(nil)", nil}}},
		{"HDEL and return value", []step{
			{"HSET a 1 b 2", "2", nil}, {"HDEL nokey", "0", nil}, {"HDEL a", "1", nil}, {"HDEL a", "0", nil},
			{"HGET a", "(nil)", nil}, {"HGET b", "2", nil},
		}},
		{"HDEL - more than a single value", []step{
			{"HSET a 1 b 2 c 3", "3", nil}, {"HDEL x y", "0", nil}, {"HDEL a c f", "2", nil}, {"HGET b", "2", nil},
		}},
		{"HDEL of a field named twice", []step{{"HSET a 1", "1", nil}, {"HDEL a a", "1", nil}}},
		{"HEXISTS", []step{{"HSET k v", "1", nil}, {"HEXISTS k", "1", nil}, {"HEXISTS nokey", "0", nil}}},
		{"HINCRBY against non existing field, then by itself", []step{
			{"HINCRBY foo 2", "2", nil}, {"HGET foo", "2", nil}, {"HINCRBY foo 3", "5", nil}, {"HGET foo", "5", nil},
		}},
		{"HINCRBY against hash key originally set with HSET", []step{{"HSET tmp 100", "1", nil}, {"HINCRBY tmp 2", "102", nil}}},
		{"HINCRBY over 32bit value", []step{{"HSET tmp 17179869184", "1", nil}, {"HINCRBY tmp 1", "17179869185", nil}}},
		{"HINCRBY over 32bit value with over 32bit increment", []step{{"HSET tmp 17179869184", "1", nil}, {"HINCRBY tmp 17179869184", "34359738368", nil}}},
		{"HINCRBY fails against hash value with spaces (left)", []step{{"HSET str ␠11", "1", nil}, {"HINCRBY str 1", "", ErrHashNotInteger}}},
		{"HINCRBY fails against hash value with spaces (right)", []step{{"HSET str 11␠", "1", nil}, {"HINCRBY str 1", "", ErrHashNotInteger}}},
		{"HINCRBY can detect overflows", []step{
			{"HSET n -9223372036854775484", "1", nil}, {"HINCRBY n -1", "-9223372036854775485", nil},
			{"HINCRBY n -10000", "", ErrOverflow}, {"HGET n", "-9223372036854775485", nil},
		}},
		{"HINCRBY on leading zeros and floats", []step{
			{"HSET z 010", "1", nil}, {"HINCRBY z 1", "", ErrHashNotInteger}, {"HSET f 1.5", "1", nil},
			{"HINCRBY f 1", "", ErrHashNotInteger},
		}},
		{"HINCRBYFLOAT against non existing field, then by HINCRBY's", []step{
			{"HINCRBYFLOAT tmp 2.5", "2.5", nil}, {"HGET tmp", "2.5", nil}, {"HINCRBYFLOAT tmp 3.5", "6", nil},
			{"HINCRBY tmp 1", "7", nil},
		}},
		{"HINCRBYFLOAT against hash key originally set with HSET", []step{{"HSET tmp 100", "1", nil}, {"HINCRBYFLOAT tmp 2.5", "102.5", nil}}},
		{"HINCRBYFLOAT over 32bit value", []step{{"HSET tmp 17179869184", "1", nil}, {"HINCRBYFLOAT tmp 1", "17179869185", nil}}},
		{"HINCRBYFLOAT over 32bit value with over 32bit increment", []step{{"HSET tmp 17179869184", "1", nil}, {"HINCRBYFLOAT tmp 17179869184", "34359738368", nil}}},
		{"HINCRBYFLOAT fails against hash value with spaces (left)", []step{{"HSET str ␠11", "1", nil}, {"HINCRBYFLOAT str 1", "", ErrHashNotFloat}}},
		{"HINCRBYFLOAT fails against hash value with spaces (right)", []step{{"HSET str 11␠", "1", nil}, {"HINCRBYFLOAT str 1", "", ErrHashNotFloat}}},
		{"HINCRBYFLOAT fails against hash value that contains a null-terminator in the middle", []step{
			{"HSET f 1␀2", "1", nil}, {"HINCRBYFLOAT f 1", "", ErrHashNotFloat},
		}},
		{"HINCRBYFLOAT does not allow NaN or Infinity", []step{
			{"HINCRBYFLOAT f +inf", "", ErrHashIncrNaN}, {"HEXISTS f", "0", nil},
			{"HSET s abc", "1", nil}, {"HINCRBYFLOAT s -inf", "", ErrHashIncrNaN}, // the increment first
		}},
		{"HINCRBYFLOAT to infinity", []step{
			{"HINCRBYFLOAT f 1.7e308", strconv.FormatFloat(1.7e308, 'f', -1, 64), nil}, {"HINCRBYFLOAT f 1.7e308", "", ErrNaN},
		}},
		{"HINCRBYFLOAT on leading zeros", []step{{"HSET z 010", "1", nil}, {"HINCRBYFLOAT z 1", "11", nil}, {"HINCRBY z 1", "12", nil}}},
		{"HINCRBY and HINCRBYFLOAT on a string field", []step{
			{"HSET s abc", "1", nil}, {"HINCRBY s 1", "", ErrHashNotInteger}, {"HINCRBYFLOAT s 1", "", ErrHashNotFloat},
			{"HGET s", "abc", nil},
		}},
		{"HSET resets increments", []step{{"HINCRBY f 5", "5", nil}, {"HSET f 010", "0", nil}, {"HGET f", "010", nil}, {"HSET f 7", "0", nil}, {"HINCRBY f 1", "8", nil}}},
		{"HDEL removes increments", []step{{"HINCRBY f 5", "5", nil}, {"HDEL f", "1", nil}, {"HINCRBY f 1", "1", nil}}},
	} {
		runScript(t, tc.name, newTypedNode("n"), tc.steps)
	}
}

func TestHashErrorsDistinct(t *testing.T) {
	errs := []error{ErrHashNotInteger, ErrHashNotFloat, ErrHashIncrNaN, ErrNotInteger, ErrNotFloat, ErrNaN, ErrOverflow}
	for i, a := range errs {
		for j, b := range errs {
			if (i == j) != errors.Is(a, b) {
				t.Errorf("errors.Is(%v, %v) = %v", a, b, errors.Is(a, b))
			}
		}
	}
	// Refusals change nothing: no delta.
	s := field("a1=abc@1")
	if d, _, err := HashIncr(s, s.Context(), "n", 1, 1); !d.Empty() || err == nil {
		t.Errorf("refused HINCRBY returned %v", d)
	}
	if d, _, err := HashIncrFloat(s, s.Context(), "n", 1, 1); !d.Empty() || err == nil {
		t.Errorf("refused HINCRBYFLOAT returned %v", d)
	}
}

func TestHashSetDelta(t *testing.T) {
	// HSET supersedes every register it observed with one register at a fresh
	// dot that records the increments' totals, which stay; several fields of one
	// command take consecutive dots.
	elem := field("a1=x@5 b2+3 c4~0.5")
	c := ctx(t, "a:1-2 b:1-2 c:1-4 n:1-6")
	src := NewDots(c, "n", 1)
	d, created := src.HashSet(elem, []byte("v"), 9)
	if fmtField(d.Dots) != "n7=v@9{b2+3,c4~0.5}" || !slices.Equal(d.Seen, dots("a1")) || created {
		t.Errorf("HashSet: %s %v %v", fmtField(d.Dots), d.Seen, created)
	}
	d, created = src.HashSet(nil, []byte("w"), 9)
	if fmtField(d.Dots) != "n8=w@9" || d.Seen != nil || !created {
		t.Errorf("second field: %s %v %v", fmtField(d.Dots), d.Seen, created)
	}
	if d, created := HashSet(nil, c, "m", 50, []byte("z"), 1); fmtField(d.Dots) != "m50=z@1" || !created {
		t.Errorf("one-field form: %s %v", fmtField(d.Dots), created)
	}
	// The value is copied: the caller's buffer may be reused.
	buf := []byte("42")
	d, _ = HashSet(nil, Context{}, "x", 1, buf, 1)
	buf[0] = '9'
	if string(d.Dots[0].Data) != "42" {
		t.Error("HashSet aliases its value")
	}
	// HSETNX on a live field writes nothing, and takes no dot.
	src = NewDots(c, "n", 1)
	if d, set := src.HashSetNX(elem, []byte("v"), 9); !d.Empty() || set {
		t.Errorf("HSETNX on a live field: %v %v", d, set)
	}
	if got := src.Next(); got != dot("n7") {
		t.Errorf("HSETNX refused but took a dot: next is %v", got)
	}
	// HDEL of a field with increments: a removal marker recording their totals,
	// superseding the registers; the increments stay, and the field is a grave.
	d, removed := HashDel(elem, c, "n", 1)
	if fmtField(d.Dots) != "n7!{b2+3,c4~0.5}" || !slices.Equal(d.Seen, dots("a1")) || !removed {
		t.Errorf("HashDel: %s %v %v", fmtField(d.Dots), d.Seen, removed)
	}
	grave, gc := ApplyElemDelta(elem, c, d)
	if HashLive(grave) || fmtField(grave) != "b2+3 c4~0.5 n7!{b2+3,c4~0.5}" {
		t.Errorf("after HDEL: %s live %v", fmtField(grave), HashLive(grave))
	}
	if d, removed := HashDel(grave, gc, "n", 1); !d.Empty() || removed {
		t.Errorf("HDEL of a grave: %v %v", d, removed)
	}
	// Without increments, HDEL removes exactly the observed dots and takes no dot.
	src = NewDots(c, "n", 1)
	if d, removed := src.HashDel(field("a1=x@5 b2=y@1")); d.Dots != nil || !slices.Equal(d.Seen, dots("a1 b2")) || !removed {
		t.Errorf("HashDel: %v %v", d, removed)
	}
	if d, removed := src.HashDel(nil); !d.Empty() || removed {
		t.Errorf("HashDel of an absent field: %v %v", d, removed)
	}
	if got := src.Next(); got != dot("n7") {
		t.Errorf("HDEL without a marker took a dot: next is %v", got)
	}
}

func TestHashValue(t *testing.T) {
	for _, tc := range []struct {
		f, want string
		live    bool
	}{
		{"", "", false},
		{"a1=010@1", "010", true},
		{"a1=5@1 b1+2 c1+-1", "6", true},
		{"b1+2 c1~0.5", "2.5", true},
		{"a1=abc@1 b1+2", "abc", true},        // not a number: its bytes, the increments hidden
		{"a1=abc@1 b1=7@2 c1+2", "9", true},   // the later register wins
		{"a1=abc@3 b1=7@2 c1+2", "abc", true}, // and may be the string
		{"a2=x@4 a1=y@4", "x", true},          // equal times: the greater dot
		{"a1", "", false},                     // a flag is no hash value
		{"a1=9223372036854775807@1 b1+1", "9223372036854775808", true},
		// Observed totals: each actor counts what it added since the winner saw it.
		{"a3=5@1{b1+10} b4+11", "6", true},
		{"a3=5@1{b1+10} b1+10", "5", true},            // all observed: the bytes
		{"a3=5@1{b4+11} b1+10", "5", true},            // observed a later one
		{"a3=5@1{b1+10} b4+11^4", "16", true},         // a new chain: all of it
		{"a3=5@1{b1+10} b2+12 c3=7@2", "19", true},    // the winner saw nothing
		{"a3=5@9{b1+10} b2+12 c3!{b2+12}", "7", true}, // a value beats a marker
		{"a3!{b1+10} b2+12", "2", true},               // a marker: live by what came after
		{"a3!{b1+10} b1+10", "", false},               // a grave
		{"a3!{b1+10} c4!{b2+12} b2+12", "", false},    // markers join: either saw it
		{"a3=7@1{b2+0~0.5} b4+1~0.5", "8", true},      // float part observed: integer
		{"a3=7@1{b2+0~0.5} b4+0~0.75", "7.25", true},  // float added since
		{"a3=abc@1{b1+10} b4+11", "abc", true},        // hidden, as before
		{"a3=9223372036854775807@1{b1+-9223372036854775808} b4+9223372036854775807", "27670116110564327422", true}, // the difference in 128 bits
	} {
		f := field(tc.f)
		slices.SortFunc(f, func(x, y Entry) int { return x.Dot.Compare(y.Dot) })
		got, live := HashValue(f)
		if string(got) != tc.want || live != tc.live || HashLive(f) != tc.live {
			t.Errorf("HashValue(%s) = %q, %v; want %q, %v", tc.f, got, live, tc.want, tc.live)
		}
	}
}

// TestHashConcurrent plays two nodes of one hash: a setup at a shipped to b, then
// commands at each on its own view, then an exchange of deltas both ways; both
// must then answer HGET f alike.
func TestHashConcurrent(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before []string
		a, b   []string
		want   string
	}{
		{"HSET concurrent with HDEL keeps the HSET",
			[]string{"HSET f 1"}, []string{"HSET f 2"}, []string{"HDEL f"}, "2"},
		{"HDEL that observed nothing removes nothing",
			nil, []string{"HSET f 2"}, []string{"HDEL f"}, "2"},
		{"HDEL concurrent with HINCRBY keeps the increment",
			[]string{"HSET f 10"}, []string{"HINCRBY f 1"}, []string{"HDEL f"}, "1"},
		{"concurrent HINCRBYs all count",
			[]string{"HINCRBY f 10"}, []string{"HINCRBY f 1", "HINCRBY f 2"}, []string{"HINCRBY f 5", "HINCRBYFLOAT f 0.5"}, "18.5"},
		{"an HSET that observed increments supersedes them",
			[]string{"HINCRBY f 10"}, []string{"HSET f 3"}, nil, "3"},
		{"an HSET that did not see increments keeps them",
			[]string{"HSET f 10"}, []string{"HSET f 3"}, []string{"HINCRBY f 4"}, "7"},
		{"an HSET keeps the unseen, drops the seen",
			[]string{"HINCRBY f 10"}, []string{"HSET f 3"}, []string{"HINCRBY f -1"}, "2"},
		{"concurrent HSETs: the later wins, unseen increments stay",
			[]string{"HSET f 1"}, []string{"HSET f 100", "HSET f 101"}, []string{"HSET f 7", "HINCRBY f 1"}, "102"},
		{"HSET of a string concurrent with HINCRBY: the string shows",
			[]string{"HSET f 10"}, []string{"HSET f abc"}, []string{"HINCRBY f 1"}, "abc"},
		{"an increment a losing HSET observed counts: the winner did not observe it",
			nil, []string{"HSET g 1", "HSET g 2", "HSET f 100"}, []string{"HINCRBY f 5", "HSET f 7"}, "105"}, // a's at time 3
		{"HSET concurrent with HDEL wins whatever its time",
			[]string{"HINCRBY f 4"}, []string{"HSET g 1", "HSET g 2", "HDEL f"}, []string{"HSET f 7"}, "7"},
		{"concurrent HDELs remove what either observed",
			[]string{"HINCRBY f 4"}, []string{"HDEL f"}, []string{"HINCRBY f 1", "HDEL f"}, "(nil)"},
		{"HDEL concurrent with another actor's first HINCRBY",
			[]string{"HINCRBY f 4"}, []string{"HDEL f"}, []string{"HINCRBY g 1", "HINCRBY f 2"}, "2"},
		{"HSETNX at both: both write, the later register wins",
			nil, []string{"HSET g 1", "HSETNX f x"}, []string{"HSETNX f y"}, "x"}, // a's at time 2, b's at 1
	} {
		a, b := newTypedNode("a"), newTypedNode("b")
		for _, c := range tc.before {
			a.do(t, c)
		}
		exchange(a, b)
		for _, c := range tc.a {
			if _, err := a.do(t, c); err != nil {
				t.Fatalf("%s: %s at a: %v", tc.name, c, err)
			}
		}
		for _, c := range tc.b {
			if _, err := b.do(t, c); err != nil {
				t.Fatalf("%s: %s at b: %v", tc.name, c, err)
			}
		}
		exchange(a, b)
		if ga, gb := a.hget("f"), b.hget("f"); ga != tc.want || gb != tc.want {
			t.Errorf("%s: HGET f at a %q (%s), at b %q (%s), want %q", tc.name, ga, fmtField(a.c.elems["f"]), gb, fmtField(b.c.elems["f"]), tc.want)
		}
		if !a.c.equal(b.c) {
			t.Errorf("%s: a %v, b %v", tc.name, a.c, b.c)
		}
	}
}

// TestHashStringHidesIncrements follows HSET abc concurrent with HINCRBY to its
// end: the string shows, HINCRBY refuses as Redis would, and an HSET that
// observed the field supersedes the hidden increments.
func TestHashStringHidesIncrements(t *testing.T) {
	a, b := newTypedNode("a"), newTypedNode("b")
	a.hset("f", "10")
	exchange(a, b)
	a.hset("f", "abc")
	b.hincrby("f", 1)
	exchange(a, b)
	if got := a.hget("f"); got != "abc" {
		t.Fatalf("HGET %q", got)
	}
	if _, err := b.hincrby("f", 1); !errors.Is(err, ErrHashNotInteger) {
		t.Errorf("HINCRBY on abc: %v", err)
	}
	b.hset("f", "7")
	exchange(a, b)
	if ga, gb := a.hget("f"), b.hget("f"); ga != "7" || gb != "7" {
		t.Errorf("after an observing HSET: a %q, b %q", ga, gb)
	}
}

// TestHashIncrAfterObservedReset: an actor's increment entry holds its running
// total and its next increment supersedes it. An HSET (or HDEL) that observed b's
// entry records b's total, so when b, concurrently, increments again, only what b
// added since counts: HSET f 3 that saw b's +10, with b's concurrent +1, gives 4;
// HDEL brings the field back with b's +1 alone.
func TestHashIncrAfterObservedReset(t *testing.T) {
	a, b := newTypedNode("a"), newTypedNode("b")
	b.hincrby("f", 10)
	exchange(a, b)
	a.hset("f", "3")  // observed b's +10
	b.hincrby("f", 1) // b's entry becomes +11, superseding the +10
	exchange(a, b)
	if ga, gb := a.hget("f"), b.hget("f"); ga != "4" || gb != "4" {
		t.Errorf("HGET at a %q, at b %q, want 4 (3 + b's unobserved +1)", ga, gb)
	}
	// The same with HDEL: the field comes back with b's +1 alone.
	a, b = newTypedNode("a"), newTypedNode("b")
	b.hincrby("f", 10)
	exchange(a, b)
	a.hdel("f")
	b.hincrby("f", 1)
	exchange(a, b)
	if ga, gb := a.hget("f"), b.hget("f"); ga != "1" || gb != "1" {
		t.Errorf("HGET after HDEL at a %q, at b %q, want 1", ga, gb)
	}
	// And then HDEL that observed it all leaves a grave, and HINCRBY after it
	// starts again from nothing.
	a.hdel("f")
	exchange(a, b)
	if got := b.hget("f"); got != "(nil)" || len(b.c.elems["f"]) == 0 {
		t.Errorf("after a second HDEL: %q, grave %s", got, fmtField(b.c.elems["f"]))
	}
	b.hincrby("f", 2)
	exchange(a, b)
	if ga, gb := a.hget("f"), b.hget("f"); ga != "2" || gb != "2" {
		t.Errorf("HINCRBY after HDEL at a %q, at b %q, want 2", ga, gb)
	}
}

// TestCounterChainAfterClear: a clear (a hash's DEL, an expiry) removes
// increment entries outright; the actor's next increment then starts a chain at
// its own dot, so a removal marker that observed the old chain does not subtract
// the old total from the new one.
func TestCounterChainAfterClear(t *testing.T) {
	// b's +10 (b1), observed by a's HDEL marker (a2) and by a clear at c that
	// removed b1 concurrently with the marker.
	f := field("a2!{b1+10}")
	c := ctx(t, "a:1-2 b:1")
	d, v, err := CounterIncr(f, c, "b", 1, 1)
	if err != nil || v != 1 || fmtField(d.Dots) != "b2+1^2" {
		t.Fatalf("HINCRBY after the clear: %s = %d, %v", fmtField(d.Dots), v, err)
	}
	after, _ := ApplyElemDelta(f, c, d)
	if got, ok := HashValue(after); !ok || string(got) != "1" {
		t.Errorf("HGET %q %v, want 1", got, ok)
	}
	// An entry written before chains existed (Base 0) counts from the start.
	if got, _ := HashValue(field("a2!{b1+10} b3+11")); string(got) != "1" {
		t.Errorf("old entry: %q, want 1", got)
	}
}
