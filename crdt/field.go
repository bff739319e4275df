package crdt

import (
	"bytes"
	"cmp"
	"math"
	"slices"
)

// Kind says what an Entry's payload means.
type Kind uint8

// Entry kinds. The zero Kind is invalid.
const (
	KindFlag Kind = 1 + iota // presence only: a set member's add
	KindReg                  // a register write: Data (or I, for a TTL) at TS
	KindIncr                 // an increment: I (integer sum) and F (float sum)
	KindHLL                  // HyperLogLog registers in Data
	maxKind  = KindHLL
)

// Entry is one event of a Field: the dot that made it and its payload. Which payload
// fields mean something depends on Kind; the others are zero.
type Entry struct {
	Dot  Dot
	Kind Kind
	Data []byte
	TS   int64 // the coordinator's accepted time, unix ms (registers order by it)
	I    int64
	F    float64
	// IsFloat marks an increment that INCRBYFLOAT touched: the counter renders as
	// a float even while F is zero (INCRBYFLOAT 0.5 then -0.5). Only KindIncr
	// entries carry it; an entry with a non-zero F counts as float without it.
	IsFloat bool
	// Base is, on an increment entry, the counter of the first dot of the actor's
	// chain: the run of its entries in this field each of which superseded the one
	// before, so I and F are the actor's totals since Base. An increment whose
	// view holds no entry of its actor (a clear removed it) starts a new chain
	// at its own dot. 0: unknown (written before chains existed), read as a chain
	// from the start.
	Base uint64
	// Obs is, on a counter's register entry (SET, HSET, and a removal), the
	// increment totals the write observed: per actor, its entry with the greatest
	// dot in the writer's view, sorted by actor. Written before: none.
	Obs []Total
	// Del marks a counter's register entry as a removal marker (DEL, HDEL): it
	// holds no value, only what it observed (Obs).
	Del bool
}

// Total is one actor's increment totals as a counter register observed them: the
// dot of the actor's increment entry and that entry's I, F and IsFloat.
type Total struct {
	Dot     Dot
	I       int64
	F       float64
	IsFloat bool
}

// equal reports whether t and o are identical (F compared bit for bit).
func (t Total) equal(o Total) bool { return compareTotal(t, o) == 0 }

// compareTotal is a total order on observed totals.
func compareTotal(a, b Total) int {
	return cmp.Or(
		a.Dot.Compare(b.Dot),
		cmp.Compare(a.I, b.I),
		cmp.Compare(math.Float64bits(a.F), math.Float64bits(b.F)),
		cmpBool(a.IsFloat, b.IsFloat),
	)
}

// Stamp returns the (TS, Dot) order key of e, by which registers pick a winner.
func (e Entry) Stamp() Stamp { return Stamp{TS: e.TS, Dot: e.Dot} }

// Equal reports whether e and o are identical (F compared bit for bit).
func (e Entry) Equal(o Entry) bool {
	return e.Dot == o.Dot && e.Kind == o.Kind && e.TS == o.TS && e.I == o.I &&
		math.Float64bits(e.F) == math.Float64bits(o.F) && e.IsFloat == o.IsFloat &&
		e.Base == o.Base && e.Del == o.Del && slices.EqualFunc(e.Obs, o.Obs, Total.equal) &&
		bytes.Equal(e.Data, o.Data)
}

// comparePayload is a total order on entries' payloads. When one dot is held twice
// with different payloads (a dot reused after a loss, which the fresh-counter rule
// makes a bug, not a case), every merge keeps the greater one, as vclock's Sync
// does, so replicas still converge.
func comparePayload(a, b Entry) int {
	return cmp.Or(
		cmp.Compare(a.Kind, b.Kind),
		cmp.Compare(a.TS, b.TS),
		cmp.Compare(a.I, b.I),
		cmp.Compare(math.Float64bits(a.F), math.Float64bits(b.F)),
		cmpBool(a.IsFloat, b.IsFloat),
		bytes.Compare(a.Data, b.Data),
		cmp.Compare(a.Base, b.Base),
		cmpBool(a.Del, b.Del),
		slices.CompareFunc(a.Obs, b.Obs, compareTotal),
	)
}

