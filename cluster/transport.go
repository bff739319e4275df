// Internode transport: a TCP request/response transport between cluster nodes on the
// cluster port (--cluster, default 7947). These notes are the transport's part of the
// package documentation (the package comment itself lives in doc.go). Files:
// frame.go (frame codec, pure), auth.go (handshake, pure), transport.go (API,
// config, lifecycle, the shared frame writer), transport_client.go (Call),
// transport_server.go (serving peers).
//
// Protocol. A connection starts with the mutual handshake of auth.go: both sides
// prove the cluster secret with HMAC-SHA256 over fresh nonces, and the client names
// itself. A peer that fails is refused (the server logs a warning and counts it in
// TransportStats.RefusedHandshakes; the client's Call returns an error wrapping
// ErrAuth). After it, the client sends request frames and the server answers each
// with a response or an error frame carrying the same request id (frame.go). Replies
// may come in any order; the id pairs them. The protocol is versioned in the
// handshake and not compatible across versions: version 2 (clock readings in the
// hello and in request frames, late refusals) refuses version 1 peers, so a
// cluster is upgraded all at once, not node by node.
//
// Client side (Call). Each peer address has one connection, dialed lazily by a
// goroutine the transport owns and shared by all callers (pipelining). A call enters
// a bounded per-peer queue (MaxQueue calls queued or awaiting a reply; beyond it
// Call fails at once with ErrQueueFull); one writer goroutine drains the queue into a
// buffered writer and flushes only when the queue is momentarily empty, so concurrent
// calls share one write syscall; one reader goroutine completes calls by id. A call
// ends when its reply arrives, when its context is done (its entry is dropped and a
// late reply discarded) or when the connection fails (every pending call fails with
// an error wrapping ErrUnreachable). A failed dial or handshake, or a connection that
// broke before delivering any reply, starts an exponential backoff with jitter
// (BackoffMin doubling to BackoffMax); calls during the backoff fail fast with the
// dial's error instead of waiting. A connection that worked is redialed at once.
// Memory is bounded: the queue bound, a private copy of each request payload that is
// released once written, and a write deadline (a peer that stops reading for 5s is
// disconnected). A peer that stops answering without closing (SIGSTOP, power loss)
// is noticed when a call times out and the peer, owing replies, has sent nothing
// for 10s: the connection is dropped and redialed, instead of waiting minutes for
// TCP to give up.
//
// Deadlines. A request must not run after its caller gave up: a frame that sat in
// TCP's retransmission queue during a partition, or in the socket buffer of a
// stopped (SIGSTOP) process, would otherwise run seconds after its caller had
// answered its own client, and a write would then land after writes that client
// saw complete later. Every request carries the milliseconds left until the
// caller's deadline (its context's, or DefaultTimeout from now), rounded up, and
// the caller's clock when it wrote the frame (Config.Now, advanced monotonically
// since the connection's handshake), so the caller's deadline in its own clock is
// sent + timeout. The nodes' wall clocks may be far apart, so the server does not
// compare that with its own clock: it bounds the caller's clock offset from the
// handshake (the client's hello carries its clock) and from every request it
// receives (clock.go), and converts the deadline into its own clock. The
// conversion errs late, by at most the one-way delay of the fastest message seen
// on the connection (microseconds on a LAN; at first the handshake's) plus the
// clocks' drift since (1000 ppm assumed): a request is never refused while its
// caller may still wait for it. The other choice would refuse requests its caller
// still waits for whenever the bound is loose (a slow handshake would cost every
// request of a connection part of its time), and turn them into hints or local
// runs; a write that runs that little late carries the time its front node
// accepted it (proxy), so it cannot order after writes its client saw complete
// later anyway. The converted deadline is never later than arrival plus the time
// left (give or take a millisecond of rounding): the bound a request that was
// delayed on its way, with no faster message before it on the connection, gets.
//
// The server checks the deadline when a request is read, and again when a worker
// is about to run its handler: a request whose deadline has passed is not run and
// is answered with a late refusal, which its caller, if still waiting, gets as an
// error wrapping ErrLate (the handler certainly did not run). A caller that gets a
// late refusal before its own deadline has passed learns that the peer's bound of
// its clock is wrong (its monotonic clock stood still during a system suspend, or
// the clocks drifted apart faster than allowed), which would refuse every later
// request on the connection too: it retires the connection (no new call uses it;
// it closes once the calls on it are answered) and sends the request once more on
// a fresh connection, whose handshake gives a fresh bound. Otherwise the handler
// runs under a context with that deadline, canceled when the connection or the
// transport closes, and handlers check it again before they apply a write
// (coordinator/).
//
// Server side. Each accepted connection has a reader that starts one goroutine per
// request, at most MaxInflight at a time (then it stops reading: backpressure
// through TCP), and a writer that coalesces replies like the client's. A malformed or
// oversized frame closes the connection with a logged warning; a length prefix above
// MaxFrameBytes is refused before anything is allocated for it, and a long frame's
// buffer grows only as its bytes arrive. A panicking handler is recovered, logged,
// and answered with a RemoteError.
//
// Concurrency. Call, Stats and Addr are safe for concurrent use, also concurrently
// with Close. Close is idempotent: it closes the listener and every connection,
// cancels the handlers' contexts, makes blocked and later Calls return ErrClosed,
// and waits for every goroutine the transport started (so handlers must return when
// their context is done). Message types (typ) are entirely the caller's: the
// transport reserves none.

