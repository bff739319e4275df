package coordinator

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/dynakv/dynakv/internal/wire"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/vclock"
)

// Message types of the replica protocol, the typ of Caller.Call. Other layers
// (proxy forwarding) use types from 16 up.
const (
	MsgRead  uint8 = 1
	MsgWrite uint8 = 2
	MsgScan  uint8 = 3
	MsgCount uint8 = 4
	MsgFlush uint8 = 5
)

// msgVersion is the first byte of every request and reply body.
const msgVersion = 1

// ErrBadMessage reports a request or reply that does not decode.
var ErrBadMessage = errors.New("coordinator: malformed message")

// ScanRequest asks a replica for up to Count records of Partition with hashes >=
// From, in hash order.
type ScanRequest struct {
	Partition int
	From      uint64
	Count     int
}

// ScanReply is a page of a replica's records. When More is set, Next is the hash to
// continue from.
type ScanReply struct {
	Keys    [][]byte
	Records []vclock.Set
	Next    uint64
	More    bool
}

// CountRequest asks a replica for the number of live keys in Partitions.
type CountRequest struct {
	Partitions []int
}

// Caller sends one request to a node and returns its reply: what a transport
// provides. cluster.Transport does, through node/, which resolves names.
type Caller interface {
	Call(ctx context.Context, node string, typ uint8, req []byte) ([]byte, error)
}

// CallerFunc adapts a function to Caller.
type CallerFunc func(ctx context.Context, node string, typ uint8, req []byte) ([]byte, error)

// Call implements Caller.
func (f CallerFunc) Call(ctx context.Context, node string, typ uint8, req []byte) ([]byte, error) {
	return f(ctx, node, typ, req)
}

// RemotePeers returns Peers that encode each request, send it with c, and decode
// the reply; the receiving node answers with Coordinator.Serve. Writes bound for
// one node while others are in flight to it go together (MsgWriteBatch).
func RemotePeers(c Caller) Peers {
	return &remotePeers{c: c, batch: true, queues: make(map[string]*writeQueue)}
}

// UnbatchedPeers is RemotePeers that sends every write in a message of its own:
// the message sequence then depends on the calls alone, not on goroutine
// scheduling, which replayable simulations need.
func UnbatchedPeers(c Caller) Peers { return &remotePeers{c: c} }

type remotePeers struct {
	c      Caller
	batch  bool
	mu     sync.Mutex
	queues map[string]*writeQueue // by node
}

func (p *remotePeers) Read(ctx context.Context, node string, req ReadRequest) (vclock.Set, error) {
	b, err := p.c.Call(ctx, node, MsgRead, req.AppendBinary(nil))
	if err != nil {
		return vclock.Set{}, err
	}
	return decodeRecordReply(b)
}

func (p *remotePeers) Write(ctx context.Context, node string, req WriteRequest) error {
	if !p.batch {
		return p.writeOne(ctx, node, req.AppendBinary(nil))
	}
	return p.write(ctx, node, req.AppendBinary(nil))
}

func (p *remotePeers) Scan(ctx context.Context, node string, req ScanRequest) (ScanReply, error) {
	b, err := p.c.Call(ctx, node, MsgScan, req.AppendBinary(nil))
	if err != nil {
		return ScanReply{}, err
	}
	return DecodeScanReply(b)
}

func (p *remotePeers) Count(ctx context.Context, node string, req CountRequest) (int64, error) {
	b, err := p.c.Call(ctx, node, MsgCount, req.AppendBinary(nil))
	if err != nil {
		return 0, err
	}
	r := newMsgReader(b)
	r.Version(msgVersion)
	n := r.Uvarint()
	if n > math.MaxInt64 {
		r.Fail("count above int64") // would add up as a negative count
	}
	if err := r.done(); err != nil {
		return 0, err
	}
	return int64(n), nil
}

func (p *remotePeers) Flush(ctx context.Context, node string) error {
	_, err := p.c.Call(ctx, node, MsgFlush, []byte{msgVersion})
	return err
}

