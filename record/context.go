package record

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"

	"github.com/dynakv/dynakv/crdt"
	"github.com/dynakv/dynakv/vclock"
)

// Context is the causal context handed to clients (DGET, DPUT, DDEL, the
// memcached cas unique) and what a write observed (UpdateString, Supersede): the
// string layer's version vector, the meta context and each collection's element
// context (1.3). A string-only key's context is its Clock alone, version 1,
// vclock's encoding unchanged; a context with a typed part is version 2.
type Context struct {
	Clock vclock.Clock // the string layer's version vector (Set.Join)
	Meta  crdt.Context // the meta context (Record.Ctx): TTL and Val dots
	Elems []ElemContext
}

// ElemContext is one collection's element context in a Context.
type ElemContext struct {
	Type Type // a collection type
	Ctx  crdt.Context
}

// Context returns everything r has seen: what a write that read r observed.
// A coordinator that read several replicas joins their contexts (Context.Join):
// a clear then covers the element context of every replica it read (1.6).
func (r Record) Context() Context {
	c := Context{Clock: r.Str.Join(), Meta: r.Ctx}
	for _, l := range r.Layers {
		if l.Coll != nil && !l.Coll.Ctx.Empty() {
			c.Elems = append(c.Elems, ElemContext{Type: l.Type, Ctx: l.Coll.Ctx})
		}
	}
	return c
}

// Typed reports whether c has a typed part (a meta or element context), and so
// encodes as version 2.
func (c Context) Typed() bool { return !c.Meta.Empty() || len(c.Elems) > 0 }

// Elem returns the element context c holds for the collection type t (empty when
// none).
func (c Context) Elem(t Type) crdt.Context {
	for _, e := range c.Elems {
		if e.Type == t {
			return e.Ctx
		}
	}
	return crdt.Context{}
}

// Join returns the union of c and o: the pointwise maximum of the clocks, the
// union of the meta contexts and of each type's element contexts.
func (c Context) Join(o Context) Context {
	out := Context{Clock: c.Clock.Merge(o.Clock), Meta: c.Meta.Join(o.Meta)}
	if len(out.Clock) == 0 {
		out.Clock = nil
	}
	i, j := 0, 0
	for i < len(c.Elems) || j < len(o.Elems) {
		switch {
		case j == len(o.Elems) || (i < len(c.Elems) && c.Elems[i].Type < o.Elems[j].Type):
			out.Elems = append(out.Elems, c.Elems[i])
			i++
		case i == len(c.Elems) || o.Elems[j].Type < c.Elems[i].Type:
			out.Elems = append(out.Elems, o.Elems[j])
			j++
		default:
			out.Elems = append(out.Elems, ElemContext{Type: c.Elems[i].Type, Ctx: c.Elems[i].Ctx.Join(o.Elems[j].Ctx)})
			i++
			j++
		}
	}
	return out
}

// Equal reports whether c and o are the same context.
func (c Context) Equal(o Context) bool {
	return slices.Equal(c.Clock, o.Clock) && c.Meta.Equal(o.Meta) &&
		slices.EqualFunc(c.Elems, o.Elems, func(a, b ElemContext) bool { return a.Type == b.Type && a.Ctx.Equal(b.Ctx) })
}

// contextV2 is the first byte of a version 2 context; version 1 is vclock's.
const contextV2 = 2

// MaxContextLen bounds the encoded (base64) contexts ParseContext accepts. A
// version 1 context is also held to vclock.MaxContextLen.
const MaxContextLen = 64 << 10

// ErrBadContext is what ParseContext wraps when it refuses a context; a version 1
// context's errors also wrap vclock.ErrBadContext.
var ErrBadContext = errors.New("record: invalid context")