package cluster

import (
	"bufio"
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by the transport, checked with errors.Is. Errors from a Call carry
// the peer address and cause as well.
var (
	// ErrClosed is returned by Calls on a closed transport.
	ErrClosed = errors.New("cluster: transport closed")
	// ErrQueueFull is returned when a peer already has MaxQueue calls queued or in
	// flight; the call was not sent.
	ErrQueueFull = errors.New("cluster: peer queue full")
	// ErrAuth is returned when the handshake with a peer fails: different cluster
	// secret, different protocol version, or not a dynakv cluster port.
	ErrAuth = errors.New("cluster: authentication failed")
	// ErrUnreachable is returned when the peer cannot be dialed, or the connection
	// failed before the reply arrived (the request may or may not have run).
	ErrUnreachable = errors.New("cluster: peer unreachable")
	// ErrFrameTooBig is returned when a request exceeds MaxFrameBytes; it was not sent.
	// A reply above the limit reaches the caller as a RemoteError (the server's
	// limit) or as ErrUnreachable wrapping ErrFrameTooBig (the caller's).
	ErrFrameTooBig = errors.New("cluster: frame too big")
	// ErrNotSent is wrapped, next to the reason, by every Call error that means
	// the request never left this node (no connection, queue full, frame too big):
	// the peer certainly did not run it, so the caller may run it elsewhere.
	ErrNotSent = errors.New("cluster: request not sent")
	// ErrLate is returned when the peer refused a request because its deadline had
	// passed before the handler could run (it arrived late, or waited too long for
	// a handler slot): the handler did not run. Calls wrap it together with
	// context.DeadlineExceeded.
	ErrLate = errors.New("cluster: request reached the peer after its deadline; not run")
)

// RemoteError is the error a peer's Handler returned, as text. Calls return it as a
// *RemoteError; use errors.As to tell it from transport failures.
type RemoteError struct {
	// Msg is the handler's err.Error().
	Msg string
}

// Error returns "cluster: remote: " followed by the remote message.
func (e *RemoteError) Error() string { return "cluster: remote: " + e.Msg }

// Handler serves requests arriving from peers.
type Handler interface {
	// ServeCluster handles one request. from is the peer's node name, proven in the
	// handshake; typ is the caller-defined message type; req is valid only during
	// the call. ctx carries the caller's deadline and is canceled when the
	// connection or the transport closes; ServeCluster must return soon after. The
	// returned bytes are the reply payload and must not be modified afterwards; a
	// returned error reaches the caller as a *RemoteError carrying err.Error().
	// ServeCluster is called concurrently, up to MaxInflight calls per connection.
	ServeCluster(ctx context.Context, from string, typ uint8, req []byte) ([]byte, error)
}

// HandlerFunc adapts a function to the Handler interface.
type HandlerFunc func(ctx context.Context, from string, typ uint8, req []byte) ([]byte, error)

// ServeCluster calls f.
func (f HandlerFunc) ServeCluster(ctx context.Context, from string, typ uint8, req []byte) ([]byte, error) {
	return f(ctx, from, typ, req)
}

// Transport defaults; see TransportConfig.
const (
	trDefaultMaxQueue         = 4096
	trDefaultMaxFrameBytes    = 64 << 20
	trDefaultMaxInflight      = 256
	trDefaultDialTimeout      = time.Second
	trDefaultTimeout          = time.Second
	trDefaultBackoffMin       = 50 * time.Millisecond
	trDefaultBackoffMax       = 2 * time.Second
	trDefaultWriteTimeout     = 5 * time.Second
	trDefaultHandshakeTimeout = 2 * time.Second

	// trMinFrameBytes is the smallest MaxFrameBytes Validate accepts: room for an
	// error reply.
	trMinFrameBytes = 256
	// trMaxRequestHeader bounds a request frame's header after the length prefix:
	// kind, id varint, typ, timeout varint, sent varint.
	trMaxRequestHeader = 1 + binary.MaxVarintLen64 + 1 + 5 + 7
	trBufSize          = 64 << 10
	// trMaxHandshakes bounds inbound connections still in their handshake.
	trMaxHandshakes = 256
	// trStaleFactor times the write timeout (5s) of silence from a peer that owes
	// replies, noticed when a call times out, marks a client connection stale.
	trStaleFactor = 2
)

// TransportConfig configures a Transport. Zero fields take the defaults documented
// here (EnsureDefaults); NewTransport never modifies the caller's struct.
type TransportConfig struct {
	// Name is this node's name, sent in the handshake: 1 to 255 bytes of UTF-8.
	// Required.
	Name string
	// ListenAddr is the TCP address to listen on, e.g. "127.0.0.1:7947";
	// "127.0.0.1:0" picks a free port (see Transport.Addr). Required.
	ListenAddr string
	// Secret is the cluster secret every peer must prove. It may be empty, and then
	// must be empty on every peer (connections are still authenticated by HMAC with
	// an empty key, which keeps out only peers configured with a secret).
	Secret []byte
	// Handler serves incoming requests. Required.
	Handler Handler
	// ServerTLS, when set, makes the listener speak TLS: the handshake of auth.go
	// then runs inside it. Set ClientAuth to tls.RequireAndVerifyClientCert (with
	// ClientCAs) for mutual TLS. Default nil: plain TCP.
	ServerTLS *tls.Config
	// ClientTLS, when set, makes dials to peers use TLS; an empty ServerName is
	// taken from the host of the dialed address. A peer that fails TLS (its
	// certificate does not verify, it does not speak TLS) is an ErrAuth. Default
	// nil: plain TCP.
	ClientTLS *tls.Config
	// MaxQueue bounds, per peer, the calls queued or awaiting a reply; a Call beyond
	// it fails at once with ErrQueueFull. Default 4096.
	MaxQueue int
	// MaxFrameBytes is the largest frame sent or accepted, in bytes, header
	// included (a request needs up to 24 header bytes besides its payload).
	// Default 64 MiB; between 256 bytes and 2 GiB-1.
	MaxFrameBytes int
	// MaxInflight bounds the handler calls running at once per incoming connection;
	// when it is reached the connection is not read until one finishes. Default 256.
	MaxInflight int
	// DialTimeout bounds establishing the TCP connection to a peer (the handshake
	// has its own 2s limit). Default 1s.
	DialTimeout time.Duration
	// DefaultTimeout is the deadline of Calls whose context has none. Default 1s.
	DefaultTimeout time.Duration
	// BackoffMin and BackoffMax bound the wait before redialing a peer whose dial
	// failed: it starts at BackoffMin and doubles per failure up to BackoffMax, each
	// wait drawn uniformly from [b/2, b]. Defaults 50ms and 2s.
	BackoffMin, BackoffMax time.Duration
	// Logger receives warnings (refused handshakes, bad frames, handler panics) and
	// debug events. Default slog.Default().
	Logger *slog.Logger
	// Now is the wall clock this node tells its peers (in handshakes and request
	// frames) and reads their deadlines against; elapsed times use its monotonic
	// reading when it has one. Default time.Now.
	Now func() time.Time

	// writeTimeout is how long a blocked write may take before the connection is
	// dropped; handshakeTimeout bounds the handshake. Tests shorten them.
	writeTimeout, handshakeTimeout time.Duration
}

// EnsureDefaults returns a copy of c with every zero field set to its default.
func (c TransportConfig) EnsureDefaults() TransportConfig {
	if c.MaxQueue == 0 {
		c.MaxQueue = trDefaultMaxQueue
	}
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = trDefaultMaxFrameBytes
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = trDefaultMaxInflight
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = trDefaultDialTimeout
	}
	if c.DefaultTimeout == 0 {
		c.DefaultTimeout = trDefaultTimeout
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = trDefaultBackoffMin
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = max(trDefaultBackoffMax, c.BackoffMin)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.writeTimeout == 0 {
		c.writeTimeout = trDefaultWriteTimeout
	}
	if c.handshakeTimeout == 0 {
		c.handshakeTimeout = trDefaultHandshakeTimeout
	}
	return c
}

// Validate reports the first problem of a config that went through EnsureDefaults.
func (c TransportConfig) Validate() error {
	switch {
	case !authValidName(c.Name):
		return fmt.Errorf("cluster: transport: Name %q must be 1 to %d bytes of UTF-8", c.Name, authMaxName)
	case c.ListenAddr == "":
		return errors.New("cluster: transport: ListenAddr is required")
	case c.Handler == nil:
		return errors.New("cluster: transport: Handler is required")
	case c.MaxQueue <= 0:
		return fmt.Errorf("cluster: transport: MaxQueue %d must be positive", c.MaxQueue)
	case c.MaxFrameBytes < trMinFrameBytes || c.MaxFrameBytes > frameMaxLimit:
		return fmt.Errorf("cluster: transport: MaxFrameBytes %d must be between %d and %d",
			c.MaxFrameBytes, trMinFrameBytes, frameMaxLimit)
	case c.MaxInflight <= 0:
		return fmt.Errorf("cluster: transport: MaxInflight %d must be positive", c.MaxInflight)
	case c.DialTimeout <= 0, c.DefaultTimeout <= 0, c.writeTimeout <= 0, c.handshakeTimeout <= 0:
		return errors.New("cluster: transport: timeouts must be positive")
	case c.BackoffMin <= 0 || c.BackoffMax < c.BackoffMin:
		return fmt.Errorf("cluster: transport: need 0 < BackoffMin (%v) <= BackoffMax (%v)", c.BackoffMin, c.BackoffMax)
	case c.Logger == nil:
		return errors.New("cluster: transport: Logger is required")
	case c.Now == nil:
		return errors.New("cluster: transport: Now is required")
	}
	return nil
}

// TransportStats is a snapshot of a Transport's counters since NewTransport. Byte
// and frame counts cover both roles (calls made and requests served).
type TransportStats struct {
	// Calls is the number of Call invocations; Failures those that returned an error
	// (including ErrQueueFull, deadlines and RemoteErrors).
	Calls, Failures uint64
	// QueueFull counts calls refused with ErrQueueFull.
	QueueFull uint64
	// Served counts requests handed to the Handler; Expired those refused because
	// their deadline had passed before a handler ran (they arrived late, or waited
	// for a handler slot): answered with a late refusal, never run.
	Served, Expired uint64
	// BytesIn and BytesOut count frame bytes read and written (handshakes excluded).
	BytesIn, BytesOut uint64
	// FramesOut counts frames written; Flushes the buffered writes that sent them
	// (FramesOut/Flushes is the coalescing factor).
	FramesOut, Flushes uint64
	// Dials counts outbound connection attempts; Reconnects the successful ones to
	// a peer that had been connected before.
	Dials, Reconnects uint64
	// Accepted counts inbound connections; RefusedHandshakes those refused by the
	// handshake (wrong secret, garbage, silence).
	Accepted, RefusedHandshakes uint64
	// BadFrames counts connections dropped for a malformed or oversized frame.
	BadFrames uint64
}

// trStats holds the live counters behind TransportStats.
type trStats struct {
	calls, failures, queueFull, served, expired     atomic.Uint64
	bytesIn, bytesOut, framesOut, flushes           atomic.Uint64
	dials, reconnects, accepted, refused, badFrames atomic.Uint64
}

// Transport sends requests to peers and serves theirs. See the notes at the top of
// transport.go for the protocol and guarantees. Create it with NewTransport.
type Transport struct {
	cfg TransportConfig
	log *slog.Logger
	ln  net.Listener

	// lifetime is canceled by Close; it is the parent of every handler context and
	// dial, never a request's context.
	lifetime context.Context
	cancel   context.CancelFunc
	done     chan struct{} // closed by Close

	handshakes chan struct{} // one slot per inbound connection in its handshake

	// mu guards the fields below. Goroutines are started only under mu (read or
	// write) while !closed, so Close can set closed and then wait for all of them.
	mu       sync.RWMutex
	closed   bool
	peers    map[string]*trPeer
	srvConns map[net.Conn]struct{}
	rng      *rand.Rand // seeds the peers' jitter; write lock

	wg        sync.WaitGroup
	closeOnce sync.Once
	st        trStats
}

// NewTransport listens on cfg.ListenAddr and starts serving peers with cfg.Handler.
// Close releases it.
func NewTransport(cfg TransportConfig) (*Transport, error) {
	cfg = cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Secret = bytes.Clone(cfg.Secret)
	var seed [16]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("cluster: transport: seed: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("cluster: transport: listen: %w", err)
	}
	if cfg.ServerTLS != nil {
		// The TLS handshake happens on the first read or write of a connection,
		// in serveConn, under the handshake deadline.
		ln = tls.NewListener(ln, cfg.ServerTLS)
	}
	t := &Transport{
		cfg:        cfg,
		log:        cfg.Logger.With("node", cfg.Name),
		ln:         ln,
		done:       make(chan struct{}),
		handshakes: make(chan struct{}, trMaxHandshakes),
		peers:      make(map[string]*trPeer),
		srvConns:   make(map[net.Conn]struct{}),
		rng:        rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:]))),
	}
	t.lifetime, t.cancel = context.WithCancel(context.Background())
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

