package coordinator

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/storage"
)

// Write batches (issue 19, S9): an event loop collects the plain writes of an
// iteration and hands them to ModifyBatch at once, which shares what the writes
// can share (one local storage batch, one message per replica node) and keeps
// apart what each write must decide for itself (its plan, deadline, quorum,
// spares and hints).

// BatchWrite is one write of a ModifyBatch: Modify's arguments.
type BatchWrite struct {
	Key []byte
	Fn  ModifyFunc
	Opt WriteOptions
	// Deadline, when not zero, is this write's own deadline, if earlier than the
	// batch context's: the write is ErrLate, having written nothing here, once
	// it has passed, and its replica calls end by it.
	Deadline time.Time
}

// BatchResult is one write's outcome: what Modify would have returned.
type BatchResult struct {
	WriteResult
	Err error
}

// BatchWriter is implemented by Peers that carry several replica writes bound
// for one node in one message (RemotePeers: peer.MsgWriteBatch) and return each
// write's outcome. ModifyBatch uses it; with Peers that lack it, the writes of
// a batch to one node are separate calls (Peers.Write), made at once.
type BatchWriter interface {
	WriteBatch(ctx context.Context, node string, reqs []peer.WriteRequest) []error
}

var _ BatchWriter = (*remotePeers)(nil)

// ModifyBatch runs Modify for every write of writes, as if one after another in
// order (a key written twice sees its earlier write), and returns their
// outcomes in the same order. What it shares between the writes, and only that:
//
//   - the local writes are applied with one storage batch (Store.UpdateBatch:
//     one commit, synced, for all), after the quorum reads of the writes that
//     read first (opt.ReadFirst, or a coordinator outside the key's N), which
//     run at once as one read batch (see GetBatch);
//   - the first replica call of every write to one node goes in one message to
//     that node (BatchWriter), all nodes' messages at once.
//
// Everything else is each write's own, exactly as in Modify: its plan
// (preference list, fallbacks, spares, NoHints), its deadline (its context's,
// Deadline, or RequestTimeout after ModifyBatch began) and ErrLate, the seal
// (ErrSealed), W acknowledgements from distinct owners, a spare taken for it
// when one of its calls fails or is slow (a call alone), the hints kept for
// it, its QuorumError. So one write's failure (its fn's error, its read or
// quorum failing, a peer down for its key) never changes another's outcome;
// the one shared fate is the local commit, which fails every write in it, as
// a group commit does.
//
// The local batch is committed with its sync before any record leaves, which
// is Modify's rule with Config.SyncIsCheap; so every write that succeeded, or
// decided to write nothing, is durable (Durable), whatever its
// WriteOptions.Durability. With one write's message bound for a node while
// another write to it has an earlier deadline, the message ends by the earlier
// one: a message never carries a record past its request's deadline.
func (c *Coordinator) ModifyBatch(ctx context.Context, writes []BatchWrite) []BatchResult {
	out := make([]BatchResult, len(writes))
	es := make([]batchEntry, len(writes))
	defer func() {
		for i := range es {
			if es[i].cancel != nil {
				es[i].cancel()
			}
		}
	}()
	for i := range writes {
		out[i].Err = c.planBatchWrite(ctx, &writes[i], &es[i])
	}
	c.readFirst(es, out)
	c.applyBatch(es, out)
	c.replicateBatch(es, out)
	return out
}

// batchEntry is one write of a ModifyBatch as it goes.
type batchEntry struct {
	ctx    context.Context // the batch's, or with the write's own Deadline
	cancel context.CancelFunc
	key    []byte
	fn     ModifyFunc // refuses to decide once the write is late
	dl     deadline
	pn     plan
	r, w   int
	read   bool          // the key is read from R replicas first
	seen   record.Record // what that read found
	wrote  bool          // fn decided to write
	rec    record.Record // the record as stored (as found, without a write)
}

