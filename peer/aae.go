package peer

import (
	"encoding/binary"
	"fmt"

	"github.com/dynakv/dynakv/record"
)

// The messages of anti-entropy, partition handoff and tombstone purge
// (MsgRoots..MsgHolds): lists of partitions, hashes, keys and records.

// MaxKeysPerMsg bounds the keys of one MsgFetch, MsgPush, MsgPurge or MsgHolds
// message and reply; a message with more is refused.
const MaxKeysPerMsg = 4096

// RootsRequest asks which of Parts have a Merkle root other than Roots (same
// order) on the receiver.
type RootsRequest struct {
	Parts []int
	Roots []uint64
}

// AppendBinary appends the request's wire form.
func (m RootsRequest) AppendBinary(b []byte) []byte {
	b = append(b, version)
	b = binary.AppendUvarint(b, uint64(len(m.Parts)))
	for i, p := range m.Parts {
		b = binary.AppendUvarint(b, uint64(p))
		b = binary.BigEndian.AppendUint64(b, m.Roots[i])
	}
	return b
}

// DecodeRootsRequest decodes a RootsRequest: partitions below 2^16, as many roots.
func DecodeRootsRequest(b []byte) (RootsRequest, error) {
	r := msgReader(b)
	n := r.count(9)
	m := RootsRequest{Parts: make([]int, 0, n), Roots: make([]uint64, 0, n)}
	for i := 0; i < n && !r.failed(); i++ {
		m.Parts = append(m.Parts, r.partition())
		m.Roots = append(m.Roots, r.u64())
	}
	return m, r.done()
}

// AppendInts appends a list of small numbers (partitions, branches, segments).
func AppendInts(b []byte, xs []int) []byte {
	b = append(b, version)
	b = binary.AppendUvarint(b, uint64(len(xs)))
	for _, x := range xs {
		b = binary.AppendUvarint(b, uint64(x))
	}
	return b
}

// DecodeInts decodes a list of AppendInts, each number below limit.
func DecodeInts(b []byte, limit int) ([]int, error) {
	r := msgReader(b)
	n := r.count(1)
	xs := make([]int, 0, n)
	for i := 0; i < n && !r.failed(); i++ {
		x := r.uvarint()
		if x >= uint64(limit) {
			r.fail("number out of range")
		}
		xs = append(xs, int(x))
	}
	return xs, r.done()
}

// AppendHashes appends a list of 64-bit hashes.
func AppendHashes(b []byte, hs []uint64) []byte {
	b = append(b, version)
	b = binary.AppendUvarint(b, uint64(len(hs)))
	for _, h := range hs {
		b = binary.BigEndian.AppendUint64(b, h)
	}
	return b
}

// DecodeHashes decodes a list of AppendHashes.
func DecodeHashes(b []byte) ([]uint64, error) {
	r := msgReader(b)
	n := r.count(8)
	hs := make([]uint64, 0, n)
	for i := 0; i < n && !r.failed(); i++ {
		hs = append(hs, r.u64())
	}
	return hs, r.done()
}

// PartList is a partition and a list of its branches (MsgLeaves) or segments
// (MsgKeys).
type PartList struct {
	Part  int
	Items []int
}

// AppendBinary appends the list's wire form.
func (m PartList) AppendBinary(b []byte) []byte {
	b = binary.AppendUvarint(append(b, version), uint64(m.Part))
	return AppendInts(b, m.Items)
}

// DecodePartList decodes a PartList: a partition below 2^16, items below limit.
func DecodePartList(b []byte, limit int) (PartList, error) {
	r := msgReader(b)
	p := r.partition()
	if r.failed() {
		return PartList{}, r.done()
	}
	items, err := DecodeInts(r.rest(), limit)
	return PartList{Part: p, Items: items}, err
}

// KeyItem is one key with a hash of its record (MsgKeys replies) or its record's
// encoding (MsgFetch replies, MsgPush, MsgPurge, MsgHolds; empty for no record).
type KeyItem struct {
	Key  []byte
	Hash uint64
	Enc  []byte
}

