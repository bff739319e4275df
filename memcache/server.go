package memcache

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/dynakv/dynakv/internal/netserve"
	"github.com/dynakv/dynakv/proxy"
)

// Config configures a Server. The zero value of every field means its default; New
// never mutates the caller's struct.
type Config struct {
	// MaxClients bounds concurrent connections; default 10000. A connection beyond it
	// gets "ERROR Too many open connections" and is closed, as in memcached.
	MaxClients int
	// MaxKeyBytes bounds a key; default 250, memcached's KEY_MAX_LENGTH.
	MaxKeyBytes int
	// MaxValueBytes bounds a data block; default the proxy's MaxValueBytes.
	MaxValueBytes int
	// Password, when set, makes clients authenticate first, as memcached 1.6's
	// ASCII authentication does (auth.go). Default "": no authentication.
	Password string
	// WriteTimeout bounds each write of replies to a client: a client that does not
	// take them for this long (it stopped reading) is disconnected. Default 30s;
	// negative: no limit.
	WriteTimeout time.Duration
	// Version is reported by "version" as "VERSION <Version>"; default "dynakv".
	Version string
	// Observer receives command and connection events; default proxy.NopObserver.
	Observer proxy.Observer
	// Logger logs accept errors and recovered panics; default discards.
	Logger *slog.Logger
	// Now is the clock for exptimes, TTLs, uptime and latencies; default time.Now.
	Now func() time.Time
	// Stats, when set, returns extra lines for "stats" (a line named like a built-in
	// one replaces it).
	Stats func() []Stat
	// Settings, when set, returns extra lines for "stats settings" (a line named
	// like a built-in one replaces it): the node's maxbytes and evictions.
	Settings func() []Stat
	// PanicPolicy says what a panic while serving a connection does:
	// netserve.CloseConn (the default) logs it and closes that connection only;
	// netserve.Crash lets it end the process (tests).
	PanicPolicy netserve.PanicPolicy
}

