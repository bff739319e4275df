package transport

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

	"github.com/dynakv/dynakv/internal/netserve"
)

// Errors returned by the transport, checked with errors.Is. Errors from a Call carry
// the peer address and cause as well.
var (
	// ErrClosed is returned by Calls on a closed transport.
	ErrClosed = errors.New("transport: closed")
	// ErrQueueFull is returned when a peer already has MaxQueue calls queued or in
	// flight; the call was not sent.
	ErrQueueFull = errors.New("transport: peer queue full")
	// ErrAuth is returned when the handshake with a peer fails: different cluster
	// secret, different protocol version, or not a dynakv cluster port.
	ErrAuth = errors.New("transport: authentication failed")
	// ErrUnreachable is returned when the peer cannot be dialed, or the connection
	// failed before the reply arrived (the request may or may not have run).
	ErrUnreachable = errors.New("transport: peer unreachable")
	// ErrFrameTooBig is returned when a request exceeds MaxFrameBytes; it was not sent.
	// A reply above the limit reaches the caller as a RemoteError (the server's
	// limit) or as ErrUnreachable wrapping ErrFrameTooBig (the caller's).
	ErrFrameTooBig = errors.New("transport: frame too big")
	// ErrNotSent is wrapped, next to the reason, by every Call error that means
	// the request never left this node (no connection, queue full, frame too big):
	// the peer certainly did not run it, so the caller may run it elsewhere.
	ErrNotSent = errors.New("transport: request not sent")
	// ErrLate is returned when the peer refused a request because its deadline had
	// passed before the handler could run (it arrived late, or waited too long for
	// a handler slot): the handler did not run. Calls wrap it together with
	// context.DeadlineExceeded.
	ErrLate = errors.New("transport: request reached the peer after its deadline; not run")
)

// RemoteError is the error a peer's Handler returned, as text. Calls return it as a
// *RemoteError; use errors.As to tell it from transport failures.
type RemoteError struct {
	// Msg is the handler's err.Error().
	Msg string
}

// Error returns "transport: remote: " followed by the remote message.
func (e *RemoteError) Error() string { return "transport: remote: " + e.Msg }

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

// Transport defaults; see Config.
const (
	defaultMaxQueue         = 4096
	defaultMaxFrameBytes    = 64 << 20
	defaultMaxInflight      = 256
	defaultDialTimeout      = time.Second
	defaultTimeout          = time.Second
	defaultBackoffMin       = 50 * time.Millisecond
	defaultBackoffMax       = 2 * time.Second
	defaultWriteTimeout     = 5 * time.Second
	defaultHandshakeTimeout = 2 * time.Second

	// minFrameBytes is the smallest MaxFrameBytes Validate accepts: room for an
	// error reply.
	minFrameBytes = 256
	// maxRequestHeader bounds a request frame's header after the length prefix:
	// kind, id varint, typ, timeout varint, sent varint.
	maxRequestHeader = 1 + binary.MaxVarintLen64 + 1 + 5 + 7
	bufSize          = 64 << 10
	// maxHandshakes bounds inbound connections still in their handshake.
	maxHandshakes = 256
	// staleFactor times the write timeout (5s) of silence from a peer that owes
	// replies, noticed when a call times out, marks a client connection stale.
	staleFactor = 2
)

// Config configures a Transport. Zero fields take the defaults documented
// here (EnsureDefaults); New never modifies the caller's struct.
type Config struct {
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
	// PanicPolicy says what a panic serving a peer does: netserve.CloseConn (the
	// default) answers a panicking handler's request with an error and closes a
	// connection whose reading or writing panicked; netserve.Crash lets the panic
	// end the process (tests).
	PanicPolicy netserve.PanicPolicy

	// writeTimeout is how long a blocked write may take before the connection is
	// dropped; handshakeTimeout bounds the handshake. Tests shorten them.
	writeTimeout, handshakeTimeout time.Duration
}

// EnsureDefaults returns a copy of c with every zero field set to its default.
func (c Config) EnsureDefaults() Config {
	if c.MaxQueue == 0 {
		c.MaxQueue = defaultMaxQueue
	}
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = defaultMaxFrameBytes
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = defaultMaxInflight
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = defaultDialTimeout
	}
	if c.DefaultTimeout == 0 {
		c.DefaultTimeout = defaultTimeout
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = defaultBackoffMin
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = max(defaultBackoffMax, c.BackoffMin)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.writeTimeout == 0 {
		c.writeTimeout = defaultWriteTimeout
	}
	if c.handshakeTimeout == 0 {
		c.handshakeTimeout = defaultHandshakeTimeout
	}
	return c
}

// Validate reports the first problem of a config that went through EnsureDefaults.
func (c Config) Validate() error {
	switch {
	case !authValidName(c.Name):
		return fmt.Errorf("transport: Name %q must be 1 to %d bytes of UTF-8", c.Name, authMaxName)
	case c.ListenAddr == "":
		return errors.New("transport: ListenAddr is required")
	case c.Handler == nil:
		return errors.New("transport: Handler is required")
	case c.MaxQueue <= 0:
		return fmt.Errorf("transport: MaxQueue %d must be positive", c.MaxQueue)
	case c.MaxFrameBytes < minFrameBytes || c.MaxFrameBytes > frameMaxLimit:
		return fmt.Errorf("transport: MaxFrameBytes %d must be between %d and %d",
			c.MaxFrameBytes, minFrameBytes, frameMaxLimit)
	case c.MaxInflight <= 0:
		return fmt.Errorf("transport: MaxInflight %d must be positive", c.MaxInflight)
	case c.DialTimeout <= 0, c.DefaultTimeout <= 0, c.writeTimeout <= 0, c.handshakeTimeout <= 0:
		return errors.New("transport: timeouts must be positive")
	case c.BackoffMin <= 0 || c.BackoffMax < c.BackoffMin:
		return fmt.Errorf("transport: need 0 < BackoffMin (%v) <= BackoffMax (%v)", c.BackoffMin, c.BackoffMax)
	case c.Logger == nil:
		return errors.New("transport: Logger is required")
	case c.Now == nil:
		return errors.New("transport: Now is required")
	}
	return nil
}

