package transport

// Client side of the transport: Call, per-peer state, dialing with backoff, and the
// reader and writer of an outbound connection. See the package documentation (doc.go).
//
// The peer table holds one entry per address called, until the caller forgets it
// (Forget: node/ does when no member uses the address any more, e.g. after a
// removal); forgetting closes the peer's connection, and a dial still running for
// the forgotten entry closes what it made, so no connection outlives its entry.

import (
	"bufio"
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Call sends request req of type typ to the peer listening on addr and returns its
// reply. It returns when the reply arrives, when ctx is done (with an error wrapping
// ctx.Err()), or when the transport fails to deliver: ErrQueueFull, ErrFrameTooBig,
// ErrUnreachable, ErrAuth or ErrClosed (wrapped, test with errors.Is). A handler
// error comes back as a *RemoteError, a late refusal (the peer did not run the
// request: its deadline had passed) as an error wrapping ErrLate and
// context.DeadlineExceeded. Without a ctx deadline the call times out after
// DefaultTimeout. req is copied; the caller may reuse it once Call returns.
func (t *Transport) Call(ctx context.Context, addr string, typ uint8, req []byte) (resp []byte, err error) {
	t.st.calls.Add(1)
	defer func() {
		if err != nil {
			t.st.failures.Add(1)
		}
	}()
	if t.isClosed() {
		return nil, ErrClosed
	}
	if len(req) > t.cfg.MaxFrameBytes-maxRequestHeader {
		return nil, fmt.Errorf("%w: %w: request of %d bytes to %s, limit %d with header",
			ErrNotSent, ErrFrameTooBig, len(req), addr, t.cfg.MaxFrameBytes)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.cfg.DefaultTimeout)
		defer cancel()
		deadline, _ = ctx.Deadline()
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("transport: call %s: %w", addr, err)
	}
	p := t.peerFor(addr)
	if p == nil {
		return nil, ErrClosed
	}
	if p.outstanding.Add(1) > int64(t.cfg.MaxQueue) {
		p.outstanding.Add(-1)
		t.st.queueFull.Add(1)
		return nil, fmt.Errorf("%w: %w: %s has %d calls outstanding", ErrNotSent, ErrQueueFull, addr, t.cfg.MaxQueue)
	}
	defer p.outstanding.Add(-1)

	for attempt := 0; ; attempt++ {
		cc, err := p.getConn(ctx)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNotSent, err)
		}
		c := &call{typ: typ, deadline: deadline, payload: bytes.Clone(req), result: make(chan outcome, 1)}
		if err := cc.enqueue(c); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNotSent, err)
		}
		resp, err := t.await(ctx, cc, c, addr, deadline)
		if errors.Is(err, ErrLate) && attempt == 0 && time.Now().Before(deadline) {
			// Refused as late while we still wait for it: the peer's bound of
			// our clock is wrong (our monotonic clock stood still during a
			// system suspend, or the clocks drifted apart faster than allowed),
			// and would refuse every request on this connection. The request
			// did not run: send it again on a fresh connection, whose
			// handshake gives the peer a fresh bound.
			t.log.Warn("transport: peer refused a request in time as late; reconnecting", "peer", addr)
			cc.retire(fmt.Errorf("%w: %s: retired after a late refusal in time", ErrUnreachable, addr))
			continue
		}
		return resp, err
	}
}

// await waits for c's outcome on cc. A late refusal comes back as an error
// wrapping ErrLate and context.DeadlineExceeded.
func (t *Transport) await(ctx context.Context, cc *clientConn, c *call, addr string, deadline time.Time) ([]byte, error) {
	select {
	case r := <-c.result:
		if errors.Is(r.err, ErrLate) {
			return nil, fmt.Errorf("transport: call %s: %w (%w)", addr, ErrLate, context.DeadlineExceeded)
		}
		if r.err != nil && (ctx.Err() != nil || !time.Now().Before(deadline)) {
			// Out of time anyway (typically the handler's context expired a
			// moment before ours): report the deadline, not the remote's echo
			// of it.
			cerr := ctx.Err()
			if cerr == nil {
				cerr = context.DeadlineExceeded
			}
			return nil, fmt.Errorf("transport: call %s: %w", addr, cerr)
		}
		return r.payload, r.err
	case <-ctx.Done():
		cc.abandon(c)
		cc.checkStale()
		return nil, fmt.Errorf("transport: call %s: %w", addr, ctx.Err())
	case <-t.done:
		cc.abandon(c)
		return nil, ErrClosed
	}
}

