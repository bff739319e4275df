package vclock

import (
	"bytes"
	"cmp"
	"iter"
	"slices"
)

// MaxEntries is the default bound on the entries a Set keeps before Prune forgets the
// least recently active ones that hold no value (the Dynamo paper uses 10).
const MaxEntries = 10

// Value is one sibling: the bytes a client wrote plus the metadata every replica
// needs to reach the same verdict about it.
type Value struct {
	Data []byte
	// Flags is the opaque memcached client flags word (0 for Redis writes).
	Flags uint32
	// Timestamp is the coordinator's wall clock at write time, unix milliseconds. It
	// only orders siblings for plain GET; causality never depends on it.
	Timestamp int64
	// Expiry is the absolute expiry time in unix milliseconds; 0 means none.
	Expiry int64
	// Tombstone marks a delete.
	Tombstone bool
}

// Expired reports whether v has an expiry at or before now (unix ms).
func (v Value) Expired(now int64) bool { return v.Expiry != 0 && v.Expiry <= now }

// Live reports whether v is visible at now (unix ms): not a tombstone and not
// expired. It is the one liveness rule: plain reads apply it to a record's winner
// (Winner), DGET to every sibling.
func (v Value) Live(now int64) bool { return !v.Tombstone && !v.Expired(now) }

// Tomb returns the tombstone an expired value becomes when a reaper collects it:
// the same Timestamp (plain GET orders siblings by it, so every replica keeps
// reaching the same verdict) and Expiry (when it died), no data, no flags. It is
// a function of v alone, so replicas that reap the same value make byte-identical
// tombstones, and Sync merges a value with its tombstone to the tombstone.
func (v Value) Tomb() Value {
	return Value{Timestamp: v.Timestamp, Expiry: v.Expiry, Tombstone: true}
}

// Expiring reports whether v is a value (not a tombstone) with an expiry: what a
// reaper turns into its Tomb once the expiry passes (Bury).
func (v Value) Expiring() bool { return !v.Tombstone && v.Expiry != 0 }

// Equal reports whether two values are identical in every field.
func (v Value) Equal(o Value) bool {
	return v.Flags == o.Flags && v.Timestamp == o.Timestamp && v.Expiry == o.Expiry &&
		v.Tombstone == o.Tombstone && bytes.Equal(v.Data, o.Data)
}

// Dot names one event: the Counter-th write coordinated by Actor.
type Dot struct {
	Actor   string
	Counter uint64
}

// Compare orders dots by actor, then counter. The zero Dot (an anonymous value) sorts
// before every real dot.
func (d Dot) Compare(o Dot) int {
	if c := cmp.Compare(d.Actor, o.Actor); c != 0 {
		return c
	}
	return cmp.Compare(d.Counter, o.Counter)
}

// Clock is a version vector: dots sorted by actor, one per actor, counters > 0. It is
// the causal context clients carry.
type Clock []Dot

// Get returns the counter c holds for actor (0 when absent).
func (c Clock) Get(actor string) uint64 {
	i, ok := slices.BinarySearchFunc(c, actor, func(d Dot, a string) int { return cmp.Compare(d.Actor, a) })
	if !ok {
		return 0
	}
	return c[i].Counter
}

// Covers reports whether the event d is in the causal past described by c.
func (c Clock) Covers(d Dot) bool { return d.Counter != 0 && c.Get(d.Actor) >= d.Counter }

// Descends reports whether c has seen every event o has seen (c >= o).
func (c Clock) Descends(o Clock) bool {
	for _, d := range o {
		if c.Get(d.Actor) < d.Counter {
			return false
		}
	}
	return true
}

// Merge returns the pointwise maximum of c and o.
func (c Clock) Merge(o Clock) Clock {
	out := make(Clock, 0, max(len(c), len(o)))
	i, j := 0, 0
	for i < len(c) || j < len(o) {
		switch {
		case j == len(o) || (i < len(c) && c[i].Actor < o[j].Actor):
			out = append(out, c[i])
			i++
		case i == len(c) || o[j].Actor < c[i].Actor:
			out = append(out, o[j])
			j++
		default:
			out = append(out, Dot{c[i].Actor, max(c[i].Counter, o[j].Counter)})
			i++
			j++
		}
	}
	return out
}

