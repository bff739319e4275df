package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/dynakv/dynakv/bench"
)

// benchFlags are the command line of `dynakv bench`.
type benchFlags struct {
	run                bench.Config
	ratio              string
	warmup, quiet      bool
	jsonFile, htmlFile string
	compare            bool
	rounds             int
	storage            string
	fsync              string
	noCluster          bool
	baseline           bool
	redis, memcached   string
	cpuProfile         string
	maxmemory          int64
}

func newBenchCmd() *cobra.Command {
	var bf benchFlags
	d := bench.DefaultConfig()
	bf.run = d
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load-test a RESP or memcached server, or compare dynakv with redis-server and memcached",
		Long: `Drive a server that speaks RESP (Redis) or the memcached text protocol with a GET/SET
workload over --conns connections, each sending --pipeline requests at a time, and
print throughput and latency percentiles (HdrHistogram) per operation. The run ends
after --requests requests or --duration, whichever comes first.

With --compare it starts redis-server (--save '' --appendonly no) and memcached when
they are installed, a dynakv node and a local 3-node dynakv cluster (N=3), all as
child processes on free loopback ports, runs the same workload against each in
alternation for --rounds rounds, prints the ratios of dynakv to redis-server (RESP)
and to memcached, and stops them all. --compare measures both protocols unless
--protocol is given, prefills the keyspace unless --warmup=false, and measures SETs
alone then GETs alone (as redis-benchmark -t set,get does) unless --ratio is given.
--baseline adds go-baseline: a Go server with dynakv's front ends (redcon, and a
goroutine per connection) and only a map behind them, whose ratios are the ceiling
the network model leaves on the host; on Linux also go-baseline-evloop, the same
server on dynakv's epoll event loops (internal/evloop).

--pattern cache uses the server as a read-through cache: a GET that finds nothing
(a miss) is followed by a SET of that key in the connection's next batch; the ratio
defaults to 1:0, so every SET is such a fill. Every run reports its GET hits,
misses and hit ratio; --warmup runs the cache workload once unmeasured rather than
setting every key. --compare --maxmemory SIZE (Redis units: 64mb, 1gb) gives every
server the same budget: memcached -m, redis-server --maxmemory with allkeys-lru,
dynakv --maxmemory when its binary has the flag (else a note says it ran without),
and the report adds each server process's peak RSS (VmHWM).

  dynakv bench --target 127.0.0.1:6379 --ratio 9:1 --dist zipfian --requests 1000000
  dynakv bench --compare --conns 50 --requests 200000 --html report.html
  dynakv bench --compare --pattern cache --dist zipfian --keys 4600000 --maxmemory 64mb \
      --storage memory --protocol resp --requests 10000000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runBench(ctx, cmd, bf)
		},
	}
	f := cmd.Flags()
	f.StringVar(&bf.run.Target, "target", "127.0.0.1:6379", "server address, host:port")
	f.StringVar(&bf.run.Protocol, "protocol", d.Protocol, `protocol: "resp" or "memcache"`)
	f.StringVar(&bf.ratio, "ratio", d.Workload.Ratio(), "GET:SET ratio, e.g. 1:1, 9:1, 1:0")
	f.IntVar(&bf.run.Workload.Keys, "keys", d.Workload.Keys, "keyspace size")
	f.StringVar(&bf.run.Workload.Dist, "dist", d.Workload.Dist, `key distribution: "uniform" or "zipfian"`)
	f.IntVar(&bf.run.Workload.ValueSize, "value-size", d.Workload.ValueSize, "SET value size in bytes")
	f.StringVar(&bf.run.Workload.Pattern, "pattern", d.Workload.Pattern, `workload pattern: "mix" (GETs and SETs by --ratio) or "cache" (a GET miss is followed by a SET of its key; --ratio default 1:0)`)
	f.IntVar(&bf.run.Pipeline, "pipeline", d.Pipeline, "requests in flight per connection (1: no pipelining)")
	f.IntVar(&bf.run.Conns, "conns", d.Conns, "connections")
	f.DurationVar(&bf.run.Duration, "duration", 0, "run for this long (with --requests, whichever ends first; alone, no count bound)")
	f.Int64Var(&bf.run.Requests, "requests", d.Requests, "requests per run in all")
	f.BoolVar(&bf.warmup, "warmup", false, "set every key of the keyspace once before measuring (default true with --compare)")
	f.Uint64Var(&bf.run.Seed, "seed", d.Seed, "seed of the workload generators")
	f.BoolVarP(&bf.quiet, "quiet", "q", false, "no progress bar or notes")
	f.StringVar(&bf.jsonFile, "json", "", "also write the report as JSON to this file")
	f.StringVar(&bf.htmlFile, "html", "", "also write a self-contained HTML report with SVG charts to this file")
	f.BoolVar(&bf.compare, "compare", false, "start redis-server, memcached, a dynakv node and a 3-node cluster and compare them")
	f.IntVar(&bf.rounds, "rounds", 1, "--compare: runs of every server, in alternation")
	f.StringVar(&bf.storage, "storage", "disk", `--compare: the dynakv nodes' storage, "disk" or "memory"`)
	f.StringVar(&bf.fsync, "fsync", "", `--compare: the dynakv nodes' --fsync ("interval", "always" or "none"; default: theirs)`)
	f.BoolVar(&bf.noCluster, "no-cluster", false, "--compare: leave out the 3-node cluster")
	f.BoolVar(&bf.baseline, "baseline", false, "--compare: also measure "+bench.NameBaseline+", a Go server built like dynakv's front ends with only a map behind them, as the ceiling of the network model")
	f.StringVar(&bf.redis, "redis-server", "", "--compare: redis-server program (default: from PATH)")
	f.StringVar(&bf.memcached, "memcached", "", "--compare: memcached program (default: from PATH)")
	f.Var(memoryValue{&bf.maxmemory}, "maxmemory", "--compare: every server's memory budget, in Redis units (64mb, 1gb; default: none); reports peak RSS")
	f.StringVar(&bf.cpuProfile, "cpuprofile", "", "write a CPU profile of the load generator itself to this file")
	return cmd
}

