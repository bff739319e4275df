package resp

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/dynakv/dynakv/internal/num"
)

// Request-parsing limits, Redis 7.2's (networking.c processInlineBuffer and
// processMultibulkBuffer).
const (
	inlineMax = 64 * 1024 // PROTO_INLINE_MAX_SIZE: an inline request or header line
	// maxMultibulk bounds a command's arguments. Redis 7.2 allows up to INT_MAX;
	// this is the 1024*1024 of Redis before 6.2, because redcon's parser loops
	// over the claimed count each time it re-parses an incomplete command, so a
	// header claiming 2^31 arguments would cost a second of CPU per read.
	maxMultibulk  = 1024 * 1024
	unauthMaxArgs = 10    // elements of a command before AUTH, when a password is set
	unauthMaxBulk = 16384 // bytes of an argument before AUTH
	// queryBufLimit bounds one command's input (arguments plus a per-argument
	// overhead, like Redis's argv accounting); past it the connection is closed
	// without a reply, as Redis closes a client over client-query-buffer-limit.
	queryBufLimit = 1 << 30
	argOverhead   = 32
)

// Protocol error texts; replies are "-ERR " + text.
const (
	perrTooBigInline = "Protocol error: too big inline request"
	perrTooBigMbulk  = "Protocol error: too big mbulk count string"
	perrTooBigBulk   = "Protocol error: too big bulk count string"
	perrUnbalanced   = "Protocol error: unbalanced quotes in request"
	perrMbulkLen     = "Protocol error: invalid multibulk length"
	perrUnauthMbulk  = "Protocol error: unauthenticated multibulk length"
	perrBulkLen      = "Protocol error: invalid bulk length"
	perrUnauthBulk   = "Protocol error: unauthenticated bulk length"
)

// Framer states.
const (
	stStart    = iota // at the start of a request
	stBulkHdr         // expecting "$<len>\r\n"
	stBulkBody        // inside an argument's bytes
	stBulkEnd         // expecting the two bytes that end an argument
)

// framer turns a client's byte stream into canonical RESP multibulk frames with
// Redis 7.2's request-parsing rules: inline commands are split as sdssplitargs
// does and re-encoded, headers are validated with string2ll, "*0" and "*-1" are
// skipped, the two bytes after an argument are skipped unchecked, a NUL byte before
// a header's or inline request's line end hides that line end (Redis searches with
// strchr), and the limits above are enforced. It allocates nothing for what a
// header merely claims: an argument's bytes are copied out as they arrive.
//
// The output is what redcon's reader then parses; since it is canonical, redcon's
// own (different) error paths are never reached. A framer is pure: no I/O, no
// clock, so it is fuzzed directly.
type framer struct {
	maxBulk int64 // proto-max-bulk-len
	state   int
	left    int64 // arguments still to come in the current frame
	bulk    int64 // bytes still to come in the current argument
	size    int64 // input charged to the current frame, for queryBufLimit
}

// feedResult tells what feed did.
type feedResult struct {
	used   int    // input bytes consumed
	frames int    // complete frames appended to out
	err    string // protocol error (reply "-ERR "+err, then close); "" if none
	kill   bool   // close without a reply (query buffer limit)
}

