package memcache

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/internal/evloop"
	"github.com/dynakv/dynakv/internal/leakcheck"
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

// TestLoopLeaks: a server on the loop driver, with clients that pipeline, quit,
// send a line too long, stop reading a large reply (closed by the write timeout,
// logged) and stay connected through Close, leaves no goroutine and no
// descriptor behind.
func TestLoopLeaks(t *testing.T) {
	needLoops(t)
	leakcheck.Check(t)
	var logs syncLog
	ts := startServer(t, serverOptions{cfg: Config{
		IOModel:      IOLoop,
		WriteTimeout: 300 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}})
	r := dialRaw(t, ts.addr)
	big := strings.Repeat("x", 256<<10)
	r.roundTrip(fmt.Sprintf("set big 0 0 %d\r\n%s\r\n", len(big), big), "STORED")
	if n := ts.loop.Len(); n != 1 {
		t.Fatalf("%d connections on the loops, want 1", n)
	}
	r.send("set n 0 0 1\r\n0\r\n" + strings.Repeat("incr n 1\r\n", 1000))
	r.expect("STORED")
	for range 999 {
		r.line()
	}
	r.expect("1000")

	quit := dialRaw(t, ts.addr)
	quit.send("version\r\nquit\r\nversion\r\n")
	if got := quit.expectClosed(); got != "VERSION dynakv\r\n" {
		t.Fatalf("quit: %q", got)
	}
	long := dialRaw(t, ts.addr)
	long.send("version\r\n" + strings.Repeat("a", maxLine+1))
	if got := long.expectClosed(); got != "VERSION dynakv\r\nCLIENT_ERROR line too long\r\n" {
		t.Fatalf("line too long: %q", got)
	}

	slow, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	_ = slow.(*net.TCPConn).SetReadBuffer(64 << 10)
	if _, err := slow.Write([]byte("get" + strings.Repeat(" big", 100) + "\r\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the client that does not read to be closed", func() bool {
		return strings.Contains(logs.String(), "closing a client that does not take its replies")
	})
	// One connected and idle, one in the middle of a data block, at Close.
	dialRaw(t, ts.addr).roundTrip("version\r\n", "VERSION dynakv")
	dialRaw(t, ts.addr).send("set k 0 0 10\r\nabc")
	waitFor(t, "the slow reader to go", func() bool { return ts.Clients() == 3 })
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

// TestLoopBlockedCommand: on one loop, a command blocked in its handoff holds
// back its own connection's later commands, not another connection's; with
// MaxHandoff 1 the other connection's commands wait for the handoff goroutine,
// paused, and run once it is free.
func TestLoopBlockedCommand(t *testing.T) {
	needLoops(t)
	for _, maxHandoff := range []int{2, 1} {
		t.Run(fmt.Sprint("MaxHandoff=", maxHandoff), func(t *testing.T) {
			bs := &blockingStore{key: "slow", entered: make(chan struct{}, 1), release: make(chan struct{})}
			ts := startServer(t, serverOptions{
				cfg:       Config{IOModel: IOLoop, IOLoops: 1, MaxHandoff: maxHandoff},
				wrapStore: func(s coordinator.Store) coordinator.Store { bs.Store = s; return bs },
			})
			var once sync.Once
			release := func() { once.Do(func() { close(bs.release) }) }
			t.Cleanup(release) // before the server's Close, which waits for the handoff
			a, b := dialRaw(t, ts.addr), dialRaw(t, ts.addr)
			a.send("get slow\r\nversion\r\n")
			<-bs.entered
			b.send("version\r\n")
			if maxHandoff > 1 {
				b.expect("VERSION dynakv")
			} else {
				_ = b.c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				if got, err := b.r.Peek(1); err == nil {
					t.Fatalf("version answered (%q) while the only handoff goroutine is busy", got)
				}
				b.r.Reset(b.c)
			}
			_ = a.c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if got, err := a.r.Peek(1); err == nil {
				t.Fatalf("a reply (%q) before the blocked get's", got)
			}
			a.r.Reset(a.c)
			release()
			a.expect("END", "VERSION dynakv")
			if maxHandoff == 1 {
				b.expect("VERSION dynakv")
			}
		})
	}
}
