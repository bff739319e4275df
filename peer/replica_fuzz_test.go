package peer

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/dynakv/dynakv/internal/fuzzcheck"
	"github.com/dynakv/dynakv/record"
)

// replyFlag marks a FuzzDecodeMessage input as the reply to a request of type
// typ&^replyFlag rather than the request itself.
const replyFlag = 0x80

// FuzzDecodeMessage is the target of every message of the replica protocol, both
// directions: typ MsgRead..MsgReadBatch feeds b to that type's request decoder
// (what a node does with a peer's request), typ|replyFlag feeds b to the decoder
// of the reply to such a request (what a coordinator does with it). Properties:
// nothing panics; every failure wraps ErrBadMessage; a decoder allocates at most a
// small multiple of its input; whatever decodes re-encodes to bytes that decode to
// the same value (decode(encode(x)) == x); numbers respect their bounds.
// coordinator's FuzzServe feeds the same requests to the handlers.
func FuzzDecodeMessage(f *testing.F) {
	recs := testRecords()
	seed := func(name string, typ MsgType, b []byte) { fuzzcheck.Seed(f, name, uint8(typ), b) }
	seed("read-empty", MsgRead, ReadRequest{Key: []byte{}}.AppendBinary(nil))
	seed("read-hint", MsgRead, ReadRequest{Key: []byte("key"), HintFor: "owner"}.AppendBinary(nil))
	seed("read-huge-key-length", MsgRead, []byte{version, 0xff, 0xff, 0xff, 0xff, 0x0f})
	for i, rec := range recs {
		seed("write-record-"+string(rune('0'+i)), MsgWrite, WriteRequest{Key: []byte("k"), Record: rec}.AppendBinary(nil))
		seed("read-reply-"+string(rune('0'+i)), MsgRead|replyFlag, AppendRecordReply(nil, rec))
	}
	seed("write-hint", MsgWrite, WriteRequest{Key: []byte("key"), Record: recs[3], HintFor: "n2"}.AppendBinary(nil))
	seed("write-truncated", MsgWrite, WriteRequest{Key: []byte("k"), Record: recs[2]}.AppendBinary(nil)[:12])
	seed("scan-zero", MsgScan, ScanRequest{}.AppendBinary(nil))
	seed("scan-page", MsgScan, ScanRequest{Partition: 3, From: 1 << 40, Count: 17}.AppendBinary(nil))
	seed("scan-out-of-bounds", MsgScan, ScanRequest{Partition: 1 << 16, Count: MaxScanCount + 1}.AppendBinary(nil))
	seed("scan-reply-empty", MsgScan|replyFlag, ScanReply{}.AppendBinary(nil))
	seed("scan-reply-page", MsgScan|replyFlag, ScanReply{Keys: [][]byte{[]byte("a"), []byte("b")}, Records: recs[2:], Next: 9, More: true}.AppendBinary(nil))
	seed("scan-reply-empty-key", MsgScan|replyFlag, ScanReply{Keys: [][]byte{{}}, Records: recs[:1]}.AppendBinary(nil))
	seed("scan-reply-huge-count", MsgScan|replyFlag, []byte{version, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	seed("count-none", MsgCount, CountRequest{}.AppendBinary(nil))
	seed("count-three", MsgCount, CountRequest{Partitions: []int{0, 1, 65535}}.AppendBinary(nil))
	seed("count-partition-too-big", MsgCount, []byte{version, 1, 0x80, 0x80, 0x04})
	seed("count-reply", MsgCount|replyFlag, []byte{version, 42})
	seed("count-reply-max", MsgCount|replyFlag, []byte{version, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	seed("flush", MsgFlush, AppendEmpty(nil))
	batch := [][]byte{WriteRequest{Key: []byte("a"), Record: recs[1]}.AppendBinary(nil),
		WriteRequest{Key: []byte("b"), Record: recs[2], HintFor: "n3"}.AppendBinary(nil)}
	seed("write-batch", MsgWriteBatch, AppendWriteBatch(nil, batch))
	seed("write-batch-empty", MsgWriteBatch, AppendWriteBatch(nil, nil))
	seed("write-batch-bad-inner", MsgWriteBatch, []byte{version, 1, 2, version, 0xff})
	seed("write-batch-huge-count", MsgWriteBatch, []byte{version, 0xff, 0xff, 0xff, 0xff, 0x0f})
	seed("write-batch-reply", MsgWriteBatch|replyFlag, AppendBatchReply(nil, []error{nil, errors.New("disk full"), nil}))
	seed("write-batch-reply-empty", MsgWriteBatch|replyFlag, AppendBatchReply(nil, nil))
	reads := []ReadRequest{{Key: []byte("a")}, {Key: []byte{}, HintFor: "n3"}, {Key: bytes.Repeat([]byte("k"), 200)}}
	seed("read-batch", MsgReadBatch, AppendReadBatch(nil, reads))
	seed("read-batch-empty", MsgReadBatch, AppendReadBatch(nil, nil))
	seed("read-batch-bad-inner", MsgReadBatch, []byte{version, 1, 3, version, 0xff, 0})
	seed("read-batch-huge-count", MsgReadBatch, []byte{version, 0xff, 0xff, 0xff, 0xff, 0x0f})
	seed("read-batch-reply", MsgReadBatch|replyFlag, AppendReadBatchReply(nil, []ReadResult{{Record: recs[2]}, {Err: errors.New("disk")}, {Record: recs[0]}}))
	seed("read-batch-reply-empty", MsgReadBatch|replyFlag, AppendReadBatchReply(nil, nil))
	seed("read-batch-reply-bad-tag", MsgReadBatch|replyFlag, []byte{version, 1, 2, 1, 'x'})
	seed("read-batch-reply-empty-error", MsgReadBatch|replyFlag, []byte{version, 1, 1, 0})
	seed("unknown-type", 0, []byte{version})

	f.Fuzz(func(t *testing.T, typ uint8, b []byte) {
		if typ&replyFlag != 0 {
			checkReply(t, MsgType(typ&^replyFlag), b)
			return
		}
		var err error
		fuzzcheck.CheckAlloc(t, "decoding", len(b), 64, func() { err = checkRequest(t, MsgType(typ), b) })
		if err != nil && !errors.Is(err, ErrBadMessage) {
			t.Fatalf("request type %d: error %v does not wrap ErrBadMessage", typ, err)
		}
	})
}

// checkRequest decodes b as a request of type typ of the replica protocol and
// checks the round trip. It returns the decoder's error (nil for a type it does
// not know).
func checkRequest(t *testing.T, typ MsgType, b []byte) error {
	var err error
	switch typ {
	case MsgRead:
		var req ReadRequest
		if req, err = DecodeReadRequest(b); err == nil {
			again, err2 := DecodeReadRequest(req.AppendBinary(nil))
			if err2 != nil || !bytes.Equal(again.Key, req.Key) || again.HintFor != req.HintFor {
				t.Fatalf("read request round trip: %+v, %v (first %+v)", again, err2, req)
			}
		}
	case MsgWrite:
		var req WriteRequest
		if req, err = DecodeWriteRequest(b); err == nil {
			again, err2 := DecodeWriteRequest(req.AppendBinary(nil))
			if err2 != nil || !bytes.Equal(again.Key, req.Key) || again.HintFor != req.HintFor || !encodes(again.Record, req.Record) {
				t.Fatalf("write request round trip: %+v, %v (first %+v)", again, err2, req)
			}
		}
	case MsgScan:
		var req ScanRequest
		if req, err = DecodeScanRequest(b); err == nil {
			if req.Partition < 0 || req.Partition >= 1<<16 || req.Count < 0 || req.Count > MaxScanCount {
				t.Fatalf("decoded out-of-bounds scan request %+v", req)
			}
			if again, err2 := DecodeScanRequest(req.AppendBinary(nil)); err2 != nil || again != req {
				t.Fatalf("scan request round trip: %+v, %v (first %+v)", again, err2, req)
			}
		}
	case MsgCount:
		var req CountRequest
		if req, err = DecodeCountRequest(b); err == nil {
			if cap(req.Partitions) > len(b) {
				t.Fatalf("%d bytes made room for %d partitions", len(b), cap(req.Partitions))
			}
			for _, p := range req.Partitions {
				if p < 0 || p >= 1<<16 {
					t.Fatalf("decoded partition %d", p)
				}
			}
			again, err2 := DecodeCountRequest(req.AppendBinary(nil))
			if err2 != nil || !slices.Equal(again.Partitions, req.Partitions) {
				t.Fatalf("count request round trip: %+v, %v (first %+v)", again, err2, req)
			}
		}
	case MsgWriteBatch:
		var reqs []WriteRequest
		if reqs, err = DecodeWriteBatch(b); err == nil {
			batch := make([][]byte, len(reqs))
			for i, req := range reqs {
				batch[i] = req.AppendBinary(nil)
			}
			again, err2 := DecodeWriteBatch(AppendWriteBatch(nil, batch))
			if err2 != nil || len(again) != len(reqs) {
				t.Fatalf("write batch round trip: %d writes, %v (first %d)", len(again), err2, len(reqs))
			}
			for i := range reqs {
				if !bytes.Equal(again[i].Key, reqs[i].Key) || again[i].HintFor != reqs[i].HintFor || !encodes(again[i].Record, reqs[i].Record) {
					t.Fatalf("write batch round trip: write %d changed", i)
				}
			}
		}
	case MsgReadBatch:
		var reqs []ReadRequest
		if reqs, err = DecodeReadBatch(b); err == nil {
			again, err2 := DecodeReadBatch(AppendReadBatch(nil, reqs))
			if err2 != nil || len(again) != len(reqs) {
				t.Fatalf("read batch round trip: %d reads, %v (first %d)", len(again), err2, len(reqs))
			}
			for i := range reqs {
				if !bytes.Equal(again[i].Key, reqs[i].Key) || again[i].HintFor != reqs[i].HintFor {
					t.Fatalf("read batch round trip: read %d changed", i)
				}
			}
		}
	case MsgFlush:
		err = DecodeEmpty(b)
	}
	return err
}

// checkReply decodes b as a peer's reply to a request of type typ.
func checkReply(t *testing.T, typ MsgType, b []byte) {
	var err error
	fuzzcheck.CheckAlloc(t, "decoding a reply", len(b), 64, func() {
		switch typ {
		case MsgRead:
			var rec record.Record
			if rec, err = DecodeRecordReply(b); err == nil {
				again, err2 := DecodeRecordReply(AppendRecordReply(nil, rec))
				if err2 != nil || !encodes(again, rec) {
					t.Fatalf("read reply round trip: %v, %v (first %v)", again, err2, rec)
				}
			}
		case MsgScan:
			var rep ScanReply
			if rep, err = DecodeScanReply(b); err == nil {
				checkScanReply(t, rep)
			}
		case MsgCount:
			var n int64
			if n, err = DecodeCountReply(b); err == nil {
				if n < 0 {
					t.Fatalf("count reply %x decoded as %d", b, n)
				}
				if again, err2 := DecodeCountReply(AppendCountReply(nil, n)); err2 != nil || again != n {
					t.Fatalf("count reply round trip: %d, %v (first %d)", again, err2, n)
				}
			}
		case MsgWriteBatch:
			// Read as the reply to a batch of as many writes as it claims, and of
			// one more, which must be refused.
			r := msgReader(b)
			n := r.count(1)
			var errs []error
			if errs, err = DecodeBatchReply(b, n); err == nil {
				if len(errs) != n {
					t.Fatalf("batch reply for %d writes decoded %d outcomes", n, len(errs))
				}
				if _, err2 := DecodeBatchReply(b, n+1); !errors.Is(err2, ErrBadMessage) {
					t.Fatalf("batch reply of %d outcomes accepted for %d writes: %v", n, n+1, err2)
				}
			}
		case MsgReadBatch:
			r := msgReader(b)
			n := r.count(2)
			var res []ReadResult
			if res, err = DecodeReadBatchReply(b, n); err == nil {
				checkReadBatchReply(t, b, n, res)
			}
		}
	})
	if err != nil && !errors.Is(err, ErrBadMessage) {
		t.Fatalf("reply to type %d: error %v does not wrap ErrBadMessage", typ, err)
	}
}

func checkScanReply(t *testing.T, rep ScanReply) {
	if len(rep.Keys) != len(rep.Records) {
		t.Fatalf("%d keys, %d records", len(rep.Keys), len(rep.Records))
	}
	again, err := DecodeScanReply(rep.AppendBinary(nil))
	if err != nil || again.More != rep.More || again.Next != rep.Next || len(again.Keys) != len(rep.Keys) {
		t.Fatalf("scan reply round trip: %+v, %v (first %+v)", again, err, rep)
	}
	for i := range rep.Keys {
		if !bytes.Equal(again.Keys[i], rep.Keys[i]) || !encodes(again.Records[i], rep.Records[i]) {
			t.Fatalf("scan reply entry %d changed on re-decode", i)
		}
	}
}

// checkReadBatchReply checks a decoded reply to n reads: one outcome per read,
// each a record or an error wrapping ErrReplicaRead; the same outcomes after a
// round trip (canonical: the same bytes again, once every error is as decoded);
// refused for n+1 reads.
func checkReadBatchReply(t *testing.T, b []byte, n int, res []ReadResult) {
	if len(res) != n {
		t.Fatalf("read batch reply for %d reads decoded %d outcomes", n, len(res))
	}
	for i, r := range res {
		if r.Err != nil && !errors.Is(r.Err, ErrReplicaRead) {
			t.Fatalf("outcome %d: error %v does not wrap ErrReplicaRead", i, r.Err)
		}
	}
	again, err := DecodeReadBatchReply(AppendReadBatchReply(nil, res), n)
	if err != nil || len(again) != n {
		t.Fatalf("read batch reply round trip: %d outcomes, %v (first %d)", len(again), err, n)
	}
	for i := range res {
		if (again[i].Err == nil) != (res[i].Err == nil) || !encodes(again[i].Record, res[i].Record) {
			t.Fatalf("read batch reply round trip: outcome %d changed: %+v, first %+v", i, again[i], res[i])
		}
	}
	if _, err := DecodeReadBatchReply(b, n+1); !errors.Is(err, ErrBadMessage) {
		t.Fatalf("read batch reply of %d outcomes accepted for %d reads: %v", n, n+1, err)
	}
}
