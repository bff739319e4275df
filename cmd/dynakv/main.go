// Command dynakv is the dynakv binary: `dynakv server` runs a node, `dynakv demo`
// a local cluster in one process, `dynakv launch` one of server processes (for
// scripts), `dynakv status` shows a cluster as one node sees it, and `dynakv admin`
// changes its membership.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/dynakv/dynakv/internal/num"
	"github.com/dynakv/dynakv/node"
	"github.com/dynakv/dynakv/storage"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "dynakv:", err)
		os.Exit(exitCode(err))
	}
}

// exitCode is the process's status for err: 70 (EX_SOFTWARE) when a storage
// engine failed, so that a supervisor restarts the node once its storage is
// repaired, 2 otherwise.
func exitCode(err error) int {
	if errors.Is(err, storage.ErrEngineFailed) {
		return 70
	}
	return 2
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "dynakv",
		Short:         "An always-writable Dynamo-style key-value store that speaks Redis and memcached",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServerCmd(), newDemoCmd(), newStatusCmd(), newAdminCmd(), newBenchCmd(), newBaselineCmd(),
		newLaunchCmd(), newFreePortCmd())
	return root
}

func newServerCmd() *cobra.Command {
	d := node.DefaultConfig()
	cfg := d
	var logLevel, logFormat string
	hinted, tlsAuthClients := true, true
	var clockOffset time.Duration
	var recordCacheMB int64
	var noSync bool
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run a dynakv node",
		Long: `Run a dynakv node: a Pebble-backed replica that serves the Redis protocol (RESP2/RESP3)
and the memcached text protocol, versions every value with dotted version vectors, and
exposes Prometheus metrics on --http.

Started alone, a node is a one-member cluster that others can join; started with
--join, it joins the cluster of those gossip addresses. Every member needs the same
--secret. Data lives on N replicas (--n), reads wait for R of them and writes for W.

The node stops cleanly on SIGINT or SIGTERM; every acknowledged write is on disk
(with --storage disk) and survives even SIGKILL.

A memory cache (--storage memory with --maxmemory) takes its own defaults for what
the command line leaves unset: --tombstone-grace 1s and --aae-max-keys-per-sec
100000 (eviction tombstones are purged as soon as every owner holds them),
--record-cache-mb 32, an 8 MiB block cache and 2 MiB memtables (the data is in
memory already), and a Go soft memory limit of 1.5 x maxmemory + maxmemory/16
+ 32 MiB (unless GOMEMLIMIT is set; CONFIG SET maxmemory moves it). Its evictor
keeps up to 16 evictions in flight, and keeps the in-memory files within 1.4 x
maxmemory by evicting below the limit while they outgrow it (compactions
behind). Its RSS stays within about 1.5 x maxmemory + maxmemory/16 plus a fixed
overhead (see the README).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(logLevel, logFormat)
			if err != nil {
				return err
			}
			cfg.Version = version
			cfg.Logger = logger
			cfg.DisableHintedHandoff = !hinted
			if clockOffset != 0 {
				cfg.Now = func() time.Time { return time.Now().Add(clockOffset) }
			}
			flagOrEnv(cmd, "secret", "DYNAKV_SECRET", &cfg.Secret)
			flagOrEnv(cmd, "requirepass", "DYNAKV_REQUIREPASS", &cfg.RequirePass)
			cfg.TLSNoClientCerts = !tlsAuthClients
			if noSync {
				cfg.Fsync = storage.SyncNone
			}
			// Left unset, these take the node's defaults, which depend on the
			// storage and the memory limit (node.Config.MemoryCache).
			if !cmd.Flags().Changed("tombstone-grace") {
				cfg.TombstoneGrace = 0
			}
			if !cmd.Flags().Changed("aae-max-keys-per-sec") {
				cfg.AAEMaxKeysPerSec = 0
			}
			if os.Getenv("GOMEMLIMIT") == "" {
				cfg.GoMemoryLimit = func(b int64) { debug.SetMemoryLimit(b) }
			}
			switch {
			case !cmd.Flags().Changed("record-cache-mb"):
				cfg.RecordCacheBytes = 0
			case recordCacheMB < 0:
				return fmt.Errorf("--record-cache-mb must not be negative, got %d", recordCacheMB)
			case recordCacheMB == 0:
				cfg.RecordCacheBytes = -1
			default:
				cfg.RecordCacheBytes = recordCacheMB << 20
			}
			return runServer(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Name, "name", "", "node name, unique in the cluster (default: the host name)")
	f.StringVar(&cfg.Zone, "zone", "", "failure domain of this node (rack, availability zone or data center): each key's replicas are spread over the zones; set it only once every node runs a version that knows zones")
	f.StringVar(&cfg.DataDir, "data-dir", "", "data directory for disk storage (default ./data/<name>)")
	f.StringVar(&cfg.Storage, "storage", d.Storage, `storage engine: "disk" (Pebble on --data-dir) or "memory" (Pebble in memory; data ends with the process)`)
	f.StringVar(&cfg.RESPAddr, "resp", d.RESPAddr, "Redis protocol (RESP) listen address")
	f.StringVar(&cfg.MemcacheAddr, "memcache", d.MemcacheAddr, `memcached text protocol listen address ("off" disables it)`)
	f.StringVar(&cfg.HTTPAddr, "http", d.HTTPAddr, `admin HTTP address for /metrics, /healthz and /debug/pprof ("off" disables it)`)
	f.StringVar(&cfg.GossipAddr, "gossip", d.GossipAddr, "gossip (memberlist) listen address")
	f.StringVar(&cfg.ClusterAddr, "cluster", d.ClusterAddr, "internode transport listen address")
	f.StringSliceVar(&cfg.Join, "join", nil, "gossip addresses of existing cluster members, host:port[,host:port...]; retried with backoff until one answers")
	f.StringVar(&cfg.Secret, "secret", "", "cluster secret shared by every member: authenticates internode connections and encrypts gossip (default $DYNAKV_SECRET)")
	f.DurationVar(&cfg.RequestTimeout, "request-timeout", d.RequestTimeout, "deadline for each request that reaches other nodes")
	f.DurationVar(&cfg.ReplicaTimeout, "replica-timeout", d.ReplicaTimeout, "per-replica deadline within a request: a replica that has not answered by then is replaced at once by the next node of the key's preference list, and avoided for 5s (0: a quarter of --request-timeout)")
	f.BoolVar(&hinted, "hinted-handoff", true, "keep hints for unreachable replicas and deliver them when they return")
	f.DurationVar(&cfg.AAEInterval, "aae-interval", d.AAEInterval, "time between anti-entropy rounds (Merkle exchanges with the other replicas, partition handoff, tombstone purge); negative turns them off")
	f.IntVar(&cfg.AAEMaxKeysPerSec, "aae-max-keys-per-sec", d.AAEMaxKeysPerSec, "throttle for anti-entropy and partition handoff: keys listed or moved per second (100000 for a memory cache: --storage memory with --maxmemory)")
	f.DurationVar(&cfg.TombstoneGrace, "tombstone-grace", d.TombstoneGrace, "keep tombstones at least this long; older ones are purged once every member holds exactly the same tombstone or nothing of the key (1s for a memory cache: --storage memory with --maxmemory)")
	f.IntVar(&cfg.N, "n", d.N, "replicas per key (N); clamped to the cluster size")
	f.IntVar(&cfg.R, "r", d.R, "read quorum (R), 1..N")
	f.IntVar(&cfg.W, "w", d.W, "write quorum (W), 1..N")
	f.IntVar(&cfg.Partitions, "partitions", d.Partitions, "partitions (Q), a power of two; fixed for the life of the data")
	f.StringVar(&cfg.RequirePass, "requirepass", "", "password clients must give first: RESP AUTH, or on the memcached port memcached 1.6's text auth ('set <any> 0 0 <n>' with data 'default <password>') (default $DYNAKV_REQUIREPASS, else none)")
	f.IntVar(&cfg.MaxValueBytes, "max-value-bytes", d.MaxValueBytes, "largest value accepted, in bytes")
	f.IntVar(&cfg.MaxClients, "max-clients", d.MaxClients, "most client connections per protocol")
	f.IntVar(&cfg.ClientOutputBufferLimit, "client-output-buffer-limit", d.ClientOutputBufferLimit, "bytes of replies a RESP client may have pending in the node; past it they are written before its next command runs (or, within one large reply, before the command goes on)")
	f.DurationVar(&cfg.ClientWriteTimeout, "client-write-timeout", d.ClientWriteTimeout, "disconnect a client that does not take its replies for this long; negative: never")
	f.StringVar(&cfg.IOModel, "io-model", d.IOModel, "how RESP and memcached client connections are served: loop (event loops, Linux), goroutine (one goroutine per connection) or auto (loop where available); TLS connections always use goroutines")
	f.IntVar(&cfg.IOLoops, "io-loops", 0, "event loops, shared by the RESP and memcached fronts, with --io-model loop (0: one per GOMAXPROCS)")
	f.BoolVar(&cfg.NoBatch, "no-batch", false, "run every command of a RESP pipeline alone, instead of each run of plain SET, GET and single-key DEL (and MGET's keys) with one replica message per peer (A/B benchmarks)")
	f.StringVar(&cfg.TLSCertFile, "tls-cert", "", "PEM certificate: turns on TLS for the RESP and memcached ports and the cluster transport (with --tls-key)")
	f.StringVar(&cfg.TLSKeyFile, "tls-key", "", "PEM private key of --tls-cert")
	f.StringVar(&cfg.TLSCAFile, "tls-ca", "", "PEM CA bundle: the cluster transport becomes mutual TLS against it, and clients must present a certificate it signed (see --tls-auth-clients)")
	f.BoolVar(&tlsAuthClients, "tls-auth-clients", true, "with --tls-ca, require client certificates on the RESP and memcached ports")
	f.BoolVar(&cfg.HTTPTLS, "http-tls", false, "serve the HTTP port (metrics, status, admin, pprof) over TLS with --tls-cert, so the admin token is not sent in clear; reach it with 'dynakv status --http https://HOST:PORT --tls-ca FILE'")
	f.Var(memoryValue{&cfg.MaxMemory}, "maxmemory", "bound on this node's data, in Redis's units (64mb, 1gb; 0: no limit): live records and hints, and tombstones beyond max(maxmemory/4, 1mb); over it, the node evicts (see --maxmemory-policy) or, with noeviction or nothing evictable, client writes that may grow memory get -OOM (memcached: SERVER_ERROR out of memory storing object), while deletes, reads and replica writes go on. Per node, like redis-server; CONFIG SET maxmemory changes it at once")
	f.StringVar(&cfg.MaxMemoryPolicy, "maxmemory-policy", "", "what the node does over --maxmemory, by Redis's names: noeviction refuses growing writes; allkeys-lru, allkeys-lfu, allkeys-random evict any key, volatile-lru, volatile-lfu, volatile-random, volatile-ttl only keys with an expiry. Each node evicts from the partitions it owns, with a tombstone the replicas agree on (default: allkeys-lru with --storage memory, noeviction on disk)")
	f.IntVar(&cfg.MaxMemorySamples, "maxmemory-samples", 5, "records looked at per eviction sampling round, 1..64 (Redis's maxmemory-samples): more is closer to exact LRU/LFU and costs more")
	f.Int64Var(&recordCacheMB, "record-cache-mb", 64, "MiB of recently read and written records kept in memory so that their reads skip the storage engine (at least 32 when on; 32 for a memory cache: --storage memory with --maxmemory); 0 turns the cache off")
	f.StringVar((*string)(&cfg.Fsync), "fsync", string(d.Fsync), `when a write is durable: "interval" acknowledges it once it is in the OS (a killed node loses nothing) and fsyncs every --fsync-interval (a power loss can lose that interval on this node, as with Redis's appendfsync everysec); "always" fsyncs before acknowledging (every write waits for the disk); "none" for tests and benchmarks (even a killed node may lose its last writes)`)
	f.DurationVar(&cfg.FsyncInterval, "fsync-interval", d.FsyncInterval, "fsync period of --fsync interval")
	f.BoolVar(&noSync, "no-sync", false, "same as --fsync none")
	_ = f.MarkDeprecated("no-sync", "use --fsync none")
	// Test only: the chaos harness (compat/chaos) skews one node's clock to check
	// that expiry and last-writer-wins timestamps do not lose data.
	f.DurationVar(&clockOffset, "clock-offset", 0, "test only: add this offset to the node's wall clock")
	_ = f.MarkHidden("clock-offset")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	return cmd
}

// memoryValue is a flag of a memory size in Redis's units (num.ParseMemory:
// digits and an optional b, k, kb, m, mb, g, gb, case-insensitive).
type memoryValue struct{ p *int64 }

func (v memoryValue) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.FormatInt(*v.p, 10)
}

