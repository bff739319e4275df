package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/evict"
	"github.com/dynakv/dynakv/memcache"
	"github.com/dynakv/dynakv/proxy"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/repair"
	"github.com/dynakv/dynakv/resp"
	"github.com/dynakv/dynakv/storage"
)

// The node's memory limit (issue 18): what counts, the gate on growing client
// writes, the CONFIG parameters and what INFO and memcached's stats show.
//
// used_memory = Live + Hints + max(0, Graves - A - Young), with the allowance
// A = max(maxmemory/4, 1 MiB) (1 MiB without a limit), and Young the tombstones
// younger than the purge's cycle (youngGraveWindow: the grace, two rounds'
// interval and the purge's settle; 76 s for a memory node with the defaults).
//
// A delete or an eviction frees its value's bytes for the limit at once,
// although its tombstone stays until every replica holds it and the purge has
// checked it twice. Young tombstones are the agreement in flight, as Redis
// leaves its replication and AOF buffers out of eviction
// (mem_not_counted_for_evict): counting them would make each eviction free only
// its value's bytes (a small value's tombstone costs about what its record did),
// so that a node whose graves pass A could not evict its way back under the
// limit before the next purge. Tombstones older than the cycle, which a purge
// should have taken (a replica is down, or the grace keeps them a day), count
// past A, which bounds them. The figures are storage's exact logical sums
// (storage.MemoryStats), O(1) to read, and a 128-bucket sum for Young, read
// only when the graves pass A.

// The maxmemory policies, Redis's names.
const PolicyNoEviction = "noeviction"

var maxMemoryPolicies = []string{"volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl",
	"allkeys-lru", "allkeys-lfu", "allkeys-random", PolicyNoEviction}

// checkPolicy accepts Redis's eight policy names.
func checkPolicy(p string) error {
	if slices.Contains(maxMemoryPolicies, p) {
		return nil
	}
	return fmt.Errorf("%q: must be one of %s", p, strings.Join(maxMemoryPolicies, ", "))
}

// newEvictor builds the node's evictor (repair.Evictor): it samples the
// partitions this node owns and evicts through the coordinator's Evict, exact.
func (n *Node) newEvictor() error {
	pol, err := evict.ParsePolicy(n.cfg.MaxMemoryPolicy)
	if err != nil {
		return err
	}
	// In memory mode Pebble's files are in RAM: the physical valve keeps them
	// within 1.4 x maxmemory (repair.ValveTarget). The WAL is left out: it
	// holds the memtables' writes, bounded by their size (fixed overhead),
	// which a small maxmemory may not exceed. On disk files cost no memory.
	var physical func() int64
	if n.cfg.Storage == StorageMemory {
		physical = func() int64 {
			ph := n.store.Physical()
			return int64(ph.FS - min(ph.WAL, ph.FS))
		}
	}
	ev, err := repair.NewEvictor(repair.EvictorConfig{
		Physical: physical,
		Node:     n.cfg.Name,
		Store:    n.store,
		Cluster:  n.ms,
		Caller:   n.calls,
		N:        n.cfg.N,
		Usage: func() (int64, int64) {
			u := n.measure() // not usage: the peak is what reports saw
			return u.used, u.max
		},
		Evict: func(ctx context.Context, key []byte, seen record.Record) (bool, error) {
			res, err := n.co.Evict(ctx, key, seen, true)
			if errors.Is(err, coordinator.ErrNoWrite) {
				err = fmt.Errorf("%w: %w", repair.ErrEvictGhost, err)
			}
			return res.Evicted, err
		},
		GravesHigh: func() bool {
			u := n.usage()
			return u.max > 0 && u.Graves > graveAllowance(u.max)/2
		},
		KickPurge: func() {
			if n.cfg.AAEInterval > 0 {
				n.aae.Kick()
			}
		},
		Policy:         pol,
		Samples:        n.cfg.MaxMemorySamples,
		RequestTimeout: n.cfg.RequestTimeout,
		Now:            n.cfg.Now,
		Logger:         n.log.With("component", "evictor"),
	})
	if err != nil {
		return err
	}
	ev.Register(n.mux)
	n.evictor = ev
	return nil
}

// setGoMemoryLimit hands Config.GoMemoryLimit the limit for maxMemory
// (GoMemoryLimitFor), when the caller set it.
// A disk node's data is not on the Go heap, so it gets no limit.
func (n *Node) setGoMemoryLimit(maxMemory int64) {
	if n.cfg.GoMemoryLimit != nil && n.cfg.Storage == StorageMemory {
		n.cfg.GoMemoryLimit(GoMemoryLimitFor(maxMemory, n.cfg.pebbleHeapBytes()))
	}
}

