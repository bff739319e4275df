package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lni/goutils/leaktest"
)

// trtLog records log records so tests can check warnings.
type trtLog struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *trtLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *trtLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *trtLog) WithGroup(string) slog.Handler            { return h }
func (h *trtLog) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}

// warned reports whether a warning containing msg was logged with an attribute key.
func (h *trtLog) warned(msg, key string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.recs {
		if r.Level != slog.LevelWarn || !strings.Contains(r.Message, msg) {
			continue
		}
		found := false
		r.Attrs(func(a slog.Attr) bool {
			found = found || a.Key == key
			return !found
		})
		if found {
			return true
		}
	}
	return false
}

func trtEcho(_ context.Context, _ string, typ uint8, req []byte) ([]byte, error) {
	return append([]byte{typ}, req...), nil
}

// trtConfig is a fast-failing test config for node name, serving h.
func trtConfig(name string, h HandlerFunc) Config {
	if h == nil {
		h = trtEcho
	}
	return Config{
		Name:             name,
		ListenAddr:       "127.0.0.1:0",
		Secret:           []byte("test-secret"),
		Handler:          h,
		BackoffMin:       10 * time.Millisecond,
		BackoffMax:       50 * time.Millisecond,
		Logger:           slog.New(&trtLog{}),
		handshakeTimeout: 500 * time.Millisecond,
		writeTimeout:     500 * time.Millisecond,
	}
}

func trtStart(t *testing.T, cfg Config) *Transport {
	t.Helper()
	tr, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.Name, err)
	}
	return tr
}

// trtEventually polls cond until it holds or the timeout passes.
func trtEventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

