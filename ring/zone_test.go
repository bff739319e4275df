package ring

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// zonedMembers returns members with random names, weights in {0 (meaning 1), 1, 2,
// 3, 0.5} and zones z0..z<zones-1>, every zone used when n >= zones.
func zonedMembers(rng *rand.Rand, n, zones int) []Member {
	ms := make([]Member, n)
	for i, name := range randomNames(rng, n) {
		z := i % zones
		if i >= zones {
			z = rng.IntN(zones)
		}
		ms[i] = Member{Name: name, Weight: []float64{0, 1, 2, 3, 0.5}[rng.IntN(5)], Zone: fmt.Sprint("z", z)}
	}
	return ms
}

// zoneCounts returns how many of names are in each zone of r.
func zoneCounts(r *Ring, names []string) map[string]int {
	c := map[string]int{}
	for _, n := range names {
		z, _ := r.Zone(n)
		c[z]++
	}
	return c
}

// zoneSizes returns how many members each zone of r has.
func zoneSizes(r *Ring) map[string]int {
	c := map[string]int{}
	for _, m := range r.Members() {
		c[m.Zone]++
	}
	return c
}

// checkSpread checks the zone guarantee for the first n of list: n distinct zones
// when there are at least n, else every zone, and the rest as even as the zone sizes
// allow: a zone that still has members left holds at most one fewer than any other.
func checkSpread(r *Ring, list []string, n int) error {
	n = min(n, len(list))
	counts := zoneCounts(r, list[:n])
	sizes := zoneSizes(r)
	if want := min(n, len(sizes)); len(counts) != want {
		return fmt.Errorf("first %d of %v span %d zones, want %d", n, list, len(counts), want)
	}
	for z, cz := range counts {
		for w, cw := range counts {
			if cz < sizes[z] && cw > cz+1 {
				return fmt.Errorf("first %d of %v: zone %s has %d of its %d members, zone %s has %d",
					n, list, z, cz, sizes[z], w, cw)
			}
		}
	}
	return nil
}

// naiveZoneList is the simple thing to check the fast thing against, the greedy
// rule written out: repeatedly take, among the members not yet taken, the first in
// plain rendezvous order (naiveList) whose zone has been taken least so far.
func naiveZoneList(ms []Member, p int) []string {
	zone := map[string]string{}
	for _, m := range ms {
		zone[m.Name] = m.Zone
	}
	rest := naiveList(ms, p)
	used := map[string]int{}
	var out []string
	for len(rest) > 0 {
		best := 0
		for i, name := range rest {
			if used[zone[name]] < used[zone[rest[best]]] {
				best = i
			}
		}
		out = append(out, rest[best])
		used[zone[rest[best]]]++
		rest = slices.Delete(rest, best, best+1)
	}
	return out
}

func TestZoneMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for range 40 {
		ms := zonedMembers(rng, 1+rng.IntN(16), 1+rng.IntN(6))
		r := mustNew(t, 128, ms)
		for p := range r.Partitions() {
			if want := naiveZoneList(ms, p); !slices.Equal(r.PreferenceList(p), want) {
				t.Fatalf("%v\np=%d: got %v, naive %v", ms, p, r.PreferenceList(p), want)
			}
		}
	}
}

// TestZoneSpread: over random member sets (3 to 30 members, 1 to 6 zones, mixed
// weights), the first n of every partition's list are spread over the zones as the
// package documentation promises, for every n; and zones change no primary.
func TestZoneSpread(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	for trial := range 60 {
		ms := zonedMembers(rng, 3+rng.IntN(28), 1+rng.IntN(6))
		r := mustNew(t, 256, ms)
		plain := slices.Clone(ms)
		for i := range plain {
			plain[i].Zone = ""
		}
		rp := mustNew(t, 256, plain)
		for p := range r.Partitions() {
			l := r.PreferenceList(p)
			for n := 1; n <= len(l); n++ {
				if err := checkSpread(r, l, n); err != nil {
					t.Fatalf("trial %d, %d members in %d zones, p=%d: %v", trial, len(ms), len(r.Zones()), p, err)
				}
			}
			if l[0] != rp.PreferenceList(p)[0] {
				t.Fatalf("trial %d, p=%d: zones changed the primary %s -> %s", trial, p, rp.PreferenceList(p)[0], l[0])
			}
		}
		if !maps(r.PrimaryCounts(), rp.PrimaryCounts()) {
			t.Fatalf("trial %d: zones changed the primary counts", trial)
		}
	}
}

