package repair

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/dynakv/dynakv/internal/fuzzcheck"
	"github.com/dynakv/dynakv/tictac"
	"github.com/dynakv/dynakv/vclock"
)

// Decoders of FuzzDecodeMessages, chosen by its kind argument modulo their number.
const (
	fuzzRoots = iota
	fuzzPartitions
	fuzzHashes
	fuzzBranchList
	fuzzSegmentList
	fuzzKeyHashes
	fuzzKeyRecords
	fuzzKeys
	fuzzHolds
	fuzzKinds
)

// FuzzDecodeMessages feeds b to one of the anti-entropy message decoders, which read
// both peers' requests (Serve) and their replies (the exchange in aae.go and
// purge.go). Nothing may panic; failures wrap ErrBadMessage; decoding allocates at
// most a small multiple of the input (a count is checked against the bytes left
// before anything is made for it); numbers respect their limits; and what decodes
// re-encodes to bytes that decode to the same value.
func FuzzDecodeMessages(f *testing.F) {
	rec := vclock.Update(vclock.Set{}, nil, "n1:1", vclock.Value{Data: []byte("v"), Timestamp: 5}, 5, 1).AppendBinary(nil)
	items := []keyItem{{Key: []byte("a"), Hash: 1, Enc: rec}, {Key: []byte{}, Hash: ^uint64(0)}}
	huge := []byte{aaeVersion, 0xff, 0xff, 0xff, 0xff, 0x0f}
	for _, s := range []struct {
		name string
		kind uint8
		b    []byte
	}{
		{"roots", fuzzRoots, rootsMsg{Parts: []int{0, 7, 1<<16 - 1}, Roots: []uint64{0, 1, ^uint64(0)}}.appendBinary(nil)},
		{"roots-empty", fuzzRoots, rootsMsg{}.appendBinary(nil)},
		{"roots-huge-count", fuzzRoots, huge},
		{"partitions", fuzzPartitions, appendInts(nil, []int{0, 3, tictac.Segments - 1})},
		{"partitions-over-limit", fuzzPartitions, appendInts(nil, []int{tictac.Segments})},
		{"hashes", fuzzHashes, appendHashes(nil, []uint64{1, 2, 3})},
		{"hashes-huge-count", fuzzHashes, huge},
		{"branches", fuzzBranchList, partList{Part: 5, Items: []int{0, tictac.Branches - 1}}.appendBinary(nil)},
		{"segments", fuzzSegmentList, partList{Part: 1<<16 - 1, Items: []int{0, 1, tictac.Segments - 1}}.appendBinary(nil)},
		{"segments-bad-partition", fuzzSegmentList, partList{Part: 1 << 16}.appendBinary(nil)},
		{"key-hashes", fuzzKeyHashes, appendKeyHashes(nil, items)},
		{"key-records", fuzzKeyRecords, appendKeyRecords(nil, items)},
		{"key-records-bad-record", fuzzKeyRecords, appendKeyRecords(nil, []keyItem{{Key: []byte("k"), Enc: []byte{2, 0}}})},
		{"key-records-truncated", fuzzKeyRecords, appendKeyRecords(nil, items)[:9]},
		{"keys", fuzzKeys, appendKeys(nil, [][]byte{[]byte("a"), {}, []byte("ccc")})},
		{"keys-huge-length", fuzzKeys, []byte{aaeVersion, 1, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"holds", fuzzHolds, appendHolds(nil, []uint8{holdsNothing, holdsSame, holdsOther})},
		{"holds-empty", fuzzHolds, appendHolds(nil, nil)},
		{"holds-bad-value", fuzzHolds, []byte{aaeVersion, 2, holdsSame, holdsOther + 1}},
		{"holds-huge-count", fuzzHolds, huge},
	} {
		fuzzcheck.Seed(f, s.name, s.kind, s.b)
	}
	f.Fuzz(func(t *testing.T, kind uint8, b []byte) {
		var err error
		fuzzcheck.CheckAlloc(t, "decoding", len(b), 64, func() { err = checkAAEMessage(t, int(kind)%fuzzKinds, b) })
		if err != nil && !errors.Is(err, ErrBadMessage) {
			t.Fatalf("error %v does not wrap ErrBadMessage", err)
		}
	})
}

// checkAAEMessage decodes b with the decoder kind names and checks what it got.
func checkAAEMessage(t *testing.T, kind int, b []byte) error {
	switch kind {
	case fuzzRoots:
		m, err := decodeRootsMsg(b)
		if err != nil {
			return err
		}
		if len(m.Parts) != len(m.Roots) || cap(m.Parts) > len(b) {
			t.Fatalf("%d partitions, %d roots (room for %d) from %d bytes", len(m.Parts), len(m.Roots), cap(m.Parts), len(b))
		}
		checkInts(t, m.Parts, 1<<16)
		again, err := decodeRootsMsg(m.appendBinary(nil))
		if err != nil || !slices.Equal(again.Parts, m.Parts) || !slices.Equal(again.Roots, m.Roots) {
			t.Fatalf("roots round trip: %+v, %v (first %+v)", again, err, m)
		}
	case fuzzPartitions:
		xs, err := decodeInts(b, tictac.Segments)
		if err != nil {
			return err
		}
		checkInts(t, xs, tictac.Segments)
		if again, err := decodeInts(appendInts(nil, xs), tictac.Segments); err != nil || !slices.Equal(again, xs) {
			t.Fatalf("ints round trip: %v, %v (first %v)", again, err, xs)
		}
	case fuzzHashes:
		hs, err := decodeHashes(b)
		if err != nil {
			return err
		}
		if again, err := decodeHashes(appendHashes(nil, hs)); err != nil || !slices.Equal(again, hs) {
			t.Fatalf("hashes round trip: %v, %v (first %v)", again, err, hs)
		}
	case fuzzBranchList, fuzzSegmentList:
		limit := tictac.Branches
		if kind == fuzzSegmentList {
			limit = tictac.Segments
		}
		m, err := decodePartList(b, limit)
		if err != nil {
			return err
		}
		checkInts(t, []int{m.Part}, 1<<16)
		checkInts(t, m.Items, limit)
		again, err := decodePartList(m.appendBinary(nil), limit)
		if err != nil || again.Part != m.Part || !slices.Equal(again.Items, m.Items) {
			t.Fatalf("partition list round trip: %+v, %v (first %+v)", again, err, m)
		}
	case fuzzKeyHashes:
		items, err := decodeKeyHashes(b)
		if err != nil {
			return err
		}
		checkItems(t, items, appendKeyHashes, decodeKeyHashes)
	case fuzzKeyRecords:
		items, err := decodeKeyRecords(b)
		if err != nil {
			return err
		}
		if len(items) > maxKeysPerMsg {
			t.Fatalf("decoded %d records, limit %d", len(items), maxKeysPerMsg)
		}
		checkItems(t, items, appendKeyRecords, decodeKeyRecords)
		for _, it := range items {
			rec, err := decodeRecord(it.Enc)
			if err != nil {
				return err
			}
			if len(it.Enc) == 0 {
				continue // no record
			}
			enc := rec.AppendBinary(nil)
			if again, err := decodeRecord(enc); err != nil || !bytes.Equal(again.AppendBinary(nil), enc) {
				t.Fatalf("record round trip: %v, %v (first %v)", again, err, rec)
			}
		}
	case fuzzHolds:
		hs, err := decodeHolds(b)
		if err != nil {
			return err
		}
		if len(hs) > maxKeysPerMsg || cap(hs) > len(b) {
			t.Fatalf("decoded %d holds (room for %d) from %d bytes", len(hs), cap(hs), len(b))
		}
		for _, h := range hs {
			if h > holdsOther {
				t.Fatalf("decoded holds value %d", h)
			}
		}
		if again, err := decodeHolds(appendHolds(nil, hs)); err != nil || !slices.Equal(again, hs) {
			t.Fatalf("holds round trip: %v, %v (first %v)", again, err, hs)
		}
	case fuzzKeys:
		keys, err := decodeKeys(b)
		if err != nil {
			return err
		}
		if len(keys) > maxKeysPerMsg || cap(keys) > len(b) {
			t.Fatalf("decoded %d keys (room for %d) from %d bytes", len(keys), cap(keys), len(b))
		}
		again, err := decodeKeys(appendKeys(nil, keys))
		if err != nil || !slices.EqualFunc(again, keys, bytes.Equal) {
			t.Fatalf("keys round trip: %q, %v (first %q)", again, err, keys)
		}
	}
	return nil
}

func checkInts(t *testing.T, xs []int, limit int) {
	t.Helper()
	for _, x := range xs {
		if x < 0 || x >= limit {
			t.Fatalf("decoded %d, limit %d", x, limit)
		}
	}
}

func checkItems(t *testing.T, items []keyItem, enc func([]byte, []keyItem) []byte, dec func([]byte) ([]keyItem, error)) {
	t.Helper()
	again, err := dec(enc(nil, items))
	if err != nil || !slices.EqualFunc(again, items, func(a, b keyItem) bool {
		return bytes.Equal(a.Key, b.Key) && a.Hash == b.Hash && bytes.Equal(a.Enc, b.Enc)
	}) {
		t.Fatalf("key items round trip: %+v, %v (first %+v)", again, err, items)
	}
}
