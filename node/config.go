package node

import (
	"errors"
	"fmt"
	"github.com/dynakv/dynakv/evict"
	"log/slog"
	"math"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/dynakv/dynakv/cluster"
	"github.com/dynakv/dynakv/storage"
)

// Storage kinds.
const (
	StorageDisk   = "disk"
	StorageMemory = "memory"
)

// Config configures a node. Every field documents its default.
type Config struct {
	// Name identifies the node in the cluster and in version vectors. Default: the
	// host name.
	Name string
	// Zone is the failure domain the node is in: a rack, availability zone or
	// data center. The ring spreads each key's replicas over the zones (see
	// ring's package documentation). It is part of the node's durable member
	// record, so every node sees the same one; changing it takes a restart and
	// moves partitions like a join. Default "": no zone (a cluster whose members
	// have none is one zone).
	Zone string
	// DataDir holds Pebble's files (disk storage). Default ./data/<Name>.
	DataDir string
	// Storage is "disk" (default) or "memory" (Pebble on an in-memory filesystem).
	Storage string
	// RESPAddr is the Redis protocol listen address. Default 127.0.0.1:6379.
	RESPAddr string
	// MemcacheAddr is the memcached text protocol listen address. Default
	// 127.0.0.1:11211. "" after EnsureDefaults is impossible; use "off" to disable.
	MemcacheAddr string
	// HTTPAddr serves /metrics, /healthz and /debug/pprof. Default 127.0.0.1:9121;
	// "off" disables it.
	HTTPAddr string
	// GossipAddr is the memberlist address. Default 127.0.0.1:7946.
	GossipAddr string
	// ClusterAddr is the internode transport address. Default 127.0.0.1:7947.
	ClusterAddr string
	// Join lists seed gossip addresses of an existing cluster; the node retries
	// with backoff until one answers. Empty: the node starts (or, with members
	// persisted from an earlier run, rejoins) its own cluster.
	Join []string
	// Secret is the cluster secret: it authenticates internode connections and
	// encrypts gossip. Every member needs the same one. Default "" (an empty
	// secret: still checked, but guessable; the node warns).
	Secret string
	// RequestTimeout bounds each request that reaches other nodes. Default 1s.
	RequestTimeout time.Duration
	// ReplicaTimeout is the per-replica deadline within a request: a replica that
	// has not answered by then is replaced by the next node of the key's
	// preference list and avoided for a few seconds (coordinator.Config's
	// ReplicaTimeout). Default 0: RequestTimeout/4. At most RequestTimeout.
	ReplicaTimeout time.Duration
	// DisableHintedHandoff stops storing and delivering hints (tests show
	// anti-entropy alone heals). Default false: hints on.
	DisableHintedHandoff bool
	// AAEInterval is the time between anti-entropy rounds (Merkle exchanges,
	// partition handoff, tombstone purge). Default 30s; negative disables them.
	AAEInterval time.Duration
	// AAEMaxKeysPerSec throttles anti-entropy and handoff: keys listed or moved per
	// second. Default 20000; 100000 for a memory cache (see MemoryCache).
	AAEMaxKeysPerSec int
	// TombstoneGrace is how long a tombstone is kept at least; after it, a tombstone
	// every owner holds is purged. Default 24h; 1s for memory storage (see
	// memoryTombstoneGrace): eviction tombstones must not linger, and purge's
	// safety does not rest on the grace. Hints are kept until delivered, whatever their age.
	TombstoneGrace time.Duration
	// GossipTuning, when set, adjusts memberlist's configuration (tests shorten its
	// intervals).
	GossipTuning func(*memberlist.Config)
	// N, R, W are the replication factor and the read and write quorums. Defaults
	// 3, 2, 2; clamped to the member count.
	N, R, W int
	// Partitions is Q, a power of two. Default 1024. Fixed for a data directory.
	Partitions int
	// RequirePass makes RESP clients AUTH first, and memcached clients
	// authenticate as memcached 1.6's ASCII auth does (user "default"). Default ""
	// (no password).
	RequirePass string
	// ClientOutputBufferLimit bounds the replies a RESP client has pending in the
	// node, in bytes: past it they are written before its next command runs, or,
	// within one large reply, before the command goes on. Default 4 MiB.
	ClientOutputBufferLimit int
	// ClientWriteTimeout disconnects a client (RESP or memcached) that does not
	// take its replies for this long. Default 30s; negative: never.
	ClientWriteTimeout time.Duration
	// IOModel is how RESP and memcached client connections are driven: "loop"
	// (event loops, Linux), "goroutine" (one goroutine each) or "auto" (loops
	// where the system has them). TLS connections always use goroutines. Default
	// "auto".
	IOModel string
	// IOLoops is the number of event loops, shared by the RESP and memcached
	// fronts, with IOModel loop. Default 0: GOMAXPROCS.
	IOLoops int
	// NoBatch runs every command of a RESP pipeline alone, instead of running
	// each run of plain SET, GET and single-key DEL (and MGET's keys) with one
	// replica message per peer (A/B benchmarks and tests). Default false.
	NoBatch bool
	// TLSCertFile and TLSKeyFile, both set, turn TLS on for the RESP and memcached
	// ports and the cluster transport (PEM files). Default "": plain TCP.
	TLSCertFile, TLSKeyFile string
	// TLSCAFile is a PEM bundle of the CA that signs the nodes' (and clients')
	// certificates: with it the cluster transport is mutual TLS and, when
	// TLSAuthClients, clients must present a certificate it signed. Default "".
	TLSCAFile string
	// TLSNoClientCerts lets clients of the RESP and memcached ports connect
	// without a certificate when TLSCAFile is set. Default false: they need one
	// (Redis's tls-auth-clients yes).
	TLSNoClientCerts bool
	// HTTPTLS serves the HTTP port (metrics, status, admin, pprof) over TLS with
	// TLSCertFile, so the admin token does not cross the network in clear. No
	// client certificate is asked for: the admin token authenticates, and
	// scrapers need only trust the CA. Needs TLSCertFile. Default false.
	HTTPTLS bool
	// MaxValueBytes bounds a stored value. Default 1 MiB.
	MaxValueBytes int
	// MaxClients bounds client connections per protocol. Default 10000.
	MaxClients int
	// MaxMemory bounds the node's data, in bytes (Redis's maxmemory): live
	// records, hints, and graves past an allowance (see usedMemory). Over it
	// the node refuses client writes that may grow memory with Redis's -OOM
	// (memcached: SERVER_ERROR out of memory storing object); replica writes,
	// hints and repair are always accepted. CONFIG SET maxmemory changes it at
	// once. Default 0: no limit.
	MaxMemory int64
	// MaxMemoryPolicy is what the node does over MaxMemory: one of Redis's
	// eight policy names: "noeviction" refuses growing writes; the others evict
	// (repair.Evictor) records of the partitions this node owns, with a
	// tombstone that every replica agrees on (coordinator.Evict). Default
	// "allkeys-lru" for memory storage (a cache), "noeviction" for disk.
	MaxMemoryPolicy string
	// MaxMemorySamples is how many records each eviction sampling round looks
	// at (Redis's maxmemory-samples), 1..64. Default 5.
	MaxMemorySamples int
	// RecordCacheBytes bounds the record cache (recently read and written records
	// kept in memory so that their reads skip Pebble). Default 64 MiB, 32 MiB
	// (fastcache's least) for a memory cache (see MemoryCache); negative turns
	// it off.
	RecordCacheBytes int64
	// BlockCacheBytes is Pebble's block cache. Default 64 MiB; 8 MiB for a
	// memory cache (see MemoryCache): its blocks are copies of files already in
	// memory.
	BlockCacheBytes int64
	// MemTableBytes is the size of Pebble's memtables (two at most: the one
	// written and one being flushed). Default 4 MiB; 2 MiB for a memory cache.
	MemTableBytes int64
	// GoMemoryLimit, when set, is called with the Go runtime's soft memory
	// limit derived from maxmemory (GoMemoryLimitFor) when the node starts and
	// whenever CONFIG SET maxmemory changes it; cmd/dynakv passes
	// debug.SetMemoryLimit unless GOMEMLIMIT is set. Default nil: the runtime's
	// limit is left alone (a library does not own the process's settings).
	GoMemoryLimit func(bytes int64)
	// Fsync says when a write is durable relative to its acknowledgement:
	// storage.SyncInterval (default: in the OS before the ack, fsynced every
	// FsyncInterval), storage.SyncAlways (fsynced before the ack) or
	// storage.SyncNone (tests and benchmarks).
	Fsync storage.SyncMode
	// FsyncInterval is the fsync period of storage.SyncInterval. Default 100ms.
	FsyncInterval time.Duration
	// Version is reported by INFO, HELLO and memcached's version.
	Version string
	// Logger is the node's logger. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Storage:                 StorageDisk,
		Fsync:                   storage.SyncInterval,
		FsyncInterval:           100 * time.Millisecond,
		RESPAddr:                "127.0.0.1:6379",
		MemcacheAddr:            "127.0.0.1:11211",
		HTTPAddr:                "127.0.0.1:9121",
		GossipAddr:              "127.0.0.1:7946",
		ClusterAddr:             "127.0.0.1:7947",
		N:                       3,
		R:                       2,
		W:                       2,
		Partitions:              1024,
		MaxValueBytes:           1 << 20,
		MaxClients:              10000,
		Version:                 "dev",
		RequestTimeout:          time.Second,
		AAEInterval:             30 * time.Second,
		AAEMaxKeysPerSec:        20000,
		TombstoneGrace:          24 * time.Hour,
		ClientOutputBufferLimit: 4 << 20,
		ClientWriteTimeout:      30 * time.Second,
		IOModel:                 "auto",
	}
}

