package node

// How this node picks the peers it sends requests to: the router's view of the
// cluster (replicas, liveness and zones; proxy/route decides and forwards), and
// which failures make a peer avoided by the router and the coordinator alike.

import (
	"context"
	"errors"

	"github.com/dynakv/dynakv/cluster"
	"github.com/dynakv/dynakv/cluster/transport"
	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/proxy/route"
	"github.com/dynakv/dynakv/ring"
)

// avoidFor is how long a peer that failed a request is avoided by every request of
// this node (forwards and replica calls alike); memberlist seeing it alive again
// ends it sooner.
const avoidFor = coordinator.DefaultAvoidFor

// peerFailed says whether a call's error means the peer failed, so that it is
// avoided for a while (by the coordinator and the router): anything but this node
// closing, the caller giving up, or a request too big for the transport (the
// request's fault, not the peer's).
func peerFailed(err error) bool {
	return err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, transport.ErrClosed) &&
		!errors.Is(err, transport.ErrFrameTooBig)
}

// newRouter builds the router the proxy asks where each op runs: it forwards ops
// as peer.MsgForward requests, which the other node's proxy answers.
func (n *Node) newRouter() (*route.Router, error) {
	return route.New(route.Config{
		Self:           n.cfg.Name,
		Cluster:        routeView{n},
		Avoid:          n.avoid,
		Caller:         n.calls,
		RequestTimeout: n.cfg.RequestTimeout,
		PeerFailed:     peerFailed,
		Logger:         n.log.With("component", "router"),
	})
}

// replicas returns the N replicas of key's partition (N as the coordinator clamps
// it to the ring), in preference order: where the router forwards key's ops, and
// what DPREFLIST shows. The slice is the ring's: do not modify it.
func (n *Node) replicas(key []byte) []string {
	rg := n.ms.Ring()
	nn, _, _ := n.quorum(rg.Len())
	return rg.Replicas(rg.Partition(key), nn)
}

// zoneOf returns node's zone: this node's configured zone for itself, the ring's
// member record for a peer ("" for a node that is not a member). It does not
// allocate.
func (n *Node) zoneOf(node string) string {
	if node == n.cfg.Name {
		return n.cfg.Zone
	}
	z, _ := n.ms.Ring().Zone(node)
	return z
}

// routeView is the router's view of the cluster: the ring (replicas and zones)
// and the members requests may go to (cluster.Membership.Reachable).
type routeView struct{ n *Node }

func (v routeView) Replicas(key []byte) []string { return v.n.replicas(key) }
func (v routeView) Alive(node string) bool       { return v.n.ms.Reachable(node) }
func (v routeView) Zone(node string) string      { return v.n.zoneOf(node) }

var _ route.Cluster = routeView{}

// requestView is the coordinator's view of the cluster: the ring, and as liveness
// the members requests may go to (cluster.Membership.Reachable: memberlist's
// verdict, and until this node has joined, every member it has no verdict on), so
// a node restarted into a running cluster coordinates from its first moment.
type requestView struct{ ms *cluster.Membership }

func (v requestView) Ring() *ring.Ring       { return v.ms.Ring() }
func (v requestView) Alive(node string) bool { return v.ms.Reachable(node) }

var _ coordinator.Membership = requestView{}
