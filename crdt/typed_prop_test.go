package crdt

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// Set and hash property tests. A simulation plays a random history of one set or
// one hash on 3-5 replicas, each also an actor, through the mutators: SADD, SREM,
// SPOP (an SREM of a member picked from the view), HSET, HSETNX, HDEL, HINCRBY,
// HINCRBYFLOAT, and now and then a DEL (a clear of the view's context). A command
// runs on the coordinator's view: the replica's state, or (a ReadFirst) that state
// joined with another replica's. Its deltas are applied to the replica first and
// queued for the others, delivered by property_test.go's takeDelivery (random
// order, duplicates, losses, hints); now and then two replicas exchange states.
//
// The model is the entries issued and the dots some command removed. Once every
// replica joined every other's state they must be equal and hold exactly the
// model; so every add or HSET no command observed survives (add-wins, HSET beats
// a concurrent HDEL) and every dot a command observed is gone (a remove removes
// what it observed, an HSET or HDEL supersedes the registers it saw; increments
// only the actor's next one supersedes). Histories of increments alone must sum
// every acknowledged increment; counter_prop_test.go checks hash field values
// against the history.

type typedMode int

const (
	modeSet      typedMode = iota
	modeHash               // HSET, HSETNX, HDEL, HINCRBY(FLOAT), DEL
	modeHashIncr           // HINCRBY only: every increment counts
)

type typedSim struct {
	t       testing.TB
	seed    uint64
	rng     *rand.Rand
	mode    typedMode
	actors  []string
	reps    []coll
	queue   []pending
	issued  map[Dot]Entry
	elemOf  map[Dot]string
	removed map[Dot]bool
	acked   map[string]int64 // modeHashIncr: the increments acknowledged per field
	hist    []string
}

func newTypedSim(t testing.TB, seed uint64) *typedSim {
	rng := rand.New(rand.NewPCG(seed, 0x5e7a))
	s := &typedSim{t: t, seed: seed, rng: rng, mode: typedMode(seed % 3),
		issued: map[Dot]Entry{}, elemOf: map[Dot]string{}, removed: map[Dot]bool{}, acked: map[string]int64{}}
	for i := range 3 + rng.IntN(3) {
		s.actors = append(s.actors, fmt.Sprintf("r%d", i))
		s.reps = append(s.reps, coll{elems: map[string]Field{}})
	}
	return s
}

func (s *typedSim) fatalf(format string, args ...any) {
	s.t.Helper()
	s.t.Fatalf("seed %d (mode %d): %s\nhistory:\n%v", s.seed, s.mode, fmt.Sprintf(format, args...), s.hist)
}

var (
	typedElems = []string{"e0", "e1", "e2", "e3", "e4", "e5"}
	typedVals  = []string{"0", "7", "-3", "abc", "1.5", "010", ""}
)

func (s *typedSim) elem() string { return typedElems[s.rng.IntN(len(typedElems))] }

// op runs one random command at replica r.
func (s *typedSim) op(r int) {
	view := s.reps[r]
	if s.rng.IntN(4) == 0 { // ReadFirst: the view also holds another replica's state
		view = join(view, s.reps[s.rng.IntN(len(s.reps))])
	}
	actor := s.actors[r]
	floor := uint64(1)
	if s.rng.IntN(4) == 0 {
		floor = 1_000 + s.rng.Uint64N(1_000)
	}
	src := NewDots(view.ctx, actor, floor)
	var out []delta
	// emit records one element's delta: applied to the view, so the command's
	// next element sees it (a member named twice counts once), and kept to ship.
	emit := func(elem string, d ElemDelta) {
		if d.Empty() {
			return
		}
		x := delta{elem: elem, d: d}
		view = apply(view, x)
		out = append(out, x)
	}
	// each runs mut on every named element and counts what the reply counts.
	each := func(names []string, mut func(Field) (ElemDelta, bool)) int {
		n := 0
		for _, e := range names {
			d, ok := mut(view.elems[e])
			emit(e, d)
			n += b2i(ok)
		}
		return n
	}
	var what string
	switch k := s.rng.IntN(20); {
	case k == 0 && s.mode != modeHashIncr: // DEL: a clear of what the view observed
		what = "DEL"
		out = append(out, delta{clear: view.ctx, isClr: true})
	case s.mode == modeSet && k < 11:
		ms := s.elems(1 + s.rng.IntN(3))
		what = fmt.Sprintf("SADD %v = %d", ms, each(ms, src.SetAdd))
	case s.mode == modeSet && k < 16:
		ms := s.elems(1 + s.rng.IntN(2))
		what = fmt.Sprintf("SREM %v = %d", ms, each(ms, SetRem))
	case s.mode == modeSet: // SPOP: a live member of the view
		live := slices.Sorted(maps.Keys(view.elems))
		if len(live) == 0 {
			return
		}
		m := live[s.rng.IntN(len(live))]
		d, _ := SetRem(view.elems[m])
		emit(m, d)
		what = "SPOP " + m
	case s.mode == modeHash && k < 7:
		ts := s.rng.Int64N(50)
		fs := s.elems(1 + s.rng.IntN(3))
		n := each(fs, func(f Field) (ElemDelta, bool) {
			return src.HashSet(f, []byte(typedVals[s.rng.IntN(len(typedVals))]), ts)
		})
		what = fmt.Sprintf("HSET %v @%d = %d", fs, ts, n)
	case s.mode == modeHash && k < 9:
		f := s.elem()
		d, set := src.HashSetNX(view.elems[f], []byte("nx"), s.rng.Int64N(50))
		emit(f, d)
		what = fmt.Sprintf("HSETNX %s = %v", f, set)
	case s.mode == modeHash && k < 13:
		fs := s.elems(1 + s.rng.IntN(2))
		what = fmt.Sprintf("HDEL %v = %d", fs, each(fs, src.HashDel))
	case s.mode == modeHash && k < 15:
		f, by := s.elem(), float64(s.rng.IntN(9)-4)/4
		d, v, err := HashIncrFloat(view.elems[f], view.ctx, actor, floor, by)
		emit(f, d)
		what = fmt.Sprintf("HINCRBYFLOAT %s %v = %s %v", f, by, v, err)
	default:
		f, by := s.elem(), s.rng.Int64N(21)-10
		d, v, err := HashIncr(view.elems[f], view.ctx, actor, floor, by)
		emit(f, d)
		what = fmt.Sprintf("HINCRBY %s %d = %d %v", f, by, v, err)
		if err == nil && s.mode == modeHashIncr {
			s.acked[f] += by
		} else if err != nil && s.mode == modeHashIncr {
			s.fatalf("%s refused in an increment-only history", what)
		}
	}
	s.hist = append(s.hist, fmt.Sprintf("r%d %s", r, what))
	s.record(r, out)
}