// AppendBinary appends c's binary form: the Clock's (vclock, version 1) when c
// has no typed part, else
//
//	2 | Clock (vclock's binary, its own version byte) | Meta (crdt's) |
//	uvarint n | n × (type byte | element context (crdt's))
//
// with the element contexts in type order, each of a collection and not empty.
func (c Context) AppendBinary(b []byte) []byte {
	if !c.Typed() {
		return c.Clock.AppendBinary(b)
	}
	b = append(b, contextV2)
	b = c.Clock.AppendBinary(b)
	b = c.Meta.AppendBinary(b)
	b = binary.AppendUvarint(b, uint64(len(c.Elems)))
	for _, e := range c.Elems {
		b = append(b, byte(e.Type))
		b = e.Ctx.AppendBinary(b)
	}
	return b
}

// String encodes c as the opaque context handed to clients: base64url (no
// padding) of its binary form. A context without a typed part is exactly
// c.Clock.String() ("" for the empty one), so string keys' contexts do not change.
func (c Context) String() string {
	if !c.Typed() {
		return c.Clock.String()
	}
	return base64.RawURLEncoding.EncodeToString(c.AppendBinary(nil))
}

// Hash returns a 64-bit hash of c, never 0: the memcached cas unique. Without a
// typed part it is c.Clock.Hash(), as today; with one, FNV-1a of the binary form.
func (c Context) Hash() uint64 {
	if !c.Typed() {
		return c.Clock.Hash()
	}
	h := fnv.New64a()
	h.Write(c.AppendBinary(nil))
	if s := h.Sum64(); s != 0 {
		return s
	}
	return 1
}

// ParseContext decodes a context made by Context.String or by vclock's
// Clock.String (version 1, which gives Context{Clock}). "" is the empty context.
// It refuses, wrapping ErrBadContext, anything else: unknown versions, trailing
// bytes, a version 2 context without a typed part (it has a version 1 form),
// element contexts out of type order, repeated, empty or of a type that is not a
// collection. It never panics, whatever the input.
func ParseContext(s string) (Context, error) {
	if s == "" {
		return Context{}, nil
	}
	if len(s) > MaxContextLen {
		return Context{}, fmt.Errorf("%w: longer than %d bytes", ErrBadContext, MaxContextLen)
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Context{}, fmt.Errorf("%w: %w", ErrBadContext, err)
	}
	if len(raw) == 0 || raw[0] != contextV2 {
		clk, err := vclock.ParseContext(s)
		if err != nil {
			return Context{}, fmt.Errorf("%w: %w", ErrBadContext, err)
		}
		return Context{Clock: clk}, nil
	}
	c, err := decodeContextV2(raw[1:])
	if err != nil {
		return Context{}, fmt.Errorf("%w: %w", ErrBadContext, err)
	}
	return c, nil
}

func decodeContextV2(b []byte) (Context, error) {
	var c Context
	var err error
	if c.Clock, b, err = vclock.DecodeClock(b); err != nil {
		return Context{}, fmt.Errorf("clock: %w", err)
	}
	if c.Meta, b, err = crdt.DecodeContext(b); err != nil {
		return Context{}, fmt.Errorf("meta context: %w", err)
	}
	r := reader{b: b}
	n := r.count(3) // a type byte and at least two bytes of context
	for i := 0; i < n && r.bad == ""; i++ {
		t := Type(r.byte())
		ctx := r.context("element context")
		switch {
		case r.bad != "":
		case !t.Collection():
			r.fail(fmt.Sprintf("element context of type %d", t))
		case i > 0 && t <= c.Elems[i-1].Type:
			r.fail("element contexts out of order")
		case ctx.Empty():
			r.fail("empty element context")
		}
		c.Elems = append(c.Elems, ElemContext{Type: t, Ctx: ctx})
	}
	if r.bad == "" && len(r.b) != 0 {
		r.fail(fmt.Sprintf("%d trailing bytes", len(r.b)))
	}
	if r.bad == "" && !c.Typed() {
		r.fail("version 2 without a typed part")
	}
	if r.bad != "" {
		if r.err != nil {
			return Context{}, fmt.Errorf("%s: %w", r.bad, r.err)
		}
		return Context{}, errors.New(r.bad)
	}
	return c, nil
}
