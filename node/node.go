package node

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dynakv/dynakv/cluster"
	"github.com/dynakv/dynakv/cluster/transport"
	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/internal/evloop"
	"github.com/dynakv/dynakv/internal/loopcommit"
	"github.com/dynakv/dynakv/internal/netserve"
	"github.com/dynakv/dynakv/memcache"
	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/proxy"
	"github.com/dynakv/dynakv/proxy/route"
	"github.com/dynakv/dynakv/repair"
	"github.com/dynakv/dynakv/resp"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/tictac"
)

// Node is one dynakv node. New builds it, Start starts it, Close stops it.
type Node struct {
	cfg     Config
	log     *slog.Logger
	started time.Time
	actor   string

	store   *storage.Store
	tr      *transport.Transport
	mux     *peer.Mux // the internode protocol's handlers, which tr serves once started
	ms      *cluster.Membership
	calls   *zoneCounter // every request this node sends to a peer, counted by zone
	peers   coordinator.Peers
	avoid   *coordinator.Avoidance // peers that recently failed a request: the router's and the coordinator's
	co      *coordinator.Coordinator
	router  *route.Router
	px      *proxy.Proxy
	handoff *repair.Handoff // nil with DisableHintedHandoff
	trees   *tictac.Trees   // Merkle trees of the store, kept by it as its observer
	aae     *repair.AAE     // its loop runs only with AAEInterval > 0; it serves peers either way
	evictor *repair.Evictor // evicts over maxmemory under an evicting policy; keeps the access table
	met     *metrics
	mem     memLimit // maxmemory and its policy (CONFIG SET changes them)

	// mu orders Start and Close; state says which ran. Peers are served only
	// while it is stateStarted: the transport serves from New on, before the
	// coordinator exists, and after Close began forwarded ops go back to their
	// sender.
	mu        sync.Mutex
	state     atomic.Int32
	lastClamp atomic.Int64 // last N, R, W logged by ringChanged
	// serving counts the peer requests being served (serveCluster); Close waits
	// for them before it closes the coordinator and repair they run on, so a
	// forwarded op or replica call that began before the stop ends as it would
	// have, not as a quorum failure. servingMu orders serving.Add, made under
	// its read lock after checking state, with Close's change of state.
	servingMu sync.RWMutex
	serving   sync.WaitGroup

	tls      tlsConfigs
	resp     *resp.Server
	mc       *memcache.Server
	loops    *evloop.Group                      // the fronts' event loops, one per core, shared; nil: none
	commits  *loopcommit.Group[*proxy.WriteSet] // the loops' commit points; nil: none
	http     *http.Server
	respLn   net.Listener
	mcLn     net.Listener
	httpLn   net.Listener
	wg       sync.WaitGroup
	closeErr error
	once     sync.Once
}

// A Node's lifecycle states (Node.state).
const (
	stateBuilt int32 = iota
	stateStarted
	stateClosed
)

// Start builds and starts a node: New, then Start. On error everything it opened
// is released.
func Start(cfg Config) (*Node, error) {
	n, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if err := n.Start(); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// New builds a node: it opens storage, binds the client, HTTP, cluster and gossip
// ports, and builds the transport, membership, coordinator, router, proxy,
// anti-entropy, hinted handoff and the front ends. Nothing it starts calls back
// into the node: peers' requests are refused until Start (forwarded ops with
// proxy.ErrRunLocally), membership callbacks wait for Start, and no client is
// served. On error everything it opened is released.
func New(cfg Config) (_ *Node, err error) {
	cfg = cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("node", cfg.Name), started: cfg.Now(), met: newMetrics(),
		avoid: coordinator.NewAvoidance(avoidFor, cfg.Now), mux: peer.NewMux()}
	n.mem.max.Store(cfg.MaxMemory)
	policy := cfg.MaxMemoryPolicy
	n.mem.policy.Store(&policy)
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
	if err := n.newCluster(); err != nil {
		return nil, err
	}
	n.calls = &zoneCounter{next: peer.CallerFunc(n.call), zone: cfg.Zone, zoneOf: n.zoneOf}
	n.peers = coordinator.RemotePeers(n.calls)
	n.co, err = coordinator.New(coordinator.Config{
		Actor:          n.actor,
		Now:            cfg.Now,
		Cluster:        requestView{n.ms},
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
		SyncIsCheap:    cfg.Fsync != storage.SyncAlways,
		Logger:         n.log.With("component", "coordinator"),
		Floor:          n.floorStore(),
	}, n.store)
	if err != nil {
		return nil, err
	}
	if n.router, err = n.newRouter(); err != nil {
		return nil, err
	}
	n.px = proxy.New(proxy.Config{
		MaxValueBytes: cfg.MaxValueBytes,
		Now:           cfg.Now,
		OnRead:        func(s int) { n.met.siblings.Observe(float64(s)) },
		Router:        n.router,
		Memory:        memGate{n},
	}, n.co)
	n.co.Register(n.mux)
	n.px.Register(n.mux)
	if err := n.newRepair(); err != nil { // registers anti-entropy's handlers
		return nil, err
	}
	n.registerGauges()
	if err := n.newFronts(); err != nil {
		return nil, err
	}
	return n, nil
}