// cmpBool orders false before true.
func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// Field is a dot-indexed map: the live events of one element (or of one meta
// register such as a layer's value or the TTL), sorted by Dot with each dot at
// most once. Its dots are always covered by the context it is stored under.
type Field []Entry

// Dots returns the dots of f, sorted.
func (f Field) Dots() []Dot {
	if len(f) == 0 {
		return nil
	}
	ds := make([]Dot, len(f))
	for i, e := range f {
		ds[i] = e.Dot
	}
	return ds
}

// Context returns the context holding exactly f's dots.
func (f Field) Context() Context { return ContextOf(f.Dots()...) }

// Get returns the entry of f with dot d.
func (f Field) Get(d Dot) (Entry, bool) {
	i, ok := slices.BinarySearchFunc(f, d, func(e Entry, d Dot) int { return e.Dot.Compare(d) })
	if !ok {
		return Entry{}, false
	}
	return f[i], true
}

// Remove returns f without the entries whose dots c covers: what a clear of c
// leaves of it.
func (f Field) Remove(c Context) Field {
	if c.Empty() || len(f) == 0 {
		return f
	}
	var out Field
	for i, e := range f {
		if c.Covers(e.Dot) {
			if out == nil {
				out = make(Field, 0, len(f)-1)
				out = append(out, f[:i]...)
			}
			continue
		}
		if out != nil {
			out = append(out, e)
		}
	}
	if out == nil {
		return f
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Equal reports whether f and o hold the same entries.
func (f Field) Equal(o Field) bool { return slices.EqualFunc(f, o, Entry.Equal) }

// Winner returns the entry of f of kind k with the greatest Stamp: the value of an
// LWW register.
func (f Field) Winner(k Kind) (Entry, bool) {
	var w Entry
	ok := false
	for _, e := range f {
		if e.Kind == k && (!ok || e.Stamp().Compare(w.Stamp()) > 0) {
			w, ok = e, true
		}
	}
	return w, ok
}

// Stamp orders events as plain GET orders siblings (vclock.Winner): by timestamp,
// then by dot. A layer's stamp is the greatest stamp of the events applied to it,
// so its join is the maximum.
type Stamp struct {
	TS  int64
	Dot Dot
}

// Compare orders stamps by TS, then Dot.
func (s Stamp) Compare(o Stamp) int { return cmp.Or(cmp.Compare(s.TS, o.TS), s.Dot.Compare(o.Dot)) }

// Join returns the greater of s and o.
func (s Stamp) Join(o Stamp) Stamp {
	if o.Compare(s) > 0 {
		return o
	}
	return s
}

// TTL register. A typed key's TTL is a Field of KindReg entries whose I is an
// absolute expiry in unix ms, 0 meaning PERSIST. EXPIRE removes the entries it
// observed and adds one; PERSIST adds a 0 entry. Concurrent EXPIREs therefore
// leave several entries, and the effective TTL keeps the longest, while any
// concurrent PERSIST beats every TTL.

// TTLEntry returns the TTL register entry for an EXPIRE (expiry > 0, unix ms) or a
// PERSIST (expiry 0) made with dot d at time ts.
func TTLEntry(d Dot, expiry, ts int64) Entry {
	return Entry{Dot: d, Kind: KindReg, TS: ts, I: max(expiry, 0)}
}

// EffectiveTTL resolves a TTL register: no expiry (ok false) when it has no entry
// or any entry is a PERSIST, else the greatest expiry.
func EffectiveTTL(ttl Field) (expiry int64, ok bool) {
	for _, e := range ttl {
		if e.I <= 0 {
			return 0, false
		}
		expiry = max(expiry, e.I)
	}
	return expiry, expiry > 0
}

// Expired reports whether a TTL register's effective expiry is at or before now.
func Expired(ttl Field, now int64) bool {
	exp, ok := EffectiveTTL(ttl)
	return ok && exp <= now
}