// EnsureDefaults returns a copy of c with every unset (or negative) field set to its
// default, MaxValueBytes excepted: New takes that one from the proxy.
func (c Config) EnsureDefaults() Config {
	if c.MaxClients <= 0 {
		c.MaxClients = 10000
	}
	if c.MaxKeyBytes <= 0 {
		c.MaxKeyBytes = 250
	}
	if c.Version == "" {
		c.Version = "dynakv"
	}
	if c.Observer == nil {
		c.Observer = proxy.NopObserver{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 30 * time.Second
	}
	return c
}

const (
	protocolName = "memcache"
	// readBufSize and writeBufSize size each connection's buffers.
	readBufSize  = 8 << 10
	writeBufSize = 8 << 10
	// maxLine is how long a command line may grow without its "\n" (memcached: 2048).
	maxLine = 2048
	// maxGetLine bounds a multi-get line, which memcached lets grow past maxLine.
	maxGetLine = 4 << 20
	// blockChunk is the first allocation for a data block; larger blocks grow as
	// their bytes arrive.
	blockChunk = 64 << 10
)

var errLineTooLong = errors.New("memcache: line too long")

// Server serves the memcached text protocol over a proxy.
type Server struct {
	cfg     Config
	px      *proxy.Proxy
	ns      *netserve.Server[*conn] // accepts, counts and closes the connections
	ctx     context.Context         // ns's: canceled by Close
	started time.Time

	verbosity atomic.Uint32
	stats     counters
}

// New returns a Server that executes commands on px.
func New(cfg Config, px *proxy.Proxy) *Server {
	cfg = cfg.EnsureDefaults()
	if cfg.MaxValueBytes <= 0 {
		cfg.MaxValueBytes = px.MaxValueBytes()
	}
	s := &Server{cfg: cfg, px: px, started: cfg.Now()}
	s.ns = netserve.New(netserve.Config[*conn]{
		MaxClients:   cfg.MaxClients,
		RefuseLine:   []byte(lineTooManyConns + "\r\n"),
		WriteTimeout: cfg.WriteTimeout,
		Open:         s.open,
		Serve:        s.serveConn,
		Panic:        cfg.PanicPolicy,
		Events: netserve.Events{
			AcceptFailed: func(err error, retryIn time.Duration) {
				cfg.Logger.Warn("memcache: accept", "err", err, "retry_in", retryIn)
			},
			Refused: func(nc net.Conn) {
				s.stats.rejectedConns.Add(1)
				cfg.Logger.Warn("memcache: refusing client: too many open connections", "addr", nc.RemoteAddr().String())
			},
			Panic: func(_ net.Conn, v any, stack []byte) {
				cfg.Logger.Error("memcache: panic serving a connection", "panic", v, "stack", string(stack))
			},
		},
	})
	s.ctx = s.ns.Context()
	return s
}

// Clients returns the number of open client connections.
func (s *Server) Clients() int { return s.ns.Len() }

// Serve accepts connections on ln until Close, serving each on its own goroutine. It
// returns nil after Close, or the listener's error if it fails otherwise (or if
// Serve was called before).
func (s *Server) Serve(ln net.Listener) error { return s.ns.Serve(ln) }

// open builds an accepted connection's state (those beyond MaxClients were
// refused by netserve), on the accept goroutine.
func (s *Server) open(_ int64, nc net.Conn) *conn {
	c := s.newConn(nc)
	s.stats.totalConns.Add(1)
	s.cfg.Observer.Connection(protocolName, 1)
	return c
}

// serveConn serves one connection on its goroutine; netserve closes it after.
func (s *Server) serveConn(c *conn) {
	defer s.cfg.Observer.Connection(protocolName, -1)
	c.serve()
}

// Close stops accepting, closes every connection, cancels in-flight commands and
// waits for the connection goroutines. It is idempotent.
func (s *Server) Close() error { return s.ns.Close() }

// countingReader and countingWriter feed bytes_read and bytes_written.
type countingReader struct {
	r io.Reader
	n *atomic.Uint64
}

func (r countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n.Add(uint64(n))
	return n, err
}

// flushingReader flushes the pending replies before it reads from the client: the
// connection only blocks after every reply it owes has been sent, even when a batch
// ends inside a command line or a data block.
type flushingReader struct {
	r io.Reader
	w *bufio.Writer
}

func (f flushingReader) Read(p []byte) (int, error) {
	if f.w.Buffered() > 0 {
		if err := f.w.Flush(); err != nil {
			return 0, err
		}
	}
	return f.r.Read(p)
}

type countingWriter struct {
	w io.Writer
	n *atomic.Uint64
}

func (w countingWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.n.Add(uint64(n))
	return n, err
}

// conn is one client connection, served by one goroutine.
type conn struct {
	s   *Server
	ctx context.Context
	r   *bufio.Reader
	w   *bufio.Writer

	big   []byte   // a multi-get line longer than the read buffer
	toks  [][]byte // the current line's tokens
	out   []byte   // scratch for building reply lines
	arena []byte   // scratch for a line's tokens that must outlive a read

	// Per command.
	noreply bool // suppress the reply (classic noreply, meta q on nominal replies)
	failed  bool // the reply was an error line
	flush   bool // flush the reply now (mn)

	sess   *proxy.Session // every single-key op runs through it; flushed before replies leave
	authed bool           // authenticated, or no password is configured
}

func (s *Server) newConn(rw io.ReadWriter) *conn {
	c := &conn{
		s:      s,
		ctx:    s.ctx,
		toks:   make([][]byte, 0, maxTokens),
		authed: s.cfg.Password == "",
	}
	// netserve arms WriteTimeout on the connection below rw.
	var w io.Writer = countingWriter{rw, &s.stats.bytesWritten}
	c.w = bufio.NewWriterSize(syncingWriter{c, w}, writeBufSize)
	c.r = bufio.NewReaderSize(flushingReader{countingReader{rw, &s.stats.bytesRead}, c.w}, readBufSize)
	// A command with nothing buffered after it is the last before the replies
	// are flushed (and the session with them).
	c.sess = s.px.NewSession(func() bool { return c.r.Buffered() > 0 })
	return c
}

// syncingWriter flushes the connection's session before any reply bytes reach the
// socket, so a pipelined batch of commands shares one WAL sync and nothing is
// acknowledged before it is durable; if the flush fails, no reply leaves.
type syncingWriter struct {
	c *conn
	w io.Writer
}

func (sw syncingWriter) Write(b []byte) (int, error) {
	if err := sw.c.sess.Flush(sw.c.ctx); err != nil {
		return 0, err
	}
	return sw.w.Write(b)
}

// serve reads and executes commands until the client leaves, quits or breaks the
// protocol beyond repair. Replies are flushed once the pipelined batch is consumed
// (and, through flushingReader, whenever the next read must wait for the client).
func (c *conn) serve() {
	for {
		line, err := c.readLine()
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				c.w.WriteString(lineLineTooLong + "\r\n")
				c.w.Flush()
			}
			return
		}
		if !c.authed {
			if !c.authenticate(line) {
				c.w.Flush()
				return
			}
			if c.r.Buffered() == 0 && c.w.Flush() != nil {
				return
			}
			continue
		}
		quit, err := c.dispatch(line)
		if quit || err != nil {
			c.w.Flush()
			return
		}
		if c.flush || c.r.Buffered() == 0 {
			if c.w.Flush() != nil {
				return
			}
		}
	}
}

