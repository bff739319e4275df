package resp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/redcon"

	"github.com/dynakv/dynakv/internal/evloop"
	"github.com/dynakv/dynakv/internal/loopcommit"
	"github.com/dynakv/dynakv/internal/netserve"
	"github.com/dynakv/dynakv/proxy"
)

// Config configures a Server. The zero value serves without a password.
type Config struct {
	// RequirePass, when not empty, is the default user's password: clients must
	// AUTH (or HELLO ... AUTH) before any command but AUTH, HELLO and QUIT. Default
	// "": no authentication.
	RequirePass string
	// MaxClients bounds connected clients; one more is answered "-ERR max number of
	// clients reached" and closed. Default 10000.
	MaxClients int
	// OutputBufferLimit bounds the replies one client has pending in the node, in
	// bytes: once a pipelined batch's replies pass it they are written before the
	// next command of the batch runs, and once one command's reply passes it the
	// part built so far is written before the command goes on, so a client that
	// sends faster than it reads is held back by TCP instead of growing the node's
	// memory. A connection holds at most this plus one element of a reply (one
	// value of an MGET). Default 4 MiB.
	OutputBufferLimit int
	// WriteTimeout bounds each write of replies to a client: a client that does not
	// take them for this long (it stopped reading) is disconnected. Default 30s;
	// negative: no limit.
	WriteTimeout time.Duration
	// ProtoMaxBulkLen bounds one argument of a request, in bytes (Redis's
	// proto-max-bulk-len); a longer one is a protocol error. Default 512 MiB. Stored
	// values are bounded separately, by proxy's MaxValueBytes.
	ProtoMaxBulkLen int64
	// Version is dynakv's version, reported as INFO's dynakv_version. HELLO and
	// INFO's redis_version report Redis 7.2.0, the protocol dynakv speaks.
	Version string
	// NodeName is reported in INFO's server section (dynakv_node).
	NodeName string
	// Info, when set, adds fields to INFO. It is called once for each word of an
	// INFO command, lower-cased ("default" when there is none; "all", "everything"
	// or a section name), and every field it returns is shown: a field of one of
	// INFO's own sections (server, clients, memory, persistence, stats,
	// replication, cluster, keyspace) at the end of that section, or, when it is
	// named like one of the section's own fields, in that field's place with
	// its value (so no key appears twice in a section), a field of any
	// other section (say "dynamo") in that section, shown after the built-in ones
	// under a capitalized header ("# Dynamo"). It should return only what the word
	// asks for. It may be nil.
	Info func(section string) []InfoField
	// OOM, when set, reports whether the node is over its memory limit and cannot
	// free memory: commands flagged denyoom (SET, MSET, INCR, APPEND, COPY, ...)
	// are then refused with Redis's -OOM error before they run, as Redis's
	// processCommand does, so a multi-key command is refused whole. Proxy's
	// Memory gate checks each op again where it executes. Default nil: never.
	OOM func() bool
	// Tunables, when set, backs the CONFIG parameters the node owns (maxmemory,
	// maxmemory-policy): CONFIG GET shows its values and CONFIG SET changes them
	// at once. Default nil: they show Redis's defaults and are stored without
	// effect.
	Tunables Tunables
	// Cluster serves DPREFLIST and DCLUSTER. It may be nil.
	Cluster Cluster
	// Observer receives an event for every command (lower-case name, "unknown"
	// for an unknown one) and every connection opened (+1) and closed (-1).
	// Default proxy.NopObserver.
	Observer proxy.Observer
	// Logger receives protocol errors (debug), refused and killed connections and
	// unexpected errors. Default: discard.
	Logger *slog.Logger
	// Now is the clock for expiry arithmetic (EX, EXPIRE, TTL), TIME and INFO's
	// times. Default time.Now. Latencies and idle times use the monotonic clock.
	Now func() time.Time
	// PanicPolicy says what a panic while serving a client does: netserve.CloseConn
	// (the default) answers "-ERR internal error" to a command that panicked and
	// ends that connection only; netserve.Crash lets the panic end the process
	// (tests).
	PanicPolicy netserve.PanicPolicy
	// IOModel picks how connections are driven: IOLoop runs plain TCP
	// connections on event loops (internal/evloop; Linux only), every command
	// handed off to a goroutine of a bounded pool; IOGoroutine runs each
	// connection on its own goroutine with blocking reads. Default IOAuto: loops
	// where the system has them. TLS connections always run on goroutines.
	IOModel string
	// IOLoops is the number of event loops with IOModel loop. Default
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
	// NoBatch runs every command of a pipeline alone even in a cluster (A/B
	// tests and benchmarks). Default false: with Cluster set, a pipeline's runs
	// of plain SET, GET and single-key DEL, and MGET's keys, are run with one
	// proxy.DoBatch each, every command keeping its own reply (batch.go).
	NoBatch bool
}

// IO models (Config.IOModel): netserve's.
const (
	IOAuto      = netserve.IOAuto
	IOLoop      = netserve.IOLoop
	IOGoroutine = netserve.IOGoroutine
)

// Tunables are CONFIG parameters whose values live outside the server.
type Tunables interface {
	// Get returns the value of the named parameter (lower-case, as CONFIG GET
	// shows it), and false when the parameter is not one of the tunables.
	Get(name string) (string, bool)
	// Set changes the named parameter to v, already checked against the
	// parameter's kind (a memory value normalized to bytes, an enum to its
	// name); an error's text is the reason CONFIG SET reports.
	Set(name, v string) error
}

