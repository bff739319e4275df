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

// Counter property tests. A simulation plays a random history of one counter (or
// one hash field: HINCRBY, HINCRBYFLOAT, HSET, HDEL through the hash mutators) on
// 3-5 replicas, each also an actor: INCRBY, INCRBYFLOAT, SET (a reset) and DEL
// through the mutators on the replica's own view, applied locally first and
// shipped as deltas that arrive in random order, some twice, some never, some
// joined with another first (a hint); now and then two replicas exchange whole
// states (meta is shipped whole, 1.2). Beside them run two dumb models:
//
//   - the entries issued and the dots some op superseded. Once every replica has
//     joined every other's state, each must hold exactly the issued entries
//     nothing superseded, and render the same bytes.
//   - the history's causal structure: every acknowledged increment command with
//     its amount, and per register (SET, DEL) the increments it observed, the
//     commands whose entry (or a later one of the same actor) its view held.
//     The value must be the winning register's number (the value register with
//     the greatest (TS, dot); none when only removals are left) plus the amount
//     of every increment command it did not observe (with no value register,
//     that no removal observed), summed with math/big; the counter is live iff
//     a value register is left or some increment counts.

type counterSim struct {
	t       testing.TB
	seed    uint64
	rng     *rand.Rand
	floats  bool // this history uses INCRBYFLOAT and float registers
	reps    []*counterNode
	queue   []pending
	issued  map[Dot]Entry
	removed map[Dot]bool
	hash    bool     // HSET, HDEL, HINCRBY(FLOAT) through the hash mutators
	incrs   []incrOp // the acknowledged increment commands
	regs    map[Dot]map[string]uint64
	refused int
	hist    []string
}

// incrOp is one acknowledged increment command: the entry it wrote and by how much.
type incrOp struct {
	dot Dot
	i   int64
	f   float64
}