func trtCtx(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func TestEcho(t *testing.T) {
	defer leaktest.AfterTest(t)()
	var from atomic.Value
	srv := trtStart(t, trtConfig("srv", func(ctx context.Context, f string, typ uint8, req []byte) ([]byte, error) {
		from.Store(f)
		return trtEcho(ctx, f, typ, req)
	}))
	defer srv.Close()
	cli := trtStart(t, trtConfig("cli", nil))
	defer cli.Close()

	for _, tc := range []struct {
		name string
		typ  uint8
		req  []byte
	}{
		{"nil", 0, nil},
		{"small", 1, []byte("hello")},
		{"type 255", 255, []byte{0, 1, 2}},
		{"bigger than the buffers", 9, bytes.Repeat([]byte("0123456789"), 100_000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := trtCtx(5 * time.Second)
			defer cancel()
			resp, err := cli.Call(ctx, srv.Addr(), tc.typ, tc.req)
			if err != nil {
				t.Fatalf("Call: %v", err)
			}
			if want := append([]byte{tc.typ}, tc.req...); !bytes.Equal(resp, want) {
				t.Fatalf("reply of %d bytes differs from the %d expected", len(resp), len(want))
			}
			if got := from.Load(); got != "cli" {
				t.Fatalf("handler saw from = %v, want cli", got)
			}
		})
	}
	st := cli.Stats()
	if st.Calls != 4 || st.Failures != 0 || st.Dials != 1 || st.BytesOut == 0 || st.BytesIn == 0 {
		t.Fatalf("client stats %+v", st)
	}
	if st := srv.Stats(); st.Served != 4 || st.Accepted != 1 {
		t.Fatalf("server stats %+v", st)
	}
}

// Many concurrent calls share one connection and are coalesced into few writes.
func TestPipelining(t *testing.T) {
	defer leaktest.AfterTest(t)()
	srv := trtStart(t, trtConfig("srv", nil))
	defer srv.Close()
	cli := trtStart(t, trtConfig("cli", nil))
	defer cli.Close()

	const calls = 1000
	ctx, cancel := trtCtx(20 * time.Second)
	defer cancel()
	start := make(chan struct{})
	errs := make(chan error, calls)
	var wg sync.WaitGroup
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req := fmt.Appendf(nil, "request %d", i)
			resp, err := cli.Call(ctx, srv.Addr(), uint8(i), req)
			if err == nil && !bytes.Equal(resp, append([]byte{uint8(i)}, req...)) {
				err = fmt.Errorf("call %d: got reply %q", i, resp)
			}
			errs <- err
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st := cli.Stats()
	t.Logf("client: %d frames in %d flushes; server: %d frames in %d flushes",
		st.FramesOut, st.Flushes, srv.Stats().FramesOut, srv.Stats().Flushes)
	if st.Dials != 1 {
		t.Fatalf("%d dials, want one shared connection", st.Dials)
	}
	if st.FramesOut != calls || st.Flushes >= st.FramesOut {
		t.Fatalf("%d frames in %d flushes: nothing was coalesced", st.FramesOut, st.Flushes)
	}
}

func TestRemoteError(t *testing.T) {
	defer leaktest.AfterTest(t)()
	srv := trtStart(t, trtConfig("srv", func(_ context.Context, _ string, typ uint8, req []byte) ([]byte, error) {
		switch typ {
		case 1:
			return nil, fmt.Errorf("no such key %q", req)
		case 2:
			panic("handler bug")
		}
		return req, nil
	}))
	defer srv.Close()
	cli := trtStart(t, trtConfig("cli", nil))
	defer cli.Close()
	for _, tc := range []struct {
		typ  uint8
		want string
	}{
		{1, `no such key "k"`},
		{2, "handler panic: handler bug"},
	} {
		ctx, cancel := trtCtx(5 * time.Second)
		_, err := cli.Call(ctx, srv.Addr(), tc.typ, []byte("k"))
		cancel()
		var re *RemoteError
		if !errors.As(err, &re) || re.Msg != tc.want {
			t.Fatalf("typ %d: error %v, want RemoteError %q", tc.typ, err, tc.want)
		}
		if err.Error() != "transport: remote: "+tc.want {
			t.Fatalf("Error() = %q", err.Error())
		}
	}
	// The connection survives handler errors and panics.
	ctx, cancel := trtCtx(5 * time.Second)
	defer cancel()
	if resp, err := cli.Call(ctx, srv.Addr(), 3, []byte("ok")); err != nil || string(resp) != "ok" {
		t.Fatalf("Call after errors: %q, %v", resp, err)
	}
	if d := cli.Stats().Dials; d != 1 {
		t.Fatalf("%d dials, want 1", d)
	}
}

// Peers with different secrets refuse each other, in both directions.
func TestAuthWrongSecret(t *testing.T) {
	defer leaktest.AfterTest(t)()
	for _, tc := range []struct {
		name   string
		a, b   []byte
		accept bool
	}{
		{"same", []byte("x"), []byte("x"), true},
		{"both empty", nil, nil, true},
		{"different", []byte("x"), []byte("y"), false},
		{"one empty", nil, []byte("y"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logA, logB := &trtLog{}, &trtLog{}
			cfgA, cfgB := trtConfig("a", nil), trtConfig("b", nil)
			cfgA.Secret, cfgB.Secret = tc.a, tc.b
			cfgA.Logger, cfgB.Logger = slog.New(logA), slog.New(logB)
			a, b := trtStart(t, cfgA), trtStart(t, cfgB)
			defer a.Close()
			defer b.Close()
			for _, dir := range []struct {
				from, to *Transport
				toLog    *trtLog
			}{{a, b, logB}, {b, a, logA}} {
				ctx, cancel := trtCtx(5 * time.Second)
				_, err := dir.from.Call(ctx, dir.to.Addr(), 1, []byte("hi"))
				cancel()
				if tc.accept {
					if err != nil {
						t.Fatalf("Call: %v", err)
					}
					continue
				}
				if !errors.Is(err, ErrAuth) {
					t.Fatalf("Call with a wrong secret: %v, want ErrAuth", err)
				}
				trtEventually(t, 5*time.Second, "the refusal to be counted", func() bool {
					return dir.to.Stats().RefusedHandshakes == 1
				})
				if !dir.toLog.warned("refused connection", "remote") {
					t.Fatalf("no warning with the remote address was logged")
				}
				if s := dir.to.Stats().Served; s != 0 {
					t.Fatalf("server ran %d requests from a refused peer", s)
				}
			}
		})
	}
}

// A client that is not a dynakv node, sends garbage or stays silent is refused
// and disconnected; the server keeps serving.
func TestAuthRawConnections(t *testing.T) {
	defer leaktest.AfterTest(t)()
	srv := trtStart(t, trtConfig("srv", nil))
	defer srv.Close()
	for i, tc := range []struct {
		name string
		send []byte
	}{
		{"silent", nil},
		{"http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"wrong version", []byte{authVersion + 1, 1, 'x'}},
		{"truncated hello", authTestClientHello([]byte("test-secret"), 0, 0, "n")[:20]},
		{"frames without handshake", appendFrame(nil, &frame{kind: frameKindRequest, id: 1, typ: 1, timeoutMs: 10})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			// The server hello arrives, then the connection is closed (possibly
			// after a refusal byte); it must not stay open.
			got, err := io.ReadAll(conn)
			if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
				t.Fatalf("reading until close: %v (got %d bytes)", err, len(got))
			}
			if len(got) < authServerHelloLen || string(got[:4]) != authMagic {
				t.Fatalf("server sent %q, want its hello", got)
			}
			trtEventually(t, 5*time.Second, "the refusal to be counted", func() bool {
				return srv.Stats().RefusedHandshakes == uint64(i+1)
			})
		})
	}
	cli := trtStart(t, trtConfig("cli", nil))
	defer cli.Close()
	ctx, cancel := trtCtx(5 * time.Second)
	defer cancel()
	if _, err := cli.Call(ctx, srv.Addr(), 1, []byte("still up")); err != nil {
		t.Fatalf("Call after raw connections: %v", err)
	}
}

func trtTotalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// trtFakeServer accepts connections on a fresh port and runs serve on each, in
// goroutines the returned stop function waits for; quit is closed by stop.
func trtFakeServer(t *testing.T, serve func(c net.Conn, quit <-chan struct{})) (addr string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	quit := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				serve(c, quit)
			}()
		}
	}()
	return ln.Addr().String(), func() {
		close(quit)
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
}

// A server that does not know the secret but accepts anyone is caught by the
// client's check of the server proof.
func TestAuthFakeServer(t *testing.T) {
	defer leaktest.AfterTest(t)()
	addr, stop := trtFakeServer(t, func(c net.Conn, _ <-chan struct{}) {
		hello := appendServerHello(nil, &authServerHello{version: authVersion})
		_, _ = c.Write(hello)
		if _, err := readClientHello(c); err != nil {
			return
		}
		_, _ = c.Write(append([]byte{authStatusOK}, make([]byte, authMACLen)...))
		_, _ = io.Copy(io.Discard, c)
	})
	defer stop()
	cli := trtStart(t, trtConfig("cli", nil))
	defer cli.Close()
	ctx, cancel := trtCtx(5 * time.Second)
	defer cancel()
	if _, err := cli.Call(ctx, addr, 1, nil); !errors.Is(err, ErrAuth) {
		t.Fatalf("Call to an impostor: %v, want ErrAuth", err)
	}
}

func TestDeadline(t *testing.T) {
	defer leaktest.AfterTest(t)()
	type seen struct {
		deadline time.Time
		ok       bool
		err      error
	}
	seenC := make(chan seen, 10)
	srv := trtStart(t, trtConfig("srv", func(ctx context.Context, _ string, typ uint8, _ []byte) ([]byte, error) {
		d, ok := ctx.Deadline()
		if typ == 1 { // slow: wait for the deadline
			<-ctx.Done()
		}
		seenC <- seen{d, ok, ctx.Err()}
		return nil, ctx.Err()
	}))
	defer srv.Close()
	cfg := trtConfig("cli", nil)
	cfg.DefaultTimeout = 700 * time.Millisecond
	cli := trtStart(t, cfg)
	defer cli.Close()

	t.Run("propagated", func(t *testing.T) {
		for _, timeout := range []time.Duration{0, 300 * time.Millisecond, 3 * time.Second} {
			ctx := context.Background()
			want := time.Now().Add(cfg.DefaultTimeout)
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
				want, _ = ctx.Deadline()
			}
			if _, err := cli.Call(ctx, srv.Addr(), 0, nil); err != nil {
				t.Fatalf("timeout %v: Call: %v", timeout, err)
			}
			s := <-seenC
			if !s.ok {
				t.Fatalf("timeout %v: handler context has no deadline", timeout)
			}
			// The server's deadline is the caller's rounded up to a millisecond,
			// counted from the frame's arrival: never earlier, barely later.
			if diff := s.deadline.Sub(want); diff < -5*time.Millisecond || diff > 100*time.Millisecond {
				t.Fatalf("timeout %v: handler deadline is %v off the caller's", timeout, diff)
			}
		}
	})
	t.Run("slow handler", func(t *testing.T) {
		ctx, cancel := trtCtx(150 * time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := cli.Call(ctx, srv.Addr(), 1, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Call: %v, want context.DeadlineExceeded", err)
		}
		if took := time.Since(start); took > 1*time.Second {
			t.Fatalf("Call took %v with a 150ms deadline", took)
		}
		if s := <-seenC; !errors.Is(s.err, context.DeadlineExceeded) {
			t.Fatalf("handler context ended with %v, want its deadline", s.err)
		}
	})
	t.Run("expired before sending", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := cli.Call(ctx, srv.Addr(), 0, nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("Call with a canceled context: %v", err)
		}
	})
	// The late reply to the slow call was discarded; the connection still works.
	ctx, cancel := trtCtx(5 * time.Second)
	defer cancel()
	if _, err := cli.Call(ctx, srv.Addr(), 0, nil); err != nil {
		t.Fatalf("Call after a timeout: %v", err)
	}
	<-seenC
	if d := cli.Stats().Dials; d != 1 {
		t.Fatalf("%d dials, want 1", d)
	}
}

