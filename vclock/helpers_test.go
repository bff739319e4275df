package vclock

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// This file holds the helpers the other tests share: a tiny text notation for sets
// and clocks, so tables read like the dvvset paper, and the canonical equality the
// algebraic laws are stated in.
//
// Set notation: entries separated by spaces, then optionally "|" and the anonymous
// values separated by commas:
//
//	"a:3[v3,v2] b:1@7[] | w1,w2"
//
// is {(a, 3, [v3, v2], active 0), (b, 1, [], active 7)} plus anonymous w1 and w2.
// A value token is its Data; a leading "~" marks a tombstone. Clock notation is
// "a:3 b:1".

func val(s string) Value { return Value{Data: []byte(s)} }

func mustParseSet(tb testing.TB, s string) Set {
	tb.Helper()
	var out Set
	ents, anon, _ := strings.Cut(s, "|")
	for f := range strings.FieldsSeq(ents) {
		actor, rest, ok := strings.Cut(f, ":")
		open := strings.IndexByte(rest, '[')
		if !ok || open < 0 || !strings.HasSuffix(rest, "]") {
			tb.Fatalf("bad entry %q in %q", f, s)
		}
		num, active, hasActive := strings.Cut(rest[:open], "@")
		e := Entry{Actor: actor, Counter: mustUint(tb, num)}
		if hasActive {
			e.Active = int64(mustUint(tb, active))
		}
		e.Values = parseValues(rest[open+1 : len(rest)-1])
		out.Entries = append(out.Entries, e)
	}
	out.Anon = parseValues(anon)
	return out
}

func parseValues(s string) []Value {
	var vs []Value
	for t := range strings.SplitSeq(s, ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		tomb := strings.HasPrefix(t, "~")
		v := val(strings.TrimPrefix(t, "~"))
		v.Tombstone = tomb
		vs = append(vs, v)
	}
	return vs
}

func mustParseClock(tb testing.TB, s string) Clock {
	tb.Helper()
	var c Clock
	for f := range strings.FieldsSeq(s) {
		actor, num, ok := strings.Cut(f, ":")
		if !ok {
			tb.Fatalf("bad dot %q in %q", f, s)
		}
		c = append(c, Dot{actor, mustUint(tb, num)})
	}
	return c
}

func mustUint(tb testing.TB, s string) uint64 {
	tb.Helper()
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		tb.Fatalf("bad number %q: %v", s, err)
	}
	return n
}

// fmtSet prints s in the notation above (values as their Data, or as Go-quoted bytes
// when they are not printable, with metadata when present).
func fmtSet(s Set) string {
	var b strings.Builder
	for i, e := range s.Entries {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%d", e.Actor, e.Counter)
		if e.Active != 0 {
			fmt.Fprintf(&b, "@%d", e.Active)
		}
		b.WriteByte('[')
		b.WriteString(fmtValues(e.Values))
		b.WriteByte(']')
	}
	if len(s.Anon) > 0 {
		b.WriteString(" | ")
		b.WriteString(fmtValues(s.Anon))
	}
	return b.String()
}

func fmtValues(vs []Value) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = fmtValue(v)
	}
	return strings.Join(parts, ",")
}

func fmtValue(v Value) string {
	s := string(v.Data)
	if strings.ContainsAny(s, " ,[]|~@:") || strconv.Quote(s) != `"`+s+`"` {
		s = strconv.Quote(s)
	}
	if v.Tombstone {
		s = "~" + s
	}
	if v.Timestamp != 0 || v.Expiry != 0 || v.Flags != 0 {
		s += fmt.Sprintf("{t%d e%d f%d}", v.Timestamp, v.Expiry, v.Flags)
	}
	return s
}

func fmtClock(c Clock) string {
	parts := make([]string, len(c))
	for i, d := range c {
		parts[i] = fmt.Sprintf("%s:%d", d.Actor, d.Counter)
	}
	return strings.Join(parts, " ")
}

// equalSets is the canonical equality the laws are stated in: the same entries
// (actor, counter, activity) holding the same values in the same order, and the same
// anonymous values compared as a set (Sync unions them without regard to order or
// multiplicity).
func equalSets(a, b Set) bool {
	if !slices.EqualFunc(a.Entries, b.Entries, equalEntries) {
		return false
	}
	in := func(vs []Value) func(Value) bool {
		return func(v Value) bool { return slices.ContainsFunc(vs, v.Equal) }
	}
	for _, v := range a.Anon {
		if !in(b.Anon)(v) {
			return false
		}
	}
	for _, v := range b.Anon {
		if !in(a.Anon)(v) {
			return false
		}
	}
	return true
}

// identicalSets is equalSets with the anonymous values compared in order: what a
// codec round trip must give back.
func identicalSets(a, b Set) bool {
	return slices.EqualFunc(a.Entries, b.Entries, equalEntries) &&
		slices.EqualFunc(a.Anon, b.Anon, Value.Equal)
}

func equalEntries(x, y Entry) bool {
	return x.Actor == y.Actor && x.Counter == y.Counter && x.Active == y.Active &&
		slices.EqualFunc(x.Values, y.Values, Value.Equal)
}

// checkInvariants reports how s breaks the invariants the package doc promises, or "".
func checkInvariants(s Set) string {
	for i, e := range s.Entries {
		switch {
		case e.Actor == "":
			return fmt.Sprintf("entry %d has an empty actor", i)
		case e.Counter == 0:
			return fmt.Sprintf("entry %s has counter 0", e.Actor)
		case uint64(len(e.Values)) > e.Counter:
			return fmt.Sprintf("entry %s holds %d values for counter %d", e.Actor, len(e.Values), e.Counter)
		case i > 0 && s.Entries[i-1].Actor >= e.Actor:
			return fmt.Sprintf("entries %s, %s out of order or duplicated", s.Entries[i-1].Actor, e.Actor)
		}
	}
	return ""
}

// cloneSet deep-copies s, so tests can check that functions leave their arguments
// alone.
func cloneSet(s Set) Set {
	out := Set{Anon: cloneValues(s.Anon)}
	if s.Entries != nil {
		out.Entries = make([]Entry, len(s.Entries))
		for i, e := range s.Entries {
			e.Values = cloneValues(e.Values)
			out.Entries[i] = e
		}
	}
	return out
}

func cloneValues(vs []Value) []Value {
	if vs == nil {
		return nil
	}
	out := make([]Value, len(vs))
	for i, v := range vs {
		v.Data = slices.Clone(v.Data)
		out[i] = v
	}
	return out
}

// sibData returns the Data of every sibling of s, sorted, for order-free checks.
func sibData(s Set) []string {
	var out []string
	for _, sib := range s.Siblings() {
		out = append(out, string(sib.Data))
	}
	slices.Sort(out)
	return out
}
