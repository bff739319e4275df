package crdt

// Dots hands out the fresh dots of one command at one actor: consecutive counters
// from Context.Next(actor, floor) upwards. A command that writes several elements
// (SADD of k members, HSET of k fields) takes one dot per element from one Dots, so
// no two of its elements share a dot; calling a mutator that takes (ctx, actor,
// floor) k times with the same ctx would hand the same dot to all k. Every dot is
// above the actor's highest dot in ctx, so each is fresh in the collection the
// context belongs to (the fresh-counter contract, see Context.Next). The caller
// applies the command's deltas (joins their contexts) before the next command
// builds its Dots. A Dots is not safe for concurrent use; one command owns it.
type Dots struct {
	actor string
	next  uint64
}

// NewDots returns the dot source of one command by actor on a collection whose
// element context is ctx; floor is the node's fresh-counter floor.
func NewDots(ctx Context, actor string, floor uint64) *Dots {
	return &Dots{actor: actor, next: ctx.Next(actor, floor).Counter}
}

// Next returns the command's next fresh dot.
func (s *Dots) Next() Dot {
	d := Dot{Actor: s.actor, Counter: s.next}
	s.next++
	return d
}

// Sets are ORSWOTs (3.4 of the issue 20 design): a member is an element whose
// Field holds flag entries, normally one. It is in the set while it holds one.

// SetLive reports whether a set member's field holds a flag entry: SISMEMBER.
func SetLive(elem Field) bool {
	for _, e := range elem {
		if e.Kind == KindFlag {
			return true
		}
	}
	return false
}

// SetAdd is SADD of one member, whose field in the coordinator's view is elem:
// one fresh flag dot that supersedes every dot elem holds. added reports that the
// member was not live before, which SADD counts. A member already live is written
// again all the same: its fresh dot is what makes the add win against a
// concurrent SREM, which removes only the dots it observed.
func (s *Dots) SetAdd(elem Field) (d ElemDelta, added bool) {
	return NewElemDelta(Field{{Dot: s.Next(), Kind: KindFlag}}, elem.Dots()), !SetLive(elem)
}

// SetAdd is SADD of one member by actor on a set with element context ctx, as
// (*Dots).SetAdd with the dot ctx.Next(actor, floor). A command adding several
// members takes their dots from one NewDots instead.
func SetAdd(elem Field, ctx Context, actor string, floor uint64) (d ElemDelta, added bool) {
	return NewDots(ctx, actor, floor).SetAdd(elem)
}

// SetRem is SREM (and SPOP's removal) of one member whose field in the
// coordinator's view is elem: it removes exactly the dots elem holds, so a
// concurrent add's fresh dot survives. removed reports that the member was live,
// which SREM counts. A member absent from the view gives the empty delta, which
// the caller need not ship.
func SetRem(elem Field) (d ElemDelta, removed bool) {
	return removeObserved(elem), SetLive(elem)
}

// removeObserved is the delta that removes every dot of elem and adds nothing.
func removeObserved(elem Field) ElemDelta {
	return NewElemDelta(nil, elem.Dots())
}
