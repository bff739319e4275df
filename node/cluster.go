package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dynakv/dynakv/cluster"
	"github.com/dynakv/dynakv/cluster/transport"
	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/proxy"
	"github.com/dynakv/dynakv/repair"
)

// newCluster builds the internode transport, which serves peers at once (the
// node refuses them until Start), and the gossip membership, whose callbacks wait
// for Start. It runs after the client listeners are bound (their addresses go into
// the member metadata) and before the coordinator is built.
func (n *Node) newCluster() error {
	var err error
	n.tr, err = transport.New(transport.Config{
		Name:           n.cfg.Name,
		ListenAddr:     n.cfg.ClusterAddr,
		Secret:         []byte(n.cfg.Secret),
		Handler:        transport.HandlerFunc(n.serveCluster),
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
		Zone:         n.cfg.Zone,
		RESPAddr:     n.RESPAddr(),
		MemcacheAddr: n.MemcacheAddr(),
		HTTPAddr:     n.HTTPAddr(),
		ClusterAddr:  n.tr.Addr(),
	}
	n.ms, err = cluster.NewMembership(cluster.MembershipConfig{
		Self:       self,
		BindAddr:   n.cfg.GossipAddr,
		Seeds:      n.cfg.Join,
		Secret:     []byte(n.cfg.Secret),
		Store:      n.store,
		Partitions: n.cfg.Partitions,
		Logger:     n.log.With("component", "gossip"),
		OnAlive: func(name string) {
			n.avoid.Forget(name) // back: ask it again at once
			if n.handoff != nil {
				n.handoff.Kick()
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

// ringChanged kicks anti-entropy (ownership may have moved: hand partitions off
// now), drops stale transport peers and logs the quorum settings when the member
// count clamps them. Start calls it once; then membership's OnChange does.
func (n *Node) ringChanged() {
	n.aae.Kick()
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

// newRepair builds anti-entropy (with partition handoff and tombstone purge) and
// hinted handoff; Start starts their loops.
func (n *Node) newRepair() error {
	if err := n.newAAE(); err != nil {
		return err
	}
	if err := n.newEvictor(); err != nil {
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
	n.handoff = h
	return nil
}

// newAAE builds anti-entropy; peers' anti-entropy messages are served even when
// this node's own loop is off (AAEInterval <= 0: Start does not start it).
func (n *Node) newAAE() error {
	interval := n.cfg.AAEInterval
	if interval <= 0 {
		interval = time.Hour // the loop is not started; the value only passes validation
	}
	a, err := repair.NewAAE(repair.AAEConfig{
		Node:           n.cfg.Name,
		Store:          n.store,
		Trees:          n.trees,
		Cluster:        n.ms,
		Caller:         n.calls,
		N:              n.cfg.N,
		Interval:       interval,
		MaxKeysPerSec:  n.cfg.AAEMaxKeysPerSec,
		TombstoneGrace: n.cfg.TombstoneGrace,
		Sealed:         n.co.Sealed,
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
	n.aae = a
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
		if hints > 0 && n.handoff != nil {
			n.handoff.Kick()
		}
		return
	}
	if !n.co.Sealed() {
		// Nothing left, but a write may have landed after the round looked: seal,
		// so that none can any more, and leave only once a round that began
		// after the seal found nothing either (coordinator/seal.go).
		n.co.Seal()
		n.log.Info("leave: handed off every partition; this node takes no more writes")
		n.aae.Kick()
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
	n.aae.Kick()
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

// errStarting answers peers that call before the node is started (or once it is
// stopping).
var errStarting = errors.New("node: starting")

// serveCluster answers a request from another node with the handler n.mux has
// for its type. While the node is starting or stopping, a forwarded op is refused
// with ErrRunLocally (the forwarding node runs it) and other requests fail (a
// replica write's coordinator keeps a hint). A request served when Close begins
// is served to its end: Close waits for it.
func (n *Node) serveCluster(ctx context.Context, from string, typ uint8, req []byte) ([]byte, error) {
	n.servingMu.RLock()
	if n.state.Load() != stateStarted {
		n.servingMu.RUnlock()
		if peer.MsgType(typ) == peer.MsgForward {
			return proxy.AppendResult(nil, proxy.Result{}, proxy.ErrRunLocally), nil
		}
		return nil, errStarting
	}
	n.serving.Add(1) // Close waits for it
	n.servingMu.RUnlock()
	defer n.serving.Done()
	return n.mux.ServeCluster(ctx, from, typ, req)
}

// call sends a request to a ring member, resolving its cluster address.
func (n *Node) call(ctx context.Context, node string, typ peer.MsgType, req []byte) ([]byte, error) {
	m, ok := n.ms.Member(node)
	if !ok || m.ClusterAddr == "" {
		// Nothing left this node: a forward may run the op here with no doubt.
		return nil, fmt.Errorf("node: no cluster address for %q: %w: %w", node, transport.ErrNotSent, transport.ErrUnreachable)
	}
	return n.tr.Call(ctx, m.ClusterAddr, uint8(typ), req)
}