// Addr returns the address the transport listens on, with the actual port.
func (t *Transport) Addr() string { return t.ln.Addr().String() }

// Stats returns a snapshot of the transport's counters.
func (t *Transport) Stats() TransportStats {
	s := &t.st
	return TransportStats{
		Calls: s.calls.Load(), Failures: s.failures.Load(), QueueFull: s.queueFull.Load(),
		Served: s.served.Load(), Expired: s.expired.Load(),
		BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load(),
		FramesOut: s.framesOut.Load(), Flushes: s.flushes.Load(),
		Dials: s.dials.Load(), Reconnects: s.reconnects.Load(),
		Accepted: s.accepted.Load(), RefusedHandshakes: s.refused.Load(),
		BadFrames: s.badFrames.Load(),
	}
}

// Close stops the transport: it closes the listener and every connection, cancels
// running handlers, fails pending Calls with ErrClosed and waits for every goroutine
// the transport started. It is idempotent and always returns nil.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed = true
		peers := make([]*trPeer, 0, len(t.peers))
		for _, p := range t.peers {
			peers = append(peers, p)
		}
		conns := make([]net.Conn, 0, len(t.srvConns))
		for c := range t.srvConns {
			conns = append(conns, c)
		}
		t.mu.Unlock()

		close(t.done)
		t.cancel()
		_ = t.ln.Close()
		for _, p := range peers {
			p.mu.Lock()
			cc := p.cc
			p.mu.Unlock()
			if cc != nil {
				cc.fail(ErrClosed)
			}
		}
		for _, c := range conns {
			_ = c.Close()
		}
		t.wg.Wait()
	})
	return nil
}

