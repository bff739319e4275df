package peer

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/dynakv/dynakv/internal/fuzzcheck"
	"github.com/dynakv/dynakv/vclock"
)

// The Merkle tree's shape (repair's Branches and Segments): the limits the
// receivers of MsgLeaves and MsgKeys pass to DecodePartList.
const (
	fuzzBranches = 32
	fuzzSegments = 1024
)

// Decoders of FuzzDecodeAAEMessage, chosen by its kind argument modulo their number.
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

// FuzzDecodeAAEMessage feeds b to one of the anti-entropy message decoders, which
// read both peers' requests (repair's handlers) and their replies (repair's
// exchange and purge). Nothing may panic; failures wrap ErrBadMessage; decoding allocates at
// most a small multiple of the input (a count is checked against the bytes left
// before anything is made for it); numbers respect their limits; and what decodes
// re-encodes to bytes that decode to the same value.
func FuzzDecodeAAEMessage(f *testing.F) {
	rec := vclock.Update(vclock.Set{}, nil, "n1:1", vclock.Value{Data: []byte("v"), Timestamp: 5}, 5, 1).AppendBinary(nil)
	items := []KeyItem{{Key: []byte("a"), Hash: 1, Enc: rec}, {Key: []byte{}, Hash: ^uint64(0)}}
	huge := []byte{version, 0xff, 0xff, 0xff, 0xff, 0x0f}
	for _, s := range []struct {
		name string
		kind uint8
		b    []byte
	}{
		{"roots", fuzzRoots, RootsRequest{Parts: []int{0, 7, 1<<16 - 1}, Roots: []uint64{0, 1, ^uint64(0)}}.AppendBinary(nil)},
		{"roots-empty", fuzzRoots, RootsRequest{}.AppendBinary(nil)},
		{"roots-huge-count", fuzzRoots, huge},
		{"partitions", fuzzPartitions, AppendInts(nil, []int{0, 3, fuzzSegments - 1})},
		{"partitions-over-limit", fuzzPartitions, AppendInts(nil, []int{fuzzSegments})},
		{"hashes", fuzzHashes, AppendHashes(nil, []uint64{1, 2, 3})},
		{"hashes-huge-count", fuzzHashes, huge},
		{"branches", fuzzBranchList, PartList{Part: 5, Items: []int{0, fuzzBranches - 1}}.AppendBinary(nil)},
		{"segments", fuzzSegmentList, PartList{Part: 1<<16 - 1, Items: []int{0, 1, fuzzSegments - 1}}.AppendBinary(nil)},
		{"segments-bad-partition", fuzzSegmentList, PartList{Part: 1 << 16}.AppendBinary(nil)},
		{"key-hashes", fuzzKeyHashes, AppendKeyHashes(nil, items)},
		{"key-records", fuzzKeyRecords, AppendKeyRecords(nil, items)},
		{"key-records-bad-record", fuzzKeyRecords, AppendKeyRecords(nil, []KeyItem{{Key: []byte("k"), Enc: []byte{2, 0}}})},
		{"key-records-truncated", fuzzKeyRecords, AppendKeyRecords(nil, items)[:9]},
		{"keys", fuzzKeys, AppendKeys(nil, [][]byte{[]byte("a"), {}, []byte("ccc")})},
		{"keys-huge-length", fuzzKeys, []byte{version, 1, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"holds", fuzzHolds, AppendHolds(nil, []Holds{HoldsNothing, HoldsSame, HoldsOther})},
		{"holds-empty", fuzzHolds, AppendHolds(nil, nil)},
		{"holds-bad-value", fuzzHolds, []byte{version, 2, byte(HoldsSame), byte(HoldsOther) + 1}},
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
		m, err := DecodeRootsRequest(b)
		if err != nil {
			return err
		}
		if len(m.Parts) != len(m.Roots) || cap(m.Parts) > len(b) {
			t.Fatalf("%d partitions, %d roots (room for %d) from %d bytes", len(m.Parts), len(m.Roots), cap(m.Parts), len(b))
		}
		checkInts(t, m.Parts, 1<<16)
		again, err := DecodeRootsRequest(m.AppendBinary(nil))
		if err != nil || !slices.Equal(again.Parts, m.Parts) || !slices.Equal(again.Roots, m.Roots) {
			t.Fatalf("roots round trip: %+v, %v (first %+v)", again, err, m)
		}
	case fuzzPartitions:
		xs, err := DecodeInts(b, fuzzSegments)
		if err != nil {
			return err
		}
		checkInts(t, xs, fuzzSegments)
		if again, err := DecodeInts(AppendInts(nil, xs), fuzzSegments); err != nil || !slices.Equal(again, xs) {
			t.Fatalf("ints round trip: %v, %v (first %v)", again, err, xs)
		}
	case fuzzHashes:
		hs, err := DecodeHashes(b)
		if err != nil {
			return err
		}
		if again, err := DecodeHashes(AppendHashes(nil, hs)); err != nil || !slices.Equal(again, hs) {
			t.Fatalf("hashes round trip: %v, %v (first %v)", again, err, hs)
		}
	case fuzzBranchList, fuzzSegmentList:
		limit := fuzzBranches
		if kind == fuzzSegmentList {
			limit = fuzzSegments
		}
		m, err := DecodePartList(b, limit)
		if err != nil {
			return err
		}
		checkInts(t, []int{m.Part}, 1<<16)
		checkInts(t, m.Items, limit)
		again, err := DecodePartList(m.AppendBinary(nil), limit)
		if err != nil || again.Part != m.Part || !slices.Equal(again.Items, m.Items) {
			t.Fatalf("partition list round trip: %+v, %v (first %+v)", again, err, m)
		}
	case fuzzKeyHashes:
		items, err := DecodeKeyHashes(b)
		if err != nil {
			return err
		}
		checkItems(t, items, AppendKeyHashes, DecodeKeyHashes)
	case fuzzKeyRecords:
		items, err := DecodeKeyRecords(b)
		if err != nil {
			return err
		}
		if len(items) > MaxKeysPerMsg {
			t.Fatalf("decoded %d records, limit %d", len(items), MaxKeysPerMsg)
		}
		checkItems(t, items, AppendKeyRecords, DecodeKeyRecords)
		for _, it := range items {
			rec, err := DecodeRecord(it.Enc)
			if err != nil {
				return err
			}
			if len(it.Enc) == 0 {
				continue // no record
			}
			enc := rec.AppendBinary(nil)
			if again, err := DecodeRecord(enc); err != nil || !bytes.Equal(again.AppendBinary(nil), enc) {
				t.Fatalf("record round trip: %v, %v (first %v)", again, err, rec)
			}
		}
	case fuzzHolds:
		hs, err := DecodeHolds(b)
		if err != nil {
			return err
		}
		if len(hs) > MaxKeysPerMsg || cap(hs) > len(b) {
			t.Fatalf("decoded %d holds (room for %d) from %d bytes", len(hs), cap(hs), len(b))
		}
		for _, h := range hs {
			if h > HoldsOther {
				t.Fatalf("decoded holds value %d", h)
			}
		}
		if again, err := DecodeHolds(AppendHolds(nil, hs)); err != nil || !slices.Equal(again, hs) {
			t.Fatalf("holds round trip: %v, %v (first %v)", again, err, hs)
		}
	case fuzzKeys:
		keys, err := DecodeKeys(b)
		if err != nil {
			return err
		}
		if len(keys) > MaxKeysPerMsg || cap(keys) > len(b) {
			t.Fatalf("decoded %d keys (room for %d) from %d bytes", len(keys), cap(keys), len(b))
		}
		again, err := DecodeKeys(AppendKeys(nil, keys))
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

func checkItems(t *testing.T, items []KeyItem, enc func([]byte, []KeyItem) []byte, dec func([]byte) ([]KeyItem, error)) {
	t.Helper()
	again, err := dec(enc(nil, items))
	if err != nil || !slices.EqualFunc(again, items, func(a, b KeyItem) bool {
		return bytes.Equal(a.Key, b.Key) && a.Hash == b.Hash && bytes.Equal(a.Enc, b.Enc)
	}) {
		t.Fatalf("key items round trip: %+v, %v (first %+v)", again, err, items)
	}
}
