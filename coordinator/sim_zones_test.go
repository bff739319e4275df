package coordinator_test

// The simulation with zones (issue 17): nodes dealt out over zones (params.zones),
// the ring placing each key's replicas over them, and sloppy quorum keeping a
// down owner's copy in its zone.

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dynakv/dynakv/proxy"
)

// TestSimZoneHints: six nodes in three zones of two (N=3: one replica of each
// key in each zone). For every owner of a few keys in turn, the owner crashes,
// a write goes through another owner, and the hint for the crashed owner is
// kept by the other node of its zone, and by no other node, even where a node
// of another zone comes first among the key's fallbacks; once the owner is
// back, the hint is delivered.
func TestSimZoneHints(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScriptSim(t, params{nodes: 6, zones: 3}, nil)
		defer func() {
			for _, n := range s.allNodes() {
				if n.up {
					s.crash(n)
				}
			}
		}()
		ctx := context.Background()
		rg := s.x.members.latest().ring
		otherZoneFirst := 0 // cases where the zone-blind rule would have picked another zone
		for k := range 4 {
			key := fmt.Sprint("zk", k)
			pl := rg.PreferenceList(rg.Partition([]byte(key)))
			for i := range 3 {
				owner, front := pl[i], pl[(i+1)%3]
				zone := s.p.zoneOf(owner)
				if s.p.zoneOf(pl[3]) != zone {
					otherZoneFirst++
				}
				s.crash(s.node(owner))
				time.Sleep(time.Second) // everyone sees it dead
				val := fmt.Sprintf("v%d.%d", k, i)
				if _, err := s.node(front).px.Do(ctx, proxy.Op{Kind: proxy.OpSet, Key: []byte(key), Value: []byte(val)}); err != nil {
					t.Fatalf("SET %s through %s with %s down: %v", key, front, owner, err)
				}
				var holders []string
				for _, n := range s.allNodes() {
					if _, found, err := n.store.GetHint(owner, []byte(key)); err == nil && found {
						holders = append(holders, n.name+"@"+s.p.zoneOf(n.name))
					}
				}
				var want []string
				for _, name := range pl[3:] {
					if s.p.zoneOf(name) == zone {
						want = append(want, name+"@"+zone)
					}
				}
				if !slices.Equal(holders, want) {
					t.Fatalf("%s (preference list %v): the hint for %s@%s is on %v, want %v (its zone's other node)",
						key, pl, owner, zone, holders, want)
				}
				s.boot(s.node(owner))
				time.Sleep(3 * time.Second) // the holder's handoff delivers
				rec, _, _ := s.node(owner).store.Get([]byte(key))
				got := false
				for v := range rec.Str.Values() {
					got = got || string(v.Data) == val
				}
				if !got {
					t.Fatalf("%s: %s does not hold %s after handoff", key, owner, val)
				}
				if n := s.hints(); n != 0 {
					t.Fatalf("%s: %d hints left after %s is back", key, n, owner)
				}
			}
		}
		if otherZoneFirst == 0 {
			t.Fatal("no case where another zone's node comes first among the fallbacks: the test shows nothing")
		}
	})
}

// TestSimZones runs the simulation (faults, churn, expiry, as TestSim) with the
// nodes in two or three zones.
func TestSimZones(t *testing.T) {
	n := max(2, seedCount(t)/25)
	for seed := range uint64(n) {
		seed += 1_000_001
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				p := simParams(seed)
				p.zones = 2 + int(seed%2)
				if s := runSim(t, seed, p, nil); t.Failed() {
					s.dump(t)
				}
			})
		})
	}
}

// scriptZoneHintedHandoff: six nodes in three zones; a replica is down, and the
// write's hint for it goes to the fallback in its zone, not to the first
// fallback (in another zone); it delivers once the owner is back.
func scriptZoneHintedHandoff(s *sim, note func(string, ...any)) {
	ctx := context.Background()
	rg := s.x.members.latest().ring
	pl := rg.PreferenceList(rg.Partition([]byte("k")))
	var zones []string
	for _, name := range pl {
		zones = append(zones, name+"@"+s.p.zoneOf(name))
	}
	note("preference list of k: %v", zones)
	down := pl[1]
	if s.p.zoneOf(down) == s.p.zoneOf(pl[3]) {
		down = pl[2]
	}
	note("crash %s (zone %s)", down, s.p.zoneOf(down))
	s.crash(s.node(down))
	time.Sleep(time.Second) // everyone sees it dead
	note("%s: SET k v1", pl[0])
	if _, err := s.node(pl[0]).px.Do(ctx, proxy.Op{Kind: proxy.OpSet, Key: []byte("k"), Value: []byte("v1")}); err != nil {
		s.t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	note("restart %s", down)
	s.boot(s.node(down))
	time.Sleep(2 * time.Second) // the fallback's handoff delivers
	note("%s: GET k", down)
	res, err := s.node(down).px.Do(ctx, proxy.Op{Kind: proxy.OpGet, Key: []byte("k")})
	if err != nil || string(res.Item.Value) != "v1" {
		s.t.Fatalf("GET k after handoff: %q, %v", res.Item.Value, err)
	}
	time.Sleep(100 * time.Millisecond)
}