// InfoField is one "key:value" line of INFO, in the lower-case section it
// belongs to (see Config.Info).
type InfoField struct{ Section, Key, Value string }

// Defaults.
const (
	DefaultMaxClients        = 10000
	DefaultProtoMaxBulkLen   = 512 << 20
	DefaultOutputBufferLimit = 4 << 20
	DefaultWriteTimeout      = 30 * time.Second
)

// EnsureDefaults returns a copy of c with defaults filled in.
func (c Config) EnsureDefaults() Config {
	if c.MaxClients == 0 {
		c.MaxClients = DefaultMaxClients
	}
	if c.ProtoMaxBulkLen == 0 {
		c.ProtoMaxBulkLen = DefaultProtoMaxBulkLen
	}
	if c.OutputBufferLimit == 0 {
		c.OutputBufferLimit = DefaultOutputBufferLimit
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
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
	if c.IOModel == "" {
		c.IOModel = IOAuto
	}
	if c.MaxHandoff == 0 {
		c.MaxHandoff = netserve.DefaultMaxHandoff
	}
	return c
}

// loops reports whether the configuration runs connections on event loops.
func (c Config) loops() bool {
	return netserve.UseLoops(c.IOModel)
}

// Validate reports a configuration error.
func (c Config) Validate() error {
	if c.MaxClients < 0 {
		return errors.New("resp: MaxClients must not be negative")
	}
	if c.ProtoMaxBulkLen < 0 {
		return errors.New("resp: ProtoMaxBulkLen must not be negative")
	}
	if c.OutputBufferLimit < 0 {
		return errors.New("resp: OutputBufferLimit must not be negative")
	}
	if strings.ContainsAny(c.NodeName, "\r\n") || strings.ContainsAny(c.Version, "\r\n") {
		return errors.New("resp: NodeName and Version must be single lines")
	}
	if err := netserve.CheckIOModel(c.IOModel); err != nil {
		return fmt.Errorf("resp: %w", err)
	}
	if c.IOLoops < 0 || c.MaxHandoff < 0 {
		return errors.New("resp: IOLoops and MaxHandoff must not be negative")
	}
	return nil
}

// Server serves the Redis protocol over a proxy. Its methods are safe for
// concurrent use.
type Server struct {
	cfg  Config
	px   *proxy.Proxy
	cmds *table
	ns   *netserve.Server[*client] // accepts, registers (CLIENT LIST), closes
	ctx  context.Context           // ns's: canceled by Close; every proxy call runs under it
	loop *evloop.Group             // the loop driver's loops; nil: goroutines only
	// ownLoops: New started loop (no Config.Loops), so Close stops it.
	ownLoops bool

	started time.Time // cfg.Now at New
	runID   string

	stats  stats
	config configStore

	// Loop driver's fast path (loop.go): the loops' commit point (with the
	// loops' other fronts); set by tests only: testHookTry sees every op a
	// handler runs in try mode.
	commits     *loopcommit.Group[*proxy.WriteSet]
	testHookTry func(c *client, op proxy.Op) error // non-nil: the op would block so
}

// stats are INFO's counters.
type stats struct {
	conns, rejected        atomic.Int64
	commands, errorReplies atomic.Int64
	netIn, netOut          atomic.Int64
	maxOutput              atomic.Int64 // most reply bytes held for one client (noteOutput)
	hitsBase, missesBase   atomic.Int64 // proxy counters at the last CONFIG RESETSTAT
	// The loop driver's fast path: commands run inline, handoffs by reason
	// (newHandoffs). The commits are the loops' (commits.Stats).
	inline   atomic.Int64
	handoffs *loopcommit.Handoffs
}

// New returns a Server executing commands on px. cfg should pass Validate; its
// zero fields get their defaults. With the loop driver it starts the event
// loops (falling back to goroutines, logged, if they cannot start); Close stops
// them. Call Serve to accept clients.
func New(cfg Config, px *proxy.Proxy) *Server {
	cfg = cfg.EnsureDefaults()
	s := &Server{cfg: cfg, px: px}
	s.stats.handoffs = newHandoffs()
	if cfg.loops() {
		if s.loop = cfg.Loops; s.loop == nil {
			s.loop, s.ownLoops = s.newLoops(), true
		}
	}
	var onLoop func(*client) evloop.Handler
	if s.loop != nil {
		onLoop = s.onLoop
		if s.commits = cfg.Commits; s.commits == nil || cfg.Loops == nil {
			s.commits = s.newCommits()
		}
	}
	s.ns = netserve.New(netserve.Config[*client]{
		MaxClients:   cfg.MaxClients,
		RefuseLine:   errMaxClients,
		WriteTimeout: cfg.WriteTimeout,
		Open:         s.open,
		Serve:        s.serveConn,
		Loops:        s.loop,
		OnLoop:       onLoop,
		MaxHandoff:   cfg.MaxHandoff,
		Panic:        cfg.PanicPolicy,
		Events: netserve.Events{
			AcceptFailed: func(err error, retryIn time.Duration) {
				cfg.Logger.Warn("accept failed", "err", err, "retry_in", retryIn)
			},
			Refused: func(nc net.Conn) {
				s.stats.rejected.Add(1)
				cfg.Logger.Warn("refusing client: max number of clients reached", "addr", nc.RemoteAddr().String())
			},
			Panic: func(nc net.Conn, v any, stack []byte) {
				addr := ""
				if nc != nil {
					addr = nc.RemoteAddr().String()
				}
				cfg.Logger.Error("panic serving a client connection", "addr", addr, "panic", v, "stack", string(stack))
			},
			WriteTimedOut: func(nc net.Conn) { s.logStaleWriter(nc.RemoteAddr().String()) },
		},
	})
	s.ctx = s.ns.Context()
	s.cmds = newTable()
	s.started = cfg.Now()
	var id [20]byte
	_, _ = rand.Read(id[:])
	s.runID = hex.EncodeToString(id[:])
	s.config.init()
	return s
}

// Serve accepts connections on ln until Close, then returns nil. It returns an
// error if called twice, or if ln is closed by someone else.
func (s *Server) Serve(ln net.Listener) error { return s.ns.Serve(ln) }

// Close stops accepting, closes every client connection and waits for their
// goroutines and handed-off commands, then stops the event loops. It is
// idempotent; concurrent calls all wait.
func (s *Server) Close() error {
	err := s.ns.Close()
	if s.ownLoops && s.loop != nil {
		s.loop.Close()
	}
	return err
}

// Clients returns the number of connected clients.
func (s *Server) Clients() int { return s.ns.Len() }

// Addr returns the address Serve listens on, or nil before Serve.
func (s *Server) Addr() net.Addr { return s.ns.Addr() }

// open builds an accepted connection's client (those beyond MaxClients were
// refused by netserve). It runs on the accept goroutine, before the
// connection's goroutine starts and before CLIENT LIST can see it.
func (s *Server) open(id int64, nc net.Conn) *client {
	c := &client{
		id:      id,
		nc:      nc,
		authed:  s.cfg.RequirePass == "",
		created: time.Now(),
		addr:    nc.RemoteAddr().String(),
		laddr:   nc.LocalAddr().String(),
	}
	// A command with nothing pipelined after it is the last before the replies
	// are written out (and the session flushed through wire.Write).
	c.sess = s.px.NewSession(func() bool { return c.ran < c.cmds.len() })
	c.setProto(2)
	c.lastAt.Store(c.created.UnixNano())
	s.stats.conns.Add(1)
	s.cfg.Observer.Connection("resp", 1)
	return c
}

// serveConn serves one connection on its own goroutine until it ends: it takes
// the pipelined batch of complete commands the wire parsed (spans of its input
// buffer, parsed once by the framer), runs them and writes their replies out once
// after the batch.
func (s *Server) serveConn(c *client) {
	w := newWire(c.nc, s)
	w.cl = c
	c.rd, c.out = w, &sockOut{wr: redcon.NewWriter(w), nc: w}
	err := s.serveBatches(c)
	s.cfg.Observer.Connection("resp", -1)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		s.cfg.Logger.Debug("client connection ended", "addr", c.addr, "err", err)
	}
}

