package coordinator

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/storage"
)

// A peer.MsgWriteBatch carries several replica writes bound for one node in one
// message, which the node applies with one WAL sync and answers with one reply
// holding each write's outcome. RemotePeers sends one whenever writes for a node
// queue up while its earlier messages are in flight (see writeQueue).
//
// Batching bounds: writes in flight to one node as separate messages before the
// next ones wait and go together, and the size of one batch.
const (
	batchSlots    = 2
	maxBatchCount = 256
	maxBatchBytes = 1 << 20
)

// HandleWriteBatch applies a batch of replica writes: each is merged like
// HandleWrite, and the records they change are committed together, as one Pebble
// batch with one WAL sync (storage.UpdateBatch), so all are durable before any is
// acknowledged. Hinted writes (for another owner) go to the hint store one by one.
// It returns each write's outcome.
func (c *Coordinator) HandleWriteBatch(reqs []peer.WriteRequest) []error {
	return c.handleWriteBatch(context.Background(), reqs)
}

// handleWriteBatch is HandleWriteBatch for a request with ctx's deadline: each
// record is merged only while ctx is in time, checked under its key's lock.
func (c *Coordinator) handleWriteBatch(ctx context.Context, reqs []peer.WriteRequest) []error {
	errs := make([]error, len(reqs))
	keys := make([][]byte, 0, len(reqs))
	fns := make([]storage.UpdateFunc, 0, len(reqs))
	own := make([]int, 0, len(reqs)) // keys[j] is reqs[own[j]].Key
	for i, req := range reqs {
		if req.HintFor != "" && req.HintFor != c.cfg.Node {
			_, errs[i] = c.applyReplicaWrite(ctx, req, c.store.UpdateNoSync)
			continue
		}
		keys = append(keys, req.Key)
		fns = append(fns, mergeWhileInTime(ctx, req.Record))
		own = append(own, i)
	}
	// Hints are synced by UpdateHint itself. UpdateBatch syncs the WAL even
	// when no record changed, which covers records read that are this node's
	// own Deferred writes; without writes of its own, a sync here does.
	if len(keys) > 0 {
		release, err := c.admitWrite()
		if err != nil {
			for _, i := range own {
				errs[i] = err
			}
			return errs
		}
		defer release()
		for j, err := range c.store.UpdateBatch(keys, fns) {
			errs[own[j]] = err
		}
		return errs
	}
	if err := c.store.Sync(); err != nil {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
	}
	return errs
}

// writeQueue batches the replica writes bound for one node. A writer queues its
// write, then either takes a free sending slot and sends everything queued (its
// own write and whatever others queued meanwhile: one message, one round trip,
// one WAL sync on the peer) or waits until its write was sent by another writer
// or a slot frees. With batchSlots messages in flight, a lone write leaves at
// once; writes queue only behind messages already in flight, so batching adds no
// delay of its own.
type writeQueue struct {
	slots   chan struct{}
	mu      sync.Mutex
	pending []*queuedWrite
}

type queuedWrite struct {
	enc       []byte     // encoded WriteRequest
	done      chan error // buffered; receives the outcome once
	abandoned atomic.Bool
	taken     bool // in a batch being sent; guarded by writeQueue.mu
}

func newWriteQueue() *writeQueue { return &writeQueue{slots: make(chan struct{}, batchSlots)} }

// take removes and returns the next batch of queued writes that someone still
// waits for.
func (q *writeQueue) take() []*queuedWrite {
	q.mu.Lock()
	defer q.mu.Unlock()
	var batch []*queuedWrite
	size, n := 0, 0
	for _, w := range q.pending {
		if len(batch) > 0 && (len(batch) == maxBatchCount || size+len(w.enc) > maxBatchBytes) {
			break
		}
		n++
		if w.abandoned.Load() {
			continue
		}
		w.taken = true
		batch = append(batch, w)
		size += len(w.enc)
	}
	q.pending = append(q.pending[:0], q.pending[n:]...)
	return batch
}