// DecodeRecord decodes a record encoding a message carries (KeyItem.Enc): empty
// is no record (an empty Record); anything record.Decode refuses is an error
// wrapping ErrBadMessage.
func DecodeRecord(enc []byte) (record.Record, error) {
	if len(enc) == 0 {
		return record.Record{}, nil
	}
	rec, err := record.Decode(enc)
	if err != nil {
		return record.Record{}, fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	return rec, nil
}

// AppendKeyHashes appends the keys and hashes of items.
func AppendKeyHashes(b []byte, items []KeyItem) []byte {
	b = append(b, version)
	b = binary.AppendUvarint(b, uint64(len(items)))
	for _, it := range items {
		b = appendBytes(b, it.Key)
		b = binary.BigEndian.AppendUint64(b, it.Hash)
	}
	return b
}

// DecodeKeyHashes decodes a list of AppendKeyHashes; the result does not alias b.
func DecodeKeyHashes(b []byte) ([]KeyItem, error) {
	r := msgReader(b)
	n := r.count(9)
	items := make([]KeyItem, 0, n)
	for i := 0; i < n && !r.failed(); i++ {
		items = append(items, KeyItem{Key: r.bytes(), Hash: r.u64()})
	}
	return items, r.done()
}

// AppendKeyRecords appends the keys and record encodings of items.
func AppendKeyRecords(b []byte, items []KeyItem) []byte {
	b = append(b, version)
	b = binary.AppendUvarint(b, uint64(len(items)))
	for _, it := range items {
		b = appendBytes(b, it.Key)
		b = appendBytes(b, it.Enc)
	}
	return b
}

// DecodeKeyRecords decodes a list of AppendKeyRecords, at most MaxKeysPerMsg; the
// result does not alias b. The record encodings are not decoded.
func DecodeKeyRecords(b []byte) ([]KeyItem, error) {
	r := msgReader(b)
	n := r.count(2)
	if n > MaxKeysPerMsg {
		r.fail("too many keys")
	}
	items := make([]KeyItem, 0, n)
	for i := 0; i < n && !r.failed(); i++ {
		items = append(items, KeyItem{Key: r.bytes(), Enc: r.bytes()})
	}
	return items, r.done()
}

// AppendKeys appends a list of keys.
func AppendKeys(b []byte, keys [][]byte) []byte {
	b = append(b, version)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendBytes(b, k)
	}
	return b
}

// DecodeKeys decodes a list of AppendKeys, at most MaxKeysPerMsg; the result does
// not alias b.
func DecodeKeys(b []byte) ([][]byte, error) {
	r := msgReader(b)
	n := r.count(1)
	if n > MaxKeysPerMsg {
		r.fail("too many keys")
	}
	keys := make([][]byte, 0, n)
	for i := 0; i < n && !r.failed(); i++ {
		keys = append(keys, r.bytes())
	}
	return keys, r.done()
}

// Holds is what a node holds of a key, in a MsgHolds reply.
type Holds uint8

const (
	HoldsNothing Holds = iota // no record and no hint for any owner
	HoldsSame                 // a record encoded exactly as the request's, and no hint
	HoldsOther                // anything else
)

// AppendHolds appends a MsgHolds reply: one Holds per key.
func AppendHolds(b []byte, hs []Holds) []byte {
	b = append(b, version)
	b = binary.AppendUvarint(b, uint64(len(hs)))
	for _, h := range hs {
		b = append(b, byte(h))
	}
	return b
}

// DecodeHolds decodes a MsgHolds reply of at most MaxKeysPerMsg values, each one
// of the Holds constants.
func DecodeHolds(b []byte) ([]Holds, error) {
	r := msgReader(b)
	n := r.count(1)
	if n > MaxKeysPerMsg {
		r.fail("too many keys")
	}
	hs := make([]Holds, 0, n)
	for i := 0; i < n && !r.failed(); i++ {
		h := Holds(r.byte())
		if h > HoldsOther {
			r.fail("unknown holds value")
		}
		hs = append(hs, h)
	}
	return hs, r.done()
}