// errNotBuilt is Start's error on a node started or closed already.
var errNotBuilt = errors.New("node: Start on a node that was started or closed already")

// Start starts what New built, in order: serving peers, anti-entropy and hinted
// handoff, membership (its callbacks from then on, and the join), then the front
// ends. It returns an error, changing nothing, if the node was started or closed
// already.
func (n *Node) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state.Load() != stateBuilt {
		return errNotBuilt
	}
	n.state.Store(stateStarted)
	if n.cfg.AAEInterval > 0 {
		n.aae.Start()
	}
	if n.handoff != nil {
		n.handoff.Start()
	}
	n.setGoMemoryLimit(n.mem.max.Load())
	n.evictor.Start()
	n.ringChanged()
	n.ms.Start()
	n.serve()
	nn, r, w := n.quorum(n.ms.Ring().Len())
	n.log.Info("node started", "actor", n.actor, "storage", n.cfg.Storage, "data_dir", n.dataDirForLog(),
		"resp", n.RESPAddr(), "memcache", n.MemcacheAddr(), "http", n.HTTPAddr(),
		"gossip", n.ms.GossipAddr(), "cluster", n.tr.Addr(), "join", n.cfg.Join, "n", nn, "r", r, "w", w)
	return nil
}

func (n *Node) dataDirForLog() string {
	if n.cfg.Storage == StorageMemory {
		return "(memory)"
	}
	return n.cfg.DataDir
}

