package coordinator

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/ring"
	"github.com/dynakv/dynakv/storage"
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
	Read(ctx context.Context, node string, req peer.ReadRequest) (record.Record, error)
	// Write merges req.Record into node's replica (or its hints) durably.
	Write(ctx context.Context, node string, req peer.WriteRequest) error
	// Scan, Count and Flush serve the keyspace commands (keyspace.go).
	Scan(ctx context.Context, node string, req peer.ScanRequest) (peer.ScanReply, error)
	Count(ctx context.Context, node string, req peer.CountRequest) (int64, error)
	Flush(ctx context.Context, node string) error
}

// counters are the coordinator's event counts (Metrics).
type counters struct {
	readRepairs, repairsSkipped, hintsStored  atomic.Int64
	readQuorumFailures, writeQuorumFailures   atomic.Int64
	replicaWriteFailures, replicaReadFailures atomic.Int64
	fallbacks, slowReplicas                   atomic.Int64
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
	// Fallbacks counts replica calls sent to a spare fallback in place of one that
	// failed or was slow during its request; SlowReplicas the calls that had not
	// answered within ReplicaTimeout.
	Fallbacks    int64
	SlowReplicas int64
}

// Metrics returns a snapshot of the coordinator's counters.
func (c *Coordinator) Metrics() Metrics {
	s := &c.stats
	return Metrics{
		ReadRepairs: s.readRepairs.Load(), RepairsSkipped: s.repairsSkipped.Load(),
		HintsStored: s.hintsStored.Load(), ReadQuorumFailures: s.readQuorumFailures.Load(),
		WriteQuorumFailures: s.writeQuorumFailures.Load(), ReplicaWriteFailures: s.replicaWriteFailures.Load(),
		ReplicaReadFailures: s.replicaReadFailures.Load(), Fallbacks: s.fallbacks.Load(),
		SlowReplicas: s.slowReplicas.Load(),
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
	// spare are fallbacks of the key, live, not avoided and not in remote, in
	// preference order (at most n): a target that fails or is slow during the
	// request is replaced by one of them (takeSpare), which stands in for its
	// owner. With zones, the spares include one in each owner's zone where the
	// zone has one. The slice is the request's own: takeSpare removes from it.
	spare []string
	ring  *ring.Ring // the ring the plan was made from (nil: no cluster)
	p     int        // the key's partition
	// noHints: made with hints disabled (no fallbacks, no spares, no orphans):
	// a write of this plan keeps no hint for a replica that fails either.
	noHints bool
}

// plan picks the key's replicas (sloppy quorum) from the ring, liveness and the
// peers this node avoids (Config.Avoid): see planFor.
func (c *Coordinator) plan(key []byte) plan { return c.planHints(key, false) }

// planHints is plan; noHints plans a write that keeps no hint
// (WriteOptions.NoHints), as Config.DisableHints does.
func (c *Coordinator) planHints(key []byte, noHints bool) plan {
	rg := c.cfg.Cluster.Ring()
	n, _, _ := c.Quorum(rg.Len(), 0, 0)
	return planFor(rg, rg.Partition(key), n, c.cfg.Node, c.cfg.Cluster.Alive, c.cfg.Avoid.Avoided, c.cfg.DisableHints || noHints)
}

// planFor is plan's pure core for partition p of ring rg. n is the replication
// factor, self this node. Each of the first n members of p's preference list that
// is alive and not avoided is a target; one that is dead or avoided is replaced by
// a fallback, chosen by rg.Fallback among the usable ones (not self, alive, not
// avoided, not already a target of the plan), and tagged with a hint naming the
// owner. So a fallback comes from the owner's zone when the zone has a usable one,
// and from the next zone in preference order otherwise: first every owner that can
// have one in its zone gets it, in preference order, then the others take what is
// left, so one owner's out-of-zone fallback never takes the only one another
// owner's zone has. Without zones (one zone), that is the Dynamo paper's rule: the
// next usable fallback in order. With no usable fallback left, an owner that is
// only avoided is asked anyway (avoidance is advice), and a dead one is an orphan.
// Up to n of the usable fallbacks left over are the spares, one in each owner's
// zone first. With hints disabled there are no fallbacks: every live owner is
// asked, avoided or not.
func planFor(rg *ring.Ring, p, n int, self string, alive, avoided func(string) bool, disableHints bool) plan {
	pl := rg.PreferenceList(p)
	if len(pl) == 0 {
		return plan{n: 1, self: true}
	}
	n = min(n, len(pl))
	pn := plan{n: n, ring: rg, p: p, noHints: disableHints}
	if n > 1 { // room for every target and spare: two allocations per request
		pn.remote = make([]target, 0, n)
		if !disableHints {
			pn.spare = make([]string, 0, n)
		}
	}
	zoned := rg.NumZones() > 1
	// An owner waiting for a fallback is a target with hintFor set and node
	// empty (dead) or the owner itself (alive but avoided: asked if none is left).
	waiting := 0
	for _, node := range pl[:n] {
		switch {
		case node == self:
			pn.self = true
		case !alive(node):
			if !disableHints {
				pn.remote = append(pn.remote, target{hintFor: node})
				waiting++
			}
		case disableHints || !avoided(node):
			pn.remote = append(pn.remote, target{node: node})
		default:
			pn.remote = append(pn.remote, target{node: node, hintFor: node})
			waiting++
		}
	}
	if disableHints {
		return pn
	}
	usable := func(node string) bool {
		return node != self && !pn.targets(node) && !slices.Contains(pn.spare, node) && alive(node) && !avoided(node)
	}
	if waiting > 0 {
		// With zones, a first pass takes fallbacks in the owners' own zones only.
		for pass := range 2 {
			if pass == 1 && !zoned {
				break
			}
			for i := range pn.remote {
				t := &pn.remote[i]
				if t.hintFor == "" || t.node != "" && t.node != t.hintFor {
					continue
				}
				fb := rg.Fallback(p, n, t.hintFor, usable)
				if fb == "" || pass == 0 && !rg.SameZone(fb, t.hintFor) {
					continue
				}
				t.node = fb
			}
		}
		k := 0
		for _, t := range pn.remote {
			switch {
			case t.hintFor == "" || t.node != "" && t.node != t.hintFor:
				pn.remote[k] = t
				k++
			case t.node != "": // avoided, no fallback: asked anyway
				pn.remote[k] = target{node: t.node}
				k++
			default:
				pn.orphans = append(pn.orphans, t.hintFor)
			}
		}
		pn.remote = pn.remote[:k]
	}
	pn.fillSpares(pl[n:], usable)
	if zoned && !spreadSpares(rg, pl[:n], self, pn.spare) {
		// A spare in each owner's zone first (the one Fallback picks there),
		// then the next usable ones, in preference order.
		pn.spare = pn.spare[:0]
		for _, owner := range pl[:n] {
			if owner == self {
				continue
			}
			if fb := rg.Fallback(p, n, owner, usable); fb != "" && rg.SameZone(fb, owner) {
				pn.spare = append(pn.spare, fb)
			}
		}
		pn.fillSpares(pl[n:], usable)
		slices.SortFunc(pn.spare, func(a, b string) int {
			return cmp.Compare(slices.Index(pl, a), slices.Index(pl, b))
		})
	}
	return pn
}

// fillSpares appends the usable fallbacks, in order, until the plan has n spares.
func (pn *plan) fillSpares(fallbacks []string, usable func(string) bool) {
	for _, node := range fallbacks {
		if len(pn.spare) == pn.n {
			return
		}
		if usable(node) {
			pn.spare = append(pn.spare, node)
		}
	}
}

// spreadSpares reports whether spares holds, in every zone, at least as many
// nodes as owners has in it (other than self): then the first spares in order
// already include the one in each owner's zone that planFor wants, and it needs
// no search. Its common case: with every node alive, the fallbacks after the
// first N are the next round of the ring's deal over the zones.
func spreadSpares(rg *ring.Ring, owners []string, self string, spares []string) bool {
	var need [8]int // per owner zone (by owner), owners minus spares in it
	if len(owners) > len(need) {
		return false
	}
	var zones [8]int
	k := 0
	for _, o := range owners {
		if o != self {
			zones[k], _ = rg.ZoneIndex(o)
			k++
		}
	}
	for i := range k {
		for j := range k {
			if zones[j] == zones[i] {
				need[i]++
			}
		}
	}
	for _, s := range spares {
		z, _ := rg.ZoneIndex(s)
		for i := range k {
			if zones[i] == z {
				need[i]--
			}
		}
	}
	for i := range k {
		if need[i] > 0 {
			return false
		}
	}
	return true
}

// targets reports whether node is one of the plan's targets.
func (pn *plan) targets(node string) bool {
	for _, t := range pn.remote {
		if t.node == node {
			return true
		}
	}
	return false
}

// spares are the spares a request has left: a target of the request that fails
// is replaced by one of them (take).
type spares struct {
	names []string // the plan's spares not taken yet, in preference order
	ring  *ring.Ring
	p, n  int
}

// spares returns the plan's spares, for one request to take from.
func (pn *plan) spares() spares {
	return spares{names: pn.spare, ring: pn.ring, p: pn.p, n: pn.n}
}

// take removes and returns the spare that stands in for owner: by Ring.Fallback's
// rule, the first in preference order in owner's zone, else the first in
// preference order. Without zones it is the first one left.
func (s *spares) take(owner string) (string, bool) {
	if len(s.names) == 0 {
		return "", false
	}
	names := s.names
	fb := s.ring.Fallback(s.p, s.n, owner, func(node string) bool { return slices.Contains(names, node) })
	i := slices.Index(names, fb)
	if i < 0 {
		return "", false
	}
	s.names = slices.Delete(names, i, i+1)
	return fb, true
}

// requestContext returns the context replica calls run under: the request's
// deadline (or RequestTimeout, whichever is earlier), but not its cancellation, so
// replica writes go on after the client hung up or the quorum answered; Close
// cancels it. Requests without an earlier deadline of their own share one context
// per RequestTimeout/64 (their deadline is at most that much later than asked),
// which spares each of them a timer.
func (c *Coordinator) requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	rctx, cancel := c.contextUntil(c.requestDeadline(ctx))
	if cancel == nil {
		return rctx, func() {}
	}
	return rctx, cancel
}

