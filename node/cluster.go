package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dynakv/dynakv/cluster"
	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/proxy"
	"github.com/dynakv/dynakv/repair"
	"github.com/dynakv/dynakv/ring"
	"github.com/dynakv/dynakv/vclock"
)

// startCluster starts the internode transport and gossip membership. It runs after
// the client listeners are bound (their addresses go into the member metadata) and
// before the coordinator is built.
func (n *Node) startCluster() error {
	var err error
	n.tr, err = cluster.NewTransport(cluster.TransportConfig{
		Name:           n.cfg.Name,
		ListenAddr:     n.cfg.ClusterAddr,
		Secret:         []byte(n.cfg.Secret),
		Handler:        cluster.HandlerFunc(n.serveCluster),
		ServerTLS:      n.tls.clusterServer,
		ClientTLS:      n.tls.clusterClient,
		MaxFrameBytes:  frameLimit(n.cfg.MaxValueBytes),
		DefaultTimeout: n.cfg.RequestTimeout,
		Logger:         n.log.With("component", "transport"),
		Now:            n.cfg.Now,
	})
	if err != nil {
		return fmt.Errorf("node: cluster transport: %w", err)
	}
	self := cluster.Member{
		Name:         n.cfg.Name,
		RESPAddr:     n.RESPAddr(),
		MemcacheAddr: n.MemcacheAddr(),
		HTTPAddr:     n.HTTPAddr(),
		ClusterAddr:  n.tr.Addr(),
	}
	n.ms, err = cluster.StartMembership(cluster.MembershipConfig{
		Self:       self,
		BindAddr:   n.cfg.GossipAddr,
		Seeds:      n.cfg.Join,
		Secret:     []byte(n.cfg.Secret),
		Store:      n.store,
		Partitions: n.cfg.Partitions,
		Logger:     n.log.With("component", "gossip"),
		OnAlive: func(name string) {
			n.avoid.Forget(name) // back: ask it again at once
			if h := n.handoff.Load(); h != nil {
				h.Kick()
			}
		},
		OnChange: n.ringChanged,
		Tuning:   n.cfg.GossipTuning,
	})
	if err != nil {
		return fmt.Errorf("node: membership: %w", err)
	}
	return nil
}

// ringChanged logs the quorum settings when the member count clamps them. Changes
// gossiped while the node is starting are logged once it is ready (Start calls it).
func (n *Node) ringChanged() {
	if !n.ready.Load() {
		return // n.ms may not be assigned yet
	}
	if a := n.aae.Load(); a != nil {
		a.Kick() // ownership may have moved: hand partitions off now
	}
	n.dropStalePeers()
	members := n.ms.Ring().Len()
	nn, r, w := n.quorum(members)
	prev := n.lastClamp.Swap(int64(nn<<16 | r<<8 | w))
	if prev == int64(nn<<16|r<<8|w) {
		return
	}
	// While a cluster forms, the member count climbs: after the first report (a
	// warning on a node started alone, which may stay alone), changes in the first
	// half minute are told at Info; later ones that clamp the quorums warn again.
	forming := time.Since(n.started) < formingFor && (prev != 0 || len(n.cfg.Join) > 0)
	if (nn != n.cfg.N || r != n.cfg.R || w != n.cfg.W) && !forming {
		n.log.Warn("quorum settings clamped to the cluster size", "members", members,
			"n", nn, "r", r, "w", w, "configured_n", n.cfg.N, "configured_r", n.cfg.R, "configured_w", n.cfg.W)
	} else {
		n.log.Info("ring members changed", "members", members, "n", nn, "r", r, "w", w)
	}
}

// dropStalePeers drops the transport's peer entries, and closes the connections,
// of addresses no member that is not Removed uses any more (a removed member's, or
// the old address of a member that moved), and forgets the removed members'
// avoidance, so that neither grows with every member the cluster ever had.
func (n *Node) dropStalePeers() {
	live := map[string]bool{}
	for _, m := range n.ms.Members() {
		if m.State == cluster.StateRemoved {
			n.avoid.Forget(m.Name)
		} else if m.ClusterAddr != "" {
			live[m.ClusterAddr] = true
		}
	}
	for _, addr := range n.tr.PeerAddrs() {
		if !live[addr] && n.tr.Forget(addr) {
			n.log.Debug("dropped the transport's peer at an address no member uses", "addr", addr)
		}
	}
}

