package bench

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dynakv/dynakv/internal/evloop"
	"github.com/dynakv/dynakv/internal/freeport"
	"github.com/dynakv/dynakv/internal/launch"
)

// Names of the servers Compare runs.
const (
	NameRedis     = "redis-server"
	NameMemcached = "memcached"
	NameSingle    = "dynakv-1"
	NameCluster   = "dynakv-3"
)

// The floors the issue holds dynakv to, as ratios of throughput at 50 connections
// without pipelining: one node against redis-server and memcached, a 3-node cluster
// against either.
const (
	FloorSingleRedis     = 0.7
	FloorSingleMemcached = 0.8
	FloorCluster         = 0.3
)

// FloorHitRatio is issue 18's floor on dynakv's GET hit ratio over the reference
// server's, in the cache pattern when both ran under a memory budget.
const FloorHitRatio = 0.9

// RSSFixed is the fixed part of the bound on a dynakv node's peak RSS under a
// memory budget, as measured under the cache workload with a 64 MiB budget
// (node.Config.MemoryCache's defaults): the record cache 32 MiB, the block cache
// 8 MiB, memtables 4 MiB, the Go runtime's part of its soft limit 32 MiB, the
// binary's resident text and data about 18 MiB, and the C allocator's slack and
// the stacks about 18 MiB. RSSBound adds the budget's part.
const RSSFixed = 112 << 20

// RSSBound is the most a dynakv node given the budget maxmemory (bytes) may hold
// resident: 1.5 times the budget, plus RSSFixed, plus the access table (budget/16).
func RSSBound(maxmemory int64) int64 {
	return maxmemory + maxmemory/2 + RSSFixed + maxmemory/16
}

// CompareConfig is a side-by-side comparison: the same workload against
// redis-server, memcached, a dynakv node and a local 3-node dynakv cluster (N=3),
// each started here as child processes on free loopback ports and stopped at the end.
type CompareConfig struct {
	// Run is the workload and its bounds; Name and Target are set per server.
	Run Config
	// Protocols to measure; default both ProtoRESP and ProtoMemcache.
	Protocols []string
	// Mixes are the get:set ratios measured one after the other, each as its own
	// result, e.g. {{0, 1}, {1, 0}}: SETs alone, then GETs alone, as redis-benchmark
	// does. Default: only Run.Workload's own ratio.
	Mixes [][2]int
	// Rounds is how many times every server runs, in alternation; default 1.
	Rounds int
	// Warmup prefills the keyspace of every server before its first run.
	Warmup bool
	// Dynakv is the path of the dynakv binary to run as `dynakv server`; required.
	Dynakv string
	// Storage is the dynakv nodes' --storage; default "disk".
	Storage string
	// Fsync is the dynakv nodes' --fsync; "" leaves their default.
	Fsync string
	// RedisServer and Memcached are the reference servers' programs; default looked
	// up in PATH. A server not found is skipped with a note.
	RedisServer, Memcached string
	// MaxMemory, when > 0, is every server's memory budget in bytes: memcached -m
	// (in MiB, rounded up), redis-server --maxmemory with --maxmemory-policy
	// allkeys-lru, and each dynakv node's --maxmemory (and --maxmemory-policy
	// allkeys-lru) when its binary accepts the flags; when it does not, the nodes run
	// without a budget and the report says so in its notes. Default 0: memcached
	// gets -m 1024 and the others no limit.
	MaxMemory int64
	// SkipCluster leaves out the 3-node cluster.
	SkipCluster bool
	// Baseline also measures NameBaseline (ServeBaseline, run as `dynakv
	// bench-baseline`): the ceiling the network model alone leaves on the host;
	// and, where there are event loops (Linux), NameBaselineLoop (the same on
	// internal/evloop, `dynakv bench-baseline --io-model loop`).
	Baseline bool
	// Log receives notes (servers skipped, started, stopped); default discards.
	Log io.Writer
	// StartTimeout bounds the start of each server; default 30s.
	StartTimeout time.Duration
}

func (cc CompareConfig) ensureDefaults() CompareConfig {
	cc.Run = cc.Run.EnsureDefaults()
	if len(cc.Protocols) == 0 {
		cc.Protocols = []string{ProtoRESP, ProtoMemcache}
	}
	if len(cc.Mixes) == 0 {
		cc.Mixes = [][2]int{{cc.Run.Workload.Gets, cc.Run.Workload.Sets}}
	}
	if cc.Rounds <= 0 {
		cc.Rounds = 1
	}
	if cc.Storage == "" {
		cc.Storage = "disk"
	}
	if cc.Log == nil {
		cc.Log = io.Discard
	}
	if cc.StartTimeout <= 0 {
		cc.StartTimeout = 30 * time.Second
	}
	return cc
}