// planBatchWrite prepares w's entry as Modify and quorumModify begin a write:
// the deadline check, the plan, the quorum and whether it reads first.
func (c *Coordinator) planBatchWrite(ctx context.Context, w *BatchWrite, e *batchEntry) error {
	e.ctx, e.key = ctx, w.Key
	if !w.Deadline.IsZero() {
		if d, ok := ctx.Deadline(); !ok || w.Deadline.Before(d) {
			e.ctx, e.cancel = context.WithDeadline(ctx, w.Deadline)
		}
	}
	if err := late(e.ctx, time.Time{}); err != nil {
		return err
	}
	if c.cfg.Cluster == nil {
		e.pn, e.w = plan{n: 1, self: true}, 1
		e.fn = c.beforeDeadline(e.ctx, w.Fn, 0)
		return nil
	}
	e.fn = c.beforeDeadline(e.ctx, w.Fn, c.cfg.RequestTimeout)
	e.dl = c.requestDeadline(e.ctx)
	e.pn = c.planHints(w.Key, w.Opt.NoHints)
	_, e.r, e.w = c.Quorum(e.pn.n, 0, w.Opt.W)
	e.read = (w.Opt.ReadFirst || !e.pn.self) && e.pn.n > 1
	return nil
}

// readFirst runs the quorum reads of the writes that read first, at once, as
// one read batch (GetBatch: one local pass, one message per node), each within
// its write's deadline.
func (c *Coordinator) readFirst(es []batchEntry, out []BatchResult) {
	var reads []quorumRead
	var idx []int
	for i := range es {
		if e := &es[i]; out[i].Err == nil && e.read {
			reads = append(reads, quorumRead{ctx: e.ctx, key: e.key, r: e.r, dl: e.dl})
			idx = append(idx, i)
		}
	}
	if len(reads) == 0 {
		return
	}
	c.readBatch(reads)
	for j, q := range reads {
		es[idx[j]].seen, out[idx[j]].Err = q.rec, q.err
	}
}

// applyBatch applies the local writes of the entries still going, in order, with
// one storage batch (synced) under one admission of the seal.
func (c *Coordinator) applyBatch(es []batchEntry, out []BatchResult) {
	var keys [][]byte
	var fns []storage.UpdateFunc
	var idx []int
	for i := range es {
		if out[i].Err != nil {
			continue
		}
		e := &es[i]
		lw := c.localWrite(c.partition(e.key), e.seen, e.fn, &e.wrote)
		keys = append(keys, e.key)
		fns = append(fns, func(cur record.Record, found bool) (record.Record, error) {
			next, err := lw(cur, found)
			switch {
			case err == nil:
				e.rec = next
			case errors.Is(err, storage.ErrNoChange):
				e.rec = cur
			}
			return next, err
		})
		idx = append(idx, i)
	}
	if len(keys) == 0 {
		return
	}
	release, err := c.admitWrite()
	if err != nil {
		for _, i := range idx {
			out[i].Err = err
		}
		return
	}
	errs := c.store.UpdateBatch(keys, fns)
	release()
	for j, err := range errs {
		i := idx[j]
		if err != nil {
			out[i].Err = err
			continue
		}
		out[i].WriteResult = WriteResult{Record: es[i].rec, Durable: true}
	}
}

// replicateBatch sends the records of the entries that wrote to their other
// replicas, each write waiting for its own quorum (replicate) while their first
// calls share one message per node.
func (c *Coordinator) replicateBatch(es []batchEntry, out []BatchResult) {
	if c.cfg.Cluster == nil {
		return
	}
	via := c.newWriteBatch()
	var wg sync.WaitGroup
	for i := range es {
		e := &es[i]
		if out[i].Err != nil || !e.wrote {
			continue
		}
		via.waiting.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.replicate(e.ctx, e.key, e.rec, e.pn, e.w, false, e.dl, &batchSlot[peer.WriteRequest, error]{via, i}); err != nil {
				out[i].Err = err
			}
		}()
	}
	via.flush()
	wg.Wait()
}

// newWriteBatch returns a callBatch of replica writes: one MsgWriteBatch per
// node with a BatchWriter, else each write on its own, at once.
func (c *Coordinator) newWriteBatch() *callBatch[peer.WriteRequest, error] {
	send := func(ctx context.Context, node string, reqs []peer.WriteRequest) []error {
		if bw, ok := c.cfg.Peers.(BatchWriter); ok {
			return bw.WriteBatch(ctx, node, reqs)
		}
		return eachAtOnce(reqs, func(req peer.WriteRequest) error { return c.cfg.Peers.Write(ctx, node, req) })
	}
	return &callBatch[peer.WriteRequest, error]{c: c, send: send, failed: func(err error) error { return err }}
}

// eachAtOnce calls call for every request, all at once, and returns their
// outcomes in order: what a batch's calls to a node do when its Peers cannot
// put them in one message.
func eachAtOnce[Req, Res any](reqs []Req, call func(Req) Res) []Res {
	out := make([]Res, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = call(req)
		}()
	}
	wg.Wait()
	return out
}

