package transport

// Server side of the transport: accepting, authenticating and serving inbound
// connections. See the package documentation (doc.go).

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"fmt"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"github.com/dynakv/dynakv/internal/netserve"
)

// admit counts an accepted connection and takes a handshake slot for it (released
// by serveConn after the handshake), on netserve's accept goroutine.
// Unauthenticated connections cost a goroutine each for up to the handshake
// timeout; a flood of them is refused outright.
func (t *Transport) admit(conn net.Conn) bool {
	t.st.accepted.Add(1)
	select {
	case t.handshakes <- struct{}{}:
		return true
	default:
		t.st.refused.Add(1)
		t.log.Warn("transport: refused connection: too many handshakes in progress",
			"remote", conn.RemoteAddr().String(), "limit", cap(t.handshakes))
		return false
	}
}

// serveConn authenticates one inbound connection and serves its requests.
func (t *Transport) serveConn(conn net.Conn) {
	remote := conn.RemoteAddr().String() // netserve closes conn when this returns
	_ = conn.SetDeadline(time.Now().Add(t.cfg.handshakeTimeout))
	from, helloClock, err := authServe(conn, t.cfg.Secret, crand.Reader)
	// The client read its clock before it sent its hello, which we have read by
	// now: the first bound of its clock offset (clock.go).
	var clk peerClock
	clk.observe(int64(helloClock), t.cfg.Now())
	<-t.handshakes
	if err == nil {
		err = conn.SetDeadline(time.Time{})
	}
	if err != nil {
		if t.isClosed() {
			return
		}
		// Logged before it is counted: whoever sees the count sees the line.
		t.log.Warn("transport: refused connection", "remote", remote, "name", from, "err", err)
		t.st.refused.Add(1)
		return
	}

	// Handlers and the writer stop when ctx is canceled: at the end of the read
	// loop, or by Close through t.lifetime.
	ctx, cancel := context.WithCancel(t.lifetime)
	defer cancel()
	var wg sync.WaitGroup
	// sem holds one slot per request from its start until its reply is written, so
	// at most MaxInflight replies exist and sending one never blocks.
	sem := make(chan struct{}, t.cfg.MaxInflight)
	replies := make(chan frame, t.cfg.MaxInflight)
	wg.Add(1)
	go func() {
		defer wg.Done()
		t.serverWriteLoop(ctx, cancel, conn, remote, replies, sem)
	}()

	pool := newWorkers() // runs the handler calls
	br := bufio.NewReaderSize(conn, bufSize)
	for {
		f, err := readFrame(br, t.cfg.MaxFrameBytes)
		if err == nil && f.kind != frameKindRequest {
			err = fmt.Errorf("%w: reply frame from a client", errFrameMalformed)
		}
		if err != nil {
			if ctx.Err() == nil {
				_ = t.connError(err, remote, "server")
			}
			break
		}
		arrived := t.cfg.Now()
		t.st.bytesIn.Add(uint64(frameLenSize + frameBodyLen(&f)))
		// The caller's deadline in our clock: the latest it can be, given what
		// this connection told us of the caller's clock, this frame included
		// (so it is never later than arrival plus the time left).
		clk.observe(int64(f.sentMs), arrived)
		deadline := clk.latest(int64(f.sentMs+f.timeoutMs)+clockRoundMs, arrived)
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		if t.late(deadline) {
			replies <- frame{kind: frameKindLate, id: f.id} // never blocks: see sem
			continue
		}
		pool.run(func() { t.serveRequest(ctx, from, f, deadline, replies) })
	}
	cancel()
	_ = conn.Close()
	pool.stop()
	wg.Wait()
}

// late reports, and counts, a request whose deadline (in Config.Now's clock) has
// passed: it must not run.
func (t *Transport) late(deadline time.Time) bool {
	if t.cfg.Now().Before(deadline) {
		return false
	}
	t.st.expired.Add(1)
	return true
}

// serveRequest runs the handler for one request and queues its reply; a request
// whose deadline passed while it waited for a worker is refused instead.
func (t *Transport) serveRequest(ctx context.Context, from string, f frame, deadline time.Time, replies chan<- frame) {
	if t.late(deadline) {
		replies <- frame{kind: frameKindLate, id: f.id}
		return
	}
	// The context's timer runs on the real clock: give it the time left.
	ctx, cancel := context.WithTimeout(ctx, deadline.Sub(t.cfg.Now()))
	defer cancel()
	t.st.served.Add(1)
	resp, err := t.callHandler(ctx, from, f.typ, f.payload)
	r := frame{kind: frameKindResponse, id: f.id, payload: resp}
	if err == nil && frameBodyLen(&r) > t.cfg.MaxFrameBytes {
		err = fmt.Errorf("%w: reply of %d bytes, limit %d", ErrFrameTooBig, len(resp), t.cfg.MaxFrameBytes)
	}
	if err != nil {
		msg := err.Error()
		if room := t.cfg.MaxFrameBytes - frameHeaderLen(&r); len(msg) > room {
			msg = msg[:room]
		}
		r.kind, r.payload = frameKindError, []byte(msg)
	}
	replies <- r // never blocks: see sem in serveConn
}

// callHandler calls the handler, turning a panic into an error.
func (t *Transport) callHandler(ctx context.Context, from string, typ uint8, req []byte) (resp []byte, err error) {
	if t.cfg.PanicPolicy == netserve.Crash {
		return t.cfg.Handler.ServeCluster(ctx, from, typ, req)
	}
	defer func() {
		if v := recover(); v != nil {
			stack := debug.Stack()
			t.log.Error("cluster: handler panic", "from", from, "typ", typ, "panic", v, "stack", string(stack))
			resp, err = nil, fmt.Errorf("handler panic: %v", v)
		}
	}()
	return t.cfg.Handler.ServeCluster(ctx, from, typ, req)
}

// serverWriteLoop writes replies, flushing when none is waiting; it frees a handler
// slot per reply written. A write error closes the connection.
func (t *Transport) serverWriteLoop(ctx context.Context, cancel context.CancelFunc, conn net.Conn,
	remote string, replies <-chan frame, sem <-chan struct{}) {
	w := t.newWriter(conn)
	for {
		var r frame
		select {
		case r = <-replies:
		case <-ctx.Done():
			return
		}
		for more := true; more; {
			err := w.write(&r)
			<-sem
			if err != nil {
				t.serverWriteFailed(ctx, cancel, conn, remote, err)
				return
			}
			r, more = nextQueued(replies)
		}
		if err := w.flush(); err != nil {
			t.serverWriteFailed(ctx, cancel, conn, remote, err)
			return
		}
	}
}

func (t *Transport) serverWriteFailed(ctx context.Context, cancel context.CancelFunc, conn net.Conn, remote string, err error) {
	if ctx.Err() == nil {
		t.log.Debug("transport: writing replies failed, closing connection", "remote", remote, "err", err)
	}
	cancel()
	_ = conn.Close()
}
