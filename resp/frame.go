package resp

import (
	"bytes"
	"strconv"

	"github.com/dynakv/dynakv/internal/num"
)

// Request-parsing limits, Redis 7.2's (networking.c processInlineBuffer and
// processMultibulkBuffer).
const (
	inlineMax = 64 * 1024 // PROTO_INLINE_MAX_SIZE: an inline request or header line
	// maxMultibulk bounds a command's arguments. Redis 7.2 allows up to INT_MAX;
	// this is the 1024*1024 of Redis before 6.2, kept from when redcon's parser
	// looped over the claimed count on every read (the framer does not: it
	// allocates per argument that arrives), so that a client sees no change.
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

// framer parses a client's byte stream with Redis 7.2's request-parsing rules:
// inline commands are split as sdssplitargs does, headers are validated with
// string2ll, "*0" and "*-1" are skipped, the two bytes after an argument are
// skipped unchecked, a NUL byte before a header's or inline request's line end
// hides that line end (Redis searches with strchr), and the limits above are
// enforced. It allocates nothing for what a header merely claims. A framer is
// pure: no I/O, no clock, so it is fuzzed directly.
//
// It has two output modes over one state machine, so both apply the same rules:
//
//   - spans (the server's): each complete command's arguments are slices of the
//     input (inline ones are fresh: splitArgs unescapes them). The bytes of an
//     incomplete command are not consumed: the caller keeps them and passes them
//     again, followed by more, and the framer resumes where it stopped, so a
//     large argument arriving in many reads is scanned once (linear, not
//     quadratic, in its size).
//   - feed: canonical RESP multibulk frames appended to a buffer, every input
//     byte consumed as it arrives. It is the reference the spans mode is checked
//     against (FuzzFramerSpans: its frames parsed by redcon's reader give the
//     same arguments and errors).
type framer struct {
	maxBulk int64 // proto-max-bulk-len
	state   int
	left    int64 // arguments still to come in the current frame
	bulk    int64 // bytes still to come in the current argument
	size    int64 // input charged to the current frame, for queryBufLimit

	// Spans mode: where the command in progress stands, relative to its first
	// byte (the first byte of the input the caller passes next).
	at   int   // bytes of it parsed so far
	offs []int // start and end of each argument announced so far

	// The line (inline request or header) the framer stopped at: the bytes of it
	// searched already hold neither its end nor a NUL (scan), or they hold a NUL
	// (nul), which hides any end. Both modes resume at that line.
	scan int
	nul  bool
}

// feedResult tells what feed or spans did.
type feedResult struct {
	used   int    // input bytes consumed (spans: of complete or skipped requests)
	frames int    // complete commands found
	err    string // protocol error (reply "-ERR "+err, then close); "" if none
	kill   bool   // close without a reply (query buffer limit)
}

// commands holds the arguments of the complete commands spans found, in order.
// Their bytes alias the input spans was given (or are splitArgs' copies).
type commands struct {
	args [][]byte // every argument of every command
	ends []int    // command i is args[ends[i-1]:ends[i]]
}

func (c *commands) len() int { return len(c.ends) }

// get returns command i's arguments; appending to one does not clobber the next.
func (c *commands) get(i int) [][]byte {
	from := 0
	if i > 0 {
		from = c.ends[i-1]
	}
	return c.args[from:c.ends[i]:c.ends[i]]
}

// copyFrom makes c a copy of src whose arguments share one new allocation, so
// that they outlive src's input (the loop driver hands them to a goroutine).
func (c *commands) copyFrom(src *commands) {
	c.reset()
	n := 0
	for _, a := range src.args {
		n += len(a)
	}
	buf := make([]byte, 0, n)
	for _, a := range src.args {
		start := len(buf)
		buf = append(buf, a...)
		c.args = append(c.args, buf[start:len(buf):len(buf)])
	}
	c.ends = append(c.ends, src.ends...)
}

func (c *commands) reset() {
	if cap(c.args) > 4096 { // a command with many arguments is done
		c.args, c.ends = nil, c.ends[:0]
		return
	}
	clear(c.args) // drop references into the old input
	c.args, c.ends = c.args[:0], c.ends[:0]
}

// feed parses as much of in as it can, appending canonical frames to *out. With
// one, it stops after the first complete frame, so that the next one is parsed only
// after this one ran (Redis parses a request after executing the previous one,
// which matters before AUTH, where limits depend on the outcome). unauth applies
// the limits for clients that have not authenticated.
func (f *framer) feed(in []byte, out *[]byte, unauth, one bool) feedResult {
	return f.parse(in, out, nil, unauth, one)
}

// spans parses the complete commands of in, appending their arguments to cmds;
// unauth and one are feed's. The result's used counts the bytes of the commands
// found (and of skipped empty requests); in[used:] is the start of an incomplete
// command (or of a command not parsed yet, with one). The next call must be given
// in[used:] again, unchanged, at the start of its input, with any bytes that
// arrived after it: the framer resumes at the byte where it stopped. Nothing
// spans returns may be used after in's bytes are overwritten. After an error or
// a kill the framer must not be used again.
func (f *framer) spans(in []byte, cmds *commands, unauth, one bool) feedResult {
	return f.parse(in, nil, cmds, unauth, one)
}

// parse is feed (cmds == nil) and spans (out == nil). pos is the parse position;
// in spans mode, r.used lags behind it while a command is incomplete.
func (f *framer) parse(in []byte, out *[]byte, cmds *commands, unauth, one bool) (r feedResult) {
	var o []byte
	if out != nil {
		o = *out
		defer func() { *out = o }()
	}
	pos := f.at
	defer func() {
		if cmds == nil {
			r.used = pos
		} else {
			f.at = pos - r.used
		}
	}()
	for pos < len(in) {
		b := in[pos:]
		switch f.state {
		case stStart:
			if b[0] != '*' {
				nl := f.lineEnd(b, '\n')
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
				pos += nl + 1
				r.used = pos
				if len(args) == 0 {
					continue
				}
				if cmds != nil {
					cmds.args = append(cmds.args, args...)
					cmds.ends = append(cmds.ends, len(cmds.args))
				} else {
					o = appendCommand(o, args)
				}
				r.frames++
				if one {
					return r
				}
				continue
			}
			cr := f.lineEnd(b, '\r')
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
			pos += cr + 2
			if n <= 0 {
				r.used = pos
				continue
			}
			f.left, f.size = n, int64(cr+2)
			f.state = stBulkHdr
			if cmds != nil {
				f.offs = f.offs[:0]
			} else {
				o = appendHeader(o, '*', n)
			}
		case stBulkHdr:
			cr := f.lineEnd(b, '\r')
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
			pos += cr + 2
			f.bulk = n
			f.state = stBulkBody
			if n == 0 {
				f.state = stBulkEnd
			}
			if cmds != nil {
				// n fits: f.size bounds it by queryBufLimit.
				start := pos - r.used
				f.offs = append(f.offs, start, start+int(n))
			} else {
				o = appendHeader(o, '$', n)
			}
		case stBulkBody:
			k := min(int64(len(b)), f.bulk)
			if cmds == nil {
				o = append(o, b[:k]...)
			}
			pos += int(k)
			f.bulk -= k
			if f.bulk == 0 {
				f.state = stBulkEnd
			}
		case stBulkEnd:
			if len(b) < 2 {
				return r
			}
			pos += 2 // Redis skips these two bytes without looking at them
			if cmds == nil {
				o = append(o, '\r', '\n')
			}
			f.left--
			if f.left > 0 {
				f.state = stBulkHdr
				continue
			}
			f.state = stStart
			if cmds != nil {
				cmd := in[r.used:pos]
				for i := 0; i < len(f.offs); i += 2 {
					cmds.args = append(cmds.args, cmd[f.offs[i]:f.offs[i+1]:f.offs[i+1]])
				}
				cmds.ends = append(cmds.ends, len(cmds.args))
				if cap(f.offs) > 4096 {
					f.offs = nil
				}
			}
			r.used = pos
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
// too big. When it returns -1 the framer stops at b's line, and it remembers how
// much of b it searched, so that a line arriving in many pieces is searched once.
func (f *framer) lineEnd(b []byte, c byte) int {
	if f.nul {
		return -1
	}
	i := bytes.IndexByte(b[f.scan:], c)
	if i < 0 {
		f.nul = bytes.IndexByte(b[f.scan:], 0) >= 0
		f.scan = len(b)
		return -1
	}
	i += f.scan
	if bytes.IndexByte(b[f.scan:i], 0) >= 0 {
		f.nul = true
		return -1
	}
	f.scan = 0
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