// callBatch gathers the first replica calls of a batch's requests (ModifyBatch's
// writes, GetBatch's reads) by node, and sends each node's as one message once
// every request made its calls. The messages, and the calls in each, are in the
// order of the batch's requests, whatever order their goroutines made their
// calls in, so that a batch's messages depend on the batch alone (the
// simulation replays them).
type callBatch[Req, Res any] struct {
	c *Coordinator
	// send makes node's calls (in one message, where Peers can) and returns
	// each one's outcome; failed is the outcome of a call never sent.
	send    func(ctx context.Context, node string, reqs []Req) []Res
	failed  func(error) Res
	waiting sync.WaitGroup // requests that have not made their first calls yet
	mu      sync.Mutex
	nodes   []*nodeCalls[Req, Res] // in order of first call
}

// nodeCalls are a batch's calls bound for one node.
type nodeCalls[Req, Res any] struct {
	node string
	reqs []Req
	done []chan Res
	seqs []int    // the requests' positions in the batch
	dl   deadline // the earliest of the requests' deadlines
}

// batchSlot is one request's place in a callBatch: what replicate (a write) or
// readQuorum (a read) joins.
type batchSlot[Req, Res any] struct {
	b   *callBatch[Req, Res]
	seq int // the request's position in the batch
}

// add adds req, of the slot's request with deadline dl, to node's message and
// returns the channel its outcome will arrive on.
func (s *batchSlot[Req, Res]) add(node string, req Req, dl deadline) <-chan Res {
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	var nc *nodeCalls[Req, Res]
	for _, x := range b.nodes {
		if x.node == node {
			nc = x
			break
		}
	}
	switch {
	case nc == nil:
		nc = &nodeCalls[Req, Res]{node: node, dl: dl}
		b.nodes = append(b.nodes, nc)
	case dl.at.Before(nc.dl.at) || dl.at.Equal(nc.dl.at) && dl.own:
		nc.dl = dl
	}
	done := make(chan Res, 1)
	nc.reqs = append(nc.reqs, req)
	nc.done = append(nc.done, done)
	nc.seqs = append(nc.seqs, s.seq)
	return done
}

// ready tells the batch that the slot's request made its first calls.
func (s *batchSlot[Req, Res]) ready() { s.b.waiting.Done() }

// flush waits until every request made its first calls, then sends every
// node's message, each in the background, under a context ending at the
// earliest of its requests' deadlines: a message never carries a request past
// its deadline.
func (b *callBatch[Req, Res]) flush() {
	b.waiting.Wait()
	b.mu.Lock()
	nodes := b.nodes
	b.mu.Unlock()
	for _, nc := range nodes {
		nc.sort()
	}
	slices.SortFunc(nodes, func(x, y *nodeCalls[Req, Res]) int { return cmp.Compare(x.seqs[0], y.seqs[0]) })
	for _, nc := range nodes {
		if !b.c.goBackground(func() {
			ctx, cancel := b.c.contextUntil(nc.dl)
			if cancel != nil {
				defer cancel()
			}
			nc.answer(b.send(ctx, nc.node, nc.reqs), b.failed)
		}) {
			nc.answer(nil, func(error) Res { return b.failed(context.Canceled) }) // closing: nothing is sent
		}
	}
}

// sort puts nc's calls in batch order.
func (nc *nodeCalls[Req, Res]) sort() {
	perm := make([]int, len(nc.seqs))
	for i := range perm {
		perm[i] = i
	}
	slices.SortFunc(perm, func(x, y int) int { return cmp.Compare(nc.seqs[x], nc.seqs[y]) })
	reqs, done, seqs := slices.Clone(nc.reqs), slices.Clone(nc.done), slices.Clone(nc.seqs)
	for i, j := range perm {
		nc.reqs[i], nc.done[i], nc.seqs[i] = reqs[j], done[j], seqs[j]
	}
}

// answer hands each call its outcome: res[i], or failed's for a call res has
// none for.
func (nc *nodeCalls[Req, Res]) answer(res []Res, failed func(error) Res) {
	for i, done := range nc.done {
		if i < len(res) {
			done <- res[i]
		} else {
			done <- failed(errNoOutcome)
		}
	}
}

// errNoOutcome is the outcome of a batched replica call its node's reply had
// none for.
var errNoOutcome = errors.New("coordinator: no outcome for a batched replica call")