// trtBlocker is a handler that parks every request until released or canceled.
type trtBlocker struct {
	started chan struct{}
	release chan struct{}
}

func newTrtBlocker() *trtBlocker {
	return &trtBlocker{started: make(chan struct{}, 1000), release: make(chan struct{})}
}

func (b *trtBlocker) serve(ctx context.Context, _ string, _ uint8, req []byte) ([]byte, error) {
	b.started <- struct{}{}
	select {
	case <-b.release:
		return req, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (b *trtBlocker) waitStarted(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for range n {
		select {
		case <-b.started:
		case <-timeout:
			t.Fatalf("fewer than %d handlers started", n)
		}
	}
}

func TestQueueFull(t *testing.T) {
	defer leaktest.AfterTest(t)()
	bl := newTrtBlocker()
	srv := trtStart(t, trtConfig("srv", bl.serve))
	defer srv.Close()
	cfg := trtConfig("cli", nil)
	cfg.MaxQueue = 8
	cli := trtStart(t, cfg)
	defer cli.Close()

	ctx, cancel := trtCtx(20 * time.Second)
	defer cancel()
	errs := make(chan error, cfg.MaxQueue)
	for i := range cfg.MaxQueue {
		go func() {
			_, err := cli.Call(ctx, srv.Addr(), 1, []byte{byte(i)})
			errs <- err
		}()
	}
	bl.waitStarted(t, cfg.MaxQueue)
	start := time.Now()
	_, err := cli.Call(ctx, srv.Addr(), 1, nil)
	if !errors.Is(err, ErrQueueFull) {
		t.Fatalf("call beyond MaxQueue: %v, want ErrQueueFull", err)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("ErrQueueFull took %v, want fail-fast", took)
	}
	// Other peers are not affected by one peer's full queue.
	other := trtStart(t, trtConfig("other", nil))
	defer other.Close()
	if _, err := cli.Call(ctx, other.Addr(), 1, nil); err != nil {
		t.Fatalf("call to another peer: %v", err)
	}
	close(bl.release)
	for range cfg.MaxQueue {
		if err := <-errs; err != nil {
			t.Fatalf("queued call: %v", err)
		}
	}
	if st := cli.Stats(); st.QueueFull != 1 {
		t.Fatalf("QueueFull = %d, want 1", st.QueueFull)
	}
	// The queue drained: calls are admitted again.
	if _, err := cli.Call(ctx, srv.Addr(), 1, nil); err != nil {
		t.Fatalf("call after draining: %v", err)
	}
}

// MaxInflight bounds concurrent handlers per connection; the rest wait unread.
func TestMaxInflight(t *testing.T) {
	defer leaktest.AfterTest(t)()
	bl := newTrtBlocker()
	scfg := trtConfig("srv", bl.serve)
	scfg.MaxInflight = 3
	srv := trtStart(t, scfg)
	defer srv.Close()
	cli := trtStart(t, trtConfig("cli", nil))
	defer cli.Close()
	ctx, cancel := trtCtx(20 * time.Second)
	defer cancel()
	const calls = 10
	errs := make(chan error, calls)
	for range calls {
		go func() {
			_, err := cli.Call(ctx, srv.Addr(), 1, nil)
			errs <- err
		}()
	}
	bl.waitStarted(t, scfg.MaxInflight)
	select {
	case <-bl.started:
		t.Fatalf("more than MaxInflight=%d handlers run at once", scfg.MaxInflight)
	case <-time.After(100 * time.Millisecond):
	}
	close(bl.release)
	for range calls {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestPeerRestart(t *testing.T) {
	defer leaktest.AfterTest(t)()
	srv := trtStart(t, trtConfig("srv", nil))
	addr := srv.Addr()
	cli := trtStart(t, trtConfig("cli", nil))
	defer cli.Close()
	call := func() error {
		ctx, cancel := trtCtx(2 * time.Second)
		defer cancel()
		_, err := cli.Call(ctx, addr, 1, []byte("ping"))
		return err
	}
	if err := call(); err != nil {
		t.Fatalf("first call: %v", err)
	}
	srv.Close()
	for i := range 5 {
		if err := call(); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("call %d to a stopped peer: %v, want ErrUnreachable", i, err)
		}
	}
	cfg := trtConfig("srv", nil)
	cfg.ListenAddr = addr
	var srv2 *Transport
	trtEventually(t, 5*time.Second, "the address to be free again", func() bool {
		var err error
		srv2, err = New(cfg)
		return err == nil
	})
	defer srv2.Close()
	trtEventually(t, 5*time.Second, "calls to succeed after the restart", func() bool {
		return call() == nil
	})
	if st := cli.Stats(); st.Reconnects != 1 {
		t.Fatalf("Reconnects = %d, want 1 (stats %+v)", st.Reconnects, st)
	}
}

// After a failed dial, calls fail fast until the backoff has passed.
func TestBackoff(t *testing.T) {
	defer leaktest.AfterTest(t)()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	cfg := trtConfig("cli", nil)
	cfg.BackoffMin, cfg.BackoffMax = 10*time.Second, 20*time.Second
	cli := trtStart(t, cfg)
	defer cli.Close()
	ctx, cancel := trtCtx(5 * time.Second)
	defer cancel()
	if _, err := cli.Call(ctx, addr, 1, nil); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("call to a closed port: %v, want ErrUnreachable", err)
	}
	start := time.Now()
	for range 10 {
		if _, err := cli.Call(ctx, addr, 1, nil); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("call during backoff: %v, want ErrUnreachable", err)
		}
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("10 calls during backoff took %v", took)
	}
	if d := cli.Stats().Dials; d != 1 {
		t.Fatalf("%d dials during backoff, want 1", d)
	}
}

func TestFrameTooBig(t *testing.T) {
	defer leaktest.AfterTest(t)()
	scfg := trtConfig("srv", func(_ context.Context, _ string, typ uint8, req []byte) ([]byte, error) {
		if typ == 2 {
			return make([]byte, 4096), nil // too big for the server's own limit
		}
		return nil, nil
	})
	scfg.MaxFrameBytes = 1024
	srv := trtStart(t, scfg)
	defer srv.Close()
	cfg := trtConfig("cli", nil)
	cfg.MaxFrameBytes = 2048
	cli := trtStart(t, cfg)
	defer cli.Close()
	ctx, cancel := trtCtx(5 * time.Second)
	defer cancel()

	// Over the client's limit: refused before anything is sent.
	if _, err := cli.Call(ctx, srv.Addr(), 1, make([]byte, 2048)); !errors.Is(err, ErrFrameTooBig) {
		t.Fatalf("request over the client's limit: %v, want ErrFrameTooBig", err)
	}
	if d := cli.Stats().Dials; d != 0 {
		t.Fatalf("an oversized request caused %d dials", d)
	}
	// A reply over the server's limit comes back as a remote error.
	_, err := cli.Call(ctx, srv.Addr(), 2, nil)
	var re *RemoteError
	if !errors.As(err, &re) || !strings.Contains(re.Msg, "frame too big") {
		t.Fatalf("oversized reply: %v, want a RemoteError about the frame size", err)
	}
	// Under the client's limit but over the server's: the server drops the
	// connection and counts a bad frame.
	if _, err := cli.Call(ctx, srv.Addr(), 1, make([]byte, 1500)); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("request over the server's limit: %v, want ErrUnreachable", err)
	}
	if b := srv.Stats().BadFrames; b != 1 {
		t.Fatalf("server BadFrames = %d, want 1", b)
	}
	// The client reconnects for the next call.
	if _, err := cli.Call(ctx, srv.Addr(), 1, []byte("small")); err != nil {
		t.Fatalf("call after the drop: %v", err)
	}
}

