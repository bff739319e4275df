// Package route decides where a proxy operation is coordinated and takes it there:
// a node that is not among its key's N replicas forwards the op to a live one
// (Dynamo: writes are coordinated by a node in the top N), one in its own zone when
// there is one, and runs it itself when no replica can take it. Router implements
// proxy.Router; node/ builds one per node and serves the ops other nodes forward to
// it (proxy.Proxy.DoLocal).
//
// The router decides and counts; it owns no goroutine and no connection. It sees
// the cluster through three small interfaces: Cluster (the key's replicas, their
// liveness and zones), Avoider (peers that recently failed a request, shared with
// the coordinator) and peer.Caller (the internode transport), on which it sends
// peer.MsgForward requests that proxy.Proxy's handler answers on the other node.
//
// Invariants:
//
//   - Locality: a forwarded op goes to a replica in this node's zone (a rack,
//     availability zone or data center) whenever one is alive and not avoided,
//     the first such in preference order, so a client's request crosses no zone
//     boundary it need not; else to the first usable replica of any zone. With a
//     single zone this is the first usable replica, as before zones existed.
//   - An op runs on at most one node as far as the router can tell: it runs here
//     instead (proxy.ErrRunLocally) only when it certainly did not run there, or
//     when the outcome is unknown and the op is idempotent (proxy.Op.Idempotent).
//     Otherwise an unknown outcome is proxy.ErrOutcomeUnknown.
//   - A forwarded op keeps the time this node accepted it (proxy.Op.Accepted), and
//     the node it is sent to refuses it past its deadline, so the copy sent cannot
//     run after this node gave up on it.
//   - A peer that failed a forward (refused, reset, timed out; not one that refused
//     the op as late) is reported to the Avoider, so later ops skip it until the
//     avoidance ends, instead of waiting for memberlist to make up its mind.
//
// A Router is safe for concurrent use.
package route

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/dynakv/dynakv/cluster/transport"
	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/proxy"
)

// Cluster is the router's view of the cluster.
type Cluster interface {
	// Replicas returns the N replicas of key's partition, in preference order,
	// N being the replication factor in effect (clamped to the member count). The
	// router does not modify the slice.
	Replicas(key []byte) []string
	// Alive reports whether the failure detector sees node alive.
	Alive(node string) bool
	// Zone returns node's zone (a rack, availability zone or data center; "" for
	// none, which is a zone like any other). It is asked of this node and of
	// key's replicas, and must not allocate.
	Zone(node string) string
}

// Avoider is the node's view of the peers that recently failed a request
// (*coordinator.Avoidance implements it).
type Avoider interface {
	// Avoided reports whether node failed a request recently.
	Avoided(node string) bool
	// Failed records that node failed a request; it reports whether node was not
	// avoided before.
	Failed(node string) (fresh bool)
}

// Config configures a Router. Self, Cluster, Avoid, Caller and RequestTimeout are
// required; New does not modify the caller's struct.
type Config struct {
	// Self is this node's name.
	Self string
	// Cluster gives each key's replicas, their liveness and their zones.
	Cluster Cluster
	// Avoid is told about peers that fail a forward and skips them when routing.
	Avoid Avoider
	// Caller carries a forwarded op (peer.MsgForward) to its node.
	Caller peer.Caller
	// RequestTimeout bounds a forward: the whole of it for an op that must not run
	// twice, half of it for an idempotent op, which may then still run here.
	RequestTimeout time.Duration
	// PeerFailed reports whether a Caller error means the peer failed, so that it
	// is avoided. Default: any error but context.Canceled.
	PeerFailed func(error) bool
	// Logger receives a warning when a peer starts being avoided. Default
	// slog.Default().
	Logger *slog.Logger
}

// Metrics is a snapshot of a Router's counters.
type Metrics struct {
	Forwarded int64 // ops forwarded to a replica and answered there
	Fallbacks int64 // ops run here because their replica was unreachable or refused them
}

// Router forwards each op to a live node among its key's replicas when this node is
// not one of them. Create it with New.
type Router struct {
	cfg                  Config
	forwarded, fallbacks atomic.Int64
}

var _ proxy.Router = (*Router)(nil)