// Entry is the part of a Set that one actor coordinated.
type Entry struct {
	Actor   string
	Counter uint64
	// Values are newest first: Values[i] carries the dot (Actor, Counter-i).
	Values []Value
	// Active is the unix ms of the last event this replica saw from Actor; Prune
	// forgets the least recently active entries first.
	Active int64
}

// Set is a dotted version vector set: the record one replica keeps for one key.
type Set struct {
	Entries []Entry // sorted by Actor
	Anon    []Value // values without a dot, from New
}

// Sibling is one value of a Set together with its dot (the zero Dot for anonymous
// values).
type Sibling struct {
	Value
	Dot Dot
}

// New returns the Set a client write of v with context ctx stands for before a
// coordinator gives it a dot: the context's counters with no values, and v anonymous.
func New(ctx Clock, v Value) Set {
	return Set{Entries: fromClock(ctx), Anon: []Value{v}}
}

func fromClock(c Clock) []Entry {
	if len(c) == 0 {
		return nil
	}
	es := make([]Entry, len(c))
	for i, d := range c {
		es[i] = Entry{Actor: d.Actor, Counter: d.Counter}
	}
	return es
}

// Empty reports whether s holds no entry and no value.
func (s Set) Empty() bool { return len(s.Entries) == 0 && len(s.Anon) == 0 }

// Join returns the version vector summarising everything s has seen.
func (s Set) Join() Clock {
	if len(s.Entries) == 0 {
		return nil
	}
	c := make(Clock, len(s.Entries))
	for i, e := range s.Entries {
		c[i] = Dot{e.Actor, e.Counter}
	}
	return c
}

// Siblings lists every value of s (live or not) with its dot.
func (s Set) Siblings() []Sibling {
	var out []Sibling
	for _, e := range s.Entries {
		for i, v := range e.Values {
			out = append(out, Sibling{Value: v, Dot: Dot{e.Actor, e.Counter - uint64(i)}})
		}
	}
	for _, v := range s.Anon {
		out = append(out, Sibling{Value: v})
	}
	return out
}

// Values yields every value of s (live or not), newest first per entry, then the
// anonymous ones, without allocating. Use Siblings when the dots are needed.
func (s Set) Values() iter.Seq[Value] {
	return func(yield func(Value) bool) {
		for _, e := range s.Entries {
			for _, v := range e.Values {
				if !yield(v) {
					return
				}
			}
		}
		for _, v := range s.Anon {
			if !yield(v) {
				return
			}
		}
	}
}

// Len returns the number of values (siblings) in s.
func (s Set) Len() int {
	n := len(s.Anon)
	for _, e := range s.Entries {
		n += len(e.Values)
	}
	return n
}

// Sync merges two replicas' records of the same key. It is commutative, associative
// and idempotent. A value survives unless the other side has seen its dot and dropped
// it.
func Sync(a, b Set) Set {
	var anon []Value
	switch {
	case less(a.Entries, b.Entries):
		anon = b.Anon
	case less(b.Entries, a.Entries):
		anon = a.Anon
	default:
		anon = unionValues(a.Anon, b.Anon)
	}
	return Set{Entries: syncEntries(a.Entries, b.Entries), Anon: anon}
}

// less reports whether the counters of a are strictly dominated by those of b.
func less(a, b []Entry) bool { return greater(b, a, false) }

func greater(a, b []Entry, strict bool) bool {
	for {
		switch {
		case len(a) == 0 && len(b) == 0:
			return strict
		case len(b) == 0:
			return true
		case len(a) == 0:
			return false
		case a[0].Actor == b[0].Actor:
			if a[0].Counter < b[0].Counter {
				return false
			}
			if a[0].Counter > b[0].Counter {
				strict = true
			}
			a, b = a[1:], b[1:]
		case a[0].Actor < b[0].Actor:
			a, strict = a[1:], true
		default:
			return false
		}
	}
}