// formingFor is how long after start clamped quorums are logged at Info rather
// than Warn (see ringChanged).
const formingFor = 30 * time.Second

// quorum returns N, R, W in effect for a ring of members nodes: the coordinator's
// clamping, the one rule every request follows. It needs the coordinator built.
func (n *Node) quorum(members int) (nn, r, w int) { return n.co.Quorum(members, 0, 0) }

// startRepair starts anti-entropy (with partition handoff and tombstone purge)
// and hinted handoff.
func (n *Node) startRepair() error {
	if err := n.startAAE(); err != nil {
		return err
	}
	if n.cfg.DisableHintedHandoff {
		return nil
	}
	h, err := repair.NewHandoff(repair.HandoffConfig{
		Store:   n.store,
		Cluster: n.ms,
		Writer:  repair.WriterFunc(n.writeReplica),
		Node:    n.cfg.Name,
		N:       n.cfg.N,
		// Delivery retries every second; an owner seen alive again is kicked at once.
		Interval:       time.Second,
		RequestTimeout: n.cfg.RequestTimeout,
		Removed: func(name string) bool {
			m, ok := n.ms.Member(name)
			return ok && m.State == cluster.StateRemoved
		},
		Leaving: n.ms.Leaving,
		Now:     n.cfg.Now,
		Logger:  n.log.With("component", "handoff"),
	})
	if err != nil {
		return err
	}
	h.Start()
	n.handoff.Store(h)
	return nil
}

// startAAE starts the anti-entropy loop; peers' anti-entropy messages are served
// even when this node's own loop is off (AAEInterval < 0).
func (n *Node) startAAE() error {
	interval := n.cfg.AAEInterval
	if interval <= 0 {
		interval = time.Hour // the loop is not started; the value only passes validation
	}
	a, err := repair.NewAAE(repair.AAEConfig{
		Node:           n.cfg.Name,
		Store:          n.store,
		Trees:          n.trees,
		Cluster:        n.ms,
		Caller:         peer.CallerFunc(n.call),
		N:              n.cfg.N,
		Interval:       interval,
		MaxKeysPerSec:  n.cfg.AAEMaxKeysPerSec,
		TombstoneGrace: n.cfg.TombstoneGrace,
		// A purge asks every member that may hold data: any not removed.
		Holders: func() []string {
			var out []string
			for _, m := range n.ms.Members() {
				if m.State != cluster.StateRemoved {
					out = append(out, m.Name)
				}
			}
			return out
		},
		// The coordinator's requests carry what they read until their
		// deadline, which a shared context ends up to RequestTimeout/64 late,
		// and keep hints of it until RequestTimeout/32 past it; hint delivery
		// until its RequestTimeout (see repair/purge.go).
		PurgeSettle: n.cfg.RequestTimeout + n.cfg.RequestTimeout/32,
		AfterRound:  n.afterAAERound,
		Now:         n.cfg.Now,
		Logger:      n.log.With("component", "aae"),
	})
	if err != nil {
		return err
	}
	a.Register(n.mux)
	if n.cfg.AAEInterval > 0 {
		a.Start()
	}
	n.aae.Store(a)
	return nil
}

// afterAAERound completes a graceful leave once nothing is left to hand off: no
// partition and no hint (a leaving node hands a down owner's hints to the keys'
// live replicas). A node that left is no longer asked by tombstone purge, so it
// must not keep a copy of anything.
func (n *Node) afterAAERound(pending int) {
	if !n.ms.Leaving() {
		return
	}
	if hints := n.store.HintCount(); pending > 0 || hints > 0 {
		if h := n.handoff.Load(); hints > 0 && h != nil {
			h.Kick()
		}
		return
	}
	if err := n.ms.FinishLeave(); err != nil {
		n.log.Warn("finishing the leave", "err", err)
		return
	}
	n.log.Info("this node handed off every partition and left the ring; it can be stopped")
}

// Leave starts this node's graceful leave (dynakv admin leave, DCLUSTER LEAVE): it
// stops owning partitions, hands them off, then leaves the ring.
func (n *Node) Leave() error {
	if err := n.ms.Leave(); err != nil {
		return err
	}
	if a := n.aae.Load(); a != nil {
		a.Kick()
	}
	return nil
}

