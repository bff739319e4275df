package peer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/dynakv/dynakv/record"
)

// The replica protocol's messages (MsgRead..MsgReadBatch): what a coordinator
// asks of the replicas of a key, and the keyspace commands.

// ReadRequest asks a replica for its record of Key. HintFor, when set, names the
// owner a fallback stands in for: the fallback answers with its own record merged
// with the hint it keeps for that owner.
type ReadRequest struct {
	Key     []byte
	HintFor string
}

// WriteRequest asks a replica to merge Record into its record of Key durably. With
// HintFor set (and not naming the receiver), the receiver is a fallback and keeps
// the record as a hint for that owner instead. Coordinators send it for client
// writes and read repair, hinted handoff for the hints it delivers.
type WriteRequest struct {
	Key     []byte
	Record  record.Record
	HintFor string
	// recordEnc, when set, is Record's encoding, made once for all replicas.
	recordEnc []byte
}

// WithRecordEncoding returns w carrying enc, which must be w.Record's encoding
// (record.Record.AppendBinary), sent as is instead of encoding Record again: a
// coordinator encodes a record once for all its replicas.
func (w WriteRequest) WithRecordEncoding(enc []byte) WriteRequest {
	w.recordEnc = enc
	return w
}

// AppendBinary appends the request's wire form.
func (r ReadRequest) AppendBinary(b []byte) []byte {
	b = append(b, version)
	b = appendBytes(b, r.Key)
	return appendBytes(b, []byte(r.HintFor))
}

// DecodeReadRequest decodes a ReadRequest; the result does not alias b.
func DecodeReadRequest(b []byte) (ReadRequest, error) {
	r := msgReader(b)
	req := ReadRequest{Key: r.bytes(), HintFor: string(r.bytes())}
	return req, r.done()
}

// AppendRecordReply appends the reply to a MsgRead: the replica's record.
func AppendRecordReply(b []byte, rec record.Record) []byte {
	return rec.AppendBinary(append(b, version))
}

// DecodeRecordReply decodes a MsgRead reply; the result does not alias b.
func DecodeRecordReply(b []byte) (record.Record, error) {
	r := msgReader(b)
	rec := r.record()
	return rec, r.done()
}

// AppendBinary appends the request's wire form.
func (w WriteRequest) AppendBinary(b []byte) []byte {
	b = append(b, version)
	b = appendBytes(b, w.Key)
	b = appendBytes(b, []byte(w.HintFor))
	if w.recordEnc != nil {
		return append(b, w.recordEnc...)
	}
	return w.Record.AppendBinary(b)
}

// DecodeWriteRequest decodes a WriteRequest; the result does not alias b.
func DecodeWriteRequest(b []byte) (WriteRequest, error) {
	r := msgReader(b)
	req := WriteRequest{Key: r.bytes(), HintFor: string(r.bytes())}
	req.Record = r.record()
	return req, r.done()
}

// AppendEmpty appends a body with nothing in it: a MsgFlush request, and the
// reply to a request that only needs an acknowledgement (MsgWrite, MsgFlush,
// MsgPush, MsgPurge).
func AppendEmpty(b []byte) []byte { return append(b, version) }

// DecodeEmpty checks that b is an empty body (AppendEmpty).
func DecodeEmpty(b []byte) error { return msgReader(b).done() }

// ScanRequest asks a replica for up to Count records of Partition with hashes >=
// From, in hash order.
type ScanRequest struct {
	Partition int
	From      uint64
	Count     int
}

// MaxScanCount bounds ScanRequest.Count.
const MaxScanCount = 1 << 16

// AppendBinary appends the request's wire form.
func (s ScanRequest) AppendBinary(b []byte) []byte {
	b = append(b, version)
	b = binary.AppendUvarint(b, uint64(s.Partition))
	b = binary.BigEndian.AppendUint64(b, s.From)
	return binary.AppendUvarint(b, uint64(s.Count))
}

// DecodeScanRequest decodes a ScanRequest: Partition below 2^16, Count at most
// MaxScanCount.
func DecodeScanRequest(b []byte) (ScanRequest, error) {
	r := msgReader(b)
	p := r.uvarint()
	from := r.u64()
	n := r.uvarint()
	if p >= 1<<16 || n > MaxScanCount {
		r.fail("scan bounds")
	}
	return ScanRequest{Partition: int(p), From: from, Count: int(n)}, r.done()
}

// ScanReply is a page of a replica's records. When More is set, Next is the hash to
// continue from.
type ScanReply struct {
	Keys    [][]byte
	Records []record.Record
	Next    uint64
	More    bool
}

