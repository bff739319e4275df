package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// Protocols a target speaks.
const (
	ProtoRESP     = "resp"
	ProtoMemcache = "memcache"
)

// ErrProtocol is wrapped by every error about a reply the client cannot parse.
var ErrProtocol = errors.New("bench: protocol error")

// maxLine bounds a reply's header line; maxBulk bounds a value in a reply.
const (
	maxLine = 64 << 10
	maxBulk = 512 << 20
)

// Reply is what kind of answer a request got.
type Reply uint8

// The kinds of replies.
const (
	// ReplyOK is any well-formed answer that is neither of the others: a value,
	// STORED, +OK.
	ReplyOK Reply = iota
	// ReplyNil is a GET that found nothing (a miss): RESP's null bulk string, null
	// array or RESP3 null; memcached's END without a VALUE.
	ReplyNil
	// ReplyError is a server error reply: a well-formed "-ERR..." or
	// "SERVER_ERROR...".
	ReplyError
)

// String returns "ok", "nil" or "error".
func (r Reply) String() string {
	switch r {
	case ReplyOK:
		return "ok"
	case ReplyNil:
		return "nil"
	case ReplyError:
		return "error"
	}
	return "Reply(" + strconv.Itoa(int(r)) + ")"
}

// codec encodes requests and reads replies of one protocol. Replies are read in
// place: a codec never keeps a reference into the reader's buffer.
type codec interface {
	appendGet(b, key []byte) []byte
	appendSet(b, key, value []byte) []byte
	// readReply reads the reply to op and says what kind it was; err is for what
	// ends the connection (a server error reply is ReplyError with a nil error).
	readReply(r *bufio.Reader, op Op) (Reply, error)
}

func newCodec(protocol string) (codec, error) {
	switch protocol {
	case ProtoRESP:
		return respCodec{}, nil
	case ProtoMemcache:
		return mcCodec{}, nil
	}
	return nil, fmt.Errorf("%w: protocol must be %s or %s, not %q", ErrConfig, ProtoRESP, ProtoMemcache, protocol)
}

// Conn is one client connection that sends requests in pipelined batches: a whole
// batch in one write, then its replies in order. Not safe for concurrent use.
type Conn struct {
	nc    net.Conn
	r     *bufio.Reader
	codec codec
	wbuf  []byte
}

// Dial connects to addr (host:port) speaking protocol.
func Dial(protocol, addr string, timeout time.Duration) (*Conn, error) {
	cd, err := newCodec(protocol)
	if err != nil {
		return nil, err
	}
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, fmt.Errorf("bench: dial %s: %w", addr, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return &Conn{nc: nc, r: bufio.NewReaderSize(nc, 64<<10), codec: cd}, nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.nc.Close() }

// SetDeadline bounds every read and write from now on.
func (c *Conn) SetDeadline(t time.Time) error { return c.nc.SetDeadline(t) }

// Request is one operation of a batch.
type Request struct {
	Op  Op
	Key []byte
}

// Batch sends reqs in one write (SETs carry value) and reads their replies in order,
// calling done(i, reply) as the reply to reqs[i] arrives. It returns the first
// error that ends the connection.
func (c *Conn) Batch(reqs []Request, value []byte, done func(i int, reply Reply)) error {
	b := c.wbuf[:0]
	for _, q := range reqs {
		if q.Op == OpSet {
			b = c.codec.appendSet(b, q.Key, value)
		} else {
			b = c.codec.appendGet(b, q.Key)
		}
	}
	c.wbuf = b
	if _, err := c.nc.Write(b); err != nil {
		return fmt.Errorf("bench: write: %w", err)
	}
	for i, q := range reqs {
		reply, err := c.codec.readReply(c.r, q.Op)
		if err != nil {
			return fmt.Errorf("bench: reply %d of %d (%s): %w", i+1, len(reqs), q.Op, err)
		}
		done(i, reply)
	}
	return nil
}

// readLine returns the next line without its "\r\n", valid until the next read.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%w: reply line longer than %d bytes", ErrProtocol, r.Size())
		}
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("%w: line %q does not end in CRLF", ErrProtocol, line)
	}
	return line[:len(line)-2], nil
}

// atoi parses a small decimal integer, possibly negative, without allocating.
func atoi(b []byte) (int, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// skipData discards n bytes of data and the CRLF after them.
func skipData(r *bufio.Reader, n int) error {
	if n < 0 || n > maxBulk {
		return fmt.Errorf("%w: data length %d", ErrProtocol, n)
	}
	if _, err := r.Discard(n); err != nil {
		return fmt.Errorf("%w: data: %w", ErrProtocol, err)
	}
	crlf, err := r.Peek(2)
	if err != nil {
		return fmt.Errorf("%w: data end: %w", ErrProtocol, err)
	}
	if crlf[0] != '\r' || crlf[1] != '\n' {
		return fmt.Errorf("%w: data not followed by CRLF", ErrProtocol)
	}
	_, _ = r.Discard(2)
	return nil
}

// respCodec speaks RESP2: requests are arrays of bulk strings.
type respCodec struct{}

func appendBulk(b, s []byte) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, '\r', '\n')
	b = append(b, s...)
	return append(b, '\r', '\n')
}