// trGo runs f in a goroutine owned by the transport, unless the transport is closed.
func (t *Transport) trGo(f func()) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		return false
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		f()
	}()
	return true
}

func (t *Transport) isClosed() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// trConnError turns a read or write error on a connection into the error pending
// calls get, logging and counting bad frames.
func (t *Transport) trConnError(err error, peer, role string) error {
	if t.isClosed() {
		return ErrClosed
	}
	if errors.Is(err, errFrameMalformed) || errors.Is(err, ErrFrameTooBig) {
		t.st.badFrames.Add(1)
		t.log.Warn("cluster: bad frame, closing connection", "peer", peer, "role", role, "err", err)
	}
	if errors.Is(err, io.EOF) {
		err = errors.New("connection closed by peer")
	}
	return fmt.Errorf("%w: %s: %w", ErrUnreachable, peer, err)
}

// trWriter is the coalescing frame writer shared by both roles: frames go to a
// bufio.Writer, flushed by the caller when its queue is empty, under a write
// deadline refreshed as writes make progress.
type trWriter struct {
	t       *Transport
	conn    net.Conn
	bw      *bufio.Writer
	hdr     []byte
	armedAt time.Time
}

func (t *Transport) newTrWriter(conn net.Conn) *trWriter {
	return &trWriter{t: t, conn: conn, bw: bufio.NewWriterSize(conn, trBufSize)}
}

