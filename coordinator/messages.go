package coordinator

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/storage"
)

// RemotePeers returns Peers that encode each request, send it with c, and decode
// the reply; the receiving node answers with the handlers Coordinator.Register
// registers. Writes bound for one node while others are in flight to it go
// together (peer.MsgWriteBatch); ModifyBatch's writes and GetBatch's reads to
// one node go in one message each (peer.MsgWriteBatch, peer.MsgReadBatch).
func RemotePeers(c peer.Caller) Peers {
	return &remotePeers{c: c, batch: true, queues: make(map[string]*writeQueue)}
}

// UnbatchedPeers is RemotePeers that sends every write in a message of its own:
// the message sequence then depends on the calls alone, not on goroutine
// scheduling, which replayable simulations need.
func UnbatchedPeers(c peer.Caller) Peers { return &remotePeers{c: c} }

type remotePeers struct {
	c      peer.Caller
	batch  bool
	mu     sync.Mutex
	queues map[string]*writeQueue // by node
}

func (p *remotePeers) Read(ctx context.Context, node string, req peer.ReadRequest) (record.Record, error) {
	b, err := p.c.Call(ctx, node, peer.MsgRead, req.AppendBinary(nil))
	if err != nil {
		return record.Record{}, err
	}
	return peer.DecodeRecordReply(b)
}

func (p *remotePeers) Write(ctx context.Context, node string, req peer.WriteRequest) error {
	if !p.batch {
		return p.writeOne(ctx, node, req.AppendBinary(nil))
	}
	return p.write(ctx, node, req.AppendBinary(nil))
}

func (p *remotePeers) Scan(ctx context.Context, node string, req peer.ScanRequest) (peer.ScanReply, error) {
	b, err := p.c.Call(ctx, node, peer.MsgScan, req.AppendBinary(nil))
	if err != nil {
		return peer.ScanReply{}, err
	}
	return peer.DecodeScanReply(b)
}

func (p *remotePeers) Count(ctx context.Context, node string, req peer.CountRequest) (int64, error) {
	b, err := p.c.Call(ctx, node, peer.MsgCount, req.AppendBinary(nil))
	if err != nil {
		return 0, err
	}
	return peer.DecodeCountReply(b)
}

func (p *remotePeers) Flush(ctx context.Context, node string) error {
	_, err := p.c.Call(ctx, node, peer.MsgFlush, peer.AppendEmpty(nil))
	return err
}

// Register registers on m the handlers of the replica protocol, which answer
// other nodes' coordinators (RemotePeers): peer.MsgRead..peer.MsgReadBatch.
// Each request's ctx carries the caller's deadline: a request whose context is
// done is refused, and a replica write is not applied once its deadline has
// passed (ErrLate).
func (c *Coordinator) Register(m *peer.Mux) {
	m.Handle(peer.MsgRead, unlessDone(c.serveRead))
	m.Handle(peer.MsgWrite, unlessDone(c.serveWrite))
	m.Handle(peer.MsgWriteBatch, unlessDone(c.serveWriteBatch))
	m.Handle(peer.MsgReadBatch, unlessDone(c.serveReadBatch))
	m.Handle(peer.MsgScan, unlessDone(c.serveScan))
	m.Handle(peer.MsgCount, unlessDone(c.serveCount))
	m.Handle(peer.MsgFlush, unlessDone(c.serveFlush))
}

// unlessDone runs h only while the request's context is not done, the one check
// every replica handler starts with.
func unlessDone(h peer.HandlerFunc) peer.HandlerFunc {
	return func(ctx context.Context, from string, req []byte) ([]byte, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return h(ctx, from, req)
	}
}

func (c *Coordinator) serveRead(ctx context.Context, _ string, req []byte) ([]byte, error) {
	r, err := peer.DecodeReadRequest(req)
	if err != nil {
		return nil, err
	}
	rec, err := c.HandleRead(r)
	if err != nil {
		return nil, err
	}
	return peer.AppendRecordReply(nil, rec), nil
}

func (c *Coordinator) serveWrite(ctx context.Context, _ string, req []byte) ([]byte, error) {
	w, err := peer.DecodeWriteRequest(req)
	if err != nil {
		return nil, err
	}
	if err := late(ctx, time.Time{}); err != nil {
		return nil, err // the caller gave up: it keeps a hint, nothing is applied here
	}
	return peer.AppendEmpty(nil), c.handleWrite(ctx, w)
}

func (c *Coordinator) serveWriteBatch(ctx context.Context, _ string, req []byte) ([]byte, error) {
	reqs, err := peer.DecodeWriteBatch(req)
	if err != nil {
		return nil, err
	}
	if err := late(ctx, time.Time{}); err != nil {
		return nil, err
	}
	return peer.AppendBatchReply(nil, c.handleWriteBatch(ctx, reqs)), nil
}