func (respCodec) appendGet(b, key []byte) []byte {
	b = append(b, "*2\r\n$3\r\nGET\r\n"...)
	return appendBulk(b, key)
}

func (respCodec) appendSet(b, key, value []byte) []byte {
	b = append(b, "*3\r\n$3\r\nSET\r\n"...)
	b = appendBulk(b, key)
	return appendBulk(b, value)
}

func (respCodec) readReply(r *bufio.Reader, _ Op) (Reply, error) {
	return readRESP(r, 0)
}

// readRESP reads one RESP2 or RESP3 value of any type and says what kind it is:
// an error reply, a null (RESP2's $-1 and *-1, RESP3's _) or anything else.
func readRESP(r *bufio.Reader, depth int) (Reply, error) {
	if depth > 8 {
		return ReplyOK, fmt.Errorf("%w: replies nested deeper than 8", ErrProtocol)
	}
	line, err := readLine(r)
	if err != nil {
		return ReplyOK, err
	}
	if len(line) == 0 {
		return ReplyOK, fmt.Errorf("%w: empty reply line", ErrProtocol)
	}
	switch line[0] {
	case '_':
		return ReplyNil, nil
	case '+', ':', ',', '#', '(':
		return ReplyOK, nil
	case '-', '!':
		if line[0] == '!' {
			n, ok := atoi(line[1:])
			if !ok {
				return ReplyOK, fmt.Errorf("%w: bad length %q", ErrProtocol, line)
			}
			return ReplyError, skipData(r, n)
		}
		return ReplyError, nil
	case '$', '=':
		n, ok := atoi(line[1:])
		if !ok || n < -1 {
			return ReplyOK, fmt.Errorf("%w: bad length %q", ErrProtocol, line)
		}
		if n == -1 {
			return ReplyNil, nil
		}
		return ReplyOK, skipData(r, n)
	case '*', '~', '>', '%', '|':
		n, ok := atoi(line[1:])
		if !ok || n < -1 {
			return ReplyOK, fmt.Errorf("%w: bad length %q", ErrProtocol, line)
		}
		if n == -1 {
			return ReplyNil, nil
		}
		if line[0] == '%' || line[0] == '|' {
			n *= 2
		}
		for range n {
			if _, err := readRESP(r, depth+1); err != nil {
				return ReplyOK, err
			}
		}
		return ReplyOK, nil
	}
	return ReplyOK, fmt.Errorf("%w: unknown reply %q", ErrProtocol, line)
}

// mcCodec speaks the memcached text protocol: get and set with flags 0 and no expiry.
type mcCodec struct{}

func (mcCodec) appendGet(b, key []byte) []byte {
	b = append(b, "get "...)
	b = append(b, key...)
	return append(b, '\r', '\n')
}

func (mcCodec) appendSet(b, key, value []byte) []byte {
	b = append(b, "set "...)
	b = append(b, key...)
	b = append(b, " 0 0 "...)
	b = strconv.AppendInt(b, int64(len(value)), 10)
	b = append(b, '\r', '\n')
	b = append(b, value...)
	return append(b, '\r', '\n')
}

var (
	mcEnd    = []byte("END")
	mcValue  = []byte("VALUE ")
	mcStored = []byte("STORED")
)

func mcError(line []byte) bool {
	return bytes.Equal(line, []byte("ERROR")) || bytes.HasPrefix(line, []byte("SERVER_ERROR")) ||
		bytes.HasPrefix(line, []byte("CLIENT_ERROR"))
}

func (mcCodec) readReply(r *bufio.Reader, op Op) (Reply, error) {
	line, err := readLine(r)
	if err != nil {
		return ReplyOK, err
	}
	if mcError(line) {
		return ReplyError, nil
	}
	if op == OpSet {
		if bytes.Equal(line, mcStored) {
			return ReplyOK, nil
		}
		return ReplyOK, fmt.Errorf("%w: set answered %q", ErrProtocol, line)
	}
	reply := ReplyNil
	for !bytes.Equal(line, mcEnd) {
		if !bytes.HasPrefix(line, mcValue) {
			return ReplyOK, fmt.Errorf("%w: get answered %q", ErrProtocol, line)
		}
		// VALUE <key> <flags> <bytes> [<cas>]
		n, ok := atoi(field(line, 3))
		if !ok {
			return ReplyOK, fmt.Errorf("%w: bad VALUE length %q", ErrProtocol, line)
		}
		if err := skipData(r, n); err != nil {
			return ReplyOK, err
		}
		if line, err = readLine(r); err != nil {
			return ReplyOK, err
		}
		reply = ReplyOK
	}
	return reply, nil
}

// field returns the i-th (from 0) space-separated field of line, or nil.
func field(line []byte, i int) []byte {
	for ; i >= 0; i-- {
		for len(line) > 0 && line[0] == ' ' {
			line = line[1:]
		}
		end := bytes.IndexByte(line, ' ')
		if end < 0 {
			end = len(line)
		}
		if i == 0 {
			return line[:end]
		}
		line = line[end:]
	}
	return nil
}
