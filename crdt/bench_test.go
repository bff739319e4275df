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
