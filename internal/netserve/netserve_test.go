package netserve

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lni/goutils/leaktest"

	"github.com/dynakv/dynakv/internal/evloop"
)

// pipeListener is a listener over net.Pipe: Dial hands Accept the server end of
// a new pipe. Failing Accepts can be scripted ahead of it. net.Pipe's deadlines
// use the runtime's timers, so in a synctest bubble they run on fake time.
type pipeListener struct {
	mu     sync.Mutex
	fails  int // Accepts that fail before the next connection is returned
	conns  chan net.Conn
	done   chan struct{}
	closed bool
}

var errTemporary = errors.New("accept: too many open files")

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) failNext(n int) {
	l.mu.Lock()
	l.fails += n
	l.mu.Unlock()
}

func (l *pipeListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.fails > 0 && !l.closed {
		l.fails--
		l.mu.Unlock()
		return nil, errTemporary
	}
	l.mu.Unlock()
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Dial() net.Conn {
	srv, cli := net.Pipe()
	select {
	case l.conns <- srv:
	case <-l.done:
		srv.Close()
	}
	return cli
}

func (l *pipeListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		close(l.done)
	}
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// echo serves a connection that echoes lines; its state records its id.
type echoConn struct {
	id int64
	nc net.Conn
}

func echoConfig() Config[*echoConn] {
	return Config[*echoConn]{
		Open: func(id int64, nc net.Conn) *echoConn { return &echoConn{id: id, nc: nc} },
		Serve: func(c *echoConn) {
			r := bufio.NewReader(c.nc)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if _, err := io.WriteString(c.nc, line); err != nil {
					return
				}
			}
		},
	}
}

