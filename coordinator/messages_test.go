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
	"github.com/dynakv/dynakv/vclock"
)

// testRecords are records of growing complexity: empty, one value, siblings of two
// actors, a tombstone with expiry and flags.
func testRecords() []vclock.Set {
	r1 := vclock.Update(vclock.Set{}, nil, "n1:1", vclock.Value{Data: []byte("v1"), Timestamp: 5}, 5, 1)
	r2 := vclock.Update(r1, nil, "n2:1", vclock.Value{Data: []byte{}, Flags: 7, Expiry: 99, Timestamp: 6}, 6, 1_000_000)
	r3 := vclock.Update(r2, r2.Join(), "n3:2", vclock.Value{Tombstone: true, Timestamp: 7}, 7, 1)
	return []vclock.Set{{}, r1, r2, r3}
}

func encodes(a, b vclock.Set) bool { return bytes.Equal(a.AppendBinary(nil), b.AppendBinary(nil)) }

func TestReadRequestRoundTrip(t *testing.T) {
	for _, req := range []ReadRequest{
		{Key: []byte{}},
		{Key: []byte("k")},
		{Key: []byte("key"), HintFor: "n2"},
		{Key: bytes.Repeat([]byte{0xff}, 300), HintFor: string(bytes.Repeat([]byte("o"), 255))},
	} {
		b := req.AppendBinary([]byte("prefix"))
		got, err := DecodeReadRequest(b[len("prefix"):])
		if err != nil || !bytes.Equal(got.Key, req.Key) || got.HintFor != req.HintFor {
			t.Errorf("round trip of %+v: %+v, %v", req, got, err)
		}
	}
}

func TestWriteRequestRoundTrip(t *testing.T) {
	for i, rec := range testRecords() {
		for _, hint := range []string{"", "n3"} {
			req := WriteRequest{Key: []byte{byte(i), 'k'}, Record: rec, HintFor: hint}
			got, err := DecodeWriteRequest(req.AppendBinary(nil))
			if err != nil || !bytes.Equal(got.Key, req.Key) || got.HintFor != hint || !encodes(got.Record, rec) {
				t.Errorf("round trip of record %d hint %q: %+v, %v", i, hint, got, err)
			}
		}
	}
}

func TestScanRequestRoundTrip(t *testing.T) {
	for _, req := range []ScanRequest{
		{}, {Partition: 1, From: 2, Count: 3}, {Partition: 1<<16 - 1, From: ^uint64(0), Count: maxScanCount},
	} {
		got, err := DecodeScanRequest(req.AppendBinary(nil))
		if err != nil || got != req {
			t.Errorf("round trip of %+v: %+v, %v", req, got, err)
		}
	}
	for _, bad := range []ScanRequest{{Partition: 1 << 16}, {Count: maxScanCount + 1}} {
		if _, err := DecodeScanRequest(bad.AppendBinary(nil)); !errors.Is(err, ErrBadMessage) {
			t.Errorf("out-of-bounds %+v decoded: %v", bad, err)
		}
	}
}

func TestScanReplyRoundTrip(t *testing.T) {
	recs := testRecords()
	for _, rep := range []ScanReply{
		{},
		{More: true, Next: 42},
		{Keys: [][]byte{[]byte("a"), {}, []byte("ccc")}, Records: recs[1:], Next: ^uint64(0), More: true},
		{Keys: [][]byte{[]byte("empty record")}, Records: recs[:1]},
	} {
		got, err := DecodeScanReply(rep.AppendBinary(nil))
		if err != nil || got.More != rep.More || got.Next != rep.Next || len(got.Keys) != len(rep.Keys) || len(got.Records) != len(rep.Keys) {
			t.Fatalf("round trip of %+v: %+v, %v", rep, got, err)
		}
		for i := range rep.Keys {
			if !bytes.Equal(got.Keys[i], rep.Keys[i]) || !encodes(got.Records[i], rep.Records[i]) {
				t.Errorf("entry %d: %q %v, want %q %v", i, got.Keys[i], got.Records[i], rep.Keys[i], rep.Records[i])
			}
		}
	}
}

func TestCountRequestRoundTrip(t *testing.T) {
	for _, req := range []CountRequest{{}, {Partitions: []int{0}}, {Partitions: []int{5, 1, 1<<16 - 1, 300}}} {
		got, err := DecodeCountRequest(req.AppendBinary(nil))
		if err != nil || !slices.Equal(got.Partitions, req.Partitions) {
			t.Errorf("round trip of %+v: %+v, %v", req, got, err)
		}
	}
	if _, err := DecodeCountRequest(CountRequest{Partitions: []int{1 << 16}}.AppendBinary(nil)); !errors.Is(err, ErrBadMessage) {
		t.Errorf("partition 65536 decoded: %v", err)
	}
}