// TestZoneOrderIndependent: placement with zones depends on the member set only.
func TestZoneOrderIndependent(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	for trial := range 30 {
		ms := zonedMembers(rng, 3+rng.IntN(28), 1+rng.IntN(6))
		ref := mustNew(t, 128, ms)
		for range 3 {
			rng.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
			r := mustNew(t, 128, ms)
			for p := range r.Partitions() {
				if !slices.Equal(r.PreferenceList(p), ref.PreferenceList(p)) {
					t.Fatalf("trial %d, p=%d: order changed placement: %v, %v",
						trial, p, r.PreferenceList(p), ref.PreferenceList(p))
				}
			}
		}
	}
}

// TestOneZoneIsPlain: with every member in one zone, named or not, placement is
// plain rendezvous hashing: the golden lists of before zones, and random sets.
func TestOneZoneIsPlain(t *testing.T) {
	const file = "testdata/zoneless.golden"
	_, sets := readGolden(t, file)
	for _, gs := range sets {
		for _, zone := range []string{"", "dc1"} {
			ms := slices.Clone(gs.members)
			for i := range ms {
				ms[i].Zone = zone
			}
			if got := listsDigest(mustNew(t, gs.q, ms)); got != gs.sum {
				t.Errorf("%s:%d: every member in zone %q: %s, want %s", file, gs.line, zone, got, gs.sum)
			}
		}
	}
	rng := rand.New(rand.NewPCG(27, 28))
	for range 20 {
		ms := zonedMembers(rng, 1+rng.IntN(20), 1)
		r := mustNew(t, 64, ms)
		for p := range r.Partitions() {
			if want := naiveList(ms, p); !slices.Equal(r.PreferenceList(p), want) {
				t.Fatalf("p=%d: one zone %v, plain %v", p, r.PreferenceList(p), want)
			}
		}
	}
}

// replicaChurn compares the first n replicas of every partition of two rings and
// returns the partitions whose replica set changed and the replica slots that did:
// the members in after's set and not in before's, summed over partitions.
func replicaChurn(before, after *Ring, n int) (parts, slots int) {
	for p := range before.Partitions() {
		a, b := before.Replicas(p, n), after.Replicas(p, n)
		in := 0
		for _, name := range b {
			if !slices.Contains(a, name) {
				in++
			}
		}
		if in > 0 {
			parts++
			slots += in
		}
	}
	return parts, slots
}

// checkOneSwap checks the movement property of a join: every partition whose first
// n changed gained the new member and lost exactly one other (none if it had fewer
// than n members). Read backwards it is the property of a leave: every changed set
// lost the leaver and gained exactly one other member.
func checkOneSwap(t *testing.T, before, after *Ring, n int, joined string) {
	t.Helper()
	for p := range before.Partitions() {
		a, b := before.Replicas(p, n), after.Replicas(p, n)
		var in, out []string
		for _, name := range b {
			if !slices.Contains(a, name) {
				in = append(in, name)
			}
		}
		for _, name := range a {
			if !slices.Contains(b, name) {
				out = append(out, name)
			}
		}
		if len(in) == 0 && len(out) == 0 {
			continue
		}
		wantOut := 0
		if len(a) == n {
			wantOut = 1
		}
		if !slices.Equal(in, []string{joined}) || len(out) != wantOut {
			t.Fatalf("p=%d, n=%d: %v -> %v: in %v, out %v; want %s in and one out", p, n, a, b, in, out, joined)
		}
	}
}