func (n *Node) openStorage() error {
	n.trees = tictac.NewTrees(n.cfg.Partitions)
	sc := storage.Config{
		Observer:     n.trees,
		Partitions:   n.cfg.Partitions,
		InMemory:     n.cfg.Storage == StorageMemory,
		Sync:         n.cfg.Fsync,
		SyncInterval: n.cfg.FsyncInterval,
		Now:          n.cfg.Now,
		// storage applies the default to 0 and turns the cache off when negative.
		RecordCacheBytes: n.cfg.RecordCacheBytes,
		CacheBytes:       n.cfg.BlockCacheBytes,
		MemTableBytes:    n.cfg.MemTableBytes,
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
// (coordinator.Config.SyncIsCheap). Otherwise (a reboot, --fsync always, whose
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

// floorStore keeps the coordinator's fresh-counter reservations in the data
// directory's metadata, so that a restart with the same actor id (a clean stop,
// or an unclean one that kept its incarnation) never hands out a counter an
// earlier run did, even with its clock set back. An in-memory node has none: it
// is a new actor at every start.
func (n *Node) floorStore() coordinator.FloorStore {
	if n.cfg.Storage == StorageMemory {
		return nil
	}
	return metaFloor{n.store}
}

// metaFloor is a coordinator.FloorStore in a store's metadata, as 8 bytes
// big-endian.
type metaFloor struct{ st *storage.Store }

const metaFloorName = "dot-floor"

func (m metaFloor) Load() (uint64, error) {
	v, ok, err := m.st.GetMeta(metaFloorName)
	switch {
	case err != nil:
		return 0, err
	case !ok:
		return 0, nil
	case len(v) != 8:
		return 0, fmt.Errorf("node: metadata %q: %d bytes, want 8", metaFloorName, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

func (m metaFloor) Save(f uint64) error {
	return m.st.PutMeta(metaFloorName, binary.BigEndian.AppendUint64(nil, f))
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

// newFronts builds the RESP and memcached servers and the HTTP server on the
// listeners listen bound; serve starts them.
func (n *Node) newFronts() error {
	rc := resp.Config{
		RequirePass: n.cfg.RequirePass,
		// A request argument may be a little larger than the largest value (the
		// reply is then Redis's error for the value, not a protocol error); bounding
		// it bounds what one connection can make the node buffer.
		ProtoMaxBulkLen:   int64(n.cfg.MaxValueBytes) + 64<<10,
		MaxClients:        n.cfg.MaxClients,
		OutputBufferLimit: n.cfg.ClientOutputBufferLimit,
		WriteTimeout:      n.cfg.ClientWriteTimeout,
		IOModel:           n.cfg.IOModel,
		IOLoops:           n.cfg.IOLoops,
		NoBatch:           n.cfg.NoBatch,
		Version:           n.cfg.Version,
		NodeName:          n.cfg.Name,
		Info:              n.info,
		OOM:               n.oom,
		Tunables:          tunables{n},
		Cluster:           clusterAdmin{n},
		Observer:          n.met,
		Logger:            n.log.With("component", "resp"),
		Now:               n.cfg.Now,
	}.EnsureDefaults()
	if err := rc.Validate(); err != nil {
		return err
	}
	mc := memcache.Config{
		MaxClients:    n.cfg.MaxClients,
		MaxValueBytes: n.cfg.MaxValueBytes,
		Password:      n.cfg.RequirePass,
		WriteTimeout:  n.cfg.ClientWriteTimeout,
		IOModel:       n.cfg.IOModel,
		IOLoops:       n.cfg.IOLoops,
		Version:       n.cfg.Version,
		Observer:      n.met,
		Logger:        n.log.With("component", "memcache"),
		Now:           n.cfg.Now,
		Stats:         n.mcStats,
		Settings:      n.mcSettings,
	}
	if err := mc.Validate(); err != nil {
		return err
	}
	if netserve.UseLoops(n.cfg.IOModel) {
		// One group for both fronts: a loop per core, as redis-server's ae and
		// memcached's workers, not one per core per protocol.
		g, err := netserve.NewLoops(n.cfg.IOLoops, netserve.CloseConn, evloop.Config{
			OnPanic: func(_ *evloop.Conn, p *evloop.PanicError) {
				n.log.Error("panic serving a client connection", "panic", p.Value, "stack", string(p.Stack))
			},
			OnIteration: func(busy time.Duration) { n.met.loopIteration.Observe(busy.Seconds()) },
		})
		if err != nil {
			n.log.Warn("event loops unavailable: serving every client connection on its own goroutine", "err", err)
			rc.IOModel, mc.IOModel = resp.IOGoroutine, memcache.IOGoroutine
		}
		n.loops, rc.Loops, mc.Loops = g, g, g
		if g != nil {
			// One commit point per loop for both fronts: an iteration's inline
			// writes, RESP's and memcached's, make one commit.
			commits := loopcommit.New(g, n.px.LoopWriteSet, func(writes int, err error) {
				n.log.Error("commit of a loop's writes failed: their commands fail", "writes", writes, "err", err)
			})
			rc.Commits, mc.Commits, n.commits = commits, commits, commits
		}
	}
	n.resp = resp.New(rc, n.px)
	if n.mcLn != nil {
		n.mc = memcache.New(mc, n.px)
	}
	if n.httpLn != nil {
		n.http = &http.Server{Handler: n.httpHandler(), ReadHeaderTimeout: 10 * time.Second}
	}
	return nil
}

// serve starts the front ends newFronts built.
func (n *Node) serve() {
	n.run("resp", func() error { return n.resp.Serve(n.respLn) })
	if n.mc != nil {
		n.run("memcache", func() error { return n.mc.Serve(n.mcLn) })
	}
	if n.http != nil {
		n.run("http", func() error {
			if err := n.http.Serve(n.httpLn); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
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

// Close stops the node: front ends, HTTP, then repair, the coordinator, membership,
// the transport and storage. It releases a node that was built and not started
// too, waits for every goroutine the node started, and is idempotent.
func (n *Node) Close() error {
	n.once.Do(func() {
		n.mu.Lock() // waits for a Start in progress
		started := n.state.Swap(stateClosed) == stateStarted
		n.mu.Unlock()
		// From now on forwarded ops go back to their sender.
		var errs []error
		if n.resp != nil {
			errs = append(errs, n.resp.Close())
		}
		if n.mc != nil {
			errs = append(errs, n.mc.Close())
		}
		if n.loops != nil {
			n.loops.Close() // after both fronts: nothing of theirs runs on it now
		}
		if n.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			errs = append(errs, n.http.Shutdown(ctx))
			cancel()
		}
		if !started {
			// Nothing served them, so closing the servers did not close them.
			for _, ln := range []net.Listener{n.respLn, n.mcLn, n.httpLn} {
				if ln != nil {
					ln.Close()
				}
			}
		}
		n.wg.Wait()
		// No peer request starts serving from here on; those being served end
		// by their deadlines at the latest.
		n.servingMu.Lock()
		n.servingMu.Unlock() //nolint:staticcheck // an empty critical section: a barrier
		n.serving.Wait()
		if n.handoff != nil {
			errs = append(errs, n.handoff.Close())
		}
		if n.evictor != nil {
			errs = append(errs, n.evictor.Close())
		}
		if n.aae != nil {
			errs = append(errs, n.aae.Close())
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

// Failed is closed when the node's storage engine failed (storage.Store.Failed):
// from then on every read and write of its own replica fails, and its owner must
// end the process (cmd/dynakv does, with a non-zero status) rather than Close it,
// since calls may be stuck in the engine for good. Err says why.
func (n *Node) Failed() <-chan struct{} { return n.store.Failed() }

// Err returns why the node failed, an error wrapping storage.ErrEngineFailed; nil
// while it has not.
func (n *Node) Err() error { return n.store.Err() }

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
