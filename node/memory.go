package node

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/dynakv/dynakv/memcache"
	"github.com/dynakv/dynakv/proxy"
	"github.com/dynakv/dynakv/resp"
	"github.com/dynakv/dynakv/storage"
)

// The node's memory limit (issue 18): what counts, the gate on growing client
// writes, the CONFIG parameters and what INFO and memcached's stats show.
//
// used_memory = Live + Hints + max(0, Graves - A), with the allowance
// A = max(maxmemory/4, 1 MiB) (1 MiB without a limit): tombstones awaiting purge
// are not counted up to A, so that a delete frees its bytes for the limit at
// once, although its tombstone stays until every replica holds it. The figures
// are storage's exact logical sums (storage.MemoryStats), O(1) to read.

// The maxmemory policies, Redis's names.
const PolicyNoEviction = "noeviction"

var maxMemoryPolicies = []string{"volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl",
	"allkeys-lru", "allkeys-lfu", "allkeys-random", PolicyNoEviction}

// checkPolicy accepts Redis's eight policy names, and of them only noeviction
// until the evictor lands.
func checkPolicy(p string) error {
	switch {
	case p == PolicyNoEviction:
		return nil
	case slices.Contains(maxMemoryPolicies, p):
		return fmt.Errorf("%s: eviction is not available yet; only %s", p, PolicyNoEviction)
	}
	return fmt.Errorf("%q: must be one of %s", p, strings.Join(maxMemoryPolicies, ", "))
}

// graveAllowance is A: the grave bytes not counted in used_memory.
func graveAllowance(maxMemory int64) int64 { return max(maxMemory/4, 1<<20) }

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
}

// measure reads the store's sums and derives used_memory.
func (n *Node) measure() memUsage {
	u := memUsage{MemoryStats: n.store.Memory(), max: n.mem.max.Load()}
	a := graveAllowance(u.max)
	u.uncounted = min(u.Graves, a)
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

// oom is resp's Config.OOM: over the limit, and (noeviction) unable to evict.
func (n *Node) oom() bool { return n.mem.max.Load() > 0 && n.measure().full() }

// memGate is the proxy's Memory: it refuses growing ops where they execute.
type memGate struct{ n *Node }

// Admit implements proxy.Memory: under noeviction, ErrOOM at once when full.
func (g memGate) Admit(context.Context) error {
	if g.n.mem.max.Load() == 0 {
		return nil // no limit: nothing to read
	}
	if u := g.n.measure(); u.full() {
		return fmt.Errorf("node %s: used memory %d > maxmemory %d: %w", g.n.cfg.Name, u.used, u.max, proxy.ErrOOM)
	}
	return nil
}

var _ proxy.Memory = memGate{}

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
	}
	return "", false
}

// Set implements resp.Tunables; a new maxmemory takes effect at once.
func (t tunables) Set(name, v string) error {
	switch name {
	case "maxmemory":
		m, err := strconv.ParseInt(v, 10, 64)
		if err != nil || m < 0 {
			return fmt.Errorf("maxmemory %q: out of range", v)
		}
		t.n.mem.max.Store(m)
		if u := t.n.usage(); u.full() {
			t.n.log.Warn("the new maxmemory is smaller than the current memory usage: growing writes are refused until memory is freed",
				"maxmemory", m, "used_memory", u.used)
		}
		return nil
	case "maxmemory-policy":
		if err := checkPolicy(v); err != nil {
			return err
		}
		t.n.mem.policy.Store(&v)
		return nil
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
	add("memory", "storage_fs_bytes", n.store.Physical().FS)
}

// mcStats are the node's lines of memcached's "stats".
func (n *Node) mcStats() []memcache.Stat {
	u := n.usage()
	return []memcache.Stat{
		{Name: "limit_maxbytes", Value: strconv.FormatInt(u.max, 10)},
		{Name: "bytes", Value: strconv.FormatInt(u.used, 10)},
		{Name: "evictions", Value: "0"}, // the evictor's count once it lands
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