// feed parses as much of in as it can, appending canonical frames to *out. With
// one, it stops after the first complete frame, so that the next one is parsed only
// after this one ran (Redis parses a request after executing the previous one,
// which matters before AUTH, where limits depend on the outcome). unauth applies
// the limits for clients that have not authenticated.
func (f *framer) feed(in []byte, out *[]byte, unauth, one bool) (r feedResult) {
	o := *out
	defer func() { *out = o }()
	for r.used < len(in) {
		b := in[r.used:]
		switch f.state {
		case stStart:
			if b[0] != '*' {
				nl := lineEnd(b, '\n')
				if nl < 0 {
					if len(b) > inlineMax {
						r.err = perrTooBigInline
					}
					return r
				}
				line := b[:nl]
				if len(line) > 0 && line[len(line)-1] == '\r' {
					line = line[:len(line)-1]
				}
				args, ok := splitArgs(line)
				if !ok {
					r.err = perrUnbalanced
					return r
				}
				r.used += nl + 1
				if len(args) == 0 {
					continue
				}
				o = appendCommand(o, args)
				r.frames++
				if one {
					return r
				}
				continue
			}
			cr := lineEnd(b, '\r')
			if cr < 0 {
				if len(b) > inlineMax {
					r.err = perrTooBigMbulk
				}
				return r
			}
			if cr+1 >= len(b) { // the byte after '\r' has not arrived
				return r
			}
			n, ok := num.ParseInt(b[1:cr])
			if !ok || n > maxMultibulk {
				r.err = perrMbulkLen
				return r
			}
			if n > unauthMaxArgs && unauth {
				r.err = perrUnauthMbulk
				return r
			}
			r.used += cr + 2
			if n <= 0 {
				continue
			}
			f.left, f.size = n, int64(cr+2)
			f.state = stBulkHdr
			o = appendHeader(o, '*', n)
		case stBulkHdr:
			cr := lineEnd(b, '\r')
			if cr < 0 {
				if len(b) > inlineMax {
					r.err = perrTooBigBulk
				}
				return r
			}
			if cr+1 >= len(b) {
				return r
			}
			if b[0] != '$' {
				c := b[0]
				if c == '\r' || c == '\n' {
					c = ' ' // Redis maps CR and LF in error messages to spaces
				}
				r.err = "Protocol error: expected '$', got '" + string([]byte{c}) + "'"
				return r
			}
			n, ok := num.ParseInt(b[1:cr])
			if !ok || n < 0 || n > f.maxBulk {
				r.err = perrBulkLen
				return r
			}
			if n > unauthMaxBulk && unauth {
				r.err = perrUnauthBulk
				return r
			}
			f.size += int64(cr+2) + n + 2 + argOverhead
			if f.size > queryBufLimit {
				r.kill = true
				return r
			}
			r.used += cr + 2
			f.bulk = n
			f.state = stBulkBody
			if n == 0 {
				f.state = stBulkEnd
			}
			o = appendHeader(o, '$', n)
		case stBulkBody:
			k := min(int64(len(b)), f.bulk)
			o = append(o, b[:k]...)
			r.used += int(k)
			f.bulk -= k
			if f.bulk == 0 {
				f.state = stBulkEnd
			}
		case stBulkEnd:
			if len(b) < 2 {
				return r
			}
			r.used += 2 // Redis skips these two bytes without looking at them
			o = append(o, '\r', '\n')
			f.left--
			if f.left > 0 {
				f.state = stBulkHdr
				continue
			}
			f.state = stStart
			r.frames++
			if one {
				return r
			}
		}
	}
	return r
}

// lineEnd returns the index of the first c in b, or -1 when there is none before
// the end of b or before a NUL byte: Redis finds line ends with strchr, which stops
// at NUL, so a NUL hides every line end after it and the request waits until it is
// too big.
func lineEnd(b []byte, c byte) int {
	i := bytes.IndexByte(b, c)
	if i < 0 {
		return -1
	}
	if bytes.IndexByte(b[:i], 0) >= 0 {
		return -1
	}
	return i
}

func appendHeader(o []byte, c byte, n int64) []byte {
	o = append(o, c)
	o = strconv.AppendInt(o, n, 10)
	return append(o, '\r', '\n')
}

func appendCommand(o []byte, args [][]byte) []byte {
	o = appendHeader(o, '*', int64(len(args)))
	for _, a := range args {
		o = appendHeader(o, '$', int64(len(a)))
		o = append(o, a...)
		o = append(o, '\r', '\n')
	}
	return o
}

