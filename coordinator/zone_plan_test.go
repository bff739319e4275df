package coordinator

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dynakv/dynakv/ring"
)

// zonedPartition returns a ring of members named by zone letter and number (a1,
// a2, b1...: zone "a", "b"...), perZone members in each of the zones given by
// the letters of pattern, and a partition whose preference list's zones read as
// pattern, letter by letter ("abcbca": p0 in a, p1 in b...).
func zonedPartition(t *testing.T, pattern string, perZone int) (*ring.Ring, int) {
	t.Helper()
	var ms []ring.Member
	for _, z := range slices.Compact(slices.Sorted(slices.Values(strings.Split(pattern, "")))) {
		for i := range perZone {
			ms = append(ms, ring.Member{Name: z + strconv.Itoa(i+1), Zone: z})
		}
	}
	rg, err := ring.New(4096, ms)
	if err != nil {
		t.Fatal(err)
	}
	for p := range rg.Partitions() {
		var b strings.Builder
		for _, name := range rg.PreferenceList(p) {
			z, _ := rg.Zone(name)
			b.WriteString(z)
		}
		if b.String() == pattern {
			return rg, p
		}
	}
	t.Fatalf("no partition's preference list has zones %s", pattern)
	return nil, 0
}

// describePlan names the plan's nodes by their position in pl ("pI"; "pI>pJ"
// for pI standing in for pJ).
func describePlan(pl []string, pn plan) (remote, orphans, spare []string) {
	pos := func(node string) string { return "p" + strconv.Itoa(slices.Index(pl, node)) }
	for _, tg := range pn.remote {
		s := pos(tg.node)
		if tg.hintFor != "" {
			s += ">" + pos(tg.hintFor)
		}
		remote = append(remote, s)
	}
	for _, o := range pn.orphans {
		orphans = append(orphans, pos(o))
	}
	for _, o := range pn.spare {
		spare = append(spare, pos(o))
	}
	return remote, orphans, spare
}

// TestPlanZones checks that a dead or avoided owner's fallback comes from its
// zone when the zone has a usable one. pattern is the zones of the preference
// list's members (N=3: the first three are the owners); nodes are named by
// their position in it.
func TestPlanZones(t *testing.T) {
	for _, tc := range []struct {
		name          string
		pattern       string
		perZone       int
		self          int
		dead, avoided []int
		noHints       bool
		remote        []string
		orphans       []string
		spare         []string
	}{
		{name: "all alive: a spare in each other owner's zone", pattern: "abccab", perZone: 2,
			remote: []string{"p1", "p2"}, spare: []string{"p3", "p4", "p5"}},
		{name: "owner down: the fallback in its zone, not an earlier one in another", pattern: "abcbca", perZone: 2,
			dead: []int{2}, remote: []string{"p1", "p4>p2"}, spare: []string{"p3", "p5"}},
		{name: "owner down, first in its zone down too: the next in its zone", pattern: "abcbcacba", perZone: 3,
			dead: []int{2, 4}, remote: []string{"p1", "p6>p2"}, spare: []string{"p3", "p5", "p7"}},
		{name: "owner's zone down: the first fallback of another zone", pattern: "abcbca", perZone: 2,
			dead: []int{2, 4}, remote: []string{"p1", "p3>p2"}, spare: []string{"p5"}},
		{name: "an owner without a fallback in its zone leaves another's zone its own", pattern: "abcbca", perZone: 2,
			dead: []int{1, 2, 3}, remote: []string{"p5>p1", "p4>p2"}},
		{name: "two owners down in one zone: each gets one there", pattern: "abbaabab", perZone: 4,
			dead: []int{1, 2}, remote: []string{"p5>p1", "p7>p2"}, spare: []string{"p3", "p4", "p6"}},
		{name: "two owners down in one zone with one left there", pattern: "abbaab", perZone: 3,
			dead: []int{1, 2}, remote: []string{"p5>p1", "p3>p2"}, spare: []string{"p4"}},
		{name: "avoided owner: the fallback in its zone", pattern: "abcbca", perZone: 2,
			avoided: []int{2}, remote: []string{"p1", "p4>p2"}, spare: []string{"p3", "p5"}},
		{name: "avoided owner, no usable fallback: asked anyway", pattern: "abcbca", perZone: 2,
			avoided: []int{2, 3, 5}, dead: []int{4}, remote: []string{"p1", "p2"}},
		{name: "dead owner, no usable fallback: orphan", pattern: "abcbca", perZone: 2,
			dead: []int{2, 4}, avoided: []int{3, 5}, remote: []string{"p1"}, orphans: []string{"p2"}},
		{name: "hints off: no fallback, no spare", pattern: "abcbca", perZone: 2,
			dead: []int{2}, noHints: true, remote: []string{"p1"}},
		{name: "the coordinator is no fallback, even in the owner's zone", pattern: "abcbca", perZone: 2,
			self: 4, dead: []int{2}, remote: []string{"p0", "p1", "p3>p2"}, spare: []string{"p5"}},
		{name: "the coordinator is no fallback, another in the owner's zone is", pattern: "abcbcacba", perZone: 3,
			self: 4, dead: []int{2}, remote: []string{"p0", "p1", "p6>p2"}, spare: []string{"p3", "p5", "p7"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rg, p := zonedPartition(t, tc.pattern, tc.perZone)
			pl := rg.PreferenceList(p)
			in := func(set []int) func(string) bool {
				return func(node string) bool { return slices.Contains(set, slices.Index(pl, node)) }
			}
			dead := in(tc.dead)
			pn := planFor(rg, p, 3, pl[tc.self], func(n string) bool { return !dead(n) }, in(tc.avoided), tc.noHints)
			remote, orphans, spare := describePlan(pl, pn)
			if !slices.Equal(remote, tc.remote) || !slices.Equal(orphans, tc.orphans) || !slices.Equal(spare, tc.spare) {
				t.Fatalf("plan: remote %v, orphans %v, spare %v; want %v, %v, %v",
					remote, orphans, spare, tc.remote, tc.orphans, tc.spare)
			}
			if pn.self != (tc.self < 3) {
				t.Fatalf("plan.self = %v", pn.self)
			}
		})
	}
}