// writeReplica writes a record to a node's replica: locally for this node.
func (n *Node) writeReplica(ctx context.Context, node string, req peer.WriteRequest) error {
	if node == n.cfg.Name {
		return n.co.HandleWrite(req)
	}
	return n.peers.Write(ctx, node, req)
}

// frameLimit is the largest internode frame: a record of a few maximal siblings
// must fit (a record beyond it cannot be replicated and is left to its hints).
func frameLimit(maxValue int) int {
	return min(1<<31-1, max(64<<20, 4*maxValue+1<<20))
}

// errStarting answers peers that call before the node is fully started.
var errStarting = errors.New("node: starting")

// serveCluster answers a request from another node with the handler n.mux has
// for its type. While the node is starting or stopping, a forwarded op is refused
// with ErrRunLocally (the forwarding node runs it) and other requests fail (a
// replica write's coordinator keeps a hint).
func (n *Node) serveCluster(ctx context.Context, from string, typ uint8, req []byte) ([]byte, error) {
	if !n.ready.Load() {
		if peer.MsgType(typ) == peer.MsgForward {
			return proxy.AppendResult(nil, proxy.Result{}, proxy.ErrRunLocally), nil
		}
		return nil, errStarting
	}
	return n.mux.ServeCluster(ctx, from, typ, req)
}

// call sends a request to a ring member, resolving its cluster address.
func (n *Node) call(ctx context.Context, node string, typ peer.MsgType, req []byte) ([]byte, error) {
	m, ok := n.ms.Member(node)
	if !ok || m.ClusterAddr == "" {
		return nil, fmt.Errorf("node: no cluster address for %q: %w", node, cluster.ErrUnreachable)
	}
	return n.tr.Call(ctx, m.ClusterAddr, uint8(typ), req)
}

// router forwards each op to a live node among its key's N replicas when this node
// is not one of them (Dynamo: writes are coordinated by a node in the top N).
//
// A forward that fails (the node refused or reset the connection, or did not
// answer in time) puts its node in the node's Avoidance, which the coordinator's
// plans share: for avoidFor every op skips it, as Dynamo's coordinators do with a
// node that stopped answering, instead of waiting for memberlist to make up its
// mind; a paused or crashed node then costs at most one request per front node.
type router struct {
	n *Node
}

// avoidFor is how long a peer that failed a request is avoided by every request of
// this node (forwards and replica calls alike); memberlist seeing it alive again
// ends it sooner.
const avoidFor = coordinator.DefaultAvoidFor

var _ proxy.Router = (*router)(nil)

// peerFailed says whether a call's error means the peer failed, so that it is
// avoided for a while: anything but this node closing, the caller giving up, or a
// request too big for the transport (the request's fault, not the peer's).
func peerFailed(err error) bool {
	return err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, cluster.ErrClosed) &&
		!errors.Is(err, cluster.ErrFrameTooBig)
}

func (r *router) Route(key []byte) string {
	n := r.n
	rg := n.ms.Ring()
	nn, _, _ := n.quorum(rg.Len())
	reps := rg.Replicas(rg.Partition(key), nn)
	if len(reps) == 0 || slices.Contains(reps, n.cfg.Name) {
		return ""
	}
	for _, node := range reps {
		if n.ms.Alive(node) && !n.avoid.Avoided(node) {
			return node
		}
	}
	return "" // no replica answering: coordinate here, writing to fallbacks
}