func newCounterSim(t testing.TB, seed uint64) *counterSim {
	rng := rand.New(rand.NewPCG(seed, 0xc0a7))
	s := &counterSim{t: t, seed: seed, rng: rng, floats: seed%2 == 0, hash: seed%4 >= 2,
		issued: map[Dot]Entry{}, removed: map[Dot]bool{}, regs: map[Dot]map[string]uint64{}}
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
	// The coordinator's view: the replica's state, or (a ReadFirst) that state
	// joined with another replica's. The delta is applied to the replica.
	v := &counterNode{actor: n.actor, f: n.f, ctx: n.ctx}
	if s.rng.IntN(4) == 0 {
		v.merge(s.reps[s.rng.IntN(len(s.reps))])
	}
	before, beforeCtx := v.f, v.ctx
	var d ElemDelta
	var err error
	var what string
	name := func(counter, hash string) string {
		if s.hash {
			return hash
		}
		return counter
	}
	switch k := s.rng.IntN(12); {
	case k < 5 || (k < 8 && !s.floats):
		delta := s.intDelta()
		var got int64
		if s.hash {
			d, got, err = HashIncr(v.f, v.ctx, n.actor, floor, delta)
		} else {
			d, got, err = CounterIncr(v.f, v.ctx, n.actor, floor, delta)
		}
		what = fmt.Sprintf("r%d %s %d = %d %v", r, name("INCRBY", "HINCRBY"), delta, got, err)
		if err == nil {
			after, _ := ApplyElemDelta(v.f, v.ctx, d)
			if x, ok := CounterOf(after).Int64(); !ok || x != got {
				s.fatalf("%s, but the state after it reads %d %v", what, x, ok)
			}
			s.incrs = append(s.incrs, incrOp{dot: d.Dots[0].Dot, i: delta})
		}
	case k < 8:
		delta := simDeltas[s.rng.IntN(len(simDeltas))]
		var text []byte
		if s.hash {
			d, text, err = HashIncrFloat(v.f, v.ctx, n.actor, floor, delta)
		} else {
			d, text, err = CounterIncrFloat(v.f, v.ctx, n.actor, floor, delta)
		}
		what = fmt.Sprintf("r%d %s %v = %s %v", r, name("INCRBYFLOAT", "HINCRBYFLOAT"), delta, text, err)
		if err == nil {
			after, _ := ApplyElemDelta(v.f, v.ctx, d)
			if got := CounterOf(after).AppendText(nil); string(got) != string(text) {
				s.fatalf("%s, but GET after it gives %s", what, got)
			}
			s.incrs = append(s.incrs, incrOp{dot: d.Dots[0].Dot, f: delta})
		}
	case k < 10:
		vals := simInts
		if s.floats {
			vals = slices.Concat(simInts, simFloats)
		}
		val := vals[s.rng.IntN(len(vals))]
		ts := s.rng.Int64N(50)
		if s.hash {
			d, _ = HashSet(v.f, v.ctx, n.actor, floor, []byte(val), ts)
		} else {
			d = CounterReset(v.f, v.ctx, n.actor, floor, []byte(val), ts)
		}
		what = fmt.Sprintf("r%d %s %s @%d", r, name("SET", "HSET"), val, ts)
		s.regs[d.Dots[0].Dot] = observedOps(v.f)
	default:
		var removed bool
		if s.hash {
			d, removed = HashDel(v.f, v.ctx, n.actor, floor)
		} else {
			d, removed = CounterDel(v.f, v.ctx, n.actor, floor)
		}
		what = fmt.Sprintf("r%d %s = %v", r, name("DEL", "HDEL"), removed)
		if removed != CounterLive(v.f) {
			s.fatalf("%s, but the view is live: %v", what, CounterLive(v.f))
		}
		if len(d.Dots) > 0 {
			s.regs[d.Dots[0].Dot] = observedOps(v.f)
		}
		if after, _ := ApplyElemDelta(v.f, v.ctx, d); CounterLive(after) {
			s.fatalf("%s, but the state after it is live: %s", what, fmtField(after))
		}
		if d.Empty() {
			s.hist = append(s.hist, what)
			return
		}
	}
	s.hist = append(s.hist, what)
	if err != nil {
		s.refused++
		return
	}
	if len(d.Dots) > 1 || (len(d.Dots) == 1 && d.Dots[0].Dot != beforeCtx.Next(n.actor, floor)) {
		s.fatalf("%s: delta adds %s, not one entry at the next dot", what, fmtField(d.Dots))
	}
	for _, e := range d.Dots {
		if _, dup := s.issued[e.Dot]; dup {
			s.fatalf("dot %v issued twice", e.Dot)
		}
		s.issued[e.Dot] = e
	}
	for _, x := range d.Seen {
		e, ok := before.Get(x)
		if !ok {
			s.fatalf("%s supersedes %v, which it did not observe", what, x)
		}
		if e.Kind == KindIncr && (len(d.Dots) == 0 || d.Dots[0].Kind != KindIncr || x.Actor != n.actor) {
			s.fatalf("%s supersedes increment %v: only the actor's next increment may", what, x)
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

// observedOps is what a register written on view f observed: per actor, the
// greatest counter of its increment entries there. An increment command is
// observed when its entry's counter is at or below its actor's (no history here
// clears, so an actor's entries form one chain).
func observedOps(f Field) map[string]uint64 {
	m := map[string]uint64{}
	for _, e := range f {
		if e.Kind == KindIncr {
			m[e.Dot.Actor] = max(m[e.Dot.Actor], e.Dot.Counter)
		}
	}
	return m
}

// reference is the value the history's causal structure gives the converged
// field f (the model's registers are f's): the winning value register's number
// plus every increment command the winner did not observe, or with no value
// register every one no removal observed, in arbitrary precision. counted says
// whether some increment counts; live whether the counter is.
func (s *counterSim) reference(f Field) (sum *big.Float, live, counted bool) {
	sum = new(big.Float).SetPrec(2000)
	var saw []map[string]uint64
	if w, ok := counterWinner(f); ok {
		x, _, err := big.ParseFloat(string(w.Data), 0, 2000, big.ToNearestEven)
		if err != nil {
			panic(err)
		}
		sum.Add(sum, x)
		saw, live = []map[string]uint64{s.regs[w.Dot]}, true
	} else {
		for _, e := range f {
			if e.Kind == KindReg {
				saw = append(saw, s.regs[e.Dot])
			}
		}
	}
	for _, op := range s.incrs {
		if slices.ContainsFunc(saw, func(m map[string]uint64) bool { return m[op.dot.Actor] >= op.dot.Counter }) {
			continue
		}
		counted, live = true, true
		sum.Add(sum, new(big.Float).SetInt64(op.i))
		sum.Add(sum, big.NewFloat(op.f))
	}
	return sum, live, counted
}

func TestPropCounterConverges(t *testing.T) {
	beyond, refused, nils, observedAll := 0, 0, 0, 0
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
		// The value is the history's: the winner plus what it did not observe.
		exact, live, counted := s.reference(want)
		if CounterLive(want) != live {
			s.fatalf("live %v, the history says %v (%s)", CounterLive(want), live, fmtField(want))
		}
		if !live {
			nils++
			continue
		}
		if !counted {
			observedAll++
		}
		if !s.floats {
			i, _ := exact.Int(nil)
			if got != i.String() {
				s.fatalf("renders %q, the history gives %s (%s)", got, i, fmtField(want))
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
			s.fatalf("renders %q, the history gives %s (%s)", got, exact.Text('g', 30), fmtField(want))
		}
		refused += s.refused
	}
	if beyond == 0 || refused == 0 || nils == 0 || observedAll == 0 {
		t.Fatalf("no history went past int64 (%d), had a refused command (%d), ended removed (%d) or with every increment observed (%d): the generator is too tame",
			beyond, refused, nils, observedAll)
	}
	t.Logf("%d histories ended beyond int64, %d removed, %d with every increment observed; %d commands refused", beyond, nils, observedAll, refused)
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
