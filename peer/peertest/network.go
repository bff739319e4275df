package peertest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/ring"
)

var (
	_ Server      = (*peer.Mux)(nil)
	_ peer.Caller = caller{}
)

// ErrUnreachable is what a Network call to a crashed node (or from one) returns.
var ErrUnreachable = errors.New("peertest: node unreachable")

// ErrReset is what a Network call to a node set to reset connections returns.
var ErrReset = errors.New("peertest: connection reset")

// Server answers a node's requests: a *peer.Mux, or anything that wraps one (the
// cluster transport's Handler interface).
type Server interface {
	ServeCluster(ctx context.Context, from string, typ uint8, req []byte) ([]byte, error)
}

// Faults are Network's fault probabilities and delays. The zero value is a
// perfect, instant network.
type Faults struct {
	// DropRequest and DropReply are the probabilities that a request is lost before
	// it reaches the server, or its reply after the server applied it. The caller
	// then waits for its context's deadline, as over a real network.
	DropRequest, DropReply float64
	// Duplicate is the probability that a request is delivered twice.
	Duplicate float64
	// MinDelay and MaxDelay bound the one-way delay of a request and of its reply,
	// drawn uniformly (nanosecond granularity, so that two messages rarely arrive
	// at the same instant).
	MinDelay, MaxDelay time.Duration
}

// Stats counts what a Network did.
type Stats struct {
	Calls, Refused, DroppedRequests, DroppedReplies, Duplicated, InFlight int64
}

// Network is an in-memory network of named nodes, each served by a Server. It
// decides every fault from a hash of (seed, sender, receiver, message, current
// time), not from a shared random stream, so that the decisions do not depend on
// the order in which concurrent goroutines send: under testing/synctest, the same
// seed gives the same faults.
//
// Liveness is per observer (View): a crashed node looks dead to everyone once
// Detect has passed since the crash; nodes on different sides of a partition look
// dead to each other once Detect has passed since the partition began; Suspect
// makes a node look dead although it is up. A node always sees itself alive.
type Network struct {
	seed   uint64
	ring   *ring.Ring
	detect time.Duration

	mu     sync.Mutex
	nodes  map[string]*fakeNode
	faults Faults
	side   map[string]int // partition side of each node; nodes on different sides cannot talk
	partAt time.Time      // when the current partition began
	// suspected holds observer -> node pairs the observer wrongly believes dead
	// (observer "" stands for everyone), though the network still carries their
	// messages: a flapping failure detector.
	suspected map[[2]string]bool
	// slow delays every request to a node by its duration before delivery (< 0:
	// never delivered, as to a stopped process); reset makes every request to a
	// node fail at once with ErrReset, although it is up.
	slow  map[string]time.Duration
	reset map[string]bool

	calls, refused, dropReq, dropRep, dups, inflight atomic.Int64
	trace                                            atomic.Pointer[func(string)]
}

// SetTrace makes the network report every message it delivers, drops or refuses
// to fn (nil stops): for debugging a simulation.
func (n *Network) SetTrace(fn func(string)) {
	if fn == nil {
		n.trace.Store(nil)
		return
	}
	n.trace.Store(&fn)
}

func (n *Network) tracef(format string, args ...any) {
	if fn := n.trace.Load(); fn != nil {
		(*fn)(time.Now().Format("04:05.000000000 ") + fmt.Sprintf(format, args...))
	}
}

type fakeNode struct {
	srv      Server
	up       bool
	downedAt time.Time
}

// NewNetwork returns a network of the named nodes over a ring of partitions
// partitions. Every node starts down, with no server: Start brings one up (or
// adds a node the ring does not have). detect is the failure-detection delay of
// every View.
func NewNetwork(seed uint64, partitions int, detect time.Duration, names ...string) (*Network, error) {
	ms := make([]ring.Member, len(names))
	for i, n := range names {
		ms[i] = ring.Member{Name: n}
	}
	rg, err := ring.New(partitions, ms)
	if err != nil {
		return nil, err
	}
	n := &Network{seed: seed, ring: rg, detect: detect, nodes: map[string]*fakeNode{}, side: map[string]int{},
		suspected: map[[2]string]bool{}, slow: map[string]time.Duration{}, reset: map[string]bool{}}
	for _, name := range names {
		n.nodes[name] = &fakeNode{}
	}
	return n, nil
}

