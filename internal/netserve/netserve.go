// Package netserve is the one server skeleton under dynakv's listeners: the RESP
// and memcached fronts and the cluster transport's server side. It owns what they
// used to write three times: the accept goroutine with its backoff on failed
// accepts, MaxClients and the answer to a connection beyond it (internal/refuser),
// the registry of open connections (id -> the protocol's connection state, for
// CLIENT LIST and Close), an idempotent Close, the goroutine driver's write
// deadline (internal/deadline) and the policy for a panic while serving a
// connection. The protocol brings what is its own: an Open func that builds a
// connection's state and a Serve func that serves it.
//
// # Invariants
//
//   - One accept goroutine per Server (the caller of Serve). A failed Accept other
//     than the listener's close is retried after a backoff that doubles from 5 ms
//     up to 1 s and drops back to zero at the next accepted connection, as
//     net/http does; Close cuts the wait short.
//   - A connection is counted and registered before its driver starts and
//     unregistered after Serve returned and its socket was closed, so Len never
//     exceeds MaxClients and a registered entry is always fully built (Open ran).
//   - MaxClients is checked on the accept goroutine; the refusal is written off it
//     (refuser), so a client that does not read cannot stall accepting.
//   - Close stops accepting, cancels Context, closes every registered connection,
//     waits for every driver and every refusal under way, then returns. It is
//     idempotent and concurrent callers all return once that is done. Serve after
//     Close closes its listener and returns nil.
//   - The package does not log: it reports through Events, and each protocol keeps
//     its own log lines.
//
// # Drivers
//
// The accepted net.Conn is handed to a driver in one place (Server.drive):
//
//   - The goroutine driver: one goroutine calls Config.Serve, which reads with
//     blocking calls. TLS connections, any net.Conn that is not a *net.TCPConn,
//     and every connection when Config.Loops is nil run on it.
//   - The loop driver (Config.Loops set, Linux): a plain *net.TCPConn's
//     descriptor is duplicated (evloop.Dup), the net.Conn is closed (the socket
//     stays open through the duplicate), and the duplicate goes to the loop of the
//     group with the fewest connections, served by the evloop.Handler that
//     Config.OnLoop returns. The connection is unregistered from its OnClose.
//     Close posts Conn.Close to the owning loop and waits for that OnClose. The
//     loops' tick closes a connection whose output made no progress for
//     WriteTimeout (Events.WriteTimedOut). Work a loop handler must not do on the
//     loop (it blocks) goes to Handoff: a bounded pool of goroutines (MaxHandoff)
//     that Close waits for.
//
// The registry, ids, MaxClients, Len, Close and Events are the same for both.
//
// All methods of Server are safe for concurrent use.
package netserve

import (
	"cmp"
	"context"
	"errors"
	"net"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dynakv/dynakv/internal/evloop"
	"github.com/dynakv/dynakv/internal/refuser"
)

// ErrServing is returned by a second Serve on one Server.
var ErrServing = errors.New("netserve: Serve called twice")

// Backoff bounds after a failed Accept.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// PanicPolicy says what a panic while serving a connection does.
type PanicPolicy uint8

const (
	// CloseConn recovers the panic, reports it through Events.Panic and closes
	// that connection only: a bug cannot take the node down. The default.
	CloseConn PanicPolicy = iota
	// Crash lets the panic go on and end the process, with its stack: for tests
	// and invariant builds, where a bug must not pass unnoticed.
	Crash
)

// Events are optional callbacks, each run on the goroutine where the event
// happens; nil ones are skipped. They are how a protocol logs and counts.
type Events struct {
	// AcceptFailed: Accept failed with err (not because the listener closed);
	// the next Accept is tried after retryIn. Accept goroutine.
	AcceptFailed func(err error, retryIn time.Duration)
	// Refused: nc is beyond MaxClients; it is answered Config.RefuseLine and
	// closed after the callback returns. Accept goroutine.
	Refused func(nc net.Conn)
	// Panic: serving nc panicked with v (CloseConn policy); nc is closed after
	// the callback returns. The connection's goroutine, or the Handoff goroutine
	// for a panic in a handed-off func (nc is nil then). A panic in a loop
	// handler is the evloop.Group's to report (evloop.Config.OnPanic).
	Panic func(nc net.Conn, v any, stack []byte)
	// WriteTimedOut: a connection on the loop driver is being closed because its
	// output made no progress for WriteTimeout. nc is the accepted net.Conn
	// (closed already: for its addresses). Loop goroutine. (On the goroutine
	// driver the write fails with os.ErrDeadlineExceeded instead.)
	WriteTimedOut func(nc net.Conn)
}