// trtRawClient dials addr and passes the handshake as an authenticated peer that
// then speaks raw bytes.
func trtRawClient(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := authDial(conn, []byte("test-secret"), "raw", authTestNonce(3), time.Now); err != nil {
		conn.Close()
		t.Fatalf("handshake: %v", err)
	}
	return conn
}

// An authenticated peer sending a malformed or huge frame is disconnected, and the
// claimed length is never allocated.
func TestFrameBadFromPeer(t *testing.T) {
	defer leaktest.AfterTest(t)()
	log := &trtLog{}
	cfg := trtConfig("srv", nil)
	cfg.Logger = slog.New(log)
	srv := trtStart(t, cfg)
	defer srv.Close()
	for i, tc := range []struct {
		name string
		send []byte
	}{
		{"huge length prefix", []byte{0xff, 0xff, 0xff, 0xf0, frameKindRequest, 1, 1, 1}},
		{"just over the limit", binary.BigEndian.AppendUint32(nil, defaultMaxFrameBytes+1)},
		{"unknown kind", []byte{0, 0, 0, 2, 9, 1}},
		{"reply from a client", appendFrame(nil, &frame{kind: frameKindResponse, id: 1})},
		{"zero timeout", []byte{0, 0, 0, 4, frameKindRequest, 1, 1, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := trtTotalAlloc()
			conn := trtRawClient(t, srv.Addr())
			defer conn.Close()
			if _, err := conn.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, conn); err != nil && !strings.Contains(err.Error(), "reset") {
				t.Fatalf("connection not closed by the server: %v (read %d bytes)", err, n)
			}
			trtEventually(t, 5*time.Second, "the bad frame to be counted", func() bool {
				return srv.Stats().BadFrames == uint64(i+1)
			})
			if grew := trtTotalAlloc() - before; grew > 16<<20 {
				t.Fatalf("serving a bad frame allocated %d bytes", grew)
			}
		})
	}
	if !log.warned("bad frame", "peer") {
		t.Fatalf("no warning logged for bad frames")
	}
}