// Ring returns the network's ring (every node's).
func (n *Network) Ring() *ring.Ring { return n.ring }

// SetFaults changes the fault model from now on.
func (n *Network) SetFaults(f Faults) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.faults = f
}

// Start brings node up, answered by srv (a restart passes the new incarnation's
// server). A node the network does not know yet joins it (not its ring).
func (n *Network) Start(node string, srv Server) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.nodes[node] == nil {
		n.nodes[node] = &fakeNode{}
	}
	n.nodes[node].srv, n.nodes[node].up = srv, true
}

// Crash takes node down: calls to and from it are refused from now on, and it
// looks dead to every View once the detection delay passed.
func (n *Network) Crash(node string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.nodes[node].up, n.nodes[node].downedAt = false, time.Now()
}

// Up reports whether node is up.
func (n *Network) Up(node string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nodes[node].up
}

// Partition splits the network into sides: nodes not named in any group form
// one more side together. Partition() with no groups heals.
func (n *Network) Partition(groups ...[]string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.side = map[string]int{}
	for i, g := range groups {
		for _, node := range g {
			n.side[node] = i + 1
		}
	}
	n.partAt = time.Now()
}

// Heal ends every partition.
func (n *Network) Heal() { n.Partition() }

// Slow delays every request to node by d before it is delivered, from now on; d < 0
// stalls them (they are never delivered: the caller waits for its deadline, as with
// a SIGSTOPped process); d == 0 ends it. Liveness is not affected.
func (n *Network) Slow(node string, d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if d == 0 {
		delete(n.slow, node)
	} else {
		n.slow[node] = d
	}
}

// Reset makes every request to node fail at once with ErrReset (on), as from a
// process whose connections are reset, or ends it. Liveness is not affected.
func (n *Network) Reset(node string, on bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if on {
		n.reset[node] = true
	} else {
		delete(n.reset, node)
	}
}

// nodeFault returns the Slow delay and Reset setting of node.
func (n *Network) nodeFault(node string) (time.Duration, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.slow[node], n.reset[node]
}

// Suspect makes observer (every node, for "") believe node dead, or stop
// believing it; the network is not affected.
func (n *Network) Suspect(observer, node string, suspected bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if suspected {
		n.suspected[[2]string{observer, node}] = true
	} else {
		delete(n.suspected, [2]string{observer, node})
	}
}

// Trust ends every suspicion.
func (n *Network) Trust() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.suspected)
}

// Stats returns the network's counters.
func (n *Network) Stats() Stats {
	return Stats{Calls: n.calls.Load(), Refused: n.refused.Load(), DroppedRequests: n.dropReq.Load(),
		DroppedReplies: n.dropRep.Load(), Duplicated: n.dups.Load(), InFlight: n.inflight.Load()}
}

// View returns node's membership view.
func (n *Network) View(node string) View { return View{n, node} }

// View is one node's view of the network's membership: the ring and who is
// alive, what coordinator.Membership and repair.Membership ask.
type View struct {
	n    *Network
	self string
}

// Ring returns the network's ring.
func (v View) Ring() *ring.Ring { return v.n.ring }

// Alive reports whether the view's node believes node alive (itself always).
func (v View) Alive(node string) bool { return node == v.self || v.n.alive(v.self, node) }

// alive reports whether observer believes node alive.
func (n *Network) alive(observer, node string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := time.Now()
	nd, ok := n.nodes[node]
	if !ok {
		return false
	}
	if !nd.up && now.Sub(nd.downedAt) >= n.detect {
		return false
	}
	if n.suspected[[2]string{observer, node}] || n.suspected[[2]string{"", node}] {
		return false
	}
	if n.side[observer] != n.side[node] && now.Sub(n.partAt) >= n.detect {
		return false
	}
	return true
}