// server is one system under test: one or more child processes and its address for
// each protocol it speaks.
type server struct {
	name  string
	addrs map[string]string
	procs []*launch.Proc
	// maxmemory is the budget the server was given in bytes (0: none); bounded
	// says its peak RSS is held to RSSBound(maxmemory).
	maxmemory int64
	bounded   bool
}

// Compare starts the servers, runs cc's workload against each in alternation for
// cc.Rounds rounds, stops them, and returns the merged results with the ratios of
// dynakv to redis-server (RESP) and to memcached (memcached protocol). Children are
// stopped when Compare returns, also when ctx is cancelled.
func Compare(ctx context.Context, cc CompareConfig) (*Report, error) {
	cc = cc.ensureDefaults()
	if cc.Dynakv == "" {
		return nil, fmt.Errorf("%w: no dynakv binary", ErrConfig)
	}
	if cc.MaxMemory < 0 {
		return nil, fmt.Errorf("%w: negative maxmemory", ErrConfig)
	}
	for _, p := range cc.Protocols {
		if _, err := newCodec(p); err != nil {
			return nil, err
		}
	}
	for _, m := range cc.Mixes {
		probe := cc.Run
		probe.Target = "probe"
		probe.Workload.Gets, probe.Workload.Sets = m[0], m[1]
		if err := probe.Validate(); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "dynakv-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: temp dir: %w", err)
	}
	defer os.RemoveAll(dir)

	var servers []*server
	defer func() {
		for _, s := range servers {
			s.stop(cc.Log)
		}
	}()
	start := func(s *server, err error) error {
		if s != nil {
			servers = append(servers, s)
		}
		return err
	}
	if slices.Contains(cc.Protocols, ProtoRESP) {
		if err := start(startRedis(ctx, cc)); err != nil {
			return nil, err
		}
	}
	if slices.Contains(cc.Protocols, ProtoMemcache) {
		if err := start(startMemcached(ctx, cc)); err != nil {
			return nil, err
		}
	}
	if cc.Baseline {
		if err := start(startBaseline(ctx, cc, NameBaseline, "goroutine")); err != nil {
			return nil, err
		}
		if evloop.Supported() {
			if err := start(startBaseline(ctx, cc, NameBaselineLoop, "loop")); err != nil {
				return nil, err
			}
		}
	}
	rep := &Report{Date: time.Now().UTC()}
	var memFlags []string
	if cc.MaxMemory > 0 {
		help, err := serverHelp(ctx, cc.Dynakv)
		if memFlags = dynakvMemoryFlags(help, cc.MaxMemory); memFlags == nil {
			note := "dynakv: no --maxmemory with eviction (its `server --help` lists no --maxmemory, or only noeviction): its nodes ran without a memory budget"
			if err != nil {
				note += " (" + err.Error() + ")"
			}
			rep.Notes = append(rep.Notes, note)
			fmt.Fprintln(cc.Log, "note: "+note)
		}
	}
	if err := start(startDynakv(ctx, cc, filepath.Join(dir, "single"), NameSingle, 1, memFlags)); err != nil {
		return nil, err
	}
	if !cc.SkipCluster {
		if err := start(startDynakv(ctx, cc, filepath.Join(dir, "cluster"), NameCluster, 3, memFlags)); err != nil {
			return nil, err
		}
	}

	results := map[string]*Result{}
	for round := range cc.Rounds {
		for _, proto := range cc.Protocols {
			if round == 0 && cc.Warmup {
				for _, s := range servers {
					if err := warmServer(ctx, cc, s, proto); err != nil {
						return nil, err
					}
				}
			}
			for _, mix := range cc.Mixes {
				for _, s := range servers {
					addr, ok := s.addrs[proto]
					if !ok {
						continue
					}
					cfg := cc.Run
					cfg.Name, cfg.Target, cfg.Protocol = s.name, addr, proto
					cfg.Workload.Gets, cfg.Workload.Sets = mix[0], mix[1]
					res, err := Run(ctx, cfg)
					if err != nil {
						return nil, err
					}
					if err := ctx.Err(); err != nil {
						return nil, fmt.Errorf("bench: comparison interrupted: %w", err)
					}
					res.MaxMemory = s.maxmemory
					key := s.name + "/" + proto + "/" + res.Ratio
					if prev := results[key]; prev != nil {
						if err := prev.Merge(res); err != nil {
							return nil, err
						}
					} else {
						results[key] = res
						rep.Results = append(rep.Results, res)
					}
				}
			}
		}
	}
	rep.Ratios = Ratios(rep.Results)
	for _, s := range servers {
		rep.Memory = append(rep.Memory, s.memory()...)
	}
	return rep, nil
}

