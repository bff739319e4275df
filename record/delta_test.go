package record

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/dynakv/dynakv/crdt"
	"github.com/dynakv/dynakv/vclock"
)

func mustJoin(t *testing.T, a, b Delta) Delta {
	t.Helper()
	j, err := JoinDeltas(a, b)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// TestStringDelta: a string write's delta carries exactly the record a string
// write ships today (its string layer), applies as MergeSafe of that record, and
// leaves no element work.
func TestStringDelta(t *testing.T) {
	for name, s := range stringSets() {
		d := DeltaOf(String(s), nil)
		if !d.Equal(Delta{Str: s}) || !bytes.Equal(d.Str.AppendBinary(nil), String(s).AppendBinary(nil)) {
			t.Fatalf("%s: DeltaOf(String(s)) = %+v, not the version 1 record's state", name, d)
		}
		for rname, rec := range typedExamples() {
			got, clears, work, err := ApplyDelta(rec, d)
			want := mustMerge(t, rec, String(s))
			if err != nil || !got.Equal(want) || clears != nil || work != nil {
				t.Fatalf("%s on %s: ApplyDelta = %+v %v %v %v, want %+v", name, rname, got, clears, work, err, want)
			}
		}
		got, _, _, err := ApplyDelta(Record{}, d)
		if err != nil || !got.Equal(String(s)) || got.Typed() {
			t.Fatalf("%s: on a missing key: %+v %v", name, got, err)
		}
	}
}

func TestApplyDeltaTable(t *testing.T) {
	d := func(a string, n uint64) crdt.Dot { return crdt.Dot{Actor: a, Counter: n} }
	flag := func(x crdt.Dot) crdt.Entry { return crdt.Entry{Dot: x, Kind: crdt.KindFlag} }
	setColl := &Coll{Ctx: crdt.ContextOf(d("a", 1), d("a", 2)), Len: 2, Bytes: 20}
	withSet := Record{Layers: []Layer{{Type: Set, Stamp: crdt.Stamp{TS: now, Dot: d("a", 2)}, Coll: setColl}}}
	sadd := ElemDelta{Type: Set, Elem: []byte("m"), D: crdt.NewElemDelta(crdt.Field{flag(d("b", 1))}, nil)}
	for _, tc := range []struct {
		name   string
		rec    Record
		d      Delta
		clears []Clear
		work   int
		check  func(Record) bool
	}{
		{"empty delta", withSet, Delta{}, nil, 0, func(r Record) bool { return r.Equal(withSet) }},
		{"sadd on a missing key makes the layer", Record{}, Delta{
			Layers: []DeltaLayer{{Type: Set, Stamp: crdt.Stamp{TS: now, Dot: d("b", 1)}}}, Elems: []ElemDelta{sadd},
		}, nil, 1, func(r Record) bool {
			return len(r.Layers) == 1 && r.Layers[0].Coll != nil && r.Layers[0].Stamp.Dot == d("b", 1)
		}},
		{"element without a header still gets its layer", Record{}, Delta{Elems: []ElemDelta{sadd}}, nil, 1,
			func(r Record) bool { return len(r.Layers) == 1 && r.Layers[0].Type == Set }},
		{"full clear", withSet, Delta{Layers: []DeltaLayer{{Type: Set, Dead: now, ClearC: crdt.ContextOf(d("a", 1), d("a", 2))}}},
			[]Clear{{Type: Set, Ctx: crdt.ContextOf(d("a", 1), d("a", 2)), Full: true}}, 0,
			func(r Record) bool {
				c := r.Layers[0].Coll
				return c.Len == 0 && c.Clear.Empty() && r.Layers[0].Dead == now
			}},
		{"partial clear", withSet, Delta{Layers: []DeltaLayer{{Type: Set, ClearC: crdt.ContextOf(d("a", 1))}}},
			[]Clear{{Type: Set, Ctx: crdt.ContextOf(d("a", 1))}}, 0,
			func(r Record) bool {
				c := r.Layers[0].Coll
				return c.Len == 2 && c.Clear.Equal(crdt.ContextOf(d("a", 1))) && c.SweepFrom != nil && c.Ctx.Equal(setColl.Ctx)
			}},
		{"clear reaches a missing layer", Record{}, Delta{Layers: []DeltaLayer{{Type: Hash, ClearC: crdt.ContextOf(d("a", 1))}}},
			[]Clear{{Type: Hash, Ctx: crdt.ContextOf(d("a", 1)), Full: true}}, 0,
			func(r Record) bool { return r.Layers[0].Coll.Ctx.Covers(d("a", 1)) }},
		{"empty element delta is no work", Record{}, Delta{Elems: []ElemDelta{{Type: Set, Elem: []byte("x")}}}, nil, 0,
			func(r Record) bool { return len(r.Layers) == 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, clears, work, err := ApplyDelta(tc.rec, tc.d)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(clears, tc.clears, func(a, b Clear) bool { return a.Type == b.Type && a.Full == b.Full && a.Ctx.Equal(b.Ctx) }) {
				t.Errorf("clears = %+v, want %+v", clears, tc.clears)
			}
			if len(work) != tc.work || !tc.check(got) {
				t.Errorf("got %+v, work %v", got, work)
			}
		})
	}
}

func TestApplyDeltaRefuses(t *testing.T) {
	for name, d := range map[string]Delta{
		"plain layer":       {Layers: []DeltaLayer{{Type: Plain}}},
		"unknown layer":     {Layers: []DeltaLayer{{Type: maxType + 1}}},
		"layers unordered":  {Layers: []DeltaLayer{{Type: Hash}, {Type: Set}}},
		"clear on counter":  {Layers: []DeltaLayer{{Type: Counter, ClearC: crdt.ContextOf(crdt.Dot{Actor: "a", Counter: 1})}}},
		"counter element":   {Elems: []ElemDelta{{Type: Counter, Elem: []byte("x")}}},
		"elements repeated": {Elems: []ElemDelta{{Type: Set, Elem: []byte("x")}, {Type: Set, Elem: []byte("x")}}},
	} {
		if _, _, _, err := ApplyDelta(Record{}, d); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: ApplyDelta err = %v, want ErrInvalid", name, err)
		}
		if _, err := JoinDeltas(Delta{}, d); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: JoinDeltas err = %v, want ErrInvalid", name, err)
		}
	}
}