// Forward sends op to node and returns its outcome. The op runs here instead
// (ErrRunLocally) when it certainly did not run there: the request was never sent
// (no connection, queue full), the node refused it while starting or stopping, or
// it refused it as late (its deadline had passed when the node came to it: the
// transport's ErrLate, or the coordinator's there). When the outcome is unknown
// (the connection broke, or no answer within half the request timeout) an
// idempotent op (GET, plain SET, DEL, DDEL...) runs here too; any other (INCR,
// APPEND, SET NX, cas) is answered with the error, since running it again could
// apply it twice. The copy sent there cannot run after this node gave up on it:
// the node refuses a request past its deadline. Either way the op keeps the time
// this node accepted it (Op.Accepted). A node that failed the call (refused, reset,
// timed out; not one that refused it as late) is avoided for avoidFor, so later ops
// skip it.
func (r *router) Forward(ctx context.Context, node string, op proxy.Op) (proxy.Result, error) {
	timeout := r.n.cfg.RequestTimeout
	if op.Idempotent() {
		timeout /= 2
	}
	fctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	b, err := r.n.call(fctx, node, peer.MsgForward, op.AppendBinary(nil))
	refusedLate := errors.Is(err, cluster.ErrLate)
	timedOut := !refusedLate && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil
	if (timedOut || ctx.Err() == nil && !refusedLate && peerFailed(err)) && r.n.avoid.Failed(node) {
		r.n.log.Warn("replica failed a forwarded request; avoiding it", "replica", node, "for", avoidFor, "err", err)
	}
	unknown := timedOut || errors.Is(err, cluster.ErrUnreachable)
	switch {
	case refusedLate, errors.Is(err, cluster.ErrNotSent), errors.Is(err, cluster.ErrAuth), unknown && op.Idempotent():
		r.n.forwardFallbacks.Add(1)
		return proxy.Result{}, fmt.Errorf("%w: %v", proxy.ErrRunLocally, err)
	case unknown:
		return proxy.Result{}, fmt.Errorf("forward to %s: %w: %w", node, proxy.ErrOutcomeUnknown, err)
	case err != nil:
		return proxy.Result{}, err
	}
	res, opErr, err := proxy.DecodeResult(b)
	if err != nil {
		return proxy.Result{}, err
	}
	switch {
	case errors.Is(opErr, proxy.ErrRunLocally):
		r.n.forwardFallbacks.Add(1) // the node was starting or stopping
	case errors.Is(opErr, coordinator.ErrLate):
		// Its coordinator refused it before writing anything: certainly not run.
		r.n.forwardFallbacks.Add(1)
		return proxy.Result{}, fmt.Errorf("%w: %s: %w", proxy.ErrRunLocally, node, opErr)
	default:
		r.n.forwarded.Add(1)
	}
	return res, opErr
}

// clusterAdmin serves resp's operator commands (DPREFLIST, DCLUSTER).
type clusterAdmin struct{ n *Node }

func (a clusterAdmin) PreferenceList(key []byte) []string {
	rg := a.n.ms.Ring()
	nn, _, _ := a.n.quorum(rg.Len())
	return slices.Clone(rg.Replicas(rg.Partition(key), nn))
}

func (a clusterAdmin) Members() []string {
	st := a.n.status(false)
	out := make([]string, 0, len(st.Members))
	for _, m := range st.Members {
		alive := "dead"
		if m.Alive {
			alive = "alive"
		}
		out = append(out, fmt.Sprintf("%s %s %s resp=%s memcache=%s http=%s primaries=%d replicas=%d",
			m.Name, alive, m.State, m.RESPAddr, m.MemcacheAddr, m.HTTPAddr, m.Primaries, m.Replicas))
	}
	return out
}

func (a clusterAdmin) Remove(name string) error { return a.n.ms.Remove(name) }

func (a clusterAdmin) Leave() error { return a.n.Leave() }

// Status is what `dynakv status` shows: this node's view of the cluster.
type Status struct {
	Node           string         `json:"node"`
	Partitions     int            `json:"partitions"`
	N              int            `json:"n"`
	R              int            `json:"r"`
	W              int            `json:"w"`
	Members        []MemberStatus `json:"members"`
	HintsPending   int64          `json:"hints_pending"`
	HintsByOwner   map[string]int `json:"hints_by_owner,omitempty"`
	HintsDelivered int64          `json:"hints_delivered"`
	ReadRepairs    int64          `json:"read_repairs"`
	Keys           int64          `json:"keys"`
	AAE            AAEStatus      `json:"aae"`
}

// AAEStatus is anti-entropy and partition handoff as this node sees them.
type AAEStatus struct {
	IntervalMS       int64 `json:"interval_ms"` // <= 0: this node runs no rounds
	Rounds           int64 `json:"rounds"`
	Exchanges        int64 `json:"exchanges"`
	KeysRepaired     int64 `json:"keys_repaired"`
	TombstonesPurged int64 `json:"tombstones_purged"`
	// Handoff: partitions held here that this node no longer owns, the records in
	// them, and the partitions handed off since start.
	HandoffPending     int64 `json:"handoff_partitions_pending"`
	HandoffKeysPending int64 `json:"handoff_keys_pending"`
	HandoffDone        int64 `json:"handoff_partitions_done"`
	// Partitions this node owns, with the age of their last exchange that found
	// or made them equal to another replica (-1: none since this node started).
	Partitions []PartitionRepair `json:"partitions"`
}