// peerFor returns the peer state for addr, creating it; nil once closed.
func (t *Transport) peerFor(addr string) *peer {
	t.mu.RLock()
	p, closed := t.peers[addr], t.closed
	t.mu.RUnlock()
	if p != nil || closed {
		return p
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	if p = t.peers[addr]; p == nil {
		p = &peer{t: t, addr: addr, rng: rand.New(rand.NewPCG(t.rng.Uint64(), t.rng.Uint64()))}
		t.peers[addr] = p
	}
	return p
}

// errForgotten fails the calls to a peer the caller forgot (Forget).
var errForgotten = errors.New("peer forgotten")

// Forget drops the client-side state of the peer at addr: its entry in the peer
// table and its connection, closed at once (calls awaiting a reply from it fail
// with an error wrapping ErrUnreachable). The caller uses it when addr stops
// being a member's address (the member was removed, or moved), so that the table
// holds only peers the node may call. A later Call to addr starts afresh. It
// reports whether there was an entry.
func (t *Transport) Forget(addr string) bool {
	t.mu.Lock()
	p := t.peers[addr]
	delete(t.peers, addr)
	t.mu.Unlock()
	if p == nil {
		return false
	}
	p.mu.Lock()
	p.forgotten = true // a dial still running closes what it made
	cc := p.cc
	p.mu.Unlock()
	if cc != nil {
		cc.fail(fmt.Errorf("%w: %s: %w", ErrUnreachable, addr, errForgotten))
	}
	return true
}

// PeerAddrs returns the addresses the peer table holds (every address called
// since it was last forgotten), sorted.
func (t *Transport) PeerAddrs() []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]string, 0, len(t.peers))
	for addr := range t.peers {
		out = append(out, addr)
	}
	slices.Sort(out)
	return out
}

// peer is the client-side state for one peer address.
type peer struct {
	t           *Transport
	addr        string
	outstanding atomic.Int64 // calls admitted and not returned; <= MaxQueue

	mu        sync.Mutex
	cc        *clientConn   // the live connection, nil if none
	dialing   chan struct{} // non-nil while a dial runs; closed when it ends
	lastErr   error         // why the last dial failed
	retryAt   time.Time     // no dial before this
	backoff   time.Duration // base of the next backoff; 0 means BackoffMin
	connected bool          // a connection was established before
	forgotten bool          // dropped from the peer table (Forget): no new connection
	rng       *rand.Rand
}

// getConn returns the peer's live connection, dialing (or waiting for a dial) when
// there is none. During a backoff it fails at once with the last dial's error.
func (p *peer) getConn(ctx context.Context) (*clientConn, error) {
	for {
		p.mu.Lock()
		if cc := p.cc; cc != nil {
			p.mu.Unlock()
			return cc, nil
		}
		if p.forgotten {
			p.mu.Unlock()
			return nil, fmt.Errorf("%w: %s: %w", ErrUnreachable, p.addr, errForgotten)
		}
		if ch := p.dialing; ch != nil {
			p.mu.Unlock()
			select {
			case <-ch:
				p.mu.Lock()
				cc, err := p.cc, p.lastErr
				p.mu.Unlock()
				if cc != nil {
					return cc, nil
				}
				if err != nil {
					return nil, err
				}
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("transport: call %s: %w", p.addr, ctx.Err())
			case <-p.t.done:
				return nil, ErrClosed
			}
		}
		if wait := time.Until(p.retryAt); wait > 0 {
			err := p.lastErr
			p.mu.Unlock()
			return nil, fmt.Errorf("%w (next dial in %v)", err, wait.Round(time.Millisecond))
		}
		ch := make(chan struct{})
		p.dialing = ch
		p.lastErr = nil
		p.mu.Unlock()
		if !p.t.spawn(func() { p.dial(ch) }) {
			p.mu.Lock()
			p.dialing = nil
			close(ch)
			p.mu.Unlock()
			return nil, ErrClosed
		}
	}
}

