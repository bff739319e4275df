package repair

import (
	"encoding/binary"
	"errors"

	"github.com/dynakv/dynakv/internal/wire"
	"github.com/dynakv/dynakv/tictac"
)

// Message types of anti-entropy, partition handoff and tombstone purge on the
// cluster transport (coordinator uses 1..15, proxy forwarding 16).
const (
	MsgRoots    uint8 = 32 // partition roots -> partitions whose roots differ
	MsgBranches uint8 = 33 // partition -> its branch hashes
	MsgLeaves   uint8 = 34 // partition, branches -> their leaf hashes
	MsgKeys     uint8 = 35 // partition, segments -> (key, item hash) of each record
	MsgFetch    uint8 = 36 // keys -> record encodings
	MsgPush     uint8 = 37 // (key, record) pairs -> merged durably
	MsgPurge    uint8 = 38 // (key, record) pairs -> deleted where still exactly that
	MsgHolds    uint8 = 39 // (key, record) pairs -> per key, what the node holds (holdsNothing...)
)

// IsMessage reports whether typ is one of this package's message types, which
// node/ routes to Serve.
func IsMessage(typ uint8) bool { return typ >= MsgRoots && typ <= MsgHolds }

// What a node holds of a key, in a MsgHolds reply: no record and no hint for any
// owner, a record encoding exactly as the request's and no hint, or anything else.
const (
	holdsNothing uint8 = iota
	holdsSame
	holdsOther
)

// ErrBadMessage wraps every decoding problem of these messages.
var ErrBadMessage = errors.New("repair: malformed anti-entropy message")

const aaeVersion = 1

// Limits on what one message may carry; a peer asking for more is refused.
const (
	maxSegmentsPerMsg = tictac.Segments
	maxKeysPerMsg     = 4096
)

// rootsMsg asks which partitions' roots differ.
type rootsMsg struct {
	Parts []int
	Roots []uint64
}

func (m rootsMsg) appendBinary(b []byte) []byte {
	b = append(b, aaeVersion)
	b = binary.AppendUvarint(b, uint64(len(m.Parts)))
	for i, p := range m.Parts {
		b = binary.AppendUvarint(b, uint64(p))
		b = binary.BigEndian.AppendUint64(b, m.Roots[i])
	}
	return b
}

func decodeRootsMsg(b []byte) (rootsMsg, error) {
	r := wire.NewReader(b)
	r.Version(aaeVersion)
	n := r.Count(9)
	m := rootsMsg{Parts: make([]int, 0, n), Roots: make([]uint64, 0, n)}
	for i := 0; i < n && !r.Failed(); i++ {
		m.Parts = append(m.Parts, partition(r))
		m.Roots = append(m.Roots, r.U64())
	}
	return m, r.Done(ErrBadMessage)
}

// partition reads a partition number (< 2^16, as storage allows).
func partition(r *wire.Reader) int {
	p := r.Uvarint()
	if p >= 1<<16 {
		r.Fail("partition out of range")
		return 0
	}
	return int(p)
}

// appendInts and decodeInts carry a list of small numbers (partitions, branches,
// segments), each below limit.
func appendInts(b []byte, xs []int) []byte {
	b = append(b, aaeVersion)
	b = binary.AppendUvarint(b, uint64(len(xs)))
	for _, x := range xs {
		b = binary.AppendUvarint(b, uint64(x))
	}
	return b
}

func decodeInts(b []byte, limit int) ([]int, error) {
	r := wire.NewReader(b)
	r.Version(aaeVersion)
	n := r.Count(1)
	xs := make([]int, 0, n)
	for i := 0; i < n && !r.Failed(); i++ {
		x := r.Uvarint()
		if x >= uint64(limit) {
			r.Fail("number out of range")
		}
		xs = append(xs, int(x))
	}
	return xs, r.Done(ErrBadMessage)
}

// appendHashes and decodeHashes carry a list of 64-bit hashes.
func appendHashes(b []byte, hs []uint64) []byte {
	b = append(b, aaeVersion)
	b = binary.AppendUvarint(b, uint64(len(hs)))
	for _, h := range hs {
		b = binary.BigEndian.AppendUint64(b, h)
	}
	return b
}

