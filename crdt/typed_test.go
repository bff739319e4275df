package crdt

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// typedNode is one replica of one set or hash key, also an actor: its collection
// state (property_test.go's coll) and the deltas its commands issued. The command
// methods run the mutators as a coordinator would: on the node's view, with one
// Dots per command, each element's delta applied locally before the next element
// is looked at (so a member named twice counts once, as on Redis).
type typedNode struct {
	actor string
	c     coll
	ts    int64
	out   []delta // every non-empty delta this node issued, in order
}

func newTypedNode(actor string) *typedNode {
	return &typedNode{actor: actor, c: coll{elems: map[string]Field{}}}
}

func (n *typedNode) commit(elem string, d ElemDelta) {
	if d.Empty() {
		return
	}
	x := delta{elem: elem, d: d}
	n.c = apply(n.c, x)
	n.out = append(n.out, x)
}

// each runs mut on every named element, commits its delta, and counts what the
// reply counts.
func (n *typedNode) each(names []string, mut func(Field) (ElemDelta, bool)) int {
	k := 0
	for _, e := range names {
		d, ok := mut(n.c.elems[e])
		n.commit(e, d)
		k += b2i(ok)
	}
	return k
}

func (n *typedNode) sadd(members ...string) int {
	return n.each(members, NewDots(n.c.ctx, n.actor, 1).SetAdd)
}

func (n *typedNode) srem(members ...string) int { return n.each(members, SetRem) }

func (n *typedNode) sismember(m string) bool { return SetLive(n.c.elems[m]) }

// hset takes field, value pairs.
func (n *typedNode) hset(fv ...string) int {
	n.ts++
	src, k := NewDots(n.c.ctx, n.actor, 1), 0
	for i := 0; i+1 < len(fv); i += 2 {
		d, created := src.HashSet(n.c.elems[fv[i]], []byte(fv[i+1]), n.ts)
		n.commit(fv[i], d)
		k += b2i(created)
	}
	return k
}

func (n *typedNode) hsetnx(f, v string) int {
	n.ts++
	d, set := NewDots(n.c.ctx, n.actor, 1).HashSetNX(n.c.elems[f], []byte(v), n.ts)
	n.commit(f, d)
	return b2i(set)
}

func (n *typedNode) hdel(fields ...string) int {
	return n.each(fields, NewDots(n.c.ctx, n.actor, 1).HashDel)
}

func (n *typedNode) hincrby(f string, by int64) (string, error) {
	d, v, err := HashIncr(n.c.elems[f], n.c.ctx, n.actor, 1, by)
	if err != nil {
		return "", err
	}
	n.commit(f, d)
	return strconv.FormatInt(v, 10), nil
}

func (n *typedNode) hincrbyfloat(f string, by float64) (string, error) {
	d, v, err := HashIncrFloat(n.c.elems[f], n.c.ctx, n.actor, 1, by)
	if err != nil {
		return "", err
	}
	n.commit(f, d)
	return string(v), nil
}

// hget answers as HGET: the value, or "(nil)".
func (n *typedNode) hget(f string) string {
	v, ok := HashValue(n.c.elems[f])
	if !ok {
		return "(nil)"
	}
	return string(v)
}

// ship applies every delta n issued to o, as replication and hints do.
func (n *typedNode) ship(o *typedNode) {
	for _, d := range n.out {
		o.c = apply(o.c, d)
	}
}

// exchange has a and b deliver each other's deltas (what each issued so far).
func exchange(a, b *typedNode) {
	a.ship(b)
	b.ship(a)
	a.out, b.out = nil, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// do runs one command line ("SADD a b": the key is left out, a node is one key) and returns its reply as redis-cli prints it (integers bare, bulk strings
// bare, nil as "(nil)").
func (n *typedNode) do(tb testing.TB, line string) (string, error) {
	tb.Helper()
	args := strings.Fields(line)
	for i := range args { // "␠" is a space inside an argument, "␀" a NUL byte
		args[i] = strings.NewReplacer("␠", " ", "␀", "\x00").Replace(args[i])
	}
	itoa := func(v int) (string, error) { return strconv.Itoa(v), nil }
	switch strings.ToUpper(args[0]) {
	case "SADD":
		return itoa(n.sadd(args[1:]...))
	case "SREM":
		return itoa(n.srem(args[1:]...))
	case "SISMEMBER":
		return itoa(b2i(n.sismember(args[1])))
	case "HSET":
		return itoa(n.hset(args[1:]...))
	case "HSETNX":
		return itoa(n.hsetnx(args[1], args[2]))
	case "HDEL":
		return itoa(n.hdel(args[1:]...))
	case "HEXISTS":
		return itoa(b2i(HashLive(n.c.elems[args[1]])))
	case "HGET":
		return n.hget(args[1]), nil
	case "HINCRBY":
		by, err := strconv.ParseInt(args[2], 10, 64)
		if err != nil {
			tb.Fatalf("%s: %v", line, err)
		}
		return n.hincrby(args[1], by)
	case "HINCRBYFLOAT":
		by, err := strconv.ParseFloat(args[2], 64)
		if err != nil {
			tb.Fatalf("%s: %v", line, err)
		}
		return n.hincrbyfloat(args[1], by)
	}
	tb.Fatalf("unknown command %q", line)
	return "", nil
}

// step is one command of a script and its expected reply, or the sentinel error
// it wraps.
type step struct {
	cmd  string
	want string
	err  error
}

// runScript plays steps on n and fails on the first wrong reply, checking the
// state's invariants after each step.
func runScript(t *testing.T, name string, n *typedNode, steps []step) {
	t.Helper()
	for i, s := range steps {
		got, err := n.do(t, s.cmd)
		if got != s.want || !errors.Is(err, s.err) || (err == nil) != (s.err == nil) {
			t.Errorf("%s: step %d %q = %q, %v; want %q, %v", name, i, s.cmd, got, err, s.want, s.err)
			return
		}
		checkContext(t, n.c.ctx)
		for _, f := range n.c.elems {
			checkField(t, f, n.c.ctx)
		}
	}
}