// Serve answers a request of the replica protocol from another node's coordinator:
// what the node's transport handler calls for types MsgRead..MsgWriteBatch. ctx
// carries the caller's deadline: a replica write is not applied once it has passed
// (ErrLate).
func (c *Coordinator) Serve(ctx context.Context, typ uint8, req []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch typ {
	case MsgRead:
		r, err := DecodeReadRequest(req)
		if err != nil {
			return nil, err
		}
		rec, err := c.HandleRead(r)
		if err != nil {
			return nil, err
		}
		return rec.AppendBinary([]byte{msgVersion}), nil
	case MsgWrite:
		w, err := DecodeWriteRequest(req)
		if err != nil {
			return nil, err
		}
		if err := late(ctx, time.Time{}); err != nil {
			return nil, err // the caller gave up: it keeps a hint, nothing is applied here
		}
		return []byte{msgVersion}, c.handleWrite(ctx, w)
	case MsgWriteBatch:
		reqs, err := DecodeWriteBatch(req)
		if err != nil {
			return nil, err
		}
		if err := late(ctx, time.Time{}); err != nil {
			return nil, err
		}
		return appendBatchReply(nil, c.handleWriteBatch(ctx, reqs)), nil
	case MsgScan:
		s, err := DecodeScanRequest(req)
		if err != nil {
			return nil, err
		}
		rep, err := c.HandleScan(s)
		if err != nil {
			return nil, err
		}
		return rep.AppendBinary(nil), nil
	case MsgCount:
		cr, err := DecodeCountRequest(req)
		if err != nil {
			return nil, err
		}
		n := c.HandleCount(cr)
		return binary.AppendUvarint([]byte{msgVersion}, uint64(max(n, 0))), nil
	case MsgFlush:
		if len(req) != 1 || req[0] != msgVersion {
			return nil, fmt.Errorf("%w: flush", ErrBadMessage)
		}
		return []byte{msgVersion}, c.store.DropAll()
	}
	return nil, fmt.Errorf("%w: unknown type %d", ErrBadMessage, typ)
}

// HandleRead answers a replica read: this node's record of the key, merged with the
// hint it keeps for req.HintFor when it stands in for that owner.
func (c *Coordinator) HandleRead(req ReadRequest) (vclock.Set, error) {
	rec, _, err := c.store.Get(req.Key)
	if err != nil || req.HintFor == "" || req.HintFor == c.cfg.Node {
		return rec, err
	}
	hint, found, err := c.store.GetHint(req.HintFor, req.Key)
	if err != nil || !found {
		return rec, err
	}
	return vclock.Sync(rec, hint), nil
}

// HandleWrite answers a replica write: the record is merged into this node's
// replica, or into its hints for req.HintFor, durably, before it returns.
func (c *Coordinator) HandleWrite(req WriteRequest) error {
	return c.handleWrite(context.Background(), req)
}