// roundTrip writes a line and reads it back.
func roundTrip(t *testing.T, c net.Conn, line string) {
	t.Helper()
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatalf("write %q: %v", line, err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || got != line+"\n" {
		t.Fatalf("echo of %q: %q, %v", line, got, err)
	}
}

// expectEOF reads what c gets until it ends.
func readAll(t *testing.T, c net.Conn) string {
	t.Helper()
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func serve[T any](s *Server[T], ln net.Listener) chan error {
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	return done
}

// TestMaxClients: a connection beyond MaxClients gets RefuseLine and is closed,
// the Refused event sees it, a leaving client frees its place, and SetMaxClients
// applies to the next accept; with no RefuseLine the connection is closed
// unanswered.
func TestMaxClients(t *testing.T) {
	defer leaktest.AfterTest(t)()
	synctest.Test(t, func(t *testing.T) {
		for _, line := range []string{"-ERR max number of clients reached\r\n", ""} {
			cfg := echoConfig()
			cfg.MaxClients = 1
			if line != "" {
				cfg.RefuseLine = []byte(line)
			}
			var refused atomic.Int64
			cfg.Events.Refused = func(net.Conn) { refused.Add(1) }
			s := New(cfg)
			ln := newPipeListener()
			done := serve(s, ln)

			a := ln.Dial()
			roundTrip(t, a, "a")
			b := ln.Dial()
			if got := readAll(t, b); got != line {
				t.Fatalf("refused client got %q, want %q", got, line)
			}
			if refused.Load() != 1 || s.Len() != 1 {
				t.Fatalf("refused %d, Len %d", refused.Load(), s.Len())
			}
			a.Close()
			synctest.Wait()
			if s.Len() != 0 {
				t.Fatalf("Len %d after the client left", s.Len())
			}
			c := ln.Dial()
			roundTrip(t, c, "c")
			s.SetMaxClients(2)
			d := ln.Dial()
			roundTrip(t, d, "d")
			if s.Len() != 2 || s.MaxClients() != 2 {
				t.Fatalf("Len %d MaxClients %d", s.Len(), s.MaxClients())
			}
			s.Close()
			if err := <-done; err != nil {
				t.Fatalf("Serve = %v", err)
			}
			b.Close()
			c.Close()
			d.Close()
		}
	})
}

// TestAcceptBackoff: failed Accepts are retried after 5 ms, doubling up to 1 s; a
// connection accepted resets the backoff; Close cuts a wait short.
func TestAcceptBackoff(t *testing.T) {
	defer leaktest.AfterTest(t)()
	synctest.Test(t, func(t *testing.T) {
		type failure struct {
			at      time.Time
			retryIn time.Duration
		}
		var mu sync.Mutex
		var got []failure
		cfg := echoConfig()
		cfg.Events.AcceptFailed = func(err error, retryIn time.Duration) {
			if !errors.Is(err, errTemporary) {
				t.Errorf("AcceptFailed(%v)", err)
			}
			mu.Lock()
			got = append(got, failure{time.Now(), retryIn})
			mu.Unlock()
		}
		s := New(cfg)
		ln := newPipeListener()
		ln.failNext(10)
		start := time.Now()
		done := serve(s, ln)
		c := ln.Dial() // accepted after the ten failures
		roundTrip(t, c, "x")

		ms := time.Millisecond
		want := []time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 80 * ms, 160 * ms, 320 * ms, 640 * ms, time.Second, time.Second}
		mu.Lock()
		if len(got) != len(want) {
			t.Fatalf("%d failures reported, want %d", len(got), len(want))
		}
		at := start
		for i, f := range got {
			if f.retryIn != want[i] {
				t.Errorf("failure %d: retry in %v, want %v", i, f.retryIn, want[i])
			}
			if !f.at.Equal(at) {
				t.Errorf("failure %d at +%v, want +%v (the previous backoff waited out)", i, f.at.Sub(start), at.Sub(start))
			}
			at = at.Add(f.retryIn)
		}
		got = got[:0]
		mu.Unlock()

		// After a connection, the backoff starts over at 5 ms. (The loop waits
		// in Accept already: the failures come after the next connection.)
		ln.failNext(2)
		c2 := ln.Dial()
		roundTrip(t, c2, "y")
		time.Sleep(time.Second)
		mu.Lock()
		if len(got) != 2 || got[0].retryIn != 5*ms || got[1].retryIn != 10*ms {
			t.Errorf("after a success: %v", got)
		}
		mu.Unlock()

		// Close while the accept loop waits out a backoff.
		ln.failNext(20)
		time.Sleep(2 * time.Second) // fake time: the loop is deep in its backoff
		closedAt := time.Now()
		s.Close()
		if err := <-done; err != nil {
			t.Fatalf("Serve = %v", err)
		}
		if d := time.Since(closedAt); d != 0 {
			t.Errorf("Close waited %v for the backoff", d)
		}
		c.Close()
		c2.Close()
	})
}

// TestCloseConcurrent: concurrent Closes all return only after every connection's
// Serve returned; Close is idempotent; Serve then returns nil, a second Serve
// fails, and Serve after Close closes its listener.
func TestCloseConcurrent(t *testing.T) {
	defer leaktest.AfterTest(t)()
	synctest.Test(t, func(t *testing.T) {
		var running atomic.Int64
		cfg := echoConfig()
		inner := cfg.Serve
		cfg.Serve = func(c *echoConn) {
			running.Add(1)
			defer running.Add(-1)
			inner(c)
			time.Sleep(time.Second) // a Serve that takes its time to wind down
		}
		s := New(cfg)
		ln := newPipeListener()
		done := serve(s, ln)
		var clients []net.Conn
		for i := range 5 {
			c := ln.Dial()
			roundTrip(t, c, fmt.Sprint(i))
			clients = append(clients, c)
		}
		if err := s.Serve(newPipeListener()); !errors.Is(err, ErrServing) {
			t.Fatalf("second Serve = %v", err)
		}
		if got := s.Conns(); len(got) != 5 || got[0].id != 1 || got[4].id != 5 {
			t.Fatalf("Conns = %v", got)
		}
		if c, ok := s.Get(3); !ok || c.id != 3 {
			t.Fatalf("Get(3) = %v, %v", c, ok)
		}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				s.Close()
				if n := running.Load(); n != 0 {
					t.Errorf("Close returned with %d connections still serving", n)
				}
				if s.Len() != 0 {
					t.Errorf("Close returned with Len %d", s.Len())
				}
			})
		}
		wg.Wait()
		if err := <-done; err != nil {
			t.Fatalf("Serve = %v", err)
		}
		for _, c := range clients {
			if got := readAll(t, c); got != "" {
				t.Errorf("closed client read %q", got)
			}
		}
		if _, ok := s.Get(3); ok {
			t.Error("Get after Close found a connection")
		}
		ln2 := newPipeListener()
		if err := s.Serve(ln2); err != nil {
			t.Fatalf("Serve after Close = %v", err)
		}
		if _, err := ln2.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Serve after Close left its listener open: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Context().Err(); err == nil {
			t.Fatal("Context not canceled by Close")
		}
	})
}

// TestListenerClosedElsewhere: a listener closed by someone else ends Serve with
// its error; Close still works after.
func TestListenerClosedElsewhere(t *testing.T) {
	defer leaktest.AfterTest(t)()
	synctest.Test(t, func(t *testing.T) {
		s := New(echoConfig())
		ln := newPipeListener()
		done := serve(s, ln)
		c := ln.Dial()
		roundTrip(t, c, "a")
		ln.Close()
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Serve = %v, want net.ErrClosed", err)
		}
		s.Close()
		c.Close()
	})
}

