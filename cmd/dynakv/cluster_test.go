package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dynakv/dynakv/node"
)

func TestDemoConfigs(t *testing.T) {
	cfgs := demoConfigs(3, "d", node.StorageMemory, "s", slog.New(slog.DiscardHandler))
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

// TestRunDemo runs the demo's nodes on free ports: it prints how to reach every node
// once they see each other, and stops when its context ends.
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
		cfgs = demoConfigs(3, t.TempDir(), node.StorageMemory, "s", slog.New(slog.DiscardHandler))
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
		if !strings.Contains(out.String(), c.Name+"  redis-cli -p "+port) {
			t.Errorf("demo output lacks how to reach %s:\n%s", c.Name, out.String())
		}
	}
	if !strings.Contains(out.String(), "dynakv demo: 3 nodes, N=3 R=2 W=2") || !strings.Contains(out.String(), "stopping") {
		t.Errorf("demo output:\n%s", out.String())
	}
}
