package transport

// Frame codec of the internode transport: pure functions, no I/O besides the
// bufio.Reader handed in. See doc.go for the protocol.
//
// Wire layout of one frame (all integers big-endian or uvarint):
//
//	u32 length                     bytes that follow the length, 2 <= length <= limit
//	u8  kind                       frameKindRequest | frameKindResponse |
//	                               frameKindError | frameKindLate
//	uvarint id                     request id, chosen by the caller, echoed in the reply
//	u8  typ                        request only: the caller-defined message type
//	uvarint timeout                request only: milliseconds the caller will wait,
//	                               rounded up, 1 <= timeout <= frameMaxTimeoutMs
//	uvarint sent                   request only: the caller's connection clock when
//	                               it wrote the frame, unix ms rounded down,
//	                               sent <= clockMaxMs; the caller's deadline in its
//	                               own clock is sent + timeout (see clock.go)
//	payload                        the rest; for frameKindError the error text; empty
//	                               for frameKindLate
//
// Uvarints must be minimally encoded, so every valid frame has exactly one encoding:
// readFrame followed by appendFrame reproduces the input bytes (the fuzz target
// checks this).

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
)

const (
	frameKindRequest  uint8 = 1 // a call: carries typ and timeout
	frameKindResponse uint8 = 2 // a successful reply: payload is the handler's result
	frameKindError    uint8 = 3 // a failed reply: payload is the handler's error text
	// frameKindLate refuses a request whose deadline passed before its handler
	// ran: the handler did not run. Its payload is empty.
	frameKindLate uint8 = 4

	// frameLenSize is the size of the length prefix.
	frameLenSize = 4
	// frameMinBody is the smallest body: a kind byte and a one-byte id.
	frameMinBody = 2
	// frameMaxTimeoutMs bounds the timeout field (about 49 days); callers clamp.
	frameMaxTimeoutMs = math.MaxUint32
	// frameMaxLimit is the largest MaxFrameBytes the transport accepts: the length
	// prefix is a u32, and int must hold it on 32-bit platforms too.
	frameMaxLimit = math.MaxInt32
	// frameChunk is how much readFrame allocates up front. A longer body grows as its
	// bytes actually arrive, so a peer that claims a large frame and then sends
	// nothing costs at most this much.
	frameChunk = 64 << 10
)

// errFrameMalformed reports a frame that violates the layout. It closes the connection.
var errFrameMalformed = errors.New("transport: malformed frame")

// frame is one decoded frame. For frames returned by readFrame, payload aliases a
// buffer owned by the frame (never the bufio.Reader's).
type frame struct {
	kind      uint8
	id        uint64
	typ       uint8  // requests only
	timeoutMs uint64 // requests only
	sentMs    uint64 // requests only
	payload   []byte
}

// frameUvarintLen is the length of the minimal uvarint encoding of v.
func frameUvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// frameHeaderLen is the size of f's body without its payload.
func frameHeaderLen(f *frame) int {
	n := 1 + frameUvarintLen(f.id)
	if f.kind == frameKindRequest {
		n += 1 + frameUvarintLen(f.timeoutMs) + frameUvarintLen(f.sentMs)
	}
	return n
}

// frameBodyLen is the value of f's length prefix: every byte after the prefix. The
// transport checks it against its maximum before encoding.
func frameBodyLen(f *frame) int {
	return frameHeaderLen(f) + len(f.payload)
}

// appendFrameHeader appends f's length prefix and header, not its payload, so a
// writer can send a large payload without copying it. The caller has checked
// frameBodyLen(f) against its limit (and so against frameMaxLimit).
func appendFrameHeader(dst []byte, f *frame) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(frameBodyLen(f)))
	dst = append(dst, f.kind)
	dst = binary.AppendUvarint(dst, f.id)
	if f.kind == frameKindRequest {
		dst = append(dst, f.typ)
		dst = binary.AppendUvarint(dst, f.timeoutMs)
		dst = binary.AppendUvarint(dst, f.sentMs)
	}
	return dst
}