// TestSpareTake checks that a failed target's replacement is the spare in its
// owner's zone, else the first one left.
func TestSpareTake(t *testing.T) {
	rg, p := zonedPartition(t, "abcbcaacb", 3)
	pl := rg.PreferenceList(p)
	pn := planFor(rg, p, 3, pl[0], func(string) bool { return true }, func(string) bool { return false }, false)
	sp := pn.spares()
	var got []string
	for _, owner := range []int{2, 2, 1, 1, 0} {
		node, ok := sp.take(pl[owner])
		if !ok {
			got = append(got, "none")
			continue
		}
		got = append(got, fmt.Sprintf("p%d>p%d", slices.Index(pl, node), owner))
	}
	// Spares p3 (b), p4 (c), p5 (a): owner p2 (c) takes p4, then the first left,
	// p3; owner p1 (b) finds none in b and takes p5; then none is left.
	if want := []string{"p4>p2", "p3>p2", "p5>p1", "none", "none"}; !slices.Equal(got, want) {
		t.Fatalf("takes = %v, want %v", got, want)
	}

	// Without zones: in order.
	rg = testRing(t, nodeNames(7)...)
	pl = rg.PreferenceList(0)
	pn = planFor(rg, 0, 3, pl[0], func(string) bool { return true }, func(string) bool { return false }, false)
	sp = pn.spares()
	for i, owner := range []int{2, 1, 2} {
		if node, _ := sp.take(pl[owner]); node != pl[3+i] {
			t.Fatalf("take %d for p%d = p%d, want p%d", i, owner, slices.Index(pl, node), 3+i)
		}
	}
}

// planForZoneless is planFor as it was before zones: each dead or avoided owner
// takes the next usable fallback in order, and the spares are the usable ones
// after the last taken. planFor must plan exactly so on a ring of one zone.
func planForZoneless(pl []string, n int, self string, alive, avoided func(string) bool, disableHints bool) plan {
	if len(pl) == 0 {
		return plan{n: 1, self: true}
	}
	n = min(n, len(pl))
	pn := plan{n: n}
	usable := func(node string) bool { return node != self && alive(node) && !avoided(node) }
	fb := n
	for _, node := range pl[:n] {
		if node == self {
			pn.self = true
			continue
		}
		isAlive := alive(node)
		if isAlive && (disableHints || !avoided(node)) {
			pn.remote = append(pn.remote, target{node: node})
			continue
		}
		if disableHints {
			continue
		}
		for fb < len(pl) && !usable(pl[fb]) {
			fb++
		}
		switch {
		case fb < len(pl):
			pn.remote = append(pn.remote, target{node: pl[fb], hintFor: node})
			fb++
		case isAlive:
			pn.remote = append(pn.remote, target{node: node})
		default:
			pn.orphans = append(pn.orphans, node)
		}
	}
	if !disableHints {
		for _, node := range pl[min(fb, len(pl)):] {
			if len(pn.spare) == n {
				break
			}
			if usable(node) {
				pn.spare = append(pn.spare, node)
			}
		}
	}
	return pn
}

// randomPlanCase is a random ring (1 to 4 zones, or none), partition, N,
// coordinator, liveness and avoidance.
type randomPlanCase struct {
	rg            *ring.Ring
	p, n          int
	self          string
	dead, avoided map[string]bool
	noHints       bool
}

func newRandomPlanCase(t *testing.T, rng *rand.Rand, zones int) randomPlanCase {
	t.Helper()
	ms := make([]ring.Member, 1+rng.IntN(12))
	for i := range ms {
		ms[i] = ring.Member{Name: fmt.Sprint("n", i), Weight: float64(1 + rng.IntN(3))}
		if zones > 0 {
			ms[i].Zone = fmt.Sprint("z", rng.IntN(zones))
		}
	}
	rg, err := ring.New(64, ms)
	if err != nil {
		t.Fatal(err)
	}
	c := randomPlanCase{rg: rg, p: rng.IntN(64), n: 1 + rng.IntN(5), dead: map[string]bool{}, avoided: map[string]bool{},
		noHints: rng.IntN(8) == 0}
	c.self = ms[rng.IntN(len(ms))].Name
	for _, m := range ms {
		switch r := rng.IntN(6); {
		case m.Name == c.self:
		case r == 0:
			c.dead[m.Name] = true
		case r == 1:
			c.avoided[m.Name] = true
		}
	}
	return c
}

