package crdt

import (
	"fmt"
	"maps"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// Counter property tests. A simulation plays a random history of one counter on
// 3-5 replicas, each also an actor: INCRBY, INCRBYFLOAT and SET (a reset) through
// the mutators on the replica's own view, applied locally first and shipped as
// deltas that arrive in random order, some twice, some never, some joined with
// another first (a hint); now and then two replicas exchange whole states (meta is
// shipped whole, 1.2). Beside them runs a dumb model: the entries issued and the
// dots some op superseded. Once every replica has joined every other's state, each
// must hold exactly the issued entries nothing superseded and render the same
// bytes, and that value must be the winning register plus those increments,
// computed with math/big.

type counterSim struct {
	t       testing.TB
	seed    uint64
	rng     *rand.Rand
	floats  bool // this history uses INCRBYFLOAT and float registers
	reps    []*counterNode
	queue   []pending
	issued  map[Dot]Entry
	removed map[Dot]bool
	resets  [][]Dot // the increments each reset observed
	refused int
	hist    []string
}

func newCounterSim(t testing.TB, seed uint64) *counterSim {
	rng := rand.New(rand.NewPCG(seed, 0xc0a7))
	s := &counterSim{t: t, seed: seed, rng: rng, floats: seed%2 == 0, issued: map[Dot]Entry{}, removed: map[Dot]bool{}}
	for i := range 3 + rng.IntN(3) {
		s.reps = append(s.reps, &counterNode{actor: fmt.Sprintf("r%d", i)})
	}
	return s
}

func (s *counterSim) fatalf(format string, args ...any) {
	s.t.Helper()
	s.t.Fatalf("seed %d: %s\nhistory:\n%v", s.seed, fmt.Sprintf(format, args...), s.hist)
}

var (
	simInts   = []string{"0", "5", "-7", "123456789", "9223372036854775807", "-9223372036854775808"}
	simFloats = []string{"010", "1.5", "5.0e3", "-0.25"}
	simDeltas = []float64{0.1, 0.2, 0.25, -0.5, 1e-3, 3.75, -2.2}
)

func (s *counterSim) intDelta() int64 {
	if s.rng.IntN(8) == 0 { // large: concurrent ones sum past int64
		return (s.rng.Int64N(2)*2 - 1) * (1<<62 + s.rng.Int64N(1<<61))
	}
	return s.rng.Int64N(21) - 10
}

// op runs one random command at replica r and queues its delta.
func (s *counterSim) op(r int) {
	n := s.reps[r]
	floor := uint64(1)
	if s.rng.IntN(4) == 0 {
		floor = 1_000 + s.rng.Uint64N(1_000)
	}
	before, beforeCtx := n.f, n.ctx
	var d ElemDelta
	var err error
	var what string
	switch k := s.rng.IntN(10); {
	case k < 5 || (k < 8 && !s.floats):
		delta := s.intDelta()
		var v int64
		d, v, err = CounterIncr(n.f, n.ctx, n.actor, floor, delta)
		what = fmt.Sprintf("r%d INCRBY %d = %d %v", r, delta, v, err)
		if err == nil {
			after, _ := ApplyElemDelta(n.f, n.ctx, d)
			if got, ok := CounterOf(after).Int64(); !ok || got != v {
				s.fatalf("%s, but the state after it reads %d %v", what, got, ok)
			}
		}
	case k < 8:
		delta := simDeltas[s.rng.IntN(len(simDeltas))]
		var v []byte
		d, v, err = CounterIncrFloat(n.f, n.ctx, n.actor, floor, delta)
		what = fmt.Sprintf("r%d INCRBYFLOAT %v = %s %v", r, delta, v, err)
		if err == nil {
			after, _ := ApplyElemDelta(n.f, n.ctx, d)
			if got := CounterOf(after).AppendText(nil); string(got) != string(v) {
				s.fatalf("%s, but GET after it gives %s", what, got)
			}
		}
	default:
		vals := simInts
		if s.floats {
			vals = slices.Concat(simInts, simFloats)
		}
		v := vals[s.rng.IntN(len(vals))]
		ts := s.rng.Int64N(50)
		d = CounterReset(n.f, n.ctx, n.actor, floor, []byte(v), ts)
		what = fmt.Sprintf("r%d SET %s @%d", r, v, ts)
		var saw []Dot
		for _, x := range d.Seen {
			if e, _ := n.f.Get(x); e.Kind == KindIncr {
				saw = append(saw, x)
			}
		}
		s.resets = append(s.resets, saw)
	}
	s.hist = append(s.hist, what)
	if err != nil {
		s.refused++
		return
	}
	if len(d.Dots) != 1 || d.Dots[0].Dot != beforeCtx.Next(n.actor, floor) {
		s.fatalf("%s: delta adds %s, not one entry at the next dot", what, fmtField(d.Dots))
	}
	e := d.Dots[0]
	if _, dup := s.issued[e.Dot]; dup {
		s.fatalf("dot %v issued twice", e.Dot)
	}
	s.issued[e.Dot] = e
	for _, x := range d.Seen {
		if _, ok := before.Get(x); !ok {
			s.fatalf("%s supersedes %v, which it did not observe", what, x)
		}
		s.removed[x] = true
	}
	n.apply(d)
	for to := range s.reps {
		if to != r {
			s.queue = append(s.queue, pending{to, delta{d: d}})
		}
	}
}

// deliver hands a random queued delta to its replica, as the collection sim does.
func (s *counterSim) deliver() {
	if p, ok := takeDelivery(s.rng, &s.queue, func(delta, delta) bool { return true }); ok {
		s.reps[p.to].apply(p.d.d)
	}
}

func (s *counterSim) run(steps int) {
	runHistory(s.rng, len(s.reps), steps, s.op, s.deliver, func(a, b int) {
		ra, rb := s.reps[a], s.reps[b]
		old := *rb
		rb.merge(ra)
		ra.merge(&old)
	}, func() {
		for _, n := range s.reps {
			checkField(s.t, n.f, n.ctx)
		}
	})
}

// exchange has every replica join every other's state.
func (s *counterSim) exchange() {
	before := make([]counterNode, len(s.reps))
	for i, n := range s.reps {
		before[i] = *n
	}
	for _, n := range s.reps {
		for i := range before {
			n.merge(&before[i])
		}
	}
}

func (s *counterSim) model() Field {
	var f Field
	for _, d := range slices.SortedFunc(maps.Keys(s.issued), Dot.Compare) {
		if !s.removed[d] {
			f = append(f, s.issued[d])
		}
	}
	return f
}

// exactValue is the model's value: the winning register plus every increment,
// in arbitrary precision.
func exactValue(f Field) *big.Float {
	sum := new(big.Float).SetPrec(2000)
	if w, ok := f.Winner(KindReg); ok {
		x, _, err := big.ParseFloat(string(w.Data), 0, 2000, big.ToNearestEven)
		if err != nil {
			panic(err)
		}
		sum.Add(sum, x)
	}
	for _, e := range f {
		if e.Kind == KindIncr {
			sum.Add(sum, new(big.Float).SetInt64(e.I))
			sum.Add(sum, big.NewFloat(e.F))
		}
	}
	return sum
}

func TestPropCounterConverges(t *testing.T) {
	beyond, refused := 0, 0
	for _, seed := range propSeeds() {
		s := newCounterSim(t, seed)
		s.run(150)
		s.exchange()
		want := s.model()
		got := string(CounterOf(s.reps[0].f).AppendText(nil))
		for i, n := range s.reps {
			if !n.f.Equal(want) {
				s.fatalf("replica %d holds %s, model %s", i, fmtField(n.f), fmtField(want))
			}
			if r := string(CounterOf(n.f).AppendText(nil)); r != got {
				s.fatalf("replica %d renders %q, replica 0 %q", i, r, got)
			}
		}
		// Each reset removed exactly the increments it observed: gone now, while
		// every increment no op superseded is still there.
		for _, saw := range s.resets {
			for _, x := range saw {
				if _, ok := want.Get(x); ok {
					s.fatalf("increment %v a reset observed survived", x)
				}
			}
		}
		for d, e := range s.issued {
			if _, ok := want.Get(d); e.Kind == KindIncr && !s.removed[d] && !ok {
				s.fatalf("increment %v no op observed was lost", d)
			}
		}
		// The value is the winning register plus the surviving increments.
		exact := exactValue(want)
		if !s.floats {
			i, _ := exact.Int(nil)
			if got != i.String() {
				s.fatalf("renders %q, exact sum %s", got, i)
			}
			if _, ok := CounterOf(want).Int64(); ok != i.IsInt64() {
				s.fatalf("Int64 ok %v for %s", ok, i)
			}
			if !i.IsInt64() {
				beyond++
			}
		} else if x, err := strconv.ParseFloat(got, 64); err != nil {
			s.fatalf("renders %q, not a float", got)
		} else if ef, _ := exact.Float64(); math.Abs(x-ef) > 1e-9*max(1, math.Abs(ef)) {
			s.fatalf("renders %q, exact sum %s", got, exact.Text('g', 30))
		}
		refused += s.refused
	}
	if beyond == 0 || refused == 0 {
		t.Fatalf("no history went past int64 (%d) or had a refused command (%d): the generator is too tame", beyond, refused)
	}
	t.Logf("%d histories ended beyond int64; %d commands refused", beyond, refused)
}

// TestPropCounterMergeOrder: the rendered bytes do not depend on the order states
// and deltas meet. Every permutation of joining the replicas' states into an empty
// one renders alike, float histories included.
func TestPropCounterMergeOrder(t *testing.T) {
	for _, seed := range propSeeds() {
		s := newCounterSim(t, seed)
		s.run(100)
		var want string
		for k := range 6 {
			order := s.rng.Perm(len(s.reps))
			if k == 0 {
				slices.Sort(order)
			}
			acc := &counterNode{}
			for _, i := range order {
				acc.merge(s.reps[i])
			}
			got := string(CounterOf(acc.f).AppendText(nil))
			if k == 0 {
				want = got
			} else if got != want {
				s.fatalf("merge order %v renders %q, in order %q", order, got, want)
			}
		}
	}
}
