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

	"github.com/dynakv/dynakv/internal/evloop"
)

// TestCompare runs a real comparison with tiny counts: redis-server, memcached (when
// installed), the Go baseline, a dynakv node and a 3-node cluster as child
// processes. Every server is
// measured on both protocols it speaks, the ratios are computed, and every child is
// gone when Compare returns.
func TestCompare(t *testing.T) {
	bin := buildForCompare(t)
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
	loops := 0
	if evloop.Supported() {
		want = append(want, NameBaselineLoop+"/resp", NameBaselineLoop+"/memcache")
		loops = 1
	}
	// GET and SET: dynakv-1 and dynakv-3 against redis-server and against the
	// baseline over both protocols, the baselines against redis-server.
	ratios := 4 + 8 + 2 + 2*loops
	if mcErr == nil {
		want = append(want, NameMemcached+"/memcache")
		ratios += 4 + 2 + 2*loops // against memcached: dynakv-1 and dynakv-3, the baselines
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

// buildForCompare skips a short test run or one without redis-server, else builds
// the dynakv binary and returns its path.
func buildForCompare(t *testing.T) string {
	t.Helper()
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
	return bin
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

func TestReferenceArgs(t *testing.T) {
	for _, tc := range []struct {
		maxmemory int64
		redis     string // the memory part of redis-server's flags
		mb        string // memcached's -m
	}{
		{0, "", "1024"},
		{64 << 20, " --maxmemory 67108864 --maxmemory-policy allkeys-lru", "64"},
		{64<<20 + 1, " --maxmemory 67108865 --maxmemory-policy allkeys-lru", "65"}, // rounded up
		{1000, " --maxmemory 1000 --maxmemory-policy allkeys-lru", "1"},
	} {
		r := strings.Join(redisArgs("7", tc.maxmemory), " ")
		if want := "--port 7 --bind 127.0.0.1 --save  --appendonly no --daemonize no --protected-mode no --maxclients 10000" + tc.redis; r != want {
			t.Errorf("maxmemory %d: redis-server %s; want %s", tc.maxmemory, r, want)
		}
		m := strings.Join(memcachedArgs("7", tc.maxmemory, false), " ")
		if want := "-l 127.0.0.1 -p 7 -U 0 -m " + tc.mb + " -c 4096"; m != want {
			t.Errorf("maxmemory %d: memcached %s; want %s", tc.maxmemory, m, want)
		}
	}
	if m := memcachedArgs("7", 0, true); m[len(m)-2] != "-u" || m[len(m)-1] != "root" {
		t.Errorf("as root: %q", m)
	}
}

func TestDynakvMemoryFlags(t *testing.T) {
	const (
		before = "Flags:\n      --maxclients int    most clients\n  -h, --help   help for server\n      --storage string   disk or memory\n"
		both   = before + "      --maxmemory bytes          budget\n      --maxmemory-policy string   policy (default \"\")\n"
		only   = before + "  -m, --maxmemory string   budget\n"
		policy = before + "      --maxmemory-policy string   policy\n"
	)
	for _, tc := range []struct {
		help string
		want string
	}{
		{before, ""},
		{policy, ""}, // --maxmemory-policy alone is not --maxmemory
		{only, "--maxmemory 1048576"},
		{both, "--maxmemory 1048576 --maxmemory-policy allkeys-lru"},
		{"      --maxmemory=SIZE   budget\n", "--maxmemory 1048576"},
		{both + "  only noeviction is available until eviction lands\n", ""},
	} {
		if got := strings.Join(dynakvMemoryFlags(tc.help, 1<<20), " "); got != tc.want {
			t.Errorf("help %q: flags %q; want %q", tc.help, got, tc.want)
		}
	}
}

func TestParseVmHWM(t *testing.T) {
	status := "Name:\tredis-server\nVmPeak:\t  300000 kB\nVmHWM:\t   12345 kB\nVmRSS:\t   12000 kB\n"
	if n, ok := parseVmHWM([]byte(status)); !ok || n != 12345<<10 {
		t.Errorf("VmHWM %d, %v", n, ok)
	}
	for _, bad := range []string{"", "VmRSS:\t 1 kB\n", "VmHWM:\t 12 MB\n", "VmHWM:\tx kB\n", "VmHWM:\n"} {
		if n, ok := parseVmHWM([]byte(bad)); ok {
			t.Errorf("%q parsed as %d", bad, n)
		}
	}
	// This process has one.
	if n, err := peakRSS(os.Getpid()); err != nil || n <= 0 {
		t.Errorf("own peak RSS %d, %v", n, err)
	}
}

func TestRSSBound(t *testing.T) {
	// 64 MiB: 96 MiB + 112 MiB + 4 MiB.
	if b := RSSBound(64 << 20); b != 212<<20 {
		t.Errorf("bound at 64 MiB: %d MiB", b>>20)
	}
}

// TestCompareMaxMemory runs the cache pattern under a budget far below the
// keyspace: redis-server and memcached evict (their hit ratios fall below dynakv's,
// which has no --maxmemory yet and says so in a note, or honours it), and every
// process's peak RSS is reported.
func TestCompareMaxMemory(t *testing.T) {
	bin := buildForCompare(t)
	cfg := DefaultConfig()
	cfg.Conns, cfg.Pipeline, cfg.Requests = 4, 16, 20_000
	cfg.Workload = Workload{Keys: 20_000, Dist: DistUniform, Gets: 1, ValueSize: 1000, KeyPrefix: "key:", Pattern: PatternCache}
	cfg.MaxDuration = 60 * time.Second
	var log strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	// 2 MiB holds about 2,000 of the 20,000 values of 1 kB.
	rep, err := Compare(ctx, CompareConfig{Run: cfg, Warmup: true, Dynakv: bin, Storage: "memory", SkipCluster: true,
		MaxMemory: 2 << 20, Log: &log})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	ratio := map[string]float64{}
	for _, r := range rep.Results {
		ratio[r.Name+"/"+r.Protocol] = r.HitRatio
		if r.Pattern != PatternCache || r.Hits+r.Misses == 0 {
			t.Errorf("%s/%s: pattern %q, %d hits, %d misses", r.Name, r.Protocol, r.Pattern, r.Hits, r.Misses)
		}
	}
	if ratio["redis-server/resp"] >= 0.5 {
		t.Errorf("hit ratios %v: redis-server with 2 MiB should miss most of 20 MB", ratio)
	}
	if len(rep.Notes) > 0 && ratio["dynakv-1/resp"] <= ratio["redis-server/resp"] {
		t.Errorf("hit ratios %v: a dynakv that cannot evict should hit more than redis-server", ratio)
	}
	if _, err := exec.LookPath("memcached"); err == nil && ratio["memcached/memcache"] >= 0.5 {
		t.Errorf("hit ratios %v: memcached -m 2 should miss most of 20 MB", ratio)
	}
	procs := map[string]Memory{}
	for _, m := range rep.Memory {
		procs[m.Server] = m
		if m.PeakRSS <= 0 {
			t.Errorf("%s %s: peak RSS %d", m.Server, m.Process, m.PeakRSS)
		}
	}
	if procs[NameRedis].MaxMemory != 2<<20 || procs[NameSingle].Process == "" {
		t.Errorf("memory %+v", rep.Memory)
	}
	noFlag := len(rep.Notes) == 1 && strings.HasPrefix(rep.Notes[0], "dynakv: no --maxmemory")
	if noFlag == (procs[NameSingle].Bound > 0) {
		t.Errorf("notes %q, dynakv-1 memory %+v: want the note or a bound", rep.Notes, procs[NameSingle])
	}
	var hitRatios int
	for _, r := range rep.Ratios {
		if r.Measure == MeasureHitRatio {
			hitRatios++
		}
	}
	if hitRatios == 0 {
		t.Errorf("no hit-ratio ratios in %+v", rep.Ratios)
	}
}