// appendFrame appends the complete encoding of f to dst.
func appendFrame(dst []byte, f *frame) []byte {
	return append(appendFrameHeader(dst, f), f.payload...)
}

// readFrame reads one frame from r, refusing (with an error wrapping ErrFrameTooBig)
// a length prefix above limit before allocating anything for it. It returns io.EOF
// only when r ends cleanly between frames; any other error means the stream is
// unusable (malformed frames wrap errFrameMalformed).
func readFrame(r *bufio.Reader, limit int) (frame, error) {
	prefix, err := r.Peek(frameLenSize)
	if err != nil {
		if len(prefix) > 0 && err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return frame{}, err
	}
	n := binary.BigEndian.Uint32(prefix)
	if _, err := r.Discard(frameLenSize); err != nil {
		return frame{}, err
	}
	if limit < 0 || uint64(n) > uint64(limit) {
		return frame{}, fmt.Errorf("%w: frame of %d bytes, limit %d", ErrFrameTooBig, n, limit)
	}
	if n < frameMinBody {
		return frame{}, fmt.Errorf("%w: length %d", errFrameMalformed, n)
	}
	body, err := frameReadBody(r, int(n))
	if err != nil {
		return frame{}, err
	}
	return frameParseBody(body)
}

// frameReadBody reads exactly n bytes, allocating in step with what arrives.
func frameReadBody(r io.Reader, n int) ([]byte, error) {
	buf := make([]byte, 0, min(n, frameChunk))
	for len(buf) < n {
		step := min(n-len(buf), max(len(buf), frameChunk))
		buf = slices.Grow(buf, step)
		m, err := io.ReadFull(r, buf[len(buf):len(buf)+step])
		buf = buf[:len(buf)+m]
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return buf, nil
}

// frameParseBody decodes a frame body (everything after the length prefix).
func frameParseBody(body []byte) (frame, error) {
	var f frame
	if len(body) < frameMinBody {
		return frame{}, fmt.Errorf("%w: body of %d bytes", errFrameMalformed, len(body))
	}
	f.kind = body[0]
	switch f.kind {
	case frameKindRequest, frameKindResponse, frameKindError, frameKindLate:
	default:
		return frame{}, fmt.Errorf("%w: unknown kind %d", errFrameMalformed, f.kind)
	}
	rest := body[1:]
	var err error
	if f.id, rest, err = frameUvarint(rest, "id"); err != nil {
		return frame{}, err
	}
	if f.kind == frameKindRequest {
		if len(rest) < 1 {
			return frame{}, fmt.Errorf("%w: request without type", errFrameMalformed)
		}
		f.typ = rest[0]
		if f.timeoutMs, rest, err = frameUvarint(rest[1:], "timeout"); err != nil {
			return frame{}, err
		}
		if f.timeoutMs == 0 || f.timeoutMs > frameMaxTimeoutMs {
			return frame{}, fmt.Errorf("%w: timeout %dms", errFrameMalformed, f.timeoutMs)
		}
		if f.sentMs, rest, err = frameUvarint(rest, "sent"); err != nil {
			return frame{}, err
		}
		if f.sentMs > clockMaxMs {
			return frame{}, fmt.Errorf("%w: clock reading %dms", errFrameMalformed, f.sentMs)
		}
	}
	if f.kind == frameKindLate && len(rest) != 0 {
		return frame{}, fmt.Errorf("%w: late refusal with a payload", errFrameMalformed)
	}
	f.payload = rest
	return f, nil
}

// frameUvarint decodes a minimally encoded uvarint at the start of b.
func frameUvarint(b []byte, field string) (uint64, []byte, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, nil, fmt.Errorf("%w: bad %s varint", errFrameMalformed, field)
	}
	if n != frameUvarintLen(v) {
		return 0, nil, fmt.Errorf("%w: non-minimal %s varint", errFrameMalformed, field)
	}
	return v, b[n:], nil
}
