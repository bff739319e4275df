package coordinator

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dynakv/dynakv/ring"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/vclock"
)

// Membership is the coordinator's view of the cluster: the ring member set and who
// is alive. cluster.Membership implements it.
type Membership interface {
	// Ring returns the current ring; never nil.
	Ring() *ring.Ring
	// Alive reports whether a member is believed alive (always true for this node).
	Alive(node string) bool
}

// Peers reaches the replicas on other nodes. RemotePeers implements it over any
// request/response transport; tests use an in-memory network.
type Peers interface {
	// Read returns node's record of req.Key (empty when it has none).
	Read(ctx context.Context, node string, req ReadRequest) (vclock.Set, error)
	// Write merges req.Record into node's replica (or its hints) durably.
	Write(ctx context.Context, node string, req WriteRequest) error
	// Scan, Count and Flush serve the keyspace commands (keyspace.go).
	Scan(ctx context.Context, node string, req ScanRequest) (ScanReply, error)
	Count(ctx context.Context, node string, req CountRequest) (int64, error)
	Flush(ctx context.Context, node string) error
}

// ReadRequest asks a replica for its record of Key. HintFor, when set, names the
// owner a fallback stands in for: the fallback answers with its own record merged
// with the hint it keeps for that owner.
type ReadRequest struct {
	Key     []byte
	HintFor string
}

// WriteRequest asks a replica to merge Record into its record of Key. With HintFor
// set (and not naming the receiver), the receiver is a fallback and keeps the record
// as a hint for that owner instead.
type WriteRequest struct {
	Key     []byte
	Record  vclock.Set
	HintFor string
	// recordEnc, when set, is Record's encoding, made once for all replicas.
	recordEnc []byte
}

// counters are the coordinator's event counts (Metrics).
type counters struct {
	readRepairs, repairsSkipped, hintsStored  atomic.Int64
	readQuorumFailures, writeQuorumFailures   atomic.Int64
	replicaWriteFailures, replicaReadFailures atomic.Int64
}

// Metrics is a snapshot of the coordinator's counters since New.
type Metrics struct {
	ReadRepairs          int64 // replica records rewritten by read repair
	RepairsSkipped       int64 // read repairs skipped because MaxRepairs were in flight
	HintsStored          int64 // hints this node stored for owners it could not reach
	ReadQuorumFailures   int64
	WriteQuorumFailures  int64
	ReplicaWriteFailures int64 // replica writes that failed (each left a hint)
	ReplicaReadFailures  int64
}

// Metrics returns a snapshot of the coordinator's counters.
func (c *Coordinator) Metrics() Metrics {
	s := &c.stats
	return Metrics{
		ReadRepairs: s.readRepairs.Load(), RepairsSkipped: s.repairsSkipped.Load(),
		HintsStored: s.hintsStored.Load(), ReadQuorumFailures: s.readQuorumFailures.Load(),
		WriteQuorumFailures: s.writeQuorumFailures.Load(), ReplicaWriteFailures: s.replicaWriteFailures.Load(),
		ReplicaReadFailures: s.replicaReadFailures.Load(),
	}
}

// Quorum returns the effective N, R and W for a ring of members nodes and the
// per-request overrides r and w (0: configured default): N is clamped to the
// member count, R and W to [1, N].
func (c *Coordinator) Quorum(members, r, w int) (n, rr, ww int) {
	n = max(1, min(c.cfg.N, members))
	if r <= 0 {
		r = c.cfg.R
	}
	if w <= 0 {
		w = c.cfg.W
	}
	return n, max(1, min(r, n)), max(1, min(w, n))
}

// target is one replica a request goes to: node, standing in for hintFor when it is
// a fallback.
type target struct {
	node, hintFor string
}

// owner returns the node whose replica the target holds.
func (t target) owner() string {
	if t.hintFor != "" {
		return t.hintFor
	}
	return t.node
}

