package record

import (
	"github.com/dynakv/dynakv/crdt"
	"github.com/dynakv/dynakv/vclock"
)

// The storage-facing summaries of a record: whether it counts for DBSIZE, when
// the reaper next has work in it, whether it is a grave and since when, and what
// the reaper does. On a string-only record each is exactly what storage computed
// from the string layer before records had layers (the tests check them against
// copies of storage's functions); typed layers follow 1.6 and 1.7: an expired
// typed layer is reaped into a grave like a DEL, and a grave's time is the
// latest of its tombstones' and its layers' Dead.

// Counts reports whether rec counts for DBSIZE: the string layer's plain-GET
// winner (vclock.Winner, tombstones and expired values included) is not a
// tombstone, or some typed layer holds content (a live counter, an hll entry, a
// live collection element), its TTL aside. Like Redis, an expired key counts
// until it is reaped; Counts does not depend on the time, so the count moves only
// when a record changes.
func Counts(rec Record) bool {
	if w, ok := vclock.Winner(rec.Str.Siblings()); ok && !w.Tombstone {
		return true
	}
	for _, l := range rec.Layers {
		if l.live() {
			return true
		}
	}
	return false
}

// ReapTime is the unix ms at which the reaper next has work in rec, 0 for none:
// the earliest of
//
//   - the earliest expiry among the string layer's values that are not
//     tombstones (vclock.Bury turns each into its tombstone once it passed; a
//     live sibling without expiry does not hold the others back);
//   - the TTL register's effective expiry, when a typed layer has something to
//     reap (a live counter, hll entries, element keys: Coll.Len or Coll.Bytes);
//   - 1, "due now", when a collection has a pending partial clear (Coll.Clear):
//     storage's sweep (2.6), which Reap leaves to storage.
func ReapTime(rec Record) int64 {
	var at int64
	for v := range rec.Str.Values() {
		if v.Expiring() && (at == 0 || v.Expiry < at) {
			at = v.Expiry
		}
	}
	if len(rec.Layers) == 0 {
		return at
	}
	earliest := func(t int64) {
		if at == 0 || t < at {
			at = t
		}
	}
	exp, expires := crdt.EffectiveTTL(rec.TTL)
	for _, l := range rec.Layers {
		if l.Coll != nil && !l.Coll.Clear.Empty() {
			earliest(1)
		}
		if expires && l.reapable() {
			earliest(exp)
		}
	}
	return at
}

// reapable reports whether an expired l has something for the reaper to clear:
// a live counter, hll entries, element keys (live ones or graves). A counter's
// grave (a removal marker and the increments it observed) is not reaped: the
// record is a grave already, purged as one.
func (l Layer) reapable() bool {
	switch {
	case l.Type == Counter:
		return crdt.CounterLive(l.Val)
	case l.Coll != nil:
		return l.Coll.Len > 0 || l.Coll.Bytes > 0
	default:
		return len(l.Val) > 0
	}
}

// GraveTime is the unix ms since which rec is a grave, 0 when it is not one. A
// grave holds no content: every value of the string layer is a tombstone (for a
// string-only record there is at least one), and no typed layer has a live
// counter, hll entries, element keys (Coll.Len, Coll.Bytes) or a pending clear;
// an expired layer is not a grave until the reaper cleared it (ReapTime). Its
// time is the latest of its tombstones' deaths (a written tombstone's Timestamp,
// a reaped value's Expiry, kept by vclock.Value.Tomb) and its layers' Dead, at
// least 1; tombstone purge's grace period runs from there.
func GraveTime(rec Record) int64 {
	var at int64
	for v := range rec.Str.Values() {
		if !v.Tombstone {
			return 0
		}
		at = max(at, v.Timestamp, v.Expiry, 1)
	}
	if !rec.Typed() {
		return at
	}
	for _, l := range rec.Layers {
		if l.reapable() || (l.Coll != nil && !l.Coll.Clear.Empty()) {
			return 0
		}
		at = max(at, l.Dead)
	}
	return max(at, 1)
}

// Reap is the reaper's work on rec at now (unix ms), the generalized vclock.Bury:
// every string value expired by now becomes its tombstone, and, once the TTL
// register's effective expiry is at or before now, every typed layer is cleared
// with the local contexts (1.6): Val entries removed (their dots stay in Ctx),
// each collection cleared of its whole element context (a full Clear for
// storage's DeleteRange), Dead = the expiry. The TTL entries stay, so a late
// delta of the expired incarnation is expired again and reaped; the next write
// that observes them removes them (Supersede). Replicas that reap the same state
// make the same record. It reports whether anything changed, returning rec as
// it is when nothing did; partial clears' sweeps are storage's.
func Reap(rec Record, now int64) (Record, []Clear, bool) {
	str, changed := vclock.Bury(rec.Str, now)
	out := rec
	out.Str = str
	exp, expires := crdt.EffectiveTTL(rec.TTL)
	if !expires || exp > now || len(rec.Layers) == 0 {
		return out, nil, changed
	}
	var clears []Clear
	var layers []Layer
	for i, l := range rec.Layers {
		if !l.reapable() {
			continue
		}
		if layers == nil {
			layers = append([]Layer(nil), rec.Layers...)
		}
		l.Val = nil
		if l.Coll != nil {
			l.Coll, _ = clearColl(l.Coll, l.Coll.Ctx)
			clears = append(clears, Clear{Type: l.Type, Ctx: layers[i].Coll.Ctx, Full: true})
		}
		l.Dead = max(l.Dead, exp)
		layers[i] = l
	}
	if layers == nil {
		return out, nil, changed
	}
	out.Layers = layers
	return out, clears, true
}
