package resp

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/internal/evloop"
	"github.com/dynakv/dynakv/internal/leakcheck"
	"github.com/dynakv/dynakv/internal/testnode"
	"github.com/dynakv/dynakv/record"
)

func needLoops(t *testing.T) {
	t.Helper()
	if !evloop.Supported() {
		t.Skip("no event loops here")
	}
	if testIOModel != IOLoop {
		t.Skip("a loop driver test: runs in the loop pass")
	}
}

// syncLog is a slog handler's output that tests read while the server writes.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLoopLeaks: a server on the loop driver, with clients that pipeline, break
// the protocol, QUIT, stop reading a huge reply (closed by the write timeout,
// with today's log line) and stay connected through Close, leaves no goroutine
// and no descriptor behind.
func TestLoopLeaks(t *testing.T) {
	needLoops(t)
	leakcheck.Check(t)
	var logs syncLog
	ts := startServer(t, func(c *Config, _ *testnode.Options) {
		c.IOModel = IOLoop
		c.OutputBufferLimit = 64 << 10
		c.WriteTimeout = 300 * time.Millisecond
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	if ts.loop == nil {
		t.Fatal("no loops on the loop driver")
	}
	r := dialRaw(t, ts.addr)
	if got := r.do("SET", "big", strings.Repeat("x", 256<<10)); got != "+OK\r\n" {
		t.Fatalf("SET: %q", got)
	}
	if n := ts.loop.Len(); n != 1 {
		t.Fatalf("%d connections on the loops, want 1", n)
	}
	r.send(strings.Repeat(encode("INCR", "n"), 1000))
	for range 999 {
		r.read()
	}
	if got := r.read(); got != ":1000\r\n" {
		t.Fatalf("last INCR: %q", got)
	}
	perr := dialRaw(t, ts.addr)
	perr.send(encode("PING") + "*1\r\n$x\r\n")
	if got := perr.read(); got != "+PONG\r\n" {
		t.Fatalf("before the protocol error: %q", got)
	}
	if got := perr.read(); got != "-ERR Protocol error: invalid bulk length\r\n" {
		t.Fatalf("protocol error: %q", got)
	}
	perr.expectClosed()
	quit := dialRaw(t, ts.addr)
	quit.send(encode("PING") + encode("QUIT") + encode("PING"))
	if got := quit.read() + quit.read(); got != "+PONG\r\n+OK\r\n" {
		t.Fatalf("QUIT: %q", got)
	}
	quit.expectClosed()

	slow, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	_ = slow.(*net.TCPConn).SetReadBuffer(64 << 10)
	args := []string{"MGET"}
	for range 100 {
		args = append(args, "big")
	}
	if _, err := slow.Write([]byte(encode(args...))); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "closing client that did not read its replies"); {
		if time.Now().After(deadline) {
			t.Fatalf("the client that does not read was not closed; log:\n%s", logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// One connected and idle, one in the middle of a command, at Close.
	dialRaw(t, ts.addr).do("PING")
	dialRaw(t, ts.addr).send("*2\r\n$3\r\nGET\r\n$10\r\nabc")
}

// blockingStore blocks reads of one key until released.
type blockingStore struct {
	coordinator.Store
	key     string
	entered chan struct{}
	release chan struct{}
}

func (s *blockingStore) Get(key []byte) (record.Record, bool, error) {
	if string(key) == s.key {
		s.entered <- struct{}{}
		<-s.release
	}
	return s.Store.Get(key)
}

// TestLoopHandoffBound: with MaxHandoff 1, a command blocked in a handoff holds
// the only goroutine: another connection's command waits, paused, and runs once
// the first completes.
func TestLoopHandoffBound(t *testing.T) {
	needLoops(t)
	bs := &blockingStore{key: "slow", entered: make(chan struct{}, 1), release: make(chan struct{})}
	ts := startServer(t, func(c *Config, o *testnode.Options) {
		c.IOModel, c.MaxHandoff, c.IOLoops = IOLoop, 1, 1
		o.WrapStore = func(s coordinator.Store) coordinator.Store { bs.Store = s; return bs }
	})
	var once sync.Once
	release := func() { once.Do(func() { close(bs.release) }) }
	t.Cleanup(release) // before the server's Close, which waits for the handoff
	a, b := dialRaw(t, ts.addr), dialRaw(t, ts.addr)
	a.send(encode("GET", "slow"))
	<-bs.entered
	b.send(encode("PING"))
	_ = b.c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := b.r.Peek(1); err == nil {
		t.Fatalf("PING answered (%q) while the only handoff goroutine is busy", n)
	}
	release()
	if got := a.read(); got != "$-1\r\n" {
		t.Fatalf("GET slow: %q", got)
	}
	b.r.Reset(b.c)
	if got := b.read(); got != "+PONG\r\n" {
		t.Fatalf("queued PING: %q", got)
	}
}