// A peer that stops reading cannot make the client buffer without bound: the queue
// fills, then the write deadline drops the connection and fails the calls.
func TestSlowReader(t *testing.T) {
	defer leaktest.AfterTest(t)()
	addr, stop := trtFakeServer(t, func(c net.Conn, quit <-chan struct{}) {
		if _, _, err := authServe(c, []byte("test-secret"), authTestNonce(4)); err != nil {
			return
		}
		<-quit // never read again
	})
	defer stop()
	cfg := trtConfig("cli", nil)
	cfg.MaxQueue = 4
	cfg.writeTimeout = 300 * time.Millisecond
	cli := trtStart(t, cfg)
	defer cli.Close()
	ctx, cancel := trtCtx(20 * time.Second)
	defer cancel()
	big := make([]byte, 16<<20) // together, far more than the socket buffers hold
	errs := make(chan error, cfg.MaxQueue)
	for range cfg.MaxQueue {
		go func() {
			_, err := cli.Call(ctx, addr, 1, big)
			errs <- err
		}()
	}
	start := time.Now()
	for range cfg.MaxQueue {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrUnreachable) && !errors.Is(err, ErrQueueFull) {
				t.Fatalf("call to a peer that stopped reading: %v, want ErrUnreachable", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("calls to a peer that stopped reading still blocked after %v", time.Since(start))
		}
	}
}

// A peer that reads requests but never answers (stopped, not closed) has its
// connection dropped and redialed once calls time out with nothing read.
func TestStalePeer(t *testing.T) {
	defer leaktest.AfterTest(t)()
	var accepted atomic.Int64
	addr, stop := trtFakeServer(t, func(c net.Conn, _ <-chan struct{}) {
		if _, _, err := authServe(c, []byte("test-secret"), authTestNonce(4)); err != nil {
			return
		}
		accepted.Add(1)
		_, _ = io.Copy(io.Discard, c) // swallow requests, never reply
	})
	defer stop()
	cfg := trtConfig("cli", nil)
	cfg.writeTimeout = 100 * time.Millisecond // stale after 200ms without a read
	cli := trtStart(t, cfg)
	defer cli.Close()
	trtEventually(t, 10*time.Second, "a stale connection to be redialed", func() bool {
		ctx, cancel := trtCtx(50 * time.Millisecond)
		defer cancel()
		_, err := cli.Call(ctx, addr, 1, nil)
		if err == nil {
			t.Fatal("a peer that never replies answered")
		}
		return accepted.Load() >= 2
	})
}