// Config configures a Server. T is the protocol's per-connection state.
type Config[T any] struct {
	// MaxClients bounds the registered connections; one more is refused. 0: no
	// limit. SetMaxClients changes it at once.
	MaxClients int
	// RefuseLine is the whole reply a connection beyond MaxClients gets before it
	// is closed ("-ERR max number of clients reached\r\n"); nil: closed unanswered.
	RefuseLine []byte
	// WriteTimeout bounds each Write to a connection on the goroutine driver: a
	// client that takes no bytes for about this long gets the write failed with
	// os.ErrDeadlineExceeded (internal/deadline). A Serve that sets a write
	// deadline on its conn itself takes the deadline over for the rest of the
	// connection. 0 or negative: none.
	WriteTimeout time.Duration
	// Admit, when set, runs first for every accepted connection, on the accept
	// goroutine; false closes nc unanswered (the transport bounds the
	// connections in their handshake this way). It must not block.
	Admit func(nc net.Conn) bool
	// Open builds the state of an admitted connection on the accept goroutine,
	// before it is registered under id (ids start at 1 and are never reused) and
	// before Serve runs. nc is what Serve reads and writes (wrapped for
	// WriteTimeout); on the loop driver it is closed already (its descriptor
	// went to the loop): use it for its addresses only. It must not block.
	// Required.
	Open func(id int64, nc net.Conn) T
	// Serve serves one connection until it ends; the Server closes the socket
	// after it returns. Required.
	Serve func(c T)
	// Loops, when set, runs plain TCP connections (*net.TCPConn) on these event
	// loops instead of a goroutine each (see Drivers); the caller owns the group
	// and closes it after Close. Default nil: the goroutine driver for all.
	Loops *evloop.Group
	// OnLoop returns the loop handler of a connection that runs on Loops; it runs
	// on the accept goroutine after Open. Required with Loops. Its OnClose is
	// called exactly once (with a nil Conn if the loop refused the connection:
	// it was closing).
	OnLoop func(c T) evloop.Handler
	// MaxHandoff bounds the goroutines running Handoff funcs; past it funcs wait
	// in order. Default 1024.
	MaxHandoff int
	// Panic is the policy for a panic in Serve or a Handoff func. Default CloseConn.
	Panic PanicPolicy
	// Events receive accept failures, refusals and recovered panics.
	Events Events
}

// DefaultMaxHandoff is MaxHandoff's default.
const DefaultMaxHandoff = 1024

// entry is one registered connection.
type entry[T any] struct {
	nc net.Conn     // as accepted: what Close closes (goroutine driver)
	lc *evloop.Conn // the loop driver's connection (nil on the goroutine driver); under Server.mu
	v  T
}

// Server accepts connections and runs them. Create it with New.
type Server[T any] struct {
	cfg     Config[T]
	ctx     context.Context
	cancel  context.CancelFunc
	refuser *refuser.Refuser

	maxClients atomic.Int64
	n          atomic.Int64 // registered connections
	nextID     atomic.Int64

	mu        sync.Mutex
	closed    bool
	ln        net.Listener
	serveDone chan struct{} // closed when Serve's accept loop ended
	conns     map[int64]*entry[T]
	wg        sync.WaitGroup // one per registered connection
	closeDone chan struct{}  // closed when the first Close is done

	// The loop driver: per loop of Config.Loops, its connections of this server
	// (each map is used on its loop's goroutine only), for the write timeout.
	perLoop map[*evloop.Loop]map[*evloop.Conn]*entry[T]
	pool    handoffPool
}

