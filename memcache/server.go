package memcache

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/dynakv/dynakv/internal/evloop"
	"github.com/dynakv/dynakv/internal/loopcommit"
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
	// IOModel picks how connections are driven: IOLoop runs plain TCP
	// connections on event loops (internal/evloop; Linux only), commands run
	// inline on the loop where they can, else handed off to a goroutine of a
	// bounded pool (loop.go); IOGoroutine runs each
	// connection on its own goroutine with blocking reads. Default IOAuto: loops
	// where the system has them. Any other net.Conn than a *net.TCPConn (TLS)
	// always runs on a goroutine.
	IOModel string
	// IOLoops is the number of event loops with the loop driver. Default
	// GOMAXPROCS.
	IOLoops int
	// MaxHandoff bounds the goroutines that run handed-off commands on the loop
	// driver; past it connections wait, paused, in order. Default 1024.
	MaxHandoff int
	// Loops, when set with the loop driver, are the event loops to serve on,
	// owned by the caller (a node shares one group between its fronts, one loop
	// per core) and closed by it after Close; IOLoops is then unused. Default
	// nil: New starts the server's own loops, and Close stops them.
	Loops *evloop.Group
	// Commits, when set with Loops, is the loops' commit point
	// (internal/loopcommit), shared by every front on them, so that an
	// iteration's inline writes of all fronts make one commit. Default nil:
	// New makes one for its loops.
	Commits *loopcommit.Group[*proxy.WriteSet]
}

// IO models (Config.IOModel): netserve's.
const (
	IOAuto      = netserve.IOAuto
	IOLoop      = netserve.IOLoop
	IOGoroutine = netserve.IOGoroutine
)

// Validate reports a configuration error (New takes an unknown IOModel for
// IOAuto).
func (c Config) Validate() error {
	if err := netserve.CheckIOModel(c.IOModel); err != nil {
		return fmt.Errorf("memcache: %w", err)
	}
	if c.IOLoops < 0 || c.MaxHandoff < 0 {
		return errors.New("memcache: IOLoops and MaxHandoff must not be negative")
	}
	return nil
}