// memory reads the peak RSS of each of s's processes, still running.
func (s *server) memory() []Memory {
	var out []Memory
	for _, p := range s.procs {
		m := Memory{Server: s.name, Process: p.Name(), MaxMemory: s.maxmemory}
		m.PeakRSS, _ = peakRSS(p.Pid()) // 0: unknown, shown as "-"
		if s.bounded {
			m.Bound = RSSBound(s.maxmemory)
		}
		out = append(out, m)
	}
	return out
}

// peakRSS returns the peak resident set (VmHWM) of process pid in bytes.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	n, ok := parseVmHWM(b)
	if !ok {
		return 0, fmt.Errorf("bench: no VmHWM in /proc/%d/status", pid)
	}
	return n, nil
}

// parseVmHWM finds "VmHWM:   <n> kB" in the text of /proc/<pid>/status and returns
// n KiB in bytes.
func parseVmHWM(status []byte) (int64, bool) {
	for line := range strings.Lines(string(status)) {
		v, ok := strings.CutPrefix(line, "VmHWM:")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, false
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n < 0 || n > 1<<40 {
			return 0, false
		}
		return n << 10, true
	}
	return 0, false
}

// warmServer readies s for the workload over proto, if it speaks it (Warm).
func warmServer(ctx context.Context, cc CompareConfig, s *server, proto string) error {
	addr, ok := s.addrs[proto]
	if !ok {
		return nil
	}
	cfg := cc.Run
	cfg.Name, cfg.Target, cfg.Protocol = s.name, addr, proto
	if cfg.Workload.cache() {
		fmt.Fprintf(cc.Log, "warming %s over %s: the cache workload once, unmeasured\n", s.name, proto)
	} else {
		fmt.Fprintf(cc.Log, "prefilling %s over %s: %d keys\n", s.name, proto, cfg.Workload.Keys)
	}
	return Warm(ctx, cfg)
}

// Ratios compares each dynakv result (NameSingle, NameCluster) with the result of
// the reference server of its protocol (NameRedis for RESP, NameMemcached for
// memcached) under the same get:set ratio, operation by operation. The issue's
// floors are attached where they apply: 50 connections without pipelining. When
// NameBaseline was measured, it is compared with the reference servers too, and
// dynakv with it (no floors); so is NameBaselineLoop with the reference servers.
func Ratios(results []*Result) []Ratio {
	refs := map[string]string{ProtoRESP: NameRedis, ProtoMemcache: NameMemcached}
	var out []Ratio
	for _, r := range results {
		switch r.Name {
		case NameSingle, NameCluster:
			out = appendRatios(out, r, find(results, refs[r.Protocol], r), true)
			out = appendRatios(out, r, find(results, NameBaseline, r), false)
		case NameBaseline, NameBaselineLoop:
			out = appendRatios(out, r, find(results, refs[r.Protocol], r), false)
		}
	}
	return out
}

// find returns the result of server name with like's protocol, get:set ratio and
// pattern.
func find(results []*Result, name string, like *Result) *Result {
	for _, c := range results {
		if c.Name == name && c.Protocol == like.Protocol && c.Ratio == like.Ratio && c.Pattern == like.Pattern {
			return c
		}
	}
	return nil
}

// appendRatios appends r's throughput over ref's, operation by operation, with the
// issue's floor when floors is set and the run is the floors' shape.
func appendRatios(out []Ratio, r, ref *Result, floors bool) []Ratio {
	if ref == nil {
		return out
	}
	for _, a := range r.Ops {
		b, ok := ref.opStats(a.Op)
		if !ok || b.OpsPerSec == 0 || (r.Pattern == PatternCache && a.Op != OpGet.String()) {
			continue // in the cache pattern SETs include the fills of misses: their rate follows the hit ratio
		}
		floor := 0.0
		if floors && r.Conns == 50 && r.Pipeline == 1 {
			switch {
			case r.Name == NameCluster:
				floor = FloorCluster
			case r.Protocol == ProtoRESP:
				floor = FloorSingleRedis
			default:
				floor = FloorSingleMemcached
			}
		}
		out = append(out, Ratio{Protocol: r.Protocol, Op: a.Op, Mix: r.Mix(), Target: r.Name, Reference: ref.Name,
			Ratio: a.OpsPerSec / b.OpsPerSec, Floor: floor})
	}
	if r.Pattern == PatternCache && ref.HitRatio > 0 {
		floor := 0.0
		if floors && r.MaxMemory > 0 && ref.MaxMemory > 0 {
			floor = FloorHitRatio
		}
		out = append(out, Ratio{Protocol: r.Protocol, Op: OpGet.String(), Mix: r.Mix(), Target: r.Name, Reference: ref.Name,
			Ratio: r.HitRatio / ref.HitRatio, Floor: floor, Measure: MeasureHitRatio})
	}
	return out
}