func TestCloseWithCallsInFlight(t *testing.T) {
	defer leaktest.AfterTest(t)()
	for _, tc := range []struct {
		name      string
		closeSide string
		want      error
	}{
		{"client closes", "client", ErrClosed},
		{"server closes", "server", ErrUnreachable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bl := newTrtBlocker()
			srv := trtStart(t, trtConfig("srv", bl.serve))
			defer srv.Close()
			cli := trtStart(t, trtConfig("cli", nil))
			defer cli.Close()
			ctx, cancel := trtCtx(30 * time.Second)
			defer cancel()
			const calls = 50
			errs := make(chan error, calls)
			for range calls {
				go func() {
					_, err := cli.Call(ctx, srv.Addr(), 1, nil)
					errs <- err
				}()
			}
			bl.waitStarted(t, calls)
			closed := make(chan struct{})
			go func() {
				defer close(closed)
				if tc.closeSide == "client" {
					cli.Close()
				} else {
					srv.Close() // cancels the parked handlers
				}
			}()
			for range calls {
				select {
				case err := <-errs:
					if !errors.Is(err, tc.want) {
						t.Fatalf("in-flight call: %v, want %v", err, tc.want)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("in-flight calls did not return after Close")
				}
			}
			select {
			case <-closed:
			case <-time.After(10 * time.Second):
				t.Fatal("Close did not return")
			}
			if tc.closeSide == "client" {
				if _, err := cli.Call(ctx, srv.Addr(), 1, nil); !errors.Is(err, ErrClosed) {
					t.Fatalf("Call after Close: %v, want ErrClosed", err)
				}
			}
			if err := cli.Close(); err != nil { // idempotent
				t.Fatal(err)
			}
		})
	}
}

// Close racing with a stream of Calls (dialing, queued, in flight) is safe and
// leaves no goroutine behind.
func TestCloseRace(t *testing.T) {
	defer leaktest.AfterTest(t)()
	srv := trtStart(t, trtConfig("srv", nil))
	defer srv.Close()
	for range 5 {
		cli := trtStart(t, trtConfig("cli", nil))
		var wg sync.WaitGroup
		var ok atomic.Int64
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					ctx, cancel := trtCtx(5 * time.Second)
					_, err := cli.Call(ctx, srv.Addr(), 1, []byte("x"))
					cancel()
					if errors.Is(err, ErrClosed) {
						return
					}
					if err != nil && !errors.Is(err, ErrUnreachable) {
						t.Errorf("Call: %v", err)
						return
					}
					ok.Add(1)
				}
			}()
		}
		trtEventually(t, 5*time.Second, "some calls to succeed", func() bool { return ok.Load() > 20 })
		var cwg sync.WaitGroup
		for range 3 { // concurrent Closes
			cwg.Add(1)
			go func() {
				defer cwg.Done()
				cli.Close()
			}()
		}
		cwg.Wait()
		wg.Wait()
	}
}

func TestConfig(t *testing.T) {
	defer leaktest.AfterTest(t)()
	h := HandlerFunc(trtEcho)
	base := Config{Name: "n", ListenAddr: "127.0.0.1:0", Handler: h}
	d := base.EnsureDefaults()
	if d.MaxQueue != 4096 || d.MaxFrameBytes != 64<<20 || d.MaxInflight != 256 ||
		d.DialTimeout != time.Second || d.DefaultTimeout != time.Second ||
		d.BackoffMin != 50*time.Millisecond || d.BackoffMax != 2*time.Second || d.Logger == nil {
		t.Fatalf("defaults: %+v", d)
	}
	if base.MaxQueue != 0 {
		t.Fatal("EnsureDefaults modified its receiver")
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		ok   bool
	}{
		{"defaults", func(*Config) {}, true},
		{"no name", func(c *Config) { c.Name = "" }, false},
		{"long name", func(c *Config) { c.Name = strings.Repeat("n", 256) }, false},
		{"no addr", func(c *Config) { c.ListenAddr = "" }, false},
		{"no handler", func(c *Config) { c.Handler = nil }, false},
		{"negative queue", func(c *Config) { c.MaxQueue = -1 }, false},
		{"tiny frames", func(c *Config) { c.MaxFrameBytes = 10 }, false},
		{"negative inflight", func(c *Config) { c.MaxInflight = -1 }, false},
		{"negative timeout", func(c *Config) { c.DefaultTimeout = -time.Second }, false},
		{"backoff inverted", func(c *Config) { c.BackoffMin, c.BackoffMax = time.Second, time.Millisecond }, false},
	} {
		c := base
		tc.edit(&c)
		err := c.EnsureDefaults().Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%s: Validate = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("New accepted an empty config")
	}
}