// TestAdmit: a connection Admit turns down is closed unanswered and not counted.
func TestAdmit(t *testing.T) {
	defer leaktest.AfterTest(t)()
	synctest.Test(t, func(t *testing.T) {
		cfg := echoConfig()
		var n atomic.Int64
		cfg.Admit = func(net.Conn) bool { return n.Add(1)%2 == 1 }
		s := New(cfg)
		ln := newPipeListener()
		done := serve(s, ln)
		a := ln.Dial()
		roundTrip(t, a, "a")
		b := ln.Dial()
		if got := readAll(t, b); got != "" {
			t.Fatalf("turned-down client got %q", got)
		}
		if s.Len() != 1 {
			t.Fatalf("Len = %d", s.Len())
		}
		s.Close()
		<-done
		a.Close()
	})
}

// TestWriteTimeout: on the goroutine driver a client that stops reading has the
// write fail with os.ErrDeadlineExceeded after about WriteTimeout; a deadline the
// Serve sets itself is left alone.
func TestWriteTimeout(t *testing.T) {
	defer leaktest.AfterTest(t)()
	synctest.Test(t, func(t *testing.T) {
		for _, own := range []bool{false, true} {
			errs := make(chan error, 1)
			var took time.Duration
			cfg := Config[net.Conn]{
				WriteTimeout: 10 * time.Second,
				Open:         func(_ int64, nc net.Conn) net.Conn { return nc },
				Serve: func(nc net.Conn) {
					if own {
						_ = nc.SetWriteDeadline(time.Now().Add(time.Minute))
					}
					start := time.Now()
					_, err := nc.Write([]byte("a reply nobody reads"))
					took = time.Since(start)
					errs <- err
				},
			}
			s := New(cfg)
			ln := newPipeListener()
			done := serve(s, ln)
			c := ln.Dial() // never reads
			if err := <-errs; !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("write to a client that does not read: %v", err)
			}
			want := 10 * time.Second
			if own {
				want = time.Minute
			}
			if took != want {
				t.Errorf("own=%v: the write failed after %v, want %v", own, took, want)
			}
			s.Close()
			<-done
			c.Close()
		}
	})
}

// TestPanicCloseConn: under CloseConn a panic in Serve is reported and closes
// only its connection.
func TestPanicCloseConn(t *testing.T) {
	defer leaktest.AfterTest(t)()
	synctest.Test(t, func(t *testing.T) {
		cfg := echoConfig()
		inner := cfg.Serve
		cfg.Serve = func(c *echoConn) {
			if c.id == 1 {
				panic("bug")
			}
			inner(c)
		}
		var panics atomic.Int64
		cfg.Events.Panic = func(_ net.Conn, v any, stack []byte) {
			if v != "bug" || !strings.Contains(string(stack), "TestPanicCloseConn") {
				t.Errorf("Panic(%v, %s)", v, stack)
			}
			panics.Add(1)
		}
		s := New(cfg)
		ln := newPipeListener()
		done := serve(s, ln)
		a := ln.Dial()
		if got := readAll(t, a); got != "" {
			t.Fatalf("panicking connection sent %q", got)
		}
		b := ln.Dial()
		roundTrip(t, b, "still serving")
		if panics.Load() != 1 || s.Len() != 1 {
			t.Fatalf("panics %d, Len %d", panics.Load(), s.Len())
		}
		s.Close()
		<-done
		b.Close()
	})
}

// TestPanicCrash: under Crash a panic in Serve ends the process (run in a child
// process of the test binary).
func TestPanicCrash(t *testing.T) {
	if os.Getenv("NETSERVE_CRASH_CHILD") == "1" {
		cfg := echoConfig()
		cfg.Panic = Crash
		cfg.Serve = func(*echoConn) { panic("crash on purpose") }
		s := New(cfg)
		ln := newPipeListener()
		go s.Serve(ln)
		ln.Dial()
		select {} // the panic ends the process
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPanicCrash$")
	cmd.Env = append(os.Environ(), "NETSERVE_CRASH_CHILD=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(string(out), "panic: crash on purpose") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// TestCheckIOModel: the fronts' IO models, and which run on loops.
func TestCheckIOModel(t *testing.T) {
	for _, tc := range []struct {
		m     string
		ok    bool
		loops bool
	}{
		{"", true, evloop.Supported()},
		{IOAuto, true, evloop.Supported()},
		{IOLoop, evloop.Supported(), evloop.Supported()},
		{IOGoroutine, true, false},
		{"epoll", false, false},
	} {
		err := CheckIOModel(tc.m)
		if (err == nil) != tc.ok {
			t.Errorf("CheckIOModel(%q) = %v, want ok %v", tc.m, err, tc.ok)
		}
		if err == nil && UseLoops(tc.m) != tc.loops {
			t.Errorf("UseLoops(%q) = %v, want %v", tc.m, UseLoops(tc.m), tc.loops)
		}
	}
}