// TestZoneJoinMovesOneReplica: over random member sets, a join changes a
// partition's replicas (any n) only by the new member taking one slot, and a leave
// only by the leaver's slot going to one other member.
func TestZoneJoinMovesOneReplica(t *testing.T) {
	rng := rand.New(rand.NewPCG(29, 30))
	for range 40 {
		ms := zonedMembers(rng, 4+rng.IntN(27), 1+rng.IntN(6))
		k := rng.IntN(len(ms))
		joined := ms[k].Name
		small := mustNew(t, 256, slices.Delete(slices.Clone(ms), k, k+1))
		big := mustNew(t, 256, ms)
		for n := 1; n <= min(len(ms), 6); n++ {
			checkOneSwap(t, small, big, n, joined)
		}
	}
}

// TestZoneJoinMovement measures the figure: one node added to a 9-node,
// 3-zone cluster, N=3. A zone holds one replica of every partition, so the new node,
// the fourth of its zone, takes a quarter of its zone's slots: about 1/4 of the
// partitions change one replica, and 1/12 of all replica slots move (without zones,
// 3/10 and 1/10). Also a node moving from one zone to another, and a join that brings
// a zone to a cluster of two.
func TestZoneJoinMovement(t *testing.T) {
	const n = 3
	zoned := func(names []string, zones ...string) []Member {
		ms := make([]Member, len(names))
		for i, name := range names {
			ms[i] = Member{Name: name, Zone: zones[i%len(zones)]}
		}
		return ms
	}
	report := func(label string, before, after []Member, wantParts, wantSlots float64) {
		t.Helper()
		rb, ra := mustNew(t, DefaultPartitions, before), mustNew(t, DefaultPartitions, after)
		parts, slots := replicaChurn(rb, ra, n)
		fp, fs := float64(parts)/DefaultPartitions, float64(slots)/(n*DefaultPartitions)
		t.Logf("%-40s partitions changed %.3f (expect %.3f), replica slots moved %.3f (expect %.3f)",
			label, fp, wantParts, fs, wantSlots)
		if fp > wantParts*1.25 || fs > wantSlots*1.25 {
			t.Errorf("%s: moved %.3f of partitions and %.3f of slots, want about %.3f and %.3f",
				label, fp, fs, wantParts, wantSlots)
		}
	}
	nine, ten := names("node", 9), names("node", 10)
	report("9 -> 10 nodes, no zones", zoned(nine, ""), zoned(ten, ""), 0.3, 0.1)
	report("9 -> 10 nodes, 3 zones (3,3,3 -> 4,3,3)", zoned(nine, "a", "b", "c"), zoned(ten, "a", "b", "c"), 0.25, 1.0/12)
	moved := zoned(nine, "a", "b", "c")
	moved[0].Zone = "b" // node1: a -> b, so zones of 2, 4 and 3 nodes
	// The partitions where node1 was a's replica (1/3) must change it, those where
	// it is now b's (1/4) must too, and both happen where it beats all 5 others
	// (1/6): 1/3 + 1/4 - 1/6 = 5/12 of the partitions, one slot each.
	report("node1 moves from zone a to b", zoned(nine, "a", "b", "c"), moved, 5.0/12, 5.0/36)
	// 6 nodes in zones a, b; a seventh in a new zone c takes one slot of every
	// partition: the third replica, from a or b.
	report("6 nodes in 2 zones + 1 in a third", zoned(names("node", 6), "a", "b"),
		append(zoned(names("node", 6), "a", "b"), Member{Name: "node7", Zone: "c"}), 1, 1.0/3)

	// The same over random names, to see that the figures are not luck.
	rng := rand.New(rand.NewPCG(31, 32))
	var sumParts, sumSlots float64
	const trials = 20
	for range trials {
		ns := randomNames(rng, 10)
		rb := mustNew(t, DefaultPartitions, zoned(ns[:9], "a", "b", "c"))
		ra := mustNew(t, DefaultPartitions, zoned(ns, "a", "b", "c"))
		checkOneSwap(t, rb, ra, n, ns[9])
		parts, slots := replicaChurn(rb, ra, n)
		sumParts += float64(parts) / DefaultPartitions
		sumSlots += float64(slots) / (n * DefaultPartitions)
	}
	t.Logf("random names, 9 -> 10 in 3 zones, %d trials: partitions changed %.3f, slots moved %.3f (mean)",
		trials, sumParts/trials, sumSlots/trials)
}

