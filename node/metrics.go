package node

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/dynakv/dynakv/proxy"
)

// maxCommandLabels bounds the distinct command names that get their own metric
// series; garbage command names from the network share the "other" label.
const maxCommandLabels = 200

// metrics holds the node's Prometheus collectors on a private registry and implements
// proxy.Observer for the front ends.
type metrics struct {
	reg      *prometheus.Registry
	commands *prometheus.CounterVec
	errors   *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	conns    *prometheus.GaugeVec
	siblings prometheus.Histogram
	// loopIteration is how long each event-loop iteration kept its loop busy.
	loopIteration prometheus.Histogram

	mu     sync.RWMutex
	series map[[2]string]*commandSeries
}

type commandSeries struct {
	count, errs prometheus.Counter
	latency     prometheus.Observer
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dynakv_commands_total", Help: "Commands executed, by protocol and command.",
		}, []string{"protocol", "command"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dynakv_command_errors_total", Help: "Commands that answered an error, by protocol and command.",
		}, []string{"protocol", "command"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dynakv_command_duration_seconds",
			Help:    "Command latency as seen by the front end, by protocol and command.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 2.5, 12), // 10µs .. ~240ms
		}, []string{"protocol", "command"}),
		conns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dynakv_connections", Help: "Open client connections, by protocol.",
		}, []string{"protocol"}),
		siblings: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "dynakv_siblings_per_read", Help: "Live siblings found by each read.",
			Buckets: []float64{0, 1, 2, 3, 5, 10},
		}),
		loopIteration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "dynakv_loop_iteration_seconds",
			Help:    "How long each iteration of the client event loops kept its loop busy (every connection of the loop waited for it): reads, inline commands, the commit of their writes, replies.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 4, 9), // 10µs .. ~0.65s
		}),
		series: make(map[[2]string]*commandSeries),
	}
	m.reg.MustRegister(m.commands, m.errors, m.latency, m.conns, m.siblings, m.loopIteration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) seriesFor(protocol, name string) *commandSeries {
	k := [2]string{protocol, name}
	m.mu.RLock()
	s := m.series[k]
	m.mu.RUnlock()
	if s != nil {
		return s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s = m.series[k]; s != nil {
		return s
	}
	if len(m.series) >= maxCommandLabels {
		k[1] = "other"
		if s = m.series[k]; s != nil {
			return s
		}
	}
	s = &commandSeries{
		count:   m.commands.WithLabelValues(k[0], k[1]),
		errs:    m.errors.WithLabelValues(k[0], k[1]),
		latency: m.latency.WithLabelValues(k[0], k[1]),
	}
	m.series[k] = s
	return s
}

// Command implements proxy.Observer.
func (m *metrics) Command(protocol, name string, took time.Duration, failed bool) {
	s := m.seriesFor(protocol, name)
	s.count.Inc()
	if failed {
		s.errs.Inc()
	}
	s.latency.Observe(took.Seconds())
}

// Connection implements proxy.Observer.
func (m *metrics) Connection(protocol string, delta int) {
	m.conns.WithLabelValues(protocol).Add(float64(delta))
}

var _ proxy.Observer = (*metrics)(nil)

// registerGauges registers the node's figures read at scrape time.
func (n *Node) registerGauges() {
	n.met.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dynakv_keys", Help: "Keys holding a value on this node's replica."},
			func() float64 { return float64(n.store.Count()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_expired_reaped_total", Help: "Expired records the reaper turned into tombstones."},
			func() float64 { return float64(n.store.Metrics().Reaped) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_record_cache_lookups_total", Help: "Record reads that asked the record cache."},
			func() float64 { return float64(n.store.CacheStats().Lookups) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_record_cache_misses_total", Help: "Record reads the record cache could not answer (they read Pebble)."},
			func() float64 { return float64(n.store.CacheStats().Misses) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dynakv_record_cache_bytes", Help: "Memory held by the record cache."},
			func() float64 { return float64(n.store.CacheStats().Bytes) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_storage_synced_commits_total", Help: "Writes (and WAL syncs) committed durably in the sense of --fsync, through group commit."},
			func() float64 { return float64(n.store.CommitStats().Commits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_storage_commit_groups_total", Help: "Group commits: each carried one or more synced commits in one WAL write and sync."},
			func() float64 { return float64(n.store.CommitStats().Groups) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dynakv_used_memory_bytes", Help: "INFO's used_memory: live records and hints, and tombstones beyond the allowance max(maxmemory/4, 1 MiB)."},
			func() float64 { return float64(n.usage().used) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_evicted_keys_total", Help: "Records this node evicted over --maxmemory (INFO's evicted_keys)."},
			func() float64 { return float64(n.evictor.Evicted()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dynakv_maxmemory_bytes", Help: "The memory limit in effect (--maxmemory, CONFIG SET maxmemory); 0: none."},
			func() float64 { return float64(n.mem.max.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dynakv_cluster_members", Help: "Ring members."},
			func() float64 { return float64(n.clusterStats().members) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dynakv_cluster_members_alive", Help: "Ring members memberlist reports alive."},
			func() float64 { return float64(n.clusterStats().alive) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dynakv_quorum_n", Help: "Replication factor in effect."},
			func() float64 { return float64(n.clusterStats().n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dynakv_quorum_r", Help: "Read quorum in effect."},
			func() float64 { return float64(n.clusterStats().r) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dynakv_quorum_w", Help: "Write quorum in effect."},
			func() float64 { return float64(n.clusterStats().w) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dynakv_hints_pending", Help: "Hints stored on this node for owners it could not reach."},
			func() float64 { return float64(n.store.HintCount()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_hints_delivered_total", Help: "Hints delivered to their owners and deleted."},
			func() float64 { return float64(n.clusterStats().hintsDelivered) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_hints_stored_total", Help: "Hints this node stored as coordinator for owners it could not reach."},
			func() float64 { return float64(n.co.Metrics().HintsStored) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_read_repairs_total", Help: "Replica records rewritten by read repair."},
			func() float64 { return float64(n.co.Metrics().ReadRepairs) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_read_repairs_skipped_total", Help: "Read repairs skipped because too many were in flight."},
			func() float64 { return float64(n.co.Metrics().RepairsSkipped) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_quorum_failures_total", Help: "Requests that missed their quorum.", ConstLabels: prometheus.Labels{"op": "read"}},
			func() float64 { return float64(n.co.Metrics().ReadQuorumFailures) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_quorum_failures_total", Help: "Requests that missed their quorum.", ConstLabels: prometheus.Labels{"op": "write"}},
			func() float64 { return float64(n.co.Metrics().WriteQuorumFailures) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_replica_failures_total", Help: "Replica calls that failed.", ConstLabels: prometheus.Labels{"op": "write"}},
			func() float64 { return float64(n.co.Metrics().ReplicaWriteFailures) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_replica_failures_total", Help: "Replica calls that failed.", ConstLabels: prometheus.Labels{"op": "read"}},
			func() float64 { return float64(n.co.Metrics().ReplicaReadFailures) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_aae_exchanges_total", Help: "Anti-entropy partition exchanges with another replica."},
			func() float64 { return float64(n.aae.Metrics().Exchanges) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_aae_keys_repaired_total", Help: "Records anti-entropy wrote here or sent to a replica because they differed."},
			func() float64 { return float64(n.aae.Metrics().KeysRepaired) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_aae_keys_listed_total", Help: "Keys listed by anti-entropy in differing segments."},
			func() float64 { return float64(n.aae.Metrics().KeysListed) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dynakv_handoff_partitions_pending", Help: "Partitions held here that this node no longer owns, not yet handed off."},
			func() float64 { return float64(n.aae.Metrics().HandoffPending) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dynakv_handoff_keys_pending", Help: "Records in the partitions still to hand off."},
			func() float64 { return float64(n.aae.Metrics().HandoffKeysPending) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_handoff_partitions_total", Help: "Partitions handed off to their new owners and dropped here."},
			func() float64 { return float64(n.aae.Metrics().PartitionsHanded) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_tombstones_purged_total", Help: "Tombstones purged after the grace period, once every replica held them."},
			func() float64 { return float64(n.aae.Metrics().TombstonesPurged) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_transport_refused_handshakes_total", Help: "Connections to the cluster port refused by the handshake (wrong secret or certificate, garbage, silence)."},
			func() float64 { return float64(n.tr.Stats().RefusedHandshakes) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_transport_bad_frames_total", Help: "Authenticated cluster connections dropped for a malformed or oversized frame."},
			func() float64 { return float64(n.tr.Stats().BadFrames) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_ops_forwarded_total", Help: "Operations forwarded to a replica of their key."},
			func() float64 { return float64(n.router.Metrics().Forwarded) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_ops_forward_fallbacks_total", Help: "Operations run here because their replica was unreachable."},
			func() float64 { return float64(n.router.Metrics().Fallbacks) }),
	)
	n.met.reg.MustRegister(loopCollector{n})
	for k := range numKinds {
		for i, zone := range [2]string{"local", "remote"} {
			n.met.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_peer_requests_total",
				Help:        "Requests sent to peers, by kind (forward: client ops forwarded to a replica; replica: the coordinator's replica reads, writes and keyspace commands; repair: anti-entropy, handoff and purge) and by whether the peer is in this node's zone (local) or another (remote).",
				ConstLabels: prometheus.Labels{"kind": kindNames[k], "zone": zone}},
				func() float64 { return float64(n.calls.n[k][i].Load()) }))
		}
	}
}

// loopCollector exports the client event loops' fast-path counters, INFO's
// and memcached stats' loop_* figures: commands run inline and handed-off
// batches by reason, per protocol, and the commits of the loops' write sets.
type loopCollector struct{ n *Node }

var (
	loopInlineDesc = prometheus.NewDesc("dynakv_loop_inline_commands_total",
		"Client commands run inline on an event loop (the fast path), by protocol.", []string{"protocol"}, nil)
	loopHandoffDesc = prometheus.NewDesc("dynakv_loop_handoffs_total",
		"Batches of client commands handed off from an event loop to a goroutine, by protocol and the reason of their first command.", []string{"protocol", "reason"}, nil)
	loopCommitsDesc = prometheus.NewDesc("dynakv_loop_commits_total",
		"Commits of the event loops' write sets that had writes (one per loop iteration at most, and one per full set).", nil, nil)
	loopCommitWritesDesc = prometheus.NewDesc("dynakv_loop_commit_writes_total",
		"Writes those commits applied (divided by dynakv_loop_commits_total: the mean commit size).", nil, nil)
)

func (c loopCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- loopInlineDesc
	ch <- loopHandoffDesc
	ch <- loopCommitsDesc
	ch <- loopCommitWritesDesc
}

func (c loopCollector) Collect(ch chan<- prometheus.Metric) {
	front := func(protocol string, stats func(func(string, int64)) int64) {
		inline := stats(func(reason string, n int64) {
			ch <- prometheus.MustNewConstMetric(loopHandoffDesc, prometheus.CounterValue, float64(n), protocol, reason)
		})
		ch <- prometheus.MustNewConstMetric(loopInlineDesc, prometheus.CounterValue, float64(inline), protocol)
	}
	if c.n.resp != nil {
		front("resp", c.n.resp.LoopStats)
	}
	if c.n.mc != nil {
		front("memcache", c.n.mc.LoopStats)
	}
	var commits, writes int64
	if c.n.commits != nil {
		commits, writes = c.n.commits.Stats()
	}
	ch <- prometheus.MustNewConstMetric(loopCommitsDesc, prometheus.CounterValue, float64(commits))
	ch <- prometheus.MustNewConstMetric(loopCommitWritesDesc, prometheus.CounterValue, float64(writes))
}