// readLine returns the next command line without its line end. The line aliases the
// read buffer (or c.big) and is valid until the next read from c.r.
func (c *conn) readLine() ([]byte, error) {
	if cap(c.big) > 64<<10 {
		c.big = nil // do not keep a huge multi-get's buffer for the connection's life
	}
	c.big = c.big[:0]
	scanned := 0 // buffered bytes already known to hold no "\n"
	for {
		if n := c.r.Buffered(); n > 0 {
			buf, _ := c.r.Peek(n)
			i := bytes.IndexByte(buf[scanned:], '\n')
			if i >= 0 {
				i += scanned
			}
			scanned = n
			switch {
			case i >= 0 && len(c.big) == 0:
				c.r.Discard(i + 1)
				return trimLine(buf[:i]), nil
			case i >= 0:
				if len(c.big)+i > maxGetLine {
					return nil, errLineTooLong
				}
				c.big = append(c.big, buf[:i]...)
				c.r.Discard(i + 1)
				return trimLine(c.big), nil
			case len(c.big) > 0:
				if len(c.big)+n > maxGetLine {
					return nil, errLineTooLong
				}
				c.big = append(c.big, buf...)
				c.r.Discard(n)
				scanned = 0
			case n > maxLine:
				if !isMultiGet(buf) {
					return nil, errLineTooLong
				}
				if n == c.r.Size() {
					// The buffer is full: continue the line in c.big.
					c.big = append(c.big, buf...)
					c.r.Discard(n)
					scanned = 0
				}
			}
		}
		// Wait for more bytes: Peek fills the buffer with at least one more.
		if _, err := c.r.Peek(c.r.Buffered() + 1); err != nil {
			return nil, err
		}
	}
}

// readBlock reads a data block of n bytes and its "\r\n". ok is false when the two
// bytes after the data are not "\r\n" (memcached's "bad data chunk"). The buffer
// grows with the bytes received, so a client cannot make the server allocate what it
// does not send.
func (c *conn) readBlock(n int) (data []byte, ok bool, err error) {
	total := n + 2
	var buf []byte
	if total <= blockChunk {
		buf = make([]byte, total)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return nil, false, err
		}
	} else {
		buf = make([]byte, 0, blockChunk)
		for len(buf) < total {
			if len(buf) == cap(buf) {
				grown := make([]byte, len(buf), min(2*cap(buf), total))
				copy(grown, buf)
				buf = grown
			}
			m, err := c.r.Read(buf[len(buf):min(cap(buf), total)])
			buf = buf[:len(buf)+m]
			if err != nil && len(buf) < total {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return nil, false, err
			}
		}
	}
	return buf[:n:n], buf[n] == '\r' && buf[n+1] == '\n', nil
}

// swallow discards a refused data block of n bytes as it arrives.
func (c *conn) swallow(n int) error {
	_, err := c.r.Discard(n)
	return err
}

// reply writes line and "\r\n" unless the command asked for no reply.
func (c *conn) reply(line string) {
	if c.noreply {
		return
	}
	c.w.WriteString(line)
	c.w.WriteString("\r\n")
}

// replyBytes is reply for a line built in a byte slice.
func (c *conn) replyBytes(line []byte) {
	if c.noreply {
		return
	}
	c.w.Write(line)
	c.w.WriteString("\r\n")
}

// fail answers an error line; like memcached's out_string it is hidden by noreply.
func (c *conn) fail(line string) {
	c.failed = true
	c.reply(line)
}

// failAlways answers an error line even in quiet mode (memcached's out_errstring).
func (c *conn) failAlways(line string) {
	c.noreply = false
	c.fail(line)
}

// failErr answers the line for a proxy error.
func (c *conn) failErr(err error) { c.fail(errorLine(err)) }

