package crdt

import "slices"

// ElemDelta is the change one operation makes to one element: Dots are the entries
// it adds, Seen the dots of the element it superseded or removed (disjoint from
// Dots). Its context is Dots ∪ Seen, so an element delta carries exactly the
// context its effects cover, and nothing else: it is safe to apply on its own, in
// any order, any number of times.
type ElemDelta struct {
	Dots Field
	Seen []Dot // sorted, unique, none of them in Dots
}

// NewElemDelta returns the delta that adds dots and removes the observed dots seen
// (in any order, duplicates allowed; dots also in dots are left out of Seen).
func NewElemDelta(dots Field, seen []Dot) ElemDelta {
	s := slices.Clone(seen)
	slices.SortFunc(s, Dot.Compare)
	s = slices.Compact(s)
	s = slices.DeleteFunc(s, func(d Dot) bool { _, ok := dots.Get(d); return ok || d.Counter == 0 })
	if len(s) == 0 {
		s = nil
	}
	return ElemDelta{Dots: dots, Seen: s}
}

// Context returns the delta's context: its own dots and the dots it saw.
func (d ElemDelta) Context() Context { return ContextOf(append(d.Dots.Dots(), d.Seen...)...) }

// Empty reports whether d adds nothing and removes nothing.
func (d ElemDelta) Empty() bool { return len(d.Dots) == 0 && len(d.Seen) == 0 }

// Equal reports whether d and o are identical.
func (d ElemDelta) Equal(o ElemDelta) bool {
	return d.Dots.Equal(o.Dots) && slices.Equal(d.Seen, o.Seen)
}

// MergeElem joins two states of one element: l stored under context lc and r under
// rc. It keeps the entries both hold, the entries of one side the other side has
// not seen, and drops the entries one side saw and no longer holds:
// (L ∩ R) ∪ (L \ Cr) ∪ (R \ Cl). A dot held on both sides with different payloads
// keeps the greater by a total order. The caller then adds r's dots to lc (they are
// the element's own, so that is safe); it must never join rc whole unless every
// element rc covers was merged the same way (the package doc's safety rule).
func MergeElem(l Field, lc Context, r Field, rc Context) Field {
	if l.Equal(r) {
		return l
	}
	out := make(Field, 0, len(l)+len(r))
	i, j := 0, 0
	for i < len(l) || j < len(r) {
		switch {
		case j == len(r) || (i < len(l) && l[i].Dot.Compare(r[j].Dot) < 0):
			if !rc.Covers(l[i].Dot) {
				out = append(out, l[i])
			}
			i++
		case i == len(l) || r[j].Dot.Compare(l[i].Dot) < 0:
			if !lc.Covers(r[j].Dot) {
				out = append(out, r[j])
			}
			j++
		default:
			e := l[i]
			if comparePayload(r[j], e) > 0 {
				e = r[j]
			}
			out = append(out, e)
			i++
			j++
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// ApplyElemDelta applies d to an element held as l under context lc and returns
// the new element and context: L' = (L \ Seen) ∪ (Dots \ Cl), Cl' = Cl ∪ Dots ∪
// Seen. It equals joining the delta as a state (MergeElem of l under lc with Dots
// under d.Context(), and the contexts joined), without building that context for
// the lookups. lc must cover l's dots.
func ApplyElemDelta(l Field, lc Context, d ElemDelta) (Field, Context) {
	out := make(Field, 0, len(l)+len(d.Dots))
	seen := func(x Dot) bool {
		_, ok := slices.BinarySearchFunc(d.Seen, x, Dot.Compare)
		return ok
	}
	i, j := 0, 0
	for i < len(l) || j < len(d.Dots) {
		switch {
		case j == len(d.Dots) || (i < len(l) && l[i].Dot.Compare(d.Dots[j].Dot) < 0):
			if !seen(l[i].Dot) {
				out = append(out, l[i])
			}
			i++
		case i == len(l) || d.Dots[j].Dot.Compare(l[i].Dot) < 0:
			if !lc.Covers(d.Dots[j].Dot) {
				out = append(out, d.Dots[j])
			}
			j++
		default:
			e := l[i]
			if comparePayload(d.Dots[j], e) > 0 {
				e = d.Dots[j]
			}
			out = append(out, e)
			i++
			j++
		}
	}
	if len(out) == 0 {
		out = nil
	}
	return out, lc.Join(d.Context())
}

// JoinDelta joins two deltas of the same element into one whose effect equals
// applying both, in either order: its entries are the two deltas' entries merged
// as states under their own contexts, its Seen every other dot either context
// holds. Hints accumulate the deltas of one element this way.
func JoinDelta(a, b ElemDelta) ElemDelta {
	dots := MergeElem(a.Dots, a.Context(), b.Dots, b.Context())
	all := slices.Concat(a.Dots.Dots(), a.Seen, b.Dots.Dots(), b.Seen)
	slices.SortFunc(all, Dot.Compare)
	all = slices.Compact(all)
	all = slices.DeleteFunc(all, func(d Dot) bool { _, ok := dots.Get(d); return ok })
	if len(all) == 0 {
		all = nil
	}
	return ElemDelta{Dots: dots, Seen: all}
}
