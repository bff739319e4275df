package peer

import (
	"errors"
	"slices"
	"testing"

	"github.com/dynakv/dynakv/internal/fuzzcheck"
)

// FuzzDecodeAccess feeds b to MsgAccess's request decoder (kind even) or its
// reply decoder (kind odd), which read a peer's bytes. Nothing may panic;
// failures wrap ErrBadMessage; decoding allocates at most a small multiple of
// the input; a request's kind is known and both stay within MaxKeysPerMsg; what
// decodes re-encodes to bytes that decode to the same value.
func FuzzDecodeAccess(f *testing.F) {
	huge := []byte{version, 0xff, 0xff, 0xff, 0xff, 0x0f}
	for _, s := range []struct {
		name string
		kind uint8
		b    []byte
	}{
		{"request", 0, AccessRequest{Kind: AccessLRU, Hashes: []uint64{0, 1, ^uint64(0)}}.AppendBinary(nil)},
		{"request-lfu-empty", 0, AccessRequest{Kind: AccessLFU}.AppendBinary(nil)},
		{"request-bad-kind", 0, AccessRequest{Kind: 3, Hashes: []uint64{1}}.AppendBinary(nil)},
		{"request-huge-count", 0, append([]byte{version, AccessLRU}, huge[1:]...)},
		{"request-truncated", 0, AccessRequest{Kind: AccessLRU, Hashes: []uint64{7}}.AppendBinary(nil)[:7]},
		{"words", 1, AppendAccessWords(nil, []uint32{0, 1, ^uint32(0)})},
		{"words-empty", 1, AppendAccessWords(nil, nil)},
		{"words-huge-count", 1, huge},
	} {
		fuzzcheck.Seed(f, s.name, s.kind, s.b)
	}
	f.Fuzz(func(t *testing.T, kind uint8, b []byte) {
		var err error
		fuzzcheck.CheckAlloc(t, "decoding", len(b), 64, func() { err = checkAccessMessage(t, kind%2 == 1, b) })
		if err != nil && !errors.Is(err, ErrBadMessage) {
			t.Fatalf("error %v does not wrap ErrBadMessage", err)
		}
	})
}

func checkAccessMessage(t *testing.T, reply bool, b []byte) error {
	if reply {
		ws, err := DecodeAccessWords(b)
		if err != nil {
			return err
		}
		if len(ws) > MaxKeysPerMsg {
			t.Fatalf("%d words", len(ws))
		}
		if again, err := DecodeAccessWords(AppendAccessWords(nil, ws)); err != nil || !slices.Equal(again, ws) {
			t.Fatalf("words round trip: %v, %v (first %v)", again, err, ws)
		}
		return nil
	}
	m, err := DecodeAccessRequest(b)
	if err != nil {
		return err
	}
	if (m.Kind != AccessLRU && m.Kind != AccessLFU) || len(m.Hashes) > MaxKeysPerMsg {
		t.Fatalf("request kind %d with %d hashes", m.Kind, len(m.Hashes))
	}
	again, err := DecodeAccessRequest(m.AppendBinary(nil))
	if err != nil || again.Kind != m.Kind || !slices.Equal(again.Hashes, m.Hashes) {
		t.Fatalf("request round trip: %+v, %v (first %+v)", again, err, m)
	}
	return nil
}
