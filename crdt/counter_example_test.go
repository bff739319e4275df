package crdt_test

import (
	"fmt"

	"github.com/dynakv/dynakv/crdt"
)

// A counter at two nodes: SET at one concurrent with INCR at the other. Each
// coordinator runs a mutator on its view, applies the delta to its own state and
// ships it; the other applies it whenever it arrives.
func Example_counterResetConcurrentWithIncr() {
	type node struct {
		val crdt.Field   // the counter layer's Val
		ctx crdt.Context // the record's meta context
	}
	var a, b node
	// A raw string "41" meets INCR at a: the conversion (a reset to the string's
	// bytes and time) and the increment, joined into one delta.
	conv := crdt.CounterReset(a.val, a.ctx, "a", 1, []byte("41"), 1000)
	val, ctx := crdt.ApplyElemDelta(a.val, a.ctx, conv)
	incr, reply, _ := crdt.CounterIncr(val, ctx, "a", 1, 1)
	d := crdt.JoinDelta(conv, incr)
	a.val, a.ctx = crdt.ApplyElemDelta(a.val, a.ctx, d)
	b.val, b.ctx = crdt.ApplyElemDelta(b.val, b.ctx, d)
	fmt.Println("INCR at a:", reply)

	// Concurrently: SET 5 at a, INCR at b.
	set := crdt.CounterReset(a.val, a.ctx, "a", 1, []byte("5"), 2000)
	inc, reply, _ := crdt.CounterIncr(b.val, b.ctx, "b", 1, 1)
	a.val, a.ctx = crdt.ApplyElemDelta(a.val, a.ctx, set)
	b.val, b.ctx = crdt.ApplyElemDelta(b.val, b.ctx, inc)
	fmt.Println("INCR at b:", reply)

	// Each receives the other's delta: the reset removed only what a had seen.
	a.val, a.ctx = crdt.ApplyElemDelta(a.val, a.ctx, inc)
	b.val, b.ctx = crdt.ApplyElemDelta(b.val, b.ctx, set)
	fmt.Printf("GET at a: %s, at b: %s\n", crdt.CounterOf(a.val).AppendText(nil), crdt.CounterOf(b.val).AppendText(nil))

	_, _, err := crdt.CounterIncr(a.val, a.ctx, "a", 1, 1<<63-1)
	fmt.Println(err)
	// Output:
	// INCR at a: 42
	// INCR at b: 43
	// GET at a: 6, at b: 6
	// crdt: increment or decrement would overflow: 6+9223372036854775807
}

// A reset that observed an increment, concurrent with the same actor's next one:
// the reset records the totals it saw, so only what b added since counts. Then a
// DEL concurrent with another INCR at b: the counter comes back with that
// increment alone.
func Example_counterResetObservedIncr() {
	type node struct {
		val crdt.Field
		ctx crdt.Context
	}
	var a, b node
	ship := func(d crdt.ElemDelta, to ...*node) {
		for _, n := range to {
			n.val, n.ctx = crdt.ApplyElemDelta(n.val, n.ctx, d)
		}
	}
	get := func(n node) string {
		if !crdt.CounterLive(n.val) {
			return "(nil)"
		}
		return string(crdt.CounterOf(n.val).AppendText(nil))
	}

	d, _, _ := crdt.CounterIncr(b.val, b.ctx, "b", 1, 10)
	ship(d, &a, &b)
	set := crdt.CounterReset(a.val, a.ctx, "a", 1, []byte("5"), 1000) // saw b's 10
	inc, _, _ := crdt.CounterIncr(b.val, b.ctx, "b", 1, 1)            // concurrently
	ship(set, &a, &b)
	ship(inc, &a, &b)
	fmt.Printf("SET 5 with a concurrent INCR: a %s, b %s\n", get(a), get(b))

	del, removed := crdt.CounterDel(a.val, a.ctx, "a", 1)
	inc, _, _ = crdt.CounterIncr(b.val, b.ctx, "b", 1, 1)
	ship(del, &a, &b)
	fmt.Printf("DEL %v, alone: %s\n", removed, get(a))
	ship(inc, &a, &b)
	fmt.Printf("with the concurrent INCR: a %s, b %s\n", get(a), get(b))
	// Output:
	// SET 5 with a concurrent INCR: a 6, b 6
	// DEL true, alone: (nil)
	// with the concurrent INCR: a 1, b 1
}
