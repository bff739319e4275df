package node

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dynakv/dynakv/cluster"
	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/memcache"
	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/proxy"
	"github.com/dynakv/dynakv/repair"
	"github.com/dynakv/dynakv/resp"
	"github.com/dynakv/dynakv/storage"
)

// Node is one running dynakv node.
type Node struct {
	cfg     Config
	log     *slog.Logger
	started time.Time
	actor   string

	store   *storage.Store
	tr      *cluster.Transport
	mux     *peer.Mux // the internode protocol's handlers, which tr serves once ready
	ms      *cluster.Membership
	peers   coordinator.Peers
	avoid   *coordinator.Avoidance // peers that recently failed a request: the router's and the coordinator's
	co      *coordinator.Coordinator
	px      *proxy.Proxy
	handoff atomic.Pointer[repair.Handoff] // set after membership, whose OnAlive kicks it
	trees   *repair.Trees                  // Merkle trees of the store, kept by it as its observer
	aae     atomic.Pointer[repair.AAE]     // set after membership, whose OnChange kicks it
	met     *metrics

	ready            atomic.Bool  // serving peers: every handler is on mux
	lastClamp        atomic.Int64 // last N, R, W logged by ringChanged
	forwarded        atomic.Int64 // ops forwarded to a replica
	forwardFallbacks atomic.Int64 // ops run here because their replica was unreachable

	tls      tlsConfigs
	resp     *resp.Server
	mc       *memcache.Server
	http     *http.Server
	respLn   net.Listener
	mcLn     net.Listener
	httpLn   net.Listener
	wg       sync.WaitGroup
	closeErr error
	once     sync.Once
}

// Start builds and starts a node. On error everything it opened is released.
func Start(cfg Config) (_ *Node, err error) {
	cfg = cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("node", cfg.Name), started: cfg.Now(), met: newMetrics(),
		avoid: coordinator.NewAvoidance(avoidFor, cfg.Now), mux: peer.NewMux()}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if n.tls, err = cfg.loadTLS(); err != nil {
		return nil, err
	}
	if err := n.openStorage(); err != nil {
		return nil, err
	}
	if err := n.listen(); err != nil {
		return nil, err
	}
	if cfg.Secret == "" {
		n.log.Warn("no cluster secret set (--secret or DYNAKV_SECRET): peers are checked against the empty secret and gossip is not encrypted")
	}
	if err := n.startCluster(); err != nil {
		return nil, err
	}
	n.peers = coordinator.RemotePeers(peer.CallerFunc(n.call))
	n.co, err = coordinator.New(coordinator.Config{
		Actor:          n.actor,
		Now:            cfg.Now,
		Cluster:        n.ms,
		Peers:          n.peers,
		Node:           cfg.Name,
		N:              cfg.N,
		R:              cfg.R,
		W:              cfg.W,
		RequestTimeout: cfg.RequestTimeout,
		ReplicaTimeout: cfg.ReplicaTimeout,
		Avoid:          n.avoid,
		PeerFailed:     peerFailed,
		DisableHints:   cfg.DisableHintedHandoff,
		CheapSync:      cfg.Fsync != storage.SyncAlways,
		Logger:         n.log.With("component", "coordinator"),
	}, n.store)
	if err != nil {
		return nil, err
	}
	n.px = proxy.New(proxy.Config{
		MaxValueBytes: cfg.MaxValueBytes,
		Now:           cfg.Now,
		OnRead:        func(s int) { n.met.siblings.Observe(float64(s)) },
		Router:        &router{n: n},
	}, n.co)
	n.co.Register(n.mux)
	n.px.Register(n.mux)
	if err := n.startRepair(); err != nil { // registers anti-entropy's handlers
		return nil, err
	}
	n.ready.Store(true)
	n.ringChanged()
	n.registerGauges()
	if err := n.serve(); err != nil {
		return nil, err
	}
	nn, r, w := n.quorum(n.ms.Ring().Len())
	n.log.Info("node started", "actor", n.actor, "storage", cfg.Storage, "data_dir", n.dataDirForLog(),
		"resp", n.RESPAddr(), "memcache", n.MemcacheAddr(), "http", n.HTTPAddr(),
		"gossip", n.ms.GossipAddr(), "cluster", n.tr.Addr(), "join", cfg.Join, "n", nn, "r", r, "w", w)
	return n, nil
}

