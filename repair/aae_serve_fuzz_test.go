package repair_test

import (
	"errors"
	"testing"

	"github.com/dynakv/dynakv/internal/fuzzcheck"
	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/tictac"
	"github.com/dynakv/dynakv/vclock"
)

// FuzzServe feeds arbitrary messages of every type to the handlers Register
// registers, a node's answer to a peer's anti-entropy request: it must answer or
// refuse with peer.ErrBadMessage, never panic, and every answer starts with the
// message version. peer's FuzzDecodeAAEMessage checks the decoders themselves.
func FuzzServe(f *testing.F) {
	rec := vclock.Update(vclock.Set{}, nil, "n9:1", vclock.Value{Data: []byte("pushed"), Timestamp: 5}, 5, 1).AppendBinary(nil)
	keyRec := append([]byte{1, 1, 1, 'k', byte(len(rec))}, rec...)
	for _, s := range []struct {
		name string
		typ  peer.MsgType
		b    []byte
	}{
		{"roots", peer.MsgRoots, append([]byte{1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3}, make([]byte, 8)...)},
		{"roots-partition-too-big", peer.MsgRoots, append([]byte{1, 1, 4}, make([]byte, 8)...)},
		{"branches", peer.MsgBranches, []byte{1, 1, 2}},
		{"branches-two-partitions", peer.MsgBranches, []byte{1, 2, 0, 1}},
		{"leaves", peer.MsgLeaves, []byte{1, 0, 1, 2, 0, tictac.Branches - 1}},
		{"keys", peer.MsgKeys, []byte{1, 1, 1, 3, 0, 0x80, 0x04, 0xff, 0x07}},
		{"fetch", peer.MsgFetch, []byte{1, 2, 1, 'k', 0}},
		{"push", peer.MsgPush, keyRec},
		{"push-no-record", peer.MsgPush, []byte{1, 1, 1, 'k', 0}},
		{"push-bad-record", peer.MsgPush, []byte{1, 1, 1, 'k', 2, 2, 0}},
		{"purge", peer.MsgPurge, keyRec},
		{"holds", peer.MsgHolds, keyRec},
		{"holds-no-record", peer.MsgHolds, []byte{1, 1, 1, 'k', 0}},
		{"holds-bad-record", peer.MsgHolds, []byte{1, 1, 1, 'k', 2, 2, 0}},
		{"unknown-type", 0, []byte{1, 0}},
	} {
		fuzzcheck.Seed(f, s.name, uint8(s.typ), s.b)
	}
	c := newAAECluster(f, 4, 2, "a", "b")
	c.write("k", nil, "v", 0, false, "a")
	mux := c.nodes["a"].mux
	f.Fuzz(func(t *testing.T, typ uint8, req []byte) {
		out, err := mux.ServeCluster(t.Context(), "b", typ, req)
		if err != nil {
			if !errors.Is(err, peer.ErrBadMessage) {
				t.Fatalf("Serve(%d) failed with %v, not ErrBadMessage", typ, err)
			}
			return
		}
		if len(out) == 0 || out[0] != 1 {
			t.Fatalf("Serve(%d) answered %x", typ, out)
		}
	})
}
