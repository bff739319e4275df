package main

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"time"

	"github.com/dynakv/dynakv/compat/chaos/history"
)

// With --zones K the hosts are spread round-robin over K zones (host i in zone
// z((i-1) mod K + 1)), so a node joining on a spare host gets that host's zone.
// Internode transport between hosts of different zones crosses a simulated WAN:
// its proxy delays each connection by a one-way latency drawn from
// [wanDelayMin, wanDelayMax] (see faultyProxy); inside a zone it adds nothing.
// Gossip (memberlist, UDP and TCP on gossipPort) is not proxied, so failure
// detection sees a LAN; clients in the root namespace talk to their node
// directly, as a client in the node's own zone would.
const (
	wanDelayMin = 20 * time.Millisecond
	wanDelayMax = 50 * time.Millisecond
)

// Zone-down faults: every member of one zone killed with -9 at once (restarted
// after the hold), or the zone cut from the other zones with iptables.
const (
	faultZoneKill      = history.FaultZoneKill
	faultZonePartition = history.FaultZonePartition
)

// zoneFaultKinds are the faults a run with --zones adds to faultKinds.
var zoneFaultKinds = []string{faultZoneKill, faultZonePartition}

func zoneName(i int) string { return fmt.Sprintf("z%d", i+1) }

// assignZones puts the hosts round-robin into k zones.
func assignZones(hosts []*host, k int) {
	for _, h := range hosts {
		h.zone = zoneName((h.idx - 1) % k)
	}
}

// zoneLayout renders which hosts each zone has, "z1=1,4,7 z2=2,5 z3=3,6".
func zoneLayout(hosts []*host) string {
	byZone := map[string][]string{}
	var zones []string
	for _, h := range hosts {
		if byZone[h.zone] == nil {
			zones = append(zones, h.zone)
		}
		byZone[h.zone] = append(byZone[h.zone], fmt.Sprintf("host%d", h.idx))
	}
	slices.Sort(zones)
	var parts []string
	for _, z := range zones {
		parts = append(parts, z+"="+strings.Join(byZone[z], ","))
	}
	return strings.Join(parts, " ")
}

// byZone groups ns by zone; zones lists the zones that have one, sorted.
func byZone(ns []*node) (groups map[string][]*node, zones []string) {
	groups = map[string][]*node{}
	for _, n := range ns {
		if groups[n.h.zone] == nil {
			zones = append(zones, n.h.zone)
		}
		groups[n.h.zone] = append(groups[n.h.zone], n)
	}
	slices.Sort(zones)
	return groups, zones
}

// roundOrder is the order of one round of the schedule: every kind once, at
// random, except that with zones the zone-down faults come first and third, so
// that a run of a minute has both.
func roundOrder(rng *rand.Rand, zoned bool) []string {
	var others []string
	for _, i := range rng.Perm(len(faultKinds)) {
		others = append(others, faultKinds[i])
	}
	if !zoned {
		return others
	}
	zf := slices.Clone(zoneFaultKinds)
	rng.Shuffle(len(zf), func(i, j int) { zf[i], zf[j] = zf[j], zf[i] })
	order := []string{zf[0], others[0], zf[1]}
	return append(order, others[1:]...)
}

// shrinkable returns the first of ns whose zone keeps another member when it
// goes (a leave or removal must not empty a zone: the zone-down faults and the
// placement over zones assume every zone has a member), or nil.
func shrinkable(ns []*node, members []*node) *node {
	groups, _ := byZone(members)
	for _, n := range ns {
		if len(groups[n.h.zone]) > 1 {
			return n
		}
	}
	return nil
}

// zones maps every node this run started to its zone; nil without zones.
func (c *cluster) zones() map[string]string {
	if c.s.zones == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]string{}
	for _, n := range c.nodes {
		out[n.name] = n.h.zone
	}
	return out
}