// loops reports whether the configuration runs connections on event loops.
func (c Config) loops() bool {
	return netserve.UseLoops(c.IOModel)
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
	if c.IOModel == "" {
		c.IOModel = IOAuto
	}
	if c.MaxHandoff <= 0 {
		c.MaxHandoff = netserve.DefaultMaxHandoff
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

// Server serves the memcached text protocol over a proxy.
type Server struct {
	cfg  Config
	px   *proxy.Proxy
	ns   *netserve.Server[*conn] // accepts, counts and closes the connections
	ctx  context.Context         // ns's: canceled by Close
	loop *evloop.Group           // the loop driver's loops; nil: goroutines only
	// ownLoops: New started loop (no Config.Loops), so Close stops it.
	ownLoops bool
	started  time.Time

	verbosity atomic.Uint32
	stats     counters

	// The loop driver's fast path (loop.go): the loops' commit point (with
	// the loops' other fronts); set by tests only: testHookTry sees every op a
	// handler runs in try mode.
	commits     *loopcommit.Group[*proxy.WriteSet]
	testHookTry func(op proxy.Op) error // non-nil: the op would block so
}

// New returns a Server that executes commands on px. With the loop driver it
// starts the event loops (falling back to goroutines, logged, if they cannot
// start); Close stops them.
func New(cfg Config, px *proxy.Proxy) *Server {
	cfg = cfg.EnsureDefaults()
	if cfg.MaxValueBytes <= 0 {
		cfg.MaxValueBytes = px.MaxValueBytes()
	}
	s := &Server{cfg: cfg, px: px, started: cfg.Now()}
	s.stats.handoffs = newHandoffs()
	var onLoop func(*conn) evloop.Handler
	if cfg.loops() {
		if s.loop = cfg.Loops; s.loop == nil {
			s.loop, s.ownLoops = s.newLoops(), true
		}
		if s.loop != nil {
			onLoop = s.onLoop
			if s.commits = cfg.Commits; s.commits == nil || cfg.Loops == nil {
				s.commits = s.newCommits()
			}
		}
	}
	s.ns = netserve.New(netserve.Config[*conn]{
		MaxClients:   cfg.MaxClients,
		RefuseLine:   []byte(lineTooManyConns + "\r\n"),
		WriteTimeout: cfg.WriteTimeout,
		Open:         s.open,
		Serve:        s.serveConn,
		Loops:        s.loop,
		OnLoop:       onLoop,
		MaxHandoff:   cfg.MaxHandoff,
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
			WriteTimedOut: func(nc net.Conn) {
				cfg.Logger.Debug("memcache: closing a client that does not take its replies", "addr", nc.RemoteAddr().String())
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
// refused by netserve), on the accept goroutine. Its I/O side is the driver's:
// serveConn (goroutine) or onLoop (loop; nc is closed already then).
func (s *Server) open(_ int64, nc net.Conn) *conn {
	c := s.newEngine()
	c.nc = nc
	s.stats.totalConns.Add(1)
	s.cfg.Observer.Connection(protocolName, 1)
	return c
}

// serveConn serves one connection on its goroutine; netserve closes it after.
func (s *Server) serveConn(c *conn) {
	defer s.cfg.Observer.Connection(protocolName, -1)
	c.attach(c.nc)
	c.serve()
}

// Close stops accepting, closes every connection, cancels in-flight commands and
// waits for the connection goroutines and handed-off commands, then stops the
// event loops. It is idempotent.
func (s *Server) Close() error {
	err := s.ns.Close()
	if s.ownLoops && s.loop != nil {
		s.loop.Close()
	}
	return err
}

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

type countingWriter struct {
	w io.Writer
	n *atomic.Uint64
}

func (w countingWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.n.Add(uint64(n))
	return n, err
}

// replyWriter is where a connection's replies go: a bufio.Writer over the
// socket (the goroutine driver) or a loop handoff's buffer (loopOut). Both flush
// the session before any reply leaves (syncingWriter, loopOut.take).
type replyWriter interface {
	io.Writer
	io.StringWriter
	io.ByteWriter
	// Flush hands what is buffered to the client and returns once the kernel
	// took it, or the connection failed.
	Flush() error
}

// conn is one client connection's engine: its parser state, session and
// replies. Its commands run on one goroutine at a time: the connection's own
// (goroutine driver), or, on the loop driver, the loop (parsing) and a handoff
// goroutine (running) in turn (loop.go).
type conn struct {
	s   *Server
	ctx context.Context
	nc  net.Conn  // as accepted (closed already on the loop driver: for its addresses)
	src io.Reader // the client's bytes (counted; goroutine driver)
	w   replyWriter

	in   reader   // the command lines and data blocks in what src returned
	more bool     // a command follows the running one in its read (or batch)
	toks [][]byte // the current line's tokens
	out  []byte   // scratch for building reply lines

	// Per command.
	noreply    bool // suppress the reply (classic noreply, meta q on nominal replies)
	hideErrors bool // classic noreply: error lines are suppressed too
	failed     bool // the reply was an error line
	flush      bool // flush the reply now (mn)

	// Try mode (the loop driver's inline commands, loop.go): ops run with
	// Session.Try in ws, replies go to tryBuf; blocked is set to the reason
	// the first op that would block gave (or to reasonNotLoop, reasonOutput),
	// after which every op fails and the handler returns having changed
	// nothing visible: the command is handed off and runs again from the
	// start. inlineOut is the connection's output pending before the command.
	try       bool
	ws        *proxy.WriteSet
	blocked   string
	inlineOut int
	tryBuf    bufOut

	sess   *proxy.Session // every single-key op runs through it; flushed before replies leave
	authed bool           // authenticated, or no password is configured
}

// newConn returns a goroutine-driver connection over rw.
func (s *Server) newConn(rw io.ReadWriter) *conn {
	c := s.newEngine()
	c.attach(rw)
	return c
}

// newEngine returns a connection's engine without its I/O side.
func (s *Server) newEngine() *conn {
	c := &conn{
		s:      s,
		ctx:    s.ctx,
		toks:   make([][]byte, 0, maxTokens),
		authed: s.cfg.Password == "",
	}
	c.in.blockFor = c.blockFor
	// A command with nothing after it in the read is the last before the replies
	// are flushed (and the session with them).
	c.sess = s.px.NewSession(func() bool { return c.more })
	return c
}

// attach gives the goroutine driver's I/O to c: it reads and writes rw, in
// which netserve arms WriteTimeout.
func (c *conn) attach(rw io.ReadWriter) {
	c.src = countingReader{rw, &c.s.stats.bytesRead}
	var w io.Writer = countingWriter{rw, &c.s.stats.bytesWritten}
	c.w = bufio.NewWriterSize(syncingWriter{c, w}, writeBufSize)
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
// protocol beyond repair. Each read's commands run in order, and their replies are
// flushed once the read is consumed, before the next read waits for the client
// (one write when they fit in the write buffer), and at once after mn.
func (c *conn) serve() {
	buf := make([]byte, readBufSize)
	for {
		n, err := c.src.Read(buf)
		ok := c.consume(buf[:n])
		if poison {
			scribble(buf[:n]) // the reader kept copies of what it still needs
		}
		if !ok {
			c.w.Flush()
			return
		}
		if c.w.Flush() != nil || err != nil {
			return
		}
	}
}

// consume runs the whole commands in in, the bytes of one read, and keeps an
// incomplete one's bytes for the next read. It returns false when the connection
// must end (after its pending replies are flushed).
func (c *conn) consume(in []byte) bool {
	defer func() { c.more = false }()
	for {
		cmd, used, ok, err := c.in.next(in)
		in = in[used:]
		c.more = len(in) > 0
		if err != nil {
			c.tooLong()
			return false
		}
		if !ok {
			return true
		}
		if !c.run(cmd) {
			return false
		}
	}
}

// run runs one whole command, on either driver. It returns false when the
// connection must end (after its pending replies are flushed).
func (c *conn) run(cmd command) bool {
	if !c.authed {
		return c.authenticate(cmd)
	}
	if c.dispatch(cmd) {
		return false
	}
	return !c.flush || c.w.Flush() == nil
}

// tooLong answers a line the reader refused; the connection then ends.
func (c *conn) tooLong() { c.w.WriteString(lineLineTooLong + "\r\n") }

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

// do runs one proxy operation in the connection's session, with its context;
// in try mode with Session.Try, in the loop's write set: after a would-block
// (c.blocked set) every later op fails at once.
func (c *conn) do(op proxy.Op) (proxy.Result, error) {
	if !c.try {
		return c.sess.Do(c.ctx, op)
	}
	if c.blocked != "" {
		return proxy.Result{}, proxy.ErrWouldBlock
	}
	var res proxy.Result
	var err error
	if h := c.s.testHookTry; h != nil {
		err = h(op)
	}
	if err == nil {
		res, err = c.sess.Try(c.ctx, op, c.ws)
	}
	if r := proxy.BlockReason(err); r != "" {
		c.blocked = r
	}
	return res, err
}

// own returns a key token for an op: a copy, as the proxy may keep it after
// the op (the coordinator's background work) while the token aliases the read
// buffer; in try mode the token itself (the write set copies what it stages,
// and a single node runs nothing in the background).
func (c *conn) own(k []byte) []byte {
	if c.try {
		return k
	}
	return bytes.Clone(k)
}

// now is the server clock.
func (c *conn) now() time.Time { return c.s.cfg.Now() }

// validKey reports whether a key token is within the key limit.
func (c *conn) validKey(k []byte) bool { return len(k) <= c.s.cfg.MaxKeyBytes }

// dispatch executes one command. quit asks to close the connection after the
// pending replies.
func (c *conn) dispatch(cmd command) (quit bool) {
	start := c.now()
	c.noreply, c.hideErrors, c.failed, c.flush = false, false, false, false
	var rest []byte
	c.toks, rest = tokenize(c.toks[:0], cmd.line)
	toks := c.toks
	if c.try && !inlineCommand(toks, rest) {
		c.blocked = reasonNotLoop
		return false
	}
	name := "unknown"
	defer func() {
		if c.blocked != "" {
			return // it runs again on a handoff, which counts it
		}
		c.s.cfg.Observer.Command(protocolName, name, c.now().Sub(start), c.failed)
	}()
	if len(toks) == 0 || len(toks[0]) < 2 {
		c.fail(lineError)
		return false
	}
	n := len(toks)
	verb := toks[0]
	if len(verb) == 2 && verb[0] == 'm' {
		switch verb[1] {
		case 'g':
			name = "mg"
			c.metaGet(toks)
		case 's':
			name = "ms"
			c.metaSet(toks, cmd)
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
		if name != "unknown" && name != "mn" && c.blocked == "" {
			c.s.stats.metaCmds.Add(1) // once it ran (a would-block runs again)
		}
		return false
	}
	switch string(verb) {
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
		name = string(verb)
		if n != 5 && n != 6 {
			c.fail(lineError)
			return false
		}
		c.cmdUpdate(toks, cmd, false)
	case "cas":
		name = "cas"
		if n != 6 && n != 7 {
			c.fail(lineError)
			return false
		}
		c.cmdUpdate(toks, cmd, true)
	case "incr", "decr":
		name = string(verb)
		if n != 3 && n != 4 {
			c.fail(lineError)
			return false
		}
		c.cmdArithmetic(toks, name == "incr")
	case "delete":
		name = "delete"
		if n < 2 || n > 4 {
			c.fail(lineError)
			return false
		}
		c.cmdDelete(toks)
	case "touch":
		name = "touch"
		if n != 3 && n != 4 {
			c.fail(lineError)
			return false
		}
		c.cmdTouch(toks)
	case "flush_all":
		name = "flush_all"
		if n > 3 {
			c.fail(lineError)
			return false
		}
		c.cmdFlushAll(toks)
	case "version":
		name = "version"
		c.reply("VERSION " + c.s.cfg.Version)
	case "verbosity":
		name = "verbosity"
		if n != 2 && n != 3 {
			c.fail(lineError)
			return false
		}
		c.cmdVerbosity(toks)
	case "stats":
		name = "stats"
		c.cmdStats(toks)
	case "quit":
		name = "quit"
		return true
	case "shutdown":
		name = "shutdown"
		c.fail("ERROR: shutdown not enabled")
	default:
		if webRequest(toks) {
			name = "http"
			return true
		}
		c.fail(lineError)
	}
	return false
}

// blockFor is the reader's blockFor: whether a data block follows a command line,
// decided by the parse the command itself makes (parseUpdate, parseMetaSet,
// authBlock). A storage line memcached finds malformed has no block: what follows
// is read as commands. A block over the value limit, or after an ms line with bad
// flags, is swallowed.
func (c *conn) blockFor(line []byte) blockSpec {
	c.toks, _ = tokenize(c.toks[:0], line)
	toks := c.toks
	if !c.authed {
		return authBlock(toks)
	}
	if len(toks) == 0 {
		return blockSpec{}
	}
	n := len(toks)
	switch string(toks[0]) {
	case "set", "add", "replace", "append", "prepend":
		if n == 5 || n == 6 {
			return c.updateBlock(toks, false)
		}
	case "cas":
		if n == 6 || n == 7 {
			return c.updateBlock(toks, true)
		}
	case "ms":
		if ms := c.parseMetaSet(toks); ms.block {
			return blockSpec{size: ms.vlen + 2, swallow: ms.errLine != "" || ms.vlen > c.s.cfg.MaxValueBytes}
		}
	}
	return blockSpec{}
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
