package coordinator

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/vclock"
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
//     run at once;
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
	read   bool       // the key is read from R replicas first
	seen   vclock.Set // what that read found
	wrote  bool       // fn decided to write
	rec    vclock.Set // the record as stored (as found, without a write)
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

// readFirst runs the quorum reads of the writes that read first, at once.
func (c *Coordinator) readFirst(es []batchEntry, out []BatchResult) {
	var wg sync.WaitGroup
	for i := range es {
		if e := &es[i]; out[i].Err == nil && e.read {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e.seen, out[i].Err = c.quorumGetBy(e.ctx, e.key, e.r, e.dl)
			}()
		}
	}
	wg.Wait()
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
		fns = append(fns, func(cur vclock.Set, found bool) (vclock.Set, error) {
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
	via := &writeBatch{c: c}
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
			if _, err := c.replicate(e.ctx, e.key, e.rec, e.pn, e.w, false, e.dl, &batchSlot{via, i}); err != nil {
				out[i].Err = err
			}
		}()
	}
	via.flush()
	wg.Wait()
}

// writeBatch gathers the first replica calls of a ModifyBatch's writes by node,
// and sends each node's as one message once every write made its calls. The
// messages, and the writes in each, are in the order of the batch's writes,
// whatever order their goroutines made their calls in, so that a batch's
// messages depend on the batch alone (the simulation replays them).
type writeBatch struct {
	c       *Coordinator
	waiting sync.WaitGroup // writes that have not made their first calls yet
	mu      sync.Mutex
	nodes   []*nodeWrites // in order of first call
}

// nodeWrites are a batch's writes bound for one node.
type nodeWrites struct {
	node string
	reqs []peer.WriteRequest
	done []chan error
	seqs []int    // the writes' positions in the batch
	dl   deadline // the earliest of the writes' deadlines
}

// batchSlot is one write's place in a writeBatch: what replicate joins.
type batchSlot struct {
	b   *writeBatch
	seq int // the write's position in the batch
}

// add adds req, of the slot's write with deadline dl, to node's message and
// returns the channel its outcome will arrive on.
func (s *batchSlot) add(node string, req peer.WriteRequest, dl deadline) <-chan error {
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	var nw *nodeWrites
	for _, x := range b.nodes {
		if x.node == node {
			nw = x
			break
		}
	}
	switch {
	case nw == nil:
		nw = &nodeWrites{node: node, dl: dl}
		b.nodes = append(b.nodes, nw)
	case dl.at.Before(nw.dl.at) || dl.at.Equal(nw.dl.at) && dl.own:
		nw.dl = dl
	}
	done := make(chan error, 1)
	nw.reqs = append(nw.reqs, req)
	nw.done = append(nw.done, done)
	nw.seqs = append(nw.seqs, s.seq)
	return done
}

// ready tells the batch that the slot's write made its first calls.
func (s *batchSlot) ready() { s.b.waiting.Done() }

// flush waits until every write made its first calls, then sends every node's
// message, each in the background.
func (b *writeBatch) flush() {
	b.waiting.Wait()
	b.mu.Lock()
	nodes := b.nodes
	b.mu.Unlock()
	for _, nw := range nodes {
		nw.sort()
	}
	slices.SortFunc(nodes, func(x, y *nodeWrites) int { return cmp.Compare(x.seqs[0], y.seqs[0]) })
	for _, nw := range nodes {
		if !b.c.goBackground(func() { b.c.sendWrites(nw) }) {
			nw.answer(nil, context.Canceled) // closing: nothing is sent
		}
	}
}

// sendWrites sends nw's writes in one message (with a BatchWriter; else each on
// its own, at once) under a context ending at the earliest of their deadlines,
// and hands each write its outcome.
func (c *Coordinator) sendWrites(nw *nodeWrites) {
	ctx, cancel := c.contextUntil(nw.dl)
	if cancel != nil {
		defer cancel()
	}
	if bw, ok := c.cfg.Peers.(BatchWriter); ok {
		nw.answer(bw.WriteBatch(ctx, nw.node, nw.reqs), nil)
		return
	}
	errs := make([]error, len(nw.reqs))
	var wg sync.WaitGroup
	for i, req := range nw.reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.cfg.Peers.Write(ctx, nw.node, req)
		}()
	}
	wg.Wait()
	nw.answer(errs, nil)
}

// sort puts nw's writes in batch order.
func (nw *nodeWrites) sort() {
	perm := make([]int, len(nw.seqs))
	for i := range perm {
		perm[i] = i
	}
	slices.SortFunc(perm, func(x, y int) int { return cmp.Compare(nw.seqs[x], nw.seqs[y]) })
	reqs, done, seqs := slices.Clone(nw.reqs), slices.Clone(nw.done), slices.Clone(nw.seqs)
	for i, j := range perm {
		nw.reqs[i], nw.done[i], nw.seqs[i] = reqs[j], done[j], seqs[j]
	}
}

// answer hands each write its outcome: errs[i], or err for all.
func (nw *nodeWrites) answer(errs []error, err error) {
	for i, done := range nw.done {
		switch {
		case err != nil:
			done <- err
		case i < len(errs):
			done <- errs[i]
		default:
			done <- errors.New("coordinator: no outcome for a batched replica write")
		}
	}
}
