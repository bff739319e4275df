package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lni/goutils/leaktest"
	"github.com/redis/go-redis/v9"

	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/proxy/route"
)

// TestKindOf: every message type of the protocol is counted as the request it is.
func TestKindOf(t *testing.T) {
	for typ, want := range map[peer.MsgType]peerKind{
		peer.MsgForward: kindForward,
		peer.MsgRead:    kindReplica, peer.MsgWrite: kindReplica, peer.MsgWriteBatch: kindReplica, peer.MsgReadBatch: kindReplica,
		peer.MsgScan: kindReplica, peer.MsgCount: kindReplica, peer.MsgFlush: kindReplica,
		peer.MsgRoots: kindRepair, peer.MsgBranches: kindRepair, peer.MsgLeaves: kindRepair, peer.MsgKeys: kindRepair,
		peer.MsgFetch: kindRepair, peer.MsgPush: kindRepair, peer.MsgPurge: kindRepair, peer.MsgHolds: kindRepair,
	} {
		if got := kindOf(typ); got != want {
			t.Errorf("kindOf(%v) = %s, want %s", typ, kindNames[got], kindNames[want])
		}
	}
}

// TestZoneCounter: each request passes through unchanged and is counted by kind
// and by whether its destination is in this node's zone; with no zones every
// peer is local.
func TestZoneCounter(t *testing.T) {
	type call struct {
		node string
		typ  peer.MsgType
	}
	calls := []call{
		{"b", peer.MsgForward}, {"c", peer.MsgForward}, {"c", peer.MsgForward},
		{"b", peer.MsgWrite}, {"c", peer.MsgRead}, {"d", peer.MsgWriteBatch}, {"x", peer.MsgWrite},
		{"c", peer.MsgRoots}, {"d", peer.MsgPush},
	}
	zones := map[string]string{"a": "A", "b": "B", "c": "A", "d": "C"} // x: not a member
	for _, tc := range []struct {
		name          string
		zone          string
		zoneOf        func(string) string
		local, remote [numKinds]int64
	}{
		{"zones", "A", func(n string) string { return zones[n] }, [numKinds]int64{2, 1, 1}, [numKinds]int64{1, 3, 1}},
		{"no zones", "", func(string) string { return "" }, [numKinds]int64{3, 4, 2}, [numKinds]int64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sent []call
			fail := errors.New("refused")
			next := peer.CallerFunc(func(_ context.Context, node string, typ peer.MsgType, req []byte) ([]byte, error) {
				sent = append(sent, call{node, typ})
				if node == "d" {
					return nil, fail
				}
				return append([]byte("re:"), req...), nil
			})
			c := &zoneCounter{next: next, zone: tc.zone, zoneOf: tc.zoneOf}
			for _, cl := range calls {
				b, err := c.Call(context.Background(), cl.node, cl.typ, []byte("q"))
				if cl.node == "d" && !errors.Is(err, fail) || cl.node != "d" && (err != nil || string(b) != "re:q") {
					t.Fatalf("Call(%s, %v) = %q, %v: not the next caller's answer", cl.node, cl.typ, b, err)
				}
			}
			if !slices.Equal(sent, calls) {
				t.Fatalf("passed on %v, want %v", sent, calls)
			}
			if got := c.counts(); got != (zoneCounts{tc.local, tc.remote}) {
				t.Fatalf("counts = local %v remote %v, want local %v remote %v", got.local, got.remote, tc.local, tc.remote)
			}
		})
	}
}

// TestForwardStaysInZone: in a cluster of zones A, B, C, A, a front node of
// zone A that is not a replica of a key forwards its ops to the key's replica in
// zone A, although a replica of another zone comes first in its preference list;
// INFO cluster and the metrics count the forward as local to the zone. The
// replica coordinating a write sends its replica writes to the other zones.
func TestForwardStaysInZone(t *testing.T) {
	t.Cleanup(leaktest.AfterTest(t))
	// Timeouts no loaded machine reaches: every op goes where Route sends it.
	zones := []string{"A", "B", "C", "A"}
	nodes := startTestClusterWith(t, len(zones), func(i int, cfg *Config) {
		cfg.Zone, cfg.RequestTimeout = zones[i], 20*time.Second
	})
	front, local := nodes[0], nodes[3]
	for _, n := range nodes {
		for deadline := time.Now().Add(5 * time.Second); len(n.ms.Ring().Zones()) != 3; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s sees zones %v", n.cfg.Name, n.ms.Ring().Zones())
			}
		}
	}
	admin := clusterAdmin{front}
	key := ""
	for i := range 10000 {
		pl := admin.PreferenceList(fmt.Append(nil, "k", i))
		if pl[0] != local.cfg.Name && slices.Contains(pl, local.cfg.Name) && !slices.Contains(pl, front.cfg.Name) {
			key = fmt.Sprint("k", i)
			break
		}
	}
	if key == "" {
		t.Fatal("no key with n4 a replica behind another and n1 none")
	}
	if got := front.router.Route([]byte(key)); got != local.cfg.Name {
		t.Fatalf("Route(%s) = %q, want %s (zone A) behind %v", key, got, local.cfg.Name, admin.PreferenceList([]byte(key)))
	}
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: front.RESPAddr()})
	defer c.Close()
	if err := c.Set(ctx, key, "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, key).Result(); err != nil || v != "v" {
		t.Fatalf("GET %s = %q, %v", key, v, err)
	}
	if m := front.router.Metrics(); m != (route.Metrics{Forwarded: 2}) {
		t.Fatalf("%s router: %+v, want 2 ops forwarded", front.cfg.Name, m)
	}
	info, err := c.Info(ctx, "cluster").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"zone:A\r\n", "zones:3\r\n", "forwarded_local_zone:2\r\n", "forwarded_remote_zone:0\r\n"} {
		if !strings.Contains(info, want) {
			t.Errorf("INFO cluster of %s lacks %q:\n%s", front.cfg.Name, strings.TrimSpace(want), info)
		}
	}
	metrics := httpGet(t, "http://"+front.HTTPAddr()+"/metrics")
	for _, want := range []string{`dynakv_peer_requests_total{kind="forward",zone="local"} 2`,
		`dynakv_peer_requests_total{kind="forward",zone="remote"} 0`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics of %s lacks %q", front.cfg.Name, want)
		}
	}
	if zc := front.calls.counts(); zc.local[kindReplica]+zc.remote[kindReplica] != 0 {
		t.Errorf("%s sent replica requests %+v, want none: it coordinated nothing", front.cfg.Name, zc)
	}
	// local coordinated the SET and the GET: its replica requests went to the
	// key's two other replicas, in zones B and C, and none to zone A.
	for deadline := time.Now().Add(5 * time.Second); local.calls.counts().remote[kindReplica] < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s sent %+v, want at least 2 replica requests to other zones", local.cfg.Name, local.calls.counts())
		}
	}
	if zc := local.calls.counts(); zc.local[kindReplica] != 0 {
		t.Fatalf("%s sent %+v, want no replica request to its own zone", local.cfg.Name, zc)
	}
}