// dial connects and authenticates to the peer, then installs the connection. It
// runs in a transport goroutine; ch is closed when it is done.
func (p *peer) dial(ch chan struct{}) {
	t := p.t
	t.st.dials.Add(1)
	cc, err := p.connect()
	if err == nil {
		if err = p.install(cc, ch); err == nil {
			return
		}
		_ = cc.conn.Close()
	}
	p.mu.Lock()
	if errors.Is(err, ErrClosed) {
		p.lastErr = ErrClosed
	} else {
		p.noteFailureLocked(err)
		t.log.Debug("transport: dial failed", "peer", p.addr, "err", err)
	}
	p.dialing = nil
	close(ch)
	p.mu.Unlock()
}

// install publishes cc as the peer's connection, ends the dial (closes ch) and
// starts cc's reader and writer, unless the transport closed or the peer was
// forgotten meanwhile.
func (p *peer) install(cc *clientConn, ch chan struct{}) error {
	t := p.t
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		return ErrClosed
	}
	p.mu.Lock()
	if p.forgotten {
		p.mu.Unlock()
		return fmt.Errorf("%w: %s: %w", ErrUnreachable, p.addr, errForgotten)
	}
	if p.connected {
		t.st.reconnects.Add(1)
		t.log.Info("transport: reconnected to peer", "peer", p.addr)
	}
	p.cc, p.connected, p.backoff, p.retryAt = cc, true, 0, time.Time{}
	p.dialing = nil
	close(ch)
	p.mu.Unlock()
	t.wg.Add(2)
	go func() {
		defer t.wg.Done()
		cc.readLoop()
	}()
	go func() {
		defer t.wg.Done()
		cc.writeLoop()
	}()
	return nil
}

// noteFailureLocked records a failed dial (or a connection that never worked) and
// schedules the next allowed dial. p.mu is held.
func (p *peer) noteFailureLocked(err error) {
	cfg := &p.t.cfg
	b := max(p.backoff, cfg.BackoffMin)
	wait := b/2 + time.Duration(p.rng.Int64N(int64(b/2)+1))
	p.retryAt = time.Now().Add(wait)
	p.backoff = min(2*b, cfg.BackoffMax)
	p.lastErr = err
}

// connect dials and runs the client handshake. Errors wrap ErrAuth, ErrUnreachable
// or ErrClosed.
func (p *peer) connect() (*clientConn, error) {
	t := p.t
	ctx, cancel := context.WithTimeout(t.lifetime, t.cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		if t.isClosed() {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrUnreachable, p.addr, err)
	}
	_ = conn.SetDeadline(time.Now().Add(t.cfg.handshakeTimeout))
	stop := context.AfterFunc(t.lifetime, func() { _ = conn.Close() })
	if t.cfg.ClientTLS != nil {
		conn, err = p.tlsHandshake(conn)
	}
	var sent time.Time
	if err == nil {
		sent, err = authDial(conn, t.cfg.Secret, t.cfg.Name, crand.Reader, t.cfg.Now)
	}
	stopped := stop()
	if err == nil && stopped {
		err = conn.SetDeadline(time.Time{})
	}
	switch {
	case err == nil && !stopped:
		err = ErrClosed
	case err == nil:
	case t.isClosed():
		err = ErrClosed
	case errors.Is(err, ErrAuth), tlsRefused(err):
		t.log.Warn("transport: peer refused or failed authentication", "peer", p.addr, "err", err)
		if !errors.Is(err, ErrAuth) {
			err = fmt.Errorf("%w: TLS: %w", ErrAuth, err)
		}
		err = fmt.Errorf("transport: %s: %w", p.addr, err)
	default:
		err = fmt.Errorf("%w: %s: handshake: %w", ErrUnreachable, p.addr, err)
	}
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	cc := &clientConn{
		p:       p,
		conn:    conn,
		clock:   newConnClock(sent),
		sendq:   make(chan *call, t.cfg.MaxQueue),
		done:    make(chan struct{}),
		pending: make(map[uint64]*call),
	}
	return cc, nil
}

// tlsHandshake runs the client side of TLS on conn (its deadline set). A peer
// that does not speak TLS, sends an alert or presents a certificate that does not
// verify is an ErrAuth; the returned conn is the TLS one even on error, for Close.
func (p *peer) tlsHandshake(conn net.Conn) (net.Conn, error) {
	cfg := p.t.cfg.ClientTLS.Clone()
	if cfg.ServerName == "" {
		if host, _, err := net.SplitHostPort(p.addr); err == nil {
			cfg.ServerName = host
		}
	}
	tc := tls.Client(conn, cfg)
	err := tc.Handshake()
	if tlsRefused(err) {
		err = fmt.Errorf("%w: TLS: %w", ErrAuth, err)
	}
	return tc, err
}

