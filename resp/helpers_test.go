package resp

import (
	"bufio"
	"errors"
	"fmt"
	"github.com/dynakv/dynakv/internal/fakeclock"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dynakv/dynakv/internal/testnode"
)

// fakeClock is the tests' settable clock.
type fakeClock = fakeclock.Clock

func newFakeClock() *fakeClock {
	return fakeclock.New(time.Date(2030, 1, 2, 3, 4, 5, 600_000_000, time.UTC))
}

// testServer is a Server on 127.0.0.1 over an in-memory node.
type testServer struct {
	*Server
	addr  string
	clock *fakeClock
}

type serverOpt func(*Config, *testnode.Options)

func withPass(p string) serverOpt {
	return func(c *Config, _ *testnode.Options) { c.RequirePass = p }
}

func withClock(clk *fakeClock) serverOpt {
	return func(c *Config, o *testnode.Options) { c.Now, o.Now = clk.Now, clk.Now }
}

func startServer(t testing.TB, opts ...serverOpt) *testServer {
	t.Helper()
	var cfg Config
	var nopt testnode.Options
	clk := newFakeClock()
	cfg.Now, nopt.Now = clk.Now, clk.Now
	cfg.Version, cfg.NodeName = "0.1.0-test", "n1"
	for _, o := range opts {
		o(&cfg, &nopt)
	}
	px := testnode.Proxy(t, nopt)
	if cfg.IOModel == "" {
		cfg.IOModel = testIOModel
	}
	t.Logf("io model %s", cfg.IOModel)
	s := New(cfg, px)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testServer{Server: s, addr: ln.Addr().String(), clock: clk}
}

// rawConn speaks raw bytes to a server and reads whole replies back as bytes.
type rawConn struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

func (rc *rawConn) send(s string) {
	rc.t.Helper()
	if _, err := rc.c.Write([]byte(s)); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

// read returns the next complete reply, raw.
func (rc *rawConn) read() string {
	rc.t.Helper()
	_ = rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	if err := readReply(rc.r, &b); err != nil {
		rc.t.Fatalf("reading reply (got %q so far): %v", b.String(), err)
	}
	return b.String()
}

// do sends args as a RESP command and returns the raw reply.
func (rc *rawConn) do(args ...string) string {
	rc.t.Helper()
	rc.send(encode(args...))
	return rc.read()
}

// expectClosed checks that the server closed the connection without sending
// anything more.
func (rc *rawConn) expectClosed() {
	rc.t.Helper()
	_ = rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := rc.r.ReadByte()
	if err == nil {
		rest, _ := rc.r.Peek(rc.r.Buffered())
		rc.t.Fatalf("connection still open, got %q", string(b)+string(rest))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		rc.t.Fatalf("connection still open (read timed out)")
	}
}

func encode(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

// readReply copies one RESP2/RESP3 reply from r to w.
func readReply(r *bufio.Reader, w *strings.Builder) error {
	line, err := r.ReadString('\n')
	w.WriteString(line)
	if err != nil {
		return err
	}
	if len(line) < 3 || !strings.HasSuffix(line, "\r\n") {
		return fmt.Errorf("bad line %q", line)
	}
	n, _ := strconv.Atoi(line[1 : len(line)-2])
	switch line[0] {
	case '+', '-', ':', '_', ',', '#', '(':
		return nil
	case '$', '=', '!':
		if n < 0 {
			return nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		w.Write(buf)
		return nil
	case '*', '~', '>', '%', '|':
		if line[0] == '%' || line[0] == '|' {
			n *= 2
		}
		for i := 0; i < n; i++ {
			if err := readReply(r, w); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unknown reply type %q", line)
}
