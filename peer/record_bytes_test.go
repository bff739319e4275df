package peer

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/dynakv/dynakv/record"
)

// TestStringRecordWireUnchanged: issue 20's record envelope changes no wire byte
// for a string key. Every message that carries a record (read reply, write
// request alone and in a batch, scan reply, read batch reply) is built here by
// hand around vclock.Set's own encoding and must be what the codecs produce, and
// decode back to Record{Str: set}.
func TestStringRecordWireUnchanged(t *testing.T) {
	lp := func(b, p []byte) []byte { return append(binary.AppendUvarint(b, uint64(len(p))), p...) }
	key, hint := []byte("k"), []byte("owner")
	for i, rec := range testRecords() {
		set := rec.Str
		enc := set.AppendBinary(nil) // what the wire carried before records had layers
		if !rec.IsString() {
			t.Fatalf("record %d is typed", i)
		}
		check := func(what string, got, want []byte) {
			t.Helper()
			if !bytes.Equal(got, want) {
				t.Errorf("record %d, %s:\n got %x\nwant %x", i, what, got, want)
			}
		}
		check("read reply", AppendRecordReply(nil, record.String(set)), append([]byte{1}, enc...))
		wreq := append(lp(lp([]byte{1}, key), hint), enc...)
		w := WriteRequest{Key: key, HintFor: string(hint), Record: record.String(set)}
		check("write request", w.AppendBinary(nil), wreq)
		check("write request, encoded once", w.WithRecordEncoding(record.String(set).AppendBinary(nil)).AppendBinary(nil), wreq)
		check("write batch", AppendWriteBatch(nil, [][]byte{w.AppendBinary(nil)}), lp([]byte{1, 1}, wreq))
		scan := ScanReply{Keys: [][]byte{key}, Records: []record.Record{record.String(set)}, Next: 7, More: true}
		check("scan reply", scan.AppendBinary(nil), lp(lp(append([]byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 7}, 1), key), enc))
		check("read batch reply", AppendReadBatchReply(nil, []ReadResult{{Record: record.String(set)}}), lp([]byte{1, 1, readOK}, enc))

		got, err := DecodeRecordReply(append([]byte{1}, enc...))
		if err != nil || !got.IsString() || !bytes.Equal(got.Str.AppendBinary(nil), enc) {
			t.Errorf("record %d: read reply decodes to %+v, %v", i, got, err)
		}
		wr, err := DecodeWriteRequest(wreq)
		if err != nil || !wr.Record.IsString() || !bytes.Equal(wr.Record.Str.AppendBinary(nil), enc) {
			t.Errorf("record %d: write request decodes to %+v, %v", i, wr, err)
		}
	}
}