func (s *Server) serveBatches(c *client) error {
	for {
		if err := c.rd.next(&c.cmds); err != nil {
			return err
		}
		if s.runBatch(c); c.closed {
			return nil
		}
		if err := c.out.Flush(); err != nil {
			return err
		}
	}
}

// runBatch runs the commands of c.cmds in order, on the connection's goroutine
// or on the goroutine a loop handed them to, until one closes the connection.
//
// In a cluster, a run of batchable commands runs its ops ahead with one
// DoBatch when the loop reaches the run's first command, and each command then
// takes its op's outcome from the session (batch.go).
func (s *Server) runBatch(c *client) {
	var ahead runAhead
	for c.ran = 0; c.ran < c.cmds.len(); {
		i := c.ran
		if i >= ahead.to && s.batching() {
			s.runAheadFrom(c, i, &ahead)
		}
		args := c.cmds.get(i)
		c.ran++
		if i < ahead.to {
			c.sess.Preset(ahead.ops[i-ahead.from], ahead.out[i-ahead.from])
			c.ahead = ahead.took
		}
		s.serveCommand(c, args)
		c.ahead = 0
		if c.sess.TakePreset() && !c.closing {
			s.cfg.Logger.Error("a batched command did not take its outcome", "addr", c.addr, "cmd", string(args[0]))
		}
		if c.closed {
			return
		}
	}
}

// outlet is where a connection's replies go: the goroutine driver's redcon
// Writer over the socket (sockOut), or a loop handoff's buffer (loopOut). Both
// flush the connection's session before any reply leaves.
type outlet interface {
	// WriteRaw buffers reply bytes.
	WriteRaw(b []byte)
	// Flush flushes the session, then hands everything buffered to the client
	// and returns once the kernel took it (or the connection failed).
	Flush() error
	// Discard drops what is buffered (dropReplies).
	Discard()
	// Close ends the connection (after a Flush: the replies so far are out).
	Close()
}

// sockOut is the goroutine driver's outlet.
type sockOut struct {
	wr *redcon.Writer // over the wire, whose Write flushes the session first
	nc net.Conn
}

func (o *sockOut) WriteRaw(b []byte) { o.wr.WriteRaw(b) }
func (o *sockOut) Flush() error      { return o.wr.Flush() }
func (o *sockOut) Discard()          { o.wr.SetBuffer(nil) }
func (o *sockOut) Close()            { _ = o.nc.Close() }