// deltaExamples are deltas for the codec's tests and the fuzz seeds.
func deltaExamples() map[string]Delta {
	d := func(a string, n uint64) crdt.Dot { return crdt.Dot{Actor: a, Counter: n} }
	return map[string]Delta{
		"empty":  {},
		"string": {Str: stringSets()["siblings"]},
		"incr": {Ctx: crdt.ContextOf(d("a", 1), d("b", 2)), Layers: []DeltaLayer{{
			Type: Counter, Stamp: crdt.Stamp{TS: now, Dot: d("b", 2)},
			Val: crdt.Field{{Dot: d("a", 1), Kind: crdt.KindReg, Data: []byte("10"), TS: now}, {Dot: d("b", 2), Kind: crdt.KindIncr, I: -3}},
		}}},
		"sadd and clear": {
			Ctx: crdt.ContextOf(d("a", 1)), TTL: crdt.Field{crdt.TTLEntry(d("a", 1), now+1000, now)},
			Layers: []DeltaLayer{
				{Type: Set, Stamp: crdt.Stamp{TS: now, Dot: d("c", 3)}, ClearC: crdt.ContextOf(d("c", 1))},
				{Type: Hash, Dead: now, ClearC: crdt.ContextOf(d("a", 4), d("b", 9))},
			},
			Elems: []ElemDelta{
				{Type: Set, Elem: []byte(""), D: crdt.NewElemDelta(nil, []crdt.Dot{d("c", 2)})},
				{Type: Set, Elem: []byte("m"), D: crdt.NewElemDelta(crdt.Field{{Dot: d("c", 3), Kind: crdt.KindFlag}}, []crdt.Dot{d("c", 1)})},
				{Type: Hash, Elem: []byte("f"), D: crdt.NewElemDelta(crdt.Field{{Dot: d("b", 10), Kind: crdt.KindReg, Data: []byte("v"), TS: now}}, nil)},
			},
		},
	}
}

func TestDeltaRoundTrip(t *testing.T) {
	for name, d := range deltaExamples() {
		enc := d.AppendBinary(nil)
		got, err := DecodeDelta(enc)
		if err != nil || !got.Equal(d) {
			t.Fatalf("%s: DecodeDelta = %+v, %v; want %+v", name, got, err, d)
		}
		if enc[0] != versionDelta {
			t.Fatalf("%s: version byte %d", name, enc[0])
		}
	}
}

