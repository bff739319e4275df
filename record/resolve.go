package record

import (
	"cmp"
	"slices"

	"github.com/dynakv/dynakv/crdt"
	"github.com/dynakv/dynakv/vclock"
)

// View is a key as reads see it at one moment (Resolve): its live layers, the
// winner first. Every node computes the same View from the same record and time.
type View struct {
	// Live lists every live layer, winner first, then by descending
	// (stamp.TS, stamp.Dot, type). Empty: the key is absent.
	Live []LiveLayer
	// Str is the string layer's plain-GET winner, meaningful when the string
	// layer is live (Live holds Plain).
	Str vclock.Sibling
}

// LiveLayer is one live layer of a View.
type LiveLayer struct {
	Type  Type       // Plain for the string layer
	Stamp crdt.Stamp // the string winner's (Timestamp, dot), or the layer's Stamp
}

// Absent reports whether no layer is live: GET answers nil, TYPE "none".
func (v View) Absent() bool { return len(v.Live) == 0 }

// Type returns the key's type, the winner's, and false when the key is absent.
func (v View) Type() (Type, bool) {
	if len(v.Live) == 0 {
		return Plain, false
	}
	return v.Live[0].Type, true
}

// Has reports whether a layer of type t is live.
func (v View) Has(t Type) bool {
	return slices.ContainsFunc(v.Live, func(l LiveLayer) bool { return l.Type == t })
}

// Resolve returns the View of rec at now (unix ms), the type-conflict rule of
// issue 20's design (1.5):
//
//   - the string layer is live when its plain-GET winner (vclock.Winner, among
//     every sibling, tombstones and expired values included) is live
//     (vclock.Value.Live); its stamp is the winner's (Timestamp, dot).
//   - a counter is live when crdt.CounterLive(Val) (a value register, or an
//     increment the winning register did not observe), an hll when Val holds an
//     entry, a collection when Coll.Len > 0. A typed layer is dead, whatever it
//     holds, once the TTL register's effective expiry (crdt.Expired) is at or
//     before now.
//   - the winner is the live layer with the greatest (stamp.TS, stamp.Dot,
//     type). Losers stay stored and show in DGET (View.Live after the first).
//
// For a string-only record the View holds the string layer exactly when plain GET
// answers its winner today, so GET, EXISTS and TYPE do not change for strings.
// Resolve is a pure function of the record and the time: replicas holding equal
// records answer alike whatever order they merged in.
func Resolve(rec Record, now int64) View {
	var v View
	if w, ok := vclock.Winner(rec.Str.Siblings()); ok && w.Live(now) {
		v.Str = w
		v.Live = append(v.Live, LiveLayer{Type: Plain, Stamp: crdt.Stamp{TS: w.Timestamp, Dot: w.Dot}})
	}
	if len(rec.Layers) == 0 || crdt.Expired(rec.TTL, now) {
		return v
	}
	for _, l := range rec.Layers {
		if l.live() {
			v.Live = append(v.Live, LiveLayer{Type: l.Type, Stamp: l.Stamp})
		}
	}
	if len(v.Live) > 1 {
		slices.SortFunc(v.Live, func(a, b LiveLayer) int {
			return cmp.Or(b.Stamp.Compare(a.Stamp), cmp.Compare(b.Type, a.Type))
		})
	}
	return v
}

// live reports whether l holds content, the TTL aside: a live counter, an hll
// entry, a live collection element (Len counts live elements, 2.2).
func (l Layer) live() bool {
	switch {
	case l.Type == Counter:
		return crdt.CounterLive(l.Val)
	case l.Type.Collection():
		return l.Coll != nil && l.Coll.Len > 0
	default:
		return len(l.Val) > 0
	}
}
