package record_test

import (
	"fmt"

	"github.com/dynakv/dynakv/crdt"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/vclock"
)

// A type conflict (1.5): SET k s through node a at t1 and, concurrently, SADD k m
// through node b at t2 > t1. After the replicas merged, the set wins everywhere
// and DGET lists both layers; the next SET, having observed both, ends the set.
func Example_typeConflict() {
	const t1, t2 = 1000, 2000
	a, _ := record.UpdateString(record.Record{}, record.StringWrite{
		Actor: "a", Value: vclock.Value{Data: []byte("s"), Timestamp: t1}, Now: t1, Floor: 1,
	})
	// b's record after its SADD, as storage holds it: the set layer's header
	// (element context and derived Len) and, apart, the element key of m.
	m := crdt.Dot{Actor: "b", Counter: 1}
	b := record.Record{Layers: []record.Layer{{
		Type: record.Set, Stamp: crdt.Stamp{TS: t2, Dot: m},
		Coll: &record.Coll{Ctx: crdt.ContextOf(m), Len: 1, Bytes: 40},
	}}}
	merged, _ := record.MergeSafe(a, b) // at a; the element exchange brings m and b's context
	merged.Layers[0].Coll = b.Layers[0].Coll
	for _, l := range record.Resolve(merged, t2).Live {
		fmt.Println(l.Type, l.Type.RedisType())
	}
	next, clears := record.UpdateString(merged, record.StringWrite{
		Obs: merged.Context(), Actor: "a", Value: vclock.Value{Data: []byte("x"), Timestamp: t2 + 1}, Now: t2 + 1, Floor: 1,
	})
	fmt.Println(record.Resolve(next, t2+1).Live[0].Type, len(record.Resolve(next, t2+1).Live), clears[0].Type, clears[0].Full)
	// Output:
	// set set
	// string string
	// string 1 set true
}