// New returns a Server for cfg, which must have Open and Serve.
func New[T any](cfg Config[T]) *Server[T] {
	if cfg.Open == nil || cfg.Serve == nil {
		panic("netserve: Config needs Open and Serve")
	}
	if cfg.Loops != nil && cfg.OnLoop == nil {
		panic("netserve: Config.Loops needs OnLoop")
	}
	if cfg.MaxHandoff <= 0 {
		cfg.MaxHandoff = DefaultMaxHandoff
	}
	s := &Server[T]{cfg: cfg, refuser: refuser.New(), conns: make(map[int64]*entry[T]), closeDone: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.maxClients.Store(int64(cfg.MaxClients))
	s.pool.max = cfg.MaxHandoff
	if cfg.Loops != nil {
		s.perLoop = make(map[*evloop.Loop]map[*evloop.Conn]*entry[T], len(cfg.Loops.Loops()))
		for _, l := range cfg.Loops.Loops() {
			conns := make(map[*evloop.Conn]*entry[T])
			s.perLoop[l] = conns
			if cfg.WriteTimeout > 0 {
				l.OnTick(func() { s.closeStale(conns) })
			}
		}
	}
	return s
}

// Context is canceled by Close: the parent of whatever the connections run.
func (s *Server[T]) Context() context.Context { return s.ctx }

// SetMaxClients changes MaxClients for the connections accepted from now on;
// those open stay.
func (s *Server[T]) SetMaxClients(n int) { s.maxClients.Store(int64(n)) }

// MaxClients returns the current bound (0: none).
func (s *Server[T]) MaxClients() int { return int(s.maxClients.Load()) }

// Len returns the number of registered connections.
func (s *Server[T]) Len() int { return int(s.n.Load()) }

// Addr returns the address Serve listens on, or nil before Serve.
func (s *Server[T]) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Get returns the state of the connection registered under id.
func (s *Server[T]) Get(id int64) (T, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.conns[id]; ok {
		return e.v, true
	}
	var zero T
	return zero, false
}

// Conns returns the states of the registered connections, in id order.
func (s *Server[T]) Conns() []T {
	s.mu.Lock()
	ids := make([]int64, 0, len(s.conns))
	for id := range s.conns {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, cmp.Compare)
	all := make([]T, len(ids))
	for i, id := range ids {
		all[i] = s.conns[id].v
	}
	s.mu.Unlock()
	return all
}

// Serve accepts connections on ln until Close, then returns nil. It returns the
// listener's error if ln was closed by someone else, ErrServing on a second call,
// and nil at once (closing ln) after Close.
func (s *Server[T]) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ln.Close()
		return nil
	}
	if s.ln != nil {
		s.mu.Unlock()
		return ErrServing
	}
	s.ln = ln
	s.serveDone = make(chan struct{})
	done := s.serveDone
	s.mu.Unlock()
	defer close(done)

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Temporary trouble (out of file descriptors, a connection reset
			// before it was accepted): back off instead of spinning.
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
			if f := s.cfg.Events.AcceptFailed; f != nil {
				f(err, backoff)
			}
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
				return nil
			}
			continue
		}
		backoff = 0
		s.accept(nc)
	}
}

func (s *Server[T]) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// accept admits, refuses or registers nc and starts its driver. It runs on the
// accept goroutine only, so the MaxClients check and the registration that
// follows it cannot interleave with another accept.
func (s *Server[T]) accept(nc net.Conn) {
	if s.cfg.Admit != nil && !s.cfg.Admit(nc) {
		_ = nc.Close()
		return
	}
	if limit := s.maxClients.Load(); limit > 0 && s.n.Load() >= limit {
		if f := s.cfg.Events.Refused; f != nil {
			f(nc)
		}
		if s.cfg.RefuseLine == nil {
			_ = nc.Close()
			return
		}
		s.refuser.Refuse(nc, s.cfg.RefuseLine) // before Close's refuser.Wait: Close waits for this goroutine first
		return
	}
	if s.isClosed() {
		_ = nc.Close()
		return
	}
	id := s.nextID.Add(1)
	fd := s.loopFd(nc)
	rw := nc
	if s.cfg.WriteTimeout > 0 && fd < 0 {
		rw = newDeadlineConn(nc, s.cfg.WriteTimeout)
	}
	e := &entry[T]{nc: nc, v: s.cfg.Open(id, rw)}
	// Registered even if Close began meanwhile: Close waits for this goroutine
	// to leave the accept loop before it closes the registered connections.
	s.mu.Lock()
	s.conns[id] = e
	s.n.Add(1)
	s.wg.Add(1)
	s.mu.Unlock()
	s.drive(id, e, fd)
}