// AppendBinary appends the reply's wire form.
func (s ScanReply) AppendBinary(b []byte) []byte {
	b = append(b, version)
	more := byte(0)
	if s.More {
		more = 1
	}
	b = append(b, more)
	b = binary.BigEndian.AppendUint64(b, s.Next)
	b = binary.AppendUvarint(b, uint64(len(s.Keys)))
	for i, k := range s.Keys {
		b = appendBytes(b, k)
		rec := s.Records[i].AppendBinary(nil)
		b = appendBytes(b, rec)
	}
	return b
}

// DecodeScanReply decodes a ScanReply; the result does not alias b.
func DecodeScanReply(b []byte) (ScanReply, error) {
	r := msgReader(b)
	var rep ScanReply
	switch r.byte() {
	case 0:
	case 1:
		rep.More = true
	default:
		r.fail("more flag")
	}
	rep.Next = r.u64()
	n := r.count(2)
	for i := 0; i < n && !r.failed(); i++ {
		rep.Keys = append(rep.Keys, r.bytes())
		sub := newReader(r.bytes())
		rep.Records = append(rep.Records, sub.record())
		if sub.failed() {
			r.fail(sub.bad)
		}
	}
	return rep, r.done()
}

// CountRequest asks a replica for the number of live keys in Partitions.
type CountRequest struct {
	Partitions []int
}

// AppendBinary appends the request's wire form.
func (c CountRequest) AppendBinary(b []byte) []byte {
	b = append(b, version)
	b = binary.AppendUvarint(b, uint64(len(c.Partitions)))
	for _, p := range c.Partitions {
		b = binary.AppendUvarint(b, uint64(p))
	}
	return b
}

// DecodeCountRequest decodes a CountRequest: every partition below 2^16.
func DecodeCountRequest(b []byte) (CountRequest, error) {
	r := msgReader(b)
	n := r.count(1)
	req := CountRequest{Partitions: make([]int, 0, n)}
	for i := 0; i < n && !r.failed(); i++ {
		p := r.uvarint()
		if p >= 1<<16 {
			r.fail("partition")
		}
		req.Partitions = append(req.Partitions, int(p))
	}
	return req, r.done()
}

// AppendCountReply appends the reply to a MsgCount: n, or 0 if n is negative.
func AppendCountReply(b []byte, n int64) []byte {
	return binary.AppendUvarint(append(b, version), uint64(max(n, 0)))
}

// DecodeCountReply decodes a MsgCount reply; the count is never negative.
func DecodeCountReply(b []byte) (int64, error) {
	r := msgReader(b)
	n := r.uvarint()
	if n > math.MaxInt64 {
		r.fail("count above int64") // would add up as a negative count
	}
	if err := r.done(); err != nil {
		return 0, err
	}
	return int64(n), nil
}

// AppendWriteBatch appends a MsgWriteBatch request: version, count, then each
// write's encoded WriteRequest (WriteRequest.AppendBinary), length-prefixed.
func AppendWriteBatch(b []byte, writes [][]byte) []byte {
	b = append(b, version)
	b = binary.AppendUvarint(b, uint64(len(writes)))
	for _, w := range writes {
		b = appendBytes(b, w)
	}
	return b
}

// DecodeWriteBatch decodes a MsgWriteBatch request; the result does not alias b.
func DecodeWriteBatch(b []byte) ([]WriteRequest, error) {
	return decodeBatch(b, 1, "write", DecodeWriteRequest) // a write is at least its length byte
}

