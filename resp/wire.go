package resp

import (
	"errors"
	"io"
	"net"
	"os"
	"time"
)

// errProtocol ends a connection after its protocol error was answered;
// errQueryBuf ends one that exceeded the query buffer limit.
var (
	errProtocol = errors.New("resp: protocol error")
	errQueryBuf = errors.New("resp: query buffer limit exceeded")
)

// Input buffer sizes of a wire.
const (
	inMin = 4 << 10
	// inMax bounds one read, and the buffer between commands: room for a
	// maximal header or inline line plus a read. Only a command in progress
	// grows the buffer past it, by the bytes that arrived.
	inMax = inlineMax + 64<<10
)

// wire is a connection's socket side on the goroutine driver (one goroutine per
// connection, blocking reads): it reads requests into its own input buffer, hands
// the framer's spans of the complete ones to the server, and writes replies.
//
// The arguments next returns alias the input buffer: they are valid until the
// next call of next. An argument bigger than a read (a large value) is assembled
// in that buffer, which doubles as bytes arrive (never sized from a header), and
// the framer resumes where it stopped, so a value of n bytes costs O(n).
//
// It delivers the replies' order Redis has: when the framer finds a protocol
// error, the commands before it are returned first; only on the next call, after
// the server ran them and wrote their replies, is the error written to the socket
// and the connection ended. A wire is used by its connection's goroutine only.
type wire struct {
	net.Conn
	s  *Server
	cl *client // set when the connection is accepted
	p  reqReader

	in       []byte // input; in[off:] not consumed yet
	off      int
	starved  bool // every complete command buffered was returned: read first
	lastFull bool // the last read filled its window
	lastN    int  // bytes of the last read
	empty    int  // reads in a row that returned nothing
	rerr     error
}

func newWire(c net.Conn, s *Server) *wire {
	return &wire{Conn: c, s: s, p: s.newReqReader()}
}

// reqReader drives the framer for one connection, the same way on both drivers:
// every complete command of the input, or only the first one before AUTH (Redis
// parses a request after running the one before it, and AUTH lifts the limits),
// and the protocol error or query-buffer kill found after them, which ends the
// connection once their replies are out (Server.protocolEnd).
type reqReader struct {
	f    framer
	perr string // the protocol error found; "" if none
	kill bool   // the query buffer limit was passed
}

func (s *Server) newReqReader() reqReader {
	return reqReader{f: framer{maxBulk: s.cfg.ProtoMaxBulkLen}}
}

// parse appends the next commands of in to cmds (see framer.spans: in[used:]
// must be given again, with what arrives after it). unauth applies the pre-AUTH
// limits and parses one command at most. It must not be called once ended.
func (p *reqReader) parse(in []byte, cmds *commands, unauth bool) (used, frames int) {
	r := p.f.spans(in, cmds, unauth, unauth)
	p.perr, p.kill = r.err, r.kill
	return r.used, r.frames
}

// ended reports whether the input broke the protocol or the query buffer limit:
// nothing more is parsed, and the connection ends after the replies so far.
func (p *reqReader) ended() bool { return p.perr != "" || p.kill }

// protocolEnd logs and counts how an ended reader ends its connection, and
// returns the last line to send (nil: none, for a kill) and the error it ends
// with.
func (s *Server) protocolEnd(p *reqReader, addr string) ([]byte, error) {
	if p.kill {
		s.cfg.Logger.Warn("closing client that exceeded the query buffer limit", "addr", addr)
		return nil, errQueryBuf
	}
	s.stats.errorReplies.Add(1)
	s.cfg.Logger.Debug("protocol error", "addr", addr, "err", p.perr)
	return []byte("-ERR " + p.perr + "\r\n"), errProtocol
}

// unauth reports whether the pre-AUTH limits apply now.
func (w *wire) unauth() bool {
	return w.cl != nil && !w.cl.authed
}

// next resets cmds and fills it with the next pipelined batch: every complete
// command buffered, or only the first one before AUTH (Redis parses a request
// after running the one before it, and AUTH lifts the limits). It reads from the
// socket while no command is complete. It returns an error when the connection
// must end: the read failed, or the input broke the protocol (answered first).
func (w *wire) next(cmds *commands) error {
	cmds.reset()
	if poison {
		for i := range w.in[:w.off] {
			w.in[i] = 'X'
		}
	}
	for {
		if !w.starved && !w.p.ended() {
			unauth := w.unauth()
			used, frames := w.p.parse(w.in[w.off:], cmds, unauth)
			w.off += used
			w.starved = frames == 0 || !unauth // everything parseable was parsed
			if frames > 0 {
				return nil
			}
		}
		if w.p.ended() || w.rerr != nil {
			return w.fail()
		}
		if err := w.fill(); err != nil {
			w.rerr = err
		}
	}
}

