package coordinator

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/dynakv/dynakv/internal/memstore"
	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/vclock"
)

// testRecords are records of growing complexity: empty, one value, siblings of two
// actors, a tombstone with expiry and flags.
func testRecords() []record.Record {
	r1 := vclock.Update(vclock.Set{}, nil, "n1:1", vclock.Value{Data: []byte("v1"), Timestamp: 5}, 5, 1)
	r2 := vclock.Update(r1, nil, "n2:1", vclock.Value{Data: []byte{}, Flags: 7, Expiry: 99, Timestamp: 6}, 6, 1_000_000)
	r3 := vclock.Update(r2, r2.Join(), "n3:2", vclock.Value{Tombstone: true, Timestamp: 7}, 7, 1)
	return []record.Record{{}, record.String(r1), record.String(r2), record.String(r3)}
}

func encodes(a, b record.Record) bool { return bytes.Equal(a.AppendBinary(nil), b.AppendBinary(nil)) }

// serverOf returns a mux with c's handlers: what a node's transport serves.
func serverOf(c *Coordinator) *peer.Mux {
	m := peer.NewMux()
	c.Register(m)
	return m
}

// serve hands one request to c's handlers as a peer's would arrive.
func serve(ctx context.Context, c *Coordinator, typ peer.MsgType, req []byte) ([]byte, error) {
	return serverOf(c).ServeCluster(ctx, "peer", uint8(typ), req)
}

// TestServeRoundTrip drives every message type through the handlers and
// RemotePeers, as a transport would, and malformed ones into the handlers.
func TestServeRoundTrip(t *testing.T) {
	st := memstore.New(16)
	srv, err := New(Config{Actor: "srv:1"}, st)
	if err != nil {
		t.Fatal(err)
	}
	mux := serverOf(srv)
	caller := peer.CallerFunc(func(ctx context.Context, node string, typ peer.MsgType, req []byte) ([]byte, error) {
		return mux.ServeCluster(ctx, "test", uint8(typ), slices.Clone(req))
	})
	peers := RemotePeers(caller)
	ctx := context.Background()
	rec := testRecords()[2]
	if err := peers.Write(ctx, "srv", peer.WriteRequest{Key: []byte("k"), Record: rec}); err != nil {
		t.Fatal(err)
	}
	if err := peers.Write(ctx, "srv", peer.WriteRequest{Key: []byte("k"), Record: testRecords()[1], HintFor: "other"}); err != nil {
		t.Fatal(err)
	}
	if got, err := peers.Read(ctx, "srv", peer.ReadRequest{Key: []byte("k")}); err != nil || !encodes(got, rec) {
		t.Fatalf("Read: %v, %v", got, err)
	}
	if got, err := peers.Read(ctx, "srv", peer.ReadRequest{Key: []byte("k"), HintFor: "other"}); err != nil || !encodes(got, record.String(vclock.Sync(rec.Str, testRecords()[1].Str))) {
		t.Fatalf("Read with HintFor: %v, %v", got, err)
	}
	if got, err := peers.Read(ctx, "srv", peer.ReadRequest{Key: []byte("absent")}); err != nil || !got.Empty() {
		t.Fatalf("Read of an absent key: %v, %v", got, err)
	}
	p := st.PartitionOf([]byte("k"))
	if rep, err := peers.Scan(ctx, "srv", peer.ScanRequest{Partition: p, Count: 10}); err != nil || len(rep.Keys) != 1 || rep.More {
		t.Fatalf("Scan: %+v, %v", rep, err)
	}
	if _, err := peers.Scan(ctx, "srv", peer.ScanRequest{Partition: 16, Count: 10}); !errors.Is(err, peer.ErrBadMessage) {
		t.Fatalf("Scan of partition 16 of 16: %v", err)
	}
	if n, err := peers.Count(ctx, "srv", peer.CountRequest{Partitions: []int{p, p ^ 1, 99}}); err != nil || n != 1 {
		t.Fatalf("Count: %d, %v", n, err)
	}
	if err := peers.Flush(ctx, "srv"); err != nil || st.Count() != 0 || st.HintCount() != 0 {
		t.Fatalf("Flush: %v, %d records, %d hints left", err, st.Count(), st.HintCount())
	}
	empty := peer.AppendEmpty(nil)
	body := func(b ...byte) []byte { return append(peer.AppendEmpty(nil), b...) }
	for _, tc := range []struct {
		typ peer.MsgType
		req []byte
	}{
		{0, empty}, {99, nil}, {peer.MsgRead, nil}, {peer.MsgWrite, empty},
		{peer.MsgScan, body(1)}, {peer.MsgCount, body(5)}, {peer.MsgFlush, body(0)},
	} {
		if _, err := serve(ctx, srv, tc.typ, tc.req); !errors.Is(err, peer.ErrBadMessage) {
			t.Errorf("serve(%v, %x): %v, want ErrBadMessage", tc.typ, tc.req, err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	for typ := peer.MsgRead; typ <= peer.MsgWriteBatch; typ++ {
		if _, err := serve(cctx, srv, typ, empty); !errors.Is(err, context.Canceled) {
			t.Errorf("serve(%v) with a cancelled context: %v", typ, err)
		}
	}
}

// TestCountReplyAboveInt64: a peer's count reply above MaxInt64 is refused, not
// added to DBSIZE as a negative number (found by FuzzDecodeMessage; the input is
// the seed count-reply-max).
func TestCountReplyAboveInt64(t *testing.T) {
	huge := binary.AppendUvarint(peer.AppendEmpty(nil), math.MaxInt64+1)
	peers := RemotePeers(peer.CallerFunc(func(context.Context, string, peer.MsgType, []byte) ([]byte, error) { return huge, nil }))
	if n, err := peers.Count(context.Background(), "peer", peer.CountRequest{}); !errors.Is(err, peer.ErrBadMessage) {
		t.Fatalf("Count = %d, %v; want peer.ErrBadMessage", n, err)
	}
}