// decodeBatch decodes a batch request: version, count, then each request,
// length-prefixed and decoded by dec. Every request takes at least minSize
// bytes. A batch with one bad request is refused whole.
func decodeBatch[T any](b []byte, minSize int, what string, dec func([]byte) (T, error)) ([]T, error) {
	r := msgReader(b)
	n := r.count(minSize)
	reqs := make([]T, 0, n)
	for i := 0; i < n && !r.failed(); i++ {
		req, err := dec(r.bytes())
		if err != nil {
			r.fail(fmt.Sprintf("%s %d: %v", what, i, err))
			break
		}
		reqs = append(reqs, req)
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return reqs, nil
}

// AppendBatchReply appends the reply to a MsgWriteBatch: version, count, then per
// write an error message, empty when it succeeded.
func AppendBatchReply(b []byte, errs []error) []byte {
	b = append(b, version)
	b = binary.AppendUvarint(b, uint64(len(errs)))
	for _, err := range errs {
		var msg []byte
		if err != nil {
			msg = []byte(err.Error())
			if len(msg) == 0 {
				msg = []byte("failed")
			}
		}
		b = appendBytes(b, msg)
	}
	return b
}

// ErrReplicaWrite is wrapped by the error of a write a peer reported failed in a
// batch reply (DecodeBatchReply).
var ErrReplicaWrite = errors.New("peer: replica write failed")

// DecodeBatchReply decodes the reply to a batch of n writes into one error per
// write (nil for success); a reply for another number of writes is refused.
func DecodeBatchReply(b []byte, n int) ([]error, error) {
	r := msgReader(b)
	if got := r.count(1); !r.failed() && got != n {
		r.fail(fmt.Sprintf("%d outcomes for %d writes", got, n))
	}
	errs := make([]error, 0, n)
	for i := 0; i < n && !r.failed(); i++ {
		if msg := r.bytes(); len(msg) > 0 {
			errs = append(errs, fmt.Errorf("%w: %s", ErrReplicaWrite, msg))
		} else {
			errs = append(errs, nil)
		}
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return errs, nil
}

// AppendReadBatch appends a MsgReadBatch request: version, count, then each
// read's encoded ReadRequest (ReadRequest.AppendBinary), length-prefixed.
func AppendReadBatch(b []byte, reads []ReadRequest) []byte {
	b = append(b, version)
	b = binary.AppendUvarint(b, uint64(len(reads)))
	var enc []byte
	for _, r := range reads {
		enc = r.AppendBinary(enc[:0])
		b = appendBytes(b, enc)
	}
	return b
}

// DecodeReadBatch decodes a MsgReadBatch request; the result does not alias b.
func DecodeReadBatch(b []byte) ([]ReadRequest, error) {
	// A read is at least its length byte, a version byte and two lengths.
	return decodeBatch(b, 4, "read", DecodeReadRequest)
}

// ReadResult is one read's outcome in a MsgReadBatch reply: the replica's record
// of the key (empty when it has none), or the error that read failed with.
type ReadResult struct {
	Record record.Record
	Err    error
}

// ErrReplicaRead is wrapped by the error of a read a peer reported failed in a
// read batch reply (DecodeReadBatchReply).
var ErrReplicaRead = errors.New("peer: replica read failed")

// The outcome tags of a read batch reply.
const (
	readOK     = 0 // a length-prefixed record follows
	readFailed = 1 // a length-prefixed, non-empty error message follows
)

// AppendReadBatchReply appends the reply to a MsgReadBatch: version, count,
// then per read its outcome: a tag byte, then the record (record.Record's
// encoding) or the error's message, length-prefixed.
func AppendReadBatchReply(b []byte, results []ReadResult) []byte {
	b = append(b, version)
	b = binary.AppendUvarint(b, uint64(len(results)))
	var enc []byte
	for _, res := range results {
		if res.Err != nil {
			msg := res.Err.Error()
			if msg == "" {
				msg = "failed"
			}
			b = appendBytes(append(b, readFailed), []byte(msg))
			continue
		}
		enc = res.Record.AppendBinary(enc[:0])
		b = appendBytes(append(b, readOK), enc)
	}
	return b
}

// DecodeReadBatchReply decodes the reply to a batch of n reads into one outcome
// per read, in the order of the request; a failed read's error wraps
// ErrReplicaRead. A reply for another number of reads, an unknown tag or an
// empty error message is refused (an error wrapping ErrBadMessage, and no
// outcome): the caller fails every read of the batch rather than misattribute
// one outcome.
func DecodeReadBatchReply(b []byte, n int) ([]ReadResult, error) {
	r := msgReader(b)
	if got := r.count(2); !r.failed() && got != n {
		r.fail(fmt.Sprintf("%d outcomes for %d reads", got, n))
	}
	out := make([]ReadResult, 0, n)
	for i := 0; i < n && !r.failed(); i++ {
		tag := r.byte()
		body := r.bytes()
		switch {
		case r.failed():
		case tag == readOK:
			sub := newReader(body)
			rec := sub.record()
			if sub.failed() {
				r.fail(fmt.Sprintf("read %d: %s", i, sub.bad))
			}
			out = append(out, ReadResult{Record: rec})
		case tag == readFailed && len(body) > 0:
			out = append(out, ReadResult{Err: fmt.Errorf("%w: %s", ErrReplicaRead, body)})
		default:
			r.fail(fmt.Sprintf("read %d: outcome tag %d, %d bytes", i, tag, len(body)))
		}
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return out, nil
}
