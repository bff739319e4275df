package memcache

import (
	"bufio"
	"errors"
	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/internal/fakeclock"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/dynakv/dynakv/internal/testnode"
	"github.com/dynakv/dynakv/proxy"
)

// fakeClock is the tests' settable clock.
type fakeClock = fakeclock.Clock

func newFakeClock() *fakeClock { return fakeclock.New(testEpoch) }

// testEpoch is where fake clocks start: a unix time well past 30 days, so absolute
// exptimes can be told apart from relative ones.
var testEpoch = time.Unix(1_700_000_000, 0)

// testServer is a Server on 127.0.0.1 over an in-memory proxy.
type testServer struct {
	*Server
	addr  string
	clock *fakeClock
	px    *proxy.Proxy
}

type serverOptions struct {
	cfg           Config
	maxValueBytes int // the proxy's limit
	realClock     bool
	wrapStore     func(coordinator.Store) coordinator.Store
	memory        proxy.Memory // the proxy's memory gate; nil: no limit
}

func startServer(t testing.TB, opt serverOptions) *testServer {
	t.Helper()
	clk := newFakeClock()
	now := clk.Now
	if opt.realClock {
		now = time.Now
	}
	px := testnode.Proxy(t, testnode.Options{Now: now, MaxValueBytes: opt.maxValueBytes, WrapStore: opt.wrapStore, Memory: opt.memory})
	cfg := opt.cfg
	if cfg.Now == nil {
		cfg.Now = now
	}
	if cfg.IOModel == "" {
		cfg.IOModel = testIOModel
	}
	t.Logf("io model %s", cfg.IOModel)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(cfg, px)
	if (s.loop != nil) != (cfg.IOModel == IOLoop) {
		t.Fatalf("io model %s: loops %v", cfg.IOModel, s.loop != nil)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve returned %v after Close", err)
		}
	})
	return &testServer{Server: s, addr: ln.Addr().String(), clock: clk, px: px}
}

// rawConn drives a server with raw bytes.
type rawConn struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

const ioTimeout = 10 * time.Second

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatalf("send: %v", err)
	}
}

// line reads one reply line, "\r\n" included.
func (r *rawConn) line() string {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(ioTimeout))
	s, err := r.r.ReadString('\n')
	if err != nil {
		r.t.Fatalf("read line: %v (got %q)", err, s)
	}
	return s
}

// expect reads len(want) lines and compares them, each given without "\r\n".
func (r *rawConn) expect(want ...string) {
	r.t.Helper()
	for _, w := range want {
		if got := r.line(); got != w+"\r\n" {
			r.t.Fatalf("got %q, want %q", got, w+"\r\n")
		}
	}
}

// roundTrip sends s and expects the reply lines want.
func (r *rawConn) roundTrip(s string, want ...string) {
	r.t.Helper()
	r.send(s)
	r.expect(want...)
}

// expectClosed reads until the server closes the connection; the bytes read before
// are returned.
func (r *rawConn) expectClosed() string {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(ioTimeout))
	b, err := io.ReadAll(r.r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		r.t.Fatalf("connection still open; read %q", b)
	}
	return string(b)
}

// stat returns one general stat of the server, asked on a connection of its own.
func stat(t testing.TB, addr, name string) string {
	t.Helper()
	r := dialRaw(t, addr)
	defer r.c.Close()
	return readStats(r)[name]
}

// readStats sends "stats" on r and returns the reply.
func readStats(r *rawConn) map[string]string {
	r.t.Helper()
	r.send("stats\r\n")
	m := map[string]string{}
	for {
		l := r.line()
		if l == "END\r\n" {
			return m
		}
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != "STAT" {
			r.t.Fatalf("stats line %q", l)
		}
		m[f[1]] = f[2]
	}
}

// waitFor polls cond (the server's state changes asynchronously to the test).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(ioTimeout)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