// do runs one proxy operation in the connection's session, with its context.
func (c *conn) do(op proxy.Op) (proxy.Result, error) {
	return c.sess.Do(c.ctx, op)
}

// now is the server clock.
func (c *conn) now() time.Time { return c.s.cfg.Now() }

// validKey reports whether a key token is within the key limit.
func (c *conn) validKey(k []byte) bool { return len(k) <= c.s.cfg.MaxKeyBytes }

// dispatch executes one command line. quit asks to close the connection after the
// pending replies; err is an I/O error reading a data block.
func (c *conn) dispatch(line []byte) (quit bool, err error) {
	start := c.now()
	c.noreply, c.failed, c.flush = false, false, false
	var rest []byte
	c.toks, rest = tokenize(c.toks[:0], line)
	toks := c.toks
	name := "unknown"
	defer func() {
		c.s.cfg.Observer.Command(protocolName, name, c.now().Sub(start), c.failed)
	}()
	if len(toks) == 0 || len(toks[0]) < 2 {
		c.fail(lineError)
		return false, nil
	}
	n := len(toks)
	cmd := toks[0]
	if len(cmd) == 2 && cmd[0] == 'm' {
		switch cmd[1] {
		case 'g':
			name = "mg"
			c.metaGet(toks)
		case 's':
			name = "ms"
			err = c.metaSet(toks)
		case 'd':
			name = "md"
			c.metaDelete(toks)
		case 'a':
			name = "ma"
			c.metaArithmetic(toks)
		case 'n':
			name = "mn"
			c.reply("MN")
			c.flush = true
		case 'e':
			name = "me"
			c.metaDebug(toks)
		default:
			c.fail(lineError)
		}
		return false, err
	}
	switch string(cmd) {
	case "get", "bget":
		name = "get"
		c.cmdGet(toks, rest, false, false)
	case "gets":
		name = "gets"
		c.cmdGet(toks, rest, true, false)
	case "gat":
		name = "gat"
		c.cmdGet(toks, rest, false, true)
	case "gats":
		name = "gats"
		c.cmdGet(toks, rest, true, true)
	case "set", "add", "replace", "append", "prepend":
		name = string(cmd)
		if n != 5 && n != 6 {
			c.fail(lineError)
			return false, nil
		}
		err = c.cmdUpdate(toks, false)
	case "cas":
		name = "cas"
		if n != 6 && n != 7 {
			c.fail(lineError)
			return false, nil
		}
		err = c.cmdUpdate(toks, true)
	case "incr", "decr":
		name = string(cmd)
		if n != 3 && n != 4 {
			c.fail(lineError)
			return false, nil
		}
		c.cmdArithmetic(toks, name == "incr")
	case "delete":
		name = "delete"
		if n < 2 || n > 4 {
			c.fail(lineError)
			return false, nil
		}
		c.cmdDelete(toks)
	case "touch":
		name = "touch"
		if n != 3 && n != 4 {
			c.fail(lineError)
			return false, nil
		}
		c.cmdTouch(toks)
	case "flush_all":
		name = "flush_all"
		if n > 3 {
			c.fail(lineError)
			return false, nil
		}
		c.cmdFlushAll(toks)
	case "version":
		name = "version"
		c.reply("VERSION " + c.s.cfg.Version)
	case "verbosity":
		name = "verbosity"
		if n != 2 && n != 3 {
			c.fail(lineError)
			return false, nil
		}
		c.cmdVerbosity(toks)
	case "stats":
		name = "stats"
		c.cmdStats(toks)
	case "quit":
		name = "quit"
		return true, nil
	case "shutdown":
		name = "shutdown"
		c.fail("ERROR: shutdown not enabled")
	default:
		if webRequest(toks) {
			name = "http"
			return true, nil
		}
		c.fail(lineError)
	}
	return false, err
}

// webRequest reports an unknown command line that memcached 1.6 takes for an HTTP
// request and answers by closing the connection: its last token starts with "HTTP/"
// and its first letter is none of the ones memcached dispatches on before it gives
// up (g, s, a, c, i, d, t answer ERROR instead).
func webRequest(toks [][]byte) bool {
	switch toks[0][0] {
	case 'g', 's', 'a', 'c', 'i', 'd', 't':
		return false
	}
	return bytes.HasPrefix(toks[len(toks)-1], []byte("HTTP/"))
}