// loopFd returns a duplicate of nc's descriptor for the loop driver, and closes
// nc's own (the socket stays open through the duplicate; nc keeps its
// addresses), or -1 when nc runs on the goroutine driver: no Loops, not plain
// TCP, or the dup failed.
func (s *Server[T]) loopFd(nc net.Conn) int {
	tc, ok := nc.(*net.TCPConn)
	if s.cfg.Loops == nil || !ok {
		return -1
	}
	fd, err := evloop.Dup(tc)
	if err != nil {
		return -1
	}
	_ = nc.Close()
	return fd
}

// drive runs a registered connection: the one place an accepted connection is
// handed to a driver, a loop when fd >= 0 (loopFd), else a goroutine of its own.
func (s *Server[T]) drive(id int64, e *entry[T], fd int) {
	if fd >= 0 {
		h := &loopHandler[T]{s: s, id: id, e: e, h: s.cfg.OnLoop(e.v)}
		lc, err := s.cfg.Loops.Add(fd, h)
		if err != nil { // the loop is closing; it closed fd
			h.OnClose(nil, err)
			return
		}
		s.mu.Lock()
		e.lc = lc
		s.mu.Unlock()
		// Runs after the registration, unless the connection closed first.
		lc.Post(func() { s.perLoop[lc.Loop()][lc] = e })
		return
	}
	go func() {
		defer s.wg.Done()
		defer s.unregister(id, e)
		s.serve(e)
	}()
}

// serve runs Config.Serve under the panic policy.
func (s *Server[T]) serve(e *entry[T]) {
	if s.cfg.Panic == CloseConn {
		defer func() {
			if v := recover(); v != nil {
				if f := s.cfg.Events.Panic; f != nil {
					f(e.nc, v, debug.Stack())
				}
			}
		}()
	}
	s.cfg.Serve(e.v)
}

// unregister closes a connection whose Serve returned and forgets it.
func (s *Server[T]) unregister(id int64, e *entry[T]) {
	_ = e.nc.Close()
	s.mu.Lock()
	delete(s.conns, id)
	s.mu.Unlock()
	s.n.Add(-1)
}

// loopHandler wraps a loop connection's handler: its OnClose unregisters the
// connection, after the protocol's OnClose.
type loopHandler[T any] struct {
	s  *Server[T]
	id int64
	e  *entry[T]
	h  evloop.Handler
}

func (h *loopHandler[T]) OnData(c *evloop.Conn, in []byte) int { return h.h.OnData(c, in) }

func (h *loopHandler[T]) OnDrain(c *evloop.Conn) {
	if d, ok := h.h.(evloop.Drainer); ok {
		d.OnDrain(c)
	}
}

func (h *loopHandler[T]) OnClose(c *evloop.Conn, err error) {
	defer h.s.wg.Done()
	defer h.s.unregister(h.id, h.e)
	if c != nil {
		delete(h.s.perLoop[c.Loop()], c)
	}
	h.h.OnClose(c, err)
}

// closeStale closes, on a loop's tick, the loop's connections whose output made
// no progress for WriteTimeout.
func (s *Server[T]) closeStale(conns map[*evloop.Conn]*entry[T]) {
	now := time.Now()
	for lc, e := range conns {
		if since := lc.OutPendingSince(); !since.IsZero() && now.Sub(since) >= s.cfg.WriteTimeout {
			if f := s.cfg.Events.WriteTimedOut; f != nil {
				f(e.nc)
			}
			lc.Close()
		}
	}
}

// Handoff runs f on a goroutine of the server's pool: at once while fewer than
// MaxHandoff run, else after the funcs handed off before it (in order). A loop
// handler gives it what would block its loop. f runs under the panic policy, and
// should watch Context, which Close cancels; Close waits for every f. It returns
// false, and f will not run, once Close began.
func (s *Server[T]) Handoff(f func()) bool {
	return s.pool.submit(f, s.run)
}

// run runs a handed-off f under the panic policy.
func (s *Server[T]) run(f func()) {
	if s.cfg.Panic == CloseConn {
		defer func() {
			if v := recover(); v != nil {
				if ev := s.cfg.Events.Panic; ev != nil {
					ev(nil, v, debug.Stack())
				}
			}
		}()
	}
	f()
}