// splitArgs splits an inline request as Redis's sdssplitargs: blanks separate
// arguments; "double quotes" support \xHH, \n, \r, \t, \b, \a and \<any> escapes;
// 'single quotes' support \'; a closing quote must be followed by a blank or the
// end. It returns false on unbalanced quotes. line holds no NUL (see lineEnd).
func splitArgs(line []byte) ([][]byte, bool) {
	var args [][]byte
	p := 0
	at := func(i int) byte { // the C string's byte at i, NUL past the end
		if i < len(line) {
			return line[i]
		}
		return 0
	}
	for {
		for p < len(line) && num.IsSpace(line[p]) {
			p++
		}
		if p >= len(line) {
			return args, true
		}
		cur := []byte{}
		inq, insq, done := false, false, false
		for !done {
			c := at(p)
			switch {
			case inq:
				switch {
				case c == '\\' && at(p+1) == 'x' && isHex(at(p+2)) && isHex(at(p+3)):
					cur = append(cur, unhex(at(p+2))<<4|unhex(at(p+3)))
					p += 3
				case c == '\\' && at(p+1) != 0:
					p++
					e := at(p)
					switch e {
					case 'n':
						e = '\n'
					case 'r':
						e = '\r'
					case 't':
						e = '\t'
					case 'b':
						e = '\b'
					case 'a':
						e = '\a'
					}
					cur = append(cur, e)
				case c == '"':
					if n := at(p + 1); n != 0 && !num.IsSpace(n) {
						return nil, false
					}
					done = true
				case c == 0:
					return nil, false
				default:
					cur = append(cur, c)
				}
			case insq:
				switch {
				case c == '\\' && at(p+1) == '\'':
					p++
					cur = append(cur, '\'')
				case c == '\'':
					if n := at(p + 1); n != 0 && !num.IsSpace(n) {
						return nil, false
					}
					done = true
				case c == 0:
					return nil, false
				default:
					cur = append(cur, c)
				}
			default:
				switch c {
				case ' ', '\n', '\r', '\t', 0:
					done = true
				case '"':
					inq = true
				case '\'':
					insq = true
				default:
					cur = append(cur, c)
				}
			}
			if p < len(line) {
				p++
			}
		}
		args = append(args, cur)
	}
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// errProtocol ends a connection after its protocol error was answered;
// errQueryBuf ends one that exceeded the query buffer limit.
var (
	errProtocol = errors.New("resp: protocol error")
	errQueryBuf = errors.New("resp: query buffer limit exceeded")
)

// Input buffer sizes of a guardConn.
const (
	inMin = 4 << 10
	inMax = inlineMax + 64<<10 // room for a maximal header or inline line plus a read
)

// guardConn sits between a client's socket and redcon's reader: Read returns the
// framer's canonical output instead of the raw bytes. It delivers the replies'
// order Redis has: when the framer finds a protocol error, the commands before it
// are delivered first; only on the next Read, which redcon makes after it ran and
// flushed them, is the error written to the socket and the connection ended.
//
// Read returns as soon as the data it copied ends a complete command; while a
// command is incomplete it keeps reading until p is full, so that redcon, which
// re-parses an incomplete command from its start on every read, sees a big command
// in few, geometrically growing steps. A guardConn is used by one goroutine (the
// connection's), like a net.Conn's reads.
type guardConn struct {
	net.Conn
	s  *Server
	cl *client // set when the connection is accepted
	f  framer

	in       []byte // raw input; in[inPos:] not parsed yet
	inPos    int
	starved  bool   // the framer needs more input than in holds
	lastFull bool   // the last read filled the input buffer
	lastN    int    // bytes of the last read
	empty    int    // reads in a row that returned nothing
	out      []byte // canonical output; out[outPos:] not delivered yet
	outPos   int
	ready    bool // out holds the end of a complete command
	perr     string
	kill     bool
	rerr     error
}

func newGuardConn(c net.Conn, s *Server) *guardConn {
	return &guardConn{Conn: c, s: s, f: framer{maxBulk: s.cfg.ProtoMaxBulkLen}}
}

// unauth reports whether the pre-AUTH limits apply now.
func (g *guardConn) unauth() bool {
	return g.cl != nil && !g.cl.authed
}

func (g *guardConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n := 0
	for {
		if g.outPos < len(g.out) {
			k := copy(p[n:], g.out[g.outPos:])
			g.outPos += k
			n += k
			if g.outPos < len(g.out) {
				return n, nil // p is full
			}
			g.out, g.outPos = g.out[:0], 0
			if cap(g.out) > inMax*4 {
				g.out = nil
			}
		}
		if n > 0 && (g.ready || n == len(p)) {
			g.ready = false
			return n, nil
		}
		if g.perr != "" || g.kill || g.rerr != nil {
			if n > 0 {
				return n, nil
			}
			return 0, g.fail()
		}
		if g.inPos == len(g.in) && g.f.state == stBulkBody && g.f.bulk > 0 {
			// Inside an argument with nothing buffered: read its bytes
			// straight into p, without copying them through in and out.
			k := int(min(int64(len(p)-n), g.f.bulk))
			m, err := g.Conn.Read(p[n : n+k])
			n += m
			g.f.bulk -= int64(m)
			if g.f.bulk == 0 {
				g.f.state = stBulkEnd
			}
			g.s.stats.netIn.Add(int64(m))
			if err == nil {
				err = g.progress(m)
			}
			if err != nil {
				g.rerr = err
			}
			continue
		}
		if g.inPos < len(g.in) && !g.starved {
			unauth := g.unauth()
			r := g.f.feed(g.in[g.inPos:], &g.out, unauth, unauth)
			g.inPos += r.used
			if r.frames > 0 {
				g.ready = true
			}
			g.perr, g.kill = r.err, r.kill
			if r.frames == 0 || !unauth {
				g.starved = true // everything parseable was parsed
			}
			continue
		}
		if err := g.fill(); err != nil {
			g.rerr = err
		}
	}
}

// fill reads more input from the socket. The buffer grows while reads fill it
// (a big argument streams in large reads) up to inMax, and shrinks back when
// traffic is small again.
func (g *guardConn) fill() error {
	if g.inPos > 0 {
		rest := copy(g.in, g.in[g.inPos:])
		g.in, g.inPos = g.in[:rest], 0
	}
	size := cap(g.in)
	switch {
	case size == 0:
		size = inMin
	case g.lastFull || size-len(g.in) < inMin/2:
		size = min(2*size, inMax)
	case len(g.in) == 0 && size > inMin && g.lastN < size/4:
		size = inMin
	}
	size = max(size, len(g.in)+inMin/2)
	if size != cap(g.in) {
		in := make([]byte, len(g.in), size)
		copy(in, g.in)
		g.in = in
	}
	free := g.in[len(g.in):cap(g.in)]
	m, err := g.Conn.Read(free)
	g.in = g.in[:len(g.in)+m]
	g.lastFull, g.lastN = m == len(free), m
	if m > 0 {
		g.starved = false
		g.s.stats.netIn.Add(int64(m))
	}
	if err == nil {
		err = g.progress(m)
	}
	return err
}

// progress fails after many reads in a row that returned nothing and no error,
// as bufio does, rather than spinning.
func (g *guardConn) progress(m int) error {
	if m > 0 {
		g.empty = 0
		return nil
	}
	if g.empty++; g.empty >= 100 {
		return io.ErrNoProgress
	}
	return nil
}

// fail ends the connection after a protocol error, answering it first.
func (g *guardConn) fail() error {
	if g.rerr != nil {
		return g.rerr
	}
	if g.kill {
		g.s.cfg.Logger.Warn("closing client that exceeded the query buffer limit", "addr", g.RemoteAddr().String())
		g.rerr = errQueryBuf
		return g.rerr
	}
	g.s.stats.errorReplies.Add(1)
	g.s.cfg.Logger.Debug("protocol error", "addr", g.RemoteAddr().String(), "err", g.perr)
	// The connection ends with this line: give it a second whatever the timeout
	// (a deadline set here replaces netserve's WriteTimeout for good).
	_ = g.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = g.Write([]byte("-ERR " + g.perr + "\r\n"))
	g.rerr = errProtocol
	return g.rerr
}

// Write flushes the connection's session first (proxy.Session), so no reply
// acknowledges a write before it is durable and a pipelined batch of writes shares
// one WAL sync; if the flush fails, no reply leaves. A client that does not take the
// bytes within Config.WriteTimeout is disconnected (the write fails: netserve arms
// the deadline on the connection below).
func (g *guardConn) Write(b []byte) (int, error) {
	if g.cl != nil {
		g.cl.pending = 0 // redcon writes out everything it buffered
		if err := g.cl.sess.Flush(g.s.ctx); err != nil {
			g.s.cfg.Logger.Error("syncing writes before replying", "err", err)
			return 0, err
		}
	}
	n, err := g.Conn.Write(b)
	g.s.stats.netOut.Add(int64(n))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		g.s.cfg.Logger.Warn("closing client that did not read its replies", "addr", g.RemoteAddr().String(), "timeout", g.s.cfg.WriteTimeout)
	}
	return n, err
}