// reachable reports whether a message from one node can reach another now, and
// the server that would answer it.
func (n *Network) reachable(from, to string) (Server, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	f, t := n.nodes[from], n.nodes[to]
	if f == nil || t == nil || !f.up || !t.up || n.side[from] != n.side[to] {
		return nil, false
	}
	return t.srv, true
}

// fate is the network's decision for one message.
type fate struct {
	delayIn, delayOut        time.Duration
	dropReq, dropRep, dupReq bool
}

func (f fate) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, " (in %v, out %v", f.delayIn, f.delayOut)
	for _, x := range []struct {
		on   bool
		name string
	}{{f.dropReq, "lose request"}, {f.dropRep, "lose reply"}, {f.dupReq, "duplicate"}} {
		if x.on {
			b.WriteString(", " + x.name)
		}
	}
	return b.String() + ")"
}

// Describe renders a request for traces: the replica protocol's in full, others
// by their type number.
func Describe(typ peer.MsgType, req []byte) string {
	switch typ {
	case peer.MsgRead:
		r, err := peer.DecodeReadRequest(req)
		if err != nil {
			return fmt.Sprintf("read <%v>", err)
		}
		return "read " + string(r.Key) + forOwner(r.HintFor)
	case peer.MsgWrite:
		w, err := peer.DecodeWriteRequest(req)
		if err != nil {
			return fmt.Sprintf("write <%v>", err)
		}
		return "write " + string(w.Key) + forOwner(w.HintFor) + " " + DescribeRecord(w.Record)
	case peer.MsgScan:
		r, err := peer.DecodeScanRequest(req)
		if err != nil {
			return fmt.Sprintf("scan <%v>", err)
		}
		return fmt.Sprintf("scan partition %d from %x count %d", r.Partition, r.From, r.Count)
	case peer.MsgCount:
		r, err := peer.DecodeCountRequest(req)
		if err != nil {
			return fmt.Sprintf("count <%v>", err)
		}
		return fmt.Sprintf("count %d partitions", len(r.Partitions))
	case peer.MsgFlush:
		return "flush"
	case peer.MsgReadBatch:
		reads, err := peer.DecodeReadBatch(req)
		if err != nil {
			return fmt.Sprintf("read batch <%v>", err)
		}
		parts := make([]string, len(reads))
		for i, r := range reads {
			parts[i] = string(r.Key) + forOwner(r.HintFor)
		}
		return "read batch " + strings.Join(parts, ", ")
	}
	return fmt.Sprintf("type %d", typ)
}

func forOwner(owner string) string {
	if owner == "" {
		return ""
	}
	return " for " + owner
}

func describeReply(typ peer.MsgType, rep []byte, err error) string {
	if err != nil {
		return "error " + err.Error()
	}
	switch typ {
	case peer.MsgRead:
		rec, err := peer.DecodeRecordReply(rep)
		if err != nil {
			return fmt.Sprintf("<%v>", err)
		}
		return DescribeRecord(rec)
	case peer.MsgReadBatch:
		var n uint64 // the count after the version byte: the reply says how many reads it answers
		if len(rep) > 1 {
			n, _ = binary.Uvarint(rep[1:])
		}
		res, err := peer.DecodeReadBatchReply(rep, int(min(n, uint64(len(rep)))))
		if err != nil {
			return fmt.Sprintf("<%v>", err)
		}
		parts := make([]string, len(res))
		for i, x := range res {
			if parts[i] = DescribeRecord(x.Record); x.Err != nil {
				parts[i] = "error " + x.Err.Error()
			}
		}
		return strings.Join(parts, "; ")
	}
	return "ok"
}

