package node

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lni/goutils/leaktest"
	"github.com/redis/go-redis/v9"
)

// TestZoneStatus: four nodes in two zones (N=3) show their zones in
// /cluster/status (members and the per-zone counts), DCLUSTER MEMBERS and
// DPREFLIST WITHZONES; a stopped node shows in its zone's alive count.
func TestZoneStatus(t *testing.T) {
	t.Cleanup(leaktest.AfterTest(t))
	zoneOf := func(i int) string { return []string{"east", "west"}[i%2] } // n1, n3 east
	nodes := startTestClusterWith(t, 4, func(i int, c *Config) { c.Zone = zoneOf(i) })
	body := httpGet(t, "http://"+nodes[1].HTTPAddr()+"/cluster/status")
	for _, want := range []string{`"zone": "west"`, `"zones": [`, `"members_alive": `, `"partitions_not_spread": 0`} {
		if !strings.Contains(body, want) {
			t.Errorf("/cluster/status lacks %s:\n%s", want, body)
		}
	}
	var st Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	for i, m := range st.Members {
		if m.Name != fmt.Sprint("n", i+1) || m.Zone != zoneOf(i) {
			t.Errorf("member %d: %s in zone %q, want n%d in %q", i, m.Name, m.Zone, i+1, zoneOf(i))
		}
	}
	// Two zones, N=3: every partition has a replica in each, one of them two.
	if len(st.Zones) != 2 || st.PartitionsNotSpread != 0 {
		t.Fatalf("zones %+v, %d partitions not spread", st.Zones, st.PartitionsNotSpread)
	}
	total := 0
	for i, z := range st.Zones {
		if z.Zone != zoneOf(i) || z.Members != 2 || z.Partitions != 1024 ||
			z.Replicas <= 1024 || z.Replicas >= 2048 {
			t.Errorf("zone %d: %+v", i, z)
		}
		total += z.Replicas
	}
	if total != 3*1024 {
		t.Errorf("the zones hold %d replicas, want 3*1024", total)
	}
	if mr := st.Members[0].Replicas + st.Members[2].Replicas; mr != st.Zones[0].Replicas {
		t.Errorf("east's members hold %d replicas, the zone %d", mr, st.Zones[0].Replicas)
	}

	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: nodes[0].RESPAddr()})
	defer c.Close()
	lines, err := c.Do(ctx, "DCLUSTER", "MEMBERS").StringSlice()
	if err != nil || len(lines) != 4 {
		t.Fatalf("DCLUSTER MEMBERS = %q, %v", lines, err)
	}
	for i, l := range lines {
		if want := fmt.Sprintf("n%d ", i+1); !strings.HasPrefix(l, want) || !strings.HasSuffix(l, " zone="+zoneOf(i)) {
			t.Errorf("DCLUSTER MEMBERS line %q: want %q... zone=%s", l, want, zoneOf(i))
		}
	}
	pl, err := c.Do(ctx, "DPREFLIST", "k").StringSlice()
	if err != nil || len(pl) != 3 {
		t.Fatalf("DPREFLIST k = %q, %v", pl, err)
	}
	withZones, err := c.Do(ctx, "DPREFLIST", "k", "WITHZONES").StringSlice()
	if err != nil || len(withZones) != 6 {
		t.Fatalf("DPREFLIST k WITHZONES = %q, %v", withZones, err)
	}
	zones := map[string]bool{}
	for i, name := range pl {
		var n int
		fmt.Sscanf(name, "n%d", &n)
		if withZones[2*i] != name || withZones[2*i+1] != zoneOf(n-1) {
			t.Errorf("DPREFLIST k WITHZONES = %q, for %q", withZones, pl)
		}
		zones[withZones[2*i+1]] = true
	}
	if len(zones) != 2 {
		t.Errorf("k's replicas %q are not in both zones", withZones)
	}

	// Under load gossip may suspect a live node for a while: wait for the view
	// to settle rather than asserting on the first change.
	nodes[3].Close() // n4, west
	deadline := time.Now().Add(20 * time.Second)
	for {
		st = nodes[0].Status()
		z := st.Zones
		if z[0].Members == 2 && z[0].MembersAlive == 2 && z[1].Members == 2 && z[1].MembersAlive == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("zones after n4 stopped: %+v, want east 2 of 2 alive, west 1 of 2", z)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
