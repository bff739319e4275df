package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dynakv/dynakv/node"
)

func TestDemoConfigs(t *testing.T) {
	cfgs := demoConfigs(3, 0, "d", node.StorageMemory, "s", slog.New(slog.DiscardHandler))
	seen := map[string]bool{}
	for i, c := range cfgs {
		if want := fmt.Sprintf("dynakv%d", i+1); c.Name != want || c.DataDir != "d/"+want {
			t.Errorf("node %d: name %q, data dir %q", i, c.Name, c.DataDir)
		}
		for _, a := range []string{c.RESPAddr, c.MemcacheAddr, c.HTTPAddr, c.GossipAddr, c.ClusterAddr} {
			if seen[a] {
				t.Errorf("address %s used twice", a)
			}
			seen[a] = true
		}
		if err := c.EnsureDefaults().Validate(); err != nil {
			t.Errorf("node %d: %v", i, err)
		}
		if i == 0 && len(c.Join) != 0 || i > 0 && (len(c.Join) != 1 || c.Join[0] != cfgs[0].GossipAddr) {
			t.Errorf("node %d joins %v; want the first node's gossip address (and the first none)", i, c.Join)
		}
	}
	if cfgs[1].RESPAddr != "127.0.0.1:6380" || cfgs[2].ClusterAddr != "127.0.0.1:7951" {
		t.Errorf("ports are not the documented consecutive defaults: %+v", cfgs[1:])
	}
	for _, c := range cfgs {
		if c.Zone != "" {
			t.Errorf("%s is in zone %q without --zones", c.Name, c.Zone)
		}
	}
}

// TestDemoConfigsZones: --zones K deals the nodes round-robin into zone-1..zone-K.
func TestDemoConfigsZones(t *testing.T) {
	for _, tc := range []struct {
		nodes, zones int
		want         []string
	}{
		{6, 3, []string{"zone-1", "zone-2", "zone-3", "zone-1", "zone-2", "zone-3"}},
		{5, 2, []string{"zone-1", "zone-2", "zone-1", "zone-2", "zone-1"}},
		{3, 3, []string{"zone-1", "zone-2", "zone-3"}},
		{2, 1, []string{"zone-1", "zone-1"}},
		{2, 0, []string{"", ""}},
	} {
		var got []string
		for _, c := range demoConfigs(tc.nodes, tc.zones, "d", node.StorageMemory, "s", slog.New(slog.DiscardHandler)) {
			if err := c.EnsureDefaults().Validate(); err != nil {
				t.Errorf("%s: %v", c.Name, err)
			}
			got = append(got, c.Zone)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%d nodes, %d zones: %q, want %q", tc.nodes, tc.zones, got, tc.want)
		}
	}
}

// TestDemoZonesFlag: --zones must be between 0 and --nodes.
func TestDemoZonesFlag(t *testing.T) {
	for _, args := range [][]string{{"--nodes", "2", "--zones", "3"}, {"--zones", "-1"}} {
		cmd := newDemoCmd()
		cmd.SetArgs(args)
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "--zones must be between 0") {
			t.Errorf("%q: %v", args, err)
		}
	}
}

// TestPrintStatusZones: the ZONE column and the per-zone table show only when
// members have zones; "-" stands for a member without one.
func TestPrintStatusZones(t *testing.T) {
	st := node.Status{Node: "a", Partitions: 1024, N: 3, R: 2, W: 2,
		Members: []node.MemberStatus{
			{Name: "a", Zone: "east", State: "active", Alive: true, Primaries: 600, Replicas: 1500},
			{Name: "b", State: "active", Alive: false, Primaries: 424, Replicas: 1572},
		},
		Zones: []node.ZoneStatus{
			{Zone: "", Members: 1, MembersAlive: 0, Replicas: 1572, Partitions: 1024},
			{Zone: "east", Members: 1, MembersAlive: 1, Replicas: 1500, Partitions: 1024},
		}}
	var b strings.Builder
	printStatus(&b, st, false)
	for _, want := range []string{
		"MEMBER  ZONE  STATE ",
		"a       east  active",
		"b       -     active",
		"ZONE  NODES ALIVE  PARTITION REPLICAS  PARTITIONS COVERED\n",
		"-     0/1          1572                1024/1024\n",
		"east  1/1          1500                1024/1024\n",
		"placement: every partition has replicas in all 2 zones\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
	st.PartitionsNotSpread = 7
	b.Reset()
	printStatus(&b, st, false)
	if want := "placement: WARNING: 7 partitions have their 3 replicas in fewer than 2 zones\n"; !strings.Contains(b.String(), want) {
		t.Errorf("status lacks %q:\n%s", want, b.String())
	}

	// Without zones: no ZONE column, no zone table.
	st.Members[0].Zone, st.Zones, st.PartitionsNotSpread = "", nil, 0
	b.Reset()
	printStatus(&b, st, false)
	if out := b.String(); strings.Contains(out, "ZONE") || strings.Contains(out, "placement") || !strings.Contains(out, "MEMBER  STATE ") {
		t.Errorf("status of a cluster without zones:\n%s", out)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunDemo runs the demo's nodes, in three zones, on free ports: it prints how
// to reach every node and its zone once they see each other, and stops when its
// context ends.
func TestRunDemo(t *testing.T) {
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	// The ports are free when picked but may be taken (gossip also needs the UDP
	// port) before the demo binds them: then start again on new ones.
	var cfgs []node.Config
	var out syncBuf
	for attempt := 1; ; attempt++ {
		cfgs = demoConfigs(3, 3, t.TempDir(), node.StorageMemory, "s", slog.New(slog.DiscardHandler))
		for i := range cfgs {
			c := &cfgs[i]
			c.RESPAddr, c.MemcacheAddr, c.HTTPAddr, c.GossipAddr, c.ClusterAddr = free(), free(), free(), free(), free()
			if i > 0 {
				c.Join = []string{cfgs[0].GossipAddr}
			}
		}
		out = syncBuf{}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- runDemo(ctx, &out, cfgs, "s") }()
		deadline := time.Now().Add(20 * time.Second)
		var err error
	wait:
		for !strings.Contains(out.String(), "Press Ctrl-C") {
			select {
			case err = <-done:
				break wait
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("demo did not start within 20s:\n%s\n%v", out.String(), <-done)
			}
		}
		if err == nil {
			cancel()
			err = <-done
			if err != nil {
				t.Fatal(err)
			}
			break
		}
		cancel()
		if !strings.Contains(err.Error(), "address already in use") || attempt == 3 {
			t.Fatalf("demo failed to start (attempt %d): %v\n%s", attempt, err, out.String())
		}
		t.Logf("attempt %d: %v; again on other ports", attempt, err)
	}
	for _, c := range cfgs {
		_, port, _ := net.SplitHostPort(c.RESPAddr)
		if !strings.Contains(out.String(), c.Name+"  "+c.Zone+"  redis-cli -p "+port) {
			t.Errorf("demo output lacks how to reach %s:\n%s", c.Name, out.String())
		}
	}
	if !strings.Contains(out.String(), "dynakv demo: 3 nodes in 3 zones, N=3 R=2 W=2") || !strings.Contains(out.String(), "stopping") ||
		!strings.Contains(out.String(), "Every key's 3 replicas are in 3 distinct zones.") || !strings.Contains(out.String(), "DPREFLIST greeting WITHZONES") {
		t.Errorf("demo output:\n%s", out.String())
	}
}
