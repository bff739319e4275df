package crdt

import (
	"fmt"
	"testing"
)

// benchState is an element and its collection context at 10 actors: each actor has
// 1000 events in the context (with a cloud run), and the element holds one
// concurrent entry per actor.
func benchState(shift uint64) (Field, Context) {
	var f Field
	var ds []Dot
	for i := range 10 {
		a := fmt.Sprintf("node-%d", i)
		for n := uint64(1); n <= 1000; n++ {
			if n%100 != 0 || n < 500 {
				ds = append(ds, Dot{Actor: a, Counter: n + shift})
			}
		}
		f = append(f, Entry{Dot: Dot{Actor: a, Counter: 1000 + shift}, Kind: KindReg, Data: []byte("value"), TS: int64(i)})
	}
	return f, ContextOf(ds...)
}

func BenchmarkMergeElem(b *testing.B) {
	l, lc := benchState(0)
	r, rc := benchState(3)
	b.ReportAllocs()
	for b.Loop() {
		_ = MergeElem(l, lc, r, rc)
	}
}

func BenchmarkApplyElemDelta(b *testing.B) {
	l, lc := benchState(0)
	next := lc.Next("node-3", 1)
	d := NewElemDelta(Field{{Dot: next, Kind: KindReg, Data: []byte("new"), TS: 99}}, l.Dots())
	b.ReportAllocs()
	for b.Loop() {
		_, _ = ApplyElemDelta(l, lc, d)
	}
}

// benchCounter is a counter at 10 actors: a register and one increment entry per
// actor, float ones when float is set.
func benchCounter(float bool) (Field, Context) {
	f := Field{{Dot: Dot{Actor: "node-0", Counter: 1}, Kind: KindReg, Data: []byte("12345"), TS: 1}}
	for i := range 10 {
		e := Entry{Dot: Dot{Actor: fmt.Sprintf("node-%d", i), Counter: 2}, Kind: KindIncr, I: int64(i) << 40}
		if float {
			e.F, e.IsFloat = float64(i)+0.25, true
		}
		f = append(f, e)
	}
	return f, f.Context()
}

func BenchmarkCounterValue(b *testing.B) {
	for _, float := range []bool{false, true} {
		b.Run(fmt.Sprintf("float=%v", float), func(b *testing.B) {
			f, _ := benchCounter(float)
			buf := make([]byte, 0, 64)
			b.ReportAllocs()
			for b.Loop() {
				buf = CounterOf(f).AppendText(buf[:0])
			}
		})
	}
}

func BenchmarkCounterIncr(b *testing.B) {
	f, c := benchCounter(false)
	b.ReportAllocs()
	for b.Loop() {
		_, _, _ = CounterIncr(f, c, "node-3", 1, 1)
	}
}

// benchElem is an element holding n concurrent entries of kind k, one per actor,
// and the collection context of benchState (10 actors, 1000 events each).
func benchElem(n int, k Kind) (Field, Context) {
	_, c := benchState(0)
	var f Field
	for i := range n {
		f = append(f, Entry{Dot: Dot{Actor: fmt.Sprintf("node-%d", i), Counter: 400}, Kind: k, Data: []byte("value"), TS: int64(i)})
	}
	if k == KindFlag {
		for i := range f {
			f[i].Data, f[i].TS = nil, 0
		}
	}
	return f, c
}

func BenchmarkSetAdd(b *testing.B) {
	for _, n := range []int{1, 10} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			f, c := benchElem(n, KindFlag)
			b.ReportAllocs()
			for b.Loop() {
				_, _ = SetAdd(f, c, "node-3", 1)
			}
		})
	}
}

func BenchmarkHashSet(b *testing.B) {
	for _, n := range []int{1, 10} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			f, c := benchElem(n, KindReg)
			v := []byte("new value")
			b.ReportAllocs()
			for b.Loop() {
				_, _ = HashSet(f, c, "node-3", 1, v, 99)
			}
		})
	}
}