func TestDecodeRejects(t *testing.T) {
	good := WriteRequest{Key: []byte("k"), Record: testRecords()[2], HintFor: "h"}.AppendBinary(nil)
	for name, b := range map[string][]byte{
		"empty":             nil,
		"bad version":       {2, 0, 0},
		"truncated":         good[:len(good)-1],
		"key past the end":  {msgVersion, 9, 'k'},
		"trailing bytes":    append(ReadRequest{Key: []byte("k")}.AppendBinary(nil), 0),
		"count beyond data": {msgVersion, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0x01},
	} {
		for _, dec := range []func([]byte) error{
			func(b []byte) error { _, err := DecodeReadRequest(b); return err },
			func(b []byte) error { _, err := DecodeWriteRequest(b); return err },
			func(b []byte) error { _, err := DecodeScanRequest(b); return err },
			func(b []byte) error { _, err := DecodeScanReply(b); return err },
			func(b []byte) error { _, err := DecodeCountRequest(b); return err },
		} {
			if err := dec(b); err != nil && !errors.Is(err, ErrBadMessage) {
				t.Errorf("%s: error %v does not wrap ErrBadMessage", name, err)
			}
		}
	}
	for _, dec := range []func([]byte) error{
		func(b []byte) error { _, err := DecodeReadRequest(b); return err },
		func(b []byte) error { _, err := DecodeWriteRequest(b); return err },
	} {
		if err := dec(good[:len(good)-1]); err == nil {
			t.Error("a truncated message decoded")
		}
	}
}

// TestServeRoundTrip drives every message type through Serve and RemotePeers, as
// a transport would, and malformed ones into Serve.
func TestServeRoundTrip(t *testing.T) {
	st := memstore.New(16)
	srv, err := New(Config{Actor: "srv:1"}, st)
	if err != nil {
		t.Fatal(err)
	}
	caller := CallerFunc(func(ctx context.Context, node string, typ uint8, req []byte) ([]byte, error) {
		return srv.Serve(ctx, typ, slices.Clone(req))
	})
	peers := RemotePeers(caller)
	ctx := context.Background()
	rec := testRecords()[2]
	if err := peers.Write(ctx, "srv", WriteRequest{Key: []byte("k"), Record: rec}); err != nil {
		t.Fatal(err)
	}
	if err := peers.Write(ctx, "srv", WriteRequest{Key: []byte("k"), Record: testRecords()[1], HintFor: "other"}); err != nil {
		t.Fatal(err)
	}
	if got, err := peers.Read(ctx, "srv", ReadRequest{Key: []byte("k")}); err != nil || !encodes(got, rec) {
		t.Fatalf("Read: %v, %v", got, err)
	}
	if got, err := peers.Read(ctx, "srv", ReadRequest{Key: []byte("k"), HintFor: "other"}); err != nil || !encodes(got, vclock.Sync(rec, testRecords()[1])) {
		t.Fatalf("Read with HintFor: %v, %v", got, err)
	}
	if got, err := peers.Read(ctx, "srv", ReadRequest{Key: []byte("absent")}); err != nil || !got.Empty() {
		t.Fatalf("Read of an absent key: %v, %v", got, err)
	}
	p := st.PartitionOf([]byte("k"))
	if rep, err := peers.Scan(ctx, "srv", ScanRequest{Partition: p, Count: 10}); err != nil || len(rep.Keys) != 1 || rep.More {
		t.Fatalf("Scan: %+v, %v", rep, err)
	}
	if _, err := peers.Scan(ctx, "srv", ScanRequest{Partition: 16, Count: 10}); !errors.Is(err, ErrBadMessage) {
		t.Fatalf("Scan of partition 16 of 16: %v", err)
	}
	if n, err := peers.Count(ctx, "srv", CountRequest{Partitions: []int{p, p ^ 1, 99}}); err != nil || n != 1 {
		t.Fatalf("Count: %d, %v", n, err)
	}
	if err := peers.Flush(ctx, "srv"); err != nil || st.Count() != 0 || st.HintCount() != 0 {
		t.Fatalf("Flush: %v, %d records, %d hints left", err, st.Count(), st.HintCount())
	}
	for _, tc := range []struct {
		typ uint8
		req []byte
	}{
		{0, []byte{msgVersion}}, {99, nil}, {MsgRead, nil}, {MsgWrite, []byte{msgVersion}},
		{MsgScan, []byte{msgVersion, 1}}, {MsgCount, []byte{msgVersion, 5}}, {MsgFlush, []byte{msgVersion, 0}},
	} {
		if _, err := srv.Serve(ctx, tc.typ, tc.req); !errors.Is(err, ErrBadMessage) {
			t.Errorf("Serve(%d, %x): %v, want ErrBadMessage", tc.typ, tc.req, err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := srv.Serve(cctx, MsgRead, ReadRequest{Key: []byte("k")}.AppendBinary(nil)); !errors.Is(err, context.Canceled) {
		t.Errorf("Serve with a cancelled context: %v", err)
	}
}

// TestCountReplyAboveInt64: a peer's count reply above MaxInt64 is refused, not
// added to DBSIZE as a negative number (found by FuzzDecodeMessage; the input is
// the seed count-reply-max).
func TestCountReplyAboveInt64(t *testing.T) {
	huge := binary.AppendUvarint([]byte{msgVersion}, math.MaxInt64+1)
	peers := RemotePeers(CallerFunc(func(context.Context, string, uint8, []byte) ([]byte, error) { return huge, nil }))
	if n, err := peers.Count(context.Background(), "peer", CountRequest{}); !errors.Is(err, ErrBadMessage) {
		t.Fatalf("Count = %d, %v; want ErrBadMessage", n, err)
	}
}
