package bench

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCompare runs a real comparison with tiny counts: redis-server, memcached (when
// installed), the Go baseline, a dynakv node and a 3-node cluster as child
// processes. Every server is
// measured on both protocols it speaks, the ratios are computed, and every child is
// gone when Compare returns.
func TestCompare(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed (scripts/install-tools.sh)")
	}
	bin := filepath.Join(t.TempDir(), "dynakv")
	build := exec.Command("go", "build", "-o", bin, "../cmd/dynakv")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building dynakv: %v\n%s", err, out)
	}
	_, mcErr := exec.LookPath("memcached")
	cfg := DefaultConfig()
	cfg.Conns, cfg.Pipeline, cfg.Requests = 4, 4, 400
	cfg.Workload.Keys, cfg.Workload.ValueSize = 50, 10
	cfg.MaxDuration = 20 * time.Second
	var log strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Compare(ctx, CompareConfig{Run: cfg, Rounds: 2, Warmup: true, Dynakv: bin, Storage: "memory",
		Baseline: true, Mixes: [][2]int{{0, 1}, {1, 0}}, Log: &log})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	names := map[string]int{}
	for _, r := range rep.Results {
		names[r.Name+"/"+r.Protocol]++
		if r.Runs != 2 || len(r.Ops) != 1 || r.Ops[0].Count != 2*cfg.Requests || r.Ops[0].Errors != 0 {
			t.Errorf("%s %s %s: %d runs, %+v", r.Name, r.Protocol, r.Ratio, r.Runs, r.Ops)
		}
		// The server was stopped: its port no longer answers.
		if c, err := net.DialTimeout("tcp", r.Target, time.Second); err == nil {
			c.Close()
			t.Errorf("%s (%s) still accepts connections after Compare", r.Name, r.Target)
		}
	}
	want := []string{NameRedis + "/resp", NameBaseline + "/resp", NameSingle + "/resp", NameCluster + "/resp",
		NameBaseline + "/memcache", NameSingle + "/memcache", NameCluster + "/memcache"}
	// GET and SET: dynakv-1 and dynakv-3 against redis-server and against the
	// baseline over both protocols, the baseline against redis-server.
	ratios := 4 + 8 + 2
	if mcErr == nil {
		want = append(want, NameMemcached+"/memcache")
		ratios += 4 + 2 // against memcached: dynakv-1 and dynakv-3, the baseline
	}
	for _, w := range want {
		if names[w] != 2 { // a SET-only and a GET-only result
			t.Errorf("%s: %d results; want 2 (all: %v)", w, names[w], names)
		}
	}
	if len(rep.Ratios) != ratios {
		t.Errorf("%d ratios; want %d: %+v", len(rep.Ratios), ratios, rep.Ratios)
	}
	for _, r := range rep.Ratios {
		if r.Ratio <= 0 || r.Floor != 0 { // no floor: 4 connections, pipelined
			t.Errorf("ratio %+v", r)
		}
	}
	if !strings.Contains(log.String(), "started dynakv-3: 3 node(s)") {
		t.Errorf("log:\n%s", log.String())
	}
}

// TestCompareMissingServer skips the reference servers that are not installed, with
// a note, and reports a dynakv that cannot start.
func TestCompareMissingServer(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	var log strings.Builder
	_, err := Compare(context.Background(), CompareConfig{Run: DefaultConfig(), Dynakv: filepath.Join(os.DevNull, "none"),
		Log: &log, StartTimeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "dynakv-1") {
		t.Errorf("a dynakv binary that does not exist: %v", err)
	}
	for _, note := range []string{"redis-server is not installed", "memcached is not installed"} {
		if !strings.Contains(log.String(), note) {
			t.Errorf("no note %q in:\n%s", note, log.String())
		}
	}
}
