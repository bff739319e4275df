package main

import (
	"math/rand"
	"slices"
	"testing"
)

func TestAssignZones(t *testing.T) {
	var hosts []*host
	for i := 1; i <= 7; i++ {
		hosts = append(hosts, &host{idx: i})
	}
	assignZones(hosts, 3)
	if got, want := zoneLayout(hosts), "z1=host1,host4,host7 z2=host2,host5 z3=host3,host6"; got != want {
		t.Errorf("layout %q, want %q", got, want)
	}
}

// TestRoundOrder: without zones a round is the permutation the schedule always
// drew (seeded runs replay as before); with zones it has every kind once and
// the zone-down faults first and third.
func TestRoundOrder(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		want := rand.New(rand.NewSource(seed)).Perm(len(faultKinds))
		plain := roundOrder(rand.New(rand.NewSource(seed)), false)
		for i, k := range plain {
			if k != faultKinds[want[i]] {
				t.Fatalf("seed %d: unzoned round %q differs from the permutation %v", seed, plain, want)
			}
		}
		zoned := roundOrder(rand.New(rand.NewSource(seed)), true)
		all := slices.Concat(faultKinds, zoneFaultKinds)
		if got := slices.Sorted(slices.Values(zoned)); !slices.Equal(got, slices.Sorted(slices.Values(all))) {
			t.Fatalf("seed %d: zoned round %q is not every kind once", seed, zoned)
		}
		if !slices.Contains(zoneFaultKinds, zoned[0]) || !slices.Contains(zoneFaultKinds, zoned[2]) {
			t.Fatalf("seed %d: zoned round %q does not put the zone faults first and third", seed, zoned)
		}
	}
}

func TestShrinkable(t *testing.T) {
	n := func(name, zone string) *node { return &node{name: name, h: &host{zone: zone}} }
	a1, a2, b1, c1 := n("a1", "a"), n("a2", "a"), n("b1", "b"), n("c1", "c")
	members := []*node{a1, a2, b1, c1}
	cases := []struct {
		order []*node
		want  *node
	}{
		{[]*node{b1, c1, a2, a1}, a2},
		{[]*node{a1, b1}, a1},
		{[]*node{c1, b1}, nil},
	}
	for _, tc := range cases {
		if got := shrinkable(tc.order, members); got != tc.want {
			t.Errorf("shrinkable(%s) = %v, want %v", names(tc.order), got, tc.want)
		}
	}
}