// tlsRefused reports a TLS failure that retrying will not fix: the peer does not
// speak TLS, sent an alert (with TLS 1.3, a server refusing the client's
// certificate says so on the first read after the handshake), or presented a
// certificate that does not verify.
func tlsRefused(err error) bool {
	if err == nil {
		return false
	}
	var (
		rec   tls.RecordHeaderError
		alert tls.AlertError
		cert  *tls.CertificateVerificationError
		unk   x509.UnknownAuthorityError
		host  x509.HostnameError
	)
	return errors.As(err, &rec) || errors.As(err, &alert) || errors.As(err, &cert) ||
		errors.As(err, &unk) || errors.As(err, &host)
}

// call is one outstanding Call.
type call struct {
	id        uint64
	typ       uint8
	deadline  time.Time
	payload   []byte // private copy; the writer drops it once written
	abandoned atomic.Bool
	// written is set by the writer before any byte of the request can leave:
	// a call failed with its connection while it is unset was never sent.
	written atomic.Bool
	result  chan outcome // buffered 1; receives exactly one result if any
}

type outcome struct {
	payload []byte
	err     error
}

// clientConn is one authenticated connection to a peer, with its writer and
// reader goroutines.
type clientConn struct {
	p        *peer
	conn     net.Conn
	clock    connClock  // what request frames tell the peer of our clock
	sendq    chan *call // calls to write, in order
	done     chan struct{}
	failOnce sync.Once
	replied  atomic.Bool // a reply arrived: the connection worked
	// retiredWhy is set by retire: no new call uses the connection, and it
	// closes with this error once no call waits on it.
	retiredWhy atomic.Pointer[error]
	// unanswered is the time (unix ns) of the first request written since the
	// last frame was read, 0 if none: how long the peer has been silent while
	// owing replies.
	unanswered atomic.Int64

	mu      sync.Mutex
	err     error            // set once the connection failed
	pending map[uint64]*call // calls written or queued, by id
	nextID  uint64
}

// enqueue registers c and queues it for the writer.
func (cc *clientConn) enqueue(c *call) error {
	cc.mu.Lock()
	if cc.err != nil {
		err := cc.err
		cc.mu.Unlock()
		return err
	}
	cc.nextID++
	c.id = cc.nextID
	cc.pending[c.id] = c
	cc.mu.Unlock()
	select {
	case cc.sendq <- c:
		return nil
	default:
		// Abandoned calls still in the queue fill it; refuse rather than block.
		cc.abandon(c)
		cc.p.t.st.queueFull.Add(1)
		return fmt.Errorf("%w: %s send queue is full", ErrQueueFull, cc.p.addr)
	}
}

// checkStale drops the connection when a call timed out and the peer has sent
// nothing at all for staleFactor write timeouts while it owed replies: it is
// likely stopped or gone without a reset (SIGSTOP, power loss), and TCP alone
// would take minutes to notice. The next call redials and, if the peer is really
// gone, fails fast. An idle connection is never stale.
func (cc *clientConn) checkStale() {
	since := cc.unanswered.Load()
	if since == 0 {
		return
	}
	silent := time.Since(time.Unix(0, since))
	if silent > staleFactor*cc.p.t.cfg.writeTimeout {
		cc.fail(fmt.Errorf("%w: %s: no reply for %v", ErrUnreachable, cc.p.addr, silent.Round(time.Millisecond)))
	}
}

// abandon forgets c after its caller gave up: it is not written if still queued,
// and a late reply is discarded.
func (cc *clientConn) abandon(c *call) {
	c.abandoned.Store(true)
	cc.mu.Lock()
	delete(cc.pending, c.id)
	cc.mu.Unlock()
	cc.closeIfRetired()
}

// retire stops new calls from using cc (the next one dials a fresh connection)
// and closes it, with why, once the calls already on it are answered or abandoned.
func (cc *clientConn) retire(why error) {
	p := cc.p
	p.mu.Lock()
	if p.cc == cc {
		p.cc = nil
	}
	p.mu.Unlock()
	cc.retiredWhy.CompareAndSwap(nil, &why)
	cc.closeIfRetired()
}

