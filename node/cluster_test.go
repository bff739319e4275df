package node

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/lni/goutils/leaktest"
	"github.com/redis/go-redis/v9"

	"github.com/dynakv/dynakv/cluster"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/vclock"
)

// fastGossip shortens memberlist's intervals for tests on loopback.
func fastGossip(c *memberlist.Config) {
	c.ProbeInterval = 100 * time.Millisecond
	c.ProbeTimeout = 200 * time.Millisecond
	c.GossipInterval = 20 * time.Millisecond
	c.PushPullInterval = 200 * time.Millisecond
}

// startTestCluster starts count in-process nodes that join the first one.
func startTestCluster(t *testing.T, count int) []*Node {
	t.Helper()
	return startTestClusterWith(t, count, nil)
}

// startTestClusterWith is startTestCluster with edit, when not nil, called on
// node i's configuration (named n<i+1>) before it starts.
func startTestClusterWith(t testing.TB, count int, edit func(i int, c *Config)) []*Node {
	t.Helper()
	var nodes []*Node
	for i := range count {
		cfg := Config{Name: fmt.Sprintf("n%d", i+1), Storage: StorageMemory, Secret: "s3cret",
			RESPAddr: "127.0.0.1:0", MemcacheAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
			GossipAddr: "127.0.0.1:0", ClusterAddr: "127.0.0.1:0", GossipTuning: fastGossip}
		if edit != nil {
			edit(i, &cfg)
		}
		if i > 0 {
			cfg.Join = []string{nodes[0].GossipAddr()}
		}
		n, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
		t.Cleanup(func() { n.Close() })
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range nodes {
		for n.clusterStats().alive != count {
			if time.Now().After(deadline) {
				t.Fatalf("%s sees %d of %d members alive", n.cfg.Name, n.clusterStats().alive, count)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nodes
}

// TestClusterOperatorSurface: three in-process nodes agree on DPREFLIST, report the
// INFO cluster lines, serve /cluster/status, replicate a write to the key's three
// replicas (DGET LOCAL), and DCLUSTER REMOVE takes a stopped node out of the ring.
func TestClusterOperatorSurface(t *testing.T) {
	t.Cleanup(leaktest.AfterTest(t)) // runs after the nodes' cleanups
	nodes := startTestCluster(t, 3)
	ctx := context.Background()
	cs := make([]*redis.Client, len(nodes))
	for i, n := range nodes {
		cs[i] = redis.NewClient(&redis.Options{Addr: n.RESPAddr()})
		defer cs[i].Close()
	}
	var pl []string
	for i, c := range cs {
		got, err := c.Do(ctx, "DPREFLIST", "k").StringSlice()
		if err != nil || len(got) != 3 {
			t.Fatalf("DPREFLIST on n%d = %v, %v", i+1, got, err)
		}
		if pl != nil && !slices.Equal(pl, got) {
			t.Fatalf("nodes disagree on DPREFLIST: %v vs %v", pl, got)
		}
		pl = got
	}
	if err := cs[0].Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// W=2: the third replica gets the write in the background.
	deadline := time.Now().Add(5 * time.Second)
	for i, c := range cs {
		for {
			r, err := c.Do(ctx, "DGET", "k", "LOCAL").Slice()
			if err == nil && len(r[1].([]any)) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("DGET k LOCAL on n%d = %v, %v", i+1, r, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	info, err := cs[1].Info(ctx, "cluster").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cluster_members:3", "hints_pending:0",
		"hints_delivered:0", "read_repairs:", "n:3", "r:2", "w:2"} {
		if !strings.Contains(info, want) {
			t.Errorf("INFO cluster lacks %q:\n%s", want, info)
		}
	}
	var st Status
	if err := json.Unmarshal([]byte(httpGet(t, "http://"+nodes[2].HTTPAddr()+"/cluster/status")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Members) != 3 || st.N != 3 || st.Members[0].Replicas != 1024 {
		t.Fatalf("status = %+v", st)
	}
	if st.Zones != nil || st.Members[0].Zone != "" {
		t.Errorf("a cluster without zones shows zones: %+v", st)
	}
	metrics := httpGet(t, "http://"+nodes[0].HTTPAddr()+"/metrics")
	for _, want := range []string{"dynakv_cluster_members 3", "dynakv_hints_pending 0", "dynakv_read_repairs_total"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// A stopped node stays a member until removed.
	nodes[2].Close()
	if err := cs[0].Do(ctx, "DCLUSTER", "REMOVE", "nobody").Err(); err == nil {
		t.Fatal("DCLUSTER REMOVE of an unknown node succeeded")
	}
	if err := cs[0].Do(ctx, "DCLUSTER", "REMOVE", "n3").Err(); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for nodes[1].clusterStats().members != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("n2 still sees %d members after removing n3", nodes[1].clusterStats().members)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v, err := cs[1].Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET k after removing n3 = %q, %v", v, err)
	}
}

// TestRouterSharesCoordinatorAvoidance: a replica that refused a replica write is
// avoided by the node's router too (one view for every request of the node),
// while memberlist still reports it alive: ops are forwarded to the next replica.
func TestRouterSharesCoordinatorAvoidance(t *testing.T) {
	t.Cleanup(leaktest.AfterTest(t))
	nodes := startTestCluster(t, 4)
	a, x := nodes[0], nodes[3]
	admin := clusterAdmin{a}
	find := func(want func(pl []string) bool) string {
		for i := range 10000 {
			if k := fmt.Sprint("k", i); want(admin.PreferenceList([]byte(k))) {
				return k
			}
		}
		t.Fatal("no such key")
		return ""
	}
	// k1 is written through a, with x among its replicas; k2 is not a's, and
	// x is its first replica.
	k1 := find(func(pl []string) bool { return pl[0] == a.cfg.Name && slices.Contains(pl, x.cfg.Name) })
	k2 := find(func(pl []string) bool { return pl[0] == x.cfg.Name && !slices.Contains(pl, a.cfg.Name) })
	rt := a.router
	if got := rt.Route([]byte(k2)); got != x.cfg.Name {
		t.Fatalf("Route(%s) = %q before any failure, want %s", k2, got, x.cfg.Name)
	}
	x.tr.Close() // x refuses internode connections; gossip still says it is alive
	c := redis.NewClient(&redis.Options{Addr: a.RESPAddr()})
	defer c.Close()
	if err := c.Set(context.Background(), k1, "v", 0).Err(); err != nil {
		t.Fatalf("SET %s with a replica refusing: %v", k1, err)
	}
	// The replica write to x may fail just after the quorum answered the SET.
	for deadline := time.Now().Add(5 * time.Second); !a.avoid.Avoided(x.cfg.Name); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s is not avoided after it refused a replica write", x.cfg.Name)
		}
	}
	if !a.ms.Alive(x.cfg.Name) {
		t.Skip("gossip declared x dead already: the test shows nothing")
	}
	if got := rt.Route([]byte(k2)); got == x.cfg.Name || got == "" {
		t.Fatalf("Route(%s) = %q after %s refused a replica write, want its next replica", k2, got, x.cfg.Name)
	}
}

// TestRemovedMemberLeavesTransport: once a member is removed, the other nodes'
// transports drop its peer entry and close its connection.
func TestRemovedMemberLeavesTransport(t *testing.T) {
	t.Cleanup(leaktest.AfterTest(t))
	nodes := startTestCluster(t, 3)
	gone := nodes[2]
	addr := gone.tr.Addr()
	// With N=3 on three nodes every write a node coordinates reaches every
	// node: write through each of the two that stay until both have called
	// the third (bounded; under load its first answers may be "starting").
	deadline := time.Now().Add(10 * time.Second)
	for i, n := range nodes[:2] {
		c := redis.NewClient(&redis.Options{Addr: n.RESPAddr()})
		for j := 0; !slices.Contains(n.tr.PeerAddrs(), addr); j++ {
			if time.Now().After(deadline) {
				c.Close()
				t.Fatalf("%s never called %s", n.cfg.Name, gone.cfg.Name)
			}
			if err := c.Set(context.Background(), fmt.Sprint("k", i, ".", j), "v", 0).Err(); err != nil {
				t.Logf("SET through %s: %v", n.cfg.Name, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		c.Close()
	}
	gone.Close()
	c := redis.NewClient(&redis.Options{Addr: nodes[0].RESPAddr()})
	defer c.Close()
	if err := c.Do(context.Background(), "DCLUSTER", "REMOVE", gone.cfg.Name).Err(); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for _, n := range nodes[:2] {
		for slices.Contains(n.tr.PeerAddrs(), addr) {
			if time.Now().After(deadline) {
				t.Fatalf("%s still holds a peer entry for removed %s: %v", n.cfg.Name, gone.cfg.Name, n.tr.PeerAddrs())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestLeaveHandsOffHintsOfADownOwner: a leaving node that holds a hint for a member
// that is down hands it to the key's live replicas and only then leaves the ring.
// Before, a leave finished with hints still held, on a node tombstone purge no
// longer asks once it left; or, had it waited for the owner, never finished.
func TestLeaveHandsOffHintsOfADownOwner(t *testing.T) {
	var nodes []*Node
	for i := range 4 {
		cfg := Config{Name: fmt.Sprintf("n%d", i+1), Storage: StorageMemory, Secret: "s3cret",
			RESPAddr: "127.0.0.1:0", MemcacheAddr: "off", HTTPAddr: "off",
			GossipAddr: "127.0.0.1:0", ClusterAddr: "127.0.0.1:0", GossipTuning: fastGossip,
			AAEInterval: 100 * time.Millisecond}
		if i > 0 {
			cfg.Join = []string{nodes[0].GossipAddr()}
		}
		n, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
		t.Cleanup(func() { n.Close() })
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("4 members alive", func() bool { return nodes[0].clusterStats().alive == 4 })
	// A key n4 owns and n3, which leaves, does not: n3 keeps a hint for n4.
	rg := nodes[0].ms.Ring()
	var key []byte
	for i := 0; key == nil; i++ {
		k := []byte(fmt.Sprintf("k%d", i))
		reps := rg.Replicas(rg.Partition(k), 3)
		if slices.Contains(reps, "n4") && !slices.Contains(reps, "n3") {
			key = k
		}
	}
	rec := vclock.Update(vclock.Set{}, nil, "x:1", vclock.Value{Data: []byte("v"), Timestamp: 1}, 1, 1)
	if _, err := nodes[2].store.UpdateHint("n4", key, func(record.Record, bool) (record.Record, error) { return record.String(rec), nil }); err != nil {
		t.Fatal(err)
	}
	nodes[3].Close()
	waitFor("n4 seen down", func() bool { return !nodes[2].ms.Alive("n4") })
	if err := nodes[2].Leave(); err != nil {
		t.Fatal(err)
	}
	waitFor("n3's leave to finish", func() bool {
		m, ok := nodes[0].ms.Member("n3")
		return ok && m.State == cluster.StateRemoved
	})
	if h := nodes[2].store.HintCount(); h != 0 {
		t.Fatalf("n3 left the ring holding %d hints", h)
	}
	rg = nodes[0].ms.Ring()
	for _, r := range rg.Replicas(rg.Partition(key), 3) {
		if r == "n4" {
			continue
		}
		n := nodes[map[string]int{"n1": 0, "n2": 1}[r]]
		got, _, err := n.store.Get(key)
		if err != nil || got.Str.Len() != 1 {
			t.Fatalf("%s holds %v (%v) of the hinted key, want the hint's value", r, got, err)
		}
	}
}