// handoffPool is Handoff's bounded pool. Funcs run in submission order on at
// most max goroutines, started on demand. A goroutine with nothing left to run
// waits up to poolIdle for the next func before it ends, and at most
// poolMaxIdle wait: a handed-off command runs deep (front, proxy, coordinator,
// storage, Pebble), and a goroutine started for each one grew its stack from
// the smallest size every time (runtime.copystack was a seventh of a cluster
// node's CPU under redis-benchmark), while a waiting one keeps its stack.
type handoffPool struct {
	mu      sync.Mutex
	max     int
	running int // goroutines, waiting ones included
	idle    int // goroutines waiting for a func, not yet woken
	queue   []func()
	wake    chan struct{} // one token per waiting goroutine woken: it takes the queue's head
	closed  bool
	wg      sync.WaitGroup
}

const (
	// poolIdle is how long a goroutine with nothing to run waits for more.
	poolIdle = 10 * time.Second
	// poolMaxIdle bounds the goroutines that wait: their stacks are the pool's
	// memory while the fronts are idle.
	poolMaxIdle = 64
)

func (p *handoffPool) submit(f func(), run func(func())) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.queue = append(p.queue, f)
	switch {
	case p.idle > 0:
		p.idle--
		p.wake <- struct{}{} // tokens <= goroutines <= max, the buffer: never blocks
	case p.running < p.max:
		if p.wake == nil {
			// A token is sent for a waiting goroutine that has not taken one
			// yet, so they never outnumber the goroutines.
			p.wake = make(chan struct{}, p.max)
		}
		p.running++
		p.wg.Add(1)
		go p.work(run)
	}
	return true
}

// work runs the queue's funcs until it is empty, then waits (see handoffPool).
func (p *handoffPool) work(run func(func())) {
	defer p.wg.Done()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		p.mu.Lock()
		if len(p.queue) > 0 {
			f := p.queue[0]
			p.queue[0] = nil
			p.queue = p.queue[1:]
			p.mu.Unlock()
			run(f)
			continue
		}
		if p.closed || p.idle >= poolMaxIdle {
			p.running--
			p.mu.Unlock()
			return
		}
		p.idle++
		p.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(poolIdle)
		} else {
			timer.Reset(poolIdle)
		}
		select {
		case <-p.wake:
			continue // submit or close counted this goroutine out of idle
		case <-timer.C:
		}
		p.mu.Lock()
		select {
		case <-p.wake: // woken meanwhile: a token is this goroutine's to honour
			p.mu.Unlock()
			continue
		default:
		}
		p.idle--
		p.running--
		p.mu.Unlock()
		return
	}
}

// close refuses new funcs and waits for those submitted (queued ones run too).
func (p *handoffPool) close() {
	p.mu.Lock()
	p.closed = true
	for ; p.idle > 0; p.idle-- {
		p.wake <- struct{}{}
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// Close stops accepting, cancels Context, closes every connection and waits for
// their drivers and the refusals under way. It is idempotent; concurrent calls all
// wait. It always returns nil.
func (s *Server[T]) Close() error {
	s.mu.Lock()
	first := !s.closed
	s.closed = true
	ln, done := s.ln, s.serveDone
	s.mu.Unlock()
	if !first {
		// A channel, not a sync.Once: waiting on it is durably blocking, so a
		// Close under testing/synctest lets fake time run for the first one.
		<-s.closeDone
		return nil
	}
	defer close(s.closeDone)
	s.cancel()
	if ln != nil {
		_ = ln.Close()
		<-done // no accept runs from here on: nothing registers, nothing is refused
	}
	s.mu.Lock()
	var conns []net.Conn
	var lcs []*evloop.Conn
	for _, e := range s.conns {
		if e.lc != nil {
			lcs = append(lcs, e.lc)
		} else {
			conns = append(conns, e.nc)
		}
	}
	s.mu.Unlock()
	for _, nc := range conns {
		_ = nc.Close()
	}
	for _, lc := range lcs {
		// A false Post means the loop is closing: it closes lc itself.
		lc.Post(lc.Close)
	}
	s.wg.Wait()
	s.pool.close()
	s.refuser.Wait()
	return nil
}