func syncEntries(a, b []Entry) []Entry {
	out := make([]Entry, 0, max(len(a), len(b)))
	for len(a) > 0 || len(b) > 0 {
		switch {
		case len(b) == 0 || (len(a) > 0 && a[0].Actor < b[0].Actor):
			out = append(out, a[0])
			a = a[1:]
		case len(a) == 0 || b[0].Actor < a[0].Actor:
			out = append(out, b[0])
			b = b[1:]
		default:
			out = append(out, mergeEntry(a[0], b[0]))
			a, b = a[1:], b[1:]
		}
	}
	return out
}

// mergeEntry merges two entries of the same actor. Each holds a contiguous run of
// dots ending at its counter; everything below the run is known superseded. The
// result keeps the higher counter and only the dots neither side has superseded,
// and for a dot both sides hold, the preferred of their two values (prefer): the
// same value on both sides, except that a value merged with the tombstone a
// reaper made of it gives the tombstone (Value.Tomb), so replicas that reaped at
// different moments converge on the reaped form. Choosing per dot by a total
// order keeps Sync a semilattice whatever the values are.
func mergeEntry(x, y Entry) Entry {
	if x.Counter < y.Counter || (x.Counter == y.Counter && len(x.Values) > len(y.Values)) {
		x, y = y, x
	}
	// x.Counter >= y.Counter; on equal counters x has the shorter (more superseded)
	// run, so every dot that survives is in x's run.
	xLow := x.Counter - uint64(len(x.Values))
	yLow := y.Counter - uint64(len(y.Values))
	low := max(xLow, yLow)
	out := Entry{Actor: x.Actor, Counter: x.Counter, Values: x.Values[:x.Counter-low], Active: max(x.Active, y.Active)}
	// The dots both hold: (low, y.Counter].
	cloned := false
	for d := y.Counter; d > low; d-- {
		i, j := x.Counter-d, y.Counter-d
		if compareMerge(y.Values[j], out.Values[i]) > 0 {
			if !cloned {
				out.Values, cloned = slices.Clone(out.Values), true
			}
			out.Values[i] = y.Values[j]
		}
	}
	return out
}

// compareMerge is the total order Sync keeps the greater of when two replicas
// hold different values for one dot. First the values as they are once reaped
// (so a value and its tombstone compare equal there), then a tombstone above a
// value (the reaped form wins), then every field. Different values for one dot
// otherwise mean the dot was issued twice (a replica lost its record and a stale
// copy came back before the next write): the newer value, by timestamp, is kept,
// deterministically, so replicas still converge.
func compareMerge(a, b Value) int {
	return cmp.Or(
		compareValues(reaped(a), reaped(b)),
		cmpBool(a.Tombstone, b.Tombstone),
		compareValues(a, b),
	)
}

// reaped is v as a reaper leaves it once its expiry passed.
func reaped(v Value) Value {
	if v.Expiring() {
		return v.Tomb()
	}
	return v
}

func unionValues(a, b []Value) []Value {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b
	}
	out := slices.Clone(a)
	for _, v := range b {
		if !slices.ContainsFunc(out, v.Equal) {
			out = append(out, v)
		}
	}
	// Order anonymous values canonically so Sync(a, b) and Sync(b, a) are equal.
	slices.SortFunc(out, compareValues)
	return out
}

