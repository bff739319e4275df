package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

func frameTestRead(b []byte, limit int) (frame, error) {
	return readFrame(bufio.NewReader(bytes.NewReader(b)), limit)
}

func TestFrameRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 3*frameChunk+17) // grows in steps while reading
	for _, tc := range []struct {
		name string
		f    frame
	}{
		{"request empty", frame{kind: frameKindRequest, id: 1, typ: 7, timeoutMs: 1, payload: []byte{}}},
		{"request max fields", frame{kind: frameKindRequest, id: 1<<64 - 1, typ: 255, timeoutMs: frameMaxTimeoutMs, sentMs: clockMaxMs, payload: []byte("abc")}},
		{"request id 0", frame{kind: frameKindRequest, id: 0, typ: 0, timeoutMs: 1000, sentMs: 1_700_000_000_000, payload: []byte("p")}},
		{"late", frame{kind: frameKindLate, id: 77}},
		{"response", frame{kind: frameKindResponse, id: 300, payload: []byte("hello")}},
		{"response big", frame{kind: frameKindResponse, id: 2, payload: big}},
		{"error", frame{kind: frameKindError, id: 1 << 40, payload: []byte("boom")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc := appendFrame([]byte("prefix"), &tc.f)[len("prefix"):]
			if got := len(enc) - frameLenSize; got != frameBodyLen(&tc.f) {
				t.Fatalf("body is %d bytes, frameBodyLen says %d", got, frameBodyLen(&tc.f))
			}
			// Two frames back to back: the reader must stop exactly at the boundary.
			r := bufio.NewReader(bytes.NewReader(append(append([]byte{}, enc...), enc...)))
			for i := range 2 {
				got, err := readFrame(r, len(enc))
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if got.kind != tc.f.kind || got.id != tc.f.id || got.typ != tc.f.typ ||
					got.timeoutMs != tc.f.timeoutMs || got.sentMs != tc.f.sentMs || !bytes.Equal(got.payload, tc.f.payload) {
					t.Fatalf("frame %d: got %+v, want %+v", i, got, tc.f)
				}
			}
			if _, err := readFrame(r, len(enc)); err != io.EOF {
				t.Fatalf("after the last frame: %v, want io.EOF", err)
			}
		})
	}
}

func TestFrameRejects(t *testing.T) {
	encoded := func(body ...byte) []byte {
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
	}
	good := appendFrame(nil, &frame{kind: frameKindRequest, id: 5, typ: 1, timeoutMs: 10, payload: []byte("abc")})
	for _, tc := range []struct {
		name  string
		in    []byte
		limit int
		want  error // errors.Is target
	}{
		{"empty stream", nil, 100, io.EOF},
		{"partial prefix", []byte{0, 0}, 100, io.ErrUnexpectedEOF},
		{"truncated body", good[:len(good)-1], 100, io.ErrUnexpectedEOF},
		{"too big", good, len(good) - frameLenSize - 1, ErrFrameTooBig},
		{"huge prefix", []byte{0xff, 0xff, 0xff, 0xff}, 1 << 20, ErrFrameTooBig},
		{"negative limit", good, -1, ErrFrameTooBig},
		{"zero length", encoded(), 100, errFrameMalformed},
		{"one byte body", encoded(frameKindResponse), 100, errFrameMalformed},
		{"kind 0", encoded(0, 1), 100, errFrameMalformed},
		{"kind 5", encoded(5, 1), 100, errFrameMalformed},
		{"late with a payload", encoded(frameKindLate, 1, 'x'), 100, errFrameMalformed},
		{"unterminated id", encoded(frameKindResponse, 0x80), 100, errFrameMalformed},
		{"overlong id", encoded(frameKindResponse, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), 100, errFrameMalformed},
		{"non-minimal id", encoded(frameKindResponse, 0x81, 0x00), 100, errFrameMalformed},
		{"request without typ", encoded(frameKindRequest, 1), 100, errFrameMalformed},
		{"request without timeout", encoded(frameKindRequest, 1, 9), 100, errFrameMalformed},
		{"request zero timeout", encoded(frameKindRequest, 1, 9, 0), 100, errFrameMalformed},
		{"request timeout too large", encoded(frameKindRequest, 1, 9, 0x80, 0x80, 0x80, 0x80, 0x10, 0), 100, errFrameMalformed},
		{"request without clock", encoded(frameKindRequest, 1, 9, 5), 100, errFrameMalformed},
		{"request non-minimal clock", encoded(frameKindRequest, 1, 9, 5, 0x80, 0x00), 100, errFrameMalformed},
		{"request clock too large", encoded(frameKindRequest, 1, 9, 5, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01), 100, errFrameMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := frameTestRead(tc.in, tc.limit)
			if !errors.Is(err, tc.want) {
				t.Fatalf("readFrame = %+v, %v; want error %v", f, err, tc.want)
			}
		})
	}
}

// A claimed length is never allocated up front: a peer announcing a big frame and
// then sending only a few bytes costs at most frameChunk.
func TestFrameClaimedLengthNotAllocated(t *testing.T) {
	const claimed = 1 << 30
	in := binary.BigEndian.AppendUint32(nil, claimed)
	in = append(in, frameKindResponse, 1, 'x')
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		if _, err := frameTestRead(in, claimed); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("readFrame: %v, want io.ErrUnexpectedEOF", err)
		}
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 10*(frameChunk+8<<10) {
		t.Fatalf("10 reads of a truncated 1 GiB frame allocated %d bytes", got)
	}
}

func TestFrameErrorText(t *testing.T) {
	_, err := frameTestRead([]byte{0xff, 0xff, 0xff, 0xff}, 1024)
	if err == nil || !strings.HasPrefix(err.Error(), "transport: frame too big") {
		t.Fatalf("error %v should start with the sentinel's text", err)
	}
}