// plan is where a request for one key goes.
type plan struct {
	n       int
	self    bool     // this node is one of the key's N replicas
	remote  []target // live replicas and fallbacks other than this node
	orphans []string // owners down with no fallback left: this node keeps their hints
}

// plan picks the key's replicas (sloppy quorum): each of the first N members of the
// preference list that is alive, and for each one that is not, the next live
// fallback beyond the first N, tagged with a hint naming the owner. Pure: it depends
// only on the ring, liveness and this node's name.
func (c *Coordinator) plan(key []byte) plan {
	rg := c.cfg.Cluster.Ring()
	n, _, _ := c.Quorum(rg.Len(), 0, 0)
	pl := rg.PreferenceList(rg.Partition(key))
	if len(pl) == 0 {
		return plan{n: 1, self: true}
	}
	n = min(n, len(pl))
	pn := plan{n: n}
	fb := n // next fallback to consider
	for _, node := range pl[:n] {
		switch {
		case node == c.cfg.Node:
			pn.self = true
		case c.cfg.Cluster.Alive(node):
			pn.remote = append(pn.remote, target{node: node})
		case c.cfg.DisableHints:
		default:
			for fb < len(pl) && (pl[fb] == c.cfg.Node || !c.cfg.Cluster.Alive(pl[fb])) {
				fb++
			}
			if fb < len(pl) {
				pn.remote = append(pn.remote, target{node: pl[fb], hintFor: node})
				fb++
			} else {
				pn.orphans = append(pn.orphans, node)
			}
		}
	}
	return pn
}

// requestContext returns the context replica calls run under: the request's
// deadline (or RequestTimeout, whichever is earlier), but not its cancellation, so
// replica writes go on after the client hung up or the quorum answered; Close
// cancels it. Requests without an earlier deadline of their own share one context
// per RequestTimeout/64 (their deadline is at most that much later than asked),
// which spares each of them a timer.
func (c *Coordinator) requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	rctx, cancel := c.sharedContext(ctx)
	if cancel == nil {
		return rctx, func() {}
	}
	return rctx, cancel
}

// sharedContext is requestContext, with a nil cancel when the context is shared
// (there is nothing to release).
func (c *Coordinator) sharedContext(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(c.cfg.RequestTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		return context.WithDeadline(c.base, d)
	}
	return c.deadlines.get(c.base, deadline, c.cfg.RequestTimeout/64), nil
}

// sharedDeadline hands out one context to every request whose deadline falls in
// the window it covers.
type sharedDeadline struct {
	cur atomic.Pointer[deadlineCtx]
	mu  sync.Mutex // serialises replacing cur
}

type deadlineCtx struct {
	ctx    context.Context
	cancel context.CancelFunc // released by the deadline's own timer, or with the parent
	until  time.Time
}