// deadline is when a request must be over, fixed when it begins, before it reads
// anything: every replica call of the request (writes, their replacements, read
// repairs) ends by then, or up to RequestTimeout/64 later when its context is
// shared (own false); a hint of the request's record is stored only before
// RequestTimeout/32 after it (hintsUntil), which leaves a call that timed out at
// its context's end RequestTimeout/64 to keep its hint. Tombstone purge relies on
// it (repair/purge.go): no data a request read is carried to a replica, or kept
// as a hint, later than RequestTimeout + RequestTimeout/32 after the request
// began.
type deadline struct {
	at  time.Time
	own bool // the caller's context's, exact; otherwise RequestTimeout from the start
}

// hintsUntil returns the time from which a request with deadline dl stores no
// hint (see deadline).
func (c *Coordinator) hintsUntil(dl deadline) time.Time {
	return dl.at.Add(c.cfg.RequestTimeout / 32)
}

// requestDeadline returns the deadline of a request beginning now: ctx's, or
// RequestTimeout from now, whichever is earlier.
func (c *Coordinator) requestDeadline(ctx context.Context) deadline {
	at := time.Now().Add(c.cfg.RequestTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(at) {
		return deadline{at: d, own: true}
	}
	return deadline{at: at}
}

// contextUntil returns a context of the coordinator's (not the request's
// cancellation) that ends at dl: exactly at the caller's own deadline, with a
// cancel to release it, or within RequestTimeout/64 after it, shared with other
// requests, with a nil cancel (there is nothing to release).
func (c *Coordinator) contextUntil(dl deadline) (context.Context, context.CancelFunc) {
	if dl.own {
		return context.WithDeadline(c.base, dl.at)
	}
	return c.deadlines.get(c.base, dl.at, c.cfg.RequestTimeout/64), nil
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
func (c *Coordinator) quorumModify(ctx context.Context, key []byte, fn ModifyFunc, opt WriteOptions) (WriteResult, error) {
	// One deadline for the read and the replica writes: what the read found is
	// carried by the writes, which must not outlive the request it was read in.
	dl := c.requestDeadline(ctx)
	pn := c.planHints(key, opt.NoHints)
	_, r, w := c.Quorum(pn.n, 0, opt.W)
	var seen record.Record
	// A coordinator that is not one of the key's replicas (none of them answered
	// the front door) holds no copy worth a context: it reads the replicas first.
	if (opt.ReadFirst || !pn.self) && pn.n > 1 {
		var err error
		if seen, err = c.quorumGetBy(ctx, key, r, dl); err != nil {
			return WriteResult{}, err
		}
	}
	// How the local write becomes durable (see the package doc on durability).
	remote := len(pn.remote) > 0
	synced := remote && c.cfg.SyncIsCheap || !remote && opt.Durability == DurableOnReturn
	rec, wrote, err := c.modifyLocal(key, seen, fn, synced)
	if err != nil {
		return WriteResult{}, err
	}
	res := WriteResult{Record: rec, Durable: wrote && synced}
	if !wrote {
		return c.settle(res, opt)
	}
	along, err := c.replicate(ctx, key, rec, pn, w, !synced, dl, nil)
	res.Durable = res.Durable || along
	if err != nil {
		return res, err
	}
	return c.settle(res, opt)
}

// replicate sends rec to the key's other replicas and waits for w acknowledgements,
// counting this node's own write when it is one of the key's replicas. A replica
// that fails, or (while the quorum is not reached) has not answered after
// ReplicaTimeout, is replaced at once by a spare of the plan (spares.take: in its
// owner's zone first), standing in
// for the same owner, whose acknowledgement counts for that owner; a slow call
// goes on, and if it succeeds later it adds a copy but no acknowledgement (each
// owner counts once). A call that fails after the request was answered replaces
// itself, in its goroutine. Replicas that fail, and owners down without a
// fallback, get a hint stored here, unless the plan keeps none (pn.noHints).
//
// With syncLocal (the local write was applied without a WAL sync), the local sync
// runs alongside the replica writes and counts as this node's acknowledgement when
// done; replicate reports whether it finished before the answer.
//
// Every replica call runs under a context ending at dl, the request's deadline,
// and no hint is stored after hintsUntil (see deadline): rec holds data the
// request read, which must not travel later (a hint the node could not store by
// then, stalled, is left to anti-entropy and read repair).
//
// With via (ModifyBatch), the first call to each planned replica joins via's
// message to that node instead of going alone, and replicate tells via it is
// ready once it has made them; replacements go alone.
func (c *Coordinator) replicate(ctx context.Context, key []byte, rec record.Record, pn plan, w int, syncLocal bool, dl deadline, via *batchSlot[peer.WriteRequest, error]) (localSynced bool, _ error) {
	told := false // via was told replicate is ready
	ready := func() {
		if via != nil && !told {
			told = true
			via.ready()
		}
	}
	defer ready() // on the early return
	rctx, cancel := c.contextUntil(dl)
	until := c.hintsUntil(dl)
	keepHint := func(owner string) {
		if !pn.noHints {
			c.storeHint(owner, key, rec, until)
		}
	}
	for _, owner := range pn.orphans {
		keepHint(owner)
	}
	acks := 0
	if pn.self {
		acks = 1
	}
	if acks >= w && len(pn.remote) == 0 {
		if cancel != nil {
			cancel()
		}
		return false, nil
	}
	// The calls below may outlive the request (replica writes past W, their
	// replacements, hints): they keep copies of the key and the record, never
	// the caller's memory (a front end's input buffer, reused once it returns).
	recEnc := rec.AppendBinary(nil)
	key, rec = ownCopy(key, rec, recEnc)
	// An owner acknowledges once: a slow replica that succeeds after its
	// replacement did (or the other way round) adds a copy, not an ack, so that W
	// acknowledgements are always W of the key's owners (or hints kept for them).
	var acked ownerSet
	if pn.self {
		acked.add(c.cfg.Node)
	}
	rd := &writeRound{spare: pn.spares(), results: make(chan outcome, len(pn.remote)+len(pn.spare)+1)}
	results := rd.results
	pending := 0
	localDone := make(chan bool, 1)
	if pn.self && syncLocal && c.goBackground(func() {
		ok := c.store.Sync() == nil
		localDone <- ok
		results <- outcome{i: -1, ok: ok}
	}) {
		acks, pending = 0, 1
		acked = ownerSet{}
	}
	request := func(t target) peer.WriteRequest {
		return peer.WriteRequest{Key: key, Record: rec, HintFor: t.hintFor}.WithRecordEncoding(recEnc)
	}
	// write makes the call to t: alone, or, given joined, as part of via's
	// message, whose outcome it waits for.
	write := func(t target, joined <-chan error) bool {
		start := time.Now()
		var err error
		if joined != nil {
			select {
			case err = <-joined:
			case <-rctx.Done():
				err = rctx.Err()
			}
		} else {
			err = c.cfg.Peers.Write(rctx, t.node, request(t))
		}
		if err != nil {
			c.stats.replicaWriteFailures.Add(1)
			c.peerFailed(t.node, err, time.Since(start))
			keepHint(t.owner())
		}
		return err == nil
	}
	var calls replicaCalls
	send := func(t target, first bool) {
		i := calls.add(t, c.cfg.ReplicaTimeout)
		var joined <-chan error
		if first && via != nil {
			joined = via.add(t.node, request(t), dl)
		}
		if c.goBackground(func() {
			if write(t, joined) {
				results <- outcome{i: i, ok: true}
				return
			}
			if rd.report(i) {
				return // the wait loop replaces it
			}
			// The request was answered: the call replaces itself (unless the wait
			// loop did, when it was slow).
			for rd.claim(i) && rctx.Err() == nil {
				node, ok := rd.takeSpare(t.owner())
				if !ok {
					break
				}
				c.stats.fallbacks.Add(1)
				t = target{node: node, hintFor: t.owner()}
				if write(t, nil) {
					break
				}
				rd.unclaim(i) // failed too: the next spare stands in
			}
			results <- outcome{i: i}
		}) {
			pending++
		} else {
			calls[i].done = true
			keepHint(t.owner()) // closing: the replica write is never sent
		}
	}
	replace := func(i int) {
		if rctx.Err() != nil || !rd.claim(i) {
			return
		}
		node, ok := rd.takeSpare(calls[i].t.owner())
		if !ok {
			return
		}
		c.stats.fallbacks.Add(1)
		send(target{node: node, hintFor: calls[i].t.owner()}, false)
	}
	handle := func(o outcome) {
		pending--
		owner := c.cfg.Node // the local sync's
		if o.i >= 0 {
			calls[o.i].done = true
			owner = calls[o.i].t.owner()
		}
		switch {
		case o.ok:
			if acked.add(owner) {
				acks++
			}
		case o.i >= 0:
			replace(o.i)
		}
	}
	for _, t := range pn.remote {
		send(t, true)
	}
	ready()
	var slow replicaTimer
wait:
	for acks < w && pending > 0 {
		select {
		case o := <-results:
			handle(o)
		case <-slow.arm(calls):
			for _, i := range calls.overdue(time.Now()) {
				c.avoidSlow(calls[i].t.node)
				replace(i)
			}
		case <-ctx.Done():
			break wait
		case <-rctx.Done():
			break wait
		}
	}
	slow.stop()
	// Failures reported before the calls learnt that the request is answered are
	// replaced here; later ones replace themselves.
	for _, o := range rd.answer() {
		handle(o)
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

// ownCopy returns copies of key and of rec, given rec's encoding enc, which
// share no memory with the caller's: what a request's background work keeps.
func ownCopy(key []byte, rec record.Record, enc []byte) ([]byte, record.Record) {
	own, err := record.Decode(enc) // a fresh copy; an encoding of ours decodes
	if err != nil {
		own = rec // cannot happen: keep the record rather than lose the write
	}
	return bytes.Clone(key), own
}

// ownerSet is the owners a request has counted toward its quorum (a handful).
type ownerSet []string

// add adds owner and reports whether it was not there yet.
func (s *ownerSet) add(owner string) bool {
	if slices.Contains(*s, owner) {
		return false
	}
	*s = append(*s, owner)
	return true
}

// outcome is one replica call's result in a write: of calls[i], or of the local
// sync (i = -1).
type outcome struct {
	i  int
	ok bool
}

// writeRound is what a write's replica calls share with its wait loop: the spares
// left, and whether the loop still replaces failed calls.
type writeRound struct {
	results chan outcome // room for every call's outcome: sends never block

	mu       sync.Mutex
	answered bool // the wait loop is done
	spare    spares
	replaced map[int]bool // calls a spare was sent for
}

// claim marks call i as replaced and reports whether it was not already.
func (rd *writeRound) claim(i int) bool {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.replaced[i] {
		return false
	}
	if rd.replaced == nil {
		rd.replaced = map[int]bool{}
	}
	rd.replaced[i] = true
	return true
}

// unclaim undoes claim.
func (rd *writeRound) unclaim(i int) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	delete(rd.replaced, i)
}

// takeSpare returns the spare that stands in for owner, if any is left.
func (rd *writeRound) takeSpare(owner string) (string, bool) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	return rd.spare.take(owner)
}

// report sends call i's failure to the wait loop and reports true, unless the
// loop is done (then the call replaces itself).
func (rd *writeRound) report(i int) bool {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.answered {
		return false
	}
	rd.results <- outcome{i: i}
	return true
}

// answer marks the wait loop done and returns the outcomes sent before.
func (rd *writeRound) answer() []outcome {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	rd.answered = true
	var out []outcome
	for {
		select {
		case o := <-rd.results:
			out = append(out, o)
		default:
			return out
		}
	}
}

// replicaCall is one replica call of a request, as the request's wait loop sees it.
type replicaCall struct {
	t        target
	due      time.Time // when it counts as slow
	done     bool      // answered (or never sent)
	slow     bool      // found overdue (and its node avoided)
	replaced bool      // another replica was asked in its place (reads; writes: writeRound)
}

type replicaCalls []replicaCall

// add records a call to t made now, due within timeout, and returns its index.
func (cs *replicaCalls) add(t target, timeout time.Duration) int {
	*cs = append(*cs, replicaCall{t: t, due: time.Now().Add(timeout)})
	return len(*cs) - 1
}

// overdue marks slow and returns the unanswered calls due by now.
func (cs replicaCalls) overdue(now time.Time) []int {
	var out []int
	for i := range cs {
		if cl := &cs[i]; !cl.done && !cl.slow && !now.Before(cl.due) {
			cl.slow = true
			out = append(out, i)
		}
	}
	return out
}

// replicaTimer fires when the earliest unanswered call of a request becomes slow.
type replicaTimer struct {
	t *time.Timer
}

// arm sets the timer for the earliest unanswered, not yet slow call and returns
// its channel; nil (never ready) when there is none.
func (rt *replicaTimer) arm(cs replicaCalls) <-chan time.Time {
	var next time.Time
	for _, cl := range cs {
		if !cl.done && !cl.slow && (next.IsZero() || cl.due.Before(next)) {
			next = cl.due
		}
	}
	if next.IsZero() {
		rt.stop()
		return nil
	}
	if rt.t == nil {
		rt.t = time.NewTimer(time.Until(next))
	} else {
		rt.t.Reset(time.Until(next))
	}
	return rt.t.C
}

func (rt *replicaTimer) stop() {
	if rt.t != nil {
		rt.t.Stop()
	}
}

// peerFailed records a replica call's failure in the avoidance view: a peer that
// refused, reset or answered with an error, or that did not answer within
// ReplicaTimeout (a call cut shorter by the client's own deadline says nothing
// about the peer), is avoided for a while.
func (c *Coordinator) peerFailed(node string, err error, took time.Duration) {
	if !c.cfg.PeerFailed(err) || errors.Is(err, context.DeadlineExceeded) && took < c.cfg.ReplicaTimeout {
		return
	}
	if c.cfg.Avoid.Failed(node) {
		c.cfg.Logger.Warn("coordinator: replica failed; avoiding it", "replica", node, "err", err)
	}
}

// avoidSlow avoids a peer that has not answered a call within ReplicaTimeout.
func (c *Coordinator) avoidSlow(node string) {
	c.stats.slowReplicas.Add(1)
	if c.cfg.Avoid.Failed(node) {
		c.cfg.Logger.Warn("coordinator: replica did not answer in time; avoiding it", "replica", node, "within", c.cfg.ReplicaTimeout)
	}
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
// deliver when owner is back, unless the request's deadline until (zero: none)
// has passed when the hint's lock is taken: a hint is a record on its way to a
// replica, and tombstone purge assumes none is kept later than its request's
// deadline. Failures are logged: the write itself was already decided by the
// quorum, and anti-entropy is the next line of defence.
func (c *Coordinator) storeHint(owner string, key []byte, rec record.Record, until time.Time) {
	if owner == c.cfg.Node || c.cfg.DisableHints {
		return
	}
	release, err := c.admitWrite()
	if err != nil {
		return // sealed: the hint is not kept (the owner's replica write failed)
	}
	defer release()
	merge := mergeInto(rec)
	stored := false
	_, err = c.store.UpdateHint(owner, key, func(cur record.Record, found bool) (record.Record, error) {
		if !until.IsZero() && !time.Now().Before(until) {
			return record.Record{}, errNoChange
		}
		next, err := merge(cur, found)
		stored = err == nil
		return next, err
	})
	if err != nil {
		c.cfg.Logger.Warn("coordinator: store hint", "owner", owner, "err", err)
		return
	}
	if stored {
		c.stats.hintsStored.Add(1)
	}
}

// mergeWhileInTime is mergeInto for a request with ctx's deadline: past it (checked
// under the key's lock, when the merge is decided) it changes nothing and fails
// with ErrLate.
func mergeWhileInTime(ctx context.Context, rec record.Record) storage.UpdateFunc {
	merge := mergeInto(rec)
	return func(cur record.Record, found bool) (record.Record, error) {
		if err := late(ctx, time.Time{}); err != nil {
			return record.Record{}, err
		}
		return merge(cur, found)
	}
}

// mergeInto returns the storage update that merges rec into the stored record,
// leaving it untouched when it already holds everything rec holds.
func mergeInto(rec record.Record) func(cur record.Record, found bool) (record.Record, error) {
	return func(cur record.Record, found bool) (record.Record, error) {
		if !found {
			return rec, nil
		}
		next, err := record.SyncStrings(cur, rec)
		if err != nil {
			return record.Record{}, err
		}
		if sameRecord(next, cur) {
			return record.Record{}, errNoChange
		}
		return next, nil
	}
}

var errNoChange = storage.ErrNoChange

// sameRecord reports whether two records are identical.
func sameRecord(a, b record.Record) bool {
	var ab, bb [256]byte
	return bytes.Equal(a.AppendBinary(ab[:0]), b.AppendBinary(bb[:0]))
}

// reply is one replica's answer to a read: of the read's calls[i], or of the local
// replica (i = -1).
type reply struct {
	i   int
	t   target
	rec record.Record
	err error
}

// quorumGet reads key from its replicas and returns the merge of the first r
// answers. It asks only as many replicas as the quorum needs (this node's own
// replica first), and more when one fails or when they are slow to answer
// (speculate): a read costs R replica reads, not N. A replica that fails or has not
// answered after ReplicaTimeout, once every planned replica was asked, is replaced
// by a spare of the plan (spares.take: in its owner's zone first), read for the same owner (its own record merged
// with the hint it keeps); each owner counts once toward R. When every replica asked has answered (or the request
// deadline passed), those that returned less than the merge of all answers get it
// written back (read repair); replicas the read did not ask are left to hinted
// handoff and anti-entropy.
//
// Every replica call, and every read repair, runs under one context ending at
// the read's deadline (see deadline): a repair never carries what the read found
// past it, however late the last reply came.
func (c *Coordinator) quorumGet(ctx context.Context, key []byte, r int) (record.Record, error) {
	return c.quorumGetBy(ctx, key, r, c.requestDeadline(ctx))
}

// quorumGetBy is quorumGet within the deadline dl of the request it is part of.
func (c *Coordinator) quorumGetBy(ctx context.Context, key []byte, r int, dl deadline) (record.Record, error) {
	pn := c.plan(key)
	return c.readQuorum(ctx, key, pn, r, dl, c.readLocal(key, pn.self), nil)
}

// localRead is this node's own replica's answer to a quorum read: ok when the
// node is one of the key's replicas and its store read the key.
type localRead struct {
	rec record.Record
	ok  bool
}

// readLocal reads key from this node's replica when the node is one of the
// key's replicas (self).
func (c *Coordinator) readLocal(key []byte, self bool) localRead {
	if !self {
		return localRead{}
	}
	rec, _, err := c.store.Get(key)
	return localRead{rec: rec, ok: err == nil}
}

// readQuorum is quorumGetBy for the plan pn, with this node's replica read
// already (local). With via (GetBatch), the calls of the read's first launch
// (the R it needs beyond its own replica) join via's message to their node
// instead of going alone, and readQuorum tells via it is ready once it has made
// them; the calls it makes later (speculation, replacements) go alone.
func (c *Coordinator) readQuorum(ctx context.Context, key []byte, pn plan, r int, dl deadline, local localRead, via *batchSlot[peer.ReadRequest, peer.ReadResult]) (record.Record, error) {
	told := via == nil // via was told readQuorum is ready
	ready := func() {
		if !told {
			told = true
			via.ready()
		}
	}
	defer ready() // on the early return
	_, r, _ = c.Quorum(pn.n, r, 0)
	if len(pn.remote) == 0 {
		return c.localGet(ctx, local, r)
	}
	// The calls, and the read repair, may outlive the request: they keep a copy
	// of the key, never the caller's memory.
	key = bytes.Clone(key)
	replies := make(chan reply, len(pn.remote)+len(pn.spare))
	rctx, cancel := c.contextUntil(dl)
	if cancel == nil {
		cancel = func() {}
	}
	var calls replicaCalls
	pending := 0
	joining := via != nil // the first launch's calls join via
	call := func(t target) {
		i := calls.add(t, c.cfg.ReplicaTimeout)
		req := peer.ReadRequest{Key: key, HintFor: t.hintFor}
		var joined <-chan peer.ReadResult
		if joining {
			joined = via.add(t.node, req, dl)
		}
		if c.goBackground(func() {
			start := time.Now()
			var rec record.Record
			var err error
			if joined != nil {
				select {
				case res := <-joined:
					rec, err = res.Record, res.Err
				case <-rctx.Done():
					err = rctx.Err()
				}
			} else {
				rec, err = c.cfg.Peers.Read(rctx, t.node, req)
			}
			if err != nil {
				c.stats.replicaReadFailures.Add(1)
				c.peerFailed(t.node, err, time.Since(start))
			}
			replies <- reply{i: i, t: t, rec: rec, err: err}
		}) {
			pending++
		} else {
			calls[i].done = true
		}
	}
	launched := 0 // of pn.remote
	launch := func(k int) {
		for ; k > 0 && launched < len(pn.remote); launched++ {
			if call(pn.remote[launched]); calls[len(calls)-1].done {
				continue
			}
			k--
		}
	}
	spare := pn.spares()
	// replace asks one more replica in place of calls[i]: the next planned one,
	// else a spare, for the same owner.
	replace := func(i int) {
		if calls[i].replaced {
			return
		}
		if launched < len(pn.remote) {
			calls[i].replaced = true
			launch(1)
			return
		}
		node, ok := spare.take(calls[i].t.owner())
		if !ok {
			return
		}
		calls[i].replaced = true
		c.stats.fallbacks.Add(1)
		call(target{node: node, hintFor: calls[i].t.owner()})
	}
	var got []reply
	var merged record.Record
	acks := 0
	var acked ownerSet // an owner answers once, whoever answers for it (see replicate)
	if local.ok {
		got = append(got, reply{i: -1, t: target{node: c.cfg.Node}, rec: local.rec})
		merged, acks = local.rec, 1
		acked.add(c.cfg.Node)
	}
	launch(r - acks)
	joining = false
	ready()
	var speculate <-chan time.Time
	if launched < len(pn.remote) {
		timer := time.NewTimer(c.cfg.RequestTimeout / speculateFraction)
		defer timer.Stop()
		speculate = timer.C
	}
	var slow replicaTimer
	defer slow.stop()
wait:
	for acks < r && pending > 0 {
		select {
		case rp := <-replies:
			pending--
			calls[rp.i].done = true
			if rp.err == nil {
				// A typed record is not merged before issue 20's S3: its reply
				// counts as a failed one.
				var m record.Record
				if m, rp.err = record.SyncStrings(merged, rp.rec); rp.err == nil {
					merged = m
				}
			}
			got = append(got, rp)
			if rp.err == nil {
				if acked.add(rp.t.owner()) {
					acks++
				}
			} else {
				replace(rp.i)
			}
		case <-speculate:
			speculate = nil
			launch(len(pn.remote))
		case <-slow.arm(calls):
			for _, i := range calls.overdue(time.Now()) {
				c.avoidSlow(calls[i].t.node)
				replace(i)
			}
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
		c.readRepair(rctx, key, got)
	}) {
		cancel()
	}
	if acks < r {
		c.stats.readQuorumFailures.Add(1)
		if err := ctx.Err(); err != nil {
			return record.Record{}, err
		}
		return record.Record{}, &QuorumError{Acks: acks, Need: r}
	}
	if c.readObserver != nil {
		c.readObserver(key, r, acked, pn.ring.Replicas(pn.p, pn.n))
	}
	return merged, nil
}

// localGet is quorumGet for a key no other replica can answer (a single node, or
// every other replica down without a fallback), given this node's answer: no
// replica call, no repair.
func (c *Coordinator) localGet(ctx context.Context, local localRead, r int) (record.Record, error) {
	acks := 0
	if local.ok {
		acks = 1
	}
	if acks >= r {
		return local.rec, nil
	}
	c.stats.readQuorumFailures.Add(1)
	if err := ctx.Err(); err != nil {
		return record.Record{}, err
	}
	return record.Record{}, &QuorumError{Acks: acks, Need: r}
}

// speculateFraction: a read that has not reached its quorum after RequestTimeout /
// speculateFraction asks the key's other replicas too.
const speculateFraction = 10

// needsRepair reports whether the successful replies disagree.
func needsRepair(got []reply) bool {
	var first *record.Record
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
// record differs from it, all at once, each under ctx (the read's replica
// context: a repair carries what the read found, and ends by the read's
// deadline), and returns when they are done. It runs in the background;
// MaxRepairs bounds how many run at once.
func (c *Coordinator) readRepair(ctx context.Context, key []byte, got []reply) {
	var merged record.Record
	n := 0
	for _, rp := range got {
		if rp.err == nil {
			m, err := record.SyncStrings(merged, rp.rec)
			if err != nil {
				return // a typed record: not repaired before issue 20's S3
			}
			merged = m
			n++
		}
	}
	if n < 2 || merged.Empty() {
		return
	}
	var wg sync.WaitGroup
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
		wg.Add(1)
		if !c.goBackground(func() {
			defer wg.Done()
			c.repair(ctx, key, rp.t, merged)
			<-c.repairs
		}) {
			wg.Done()
			<-c.repairs
		}
	}
	wg.Wait()
}

// repair writes merged to one replica under ctx; the local replica only while
// ctx's deadline has not passed, checked under the key's lock.
func (c *Coordinator) repair(ctx context.Context, key []byte, t target, merged record.Record) {
	c.stats.readRepairs.Add(1)
	if t.node == c.cfg.Node {
		release, err := c.admitWrite()
		if err != nil {
			return // sealed: this node takes no copy any more
		}
		defer release()
		merge := mergeInto(merged)
		if _, err := c.store.Update(key, func(cur record.Record, found bool) (record.Record, error) {
			if late(ctx, time.Time{}) != nil {
				return record.Record{}, errNoChange
			}
			return merge(cur, found)
		}); err != nil {
			c.cfg.Logger.Warn("coordinator: local read repair", "err", err)
		}
		return
	}
	if err := c.cfg.Peers.Write(ctx, t.node, peer.WriteRequest{Key: key, Record: merged, HintFor: t.hintFor}); err != nil && !errors.Is(err, context.Canceled) {
		c.stats.replicaWriteFailures.Add(1)
	}
}