// graveAllowance is A: the grave bytes not counted in used_memory.
func graveAllowance(maxMemory int64) int64 { return max(maxMemory/4, 1<<20) }

// youngGraveWindow is how long a tombstone stays out of used_memory (see the
// rule above): the purge's cycle, that is the grace, then up to a round's
// interval until a purge walks past it, and another for a round whose purge
// started late (after its exchanges) or ran out of time, the settle between
// the two checks, and 5 s to spare; storage caps it at 127 s. Without a purge
// on this node (its rounds off, or purging disabled) it is 0. Every node is
// taken to share this node's interval and grace, as a cluster's nodes are
// configured alike: a partition's purge is decided by its first owner.
func (n *Node) youngGraveWindow() time.Duration {
	grace := n.cfg.TombstoneGrace
	if n.aae == nil || n.cfg.AAEInterval <= 0 || grace < 0 {
		return 0
	}
	return grace + 2*n.cfg.AAEInterval + n.aae.Settle() + 5*time.Second
}

// memUsage is the node's memory figures at one moment.
type memUsage struct {
	storage.MemoryStats
	max, used, uncounted int64 // maxmemory, used_memory, mem_not_counted_for_evict
}

// memLimit is the node's live maxmemory settings (CONFIG SET changes them) and
// the peak of used_memory.
type memLimit struct {
	max    atomic.Int64
	policy atomic.Pointer[string]
	peak   atomic.Int64
	// set serializes CONFIG SET of the memory parameters, which resp runs
	// concurrently from several connections: the policy is stored twice (here
	// and in the evictor), and two interleaved SETs must not leave the two apart.
	set sync.Mutex
}

// measure reads the store's sums and derives used_memory.
func (n *Node) measure() memUsage {
	u := memUsage{MemoryStats: n.store.Memory(), max: n.mem.max.Load()}
	a := graveAllowance(u.max)
	u.uncounted = min(u.Graves, a)
	if u.Graves > a {
		u.uncounted = min(u.Graves, a+n.store.YoungGraves(n.cfg.Now(), n.youngGraveWindow()))
	}
	u.used = u.Live + u.Hints + u.Graves - u.uncounted
	return u
}

// usage is measure for what reports it (INFO, memcached stats, /metrics): it
// also raises used_memory_peak, which is therefore the largest figure a report
// saw, as Redis's is the largest its cron saw. The write path's checks (oom,
// memGate) only measure, so a write does not touch the peak's shared word.
func (n *Node) usage() memUsage {
	u := n.measure()
	for p := n.mem.peak.Load(); u.used > p && !n.mem.peak.CompareAndSwap(p, u.used); p = n.mem.peak.Load() {
	}
	return u
}

// full reports whether the node is over its limit: Redis's "used > maxmemory".
func (u memUsage) full() bool { return u.max > 0 && u.used > u.max }

// oom is resp's Config.OOM: over the limit, and unable to evict (noeviction,
// or the evictor found nothing it may evict).
func (n *Node) oom() bool {
	if n.mem.max.Load() == 0 {
		return false
	}
	return n.measure().full() && (*n.mem.policy.Load() == PolicyNoEviction || n.evictor.Stuck())
}

// memGate is the proxy's Memory: it refuses growing ops where they execute.
type memGate struct{ n *Node }

// Admit implements proxy.Memory: when full, ErrOOM at once under noeviction;
// under an evicting policy, once the evictor could not make room within its
// wait (repair.Evictor.Admit: 500 ms or ctx) or found nothing to evict.
func (g memGate) Admit(ctx context.Context) error {
	if g.n.mem.max.Load() == 0 {
		return nil // no limit: nothing to read
	}
	u := g.n.measure()
	if !u.full() {
		return nil
	}
	if *g.n.mem.policy.Load() != PolicyNoEviction {
		err := g.n.evictor.Admit(ctx)
		if err == nil {
			return nil
		}
		return fmt.Errorf("node %s: %w: %w", g.n.cfg.Name, err, proxy.ErrOOM)
	}
	return fmt.Errorf("node %s: used memory %d > maxmemory %d: %w", g.n.cfg.Name, u.used, u.max, proxy.ErrOOM)
}

// Check implements proxy.MemoryChecker: ok when not full, ErrOOM at once under
// noeviction, and neither under an evicting policy over the limit (Admit may
// wait for the evictor: the op runs off the event loop).
func (g memGate) Check() (bool, error) {
	if g.n.mem.max.Load() == 0 {
		return true, nil
	}
	u := g.n.measure()
	if !u.full() {
		return true, nil
	}
	if *g.n.mem.policy.Load() != PolicyNoEviction {
		return false, nil
	}
	return false, fmt.Errorf("node %s: used memory %d > maxmemory %d: %w", g.n.cfg.Name, u.used, u.max, proxy.ErrOOM)
}

