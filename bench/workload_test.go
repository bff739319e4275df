package bench

import (
	"errors"
	"slices"
	"testing"
)

func TestParseRatio(t *testing.T) {
	for _, tc := range []struct {
		in         string
		gets, sets int
	}{{"1:1", 1, 1}, {"9:1", 9, 1}, {" 1 : 0 ", 1, 0}, {"0:1", 0, 1}} {
		g, s, err := ParseRatio(tc.in)
		if err != nil || g != tc.gets || s != tc.sets {
			t.Errorf("ParseRatio(%q) = %d, %d, %v; want %d, %d", tc.in, g, s, err, tc.gets, tc.sets)
		}
	}
	for _, bad := range []string{"", "1", "0:0", "-1:2", "a:b", "1:1:1"} {
		if _, _, err := ParseRatio(bad); !errors.Is(err, ErrConfig) {
			t.Errorf("ParseRatio(%q) = %v; want ErrConfig", bad, err)
		}
	}
}

func TestWorkloadValidate(t *testing.T) {
	if err := DefaultWorkload().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Workload){
		"no keys":      func(w *Workload) { w.Keys = 0 },
		"bad dist":     func(w *Workload) { w.Dist = "normal" },
		"zero ratio":   func(w *Workload) { w.Gets, w.Sets = 0, 0 },
		"neg value":    func(w *Workload) { w.ValueSize = -1 },
		"space prefix": func(w *Workload) { w.KeyPrefix = "a b" },
	} {
		w := DefaultWorkload()
		mut(&w)
		if err := w.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v; want ErrConfig", name, err)
		}
	}
}

func TestAppendKey(t *testing.T) {
	w := DefaultWorkload()
	if got := string(w.AppendKey([]byte("x"), 42)); got != "xkey:000000000042" {
		t.Errorf("AppendKey = %q", got)
	}
	if got := string(w.AppendKey(nil, 1234567890123)); got != "key:1234567890123" {
		t.Errorf("AppendKey = %q", got)
	}
}

// draw returns how many GETs came out of n draws and how often each key index did.
func draw(t *testing.T, w Workload, n int) (gets int, hits []int) {
	t.Helper()
	g := NewGenerator(w, 7, 3)
	hits = make([]int, w.Keys)
	for range n {
		op, k := g.Next()
		if k < 0 || k >= w.Keys {
			t.Fatalf("key index %d outside [0, %d)", k, w.Keys)
		}
		hits[k]++
		if op == OpGet {
			gets++
		} else if op != OpSet {
			t.Fatalf("op %v", op)
		}
	}
	return gets, hits
}

func TestGeneratorUniform(t *testing.T) {
	w := DefaultWorkload()
	w.Keys = 10
	_, hits := draw(t, w, 100_000)
	for k, h := range hits {
		if h < 9_000 || h > 11_000 {
			t.Errorf("key %d drawn %d times of 100000; want about 10000", k, h)
		}
	}
}

func TestGeneratorZipfian(t *testing.T) {
	w := DefaultWorkload()
	w.Keys, w.Dist = 10_000, DistZipfian
	const n = 200_000
	_, hits := draw(t, w, n)
	top := 0
	for k := range 100 { // the hottest 1%
		top += hits[k]
	}
	if top < n/2 {
		t.Errorf("the hottest 1%% of keys got %d of %d draws; want over half", top, n)
	}
	if hits[0] <= hits[1] || hits[1] <= hits[10] || hits[10] <= hits[1000] {
		t.Errorf("frequencies do not fall with rank: %d %d %d %d", hits[0], hits[1], hits[10], hits[1000])
	}
	last := 0
	for k := w.Keys / 2; k < w.Keys; k++ {
		last += hits[k]
	}
	if last == 0 {
		t.Error("the colder half of the keyspace was never drawn")
	}

	w.Keys = 1 // a single key needs no zipf
	if _, hits := draw(t, w, 100); hits[0] != 100 {
		t.Errorf("one key: %v", hits)
	}
}

func TestGeneratorRatio(t *testing.T) {
	w := DefaultWorkload()
	for _, tc := range []struct {
		gets, sets int
		lo, hi     int // GETs of 100000
	}{{9, 1, 89_000, 91_000}, {1, 1, 49_000, 51_000}, {1, 0, 100_000, 100_000}, {0, 1, 0, 0}} {
		w.Gets, w.Sets = tc.gets, tc.sets
		if gets, _ := draw(t, w, 100_000); gets < tc.lo || gets > tc.hi {
			t.Errorf("ratio %s: %d GETs of 100000; want %d..%d", w.Ratio(), gets, tc.lo, tc.hi)
		}
	}
}

func TestGeneratorDeterministic(t *testing.T) {
	w := DefaultWorkload()
	w.Dist = DistZipfian
	a, b, c := NewGenerator(w, 1, 0), NewGenerator(w, 1, 0), NewGenerator(w, 1, 1)
	same := true
	for range 1000 {
		opA, kA := a.Next()
		opB, kB := b.Next()
		opC, kC := c.Next()
		if opA != opB || kA != kB {
			t.Fatal("the same seed and stream gave two sequences")
		}
		same = same && opA == opC && kA == kC
	}
	if same {
		t.Error("two streams gave the same sequence")
	}
}

func TestBudget(t *testing.T) {
	b := &budget{total: 10}
	var got []int
	for range 5 {
		got = append(got, b.claim(4))
	}
	if want := []int{4, 4, 2, 0, 0}; !slices.Equal(got, want) {
		t.Errorf("claims %v; want %v", got, want)
	}
	unlimited := &budget{}
	if n := unlimited.claim(7); n != 7 {
		t.Errorf("unlimited claim %d", n)
	}
}