// get returns a context of parent that ends between deadline and deadline+slack.
func (s *sharedDeadline) get(parent context.Context, deadline time.Time, slack time.Duration) context.Context {
	covers := func(d *deadlineCtx) bool {
		return d != nil && !d.until.Before(deadline) && d.until.Sub(deadline) <= slack
	}
	if d := s.cur.Load(); covers(d) {
		return d.ctx
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.cur.Load(); covers(d) {
		return d.ctx
	}
	// The context replaced stays with the requests that hold it; its timer ends it.
	// A request that took its time to get here does not replace a later one.
	d := &deadlineCtx{until: deadline.Add(slack)}
	d.ctx, d.cancel = context.WithDeadline(parent, d.until)
	if cur := s.cur.Load(); cur == nil || cur.until.Before(d.until) {
		s.cur.Store(d)
	}
	return d.ctx
}

// quorumModify coordinates a write: an optional quorum read (opt.ReadFirst), the
// local read-modify-write, then the resulting record sent to the other replicas;
// it answers after W acknowledgements counting its own.
func (c *Coordinator) quorumModify(ctx context.Context, key []byte, fn ModifyFunc, opt WriteOptions) (vclock.Set, error) {
	pn := c.plan(key)
	_, r, w := c.Quorum(pn.n, 0, opt.W)
	var seen vclock.Set
	// A coordinator that is not one of the key's replicas (none of them answered
	// the front door) holds no copy worth a context: it reads the replicas first.
	if (opt.ReadFirst || !pn.self) && pn.n > 1 {
		var err error
		if seen, err = c.quorumGet(ctx, key, r); err != nil {
			return vclock.Set{}, err
		}
	}
	var wrote bool
	local := opt
	// Alone (a single node, or every other replica down without a fallback), a
	// last write commits with its sync: one WAL commit, not two. When a sync does
	// not wait for the disk, every write with replicas does (see CheapSync).
	syncNow := opt.DeferSync && opt.Synced != nil &&
		(opt.Last && len(pn.remote) == 0 || c.cfg.CheapSync && len(pn.remote) > 0)
	if syncNow {
		local.DeferSync = false
	}
	rec, err := c.modifyLocal(key, seen, func(cur vclock.Set) (vclock.Clock, vclock.Value, error) {
		clk, v, err := fn(cur)
		wrote = err == nil
		return clk, v, err
	}, local)
	if err != nil || !wrote {
		// Nothing written: what fn saw may be another writer's unsynced write, so
		// the caller still syncs before answering.
		return rec, err
	}
	if syncNow {
		*opt.Synced = true
	}
	syncLocal := local.DeferSync && opt.Synced != nil
	synced, err := c.replicate(ctx, key, rec, pn, w, syncLocal)
	if syncLocal && synced {
		*opt.Synced = true
	}
	return rec, err
}

// replicate sends rec to the key's other replicas and waits for w acknowledgements,
// counting this node's own write when it is one of the key's replicas. Replicas
// that fail, and owners down without a fallback, get a hint stored here.
//
// With syncLocal (the local write was applied without a WAL sync), the local sync
// runs alongside the replica writes and counts as an acknowledgement when done,
// instead of following them; replicate reports whether it finished.
func (c *Coordinator) replicate(ctx context.Context, key []byte, rec vclock.Set, pn plan, w int, syncLocal bool) (localSynced bool, _ error) {
	for _, owner := range pn.orphans {
		c.storeHint(owner, key, rec)
	}
	acks := 0
	if pn.self {
		acks = 1
	}
	if acks >= w && len(pn.remote) == 0 {
		return false, nil
	}
	rctx, cancel := c.sharedContext(ctx)
	results := make(chan bool, len(pn.remote)+1)
	pending := 0
	localDone := make(chan bool, 1)
	if pn.self && syncLocal && c.goBackground(func() {
		ok := c.store.SyncWAL() == nil
		localDone <- ok
		results <- ok
	}) {
		acks, pending = 0, 1
	}
	recEnc := rec.AppendBinary(nil)
	for _, t := range pn.remote {
		req := WriteRequest{Key: key, Record: rec, HintFor: t.hintFor, recordEnc: recEnc}
		if c.goBackground(func() {
			err := c.cfg.Peers.Write(rctx, t.node, req)
			if err != nil {
				c.stats.replicaWriteFailures.Add(1)
				c.storeHint(t.owner(), key, rec)
			}
			results <- err == nil
		}) {
			pending++
		} else {
			c.storeHint(t.owner(), key, rec) // closing: the replica write is never sent
		}
	}
wait:
	for acks < w && pending > 0 {
		select {
		case ok := <-results:
			pending--
			if ok {
				acks++
			}
		case <-ctx.Done():
			break wait
		case <-rctx.Done():
			break wait
		}
	}
	if cancel != nil {
		releaseAfter(c, pending, results, cancel)
	}
	select {
	case localSynced = <-localDone:
	default:
	}
	if acks < w {
		c.stats.writeQuorumFailures.Add(1)
		if err := ctx.Err(); err != nil {
			return localSynced, err
		}
		return localSynced, &QuorumError{Acks: acks, Need: w}
	}
	return localSynced, nil
}

// releaseAfter calls cancel once pending more values arrived on ch: the replica
// calls still running after their request was answered keep their context until
// they finish.
func releaseAfter[T any](c *Coordinator, pending int, ch <-chan T, cancel context.CancelFunc) {
	if pending == 0 || !c.goBackground(func() {
		defer cancel()
		for range pending {
			<-ch
		}
	}) {
		cancel()
	}
}

// storeHint keeps rec as a hint for owner on this node, for the handoff loop to
// deliver when owner is back. Failures are logged: the write itself was already
// decided by the quorum, and anti-entropy is the next line of defence.
func (c *Coordinator) storeHint(owner string, key []byte, rec vclock.Set) {
	if owner == c.cfg.Node || c.cfg.DisableHints {
		return
	}
	_, err := c.store.UpdateHint(owner, key, mergeInto(rec))
	if err != nil {
		c.cfg.Logger.Warn("coordinator: store hint", "owner", owner, "err", err)
		return
	}
	c.stats.hintsStored.Add(1)
}

// mergeInto returns the storage update that merges rec into the stored record,
// leaving it untouched when it already holds everything rec holds.
func mergeInto(rec vclock.Set) func(cur vclock.Set, found bool) (vclock.Set, error) {
	return func(cur vclock.Set, found bool) (vclock.Set, error) {
		if !found {
			return rec, nil
		}
		next := vclock.Sync(cur, rec)
		if sameRecord(next, cur) {
			return vclock.Set{}, errNoChange
		}
		return next, nil
	}
}

var errNoChange = storage.ErrNoChange

// sameRecord reports whether two records are identical.
func sameRecord(a, b vclock.Set) bool {
	var ab, bb [256]byte
	return bytes.Equal(a.AppendBinary(ab[:0]), b.AppendBinary(bb[:0]))
}

// reply is one replica's answer to a read.
type reply struct {
	t   target
	rec vclock.Set
	err error
}

// quorumGet reads key from its replicas and returns the merge of the first r
// answers. It asks only as many replicas as the quorum needs (this node's own
// replica first), and more when one fails or when they are slow to answer
// (speculate): a read costs R replica reads, not N. When every replica asked has
// answered (or the request deadline passed), those that returned less than the
// merge of all answers get it written back (read repair); replicas the read did
// not ask are left to hinted handoff and anti-entropy.
func (c *Coordinator) quorumGet(ctx context.Context, key []byte, r int) (vclock.Set, error) {
	pn := c.plan(key)
	_, r, _ = c.Quorum(pn.n, r, 0)
	if len(pn.remote) == 0 {
		return c.localGet(ctx, key, pn.self, r)
	}
	replies := make(chan reply, len(pn.remote))
	rctx, cancel := c.requestContext(ctx)
	launched, pending := 0, 0
	launch := func(k int) {
		for ; k > 0 && launched < len(pn.remote); launched++ {
			t := pn.remote[launched]
			if c.goBackground(func() {
				rec, err := c.cfg.Peers.Read(rctx, t.node, ReadRequest{Key: key, HintFor: t.hintFor})
				if err != nil {
					c.stats.replicaReadFailures.Add(1)
				}
				replies <- reply{t: t, rec: rec, err: err}
			}) {
				pending++
				k--
			}
		}
	}
	var got []reply
	var merged vclock.Set
	acks := 0
	if pn.self {
		rec, _, err := c.store.Get(key)
		if err == nil {
			got = append(got, reply{t: target{node: c.cfg.Node}, rec: rec})
			merged, acks = rec, 1
		}
	}
	launch(r - acks)
	var speculate <-chan time.Time
	if launched < len(pn.remote) {
		timer := time.NewTimer(c.cfg.RequestTimeout / speculateFraction)
		defer timer.Stop()
		speculate = timer.C
	}
wait:
	for acks < r && pending > 0 {
		select {
		case rp := <-replies:
			pending--
			got = append(got, rp)
			if rp.err == nil {
				merged = vclock.Sync(merged, rp.rec)
				acks++
			} else {
				launch(1)
			}
		case <-speculate:
			speculate = nil
			launch(len(pn.remote))
		case <-ctx.Done():
			break wait
		case <-rctx.Done():
			break wait
		}
	}
	// The remaining replies, and the read repair, are collected in the background,
	// which then releases rctx (when it is not shared). got is the background's from
	// here on.
	if pending == 0 && !needsRepair(got) || !c.goBackground(func() {
		defer cancel()
		for ; pending > 0; pending-- {
			got = append(got, <-replies) // every replica call answers, by rctx's deadline at the latest
		}
		c.readRepair(key, got)
	}) {
		cancel()
	}
	if acks < r {
		c.stats.readQuorumFailures.Add(1)
		if err := ctx.Err(); err != nil {
			return vclock.Set{}, err
		}
		return vclock.Set{}, &QuorumError{Acks: acks, Need: r}
	}
	return merged, nil
}

// localGet is quorumGet for a key no other replica can answer (a single node, or
// every other replica down without a fallback): no replica call, no repair.
func (c *Coordinator) localGet(ctx context.Context, key []byte, self bool, r int) (vclock.Set, error) {
	var rec vclock.Set
	acks := 0
	if self {
		var err error
		if rec, _, err = c.store.Get(key); err == nil {
			acks = 1
		}
	}
	if acks >= r {
		return rec, nil
	}
	c.stats.readQuorumFailures.Add(1)
	if err := ctx.Err(); err != nil {
		return vclock.Set{}, err
	}
	return vclock.Set{}, &QuorumError{Acks: acks, Need: r}
}

// speculateFraction: a read that has not reached its quorum after RequestTimeout /
// speculateFraction asks the key's other replicas too.
const speculateFraction = 10

// needsRepair reports whether the successful replies disagree.
func needsRepair(got []reply) bool {
	var first *vclock.Set
	for i := range got {
		if got[i].err != nil {
			continue
		}
		if first == nil {
			first = &got[i].rec
		} else if !sameRecord(*first, got[i].rec) {
			return true
		}
	}
	return false
}

// readRepair writes the merge of every successful reply back to the replicas whose
// record differs from it. It runs in the background; MaxRepairs bounds how many run
// at once.
func (c *Coordinator) readRepair(key []byte, got []reply) {
	var merged vclock.Set
	n := 0
	for _, rp := range got {
		if rp.err == nil {
			merged = vclock.Sync(merged, rp.rec)
			n++
		}
	}
	if n < 2 || merged.Empty() {
		return
	}
	for _, rp := range got {
		if rp.err != nil || sameRecord(rp.rec, merged) {
			continue
		}
		select {
		case c.repairs <- struct{}{}:
		default:
			c.stats.repairsSkipped.Add(1)
			continue
		}
		c.repair(key, rp.t, merged)
		<-c.repairs
	}
}

// repair writes merged to one replica.
func (c *Coordinator) repair(key []byte, t target, merged vclock.Set) {
	c.stats.readRepairs.Add(1)
	if t.node == c.cfg.Node {
		if _, err := c.store.Update(key, mergeInto(merged)); err != nil {
			c.cfg.Logger.Warn("coordinator: local read repair", "err", err)
		}
		return
	}
	ctx, cancel := context.WithTimeout(c.base, c.cfg.RequestTimeout)
	defer cancel()
	if err := c.cfg.Peers.Write(ctx, t.node, WriteRequest{Key: key, Record: merged, HintFor: t.hintFor}); err != nil && !errors.Is(err, context.Canceled) {
		c.stats.replicaWriteFailures.Add(1)
	}
}