func TestZonesAndZone(t *testing.T) {
	r := mustNew(t, 8, []Member{{Name: "a", Zone: "x"}, {Name: "b"}, {Name: "c", Zone: "x"}, {Name: "d", Zone: "w"}})
	if got, want := r.Zones(), []string{"", "w", "x"}; !slices.Equal(got, want) {
		t.Errorf("Zones() = %q, want %q", got, want)
	}
	for name, want := range map[string]string{"a": "x", "b": "", "c": "x", "d": "w"} {
		if z, ok := r.Zone(name); !ok || z != want {
			t.Errorf("Zone(%s) = %q, %v, want %q", name, z, ok, want)
		}
	}
	if z, ok := r.Zone("e"); ok || z != "" {
		t.Errorf("Zone of a non-member = %q, %v", z, ok)
	}
	if z := mustNew(t, 8, equalMembers("a", "b")).Zones(); !slices.Equal(z, []string{""}) {
		t.Errorf("Zones() without zones = %q", z)
	}
	if z := mustNew(t, 8, nil).Zones(); z != nil {
		t.Errorf("Zones() of an empty ring = %q", z)
	}
}

// TestFallback: hand-checked stand-ins on one partition of a 3-zone ring.
func TestFallback(t *testing.T) {
	// Plain rendezvous order of partition 0 for these names, then the zones: the
	// dealt-out list follows from it (checked against the plain list below).
	ms := []Member{
		{Name: "a1", Zone: "a"}, {Name: "a2", Zone: "a"}, {Name: "a3", Zone: "a"},
		{Name: "b1", Zone: "b"}, {Name: "b2", Zone: "b"}, {Name: "b3", Zone: "b"},
		{Name: "c1", Zone: "c"}, {Name: "c2", Zone: "c"},
	}
	r := mustNew(t, 1, ms)
	pl := r.PreferenceList(0)
	if want := naiveZoneList(ms, 0); !slices.Equal(pl, want) {
		t.Fatalf("list %v, naive %v", pl, want)
	}
	// Find the list's members by role rather than hard-coding hash outcomes: the
	// replicas are one per zone, and the fallbacks follow round by round.
	zoneOf := func(name string) string { z, _ := r.Zone(name); return z }
	for i, name := range pl[:3] {
		for _, other := range pl[:i] {
			if zoneOf(other) == zoneOf(name) {
				t.Fatalf("replicas %v share a zone", pl[:3])
			}
		}
	}
	t.Logf("partition 0: %v", pl)
	firstIn := func(zone string, skip ...string) string {
		for _, name := range pl[3:] {
			if zoneOf(name) == zone && !slices.Contains(skip, name) {
				return name
			}
		}
		return ""
	}
	all := func(string) bool { return true }
	except := func(dead ...string) func(string) bool {
		return func(name string) bool { return !slices.Contains(dead, name) }
	}
	inZones := func(zones ...string) func(string) bool {
		return func(name string) bool { return slices.Contains(zones, zoneOf(name)) }
	}
	r0, r1, r2 := pl[0], pl[1], pl[2]
	z0, z1 := zoneOf(r0), zoneOf(r1)
	for _, tc := range []struct {
		name   string
		owner  string
		usable func(string) bool
		want   string
	}{
		{"same zone", r0, all, firstIn(z0)},
		{"same zone, its first fallback dead", r0, except(firstIn(z0)), firstIn(z0, firstIn(z0))},
		{"second replica", r1, all, firstIn(z1)},
		{"zone down: next zone in list order", r0, inZones(zoneOf(r1), zoneOf(r2)), pl[3:][slices.IndexFunc(pl[3:], inZones(z1, zoneOf(r2)))]},
		{"nothing usable", r0, except(pl...), ""},
		{"not a member: first usable", "stranger", all, pl[3]},
	} {
		if got := r.Fallback(0, 3, tc.owner, tc.usable); got != tc.want {
			t.Errorf("%s: Fallback(0, 3, %s) = %q, want %q", tc.name, tc.owner, got, tc.want)
		}
	}
	if got := r.Fallback(1, 3, r0, all); got != "" {
		t.Errorf("partition out of range: %q", got)
	}
	if got := r.Fallback(0, 8, r0, all); got != "" {
		t.Errorf("no fallbacks at n=S: %q", got)
	}
	calls := 0
	r.Fallback(0, 3, r0, func(string) bool { calls++; return false })
	if calls != len(pl)-3 {
		t.Errorf("usable called %d times for %d fallbacks", calls, len(pl)-3)
	}
}