func compareValues(a, b Value) int {
	return cmp.Or(
		cmp.Compare(a.Timestamp, b.Timestamp),
		bytes.Compare(a.Data, b.Data),
		cmp.Compare(a.Expiry, b.Expiry),
		cmp.Compare(a.Flags, b.Flags),
		cmpBool(a.Tombstone, b.Tombstone),
	)
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// Discard returns s with every value whose dot ctx covers removed and ctx's counters
// merged in: what a replica keeps after a client wrote with context ctx.
func Discard(s Set, ctx Clock) Set {
	return Sync(Set{Entries: fromClock(ctx)}, Set{Entries: s.Entries, Anon: s.Anon})
}

// Update applies a client write of v, made with context ctx, to the local record at
// the coordinating actor: every value ctx covers is superseded, and v gets a new dot
// of actor. now (unix ms) stamps the entry's activity, and that of every entry the
// write needs (Needed), so that later writes prune those last. floor is a lower
// bound for the new counter, applied whenever the actor's entry holds no value once
// ctx's superseded values are gone (see the package doc); pass 1 where dots can
// never be reused.
func Update(local Set, ctx Clock, actor string, v Value, now int64, floor uint64) Set {
	s := Discard(local, ctx)
	// Discard built s.Entries afresh: its entries may be stamped in place.
	forNeeded(local, ctx, func(d Dot) {
		if i, ok := slices.BinarySearchFunc(s.Entries, d.Actor, byActor); ok {
			s.Entries[i].Active = max(s.Entries[i].Active, now)
		}
	})
	return event(s, actor, v, now, floor)
}

func byActor(e Entry, a string) int { return cmp.Compare(e.Actor, a) }

// Needed returns the part of ctx that a write with context ctx, applied to the record
// local, needs to keep so that it supersedes what ctx covers: the dots of the actors
// for which ctx is above the highest dot local already knows superseded (its entry's
// Counter-len(Values), 0 without an entry). For such an actor the write either
// supersedes a value local holds, or ctx's coverage came from elsewhere (the replicas
// the client read, which may still hold the values it replaced). An entry local
// already had superseded up to ctx's counter is not needed by this write: the write
// that superseded those dots needed it. Prune never forgets a needed entry.
func Needed(local Set, ctx Clock) Clock {
	var out Clock
	forNeeded(local, ctx, func(d Dot) { out = append(out, d) })
	return out
}

// forNeeded calls fn with every dot of ctx that Needed returns, in actor order.
func forNeeded(local Set, ctx Clock, fn func(Dot)) {
	es := local.Entries
	for _, d := range ctx {
		for len(es) > 0 && es[0].Actor < d.Actor {
			es = es[1:]
		}
		var superseded uint64
		if len(es) > 0 && es[0].Actor == d.Actor {
			superseded = es[0].Counter - uint64(len(es[0].Values))
		}
		if d.Counter > superseded {
			fn(d)
		}
	}
}

// event gives v the next dot of actor. When the actor's entry holds no value (it is
// absent, came from a possibly stale context, or all its values were superseded), the
// counter may jump to floor: no value is renumbered, and, by the caller's contract
// (package doc, "Fresh counters"), every dot of actor the record no longer knows
// about belonged to a value that is dead everywhere: the caller deletes its record
// only once all its values are dead, never prunes the actor's own entry, and writes
// as a new actor after losing records (a dropped partition, a crash). An entry that
// holds values continues its run.
func event(s Set, actor string, v Value, now int64, floor uint64) Set {
	i, ok := slices.BinarySearchFunc(s.Entries, actor, byActor)
	es := slices.Clone(s.Entries)
	if ok {
		e := es[i]
		vals := make([]Value, 0, len(e.Values)+1)
		vals = append(vals, v)
		vals = append(vals, e.Values...)
		next := e.Counter + 1
		if len(e.Values) == 0 {
			next = max(next, floor)
		}
		es[i] = Entry{Actor: actor, Counter: next, Values: vals, Active: max(e.Active, now)}
	} else {
		es = slices.Insert(es, i, Entry{Actor: actor, Counter: max(floor, 1), Values: []Value{v}, Active: now})
	}
	return Set{Entries: es, Anon: s.Anon}
}

// PruneOptions say which entries of a record Prune may forget.
type PruneOptions struct {
	// Limit is the number of entries above which Prune forgets idle ones (the
	// Dynamo paper's bound, MaxEntries by default in the coordinator); <= 0 turns
	// pruning off.
	Limit int
	// Keep is the coordinating actor, whose entry is never forgotten: it could
	// otherwise reissue a dot (a stale copy read back into the record would restart
	// its run below dots other replicas hold).
	Keep string
	// Needed is what the write being pruned needs (Needed(local, ctx)): never
	// forgotten, so the record still supersedes every value the write's context
	// covered, on every replica it reaches.
	Needed Clock
	// Now is the time (unix ms) the age rule is applied at.
	Now int64
	// MinAge (ms) makes an entry young while it was active (Entry.Active) after
	// Now-MinAge: a young entry is forgotten only when the record holds more than
	// HardLimit entries. <= 0: no entry is young.
	MinAge int64
	// HardLimit bounds the entries the age rule may keep (taken as Limit when
	// lower); <= 0: young entries are always kept.
	HardLimit int
}

// Prune bounds s to o.Limit entries by forgetting the least recently active entries
// (ties broken by actor) among those that hold no value, are not o.Keep's, are not
// in o.Needed and are not young; young ones go too, oldest first, only while s is
// above o.HardLimit. Entries that hold a value, the coordinator's own and the needed
// ones are never dropped, so a Set with more than Limit of them keeps them all. What
// forgetting an entry can cost (a sibling, never a value) is in the package doc.
func Prune(s Set, o PruneOptions) Set {
	if o.Limit <= 0 || len(s.Entries) <= o.Limit {
		return s
	}
	var idle []int
	need := o.Needed
	for i, e := range s.Entries {
		for len(need) > 0 && need[0].Actor < e.Actor {
			need = need[1:]
		}
		if len(e.Values) == 0 && e.Actor != o.Keep && (len(need) == 0 || need[0].Actor != e.Actor) {
			idle = append(idle, i)
		}
	}
	slices.SortFunc(idle, func(a, b int) int {
		ea, eb := s.Entries[a], s.Entries[b]
		return cmp.Or(cmp.Compare(ea.Active, eb.Active), cmp.Compare(ea.Actor, eb.Actor))
	})
	old := len(idle) // idle[:old] are not young (idle is sorted by activity)
	if o.MinAge > 0 {
		old, _ = slices.BinarySearchFunc(idle, o.Now-o.MinAge, func(i int, t int64) int {
			if s.Entries[i].Active > t {
				return 1
			}
			return -1
		})
	}
	n := min(len(s.Entries)-o.Limit, old)
	if hard := max(o.HardLimit, o.Limit); o.HardLimit > 0 && len(s.Entries)-n > hard {
		n = min(len(s.Entries)-hard, len(idle))
	}
	if n == 0 {
		return s
	}
	drop := make(map[int]bool, n)
	for _, i := range idle[:n] {
		drop[i] = true
	}
	es := make([]Entry, 0, len(s.Entries)-n)
	for i, e := range s.Entries {
		if !drop[i] {
			es = append(es, e)
		}
	}
	return Set{Entries: es, Anon: s.Anon}
}

// Map returns s with f applied to every value, keeping dots. Used to drop payloads
// (e.g. turning expired values into tombstones) without touching causality.
func Map(s Set, f func(Value) Value) Set {
	es := make([]Entry, len(s.Entries))
	for i, e := range s.Entries {
		vals := make([]Value, len(e.Values))
		for j, v := range e.Values {
			vals[j] = f(v)
		}
		e.Values = vals
		es[i] = e
	}
	var anon []Value
	for _, v := range s.Anon {
		anon = append(anon, f(v))
	}
	return Set{Entries: es, Anon: anon}
}

// Bury returns s with every value expired at now (unix ms) turned into its Tomb,
// keeping every dot and counter, and reports whether anything changed (s is
// returned as it is when nothing did). An expired value stays causal history: its
// dot still supersedes what it superseded, so the value it replaced can never
// come back from a replica that missed the overwrite.
func Bury(s Set, now int64) (Set, bool) {
	changed := false
	for v := range s.Values() {
		if v.Expiring() && v.Expired(now) {
			changed = true
			break
		}
	}
	if !changed {
		return s, false
	}
	return Map(s, func(v Value) Value {
		if v.Expiring() && v.Expired(now) {
			return v.Tomb()
		}
		return v
	}), true
}

// Winner picks, among sibs, the one plain GET returns: the greatest (Timestamp, Dot),
// so every replica and every node resolves siblings alike. ok is false when sibs is
// empty.
func Winner(sibs []Sibling) (w Sibling, ok bool) {
	for i, s := range sibs {
		if i == 0 || cmp.Or(cmp.Compare(s.Timestamp, w.Timestamp), s.Dot.Compare(w.Dot), compareValues(s.Value, w.Value)) > 0 {
			w = s
		}
	}
	return w, len(sibs) > 0
}
