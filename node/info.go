package node

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/dynakv/dynakv/resp"
)

// info supplies the node's fields of Redis's INFO: server, memory and stats
// additions (those named like resp's own replace them: used_memory is the
// node's, see memory.go) and the "# Cluster" section.
func (n *Node) info(section string) []resp.InfoField {
	want := func(s string) bool {
		switch section {
		case "all", "everything", "default":
			return true
		}
		return section == s
	}
	var out []resp.InfoField
	add := func(sec, k string, v any) {
		out = append(out, resp.InfoField{Section: sec, Key: k, Value: fmt.Sprint(v)})
	}
	if want("server") {
		add("server", "dynakv_version", n.cfg.Version)
		add("server", "node_name", n.cfg.Name)
		add("server", "actor_id", n.actor)
		add("server", "storage", n.cfg.Storage)
		add("server", "go_maxprocs", runtime.GOMAXPROCS(0))
	}
	if want("memory") {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		add("memory", "go_heap_alloc", ms.HeapAlloc)
		n.memoryInfo(add)
		sm := n.store.Metrics()
		add("memory", "storage_disk_bytes", sm.DiskBytes)
		add("memory", "storage_memtable_mb", strconv.FormatFloat(sm.MemtableMB, 'f', 2, 64))
		add("memory", "record_cache_bytes", sm.Cache.Bytes)
		add("memory", "record_cache_entries", sm.Cache.Entries)
		add("memory", "record_cache_lookups", sm.Cache.Lookups)
		add("memory", "record_cache_misses", sm.Cache.Misses)
		cs := n.store.CommitStats()
		add("memory", "storage_synced_commits", cs.Commits)
		add("memory", "storage_commit_groups", cs.Groups)
	}
	if want("stats") {
		add("stats", "expired_keys", n.store.Metrics().Reaped)
		add("stats", "evicted_keys", n.evictor.Evicted())
	}
	if want("cluster") {
		add("cluster", "node_name", n.cfg.Name)
		add("cluster", "zone", n.cfg.Zone)
		cs := n.clusterStats()
		add("cluster", "cluster_members", cs.members)
		add("cluster", "cluster_members_alive", cs.alive)
		add("cluster", "zones", n.ms.Ring().NumZones())
		add("cluster", "partitions", n.cfg.Partitions)
		add("cluster", "n", cs.n)
		add("cluster", "r", cs.r)
		add("cluster", "w", cs.w)
		add("cluster", "hints_pending", cs.hintsPending)
		add("cluster", "hints_delivered", cs.hintsDelivered)
		add("cluster", "hints_stored", cs.hintsStored)
		add("cluster", "read_repairs", cs.readRepairs)
		add("cluster", "quorum_failures_read", cs.readQuorumFailures)
		add("cluster", "quorum_failures_write", cs.writeQuorumFailures)
		cm := n.co.Metrics()
		add("cluster", "replica_fallbacks", cm.Fallbacks)
		add("cluster", "replicas_slow", cm.SlowReplicas)
		add("cluster", "ops_forwarded", n.router.Metrics().Forwarded)
		add("cluster", "ops_forward_fallbacks", n.router.Metrics().Fallbacks)
		zc := n.calls.counts()
		for k, name := range [numKinds]string{kindForward: "forwarded", kindReplica: "replica_requests", kindRepair: "repair_requests"} {
			add("cluster", name+"_local_zone", zc.local[k])
			add("cluster", name+"_remote_zone", zc.remote[k])
		}
		add("cluster", "keys_reaped", n.store.Metrics().Reaped)
		am := n.aae.Metrics()
		add("cluster", "aae_exchanges", am.Exchanges)
		add("cluster", "aae_keys_repaired", am.KeysRepaired)
		add("cluster", "aae_rounds", am.Rounds)
		add("cluster", "handoff_partitions_pending", am.HandoffPending)
		add("cluster", "handoff_keys_pending", am.HandoffKeysPending)
		add("cluster", "handoff_partitions_done", am.PartitionsHanded)
		add("cluster", "tombstones_purged", am.TombstonesPurged)
	}
	return out
}

// rss returns the resident set size in bytes (0 where /proc is unavailable).
func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}