func (n *Node) dataDirForLog() string {
	if n.cfg.Storage == StorageMemory {
		return "(memory)"
	}
	return n.cfg.DataDir
}

func (n *Node) openStorage() error {
	n.trees = repair.NewTrees(n.cfg.Partitions)
	sc := storage.Config{
		Observer:     n.trees,
		Partitions:   n.cfg.Partitions,
		InMemory:     n.cfg.Storage == StorageMemory,
		Sync:         n.cfg.Fsync,
		SyncInterval: n.cfg.FsyncInterval,
		Now:          n.cfg.Now,
		// storage applies the default to 0 and turns the cache off when negative.
		RecordCacheBytes: n.cfg.RecordCacheBytes,
		Logger:           n.log,
	}
	if !sc.InMemory {
		if err := os.MkdirAll(n.cfg.DataDir, 0o750); err != nil {
			return fmt.Errorf("node: data directory: %w", err)
		}
		sc.Dir = n.cfg.DataDir
	}
	st, err := storage.Open(sc)
	if err != nil {
		return err
	}
	n.store = st
	// The trees are rebuilt from the records. The reaper already runs: Rebuild
	// holds each partition's writers out while it scans it.
	if err := n.trees.Rebuild(st); err != nil {
		return fmt.Errorf("node: rebuild Merkle trees: %w", err)
	}
	inc, err := n.incarnation()
	if err != nil {
		return err
	}
	n.actor = n.cfg.Name + ":" + inc
	return nil
}

// mayHaveLostDots says whether an unclean stop may have taken writes, and the dots
// they carried, that other replicas have. With --fsync interval and the same boot,
// it cannot have: the OS kept everything the process wrote, and a coordinator puts
// its write in the OS before the record leaves for the replicas
// (coordinator.Config.CheapSync). Otherwise (a reboot, --fsync always, whose
// coordinator syncs alongside its replica writes, or none) it may have.
func mayHaveLostDots(stop storage.UncleanStop) bool {
	return stop.Mode != storage.SyncInterval || !stop.SameBoot
}