func runBench(ctx context.Context, cmd *cobra.Command, bf benchFlags) error {
	out := cmd.OutOrStdout()
	f := cmd.Flags()
	var err error
	if bf.run.Workload.Pattern == bench.PatternCache && !f.Changed("ratio") {
		bf.ratio = "1:0" // a read-through cache: every SET fills a miss
	}
	if bf.run.Workload.Gets, bf.run.Workload.Sets, err = bench.ParseRatio(bf.ratio); err != nil {
		return err
	}
	maxmemory := bf.maxmemory
	if maxmemory > 0 && !bf.compare {
		return errors.New("bench: --maxmemory needs --compare (it is the budget of the servers --compare starts)")
	}
	if f.Changed("duration") && !f.Changed("requests") {
		bf.run.Requests = 0
	}
	if bf.run.Requests <= 0 && bf.run.Duration <= 0 {
		return errors.New("bench: give --requests or --duration")
	}
	if !bf.quiet && isTerminal(os.Stdout) && isTerminal(os.Stderr) {
		bf.run.Progress = &progress{w: os.Stderr}
	}
	notes := io.Writer(os.Stderr)
	if bf.quiet {
		notes = io.Discard
	}

	if bf.cpuProfile != "" {
		pf, err := os.Create(bf.cpuProfile)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return fmt.Errorf("bench: cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	var rep *bench.Report
	if bf.compare {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: finding this binary: %w", err)
		}
		cc := bench.CompareConfig{Run: bf.run, Rounds: bf.rounds, Warmup: bf.warmup || !f.Changed("warmup"),
			Dynakv: exe, Storage: bf.storage, Fsync: bf.fsync, RedisServer: bf.redis, Memcached: bf.memcached,
			SkipCluster: bf.noCluster, Baseline: bf.baseline, MaxMemory: maxmemory, Log: notes}
		if f.Changed("protocol") {
			cc.Protocols = []string{bf.run.Protocol}
		}
		if !f.Changed("ratio") && bf.run.Workload.Pattern != bench.PatternCache {
			cc.Mixes = [][2]int{{0, 1}, {1, 0}} // SETs alone, then GETs alone
		}
		if rep, err = bench.Compare(ctx, cc); err != nil {
			return err
		}
	} else {
		if bf.warmup {
			if bf.run.Workload.Pattern == bench.PatternCache {
				fmt.Fprintln(notes, "warming: the cache workload once, unmeasured")
			} else {
				fmt.Fprintf(notes, "prefilling %d keys\n", bf.run.Workload.Keys)
			}
			if err := bench.Warm(ctx, bf.run); err != nil {
				return err
			}
		}
		res, err := bench.Run(ctx, bf.run)
		if err != nil {
			return err
		}
		rep = &bench.Report{Date: time.Now().UTC(), Results: []*bench.Result{res}}
	}
	rep.Command = "dynakv " + strings.Join(os.Args[1:], " ")
	rep.Host = fmt.Sprintf("%s/%s, %d CPUs", runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	if err := rep.WriteTable(out); err != nil {
		return err
	}
	if err := writeFile(bf.jsonFile, rep.WriteJSON); err != nil {
		return err
	}
	if err := writeFile(bf.htmlFile, rep.WriteHTML); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return errors.New("bench: interrupted; figures cover the part that ran")
	}
	return nil
}

// newBaselineCmd is the hidden `dynakv bench-baseline` that bench --compare
// --baseline starts as a child process (see bench.ServeBaseline).
func newBaselineCmd() *cobra.Command {
	var respAddr, mcAddr, ioModel string
	var loops int
	cmd := &cobra.Command{
		Use:    "bench-baseline",
		Short:  "Serve GET and SET from a map over RESP and memcached, as the ceiling bench --compare --baseline measures",
		Args:   cobra.NoArgs,
		Hidden: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			resp, err := net.Listen("tcp", respAddr)
			if err != nil {
				return fmt.Errorf("bench-baseline: %w", err)
			}
			mc, err := net.Listen("tcp", mcAddr)
			if err != nil {
				resp.Close()
				return fmt.Errorf("bench-baseline: %w", err)
			}
			switch ioModel {
			case "goroutine":
				return bench.ServeBaseline(ctx, resp, mc)
			case "loop":
				return bench.ServeBaselineLoop(ctx, resp, mc, loops)
			}
			resp.Close()
			mc.Close()
			return fmt.Errorf("bench-baseline: --io-model %q: want goroutine or loop", ioModel)
		},
	}
	cmd.Flags().StringVar(&respAddr, "resp", "127.0.0.1:6379", "RESP listen address")
	cmd.Flags().StringVar(&mcAddr, "memcache", "127.0.0.1:11211", "memcached listen address")
	cmd.Flags().StringVar(&ioModel, "io-model", "goroutine", `"goroutine" (redcon, a goroutine per connection, as dynakv's fronts today) or "loop" (internal/evloop event loops)`)
	cmd.Flags().IntVar(&loops, "io-loops", 0, "--io-model loop: event loops (0: one per GOMAXPROCS)")
	return cmd
}

// writeFile writes a report to path with write, unless path is empty.
func writeFile(path string, write func(io.Writer) error) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("bench: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bench: writing %s: %w", path, err)
	}
	return nil
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progress shows a run as a progress bar on a terminal.
type progress struct {
	w     io.Writer
	label string
	bar   *progressbar.ProgressBar
}

func (p *progress) Begin(label string) {
	p.label = label
	p.bar = progressbar.NewOptions(1000, progressbar.OptionSetWriter(p.w), progressbar.OptionSetWidth(30),
		progressbar.OptionSetDescription(label), progressbar.OptionClearOnFinish(),
		progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionSetPredictTime(false))
}

func (p *progress) Update(done int64, fraction float64) {
	p.bar.Describe(fmt.Sprintf("%-22s %10d requests", p.label, done))
	_ = p.bar.Set(int(fraction * 1000))
}

func (p *progress) End() {
	_ = p.bar.Finish()
	_ = p.bar.Clear()
}