func (c *Coordinator) serveScan(ctx context.Context, _ string, req []byte) ([]byte, error) {
	s, err := peer.DecodeScanRequest(req)
	if err != nil {
		return nil, err
	}
	rep, err := c.HandleScan(s)
	if err != nil {
		return nil, err
	}
	return rep.AppendBinary(nil), nil
}

func (c *Coordinator) serveCount(ctx context.Context, _ string, req []byte) ([]byte, error) {
	cr, err := peer.DecodeCountRequest(req)
	if err != nil {
		return nil, err
	}
	return peer.AppendCountReply(nil, c.HandleCount(cr)), nil
}

func (c *Coordinator) serveFlush(ctx context.Context, _ string, req []byte) ([]byte, error) {
	if err := peer.DecodeEmpty(req); err != nil {
		return nil, fmt.Errorf("flush: %w", err)
	}
	return peer.AppendEmpty(nil), c.store.DropAll()
}

// HandleRead answers a replica read: this node's record of the key, merged with the
// hint it keeps for req.HintFor when it stands in for that owner.
func (c *Coordinator) HandleRead(req peer.ReadRequest) (record.Record, error) {
	rec, _, err := c.store.Get(req.Key)
	if err != nil || req.HintFor == "" || req.HintFor == c.cfg.Node {
		return rec, err
	}
	hint, found, err := c.store.GetHint(req.HintFor, req.Key)
	if err != nil || !found {
		return rec, err
	}
	return record.SyncStrings(rec, hint)
}

// HandleWrite answers a replica write: the record is merged into this node's
// replica, or into its hints for req.HintFor, durably, before it returns.
func (c *Coordinator) HandleWrite(req peer.WriteRequest) error {
	return c.handleWrite(context.Background(), req)
}

// handleWrite is HandleWrite for a request with ctx's deadline: the record is
// merged only while ctx is in time, checked under the key's lock (ErrLate
// otherwise), so a request that waited for the lock past its deadline changes
// nothing (tombstone purge counts on it: repair/purge.go).
func (c *Coordinator) handleWrite(ctx context.Context, req peer.WriteRequest) error {
	changed, err := c.applyReplicaWrite(ctx, req, c.store.Update)
	if err == nil && !changed {
		// Nothing new, but what is here may be a write of this node's own not yet
		// synced (a Deferred write): the ack promises it is durable.
		err = c.store.Sync()
	}
	return err
}

// applyReplicaWrite merges req's record into this node's replica with update
// (Update, or UpdateNoSync for a write a later sync covers), or into its hints
// for req.HintFor, and reports whether that changed anything.
func (c *Coordinator) applyReplicaWrite(ctx context.Context, req peer.WriteRequest, update func([]byte, storage.UpdateFunc) (record.Record, error)) (changed bool, err error) {
	release, err := c.admitWrite()
	if err != nil {
		return false, err
	}
	defer release()
	merge := mergeWhileInTime(ctx, req.Record)
	fn := func(cur record.Record, found bool) (record.Record, error) {
		next, err := merge(cur, found)
		changed = err == nil
		return next, err
	}
	if req.HintFor != "" && req.HintFor != c.cfg.Node {
		_, err = c.store.UpdateHint(req.HintFor, req.Key, fn)
	} else {
		_, err = update(req.Key, fn)
	}
	return changed, err
}

// HandleScan answers a page of a partition scan from this node's replica.
func (c *Coordinator) HandleScan(req peer.ScanRequest) (peer.ScanReply, error) {
	if req.Partition < 0 || req.Partition >= c.store.Partitions() {
		return peer.ScanReply{}, fmt.Errorf("%w: partition %d", peer.ErrBadMessage, req.Partition)
	}
	var rep peer.ScanReply
	err := c.store.Scan(req.Partition, req.From, func(h uint64, key []byte, rec record.Record) bool {
		if len(rep.Keys) >= req.Count {
			rep.Next, rep.More = h, true
			return false
		}
		rep.Keys = append(rep.Keys, append([]byte(nil), key...))
		rep.Records = append(rep.Records, rec)
		return true
	})
	return rep, err
}

// HandleCount answers the number of live keys this node holds in req.Partitions.
func (c *Coordinator) HandleCount(req peer.CountRequest) int64 {
	var n int64
	for _, p := range req.Partitions {
		if p >= 0 && p < c.store.Partitions() {
			n += c.store.PartitionCount(p)
		}
	}
	return n
}