func lookPath(path, name string, log io.Writer) string {
	if path != "" {
		return path
	}
	p, err := exec.LookPath(name)
	if err != nil {
		fmt.Fprintf(log, "note: %s is not installed (scripts/install-tools.sh installs it): skipped\n", name)
		return ""
	}
	return p
}

func startRedis(ctx context.Context, cc CompareConfig) (*server, error) {
	return startReference(ctx, cc, NameRedis, cc.RedisServer, ProtoRESP, func(port string) []string {
		return redisArgs(port, cc.MaxMemory)
	})
}

// redisArgs is redis-server's command line: no persistence, and with a budget
// (bytes, 0: none) Redis's LRU eviction over all keys.
func redisArgs(port string, maxmemory int64) []string {
	args := []string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--protected-mode", "no", "--maxclients", "10000"}
	if maxmemory > 0 {
		args = append(args, "--maxmemory", strconv.FormatInt(maxmemory, 10), "--maxmemory-policy", "allkeys-lru")
	}
	return args
}

func startMemcached(ctx context.Context, cc CompareConfig) (*server, error) {
	return startReference(ctx, cc, NameMemcached, cc.Memcached, ProtoMemcache, func(port string) []string {
		return memcachedArgs(port, cc.MaxMemory, os.Geteuid() == 0)
	})
}

// memcachedArgs is memcached's command line: -m is the budget in MiB, rounded up
// (maxmemory in bytes; 0: 1024 MiB, more than any run here stores).
func memcachedArgs(port string, maxmemory int64, root bool) []string {
	mb := int64(1024)
	if maxmemory > 0 {
		mb = max(1, (maxmemory+1<<20-1)>>20)
	}
	args := []string{"-l", "127.0.0.1", "-p", port, "-U", "0", "-m", strconv.FormatInt(mb, 10), "-c", "4096"}
	if root {
		args = append(args, "-u", "root") // memcached refuses to run as root without it
	}
	return args
}

// serverHelp returns the output of `dynakv server --help` of bin, bounded to 30 s.
func serverHelp(ctx context.Context, bin string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "server", "--help").CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s server --help: %w", bin, err)
	}
	return string(out), nil
}

// dynakvMemoryFlags returns the flags that give a dynakv node the budget
// maxmemory (bytes) with allkeys-lru, as far as the server's help text lists
// them; nil when it has no --maxmemory, or when it cannot evict yet (its help
// says "only noeviction"): a cache workload under noeviction would measure -OOM
// errors, not a hit ratio.
func dynakvMemoryFlags(help string, maxmemory int64) []string {
	if !hasFlag(help, "maxmemory") || strings.Contains(help, "only noeviction") {
		return nil
	}
	flags := []string{"--maxmemory", strconv.FormatInt(maxmemory, 10)}
	if hasFlag(help, "maxmemory-policy") {
		flags = append(flags, "--maxmemory-policy", "allkeys-lru")
	}
	return flags
}

// hasFlag reports whether a cobra/pflag help text lists --name, as in
// "  -m, --name string   usage" or "      --name   usage".
func hasFlag(help, name string) bool {
	for line := range strings.Lines(help) {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasSuffix(f[0], ",") && len(f[0]) == 3 && f[0][0] == '-' {
			f = f[1:] // a shorthand: "-m,"
		}
		if len(f) > 0 && (f[0] == "--"+name || strings.HasPrefix(f[0], "--"+name+"=")) {
			return true
		}
	}
	return false
}

