package peer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

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
		{}, {Partition: 1, From: 2, Count: 3}, {Partition: 1<<16 - 1, From: ^uint64(0), Count: MaxScanCount},
	} {
		got, err := DecodeScanRequest(req.AppendBinary(nil))
		if err != nil || got != req {
			t.Errorf("round trip of %+v: %+v, %v", req, got, err)
		}
	}
	for _, bad := range []ScanRequest{{Partition: 1 << 16}, {Count: MaxScanCount + 1}} {
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
		"key past the end":  {version, 9, 'k'},
		"trailing bytes":    append(ReadRequest{Key: []byte("k")}.AppendBinary(nil), 0),
		"count beyond data": {version, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0x01},
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

// TestCountReplyAboveInt64: a peer's count reply above MaxInt64 is refused, not
// added to DBSIZE as a negative number (found by FuzzDecodeMessage; the input is
// the seed count-reply-max).
func TestCountReplyAboveInt64(t *testing.T) {
	if n, err := DecodeCountReply(binary.AppendUvarint([]byte{version}, math.MaxInt64+1)); !errors.Is(err, ErrBadMessage) {
		t.Fatalf("DecodeCountReply = %d, %v; want ErrBadMessage", n, err)
	}
	if n, err := DecodeCountReply(AppendCountReply(nil, -5)); err != nil || n != 0 {
		t.Fatalf("negative count: %d, %v; want 0", n, err)
	}
}

// TestWriteBatchReplyMismatch: a batch reply that does not hold one outcome per
// write fails every write of the batch rather than misattributing outcomes.
func TestWriteBatchReplyMismatch(t *testing.T) {
	for _, reply := range [][]byte{
		AppendBatchReply(nil, []error{nil}),
		AppendBatchReply(nil, []error{nil, nil, nil}),
		{version},
		nil,
	} {
		if _, err := DecodeBatchReply(reply, 2); !errors.Is(err, ErrBadMessage) {
			t.Errorf("reply %x for 2 writes: %v, want ErrBadMessage", reply, err)
		}
	}
	errs, err := DecodeBatchReply(AppendBatchReply(nil, []error{nil, errors.New(""), errors.New("x")}), 3)
	if err != nil || errs[0] != nil || !errors.Is(errs[1], ErrReplicaWrite) || !errors.Is(errs[2], ErrReplicaWrite) {
		t.Fatalf("DecodeBatchReply = %v, %v", errs, err)
	}
}

// TestEmpty: an empty body is exactly its version byte.
func TestEmpty(t *testing.T) {
	if err := DecodeEmpty(AppendEmpty(nil)); err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{nil, {version, 0}, {version + 1}} {
		if err := DecodeEmpty(b); !errors.Is(err, ErrBadMessage) {
			t.Errorf("DecodeEmpty(%x) = %v, want ErrBadMessage", b, err)
		}
	}
}

// TestReadBatchRoundTrip: a read batch, and its reply with records and errors
// mixed, decode to what was encoded, in order.
func TestReadBatchRoundTrip(t *testing.T) {
	recs := testRecords()
	for _, reads := range [][]ReadRequest{
		nil,
		{{Key: []byte("k")}},
		{{Key: []byte{}}, {Key: []byte("k"), HintFor: "n2"}, {Key: bytes.Repeat([]byte{0xff}, 300), HintFor: "o"}},
	} {
		got, err := DecodeReadBatch(AppendReadBatch(nil, reads))
		if err != nil || len(got) != len(reads) {
			t.Fatalf("round trip of %d reads: %d, %v", len(reads), len(got), err)
		}
		for i := range reads {
			if !bytes.Equal(got[i].Key, reads[i].Key) || got[i].HintFor != reads[i].HintFor {
				t.Errorf("read %d: %+v, want %+v", i, got[i], reads[i])
			}
		}
	}
	results := []ReadResult{{Record: recs[3]}, {Err: errors.New("disk on fire")}, {Record: recs[0]}, {Err: errors.New("")}, {Record: recs[1]}}
	got, err := DecodeReadBatchReply(AppendReadBatchReply(nil, results), len(results))
	if err != nil || len(got) != len(results) {
		t.Fatalf("reply round trip: %d outcomes, %v", len(got), err)
	}
	for i, want := range results {
		switch {
		case want.Err != nil && !errors.Is(got[i].Err, ErrReplicaRead):
			t.Errorf("outcome %d: error %v, want one wrapping ErrReplicaRead", i, got[i].Err)
		case want.Err == nil && (got[i].Err != nil || !encodes(got[i].Record, want.Record)):
			t.Errorf("outcome %d: %v %v, want %v", i, got[i].Record, got[i].Err, want.Record)
		}
	}
	if msg := got[1].Err.Error(); !strings.Contains(msg, "disk on fire") {
		t.Errorf("error text %q lost the peer's message", msg)
	}
}

// TestReadBatchStrict: a read batch or reply that is truncated, has trailing
// bytes, another version, a count its bytes cannot hold, a bad inner read, an
// unknown outcome tag, an empty error message, a bad record or a number of
// outcomes other than the reads sent is refused with ErrBadMessage.
func TestReadBatchStrict(t *testing.T) {
	recs := testRecords()
	good := AppendReadBatch(nil, []ReadRequest{{Key: []byte("a")}, {Key: []byte("b"), HintFor: "h"}})
	for name, b := range map[string][]byte{
		"empty":          nil,
		"bad version":    append([]byte{version + 1}, good[1:]...),
		"truncated":      good[:len(good)-1],
		"trailing bytes": append(slices.Clone(good), 0),
		"huge count":     {version, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"count too big":  append([]byte{version, 3}, good[2:]...),
		"bad inner":      {version, 1, 4, version + 1, 0, 0, 0},
		"inner trailing": {version, 1, 4, version, 0, 0, 9},
	} {
		if reqs, err := DecodeReadBatch(b); !errors.Is(err, ErrBadMessage) || reqs != nil {
			t.Errorf("request %s: %v, %v; want ErrBadMessage", name, reqs, err)
		}
	}
	reply := AppendReadBatchReply(nil, []ReadResult{{Record: recs[1]}, {Err: errors.New("x")}})
	badRec := appendBytes([]byte{version, 1, readOK}, []byte{0xee})
	for name, tc := range map[string]struct {
		b []byte
		n int
	}{
		"empty":         {nil, 0},
		"fewer":         {reply, 3},
		"more":          {reply, 1},
		"bad version":   {append([]byte{version + 1}, reply[1:]...), 2},
		"truncated":     {reply[:len(reply)-1], 2},
		"trailing":      {append(slices.Clone(reply), 0), 2},
		"unknown tag":   {[]byte{version, 1, 2, 1, 'x'}, 1},
		"empty error":   {[]byte{version, 1, readFailed, 0}, 1},
		"bad record":    {badRec, 1},
		"record length": {[]byte{version, 1, readOK, 9, 1}, 1},
	} {
		if res, err := DecodeReadBatchReply(tc.b, tc.n); !errors.Is(err, ErrBadMessage) || res != nil {
			t.Errorf("reply %s: %v, %v; want ErrBadMessage", name, res, err)
		}
	}
}