// Stats is a snapshot of a Transport's counters since New. Byte
// and frame counts cover both roles (calls made and requests served).
type Stats struct {
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

// counters holds the live counters behind Stats.
type counters struct {
	calls, failures, queueFull, served, expired     atomic.Uint64
	bytesIn, bytesOut, framesOut, flushes           atomic.Uint64
	dials, reconnects, accepted, refused, badFrames atomic.Uint64
}

// Transport sends requests to peers and serves theirs. See the package
// documentation for the protocol and guarantees. Create it with New.
type Transport struct {
	cfg Config
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
	mu     sync.RWMutex
	closed bool
	peers  map[string]*peer
	rng    *rand.Rand // seeds the peers' jitter; write lock

	ns *netserve.Server[net.Conn] // the server side: accepts, holds and closes inbound connections

	wg        sync.WaitGroup
	closeOnce sync.Once
	st        counters
}

// New listens on cfg.ListenAddr and starts serving peers with cfg.Handler.
// Close releases it.
func New(cfg Config) (*Transport, error) {
	cfg = cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Secret = bytes.Clone(cfg.Secret)
	var seed [16]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("transport: seed: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen: %w", err)
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
		handshakes: make(chan struct{}, maxHandshakes),
		peers:      make(map[string]*peer),
		rng:        rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:]))),
	}
	t.lifetime, t.cancel = context.WithCancel(context.Background())
	t.ns = netserve.New(netserve.Config[net.Conn]{
		Admit: t.admit,
		Open:  func(_ int64, nc net.Conn) net.Conn { return nc },
		Serve: t.serveConn,
		Panic: cfg.PanicPolicy,
		Events: netserve.Events{
			AcceptFailed: func(err error, retryIn time.Duration) {
				t.log.Warn("transport: accept failed", "err", err, "retry_in", retryIn)
			},
			Panic: func(nc net.Conn, v any, stack []byte) {
				t.log.Error("transport: panic serving a connection", "remote", nc.RemoteAddr().String(), "panic", v, "stack", string(stack))
			},
		},
	})
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		_ = t.ns.Serve(ln) // ends with Close: nothing else closes ln
	}()
	return t, nil
}

// Addr returns the address the transport listens on, with the actual port.
func (t *Transport) Addr() string { return t.ln.Addr().String() }

// Stats returns a snapshot of the transport's counters.
func (t *Transport) Stats() Stats {
	s := &t.st
	return Stats{
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
		peers := make([]*peer, 0, len(t.peers))
		for _, p := range t.peers {
			peers = append(peers, p)
		}
		t.mu.Unlock()

		close(t.done)
		t.cancel()
		for _, p := range peers {
			p.mu.Lock()
			cc := p.cc
			p.mu.Unlock()
			if cc != nil {
				cc.fail(ErrClosed)
			}
		}
		_ = t.ns.Close() // the listener and every inbound connection, waited for
		t.wg.Wait()
	})
	return nil
}

// spawn runs f in a goroutine owned by the transport, unless the transport is closed.
func (t *Transport) spawn(f func()) bool {
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

// connError turns a read or write error on a connection into the error pending
// calls get, logging and counting bad frames.
func (t *Transport) connError(err error, peer, role string) error {
	if t.isClosed() {
		return ErrClosed
	}
	if errors.Is(err, errFrameMalformed) || errors.Is(err, ErrFrameTooBig) {
		t.st.badFrames.Add(1)
		t.log.Warn("transport: bad frame, closing connection", "peer", peer, "role", role, "err", err)
	}
	if errors.Is(err, io.EOF) {
		err = errors.New("connection closed by peer")
	}
	return fmt.Errorf("%w: %s: %w", ErrUnreachable, peer, err)
}

// writer is the coalescing frame writer shared by both roles: frames go to a
// bufio.Writer, flushed by the caller when its queue is empty, under a write
// deadline refreshed as writes make progress.
type writer struct {
	t       *Transport
	conn    net.Conn
	bw      *bufio.Writer
	hdr     []byte
	armedAt time.Time
}

func (t *Transport) newWriter(conn net.Conn) *writer {
	return &writer{t: t, conn: conn, bw: bufio.NewWriterSize(conn, bufSize)}
}

// arm (re)sets the write deadline unless it was set very recently.
func (w *writer) arm() error {
	now := time.Now()
	if now.Sub(w.armedAt) < w.t.cfg.writeTimeout/8 {
		return nil
	}
	w.armedAt = now
	return w.conn.SetWriteDeadline(now.Add(w.t.cfg.writeTimeout))
}

func (w *writer) write(f *frame) error {
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

func (w *writer) flush() error {
	if w.bw.Buffered() == 0 {
		return nil
	}
	if err := w.arm(); err != nil {
		return err
	}
	w.t.st.flushes.Add(1)
	return w.bw.Flush()
}

// nextQueued returns the next queued item and true, or false when the queue stays
// empty after the writer yielded once: requests (or replies) that goroutines about
// to run are producing then join this flush instead of costing a write each.
func nextQueued[T any](q <-chan T) (T, bool) {
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