var (
	_ proxy.Memory        = memGate{}
	_ proxy.MemoryChecker = memGate{}
)

// tunables is resp's Config.Tunables: the node's maxmemory and policy.
type tunables struct{ n *Node }

var _ resp.Tunables = tunables{}

// Get implements resp.Tunables.
func (t tunables) Get(name string) (string, bool) {
	switch name {
	case "maxmemory":
		return strconv.FormatInt(t.n.mem.max.Load(), 10), true
	case "maxmemory-policy":
		return *t.n.mem.policy.Load(), true
	case "maxmemory-samples":
		return strconv.Itoa(t.n.evictor.Samples()), true
	}
	return "", false
}

// Set implements resp.Tunables; a new maxmemory takes effect at once.
func (t tunables) Set(name, v string) error {
	t.n.mem.set.Lock()
	defer t.n.mem.set.Unlock()
	switch name {
	case "maxmemory":
		m, err := strconv.ParseInt(v, 10, 64)
		if err != nil || m < 0 {
			return fmt.Errorf("maxmemory %q: out of range", v)
		}
		t.n.mem.max.Store(m)
		t.n.setGoMemoryLimit(m)
		if u := t.n.usage(); u.full() && *t.n.mem.policy.Load() == PolicyNoEviction {
			t.n.log.Warn("the new maxmemory is smaller than the current memory usage: growing writes are refused until memory is freed",
				"maxmemory", m, "used_memory", u.used)
		}
		t.n.evictor.Wake()
		return nil
	case "maxmemory-policy":
		pol, err := evict.ParsePolicy(v)
		if err != nil {
			return err
		}
		v = pol.String()
		t.n.mem.policy.Store(&v)
		t.n.evictor.SetPolicy(pol)
		return nil
	case "maxmemory-samples":
		k, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("maxmemory-samples %q: not an integer", v)
		}
		return t.n.evictor.SetSamples(k)
	}
	return fmt.Errorf("%s: not a node parameter", name)
}

// memoryInfo is the node's "# Memory" fields of INFO; used_memory and its
// neighbours replace resp's Go heap figures.
func (n *Node) memoryInfo(add func(sec, k string, v any)) {
	u := n.usage()
	human := func(b int64) string { return resp.BytesToHuman(uint64(max(b, 0))) }
	rs := rss()
	add("memory", "used_memory", u.used)
	add("memory", "used_memory_human", human(u.used))
	add("memory", "used_memory_rss", rs)
	add("memory", "used_memory_rss_human", human(rs))
	peak := n.mem.peak.Load()
	add("memory", "used_memory_peak", peak)
	add("memory", "used_memory_peak_human", human(peak))
	add("memory", "used_memory_dataset", u.Live)
	add("memory", "mem_not_counted_for_evict", u.uncounted)
	add("memory", "maxmemory", u.max)
	add("memory", "maxmemory_human", human(u.max))
	add("memory", "maxmemory_policy", *n.mem.policy.Load())
	ratio := 0.0
	if u.used > 0 {
		ratio = float64(rs) / float64(u.used)
	}
	add("memory", "mem_fragmentation_ratio", strconv.FormatFloat(ratio, 'f', 2, 64))
	add("memory", "used_memory_graves", u.Graves)
	add("memory", "used_memory_hints", u.Hints)
	add("memory", "evict_table_bytes", n.evictor.TableBytes())
	add("memory", "evict_target", n.evictor.Target())
	ph := n.store.Physical()
	add("memory", "storage_fs_bytes", ph.FS)
	add("memory", "storage_memtables_bytes", ph.Memtables)
	add("memory", "storage_block_cache_bytes", ph.BlockCache)
}

// mcStats are the node's lines of memcached's "stats".
func (n *Node) mcStats() []memcache.Stat {
	u := n.usage()
	return []memcache.Stat{
		{Name: "limit_maxbytes", Value: strconv.FormatInt(u.max, 10)},
		{Name: "bytes", Value: strconv.FormatInt(u.used, 10)},
		{Name: "evictions", Value: strconv.FormatInt(n.evictor.Evicted(), 10)},
	}
}

// mcSettings are the node's lines of memcached's "stats settings": evictions
// off under noeviction, as memcached's -M.
func (n *Node) mcSettings() []memcache.Stat {
	ev := "on"
	if *n.mem.policy.Load() == PolicyNoEviction {
		ev = "off"
	}
	return []memcache.Stat{
		{Name: "maxbytes", Value: strconv.FormatInt(n.mem.max.Load(), 10)},
		{Name: "evictions", Value: ev},
	}
}