// handleWrite is HandleWrite for a request with ctx's deadline: the record is
// merged only while ctx is in time, checked under the key's lock (ErrLate
// otherwise), so a request that waited for the lock past its deadline changes
// nothing (tombstone purge counts on it: repair/purge.go).
func (c *Coordinator) handleWrite(ctx context.Context, req WriteRequest) error {
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
func (c *Coordinator) applyReplicaWrite(ctx context.Context, req WriteRequest, update func([]byte, storage.UpdateFunc) (vclock.Set, error)) (changed bool, err error) {
	merge := mergeWhileInTime(ctx, req.Record)
	fn := func(cur vclock.Set, found bool) (vclock.Set, error) {
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
func (c *Coordinator) HandleScan(req ScanRequest) (ScanReply, error) {
	if req.Partition < 0 || req.Partition >= c.store.Partitions() {
		return ScanReply{}, fmt.Errorf("%w: partition %d", ErrBadMessage, req.Partition)
	}
	var rep ScanReply
	err := c.store.Scan(req.Partition, req.From, func(h uint64, key []byte, rec vclock.Set) bool {
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
func (c *Coordinator) HandleCount(req CountRequest) int64 {
	var n int64
	for _, p := range req.Partitions {
		if p >= 0 && p < c.store.Partitions() {
			n += c.store.PartitionCount(p)
		}
	}
	return n
}

// AppendBinary appends the request's wire form.
func (r ReadRequest) AppendBinary(b []byte) []byte {
	b = append(b, msgVersion)
	b = wire.AppendBytes(b, r.Key)
	return wire.AppendBytes(b, []byte(r.HintFor))
}

// DecodeReadRequest decodes a ReadRequest; the result does not alias b.
func DecodeReadRequest(b []byte) (ReadRequest, error) {
	r := newMsgReader(b)
	r.Version(msgVersion)
	req := ReadRequest{Key: r.Bytes(), HintFor: string(r.Bytes())}
	return req, r.done()
}

// AppendBinary appends the request's wire form.
func (w WriteRequest) AppendBinary(b []byte) []byte {
	b = append(b, msgVersion)
	b = wire.AppendBytes(b, w.Key)
	b = wire.AppendBytes(b, []byte(w.HintFor))
	if w.recordEnc != nil {
		return append(b, w.recordEnc...)
	}
	return w.Record.AppendBinary(b)
}

// DecodeWriteRequest decodes a WriteRequest; the result does not alias b.
func DecodeWriteRequest(b []byte) (WriteRequest, error) {
	r := newMsgReader(b)
	r.Version(msgVersion)
	req := WriteRequest{Key: r.Bytes(), HintFor: string(r.Bytes())}
	req.Record = r.record()
	return req, r.done()
}

func decodeRecordReply(b []byte) (vclock.Set, error) {
	r := newMsgReader(b)
	r.Version(msgVersion)
	rec := r.record()
	return rec, r.done()
}

// AppendBinary appends the request's wire form.
func (s ScanRequest) AppendBinary(b []byte) []byte {
	b = append(b, msgVersion)
	b = binary.AppendUvarint(b, uint64(s.Partition))
	b = binary.BigEndian.AppendUint64(b, s.From)
	return binary.AppendUvarint(b, uint64(s.Count))
}

// maxScanCount bounds a scan page.
const maxScanCount = 1 << 16

// DecodeScanRequest decodes a ScanRequest.
func DecodeScanRequest(b []byte) (ScanRequest, error) {
	r := newMsgReader(b)
	r.Version(msgVersion)
	p := r.Uvarint()
	from := r.U64()
	n := r.Uvarint()
	if p >= 1<<16 || n > maxScanCount {
		r.Fail("scan bounds")
	}
	return ScanRequest{Partition: int(p), From: from, Count: int(n)}, r.done()
}

// AppendBinary appends the reply's wire form.
func (s ScanReply) AppendBinary(b []byte) []byte {
	b = append(b, msgVersion)
	more := byte(0)
	if s.More {
		more = 1
	}
	b = append(b, more)
	b = binary.BigEndian.AppendUint64(b, s.Next)
	b = binary.AppendUvarint(b, uint64(len(s.Keys)))
	for i, k := range s.Keys {
		b = wire.AppendBytes(b, k)
		rec := s.Records[i].AppendBinary(nil)
		b = wire.AppendBytes(b, rec)
	}
	return b
}

// DecodeScanReply decodes a ScanReply; the result does not alias b.
func DecodeScanReply(b []byte) (ScanReply, error) {
	r := newMsgReader(b)
	r.Version(msgVersion)
	var rep ScanReply
	switch r.Byte() {
	case 0:
	case 1:
		rep.More = true
	default:
		r.Fail("more flag")
	}
	rep.Next = r.U64()
	n := r.Count(2)
	for i := 0; i < n && !r.Failed(); i++ {
		rep.Keys = append(rep.Keys, r.Bytes())
		sub := newMsgReader(r.Bytes())
		rep.Records = append(rep.Records, sub.record())
		if sub.Failed() {
			r.Fail(sub.Problem())
		}
	}
	return rep, r.done()
}

// AppendBinary appends the request's wire form.
func (c CountRequest) AppendBinary(b []byte) []byte {
	b = append(b, msgVersion)
	b = binary.AppendUvarint(b, uint64(len(c.Partitions)))
	for _, p := range c.Partitions {
		b = binary.AppendUvarint(b, uint64(p))
	}
	return b
}

// DecodeCountRequest decodes a CountRequest.
func DecodeCountRequest(b []byte) (CountRequest, error) {
	r := newMsgReader(b)
	r.Version(msgVersion)
	n := r.Count(1)
	req := CountRequest{Partitions: make([]int, 0, n)}
	for i := 0; i < n && !r.Failed(); i++ {
		p := r.Uvarint()
		if p >= 1<<16 {
			r.Fail("partition")
		}
		req.Partitions = append(req.Partitions, int(p))
	}
	return req, r.done()
}

// msgReader decodes a message: a wire.Reader plus the record codec.
type msgReader struct{ *wire.Reader }

func newMsgReader(b []byte) msgReader { return msgReader{wire.NewReader(b)} }

func (r msgReader) done() error { return r.Done(ErrBadMessage) }

// record decodes the rest of the message as a record.
func (r msgReader) record() vclock.Set {
	if r.Failed() {
		return vclock.Set{}
	}
	rec, err := vclock.DecodeSet(r.Rest())
	if err != nil {
		r.Fail(err.Error())
		return vclock.Set{}
	}
	return rec
}