// closeIfRetired closes a retired connection that no call waits on any more.
func (cc *clientConn) closeIfRetired() {
	why := cc.retiredWhy.Load()
	if why == nil {
		return
	}
	cc.mu.Lock()
	idle := len(cc.pending) == 0
	cc.mu.Unlock()
	if idle {
		cc.fail(*why)
	}
}

// fail closes the connection once and fails every pending call with err.
func (cc *clientConn) fail(err error) {
	cc.failOnce.Do(func() {
		cc.mu.Lock()
		cc.err = err
		pending := cc.pending
		cc.pending = nil
		cc.mu.Unlock()
		close(cc.done)
		// Unpublish before failing the calls, so a caller that sees its call
		// fail and retries gets a new connection.
		p := cc.p
		p.mu.Lock()
		if p.cc == cc {
			p.cc = nil
			if !cc.replied.Load() && !errors.Is(err, ErrClosed) {
				// It never worked (e.g. the peer drops us right after the
				// handshake): back off as after a failed dial.
				p.noteFailureLocked(err)
			}
		}
		p.mu.Unlock()
		// Closed before the written marks are read: a writer that sets one after
		// this can no longer send a byte, so a call seen unwritten certainly did
		// not reach the peer (ErrNotSent, which lets a front node run a forwarded
		// op itself), and only the others have an unknown outcome.
		_ = cc.conn.Close()
		for _, c := range pending {
			cerr := err
			if !c.written.Load() && !errors.Is(err, ErrClosed) {
				cerr = fmt.Errorf("%w: %w", ErrNotSent, err)
			}
			c.result <- outcome{err: cerr}
		}
		if !errors.Is(err, ErrClosed) {
			p.t.log.Debug("transport: connection to peer lost", "peer", p.addr, "err", err, "pending", len(pending))
		}
	})
}

// readLoop completes pending calls with the replies read from the connection.
func (cc *clientConn) readLoop() {
	t := cc.p.t
	br := bufio.NewReaderSize(cc.conn, bufSize)
	for {
		f, err := readFrame(br, t.cfg.MaxFrameBytes)
		if err == nil && f.kind == frameKindRequest {
			err = fmt.Errorf("%w: request frame from a server", errFrameMalformed)
		}
		if err != nil {
			cc.fail(t.connError(err, cc.p.addr, "client"))
			return
		}
		t.st.bytesIn.Add(uint64(frameLenSize + frameBodyLen(&f)))
		cc.unanswered.Store(0)
		cc.replied.Store(true)
		cc.mu.Lock()
		c := cc.pending[f.id]
		delete(cc.pending, f.id)
		cc.mu.Unlock()
		if c == nil {
			continue // the caller gave up
		}
		switch f.kind {
		case frameKindError:
			c.result <- outcome{err: &RemoteError{Msg: string(f.payload)}}
		case frameKindLate:
			c.result <- outcome{err: ErrLate}
		default:
			c.result <- outcome{payload: f.payload}
		}
		cc.closeIfRetired()
	}
}

// writeLoop writes queued calls, flushing when the queue is momentarily empty.
func (cc *clientConn) writeLoop() {
	t := cc.p.t
	w := t.newWriter(cc.conn)
	for {
		var c *call
		select {
		case c = <-cc.sendq:
		case <-cc.done:
			return
		}
		for c != nil {
			if err := cc.writeCall(w, c); err != nil {
				cc.fail(t.connError(err, cc.p.addr, "client"))
				return
			}
			c, _ = nextQueued(cc.sendq)
		}
		if err := w.flush(); err != nil {
			cc.fail(t.connError(err, cc.p.addr, "client"))
			return
		}
	}
}

// writeCall writes one request unless its caller gave up or its deadline passed.
func (cc *clientConn) writeCall(w *writer, c *call) error {
	payload := c.payload
	c.payload = nil
	if c.abandoned.Load() {
		return nil
	}
	left := time.Until(c.deadline)
	if left <= 0 {
		return nil // the caller's context fires on its own
	}
	ms := (left + time.Millisecond - 1) / time.Millisecond
	f := frame{kind: frameKindRequest, id: c.id, typ: c.typ,
		timeoutMs: uint64(min(int64(ms), frameMaxTimeoutMs)),
		sentMs:    uint64(cc.clock.ms(cc.p.t.cfg.Now())), payload: payload}
	c.written.Store(true)
	if err := w.write(&f); err != nil {
		return err
	}
	cc.unanswered.CompareAndSwap(0, time.Now().UnixNano())
	return nil
}