func decodeHashes(b []byte) ([]uint64, error) {
	r := wire.NewReader(b)
	r.Version(aaeVersion)
	n := r.Count(8)
	hs := make([]uint64, 0, n)
	for i := 0; i < n && !r.Failed(); i++ {
		hs = append(hs, r.U64())
	}
	return hs, r.Done(ErrBadMessage)
}

// partList is a partition and a list of its branches or segments.
type partList struct {
	Part  int
	Items []int
}

func (m partList) appendBinary(b []byte) []byte {
	b = binary.AppendUvarint(append(b, aaeVersion), uint64(m.Part))
	return appendInts(b, m.Items)
}

func decodePartList(b []byte, limit int) (partList, error) {
	r := wire.NewReader(b)
	r.Version(aaeVersion)
	p := partition(r)
	if r.Failed() {
		return partList{}, r.Done(ErrBadMessage)
	}
	items, err := decodeInts(r.Rest(), limit)
	return partList{Part: p, Items: items}, err
}

// keyItem is one key with a hash of its record (MsgKeys) or its record's encoding
// (MsgFetch replies, MsgPush, MsgPurge; empty for no record).
type keyItem struct {
	Key  []byte
	Hash uint64
	Enc  []byte
}

func appendKeyHashes(b []byte, items []keyItem) []byte {
	b = append(b, aaeVersion)
	b = binary.AppendUvarint(b, uint64(len(items)))
	for _, it := range items {
		b = wire.AppendBytes(b, it.Key)
		b = binary.BigEndian.AppendUint64(b, it.Hash)
	}
	return b
}

func decodeKeyHashes(b []byte) ([]keyItem, error) {
	r := wire.NewReader(b)
	r.Version(aaeVersion)
	n := r.Count(9)
	items := make([]keyItem, 0, n)
	for i := 0; i < n && !r.Failed(); i++ {
		items = append(items, keyItem{Key: r.Bytes(), Hash: r.U64()})
	}
	return items, r.Done(ErrBadMessage)
}

func appendKeyRecords(b []byte, items []keyItem) []byte {
	b = append(b, aaeVersion)
	b = binary.AppendUvarint(b, uint64(len(items)))
	for _, it := range items {
		b = wire.AppendBytes(b, it.Key)
		b = wire.AppendBytes(b, it.Enc)
	}
	return b
}

func decodeKeyRecords(b []byte) ([]keyItem, error) {
	r := wire.NewReader(b)
	r.Version(aaeVersion)
	n := r.Count(2)
	if n > maxKeysPerMsg {
		r.Fail("too many keys")
	}
	items := make([]keyItem, 0, n)
	for i := 0; i < n && !r.Failed(); i++ {
		items = append(items, keyItem{Key: r.Bytes(), Enc: r.Bytes()})
	}
	return items, r.Done(ErrBadMessage)
}

func appendKeys(b []byte, keys [][]byte) []byte {
	b = append(b, aaeVersion)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = wire.AppendBytes(b, k)
	}
	return b
}

func decodeKeys(b []byte) ([][]byte, error) {
	r := wire.NewReader(b)
	r.Version(aaeVersion)
	n := r.Count(1)
	if n > maxKeysPerMsg {
		r.Fail("too many keys")
	}
	keys := make([][]byte, 0, n)
	for i := 0; i < n && !r.Failed(); i++ {
		keys = append(keys, r.Bytes())
	}
	return keys, r.Done(ErrBadMessage)
}

// appendHolds and decodeHolds carry a MsgHolds reply: one holds value per key.
func appendHolds(b []byte, hs []uint8) []byte {
	b = append(b, aaeVersion)
	b = binary.AppendUvarint(b, uint64(len(hs)))
	return append(b, hs...)
}

func decodeHolds(b []byte) ([]uint8, error) {
	r := wire.NewReader(b)
	r.Version(aaeVersion)
	n := r.Count(1)
	if n > maxKeysPerMsg {
		r.Fail("too many keys")
	}
	hs := make([]uint8, 0, n)
	for i := 0; i < n && !r.Failed(); i++ {
		h := r.Byte()
		if h > holdsOther {
			r.Fail("unknown holds value")
		}
		hs = append(hs, h)
	}
	return hs, r.Done(ErrBadMessage)
}