// client is one connection's state. Fields without a lock are used only by the
// connection's goroutine; the others are read by CLIENT LIST from other
// connections.
type client struct {
	sess    *proxy.Session // every single-key op runs through it; flushed by wire.Write
	pending int            // reply bytes buffered in wr, not yet written
	id      int64
	// The socket side (nil when a handler runs without a socket: tests): the
	// accepted connection (closed already on the loop driver), the goroutine
	// driver's wire that reads and parses its requests, where the replies go,
	// and the pipelined batch: cmds.get(ran) is the next to run. On the loop
	// driver, cmds is a copy of the parsed commands and the handoff goroutine
	// uses the client while it runs them (loop.go).
	nc          net.Conn
	rd          *wire
	out         outlet
	cmds        commands
	ran         int
	closed      bool // nc was closed after the replies so far were written
	w           Reply
	authed      bool
	closing     bool // QUIT or a security warning: close after this reply
	dropReplies bool // close without sending the batch's pending replies
	inMulti     bool // after MULTI, until EXEC or DISCARD: commands are refused (multi.go)
	// Try mode (the loop driver's inline commands, loop.go): ops run with
	// Session.Try in ws; blocked is set to the reason the first one that would
	// block gave (or to reasonNotLoop), after which the handler's ops all fail
	// and its reply is dropped: the command is handed off. inlineOut is the
	// connection's output pending before the command (spill).
	try       bool
	ws        *proxy.WriteSet
	blocked   string
	inlineOut int
	created   time.Time
	addr      string
	laddr     string

	// The time the running command's op took, run ahead in a batch
	// (runBatch): part of the command's latency.
	ahead time.Duration

	proto   atomic.Int32
	lastCmd atomic.Pointer[command]
	lastAt  atomic.Int64 // unix ns of the last command

	mu                    sync.Mutex
	name, libName, libVer string
}

func (c *client) setProto(v int) {
	c.w.proto = v
	c.proto.Store(int32(v))
}

// serveCommand runs one command; serveBatches calls it for every command of a
// pipelined batch and flushes the replies once after the batch.
func (s *Server) serveCommand(c *client, args [][]byte) {
	if c.closing || len(args) == 0 {
		return
	}
	start := time.Now()
	name := s.safeExec(c, args)
	failed := c.w.failed
	if c.w.torn {
		// Part of the reply left already, and the rest became an error: the
		// client would read half an array followed by an error line.
		s.cfg.Logger.Warn("closing client: a reply sent in part failed", "addr", c.addr, "cmd", name)
		c.w.b, c.closing = c.w.b[:0], true
	}
	if len(c.w.b) > 0 {
		s.noteOutput(c.pending + len(c.w.b))
		c.out.WriteRaw(c.w.b)
		c.pending += len(c.w.b)
	}
	c.w.reset()
	if c.pending > s.cfg.OutputBufferLimit && !c.closing {
		// The batch's replies are past the bound: write them now. A client
		// that does not read them is held here by TCP, then dropped after
		// WriteTimeout.
		if c.out.Flush() != nil {
			c.closing = true
		}
	}
	s.stats.commands.Add(1)
	if failed {
		s.stats.errorReplies.Add(1)
	}
	c.lastAt.Store(start.UnixNano())
	s.cfg.Observer.Command("resp", name, time.Since(start)+c.ahead, failed)
	if c.closing {
		if c.dropReplies {
			// Redis frees the client at once: replies not yet written are lost.
			c.out.Discard()
		}
		// The replies so far, then the end.
		_ = c.out.Flush()
		c.out.Close()
		c.closed = true
	}
}

// spill bounds a reply under construction: when the connection's pending replies
// and the part of the current reply built so far pass OutputBufferLimit, it hands
// that part to the connection and writes everything out before the handler goes
// on, as serveCommand does between the commands of a batch. So one huge reply (MGET
// of many large values, KEYS of a large keyspace) costs the node at most the limit
// plus one element, not the whole reply, and a client that does not read is held
// back by TCP, then dropped after WriteTimeout (the handler then stops: c.closing).
// Handlers whose replies grow without bound call it between elements; the part
// sent can no longer be replaced by an error (see Reply.truncate).
func (s *Server) spill(c *client) {
	if c.try {
		if c.inlineOut+len(c.w.b) > s.cfg.OutputBufferLimit {
			c.blocked = reasonOutput // a reply that big is built on a handoff
		}
		return
	}
	if c.out == nil || c.closing || c.pending+len(c.w.b) <= s.cfg.OutputBufferLimit {
		return
	}
	s.noteOutput(c.pending + len(c.w.b))
	c.out.WriteRaw(c.w.b)
	c.pending += len(c.w.b)
	c.w.sent += len(c.w.b)
	c.w.b = c.w.b[:0]
	if c.out.Flush() != nil {
		c.closing = true
	}
}

// noteOutput records n bytes of replies held for one client, for INFO's
// client_recent_max_output_buffer (the largest since the last INFO clients).
func (s *Server) noteOutput(n int) {
	for {
		cur := s.stats.maxOutput.Load()
		if int64(n) <= cur || s.stats.maxOutput.CompareAndSwap(cur, int64(n)) {
			return
		}
	}
}

// safeExec runs exec, turning a panic (a bug below) into "-ERR internal error"
// and the end of this connection, instead of the end of the node.
func (s *Server) safeExec(c *client, args [][]byte) (name string) {
	if s.cfg.PanicPolicy == netserve.Crash {
		return s.exec(c, args)
	}
	defer func() {
		if r := recover(); r != nil {
			stack := debug.Stack()
			s.cfg.Logger.Error("panic serving a command", "addr", c.addr, "panic", r, "stack", string(stack))
			c.w.reset()
			c.w.errorLine(errInternal)
			c.closing = true
			name = "unknown"
		}
	}()
	return s.exec(c, args)
}

