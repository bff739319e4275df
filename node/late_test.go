package node

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lni/goutils/leaktest"
	"github.com/redis/go-redis/v9"
)

// TestForwardAfterClockJump: the coordinating node's monotonic clock jumps 5s
// ahead of the front node's (to the front node it is as if its own clock had stood
// still, as in a system suspend): the first forwarded command it then gets looks 5s
// late to it and is refused unrun (finding 7's rule); the front node, still in
// time, sends it again on a fresh connection, whose handshake re-bounds the clocks,
// and it runs there, once. No spurious fallback, no lost or doubled write.
func TestForwardAfterClockJump(t *testing.T) {
	t.Cleanup(leaktest.AfterTest(t))
	// n1's clock can jump ahead: to n1 that is the time a pause took (the
	// monotonic reading moves too).
	var pause atomic.Int64
	n1Now := func() time.Time { return time.Now().Add(time.Duration(pause.Load())) }
	var nodes []*Node
	for i := range 4 {
		cfg := Config{Name: fmt.Sprintf("n%d", i+1), Storage: StorageMemory, Secret: "s3cret",
			RESPAddr: "127.0.0.1:0", MemcacheAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
			GossipAddr: "127.0.0.1:0", ClusterAddr: "127.0.0.1:0", GossipTuning: fastGossip}
		if i == 0 {
			cfg.Now = n1Now
		} else {
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
		for n.clusterStats().alive != len(nodes) {
			if time.Now().After(deadline) {
				t.Fatalf("%s sees %d of %d members alive", n.cfg.Name, n.clusterStats().alive, len(nodes))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	n1, n4 := nodes[0], nodes[3]
	// A key n4 forwards to n1: n1 first among its replicas, n4 not one of them.
	admin := clusterAdmin{n4}
	key := ""
	for i := range 10000 {
		k := fmt.Sprint("key", i)
		if pl := admin.PreferenceList([]byte(k)); pl[0] == "n1" && !slices.Contains(pl, "n4") {
			key = k
			break
		}
	}
	if key == "" {
		t.Fatal("no key with n1 first and n4 not a replica")
	}
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: n4.RESPAddr()})
	defer c.Close()
	if err := c.Set(ctx, key, "first", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got := n4.router.Metrics().Forwarded; got != 1 {
		t.Fatalf("%d ops forwarded, want the SET forwarded to n1", got)
	}
	served := n1.tr.Stats().Served

	pause.Store(int64(5 * time.Second))
	if err := c.Set(ctx, key, "second", 0).Err(); err != nil {
		t.Fatalf("SET after n1's clock jumped: %v", err)
	}
	if got := n1.tr.Stats().Expired; got != 1 {
		t.Fatalf("n1 refused %d requests as late, want the first one after the jump", got)
	}
	if got := n1.tr.Stats().Served - served; got < 1 {
		t.Fatalf("n1 served %d requests after the jump, want the forwarded SET", got)
	}
	if m := n4.router.Metrics(); m.Forwarded != 2 || m.Fallbacks != 0 {
		t.Fatalf("forwarded %d, fallbacks %d; want both SETs run on n1", m.Forwarded, m.Fallbacks)
	}
	if v, err := c.Get(ctx, key).Result(); err != nil || v != "second" {
		t.Fatalf("GET = %q, %v", v, err)
	}
	vals, err := c.Do(ctx, "DGET", key).Slice()
	if err != nil || len(vals[1].([]any)) != 1 {
		t.Fatalf("DGET = %v, %v; want one value", vals, err)
	}
}