// elems returns n element names, possibly repeated, as a command may name them.
func (s *typedSim) elems(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s.elem()
	}
	return out
}

// record checks a command's deltas against the state it ran on, updates the model,
// applies them at replica r and queues them for the others.
func (s *typedSim) record(r int, out []delta) {
	before := s.reps[r]
	for _, d := range out {
		if d.isClr {
			for x := range s.issued {
				if d.clear.Covers(x) {
					s.removed[x] = true
				}
			}
		}
		for _, e := range d.d.Dots {
			if _, dup := s.issued[e.Dot]; dup || before.ctx.Covers(e.Dot) {
				s.fatalf("dot %v issued twice, or one the replica had seen", e.Dot)
			}
			s.issued[e.Dot], s.elemOf[e.Dot] = e, d.elem
		}
		for _, x := range d.d.Seen {
			if s.elemOf[x] != d.elem {
				s.fatalf("a delta of %s removes %v, a dot of %q", d.elem, x, s.elemOf[x])
			}
			s.removed[x] = true
		}
		s.reps[r] = apply(s.reps[r], d)
		for to := range s.reps {
			if to != r {
				s.queue = append(s.queue, pending{to, d})
			}
		}
	}
}

func (s *typedSim) run(steps int) {
	runHistory(s.rng, len(s.reps), steps, s.op, func() {
		p, ok := takeDelivery(s.rng, &s.queue, func(p, q delta) bool {
			return !p.isClr && !q.isClr && q.elem == p.elem
		})
		if ok {
			s.reps[p.to] = apply(s.reps[p.to], p.d)
		}
	}, func(a, b int) {
		j := join(s.reps[a], s.reps[b])
		s.reps[a], s.reps[b] = j, j
	}, func() {
		for _, c := range s.reps {
			checkContext(s.t, c.ctx)
			for k, f := range c.elems {
				if len(f) == 0 {
					s.fatalf("element %s stored empty", k)
				}
				checkField(s.t, f, c.ctx)
			}
		}
	})
}

func (s *typedSim) model() map[string]Field {
	m := map[string]Field{}
	for _, d := range slices.SortedFunc(maps.Keys(s.issued), Dot.Compare) {
		if !s.removed[d] {
			m[s.elemOf[d]] = append(m[s.elemOf[d]], s.issued[d])
		}
	}
	return m
}

func TestPropSetHashConverge(t *testing.T) {
	var counts [3]int
	for _, seed := range propSeeds() {
		s := newTypedSim(t, seed)
		s.run(200)
		// Loss made up by one full state exchange (MergeElem per element).
		convergeTo(s.reps, s.model(), s.fatalf)
		final := s.reps[0].elems
		// The model's rules, said as the commands' guarantees.
		for d, e := range s.issued {
			live := false
			if f, ok := final[s.elemOf[d]]; ok {
				_, live = f.Get(d)
			}
			switch {
			case s.removed[d] && live:
				s.fatalf("%v survived the command that observed it", d)
			case !s.removed[d] && !live:
				s.fatalf("%v (%s of %s) lost though no command observed it", d, fmtField(Field{e}), s.elemOf[d])
			case !s.removed[d] && e.Kind == KindFlag && !SetLive(final[s.elemOf[d]]):
				s.fatalf("%s: an add no remove observed, not a member", s.elemOf[d])
			case !s.removed[d] && e.Kind == KindReg && !e.Del && !HashLive(final[s.elemOf[d]]):
				s.fatalf("%s: an HSET no HDEL observed, not live", s.elemOf[d])
			}
		}
		if s.mode == modeHashIncr {
			for f, sum := range s.acked {
				v, _ := HashValue(final[f])
				if string(v) != strconv.FormatInt(sum, 10) {
					s.fatalf("field %s = %q, the acknowledged increments sum to %d", f, v, sum)
				}
			}
		}
		counts[s.mode] += len(s.hist)
	}
	t.Logf("commands per mode (set, hash, increments): %v", counts)
}