// write queues enc for node and waits for its outcome (see writeQueue).
func (p *remotePeers) write(ctx context.Context, node string, enc []byte) error {
	q := p.queue(node)
	w := &queuedWrite{enc: enc, done: make(chan error, 1)}
	q.mu.Lock()
	q.pending = append(q.pending, w)
	q.mu.Unlock()
	for {
		q.mu.Lock()
		taken := w.taken
		q.mu.Unlock()
		if taken {
			// In another writer's batch: only its outcome is left to wait for
			// (taking a slot now would find nothing to send, again and again).
			select {
			case err := <-w.done:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		select {
		case err := <-w.done:
			return err
		case <-ctx.Done():
			w.abandoned.Store(true)
			return ctx.Err()
		case q.slots <- struct{}{}:
			if batch := q.take(); len(batch) > 0 {
				p.send(ctx, node, batch)
			}
			<-q.slots
		}
	}
}

// send delivers a batch and tells every writer in it its outcome.
func (p *remotePeers) send(ctx context.Context, node string, batch []*queuedWrite) {
	if len(batch) == 1 {
		batch[0].done <- p.writeOne(ctx, node, batch[0].enc)
		return
	}
	encs := make([][]byte, len(batch))
	for i, w := range batch {
		encs[i] = w.enc
	}
	for i, err := range p.sendBatch(ctx, node, encs) {
		batch[i].done <- err
	}
}

// sendBatch sends encoded WriteRequests to node in one MsgWriteBatch and
// returns each one's outcome (the call's error for every one when it failed).
func (p *remotePeers) sendBatch(ctx context.Context, node string, encs [][]byte) []error {
	reply, err := p.c.Call(ctx, node, peer.MsgWriteBatch, peer.AppendWriteBatch(nil, encs))
	var errs []error
	if err == nil {
		errs, err = peer.DecodeBatchReply(reply, len(encs))
	}
	if err != nil {
		errs = make([]error, len(encs))
		for i := range errs {
			errs[i] = err
		}
	}
	return errs
}

// WriteBatch sends reqs to node at once, bypassing the node's writeQueue (the
// batch is formed already): one message of its own for one request, else one
// MsgWriteBatch per maxBatchCount writes or maxBatchBytes (a larger batch is
// split), sent one after another. It returns each request's outcome.
func (p *remotePeers) WriteBatch(ctx context.Context, node string, reqs []peer.WriteRequest) []error {
	encs := make([][]byte, len(reqs))
	for i, req := range reqs {
		encs[i] = req.AppendBinary(nil)
	}
	if len(encs) == 1 {
		return []error{p.writeOne(ctx, node, encs[0])}
	}
	errs := make([]error, 0, len(encs))
	for _, part := range splitBatch(encs, func(enc []byte) int { return len(enc) }) {
		errs = append(errs, p.sendBatch(ctx, node, part)...)
	}
	return errs
}

// splitBatch splits a batch's requests into the messages that carry them, in
// order: at most maxBatchCount requests each, and no more than maxBatchBytes
// of them by size (but at least one).
func splitBatch[T any](reqs []T, size func(T) int) [][]T {
	var parts [][]T
	for len(reqs) > 0 {
		n, bytes := 0, 0
		for n < len(reqs) && n < maxBatchCount && (n == 0 || bytes+size(reqs[n]) <= maxBatchBytes) {
			bytes += size(reqs[n])
			n++
		}
		parts = append(parts, reqs[:n])
		reqs = reqs[n:]
	}
	return parts
}

// writeOne sends one encoded WriteRequest in a message of its own.
func (p *remotePeers) writeOne(ctx context.Context, node string, enc []byte) error {
	_, err := p.c.Call(ctx, node, peer.MsgWrite, enc)
	return err
}

func (p *remotePeers) queue(node string) *writeQueue {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.queues[node]
	if q == nil {
		q = newWriteQueue()
		p.queues[node] = q
	}
	return q
}
