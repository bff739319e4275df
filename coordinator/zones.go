package coordinator

import (
	"sync/atomic"

	"github.com/dynakv/dynakv/ring"
)

// zoneView is a ring with its members' zones at hand for planning: whether it has
// zones at all, and each member's zone by name in a map, cheaper per request than
// the ring's lookup (a binary search by name). It is built once per ring
// (Coordinator.zoneView) and immutable after.
type zoneView struct {
	rg     *ring.Ring
	zoned  bool           // the members are in two zones or more
	zoneOf map[string]int // member name -> index of its zone in rg.Zones(); nil without zones
}

func newZoneView(rg *ring.Ring) *zoneView {
	zv := &zoneView{rg: rg}
	zones := rg.Zones()
	if len(zones) < 2 {
		return zv
	}
	zv.zoned = true
	zv.zoneOf = make(map[string]int, rg.Len())
	for _, m := range rg.Members() {
		for i, z := range zones {
			if z == m.Zone {
				zv.zoneOf[m.Name] = i
			}
		}
	}
	return zv
}

// same reports whether members a and b are in the same zone (always, without
// zones).
func (zv *zoneView) same(a, b string) bool {
	return !zv.zoned || zv.zoneOf[a] == zv.zoneOf[b]
}

// zoneCache keeps the zoneView of the ring the coordinator saw last.
type zoneCache struct {
	last atomic.Pointer[zoneView]
}

// of returns rg's zoneView, building it when rg is not the ring seen last. Two
// requests that find a new ring at once may both build it: harmless.
func (zc *zoneCache) of(rg *ring.Ring) *zoneView {
	if zv := zc.last.Load(); zv != nil && zv.rg == rg {
		return zv
	}
	zv := newZoneView(rg)
	zc.last.Store(zv)
	return zv
}