// exec looks a command up and runs it, checking existence, arity and
// authentication in Redis's order. It writes the reply to c.w and returns the
// command's name for the observer.
func (s *Server) exec(c *client, args [][]byte) string {
	if eqFold(args[0], "host:") || eqFold(args[0], "post") {
		// Cross-protocol scripting (an HTTP request sent to Redis): close
		// without a reply, as Redis does.
		s.cfg.Logger.Warn("Possible SECURITY ATTACK detected. It looks like somebody is sending POST or Host: commands. Connection aborted.", "addr", c.addr)
		c.closing, c.dropReplies = true, true
		return "unknown"
	}
	if c.inMulti {
		if c.try {
			return c.notInline()
		}
		if name, ok := s.transaction(c, args); ok {
			return name
		}
	}
	cmd := s.cmds.lookup(args[0])
	if cmd == nil {
		if c.try {
			return c.notInline()
		}
		if name, ok := s.transaction(c, args); ok {
			return name
		}
		unknownCommand(&c.w, args)
		return "unknown"
	}
	if cmd.subs != nil && len(args) >= 2 {
		sub := cmd.sub(args[1])
		if sub == nil && c.try {
			return c.notInline()
		}
		if sub == nil {
			a := cstr(args[1])
			if len(a) > 128 {
				a = a[:128]
			}
			c.w.Error("ERR unknown subcommand '" + string(a) + "'. Try " + strings.ToUpper(cmd.name) + " HELP.")
			return cmd.name
		}
		cmd = sub
	}
	if c.try && !cmd.inline(len(args)) {
		return c.notInline()
	}
	if !cmd.arityOK(len(args)) {
		cmd.stats.rejected.Add(1)
		c.w.errorLine(cmd.arityErr)
		return cmd.name
	}
	if !c.authed && !cmd.noAuth {
		cmd.stats.rejected.Add(1)
		c.w.errorLine(errNoAuth)
		return cmd.name
	}
	if cmd.denyOOM && s.cfg.OOM != nil && !c.sess.HasPreset() && s.cfg.OOM() {
		// (A command whose op ran ahead in a batch was checked then.)
		cmd.stats.rejected.Add(1)
		c.w.errorLine(errOOM)
		return cmd.name
	}
	c.lastCmd.Store(cmd)
	start := time.Now()
	cmd.run(s, c, args)
	if c.blocked != "" {
		return cmd.name // would block: it runs again on a handoff, which counts it
	}
	cmd.stats.ran(time.Since(start)+c.ahead, c.w.failed)
	return cmd.name
}

// unknownCommand writes Redis's reply to an unknown command: the name and the
// first 128 bytes of the arguments, each quoted and followed by a space, cut at a
// NUL as C's %s does.
func unknownCommand(w *Reply, args [][]byte) {
	name := cstr(args[0])
	if len(name) > 128 {
		name = name[:128]
	}
	msg := make([]byte, 0, 64+len(name))
	msg = append(msg, "ERR unknown command '"...)
	msg = append(msg, name...)
	msg = append(msg, "', with args beginning with: "...)
	n := 0
	for _, a := range args[1:] {
		if n >= 128 {
			break
		}
		a = cstr(a)
		if len(a) > 128-n {
			a = a[:128-n]
		}
		msg = append(msg, '\'')
		msg = append(msg, a...)
		msg = append(msg, '\'', ' ')
		n += len(a) + 3
	}
	w.Error(bstr(msg))
}

// handler runs a command whose existence, arity and authentication were checked.
type handler func(s *Server, c *client, args [][]byte)

// command is an entry of the command table, which also answers COMMAND.
type command struct {
	name    string // lower-case full name: "get", "config|get"
	arity   int    // Redis convention: n exactly, -n at least n (the name included)
	flags   []string
	acl     []string
	first   int // key positions, for COMMAND INFO and GETKEYS
	last    int
	step    int
	noAuth  bool
	denyOOM bool // flags hold "denyoom": refused while the node is over maxmemory
	// loop says where the loop driver may run the command: inline on the event
	// loop, in try mode, or only handed off (loopNever). Only handlers whose
	// proxy calls are reads, or one write before which nothing ran, may run
	// inline, so that a would-block can run the whole handler again from the
	// start on a goroutine with nothing visible done (TestLoopHandlers).
	loop     loopMode
	run      handler
	summary  string
	group    string
	arityErr []byte

	subs   []*command // container commands (CONFIG, CLIENT, COMMAND)
	subIdx map[string]*command

	stats cmdStats // INFO commandstats; the table is per Server
}

// loopMode is a command's place on the loop driver (command.loop).
type loopMode uint8

const (
	loopNever  loopMode = iota // always handed off
	loopAlways                 // inline
	loopOneKey                 // inline with one key (DEL k, UNLINK k)
)

// inline reports whether the command may run inline with n arguments.
func (c *command) inline(n int) bool {
	return c.loop == loopAlways || c.loop == loopOneKey && n == 2
}

func (c *command) arityOK(n int) bool {
	if c.arity >= 0 {
		return n == c.arity
	}
	return n >= -c.arity
}

func (c *command) sub(name []byte) *command {
	var buf [32]byte
	l, ok := lowerASCII(buf[:], name)
	if !ok {
		return nil
	}
	return c.subIdx[string(l)]
}

// table is the command table: name -> command.
type table struct {
	byName map[string]*command
	list   []*command // in definition order
}

