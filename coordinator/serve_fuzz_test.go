package coordinator

import (
	"errors"
	"slices"
	"testing"

	"github.com/dynakv/dynakv/internal/fuzzcheck"
	"github.com/dynakv/dynakv/internal/memstore"
	"github.com/dynakv/dynakv/peer"
)

// FuzzServe feeds arbitrary requests of every type to the handlers Register
// registers, what a node does with a peer's request. Properties: nothing panics;
// a handler refuses (with peer.ErrBadMessage) exactly what peer's decoder of its
// type refuses, and a type without a handler; a well-formed request is answered
// (but a scan of a partition this node does not have), with a reply that decodes
// as that type's. peer's FuzzDecodeMessage checks the decoders themselves.
func FuzzServe(f *testing.F) {
	recs := testRecords()
	seed := func(name string, typ peer.MsgType, b []byte) { fuzzcheck.Seed(f, name, uint8(typ), b) }
	seed("read", peer.MsgRead, peer.ReadRequest{Key: []byte("key"), HintFor: "owner"}.AppendBinary(nil))
	seed("write", peer.MsgWrite, peer.WriteRequest{Key: []byte("k"), Record: recs[2]}.AppendBinary(nil))
	seed("write-hint", peer.MsgWrite, peer.WriteRequest{Key: []byte("key"), Record: recs[3], HintFor: "n2"}.AppendBinary(nil))
	seed("scan", peer.MsgScan, peer.ScanRequest{Partition: 3, From: 1 << 40, Count: 17}.AppendBinary(nil))
	seed("scan-missing-partition", peer.MsgScan, peer.ScanRequest{Partition: 16, Count: 1}.AppendBinary(nil))
	seed("count", peer.MsgCount, peer.CountRequest{Partitions: []int{0, 1, 65535}}.AppendBinary(nil))
	seed("flush", peer.MsgFlush, peer.AppendEmpty(nil))
	seed("write-batch", peer.MsgWriteBatch, peer.AppendWriteBatch(nil, [][]byte{
		peer.WriteRequest{Key: []byte("a"), Record: recs[1]}.AppendBinary(nil),
		peer.WriteRequest{Key: []byte("b"), Record: recs[2], HintFor: "n3"}.AppendBinary(nil)}))
	seed("read-batch", peer.MsgReadBatch, peer.AppendReadBatch(nil, []peer.ReadRequest{{Key: []byte("a")}, {Key: []byte("b"), HintFor: "n3"}}))
	seed("write-truncated", peer.MsgWrite, peer.WriteRequest{Key: []byte("k"), Record: recs[2]}.AppendBinary(nil)[:12])
	seed("unknown-type", 0, peer.AppendEmpty(nil))

	st := memstore.New(16)
	srv, err := New(Config{Actor: "srv:1"}, st)
	if err != nil {
		f.Fatal(err)
	}
	mux := serverOf(srv)
	runs := 0
	f.Fuzz(func(t *testing.T, typ uint8, b []byte) {
		if runs++; runs%256 == 0 {
			_ = st.DropAll() // keep the store fed by fuzzed writes small
		}
		decErr := decode(peer.MsgType(typ), b)
		out, err := mux.ServeCluster(t.Context(), "peer", typ, slices.Clone(b))
		if decErr != nil {
			if !errors.Is(err, peer.ErrBadMessage) {
				t.Fatalf("serve(%d) of what does not decode: %v", typ, err)
			}
			return
		}
		if err != nil {
			// A scan of a partition this node does not have is the only
			// refusal of a well-formed request.
			if req, _ := peer.DecodeScanRequest(b); peer.MsgType(typ) != peer.MsgScan || req.Partition < st.Partitions() {
				t.Fatalf("serve(%d) refused a well-formed request: %v", typ, err)
			}
			return
		}
		var repErr error
		switch peer.MsgType(typ) {
		case peer.MsgRead:
			_, repErr = peer.DecodeRecordReply(out)
		case peer.MsgWrite, peer.MsgFlush:
			repErr = peer.DecodeEmpty(out)
		case peer.MsgScan:
			_, repErr = peer.DecodeScanReply(out)
		case peer.MsgCount:
			_, repErr = peer.DecodeCountReply(out)
		case peer.MsgReadBatch:
			reqs, _ := peer.DecodeReadBatch(b)
			var res []peer.ReadResult
			res, repErr = peer.DecodeReadBatchReply(out, len(reqs))
			for i, r := range res {
				if r.Err != nil {
					t.Fatalf("serve failed read %d of a well-formed batch: %v", i, r.Err)
				}
			}
		case peer.MsgWriteBatch:
			reqs, _ := peer.DecodeWriteBatch(b)
			var errs []error
			errs, repErr = peer.DecodeBatchReply(out, len(reqs))
			for i, err := range errs {
				if err != nil {
					t.Fatalf("serve failed write %d of a well-formed batch: %v", i, err)
				}
			}
		}
		if repErr != nil {
			t.Fatalf("serve(%d)'s reply does not decode: %v", typ, repErr)
		}
	})
}

// decode decodes b as a request of the replica protocol's type typ, returning
// the decoder's error; a type the protocol does not have is ErrBadMessage.
func decode(typ peer.MsgType, b []byte) error {
	var err error
	switch typ {
	case peer.MsgRead:
		_, err = peer.DecodeReadRequest(b)
	case peer.MsgWrite:
		_, err = peer.DecodeWriteRequest(b)
	case peer.MsgScan:
		_, err = peer.DecodeScanRequest(b)
	case peer.MsgCount:
		_, err = peer.DecodeCountRequest(b)
	case peer.MsgFlush:
		err = peer.DecodeEmpty(b)
	case peer.MsgWriteBatch:
		_, err = peer.DecodeWriteBatch(b)
	case peer.MsgReadBatch:
		_, err = peer.DecodeReadBatch(b)
	default:
		err = peer.ErrBadMessage
	}
	return err
}
