package transport

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReadFrame feeds arbitrary streams to readFrame. It must never panic, never
// accept a frame above the limit, and every frame it accepts must re-encode to
// exactly the bytes it consumed (the encoding is canonical).
func FuzzReadFrame(f *testing.F) {
	for _, fr := range []frame{
		{kind: frameKindRequest, id: 1, typ: 3, timeoutMs: 1000, sentMs: 1_700_000_000_000, payload: []byte("get k")},
		{kind: frameKindRequest, id: 1<<64 - 1, typ: 255, timeoutMs: frameMaxTimeoutMs, sentMs: clockMaxMs},
		{kind: frameKindLate, id: 3},
		{kind: frameKindResponse, id: 1, payload: []byte("value")},
		{kind: frameKindError, id: 2, payload: []byte("not found")},
	} {
		f.Add(appendFrame(nil, &fr))
	}
	two := appendFrame(nil, &frame{kind: frameKindResponse, id: 7})
	f.Add(appendFrame(two, &frame{kind: frameKindRequest, id: 8, typ: 1, timeoutMs: 5, sentMs: 7}))
	f.Add(appendFrame(nil, &frame{kind: frameKindRequest, id: 8, typ: 1, timeoutMs: 5, sentMs: clockMaxMs + 1}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 1})
	f.Add([]byte{0, 0, 0, 3, frameKindResponse, 0x81, 0x00})
	const limit = 1 << 16
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		off := 0
		for {
			fr, err := readFrame(r, limit)
			if err != nil {
				if errors.Is(err, io.EOF) && off != len(data) {
					t.Fatalf("io.EOF at offset %d of %d", off, len(data))
				}
				return
			}
			enc := appendFrame(nil, &fr)
			if fr.kind == frameKindRequest && (fr.sentMs > clockMaxMs || fr.timeoutMs == 0) {
				t.Fatalf("accepted a request with clock %d, timeout %d", fr.sentMs, fr.timeoutMs)
			}
			if fr.kind == frameKindLate && len(fr.payload) != 0 {
				t.Fatalf("accepted a late refusal with a payload")
			}
			if len(enc)-frameLenSize > limit {
				t.Fatalf("accepted a frame of %d bytes, limit %d", len(enc)-frameLenSize, limit)
			}
			if off+len(enc) > len(data) || !bytes.Equal(enc, data[off:off+len(enc)]) {
				t.Fatalf("re-encoding of the frame at offset %d differs:\n in  %x\n out %x", off, data[off:], enc)
			}
			off += len(enc)
		}
	})
}