func (t *table) lookup(name []byte) *command {
	var buf [32]byte
	l, ok := lowerASCII(buf[:], name)
	if !ok {
		return nil
	}
	return t.byName[string(l)]
}

// find resolves "name" or "container|sub" (COMMAND INFO).
func (t *table) find(name []byte) *command {
	if i := strings.IndexByte(bstr(name), '|'); i >= 0 {
		c := t.lookup(name[:i])
		if c == nil || c.subs == nil {
			return nil
		}
		return c.sub(name[i+1:])
	}
	return t.lookup(name)
}

// Command flags and ACL categories, as COMMAND INFO shows them.
var (
	fRead      = []string{"readonly", "fast"}
	fReadSlow  = []string{"readonly"}
	fWrite     = []string{"write", "denyoom"}
	fWriteFast = []string{"write", "denyoom", "fast"}
	fDel       = []string{"write"}
	fDelFast   = []string{"write", "fast"}
	fConn      = []string{"loading", "stale", "fast"}
	fNoAuth    = []string{"noscript", "loading", "stale", "fast", "no_auth", "allow_busy"}
	fAdmin     = []string{"admin", "noscript", "loading", "stale"}
	fInfo      = []string{"loading", "stale"}

	aReadStr   = []string{"@read", "@string", "@fast"}
	aReadSlow  = []string{"@read", "@string", "@slow"}
	aWriteStr  = []string{"@write", "@string", "@slow"}
	aWriteFast = []string{"@write", "@string", "@fast"}
	aKeyRead   = []string{"@keyspace", "@read", "@fast"}
	aKeySlow   = []string{"@keyspace", "@read", "@slow"}
	aKeyWrite  = []string{"@keyspace", "@write", "@fast"}
	aKeyDel    = []string{"@keyspace", "@write", "@slow"}
	aDanger    = []string{"@keyspace", "@write", "@slow", "@dangerous"}
	aConn      = []string{"@fast", "@connection"}
	aSlowConn  = []string{"@slow", "@connection"}
	aAdmin     = []string{"@admin", "@slow", "@dangerous"}
)