// arm (re)sets the write deadline unless it was set very recently.
func (w *trWriter) arm() error {
	now := time.Now()
	if now.Sub(w.armedAt) < w.t.cfg.writeTimeout/8 {
		return nil
	}
	w.armedAt = now
	return w.conn.SetWriteDeadline(now.Add(w.t.cfg.writeTimeout))
}

func (w *trWriter) write(f *trFrame) error {
	if err := w.arm(); err != nil {
		return err
	}
	w.hdr = appendFrameHeader(w.hdr[:0], f)
	if _, err := w.bw.Write(w.hdr); err != nil {
		return err
	}
	if _, err := w.bw.Write(f.payload); err != nil {
		return err
	}
	w.t.st.framesOut.Add(1)
	w.t.st.bytesOut.Add(uint64(len(w.hdr) + len(f.payload)))
	return nil
}

func (w *trWriter) flush() error {
	if w.bw.Buffered() == 0 {
		return nil
	}
	if err := w.arm(); err != nil {
		return err
	}
	w.t.st.flushes.Add(1)
	return w.bw.Flush()
}

// trNext returns the next queued item and true, or false when the queue stays
// empty after the writer yielded once: requests (or replies) that goroutines about
// to run are producing then join this flush instead of costing a write each.
func trNext[T any](q <-chan T) (T, bool) {
	for i := range 2 {
		select {
		case v := <-q:
			return v, true
		default:
		}
		if i == 0 {
			runtime.Gosched()
		}
	}
	var zero T
	return zero, false
}