func (v memoryValue) Set(s string) error {
	n, ok := num.ParseMemory(s)
	if !ok || n > math.MaxInt64 {
		return fmt.Errorf("%q is not a memory size (digits and an optional unit: b, k, kb, m, mb, g, gb)", s)
	}
	*v.p = int64(n)
	return nil
}

func (memoryValue) Type() string { return "size" }

// flagOrEnv sets *dst from the environment variable env unless the flag was given:
// secrets kept out of the command line (and so out of ps).
func flagOrEnv(cmd *cobra.Command, flag, env string, dst *string) {
	if !cmd.Flags().Changed(flag) {
		*dst = os.Getenv(env)
	}
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
}

func runServer(ctx context.Context, cfg node.Config) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	n, err := node.Start(cfg)
	if err != nil {
		return err
	}
	if err := waitStop(ctx, cfg.Logger, n); err != nil {
		return err
	}
	cfg.Logger.Info("signal received, shutting down")
	if err := n.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// waitStop waits until ctx ends (nil) or the storage engine of one of nodes
// fails: it then logs and returns the failure, for main to end the process
// without closing the nodes, since calls may be stuck in the failed engine and
// the node acknowledges no more writes anyway.
func waitStop(ctx context.Context, log *slog.Logger, nodes ...*node.Node) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	failed := make(chan *node.Node, len(nodes))
	for _, n := range nodes {
		go func() {
			select {
			case <-n.Failed():
				failed <- n
			case <-ctx.Done():
			}
		}()
	}
	select {
	case <-ctx.Done():
		return nil
	case n := <-failed:
		log.Error("storage engine failed; the node stops", "actor", n.Actor(), "err", n.Err())
		return fmt.Errorf("node %s: %w", n.Actor(), n.Err())
	}
}