// EnsureDefaults returns a copy of c with unset fields taken from DefaultConfig.
func (c Config) EnsureDefaults() Config {
	d := DefaultConfig()
	set := func(s *string, def string) {
		if *s == "" {
			*s = def
		}
	}
	setInt := func(i *int, def int) {
		if *i == 0 {
			*i = def
		}
	}
	set(&c.Storage, d.Storage)
	if c.Fsync == "" {
		c.Fsync = d.Fsync
	}
	if c.FsyncInterval == 0 {
		c.FsyncInterval = d.FsyncInterval
	}
	set(&c.RESPAddr, d.RESPAddr)
	set(&c.MemcacheAddr, d.MemcacheAddr)
	set(&c.HTTPAddr, d.HTTPAddr)
	set(&c.GossipAddr, d.GossipAddr)
	set(&c.ClusterAddr, d.ClusterAddr)
	set(&c.Version, d.Version)
	setInt(&c.N, d.N)
	setInt(&c.R, d.R)
	setInt(&c.W, d.W)
	setInt(&c.Partitions, d.Partitions)
	setInt(&c.MaxValueBytes, d.MaxValueBytes)
	setInt(&c.MaxClients, d.MaxClients)
	setInt(&c.ClientOutputBufferLimit, d.ClientOutputBufferLimit)
	if c.ClientWriteTimeout == 0 {
		c.ClientWriteTimeout = d.ClientWriteTimeout
	}
	if c.IOModel == "" {
		c.IOModel = d.IOModel
	}
	if c.Name == "" {
		c.Name = defaultName()
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.AAEInterval == 0 {
		c.AAEInterval = d.AAEInterval
	}
	// A memory node is a cache, with a limit or without (CONFIG SET maxmemory
	// may give it one at any time): its tombstones go as soon as purge may
	// take them (see memoryTombstoneGrace).
	if c.Storage == StorageMemory && c.TombstoneGrace == 0 {
		c.TombstoneGrace = memoryTombstoneGrace
	}
	if c.MemoryCache() {
		c.memoryCacheDefaults()
	}
	if c.AAEMaxKeysPerSec == 0 {
		c.AAEMaxKeysPerSec = d.AAEMaxKeysPerSec
	}
	if c.TombstoneGrace == 0 {
		c.TombstoneGrace = d.TombstoneGrace
	}
	if c.DataDir == "" {
		c.DataDir = filepath.Join("data", c.Name)
	}
	// A memory node is a cache: it evicts by default, as memcached does.
	if c.Storage == StorageMemory {
		set(&c.MaxMemoryPolicy, "allkeys-lru")
	}
	set(&c.MaxMemoryPolicy, PolicyNoEviction)
	if c.MaxMemorySamples == 0 {
		c.MaxMemorySamples = 5
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// MemoryCache reports whether c is a memory cache: memory storage with a
// maxmemory at start. Such a node takes its own defaults for the fields left
// zero (the others are as for any node):
//
//   - AAEMaxKeysPerSec 100000: eviction tombstones are purged as soon as
//     every owner holds them, so that graves stay within their allowance at
//     a cache's eviction rate (and any memory node's TombstoneGrace is 1 s);
//   - BlockCacheBytes 8 MiB, MemTableBytes 2 MiB, RecordCacheBytes 32 MiB:
//     the data is in memory already, and what the caches hold is outside
//     maxmemory (the fixed overhead of the stated bound on RSS).
//
// A CONFIG SET maxmemory on a node started without one changes none of them.
func (c Config) MemoryCache() bool { return c.Storage == StorageMemory && c.MaxMemory > 0 }

// memoryTombstoneGrace is a memory node's TombstoneGrace unless set. Purge's
// safety does not rest on the grace (repair/purge.go: every holder is asked
// twice), and a memory node keeps nothing across a restart anyway, while its
// tombstones cost the memory its limit bounds. Every memory node has it, not
// only one started with a limit: a purge is decided by a partition's first
// owner with its own grace, so a node made a cache by CONFIG SET would
// otherwise hold the tombstones of its evictions in other owners' partitions
// for their day-long default.
const memoryTombstoneGrace = time.Second

// Memory-cache defaults (MemoryCache).
const (
	memoryCacheAAEMaxKeys      = 100000
	memoryCacheBlockCacheBytes = 8 << 20
	memoryCacheMemTableBytes   = 2 << 20
	memoryCacheRecordCache     = 32 << 20
)

// memoryCacheDefaults fills c's zero fields with the memory-cache defaults.
func (c *Config) memoryCacheDefaults() {
	if c.AAEMaxKeysPerSec == 0 {
		c.AAEMaxKeysPerSec = memoryCacheAAEMaxKeys
	}
	if c.BlockCacheBytes == 0 {
		c.BlockCacheBytes = memoryCacheBlockCacheBytes
	}
	if c.MemTableBytes == 0 {
		c.MemTableBytes = memoryCacheMemTableBytes
	}
	if c.RecordCacheBytes == 0 {
		c.RecordCacheBytes = memoryCacheRecordCache
	}
}

// goFixedBytes is the Go heap a node needs beside its data's files and
// Pebble's caches: Merkle trees, the record cache's index, buffers, stacks.
const goFixedBytes = 32 << 20

// pebbleHeapBytes is what Pebble allocates by hand (its block cache and two
// memtables) when that is on the Go heap: built without cgo (CGO_ENABLED=0,
// as the Dockerfile builds), Pebble's manual allocator takes them from the Go
// heap; with cgo, from C's, outside the Go limit (0).
func (c Config) pebbleHeapBytes() int64 {
	if !pebbleManualOnHeap {
		return 0
	}
	// storage's defaults for the sizes left zero.
	block := storage.Config{CacheBytes: c.BlockCacheBytes}.EnsureDefaults().CacheBytes
	mem := c.MemTableBytes
	if mem == 0 {
		mem = storage.DefaultMemTableBytes
	}
	return block + 2*mem
}

// GoMemoryLimitFor is the Go runtime's soft memory limit for a memory node
// with maxmemory bytes (0: no limit, math.MaxInt64) and Pebble's hand-made
// allocations of pebble bytes on the Go heap (Config.pebbleHeapBytes): 1.5 x maxmemory,
// plus the access table (4 bytes a slot, evict.SlotsFor: up to maxmemory/8),
// plus pebble, plus 32 MiB. In memory mode Pebble's files live on the Go heap,
// and the evictor keeps them within 1.4 x maxmemory (repair.ValveTarget); the
// limit makes the collector run before garbage doubles them (GOGC's 100 %),
// and return idle memory to the OS. It is soft: a heap that must grow past it
// grows (the collector then takes at most half the CPU). The record cache's
// data is off the Go heap (fastcache maps its own memory) and outside it. A
// disk node's data is not on the heap: node/ sets no limit for one.
func GoMemoryLimitFor(maxMemory, pebble int64) int64 {
	if maxMemory <= 0 || maxMemory > (math.MaxInt64-goFixedBytes-pebble)/26*16 {
		return math.MaxInt64
	}
	return maxMemory + maxMemory/2 + 4*int64(evict.SlotsFor(maxMemory)) + pebble + goFixedBytes
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Name == "" || len(c.Name) > 64 {
		bad("--name must be 1..64 bytes")
	}
	for _, r := range c.Name {
		if r <= ' ' || r == ':' || r > '~' {
			bad("--name %q: use printable ASCII without spaces or ':'", c.Name)
			break
		}
	}
	if err := cluster.CheckZone(c.Zone); err != nil {
		bad("--zone: %v", err)
	}
	if c.Storage != StorageDisk && c.Storage != StorageMemory {
		bad("--storage must be %q or %q, not %q", StorageDisk, StorageMemory, c.Storage)
	}
	if _, err := storage.ParseSyncMode(string(c.Fsync)); err != nil {
		bad("--fsync must be %q, %q or %q, not %q", storage.SyncInterval, storage.SyncAlways, storage.SyncNone, c.Fsync)
	}
	if c.FsyncInterval < 0 {
		bad("--fsync-interval must be positive, not %v", c.FsyncInterval)
	}
	for _, a := range []struct{ flag, addr string }{
		{"--resp", c.RESPAddr}, {"--memcache", c.MemcacheAddr}, {"--http", c.HTTPAddr},
		{"--gossip", c.GossipAddr}, {"--cluster", c.ClusterAddr},
	} {
		if a.addr == "off" && (a.flag == "--memcache" || a.flag == "--http") {
			continue
		}
		if err := checkAddr(a.addr); err != nil {
			bad("%s %q: %v", a.flag, a.addr, err)
		}
	}
	for _, j := range c.Join {
		if err := checkAddr(j); err != nil {
			bad("--join %q: %v", j, err)
		}
	}
	if c.AAEMaxKeysPerSec < 0 {
		bad("--aae-max-keys-per-sec must be positive, not %d", c.AAEMaxKeysPerSec)
	}
	if c.TombstoneGrace < 0 {
		bad("--tombstone-grace must be positive, not %v", c.TombstoneGrace)
	}
	if c.RequestTimeout < 0 {
		bad("--request-timeout must be positive, not %v", c.RequestTimeout)
	}
	if c.ReplicaTimeout < 0 || c.ReplicaTimeout > c.RequestTimeout {
		bad("--replica-timeout must be between 0 (a quarter of --request-timeout) and --request-timeout (%v), not %v", c.RequestTimeout, c.ReplicaTimeout)
	}
	if c.N < 1 {
		bad("--n must be at least 1, not %d", c.N)
	}
	if c.R < 1 || c.R > c.N {
		bad("--r must be between 1 and --n (%d), not %d", c.N, c.R)
	}
	if c.W < 1 || c.W > c.N {
		bad("--w must be between 1 and --n (%d), not %d", c.N, c.W)
	}
	if c.Partitions < 1 || c.Partitions > 1<<16 || c.Partitions&(c.Partitions-1) != 0 {
		bad("--partitions must be a power of two between 1 and 65536, not %d", c.Partitions)
	}
	if c.MaxValueBytes < 1 || c.MaxValueBytes > 512<<20 {
		bad("--max-value-bytes must be between 1 and 536870912, not %d", c.MaxValueBytes)
	}
	if c.MaxClients < 1 {
		bad("--max-clients must be at least 1, not %d", c.MaxClients)
	}
	if c.ClientOutputBufferLimit < 1 {
		bad("--client-output-buffer-limit must be positive, not %d", c.ClientOutputBufferLimit)
	}
	switch c.IOModel {
	case "auto", "loop", "goroutine":
	default:
		bad("--io-model must be auto, loop or goroutine, not %q", c.IOModel)
	}
	if c.IOLoops < 0 {
		bad("--io-loops must not be negative, not %d", c.IOLoops)
	}
	if c.MaxMemory < 0 {
		bad("--maxmemory must not be negative, not %d", c.MaxMemory)
	}
	if c.BlockCacheBytes < 0 || c.MemTableBytes < 0 {
		bad("the block cache (%d) and memtable (%d) sizes must not be negative", c.BlockCacheBytes, c.MemTableBytes)
	}
	if err := checkPolicy(c.MaxMemoryPolicy); err != nil {
		bad("--maxmemory-policy %v", err)
	}
	if c.MaxMemorySamples < 1 || c.MaxMemorySamples > 64 {
		bad("--maxmemory-samples must be within 1..64, not %d", c.MaxMemorySamples)
	}
	if err := c.validateTLS(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		if _, err := net.LookupHost(host); err != nil {
			return fmt.Errorf("unknown host %q", host)
		}
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}