// PartitionRepair is one owned partition's repair age.
type PartitionRepair struct {
	Partition   int   `json:"partition"`
	Keys        int64 `json:"keys"`
	RepairAgeMS int64 `json:"repair_age_ms"`
}

// MemberStatus is one ring member as this node sees it.
type MemberStatus struct {
	Name         string `json:"name"`
	State        string `json:"state"`
	Alive        bool   `json:"alive"`
	RESPAddr     string `json:"resp_addr"`
	MemcacheAddr string `json:"memcache_addr"`
	HTTPAddr     string `json:"http_addr"`
	ClusterAddr  string `json:"cluster_addr"`
	GossipAddr   string `json:"gossip_addr"`
	// Primaries and Replicas count the partitions the member is first for, and
	// one of the N replicas of.
	Primaries int `json:"primaries"`
	Replicas  int `json:"replicas"`
}

// MembersAlive returns how many ring members this node sees alive, itself included.
func (n *Node) MembersAlive() int { return n.clusterStats().alive }

// Status returns this node's view of the cluster, hints counted per owner.
func (n *Node) Status() Status { return n.status(true) }

// status returns this node's view of the cluster; counting the hints per owner
// scans them, so DCLUSTER MEMBERS skips it.
func (n *Node) status(hintsByOwner bool) Status {
	cs := n.clusterStats()
	rg := n.ms.Ring()
	st := Status{Node: n.cfg.Name, Partitions: n.cfg.Partitions, N: cs.n, R: cs.r, W: cs.w,
		HintsPending: cs.hintsPending, HintsDelivered: cs.hintsDelivered, ReadRepairs: cs.readRepairs,
		Keys: n.store.Count()}
	primaries := rg.PrimaryCounts()
	replicas := map[string]int{}
	for p := range rg.Partitions() {
		for _, name := range rg.Replicas(p, cs.n) {
			replicas[name]++
		}
	}
	for _, m := range n.ms.Members() {
		st.Members = append(st.Members, MemberStatus{
			Name: m.Name, State: m.State.String(), Alive: m.Alive,
			RESPAddr: m.RESPAddr, MemcacheAddr: m.MemcacheAddr, HTTPAddr: m.HTTPAddr,
			ClusterAddr: m.ClusterAddr, GossipAddr: m.GossipAddr,
			Primaries: primaries[m.Name], Replicas: replicas[m.Name],
		})
	}
	st.AAE = n.aaeStatus(rg, cs.n)
	if owners, err := n.store.HintOwners(); hintsByOwner && err == nil && len(owners) > 0 {
		st.HintsByOwner = map[string]int{}
		for _, o := range owners {
			cnt := 0
			_ = n.store.ScanHints(o, nil, func([]byte, vclock.Set) bool { cnt++; return cnt < 1_000_000 })
			st.HintsByOwner[o] = cnt
		}
	}
	return st
}

// aaeStatus reports anti-entropy and handoff, with the repair age of each
// partition this node owns.
func (n *Node) aaeStatus(rg *ring.Ring, nn int) AAEStatus {
	am := n.aaeMetrics()
	st := AAEStatus{IntervalMS: n.cfg.AAEInterval.Milliseconds(), Rounds: am.Rounds, Exchanges: am.Exchanges,
		KeysRepaired: am.KeysRepaired, TombstonesPurged: am.TombstonesPurged,
		HandoffPending: am.HandoffPending, HandoffKeysPending: am.HandoffKeysPending, HandoffDone: am.PartitionsHanded}
	a := n.aae.Load()
	if a == nil {
		return st
	}
	last := a.LastSync()
	now := n.cfg.Now().UnixMilli()
	for p := range rg.Partitions() {
		if !rg.Owns(n.cfg.Name, p, nn) {
			continue
		}
		age := int64(-1)
		if last[p] > 0 {
			age = max(now-last[p], 0)
		}
		st.Partitions = append(st.Partitions, PartitionRepair{Partition: p, Keys: n.store.PartitionCount(p), RepairAgeMS: age})
	}
	return st
}