// TestFallbackWithoutZones: in a ring with one zone Fallback is the first usable
// fallback, the rule the coordinator applies today.
func TestFallbackWithoutZones(t *testing.T) {
	r := mustNew(t, 64, equalMembers(names("n", 7)...))
	rng := rand.New(rand.NewPCG(33, 34))
	for p := range r.Partitions() {
		pl := r.PreferenceList(p)
		dead := map[string]bool{}
		for _, name := range pl {
			dead[name] = rng.IntN(2) == 0
		}
		usable := func(name string) bool { return !dead[name] }
		want := ""
		if i := slices.IndexFunc(pl[3:], usable); i >= 0 {
			want = pl[3+i]
		}
		for _, owner := range pl[:3] {
			if got := r.Fallback(p, 3, owner, usable); got != want {
				t.Fatalf("p=%d %v dead %v: Fallback for %s = %q, want %q", p, pl, dead, owner, got, want)
			}
		}
	}
}

func TestFallbackDoesNotAllocate(t *testing.T) {
	ms := zonedMembers(rand.New(rand.NewPCG(35, 36)), 12, 3)
	r := mustNew(t, 64, ms)
	owner := r.PreferenceList(5)[0]
	usable := func(name string) bool { return strings.HasPrefix(name, "q") }
	if a := testing.AllocsPerRun(100, func() { _ = r.Fallback(5, 3, owner, usable) }); a != 0 {
		t.Errorf("Fallback allocates %v times", a)
	}
}

// TestZoneLookups: NumZones, ZoneIndex and SameZone agree with Zones and Zone,
// for members, a name that is not one, and rings with one zone or none.
func TestZoneLookups(t *testing.T) {
	rg, err := New(64, []Member{{Name: "a", Zone: "z1"}, {Name: "b", Zone: "z2"}, {Name: "c", Zone: "z1"}})
	if err != nil {
		t.Fatal(err)
	}
	if n := rg.NumZones(); n != 2 {
		t.Fatalf("NumZones = %d, want 2", n)
	}
	zones := rg.Zones()
	for _, name := range []string{"a", "b", "c"} {
		i, ok := rg.ZoneIndex(name)
		z, _ := rg.Zone(name)
		if !ok || zones[i] != z {
			t.Errorf("ZoneIndex(%s) = %d, %v; Zone = %q", name, i, ok, z)
		}
	}
	if i, ok := rg.ZoneIndex("x"); ok || i != -1 {
		t.Errorf("ZoneIndex of a non-member = %d, %v", i, ok)
	}
	for _, tc := range []struct {
		a, b string
		want bool
	}{{"a", "c", true}, {"a", "b", false}, {"c", "b", false}, {"a", "a", true}, {"a", "x", false}, {"x", "y", false}} {
		if got := rg.SameZone(tc.a, tc.b); got != tc.want {
			t.Errorf("SameZone(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
	one, _ := New(64, []Member{{Name: "a"}, {Name: "b"}})
	empty, _ := New(64, nil)
	if one.NumZones() != 1 || !one.SameZone("a", "b") || !one.SameZone("a", "x") || empty.NumZones() != 0 {
		t.Errorf("one zone: NumZones %d, SameZone %v; empty ring: NumZones %d", one.NumZones(), one.SameZone("a", "b"), empty.NumZones())
	}
}
