package crdt_test

import (
	"fmt"

	"github.com/dynakv/dynakv/crdt"
)

// A set at two nodes, as the coordinator would drive it: a command runs the
// mutators on its view with one Dots, applies each member's delta locally and
// ships the (member, delta) pairs; the other node applies them when they arrive.
func Example_setAddWins() {
	type node struct {
		elems map[string]crdt.Field
		ctx   crdt.Context // the collection's element context
	}
	a := node{elems: map[string]crdt.Field{}}
	b := node{elems: map[string]crdt.Field{}}
	type msg struct {
		member string
		d      crdt.ElemDelta
	}
	apply := func(n *node, ms []msg) {
		for _, m := range ms {
			n.elems[m.member], n.ctx = crdt.ApplyElemDelta(n.elems[m.member], n.ctx, m.d)
		}
	}
	sadd := func(n *node, actor string, members ...string) (int, []msg) {
		src := crdt.NewDots(n.ctx, actor, 1) // one dot source per command
		var out []msg
		added := 0
		for _, m := range members {
			d, isNew := src.SetAdd(n.elems[m])
			if isNew {
				added++
			}
			out = append(out, msg{m, d})
		}
		apply(n, out)
		return added, out
	}

	k, sent := sadd(&a, "a", "x", "y")
	apply(&b, sent)
	fmt.Println("SADD x y at a:", k)

	// Concurrently: SREM x at b, SADD x again at a.
	d, removed := crdt.SetRem(b.elems["x"])
	rem := []msg{{"x", d}}
	apply(&b, rem)
	k, sent = sadd(&a, "a", "x")
	fmt.Println("SREM x at b:", removed, "SADD x at a:", k)

	apply(&a, rem)
	apply(&b, sent)
	fmt.Println("SISMEMBER x at a:", crdt.SetLive(a.elems["x"]), "at b:", crdt.SetLive(b.elems["x"]))
	// Output:
	// SADD x y at a: 2
	// SREM x at b: true SADD x at a: 0
	// SISMEMBER x at a: true at b: true
}
