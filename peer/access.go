package peer

import "encoding/binary"

// MsgAccess (repair's evictor, issue 18): before evicting a batch of records,
// a replica asks the other live owners of their partitions for their access
// words of those keys, since a replica may see few of a key's reads. The
// request names the words' kind, so a replica keeping the other kind (a policy
// being changed) answers "unknown" rather than a word it cannot compare.

// Access word kinds of an AccessRequest (evict.KindLRU and evict.KindLFU).
const (
	AccessLRU uint8 = 1
	AccessLFU uint8 = 2
)

// AccessRequest asks for the access words of the keys of Hashes (ring.KeyHash),
// of kind Kind.
type AccessRequest struct {
	Kind   uint8
	Hashes []uint64
}

// AppendBinary appends the request's wire form.
func (m AccessRequest) AppendBinary(b []byte) []byte {
	b = append(b, version, m.Kind)
	b = binary.AppendUvarint(b, uint64(len(m.Hashes)))
	for _, h := range m.Hashes {
		b = binary.BigEndian.AppendUint64(b, h)
	}
	return b
}

// DecodeAccessRequest decodes an AccessRequest: a known kind, at most
// MaxKeysPerMsg hashes.
func DecodeAccessRequest(b []byte) (AccessRequest, error) {
	r := msgReader(b)
	m := AccessRequest{Kind: r.byte()}
	if !r.failed() && m.Kind != AccessLRU && m.Kind != AccessLFU {
		r.fail("unknown access kind")
	}
	n := r.count(8)
	if n > MaxKeysPerMsg {
		r.fail("too many keys")
	}
	if r.failed() {
		return AccessRequest{}, r.done()
	}
	m.Hashes = make([]uint64, 0, n)
	for i := 0; i < n && !r.failed(); i++ {
		m.Hashes = append(m.Hashes, r.u64())
	}
	return m, r.done()
}

// AppendAccessWords appends a MsgAccess reply: one word per requested hash,
// in order; 0 means unknown.
func AppendAccessWords(b []byte, ws []uint32) []byte {
	b = append(b, version)
	b = binary.AppendUvarint(b, uint64(len(ws)))
	for _, w := range ws {
		b = binary.BigEndian.AppendUint32(b, w)
	}
	return b
}

// DecodeAccessWords decodes a MsgAccess reply of at most MaxKeysPerMsg words.
func DecodeAccessWords(b []byte) ([]uint32, error) {
	r := msgReader(b)
	n := r.count(4)
	if n > MaxKeysPerMsg {
		r.fail("too many keys")
	}
	ws := make([]uint32, 0, n)
	for i := 0; i < n && !r.failed(); i++ {
		var w uint32
		for range 4 {
			w = w<<8 | uint32(r.byte())
		}
		ws = append(ws, w)
	}
	return ws, r.done()
}