// newTable builds the command table. Arity, flags and key positions are Redis
// 7.2's.
func newTable() *table {
	key := func(c *command) *command { c.first, c.last, c.step = 1, 1, 1; return c }
	keys := func(c *command, step int) *command { c.first, c.last, c.step = 1, -1, step; return c }
	pair := func(c *command) *command { c.first, c.last, c.step = 1, 2, 1; return c }
	cmd := func(name string, arity int, flags, acl []string, group, summary string, run handler) *command {
		return &command{name: name, arity: arity, flags: flags, acl: acl, group: group, summary: summary, run: run}
	}
	noauth := func(c *command) *command { c.noAuth = true; return c }
	lp := func(c *command) *command { c.loop = loopAlways; return c }
	lp1 := func(c *command) *command { c.loop = loopOneKey; return c }
	list := []*command{
		// Connection.
		lp(cmd("ping", -1, []string{"fast", "sentinel"}, aConn, "connection", "Returns the server's liveliness response.", (*Server).ping)),
		lp(cmd("echo", 2, []string{"fast"}, aConn, "connection", "Returns the given string.", (*Server).echo)),
		noauth(cmd("quit", -1, fNoAuth, aConn, "connection", "Closes the connection.", (*Server).quit)),
		noauth(cmd("hello", -1, fNoAuth, aConn, "connection", "Handshakes with the server.", (*Server).hello)),
		noauth(cmd("auth", -2, fNoAuth, aConn, "connection", "Authenticates the connection.", (*Server).auth)),
		lp(cmd("select", 2, fConn, aConn, "connection", "Changes the selected database.", (*Server).selectDB)),
		{name: "client", arity: -2, flags: []string{"sentinel"}, acl: aSlowConn, group: "connection", summary: "A container for client connection commands.", subs: []*command{
			lp(cmd("client|setname", 3, []string{"noscript", "loading", "stale"}, aSlowConn, "connection", "Sets the connection name.", (*Server).clientSetName)),
			lp(cmd("client|getname", 2, []string{"noscript", "loading", "stale"}, aSlowConn, "connection", "Returns the name of the connection.", (*Server).clientGetName)),
			lp(cmd("client|setinfo", 4, []string{"noscript", "loading", "stale"}, aSlowConn, "connection", "Sets information specific to the client or connection.", (*Server).clientSetInfo)),
			lp(cmd("client|id", 2, []string{"noscript", "loading", "stale"}, aSlowConn, "connection", "Returns the unique client ID of the connection.", (*Server).clientID)),
			cmd("client|list", -2, fAdmin, aAdmin, "connection", "Lists open connections.", (*Server).clientList),
			lp(cmd("client|info", 2, []string{"noscript", "loading", "stale"}, aSlowConn, "connection", "Returns information about the connection.", (*Server).clientInfo)),
			lp(cmd("client|help", 2, []string{"loading", "stale"}, aSlowConn, "connection", "Returns helpful text about the different subcommands.", (*Server).clientHelp)),
		}},
		// Strings.
		lp(key(cmd("get", 2, fRead, aReadStr, "string", "Returns the string value of a key.", (*Server).get))),
		lp(key(cmd("set", -3, fWrite, aWriteStr, "string", "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.", (*Server).set))),
		lp(key(cmd("setnx", 3, fWriteFast, aWriteFast, "string", "Set the string value of a key only when the key doesn't exist.", (*Server).setnx))),
		lp(key(cmd("setex", 4, fWrite, aWriteStr, "string", "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.", (*Server).setex))),
		lp(key(cmd("psetex", 4, fWrite, aWriteStr, "string", "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.", (*Server).psetex))),
		lp(key(cmd("getset", 3, fWriteFast, aWriteFast, "string", "Returns the previous string value of a key after setting it to a new value.", (*Server).getset))),
		lp(key(cmd("getdel", 2, fDelFast, aWriteFast, "string", "Returns the string value of a key after deleting the key.", (*Server).getdel))),
		lp(key(cmd("getex", -2, fDelFast, aWriteFast, "string", "Returns the string value of a key after setting its expiration time.", (*Server).getex))),
		lp(keys(cmd("mget", -2, fRead, aReadStr, "string", "Atomically returns the string values of one or more keys.", (*Server).mget), 1)),
		keys(cmd("mset", -3, fWrite, aWriteStr, "string", "Atomically creates or modifies the string values of one or more keys.", (*Server).mset), 2),
		keys(cmd("msetnx", -3, fWrite, aWriteStr, "string", "Atomically modifies the string values of one or more keys only when all keys don't exist.", (*Server).msetnx), 2),
		lp(key(cmd("incr", 2, fWriteFast, aWriteFast, "string", "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", (*Server).incr))),
		lp(key(cmd("decr", 2, fWriteFast, aWriteFast, "string", "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", (*Server).decr))),
		lp(key(cmd("incrby", 3, fWriteFast, aWriteFast, "string", "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.", (*Server).incrby))),
		lp(key(cmd("decrby", 3, fWriteFast, aWriteFast, "string", "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.", (*Server).decrby))),
		lp(key(cmd("incrbyfloat", 3, fWriteFast, aWriteFast, "string", "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.", (*Server).incrbyfloat))),
		lp(key(cmd("append", 3, fWriteFast, aWriteFast, "string", "Appends a string to the value of a key. Creates the key if it doesn't exist.", (*Server).appendCmd))),
		lp(key(cmd("strlen", 2, fRead, aReadStr, "string", "Returns the length of a string value.", (*Server).strlen))),
		lp(key(cmd("getrange", 4, fReadSlow, aReadSlow, "string", "Returns a substring of the string stored at a key.", (*Server).getrange))),
		lp(key(cmd("substr", 4, fReadSlow, aReadSlow, "string", "Returns a substring from a string value.", (*Server).getrange))),
		lp(key(cmd("setrange", 4, fWrite, aWriteStr, "string", "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.", (*Server).setrange))),
		lp(key(cmd("setbit", 4, fWrite, []string{"@write", "@bitmap", "@slow"}, "bitmap", "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist.", (*Server).setbit))),
		lp(key(cmd("getbit", 3, fRead, []string{"@read", "@bitmap", "@fast"}, "bitmap", "Returns a bit value by offset.", (*Server).getbit))),
		pair(cmd("lcs", -3, fReadSlow, aReadSlow, "string", "Finds the longest common substring.", (*Server).lcs)),
		// Keyspace.
		lp1(keys(cmd("del", -2, fDel, aKeyDel, "generic", "Deletes one or more keys.", (*Server).del), 1)),
		lp1(keys(cmd("unlink", -2, fDelFast, aKeyWrite, "generic", "Asynchronously deletes one or more keys.", (*Server).del), 1)),
		lp(keys(cmd("exists", -2, fRead, aKeyRead, "generic", "Determines whether one or more keys exist.", (*Server).exists), 1)),
		lp(keys(cmd("touch", -2, fRead, aKeyRead, "generic", "Returns the number of existing keys out of those specified after updating the time they were last accessed.", (*Server).exists), 1)),
		lp(key(cmd("expire", -3, fDelFast, aKeyWrite, "generic", "Sets the expiration time of a key in seconds.", (*Server).expire))),
		lp(key(cmd("pexpire", -3, fDelFast, aKeyWrite, "generic", "Sets the expiration time of a key in milliseconds.", (*Server).pexpire))),
		lp(key(cmd("expireat", -3, fDelFast, aKeyWrite, "generic", "Sets the expiration time of a key to a Unix timestamp.", (*Server).expireat))),
		lp(key(cmd("pexpireat", -3, fDelFast, aKeyWrite, "generic", "Sets the expiration time of a key to a Unix milliseconds timestamp.", (*Server).pexpireat))),
		lp(key(cmd("expiretime", 2, fRead, aKeyRead, "generic", "Returns the expiration time of a key as a Unix timestamp.", (*Server).expiretime))),
		lp(key(cmd("pexpiretime", 2, fRead, aKeyRead, "generic", "Returns the expiration time of a key as a Unix milliseconds timestamp.", (*Server).pexpiretime))),
		lp(key(cmd("ttl", 2, fRead, aKeyRead, "generic", "Returns the expiration time in seconds of a key.", (*Server).ttl))),
		lp(key(cmd("pttl", 2, fRead, aKeyRead, "generic", "Returns the expiration time in milliseconds of a key.", (*Server).pttl))),
		lp(key(cmd("persist", 2, fDelFast, aKeyWrite, "generic", "Removes the expiration time of a key.", (*Server).persist))),
		lp(key(cmd("type", 2, fRead, aKeyRead, "generic", "Determines the type of value stored at a key.", (*Server).typeCmd))),
		pair(cmd("rename", 3, fDel, aKeyDel, "generic", "Renames a key and overwrites the destination.", (*Server).rename)),
		pair(cmd("renamenx", 3, fDelFast, aKeyWrite, "generic", "Renames a key only when the target key name doesn't exist.", (*Server).renamenx)),
		pair(cmd("copy", -3, fWrite, aKeyDel, "generic", "Copies the value of a key to a new key.", (*Server).copyCmd)),
		cmd("dbsize", 1, fRead, aKeyRead, "server", "Returns the number of keys in the database.", (*Server).dbsize),
		cmd("keys", 2, fReadSlow, []string{"@keyspace", "@read", "@slow", "@dangerous"}, "generic", "Returns all key names that match a pattern.", (*Server).keys),
		cmd("scan", -2, fReadSlow, aKeySlow, "generic", "Iterates over the key names in the database.", (*Server).scan),
		cmd("randomkey", 1, fReadSlow, aKeySlow, "generic", "Returns a random key name from the database.", (*Server).randomkey),
		cmd("flushall", -1, fDel, aDanger, "server", "Removes all keys from all databases.", (*Server).flushall),
		cmd("flushdb", -1, fDel, aDanger, "server", "Remove all keys from the current database.", (*Server).flushall),
		// Dynamo.
		key(cmd("dget", -2, fReadSlow, aReadSlow, "dynamo", "Returns a key's causal context and all its live sibling values.", (*Server).dget)),
		key(cmd("dput", -4, fWrite, aWriteStr, "dynamo", "Writes a value with a causal context; returns the new context.", (*Server).dput)),
		key(cmd("ddel", -3, fDel, aWriteStr, "dynamo", "Deletes with a causal context; returns the new context.", (*Server).ddel)),
		key(cmd("dpreflist", -2, fReadSlow, aReadSlow, "dynamo", "Returns the names of a key's replicas in preference order, each followed by its zone with WITHZONES.", (*Server).dpreflist)),
		cmd("dcluster", -2, fAdmin, aAdmin, "dynamo", "Lists the ring members (MEMBERS), removes a dead one (REMOVE name) or makes this node leave (LEAVE).", (*Server).dcluster),
		// Server.
		cmd("info", -1, []string{"loading", "stale", "sentinel"}, []string{"@slow", "@dangerous"}, "server", "Returns information and statistics about the server.", (*Server).info),
		lp(cmd("time", 1, fConn, []string{"@fast"}, "server", "Returns the server time.", (*Server).time)),
		{name: "command", arity: -1, flags: []string{"loading", "stale", "sentinel"}, acl: aSlowConn, group: "server", summary: "Returns detailed information about all commands.", run: (*Server).commandAll, subs: []*command{
			cmd("command|count", 2, fInfo, aSlowConn, "server", "Returns a count of commands.", (*Server).commandCount),
			cmd("command|docs", -2, fInfo, aSlowConn, "server", "Returns documentary information about one, multiple or all commands.", (*Server).commandDocs),
			cmd("command|info", -2, fInfo, aSlowConn, "server", "Returns information about one, multiple or all commands.", (*Server).commandInfo),
			cmd("command|list", -2, fInfo, aSlowConn, "server", "Returns a list of command names.", (*Server).commandList),
			cmd("command|getkeys", -4, fInfo, aSlowConn, "server", "Extracts the key names from an arbitrary command.", (*Server).commandGetKeys),
			cmd("command|help", 2, fInfo, aSlowConn, "server", "Returns helpful text about the different subcommands.", (*Server).commandHelp),
		}},
		{name: "function", arity: -2, acl: []string{"@slow"}, group: "scripting", summary: "A container for function commands.", subs: []*command{
			cmd("function|flush", -2, []string{"write", "noscript"}, []string{"@write", "@slow", "@scripting"}, "scripting", "Deletes all libraries and functions.", (*Server).functionFlush),
			cmd("function|help", 2, []string{"loading", "stale"}, []string{"@slow", "@scripting"}, "scripting", "Returns helpful text about the different subcommands.", (*Server).functionHelp),
		}},
		{name: "config", arity: -2, acl: []string{"@slow"}, group: "server", summary: "A container for server configuration commands.", subs: []*command{
			cmd("config|get", -3, fAdmin, aAdmin, "server", "Returns the effective values of configuration parameters.", (*Server).configGet),
			cmd("config|set", -4, fAdmin, aAdmin, "server", "Sets configuration parameters in-flight.", (*Server).configSet),
			cmd("config|resetstat", 2, fAdmin, aAdmin, "server", "Resets the server's statistics.", (*Server).configResetStat),
			cmd("config|rewrite", 2, fAdmin, aAdmin, "server", "Persists the effective configuration to file.", (*Server).configRewrite),
			cmd("config|help", 2, fInfo, []string{"@slow"}, "server", "Returns helpful text about the different subcommands.", (*Server).configHelp),
		}},
	}
	t := &table{byName: make(map[string]*command, len(list))}
	for _, c := range list {
		c.arityErr = errLine(fmt.Sprintf("ERR wrong number of arguments for '%s' command", c.name))
		if len(c.subs) > 0 {
			c.subIdx = make(map[string]*command, len(c.subs))
			for _, sc := range c.subs {
				sc.arityErr = errLine(fmt.Sprintf("ERR wrong number of arguments for '%s' command", sc.name))
				c.subIdx[sc.name[strings.IndexByte(sc.name, '|')+1:]] = sc
			}
		}
		c.denyOOM = slices.Contains(c.flags, "denyoom")
		t.byName[c.name] = c
		t.list = append(t.list, c)
	}
	return t
}
