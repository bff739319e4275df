package resp

import (
	"strconv"
)

// sink receives one command's encoded reply. redcon.Writer satisfies it (WriteRaw
// appends to the connection's output buffer, flushed once per pipelined batch); tests
// use a byte recorder, so handlers run without sockets.
type sink interface {
	WriteRaw(b []byte)
}

var _ sink = (*recorder)(nil)

// recorder is a sink that keeps everything written to it.
type recorder struct{ b []byte }

func (r *recorder) WriteRaw(b []byte) { r.b = append(r.b, b...) }

// Reply is the reply writer handlers write to: an append-only RESP encoder for one
// connection, in RESP2 or RESP3 as the connection negotiated with HELLO. Aggregate
// headers (Array, Map, Set) are followed by their elements. The zero value writes
// RESP2.
type Reply struct {
	b      []byte
	proto  int  // 2 or 3
	failed bool // an error reply was written since the last reset
	// sent counts the bytes of the current command's reply handed to the
	// connection already (Server.spill): b holds the rest.
	sent int
	// torn: a handler asked to replace a reply part of which was sent already;
	// the connection must end (the client holds half a reply).
	torn bool
}

// reset empties the buffer for the next command, dropping it when a big reply grew
// it, so an idle connection does not keep megabytes.
func (r *Reply) reset() {
	if cap(r.b) > 64<<10 {
		r.b = nil
	} else {
		r.b = r.b[:0]
	}
	r.failed, r.sent, r.torn = false, 0, false
}

func (r *Reply) resp3() bool { return r.proto == 3 }

// mark and truncate let a handler that fails half-way through an aggregate replace
// what it wrote by an error. When part of it was sent already (a reply past the
// output buffer limit), it cannot be: the reply is torn and the connection ends.
func (r *Reply) mark() int { return r.sent + len(r.b) }

func (r *Reply) truncate(m int) {
	if m < r.sent {
		r.torn = true
		r.b = r.b[:0]
		return
	}
	r.b = r.b[:m-r.sent]
}

// OK writes +OK.
func (r *Reply) OK() { r.b = append(r.b, "+OK\r\n"...) }

// Simple writes a simple string; s must not contain CR or LF.
func (r *Reply) Simple(s string) {
	r.b = append(r.b, '+')
	r.b = append(r.b, s...)
	r.b = append(r.b, '\r', '\n')
}

// Error writes an error reply. msg starts with the error code ("ERR syntax error",
// "NOAUTH ..."); CR and LF in it become spaces, as Redis's addReplyErrorFormat does,
// so user input echoed in a message cannot break the protocol.
func (r *Reply) Error(msg string) {
	r.b = append(r.b, '-')
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		r.b = append(r.b, c)
	}
	r.b = append(r.b, '\r', '\n')
	r.failed = true
}

// errorLine writes a precomputed error line ("-ERR ...\r\n").
func (r *Reply) errorLine(line []byte) {
	r.b = append(r.b, line...)
	r.failed = true
}

// Int writes an integer.
func (r *Reply) Int(n int64) {
	r.b = append(r.b, ':')
	r.b = strconv.AppendInt(r.b, n, 10)
	r.b = append(r.b, '\r', '\n')
}

// Bulk writes a bulk string.
func (r *Reply) Bulk(v []byte) {
	r.b = append(r.b, '$')
	r.b = strconv.AppendInt(r.b, int64(len(v)), 10)
	r.b = append(r.b, '\r', '\n')
	r.b = append(r.b, v...)
	r.b = append(r.b, '\r', '\n')
}

// BulkString writes a bulk string.
func (r *Reply) BulkString(s string) {
	r.b = append(r.b, '$')
	r.b = strconv.AppendInt(r.b, int64(len(s)), 10)
	r.b = append(r.b, '\r', '\n')
	r.b = append(r.b, s...)
	r.b = append(r.b, '\r', '\n')
}

// BulkInt writes n formatted in decimal as a bulk string.
func (r *Reply) BulkInt(n int64) {
	var buf [20]byte
	r.Bulk(strconv.AppendInt(buf[:0], n, 10))
}

// Null writes the null bulk string: $-1 in RESP2, _ in RESP3.
func (r *Reply) Null() {
	if r.resp3() {
		r.b = append(r.b, "_\r\n"...)
	} else {
		r.b = append(r.b, "$-1\r\n"...)
	}
}

// NullArray writes the null array: *-1 in RESP2, _ in RESP3.
func (r *Reply) NullArray() {
	if r.resp3() {
		r.b = append(r.b, "_\r\n"...)
	} else {
		r.b = append(r.b, "*-1\r\n"...)
	}
}

func (r *Reply) header(c byte, n int) {
	r.b = append(r.b, c)
	r.b = strconv.AppendInt(r.b, int64(n), 10)
	r.b = append(r.b, '\r', '\n')
}

// Array writes an array header of n elements.
func (r *Reply) Array(n int) { r.header('*', n) }

// Map writes a map header of n key-value pairs: %n in RESP3, an array of 2n
// elements in RESP2.
func (r *Reply) Map(n int) {
	if r.resp3() {
		r.header('%', n)
	} else {
		r.header('*', 2*n)
	}
}

// Set writes a set header: ~n in RESP3, an array in RESP2.
func (r *Reply) Set(n int) {
	if r.resp3() {
		r.header('~', n)
	} else {
		r.header('*', n)
	}
}

// Verbatim writes text as a verbatim string of format "txt" in RESP3 (as Redis
// answers INFO and CLIENT LIST), a bulk string in RESP2.
func (r *Reply) Verbatim(text []byte) {
	if !r.resp3() {
		r.Bulk(text)
		return
	}
	r.header('=', len(text)+4)
	r.b = append(r.b, "txt:"...)
	r.b = append(r.b, text...)
	r.b = append(r.b, '\r', '\n')
}