// DescribeRecord renders a record compactly: each actor's counter and its values.
func DescribeRecord(rec record.Record) string {
	var parts []string
	for _, e := range rec.Str.Entries {
		var vs []string
		for _, v := range e.Values {
			if v.Tombstone {
				vs = append(vs, "<del>")
			} else {
				vs = append(vs, strconv.Quote(string(v.Data)))
			}
		}
		parts = append(parts, fmt.Sprintf("%s@%d%v", e.Actor, e.Counter, vs))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

func (n *Network) fate(from, to string, typ peer.MsgType, req []byte) fate {
	n.mu.Lock()
	f := n.faults
	n.mu.Unlock()
	h := xxhash.New()
	var b [17]byte
	binary.LittleEndian.PutUint64(b[:], n.seed)
	binary.LittleEndian.PutUint64(b[8:], uint64(time.Now().UnixNano()))
	b[16] = byte(typ)
	h.Write(b[:])
	h.WriteString(from)
	h.Write([]byte{0})
	h.WriteString(to)
	h.Write([]byte{0})
	h.Write(req)
	rng := rand.New(rand.NewPCG(h.Sum64(), n.seed))
	delay := func() time.Duration {
		if f.MaxDelay <= f.MinDelay {
			return f.MinDelay
		}
		return f.MinDelay + time.Duration(rng.Int64N(int64(f.MaxDelay-f.MinDelay)+1))
	}
	return fate{delayIn: delay(), delayOut: delay(),
		dropReq: rng.Float64() < f.DropRequest, dropRep: rng.Float64() < f.DropReply,
		dupReq: rng.Float64() < f.Duplicate}
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Caller returns the Caller node sends with.
func (n *Network) Caller(node string) peer.Caller { return caller{n, node} }

type caller struct {
	n    *Network
	from string
}

func (c caller) Call(ctx context.Context, to string, typ peer.MsgType, req []byte) ([]byte, error) {
	return c.n.call(ctx, c.from, to, typ, req)
}

func (n *Network) call(ctx context.Context, from, to string, typ peer.MsgType, req []byte) ([]byte, error) {
	n.calls.Add(1)
	n.inflight.Add(1)
	defer n.inflight.Add(-1)
	req = slices.Clone(req) // the receiver must not alias the sender's buffer
	f := n.fate(from, to, typ, req)
	var what string
	if n.trace.Load() != nil {
		what = Describe(typ, req)
	}
	n.tracef("%s->%s %s%s", from, to, what, f)
	if err := sleep(ctx, f.delayIn); err != nil {
		n.tracef("%s->%s %s: %v before delivery", from, to, what, err)
		return nil, err
	}
	srv, ok := n.reachable(from, to)
	if !ok {
		n.refused.Add(1)
		n.tracef("%s->%s %s: refused", from, to, what)
		return nil, ErrUnreachable
	}
	if slow, reset := n.nodeFault(to); reset {
		n.refused.Add(1)
		n.tracef("%s->%s %s: reset", from, to, what)
		return nil, ErrReset
	} else if slow < 0 {
		n.tracef("%s->%s %s: stalled", from, to, what)
		<-ctx.Done()
		return nil, ctx.Err()
	} else if err := sleep(ctx, slow); err != nil {
		n.tracef("%s->%s %s: %v while slow", from, to, what, err)
		return nil, err
	}
	if srv, ok = n.reachable(from, to); !ok {
		n.refused.Add(1)
		n.tracef("%s->%s %s: refused", from, to, what)
		return nil, ErrUnreachable
	}
	if f.dropReq {
		n.dropReq.Add(1)
		n.tracef("%s->%s %s: request lost", from, to, what)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	rep, err := srv.ServeCluster(ctx, from, uint8(typ), req)
	if n.trace.Load() != nil {
		n.tracef("%s->%s %s: served, reply %s", from, to, what, describeReply(typ, rep, err))
	}
	if f.dupReq {
		n.dups.Add(1)
		srv.ServeCluster(ctx, from, uint8(typ), slices.Clone(req)) //nolint:errcheck // the duplicate's reply is lost
	}
	if err := sleep(ctx, f.delayOut); err != nil {
		n.tracef("%s->%s %s: %v before the reply", from, to, what, err)
		return nil, err
	}
	if _, ok := n.reachable(to, from); !ok || f.dropRep {
		n.dropRep.Add(1)
		n.tracef("%s->%s %s: reply lost", from, to, what)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	n.tracef("%s->%s %s: replied", from, to, what)
	return slices.Clone(rep), err
}
