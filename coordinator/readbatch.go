package coordinator

import (
	"context"
	"sync"

	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/record"
)

// Read batches (issue 19, S10): an event loop collects the plain reads of an
// iteration and hands them to GetBatch at once, which shares what the reads can
// share (one pass over the local store, one message per replica node) and keeps
// apart what each read must decide for itself (its plan, R, deadline, spares,
// slow replicas and read repair).

// GetResult is one key's outcome in GetBatch: what Get would have returned.
type GetResult struct {
	Record record.Record
	Err    error
}

// BatchReader is implemented by Peers that carry several replica reads bound
// for one node in one message (RemotePeers: peer.MsgReadBatch) and return each
// read's outcome, in order. GetBatch uses it; with Peers that lack it, the
// reads of a batch to one node are separate calls (Peers.Read), made at once.
type BatchReader interface {
	ReadBatch(ctx context.Context, node string, reqs []peer.ReadRequest) []peer.ReadResult
}

var _ BatchReader = (*remotePeers)(nil)

// GetBatch runs Get(ctx, key, opt) for every key of keys and returns their
// outcomes in the same order. What it shares between the reads, and only
// that:
//
//   - this node's replica is read for every key in one pass, before any call;
//   - the first replica calls of every read (the R it needs beyond this
//     node's own replica) to one node go in one message to that node
//     (BatchReader), all nodes' messages at once.
//
// Everything else is each read's own, exactly as in Get: its plan (replicas,
// fallbacks, spares), its R, its deadline (ctx's, or RequestTimeout after
// GetBatch began), R answers from distinct owners, a spare or the next replica
// asked for it when one of its calls fails or is slow (a call alone), the other
// replicas asked when it is slow to reach R (speculation), its QuorumError, and
// its read repair in the background. So a peer failing for a whole message, or
// for one key of it, fails only those keys' calls to it, which each read then
// replaces from its own spares; no read's outcome depends on another's. A key
// no replica has a record of gets an empty record (the caller's NotFound), a
// record with siblings gets all of them, as from Get.
func (c *Coordinator) GetBatch(ctx context.Context, keys [][]byte, opt ReadOptions) []GetResult {
	out := make([]GetResult, len(keys))
	if err := ctx.Err(); err != nil {
		for i := range out {
			out[i].Err = err
		}
		return out
	}
	if c.cfg.Cluster == nil || opt.Local {
		for i, key := range keys {
			out[i].Record, _, out[i].Err = c.store.Get(key)
		}
		return out
	}
	reads := make([]quorumRead, len(keys))
	for i, key := range keys {
		reads[i] = quorumRead{ctx: ctx, key: key, r: opt.R, dl: c.requestDeadline(ctx)}
	}
	c.readBatch(reads)
	for i, q := range reads {
		out[i] = GetResult{Record: q.rec, Err: q.err}
	}
	return out
}

// quorumRead is one read of readBatch: quorumGetBy's arguments and outcome.
type quorumRead struct {
	ctx context.Context
	key []byte
	r   int
	dl  deadline
	rec record.Record
	err error
}

// readBatch runs quorumGetBy for every read, at once, sharing one pass over the
// local store and their first calls to each node (see GetBatch).
func (c *Coordinator) readBatch(reads []quorumRead) {
	pns := make([]plan, len(reads))
	for i := range reads {
		pns[i] = c.plan(reads[i].key)
	}
	locals := make([]localRead, len(reads))
	for i := range reads {
		locals[i] = c.readLocal(reads[i].key, pns[i].self)
	}
	via := c.newReadBatch()
	var wg sync.WaitGroup
	for i := range reads {
		q := &reads[i]
		if len(pns[i].remote) == 0 { // nobody to ask: no goroutine, no slot
			q.rec, q.err = c.readQuorum(q.ctx, q.key, pns[i], q.r, q.dl, locals[i], nil)
			continue
		}
		via.waiting.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			q.rec, q.err = c.readQuorum(q.ctx, q.key, pns[i], q.r, q.dl, locals[i], &batchSlot[peer.ReadRequest, peer.ReadResult]{via, i})
		}()
	}
	via.flush()
	wg.Wait()
}

// newReadBatch returns a callBatch of replica reads: one MsgReadBatch per node
// with a BatchReader, else each read on its own, at once.
func (c *Coordinator) newReadBatch() *callBatch[peer.ReadRequest, peer.ReadResult] {
	send := func(ctx context.Context, node string, reqs []peer.ReadRequest) []peer.ReadResult {
		if br, ok := c.cfg.Peers.(BatchReader); ok {
			return br.ReadBatch(ctx, node, reqs)
		}
		return eachAtOnce(reqs, func(req peer.ReadRequest) peer.ReadResult {
			rec, err := c.cfg.Peers.Read(ctx, node, req)
			return peer.ReadResult{Record: rec, Err: err}
		})
	}
	failed := func(err error) peer.ReadResult { return peer.ReadResult{Err: err} }
	return &callBatch[peer.ReadRequest, peer.ReadResult]{c: c, send: send, failed: failed}
}

// HandleReadBatch answers a batch of replica reads: each as HandleRead, in
// order, each with its own outcome.
func (c *Coordinator) HandleReadBatch(reqs []peer.ReadRequest) []peer.ReadResult {
	out := make([]peer.ReadResult, len(reqs))
	for i, req := range reqs {
		out[i].Record, out[i].Err = c.HandleRead(req)
	}
	return out
}

func (c *Coordinator) serveReadBatch(ctx context.Context, _ string, req []byte) ([]byte, error) {
	reqs, err := peer.DecodeReadBatch(req)
	if err != nil {
		return nil, err
	}
	return peer.AppendReadBatchReply(nil, c.HandleReadBatch(reqs)), nil
}

// ReadBatch sends reqs to node at once: a read alone as a MsgRead of its own,
// else one MsgReadBatch per maxBatchCount reads or maxBatchBytes (a larger
// batch is split), sent one after another. It returns each read's outcome: the
// peer's, or the call's error for every read of a message that failed or whose
// reply does not decode.
func (p *remotePeers) ReadBatch(ctx context.Context, node string, reqs []peer.ReadRequest) []peer.ReadResult {
	if len(reqs) == 1 {
		rec, err := p.Read(ctx, node, reqs[0])
		return []peer.ReadResult{{Record: rec, Err: err}}
	}
	out := make([]peer.ReadResult, 0, len(reqs))
	for _, part := range splitBatch(reqs, func(r peer.ReadRequest) int { return len(r.Key) + len(r.HintFor) + 4 }) {
		reply, err := p.c.Call(ctx, node, peer.MsgReadBatch, peer.AppendReadBatch(nil, part))
		var res []peer.ReadResult
		if err == nil {
			res, err = peer.DecodeReadBatchReply(reply, len(part))
		}
		if err != nil {
			res = make([]peer.ReadResult, len(part))
			for i := range res {
				res[i].Err = err
			}
		}
		out = append(out, res...)
	}
	return out
}