// fill reads more input from the socket. The consumed bytes go (the leftover,
// part of one command, moves to the front once per command); the buffer grows
// while reads fill it (a pipeline streams in large reads) up to inMax, doubles
// when a command in progress fills it (it is never sized from a header alone),
// and shrinks back when traffic is small
// again or the big command is done.
func (w *wire) fill() error {
	if w.off > 0 {
		rest := copy(w.in, w.in[w.off:])
		w.in, w.off = w.in[:rest], 0
	}
	size := cap(w.in)
	switch {
	case size == 0:
		size = inMin
	case size > inMax && len(w.in) < inMin:
		size = inMin
	case w.lastFull && size < inMax:
		size = min(2*size, inMax)
	case len(w.in) == 0 && size > inMin && w.lastN < size/4:
		size = inMin
	}
	if size-len(w.in) < inMin/2 {
		// Full with a command in progress: double, or grow to what the
		// argument being read still needs when that is not much more (so a
		// large value's buffer ends near its size, not twice it, and is
		// never more than 2.5 times what arrived).
		grow := 2 * size
		if need := len(w.in) + int(w.p.f.bulk) + inMin; w.p.f.state == stBulkBody && need <= grow+grow/4 {
			grow = need
		}
		size = max(grow, len(w.in)+inMin)
	}
	if size != cap(w.in) {
		in := make([]byte, len(w.in), size)
		copy(in, w.in)
		w.in = in
	}
	free := w.in[len(w.in):min(cap(w.in), len(w.in)+inMax)]
	m, err := w.Conn.Read(free)
	w.in = w.in[:len(w.in)+m]
	w.lastFull, w.lastN = m == len(free), m
	if m > 0 {
		w.starved = false
		w.s.stats.netIn.Add(int64(m))
	}
	if err == nil {
		err = w.progress(m)
	}
	return err
}

// progress fails after many reads in a row that returned nothing and no error,
// as bufio does, rather than spinning.
func (w *wire) progress(m int) error {
	if m > 0 {
		w.empty = 0
		return nil
	}
	if w.empty++; w.empty >= 100 {
		return io.ErrNoProgress
	}
	return nil
}

// fail ends the connection after a protocol error, answering it first.
func (w *wire) fail() error {
	if w.rerr != nil {
		return w.rerr
	}
	line, err := w.s.protocolEnd(&w.p, w.RemoteAddr().String())
	if line != nil {
		// The connection ends with this line: give it a second whatever the
		// timeout (a deadline set here replaces netserve's WriteTimeout for good).
		_ = w.Conn.SetWriteDeadline(time.Now().Add(protocolGrace))
		_, _ = w.Write(line)
	}
	w.rerr = err
	return w.rerr
}

// protocolGrace is how long the last line of a connection that broke the
// protocol may take to leave.
const protocolGrace = time.Second

// Write flushes the connection's session first (proxy.Session), so no reply
// acknowledges a write before it is durable and a pipelined batch of writes shares
// one WAL sync; if the flush fails, no reply leaves. A client that does not take the
// bytes within Config.WriteTimeout is disconnected (the write fails: netserve arms
// the deadline on the connection below).
func (w *wire) Write(b []byte) (int, error) {
	if w.cl != nil {
		if err := w.s.flushSession(w.cl); err != nil {
			return 0, err
		}
	}
	n, err := w.Conn.Write(b)
	w.s.stats.netOut.Add(int64(n))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		w.s.logStaleWriter(w.RemoteAddr().String())
	}
	return n, err
}

// flushSession makes the writes of c's replies so far durable before the
// replies leave (both drivers); the outlet's buffer is handed over after it, so
// c.pending starts again. If it fails, no reply may leave.
func (s *Server) flushSession(c *client) error {
	c.pending = 0
	if c.sess == nil {
		return nil
	}
	if err := c.sess.Flush(s.ctx); err != nil {
		s.cfg.Logger.Error("syncing writes before replying", "err", err)
		return err
	}
	return nil
}

func (s *Server) logStaleWriter(addr string) {
	s.cfg.Logger.Warn("closing client that did not read its replies", "addr", addr, "timeout", s.cfg.WriteTimeout)
}