func (c randomPlanCase) plan() plan {
	return planFor(c.rg, c.p, c.n, c.self, func(n string) bool { return !c.dead[n] }, func(n string) bool { return c.avoided[n] }, c.noHints)
}

func (c randomPlanCase) usable(node string) bool {
	return node != c.self && !c.dead[node] && !c.avoided[node]
}

// TestPlanZonelessUnchanged checks planFor against the rule before zones on
// random rings of one zone (named or not): the same plan, spares included.
func TestPlanZonelessUnchanged(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 1))
	for i := range 5000 {
		c := newRandomPlanCase(t, rng, i%2)
		got := c.plan()
		want := planForZoneless(c.rg.PreferenceList(c.p), c.n, c.self, func(n string) bool { return !c.dead[n] },
			func(n string) bool { return c.avoided[n] }, c.noHints)
		if got.n != want.n || got.self != want.self || !slices.Equal(got.remote, want.remote) ||
			!slices.Equal(got.orphans, want.orphans) || !slices.Equal(got.spare, want.spare) {
			t.Fatalf("case %d (%+v): plan %+v, before zones %+v", i, c, got, want)
		}
	}
}

// TestPlanZonesProperties checks, on random rings with zones and random
// liveness, that every owner is planned for once; every fallback is usable, a
// fallback (not an owner) and distinct; a fallback outside its owner's zone is
// taken only when every fallback of that zone is unusable or taken; an owner is
// an orphan only when no usable fallback is left; and the spares are usable,
// untaken, in order, at most N, with as many in each zone as its owners (other
// than the coordinator) where the zone has them.
func TestPlanZonesProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 2))
	for i := range 5000 {
		c := newRandomPlanCase(t, rng, 1+rng.IntN(4))
		pn := c.plan()
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("case %d (%+v), plan %+v: %s", i, c, pn, fmt.Sprintf(format, args...))
		}
		pl := c.rg.PreferenceList(c.p)
		n := min(c.n, len(pl))
		owners, fallbacks := pl[:n], pl[n:]
		zone := func(node string) string { z, _ := c.rg.Zone(node); return z }
		taken := map[string]bool{}
		for _, tg := range pn.remote {
			if taken[tg.node] || tg.node == c.self {
				fail("target %s twice, or the coordinator", tg.node)
			}
			taken[tg.node] = true
		}
		planned := map[string]int{}
		if pn.self {
			planned[c.self]++
		}
		for _, tg := range pn.remote {
			planned[tg.owner()]++
			if tg.hintFor == "" {
				if c.dead[tg.node] || !slices.Contains(owners, tg.node) {
					fail("target %s is dead or no owner", tg.node)
				}
				continue
			}
			if c.noHints || !c.usable(tg.node) || !slices.Contains(fallbacks, tg.node) {
				fail("fallback %s is unusable or no fallback", tg.node)
			}
			if zone(tg.node) != zone(tg.hintFor) {
				for _, f := range fallbacks {
					if zone(f) == zone(tg.hintFor) && c.usable(f) && !taken[f] {
						fail("fallback %s for %s outside its zone, while %s is free in it", tg.node, tg.hintFor, f)
					}
				}
			}
		}
		for _, o := range pn.orphans {
			planned[o]++
			for _, f := range fallbacks {
				if c.usable(f) && !taken[f] {
					fail("orphan %s while %s is free", o, f)
				}
			}
		}
		for _, o := range owners {
			want := 1
			if c.noHints && c.dead[o] {
				want = 0
			}
			if planned[o] != want {
				fail("owner %s planned %d times, want %d", o, planned[o], want)
			}
		}
		if len(pn.spare) > n || !slices.IsSortedFunc(pn.spare, func(a, b string) int { return slices.Index(pl, a) - slices.Index(pl, b) }) {
			fail("spares %v: more than N or out of order", pn.spare)
		}
		free := map[string]int{}   // per zone, usable fallbacks not taken
		owning := map[string]int{} // per zone, owners other than the coordinator
		for _, f := range fallbacks {
			if c.usable(f) && !taken[f] {
				free[zone(f)]++
			}
		}
		for _, o := range owners {
			if o != c.self {
				owning[zone(o)]++
			}
		}
		spares := map[string]int{}
		for _, s := range pn.spare {
			if c.noHints || !c.usable(s) || taken[s] || !slices.Contains(fallbacks, s) {
				fail("spare %s is unusable, taken or no fallback", s)
			}
			spares[zone(s)]++
		}
		for z, k := range owning {
			if !c.noHints && spares[z] < min(k, free[z]) {
				fail("zone %s has %d spares, %d owners and %d free fallbacks", z, spares[z], k, free[z])
			}
		}
	}
}