// incarnation returns the id of this node's data, creating it with fresh data, or
// anew after an unclean stop that may have lost dots (mayHaveLostDots).
func (n *Node) incarnation() (string, error) {
	const key = "incarnation"
	v, ok, err := n.store.GetMeta(key)
	if err != nil {
		return "", err
	}
	stop, unclean := n.store.Unclean()
	inc := string(v)
	switch {
	case ok && unclean && mayHaveLostDots(stop):
		// The last writes before the unclean stop may be lost here although other
		// replicas have them (see storage.Store.Unclean), and with them the dots
		// they used: a new actor id makes sure no dot is issued twice.
		n.log.Warn("data directory was not closed cleanly; taking a new actor id so that no version-vector dot is reused",
			"old_incarnation", inc, "fsync", stop.Mode, "same_boot", stop.SameBoot)
		ok = false
	case unclean:
		n.log.Info("data directory was not closed cleanly; every write that left this node is still in the OS, so the actor id stays",
			"fsync", stop.Mode)
	}
	if !ok {
		var b [5]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("node: incarnation: %w", err)
		}
		inc = strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
		if err := n.store.PutMeta(key, []byte(inc)); err != nil {
			return "", err
		}
	}
	if unclean {
		// Only once the id is saved: a node failing before does this again.
		if err := n.store.ClearUnclean(); err != nil {
			return "", err
		}
	}
	return inc, nil
}

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
			func() float64 { return float64(n.aaeMetrics().Exchanges) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_aae_keys_repaired_total", Help: "Records anti-entropy wrote here or sent to a replica because they differed."},
			func() float64 { return float64(n.aaeMetrics().KeysRepaired) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_aae_keys_listed_total", Help: "Keys listed by anti-entropy in differing segments."},
			func() float64 { return float64(n.aaeMetrics().KeysListed) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dynakv_handoff_partitions_pending", Help: "Partitions held here that this node no longer owns, not yet handed off."},
			func() float64 { return float64(n.aaeMetrics().HandoffPending) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dynakv_handoff_keys_pending", Help: "Records in the partitions still to hand off."},
			func() float64 { return float64(n.aaeMetrics().HandoffKeysPending) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_handoff_partitions_total", Help: "Partitions handed off to their new owners and dropped here."},
			func() float64 { return float64(n.aaeMetrics().PartitionsHanded) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_tombstones_purged_total", Help: "Tombstones purged after the grace period, once every replica held them."},
			func() float64 { return float64(n.aaeMetrics().TombstonesPurged) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_transport_refused_handshakes_total", Help: "Connections to the cluster port refused by the handshake (wrong secret or certificate, garbage, silence)."},
			func() float64 { return float64(n.tr.Stats().RefusedHandshakes) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_transport_bad_frames_total", Help: "Authenticated cluster connections dropped for a malformed or oversized frame."},
			func() float64 { return float64(n.tr.Stats().BadFrames) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_ops_forwarded_total", Help: "Operations forwarded to a replica of their key."},
			func() float64 { return float64(n.forwarded.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dynakv_ops_forward_fallbacks_total", Help: "Operations run here because their replica was unreachable."},
			func() float64 { return float64(n.forwardFallbacks.Load()) }),
	)
}

func (n *Node) listen() error {
	var err error
	if n.respLn, err = net.Listen("tcp", n.cfg.RESPAddr); err != nil {
		return fmt.Errorf("node: resp listener: %w", err)
	}
	if n.cfg.MemcacheAddr != "off" {
		if n.mcLn, err = net.Listen("tcp", n.cfg.MemcacheAddr); err != nil {
			return fmt.Errorf("node: memcache listener: %w", err)
		}
	}
	if n.cfg.HTTPAddr != "off" {
		if n.httpLn, err = net.Listen("tcp", n.cfg.HTTPAddr); err != nil {
			return fmt.Errorf("node: http listener: %w", err)
		}
	}
	if n.tls.clients != nil {
		// Handshakes happen on each connection's first read or write, on its
		// own goroutine.
		n.respLn = tls.NewListener(n.respLn, n.tls.clients)
		if n.mcLn != nil {
			n.mcLn = tls.NewListener(n.mcLn, n.tls.clients)
		}
	}
	if n.tls.http != nil && n.httpLn != nil {
		n.httpLn = tls.NewListener(n.httpLn, n.tls.http)
	}
	return nil
}

func (n *Node) serve() error {
	rc := resp.Config{
		RequirePass: n.cfg.RequirePass,
		// A request argument may be a little larger than the largest value (the
		// reply is then Redis's error for the value, not a protocol error); bounding
		// it bounds what one connection can make the node buffer.
		ProtoMaxBulkLen:   int64(n.cfg.MaxValueBytes) + 64<<10,
		MaxClients:        n.cfg.MaxClients,
		OutputBufferLimit: n.cfg.ClientOutputBufferLimit,
		WriteTimeout:      n.cfg.ClientWriteTimeout,
		Version:           n.cfg.Version,
		NodeName:          n.cfg.Name,
		Info:              n.info,
		Cluster:           clusterAdmin{n},
		Observer:          n.met,
		Logger:            n.log.With("component", "resp"),
		Now:               n.cfg.Now,
	}.EnsureDefaults()
	if err := rc.Validate(); err != nil {
		return err
	}
	n.resp = resp.New(rc, n.px)
	n.run("resp", func() error { return n.resp.Serve(n.respLn) })
	if n.mcLn != nil {
		n.mc = memcache.New(memcache.Config{
			MaxClients:    n.cfg.MaxClients,
			MaxValueBytes: n.cfg.MaxValueBytes,
			Password:      n.cfg.RequirePass,
			WriteTimeout:  n.cfg.ClientWriteTimeout,
			Version:       n.cfg.Version,
			Observer:      n.met,
			Logger:        n.log.With("component", "memcache"),
			Now:           n.cfg.Now,
		}, n.px)
		n.run("memcache", func() error { return n.mc.Serve(n.mcLn) })
	}
	if n.httpLn != nil {
		n.http = &http.Server{Handler: n.httpHandler(), ReadHeaderTimeout: 10 * time.Second}
		n.run("http", func() error {
			if err := n.http.Serve(n.httpLn); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	return nil
}

// run starts a server goroutine owned by the node; Close waits for it.
func (n *Node) run(name string, serve func() error) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := serve(); err != nil {
			n.log.Error("server stopped", "server", name, "err", err)
		}
	}()
}

func (n *Node) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(n.met.reg, promhttp.HandlerOpts{Registry: n.met.reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/cluster/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(n.Status())
	})
	token := AdminToken(n.cfg.Secret)
	admin := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, requireToken(token, h)) }
	admin("/cluster/remove", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "use POST /cluster/remove?name=NODE", http.StatusMethodNotAllowed)
			return
		}
		if err := n.ms.Remove(r.URL.Query().Get("name")); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, "OK")
	})
	admin("/cluster/leave", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "use POST /cluster/leave", http.StatusMethodNotAllowed)
			return
		}
		if err := n.Leave(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, "OK")
	})
	admin("/debug/pprof/", pprof.Index)
	admin("/debug/pprof/cmdline", pprof.Cmdline)
	admin("/debug/pprof/profile", pprof.Profile)
	admin("/debug/pprof/symbol", pprof.Symbol)
	admin("/debug/pprof/trace", pprof.Trace)
	return mux
}