// BenchmarkCall measures pipelined round trips of 100-byte requests from
// many goroutines to one peer.
func BenchmarkCall(b *testing.B) { benchCall(b, nil) }

// benchCall runs pipelined calls from 16 goroutines per CPU to a server
// answering with h (an echo when nil).
func benchCall(b *testing.B, h HandlerFunc) {
	srv, err := New(trtConfig("srv", h))
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	cli, err := New(trtConfig("cli", nil))
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	req := make([]byte, 100)
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := cli.Call(context.Background(), srv.Addr(), 1, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	st := cli.Stats()
	b.ReportMetric(float64(st.FramesOut)/float64(max(st.Flushes, 1)), "frames/flush")
}

// TestNotSent: failures before the request left this node say so
// (ErrNotSent), so a caller may run the request elsewhere without running it twice.
func TestNotSent(t *testing.T) {
	defer leaktest.AfterTest(t)()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	tr, err := New(Config{Name: "a", ListenAddr: "127.0.0.1:0",
		Handler: HandlerFunc(func(context.Context, string, uint8, []byte) ([]byte, error) { return nil, nil })})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = tr.Call(ctx, dead, 1, []byte("x"))
	if !errors.Is(err, ErrNotSent) || !errors.Is(err, ErrUnreachable) {
		t.Fatalf("call to a closed port: %v, want ErrNotSent and ErrUnreachable", err)
	}
	_, err = tr.Call(ctx, dead, 1, make([]byte, 65<<20))
	if !errors.Is(err, ErrNotSent) || !errors.Is(err, ErrFrameTooBig) {
		t.Fatalf("oversize call: %v, want ErrNotSent and ErrFrameTooBig", err)
	}
}

// TestFailedUnwrittenIsNotSent: when a connection fails (or is retired
// after a late refusal) with calls queued that the writer never wrote, those calls
// certainly did not reach the peer and fail with ErrNotSent, so a front node may run
// a forwarded op itself; a call whose request was written has an unknown outcome.
func TestFailedUnwrittenIsNotSent(t *testing.T) {
	defer leaktest.AfterTest(t)()
	tr := trtStart(t, trtConfig("cli", nil))
	defer tr.Close()
	p := tr.peerFor("127.0.0.1:1")
	if p == nil {
		t.Fatal("no peer")
	}
	local, remote := net.Pipe()
	defer remote.Close()
	cc := &clientConn{p: p, conn: local, clock: newConnClock(time.Now()),
		sendq: make(chan *call, 4), done: make(chan struct{}), pending: make(map[uint64]*call)}
	queued := &call{typ: 1, deadline: time.Now().Add(time.Second), result: make(chan outcome, 1)}
	sent := &call{typ: 1, deadline: time.Now().Add(time.Second), result: make(chan outcome, 1)}
	for _, c := range []*call{queued, sent} {
		if err := cc.enqueue(c); err != nil {
			t.Fatal(err)
		}
	}
	sent.written.Store(true) // as writeCall marks it before the first byte
	cc.retire(fmt.Errorf("%w: retired", ErrUnreachable))
	cc.fail(fmt.Errorf("%w: reset", ErrUnreachable))
	if r := <-queued.result; !errors.Is(r.err, ErrNotSent) || !errors.Is(r.err, ErrUnreachable) {
		t.Errorf("queued call: %v, want ErrNotSent and ErrUnreachable", r.err)
	}
	if r := <-sent.result; errors.Is(r.err, ErrNotSent) || !errors.Is(r.err, ErrUnreachable) {
		t.Errorf("written call: %v, want ErrUnreachable without ErrNotSent", r.err)
	}
}