func TestDecodeDeltaRefuses(t *testing.T) {
	good := deltaExamples()["sadd and clear"]
	mod := func(f func(*Delta)) []byte {
		d := good
		d.Layers, d.Elems = slices.Clone(good.Layers), slices.Clone(good.Elems)
		f(&d)
		return d.AppendBinary(nil)
	}
	enc := good.AppendBinary(nil)
	for name, b := range map[string][]byte{
		"empty":              {},
		"unknown version":    {2},
		"truncated":          enc[:len(enc)-1],
		"trailing":           append(slices.Clone(enc), 0),
		"layers unordered":   mod(func(d *Delta) { d.Layers[0], d.Layers[1] = d.Layers[1], d.Layers[0] }),
		"plain layer":        mod(func(d *Delta) { d.Layers[0].Type = Plain }),
		"clear on counter":   mod(func(d *Delta) { d.Layers[0].Type = Counter }),
		"elements repeated":  mod(func(d *Delta) { d.Elems[1] = d.Elems[0] }),
		"elements unordered": mod(func(d *Delta) { d.Elems[0], d.Elems[1] = d.Elems[1], d.Elems[0] }),
		"hll element":        mod(func(d *Delta) { d.Elems = d.Elems[:1]; d.Elems[0].Type = HLL }),
		"empty element":      mod(func(d *Delta) { d.Elems[0].D = crdt.ElemDelta{} }),
		"huge count":         {1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		if _, err := DecodeDelta(b); !errors.Is(err, ErrBadDelta) {
			t.Errorf("%s: err = %v, want ErrBadDelta", name, err)
		}
	}
}

// BenchmarkApplyDelta: an INCR's delta and an SADD's element delta applied to
// a record whose string layer, meta context, counter and set have 10 actors.
func BenchmarkApplyDelta(b *testing.B) {
	var rec Record
	var dots []crdt.Dot
	var val crdt.Field
	for i := range 10 {
		a := fmt.Sprintf("node-%02d", i)
		rec.Str = vclock.Update(rec.Str, nil, a, vclock.Value{Data: []byte("v"), Timestamp: now}, now, 0)
		dots = append(dots, crdt.Dot{Actor: a, Counter: 1})
		val = append(val, crdt.Entry{Dot: crdt.Dot{Actor: a, Counter: 1}, Kind: crdt.KindIncr, I: int64(i)})
	}
	rec.Ctx = crdt.ContextOf(dots...)
	rec.Layers = []Layer{
		{Type: Counter, Stamp: crdt.Stamp{TS: now, Dot: dots[9]}, Val: val},
		{Type: Set, Stamp: crdt.Stamp{TS: now, Dot: dots[9]}, Coll: &Coll{Ctx: crdt.ContextOf(dots...), Len: 10, Bytes: 100}},
	}
	nd := crdt.Dot{Actor: "node-03", Counter: 2}
	d := DeltaOf(rec, nil)
	d.Ctx = d.Ctx.Join(crdt.ContextOf(nd))
	d.Layers[0].Val = slices.Clone(val)
	d.Layers[0].Val[3] = crdt.Entry{Dot: nd, Kind: crdt.KindIncr, I: 7}
	d.Elems = []ElemDelta{{Type: Set, Elem: []byte("m"), D: crdt.NewElemDelta(crdt.Field{{Dot: crdt.Dot{Actor: "node-03", Counter: 5}, Kind: crdt.KindFlag}}, nil)}}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, err := ApplyDelta(rec, d); err != nil {
			b.Fatal(err)
		}
	}
}

func TestJoinDeltasTable(t *testing.T) {
	d := func(a string, n uint64) crdt.Dot { return crdt.Dot{Actor: a, Counter: n} }
	flag := func(x crdt.Dot) crdt.Entry { return crdt.Entry{Dot: x, Kind: crdt.KindFlag} }
	add := func(m string, x crdt.Dot, seen ...crdt.Dot) ElemDelta {
		return ElemDelta{Type: Set, Elem: []byte(m), D: crdt.NewElemDelta(crdt.Field{flag(x)}, seen)}
	}
	for _, tc := range []struct {
		name string
		a, b Delta
		want Delta
	}{
		{"disjoint elements interleave in order",
			Delta{Elems: []ElemDelta{add("a", d("x", 1)), add("c", d("x", 3))}},
			Delta{Elems: []ElemDelta{add("b", d("y", 1))}},
			Delta{Elems: []ElemDelta{add("a", d("x", 1)), add("b", d("y", 1)), add("c", d("x", 3))}}},
		{"one element: the later add saw the earlier",
			Delta{Elems: []ElemDelta{add("m", d("x", 1))}},
			Delta{Elems: []ElemDelta{add("m", d("y", 1), d("x", 1))}},
			Delta{Elems: []ElemDelta{add("m", d("y", 1), d("x", 1))}}},
		{"a clear turns the adds it covers into seen dots",
			Delta{Elems: []ElemDelta{add("m", d("x", 1)), add("n", d("x", 2))}},
			Delta{Layers: []DeltaLayer{{Type: Set, Dead: now, ClearC: crdt.ContextOf(d("x", 1))}}},
			Delta{Layers: []DeltaLayer{{Type: Set, Dead: now, ClearC: crdt.ContextOf(d("x", 1))}},
				Elems: []ElemDelta{{Type: Set, Elem: []byte("m"), D: crdt.NewElemDelta(nil, []crdt.Dot{d("x", 1)})}, add("n", d("x", 2))}}},
		{"clears join, stamps take the greater, dead the later",
			Delta{Layers: []DeltaLayer{{Type: Hash, Stamp: crdt.Stamp{TS: 5, Dot: d("x", 1)}, Dead: 3, ClearC: crdt.ContextOf(d("x", 1))}}},
			Delta{Layers: []DeltaLayer{{Type: Hash, Stamp: crdt.Stamp{TS: 4, Dot: d("y", 9)}, Dead: 7, ClearC: crdt.ContextOf(d("y", 2))}}},
			Delta{Layers: []DeltaLayer{{Type: Hash, Stamp: crdt.Stamp{TS: 5, Dot: d("x", 1)}, Dead: 7, ClearC: crdt.ContextOf(d("x", 1), d("y", 2))}}}},
		{"string layers sync", Delta{Str: stringSets()["one"]}, Delta{}, Delta{Str: stringSets()["one"]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mustJoin(t, tc.a, tc.b); !got.Equal(tc.want) {
				t.Fatalf("JoinDeltas = %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