// startReference starts the reference server name (program path, or looked up in
// PATH: not found, it is skipped) on a free port, speaking proto.
func startReference(ctx context.Context, cc CompareConfig, name, path, proto string, args func(port string) []string) (*server, error) {
	bin := lookPath(path, name, cc.Log)
	if bin == "" {
		return nil, nil
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	out := &launch.Buffer{Max: 8 << 10}
	c, err := launch.Start(launch.Spec{Name: name, Path: bin, Args: args(port), Output: out})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	s := &server{name: name, addrs: map[string]string{proto: addr}, procs: []*launch.Proc{c}, maxmemory: cc.MaxMemory}
	if err := c.Ready(ctx, func() error { return ping(proto, addr) }, cc.StartTimeout); err != nil {
		return s, fmt.Errorf("bench: %w\n%s", err, out.String())
	}
	fmt.Fprintf(cc.Log, "started %s on %s\n", name, addr)
	return s, nil
}

// startBaseline starts `dynakv bench-baseline --io-model ioModel` as name, on free
// ports for both protocols.
func startBaseline(ctx context.Context, cc CompareConfig, name, ioModel string) (*server, error) {
	resp, err := freeAddr()
	if err != nil {
		return nil, err
	}
	mc, err := freeAddr()
	if err != nil {
		return nil, err
	}
	out := &launch.Buffer{Max: 8 << 10}
	c, err := launch.Start(launch.Spec{Name: name, Path: cc.Dynakv, Args: []string{"bench-baseline", "--resp", resp, "--memcache", mc, "--io-model", ioModel}, Output: out})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	s := &server{name: name, addrs: map[string]string{ProtoRESP: resp, ProtoMemcache: mc}, procs: []*launch.Proc{c}}
	for _, proto := range cc.Protocols {
		if err := c.Ready(ctx, func() error { return ping(proto, s.addrs[proto]) }, cc.StartTimeout); err != nil {
			return s, fmt.Errorf("bench: %w\n%s", err, out.String())
		}
	}
	fmt.Fprintf(cc.Log, "started %s: RESP %s, memcached %s\n", name, resp, mc)
	return s, nil
}

// startDynakv starts a cluster of count `dynakv server` processes (N=count) with
// their data under dir, each also given memFlags (dynakvMemoryFlags: a budget of
// cc.MaxMemory, or nil); the first node's addresses are the server's.
func startDynakv(ctx context.Context, cc CompareConfig, dir, name string, count int, memFlags []string) (*server, error) {
	var secret [16]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return nil, fmt.Errorf("bench: secret: %w", err)
	}
	cfg := launch.Config{Binary: cc.Dynakv, Count: count, Prefix: name + "-", Dir: dir, Storage: cc.Storage,
		Secret: hex.EncodeToString(secret[:]), LogLevel: "warn", StartTimeout: cc.StartTimeout}
	if count > 1 {
		cfg.Extra = append(cfg.Extra, "--n", strconv.Itoa(count))
	}
	if cc.Fsync != "" {
		cfg.Extra = append(cfg.Extra, "--fsync", cc.Fsync)
	}
	cfg.Extra = append(cfg.Extra, memFlags...)
	cl, err := launch.StartCluster(ctx, cfg)
	if cl == nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	s := &server{name: name, addrs: map[string]string{}, procs: cl.Procs}
	if memFlags != nil {
		s.maxmemory, s.bounded = cc.MaxMemory, true
	}
	if err != nil {
		return s, fmt.Errorf("bench: %w", err)
	}
	s.addrs[ProtoRESP], s.addrs[ProtoMemcache] = cl.Nodes[0].RESP, cl.Nodes[0].Memcache
	budget := "none"
	if s.maxmemory > 0 {
		budget = strconv.FormatInt(s.maxmemory, 10) + " bytes"
	}
	fmt.Fprintf(cc.Log, "started %s: %d node(s), storage %s, fsync %s, maxmemory %s, RESP %s, memcached %s\n", name, count, cc.Storage,
		cmp.Or(cc.Fsync, "default"), budget, s.addrs[ProtoRESP], s.addrs[ProtoMemcache])
	return s, nil
}

// stop stops the server's processes, the last started first (SIGTERM, SIGKILL
// after 10 s).
func (s *server) stop(log io.Writer) {
	for i := len(s.procs) - 1; i >= 0; i-- {
		if err := s.procs[i].Stop(10 * time.Second); err != nil {
			fmt.Fprintf(log, "stopping %s: %v\n", s.procs[i].Name(), err)
		}
	}
}

// ping sends one GET over protocol and checks it is answered.
func ping(protocol, addr string) error {
	c, err := Dial(protocol, addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return err
	}
	return c.Batch([]Request{{Op: OpGet, Key: []byte("bench:ping")}}, nil, func(int, Reply) {})
}

// freeAddr returns a loopback address whose port was free a moment ago, from
// outside the ephemeral range and never handed out twice in this process (see
// internal/freeport): a port learnt from bind(0) can be taken by an outgoing
// connection before the child binds it.
func freeAddr() (string, error) {
	a, err := freeport.Addr()
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	return a, nil
}