// Close stops the node: front ends, HTTP, then storage. It is idempotent.
func (n *Node) Close() error {
	n.once.Do(func() {
		n.ready.Store(false) // forwarded ops go back to their sender from now on
		var errs []error
		if n.resp != nil {
			errs = append(errs, n.resp.Close())
		} else if n.respLn != nil {
			n.respLn.Close()
		}
		if n.mc != nil {
			errs = append(errs, n.mc.Close())
		} else if n.mcLn != nil {
			n.mcLn.Close()
		}
		if n.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			errs = append(errs, n.http.Shutdown(ctx))
			cancel()
		} else if n.httpLn != nil {
			n.httpLn.Close()
		}
		n.wg.Wait()
		if h := n.handoff.Load(); h != nil {
			errs = append(errs, h.Close())
		}
		if a := n.aae.Load(); a != nil {
			errs = append(errs, a.Close())
		}
		if n.co != nil {
			errs = append(errs, n.co.Close())
		}
		if n.ms != nil {
			errs = append(errs, n.ms.Close())
		}
		if n.tr != nil {
			errs = append(errs, n.tr.Close())
		}
		if n.store != nil {
			errs = append(errs, n.store.Close())
		}
		n.closeErr = errors.Join(errs...)
		n.log.Info("node stopped")
	})
	return n.closeErr
}

func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// RESPAddr returns the bound Redis-protocol address.
func (n *Node) RESPAddr() string { return addrOf(n.respLn) }

// MemcacheAddr returns the bound memcached address ("" when disabled).
func (n *Node) MemcacheAddr() string { return addrOf(n.mcLn) }

// HTTPAddr returns the bound admin HTTP address ("" when disabled).
func (n *Node) HTTPAddr() string { return addrOf(n.httpLn) }

// GossipAddr returns the bound gossip address.
func (n *Node) GossipAddr() string { return n.ms.GossipAddr() }

// ClusterAddr returns the bound internode transport address.
func (n *Node) ClusterAddr() string { return n.tr.Addr() }

// Actor returns the node's actor id in version vectors.
func (n *Node) Actor() string { return n.actor }

func defaultName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "dynakv"
	}
	if i := strings.IndexByte(h, '.'); i > 0 {
		h = h[:i]
	}
	return h
}
