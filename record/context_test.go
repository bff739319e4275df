package record

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/dynakv/dynakv/crdt"
	"github.com/dynakv/dynakv/vclock"
)

func contextExamples() map[string]Context {
	d := func(a string, n uint64) crdt.Dot { return crdt.Dot{Actor: a, Counter: n} }
	clk := vclock.Clock{{Actor: "a", Counter: 3}, {Actor: "b", Counter: 1 << 50}}
	return map[string]Context{
		"empty":       {},
		"clock":       {Clock: clk},
		"meta":        {Meta: crdt.ContextOf(d("a", 1), d("a", 2), d("c", 9))},
		"clock+meta":  {Clock: clk, Meta: crdt.ContextOf(d("a", 1))},
		"elems":       {Elems: []ElemContext{{Type: Set, Ctx: crdt.ContextOf(d("x", 1<<52))}}},
		"everything":  {Clock: clk, Meta: crdt.ContextOf(d("a", 1)), Elems: []ElemContext{{Type: Set, Ctx: crdt.ContextOf(d("x", 4))}, {Type: Hash, Ctx: crdt.ContextOf(d("y", 1), d("y", 7))}}},
		"of a record": typedExamples()["conflict"].Context(),
	}
}

// TestContextRoundTrip: every context parses back from its string; a context
// without a typed part is exactly vclock's version 1 string and hash.
func TestContextRoundTrip(t *testing.T) {
	for name, c := range contextExamples() {
		t.Run(name, func(t *testing.T) {
			s := c.String()
			got, err := ParseContext(s)
			if err != nil {
				t.Fatalf("ParseContext(%q): %v", s, err)
			}
			if !got.Equal(c) || got.String() != s || got.Hash() != c.Hash() || c.Hash() == 0 {
				t.Fatalf("round trip of %+v gave %+v", c, got)
			}
			if !c.Typed() {
				if s != c.Clock.String() || c.Hash() != c.Clock.Hash() {
					t.Fatalf("string-only context %q, clock's %q", s, c.Clock.String())
				}
				return
			}
			raw, _ := base64.RawURLEncoding.DecodeString(s)
			if raw[0] != 2 {
				t.Fatalf("typed context has version %d", raw[0])
			}
			if _, err := vclock.ParseContext(s); err == nil {
				t.Fatal("vclock accepts a version 2 context")
			}
		})
	}
}

// TestParseContextV1: every version 1 context vclock makes parses as
// Context{Clock}, and vclock's refusals stay refusals (wrapping both errors).
func TestParseContextV1(t *testing.T) {
	s := stringSets()["siblings"]
	c, err := ParseContext(s.Join().String())
	if err != nil || c.Typed() || !c.Equal(Context{Clock: s.Join()}) {
		t.Fatalf("ParseContext(v1) = %+v, %v", c, err)
	}
	if got := String(s).Context(); !got.Equal(c) {
		t.Fatalf("Record.Context of a string record = %+v, want %+v", got, c)
	}
	_, err = ParseContext("AQEBYQA") // actor a, counter 0
	if !errors.Is(err, ErrBadContext) || !errors.Is(err, vclock.ErrBadContext) {
		t.Fatalf("bad v1 context: %v", err)
	}
}

func TestParseContextRefuses(t *testing.T) {
	enc := func(b ...byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	v2 := func(b ...byte) string { // version 2, empty clock, then b
		return enc(append([]byte{2, 1, 0}, b...)...)
	}
	setCtx := crdt.ContextOf(crdt.Dot{Actor: "x", Counter: 1}).AppendBinary(nil)
	emptyMeta := crdt.Context{}.AppendBinary(nil)
	withElem := func(typ byte, ctx []byte) string {
		b := append(append([]byte{}, emptyMeta...), 1, typ)
		return v2(append(b, ctx...)...)
	}
	cases := []struct{ name, s, want string }{
		{"not base64", "!!", "illegal base64"},
		{"too long", strings.Repeat("A", MaxContextLen+1), "longer than"},
		{"unknown version", enc(3, 0), "unknown version 3"},
		{"v2 untyped", v2(append(emptyMeta, 0)...), "without a typed part"},
		{"v2 truncated", enc(2, 1), "clock"},
		{"v2 bad meta", v2(9), "meta context"},
		{"v2 trailing", v2(append(append(emptyMeta, 1, byte(Set)), append(setCtx, 0)...)...), "trailing"},
		{"elem of a counter", withElem(byte(Counter), setCtx), "element context of type 1"},
		{"empty elem", withElem(byte(Set), emptyMeta), "empty element context"},
		{"elems out of order", v2(append(append(emptyMeta, 2, byte(Hash)), append(append(setCtx, byte(Set)), setCtx...)...)...), "out of order"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseContext(c.s)
			if !errors.Is(err, ErrBadContext) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParseContext(%q) = %v, want an error saying %q", c.s, err, c.want)
			}
		})
	}
}

// TestContextJoin: Join is the union of each part; a write observing several
// replicas covers each one's element context.
func TestContextJoin(t *testing.T) {
	d := func(a string, n uint64) crdt.Dot { return crdt.Dot{Actor: a, Counter: n} }
	a := Context{Clock: vclock.Clock{{Actor: "a", Counter: 2}}, Elems: []ElemContext{{Type: Hash, Ctx: crdt.ContextOf(d("x", 1))}}}
	b := Context{Clock: vclock.Clock{{Actor: "a", Counter: 1}, {Actor: "b", Counter: 1}}, Meta: crdt.ContextOf(d("m", 1)),
		Elems: []ElemContext{{Type: Set, Ctx: crdt.ContextOf(d("y", 1))}, {Type: Hash, Ctx: crdt.ContextOf(d("x", 2))}}}
	want := Context{Clock: vclock.Clock{{Actor: "a", Counter: 2}, {Actor: "b", Counter: 1}}, Meta: crdt.ContextOf(d("m", 1)),
		Elems: []ElemContext{{Type: Set, Ctx: crdt.ContextOf(d("y", 1))}, {Type: Hash, Ctx: crdt.ContextOf(d("x", 1), d("x", 2))}}}
	if got := a.Join(b); !got.Equal(want) || !b.Join(a).Equal(want) {
		t.Fatalf("Join = %+v, want %+v", got, want)
	}
	if got := (Context{}).Join(Context{}); got.Typed() || got.Clock != nil {
		t.Fatalf("empty join = %+v", got)
	}
	if !want.Elem(Hash).Equal(crdt.ContextOf(d("x", 1), d("x", 2))) || !want.Elem(List).Empty() {
		t.Fatal("Elem")
	}
}