// New returns a Router.
func New(cfg Config) (*Router, error) {
	switch {
	case cfg.Self == "":
		return nil, errors.New("route: Self is required")
	case cfg.Cluster == nil || cfg.Avoid == nil || cfg.Caller == nil:
		return nil, errors.New("route: Cluster, Avoid and Caller are required")
	case cfg.RequestTimeout <= 0:
		return nil, fmt.Errorf("route: RequestTimeout %v must be positive", cfg.RequestTimeout)
	}
	if cfg.PeerFailed == nil {
		cfg.PeerFailed = func(err error) bool { return err != nil && !errors.Is(err, context.Canceled) }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Router{cfg: cfg}, nil
}

// Metrics returns a snapshot of the counters.
func (r *Router) Metrics() Metrics {
	return Metrics{Forwarded: r.forwarded.Load(), Fallbacks: r.fallbacks.Load()}
}

// Route implements proxy.Router: "" (run here) when this node is one of key's
// replicas or there are none, else the first replica, in preference order, that
// is alive, not avoided and in this node's zone, else the first that is alive and
// not avoided in any zone, else "" (no replica answering: coordinate here,
// writing to fallbacks). With one zone (or none) that is the first replica alive
// and not avoided. It does not allocate.
func (r *Router) Route(key []byte) string {
	reps := r.cfg.Cluster.Replicas(key)
	if len(reps) == 0 || slices.Contains(reps, r.cfg.Self) {
		return ""
	}
	zone := r.cfg.Cluster.Zone(r.cfg.Self)
	first := ""
	for _, node := range reps {
		if !r.cfg.Cluster.Alive(node) || r.cfg.Avoid.Avoided(node) {
			continue
		}
		if r.cfg.Cluster.Zone(node) == zone {
			return node
		}
		if first == "" {
			first = node
		}
	}
	return first
}

// Forward implements proxy.Router: it sends op to node and returns its outcome.
// The op runs here instead (ErrRunLocally) when it certainly did not run there:
// the request was never sent (no connection, queue full, authentication failed),
// the node refused it while starting or stopping, or it refused it as late (its
// deadline had passed when the node came to it: the transport's ErrLate, or the
// coordinator's there). When the outcome is unknown (the connection broke, or no
// answer within the forward's timeout) an idempotent op (GET, plain SET, DEL,
// DDEL...) runs here too, marked proxy.ErrMayHaveRun (the proxy then gives its
// reply only where the first run cannot have changed it); any other (INCR, APPEND, SET NX, cas) is answered with
// ErrOutcomeUnknown, since running it again could apply it twice. A node that
// failed the call (not one that refused it as late) is reported to the Avoider.
func (r *Router) Forward(ctx context.Context, node string, op proxy.Op) (proxy.Result, error) {
	timeout := r.cfg.RequestTimeout
	if op.Idempotent() {
		timeout /= 2
	}
	fctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	b, err := r.cfg.Caller.Call(fctx, node, peer.MsgForward, op.AppendBinary(nil))
	refusedLate := errors.Is(err, transport.ErrLate)
	timedOut := !refusedLate && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil
	if (timedOut || ctx.Err() == nil && !refusedLate && r.cfg.PeerFailed(err)) && r.cfg.Avoid.Failed(node) {
		r.cfg.Logger.Warn("replica failed a forwarded request; avoiding it", "replica", node, "err", err)
	}
	unknown := timedOut || errors.Is(err, transport.ErrUnreachable)
	switch {
	case refusedLate, errors.Is(err, transport.ErrNotSent), errors.Is(err, transport.ErrAuth):
		r.fallbacks.Add(1)
		return proxy.Result{}, fmt.Errorf("%w: %v", proxy.ErrRunLocally, err)
	case unknown && op.Idempotent():
		r.fallbacks.Add(1)
		return proxy.Result{}, fmt.Errorf("%w: %w: %v", proxy.ErrRunLocally, proxy.ErrMayHaveRun, err)
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
		r.fallbacks.Add(1) // the node was starting or stopping
	case errors.Is(opErr, coordinator.ErrLate), errors.Is(opErr, coordinator.ErrSealed):
		// Its coordinator refused it before writing anything (too late, or the
		// node is finishing its leave): certainly not run.
		r.fallbacks.Add(1)
		return proxy.Result{}, fmt.Errorf("%w: %s: %w", proxy.ErrRunLocally, node, opErr)
	default:
		r.forwarded.Add(1)
	}
	return res, opErr
}
