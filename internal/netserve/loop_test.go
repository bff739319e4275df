//go:build linux

package netserve

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lni/goutils/leaktest"

	"github.com/dynakv/dynakv/internal/evloop"
	"github.com/dynakv/dynakv/internal/leakcheck"
)

func checkLeaks(t *testing.T) { leakcheck.Check(t) }

// lineEcho is a loop handler that echoes complete lines.
type lineEcho struct {
	c      *echoConn
	closed func(error)
}

func (h *lineEcho) OnData(lc *evloop.Conn, in []byte) int {
	i := bytes.LastIndexByte(in, '\n')
	if i < 0 {
		return 0
	}
	lc.Write(in[:i+1])
	return i + 1
}

func (h *lineEcho) OnClose(_ *evloop.Conn, err error) {
	if h.closed != nil {
		h.closed(err)
	}
}

// wrapped hides a *net.TCPConn's type, as a TLS connection would: it must go to
// the goroutine driver.
type wrapped struct{ net.Conn }

type wrapListener struct{ net.Listener }

func (l wrapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return wrapped{c}, nil
}

// loopServer starts s with the echo handlers on a group of two loops behind a
// loopback listener (wrap: connections hidden from the loop driver).
func loopServer(t *testing.T, cfg Config[*echoConn], wrap bool) (*Server[*echoConn], string, func()) {
	t.Helper()
	g, err := evloop.NewGroup(2, evloop.Config{Panic: evloop.PanicCrash, TickInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Loops = g
	if cfg.OnLoop == nil {
		cfg.OnLoop = func(c *echoConn) evloop.Handler { return &lineEcho{c: c} }
	}
	s := New(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if wrap {
		ln = wrapListener{ln}
	}
	done := serve(s, ln)
	stop := func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v", err)
		}
		g.Close()
	}
	return s, addr, stop
}

func dialTCP(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

// TestLoopDriver: plain TCP connections run on the loops, a connection that is
// not a *net.TCPConn on a goroutine; both are registered with ids, counted, and
// closed by Close, which waits for every OnClose and leaves no goroutine or
// descriptor behind.
func TestLoopDriver(t *testing.T) {
	for _, wrap := range []bool{false, true} {
		t.Run(fmt.Sprintf("wrapped=%v", wrap), func(t *testing.T) {
			checkLeaks(t)
			var served, looped, closes atomic.Int64
			cfg := echoConfig()
			inner := cfg.Serve
			cfg.Serve = func(c *echoConn) { served.Add(1); inner(c) }
			cfg.OnLoop = func(c *echoConn) evloop.Handler {
				looped.Add(1)
				return &lineEcho{c: c, closed: func(err error) {
					if err != nil && !errors.Is(err, evloop.ErrClosed) && !errors.Is(err, io.EOF) {
						t.Errorf("OnClose(%v)", err)
					}
					closes.Add(1)
				}}
			}
			s, addr, stop := loopServer(t, cfg, wrap)
			var clients []net.Conn
			for i := range 6 {
				c := dialTCP(t, addr)
				defer c.Close()
				roundTrip(t, c, fmt.Sprintf("line %d", i))
				clients = append(clients, c)
			}
			if s.Len() != 6 {
				t.Fatalf("Len = %d", s.Len())
			}
			if got := s.Conns(); len(got) != 6 || got[0].id != 1 || got[5].id != 6 {
				t.Fatalf("Conns = %v", got)
			}
			if wrap && (served.Load() != 6 || looped.Load() != 0) {
				t.Fatalf("wrapped: served %d, looped %d", served.Load(), looped.Load())
			}
			if !wrap && (served.Load() != 0 || looped.Load() != 6) {
				t.Fatalf("plain TCP: served %d, looped %d", served.Load(), looped.Load())
			}
			// A client leaving is unregistered.
			clients[0].Close()
			for deadline := time.Now().Add(10 * time.Second); s.Len() != 5; {
				if time.Now().After(deadline) {
					t.Fatalf("Len = %d after a client left", s.Len())
				}
				time.Sleep(time.Millisecond)
			}
			stop()
			if s.Len() != 0 {
				t.Fatalf("Len = %d after Close", s.Len())
			}
			if !wrap && closes.Load() != 6 {
				t.Fatalf("OnClose ran %d times, want 6", closes.Load())
			}
			for _, c := range clients[1:] {
				if b, err := io.ReadAll(c); len(b) != 0 || err != nil {
					t.Fatalf("closed client read %q, %v", b, err)
				}
			}
		})
	}
}

// TestLoopMaxClients: MaxClients holds on the loop driver, and a client that
// leaves frees its place.
func TestLoopMaxClients(t *testing.T) {
	checkLeaks(t)
	cfg := echoConfig()
	cfg.MaxClients = 1
	cfg.RefuseLine = []byte("-ERR max number of clients reached\r\n")
	s, addr, stop := loopServer(t, cfg, false)
	defer stop()
	a := dialTCP(t, addr)
	roundTrip(t, a, "a")
	b := dialTCP(t, addr)
	if got, _ := io.ReadAll(b); string(got) != string(cfg.RefuseLine) {
		t.Fatalf("refused client got %q", got)
	}
	b.Close()
	a.Close()
	for deadline := time.Now().Add(10 * time.Second); s.Len() != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("Len = %d after the client left", s.Len())
		}
		time.Sleep(time.Millisecond)
	}
	c := dialTCP(t, addr)
	defer c.Close()
	roundTrip(t, c, "c")
}

// TestLoopWriteTimeout: a loop connection whose output does not move for
// WriteTimeout is closed by the tick, and WriteTimedOut is told.
func TestLoopWriteTimeout(t *testing.T) {
	checkLeaks(t)
	cfg := echoConfig()
	cfg.WriteTimeout = 200 * time.Millisecond
	timedOut := make(chan string, 1)
	cfg.Events.WriteTimedOut = func(nc net.Conn) { timedOut <- nc.RemoteAddr().String() }
	closed := make(chan error, 1)
	blob := bytes.Repeat([]byte("x"), 32<<20)
	cfg.OnLoop = func(*echoConn) evloop.Handler {
		return evloop.HandlerFuncs{
			Data:  func(lc *evloop.Conn, in []byte) int { lc.Write(blob); return len(in) },
			Close: func(_ *evloop.Conn, err error) { closed <- err },
		}
	}
	s, addr, stop := loopServer(t, cfg, false)
	defer stop()
	c := dialTCP(t, addr) // never reads
	defer c.Close()
	if _, err := c.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-timedOut:
		if got != c.LocalAddr().String() {
			t.Errorf("WriteTimedOut for %s, want %s", got, c.LocalAddr())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the client that does not read was not closed")
	}
	if err := <-closed; err != nil {
		t.Errorf("OnClose(%v), want nil", err)
	}
	for deadline := time.Now().Add(10 * time.Second); s.Len() != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("Len = %d", s.Len())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestHandoffBound: at most MaxHandoff funcs run at once; the others wait and
// run in order; Close waits for all of them; Handoff after Close refuses.
func TestHandoffBound(t *testing.T) {
	defer leaktest.AfterTest(t)()
	cfg := echoConfig()
	cfg.MaxHandoff = 2
	s := New(cfg)
	release := make(chan struct{})
	var running, most atomic.Int64
	var mu sync.Mutex
	var order []int
	for i := range 6 {
		if !s.Handoff(func() {
			n := running.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			<-release
			running.Add(-1)
		}) {
			t.Fatal("Handoff refused before Close")
		}
	}
	time.Sleep(20 * time.Millisecond)
	if n := running.Load(); n != 2 {
		t.Fatalf("%d running, want 2", n)
	}
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned with handed-off funcs running")
	case <-time.After(20 * time.Millisecond):
	}
	started := func() int { mu.Lock(); defer mu.Unlock(); return len(order) }
	for k := range 4 { // one ends, the next waiting one starts: in order
		release <- struct{}{}
		for deadline := time.Now().Add(10 * time.Second); started() != 3+k; {
			if time.Now().After(deadline) {
				t.Fatalf("%d started after %d released", started(), k+1)
			}
			time.Sleep(time.Millisecond)
		}
	}
	close(release)
	<-closed
	if most.Load() != 2 {
		t.Fatalf("at most %d ran at once, want 2", most.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(order[2:]) != "[2 3 4 5]" {
		t.Fatalf("run order %v", order)
	}
	if s.Handoff(func() {}) {
		t.Fatal("Handoff after Close accepted")
	}
}

// TestHandoffPoolKeepsWorkers: a goroutine that ran a func waits for the next
// (keeping its stack) for poolIdle, then ends; at most poolMaxIdle wait; Close
// ends the waiting ones at once.
func TestHandoffPoolKeepsWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var p handoffPool
		p.max = 2 * poolMaxIdle
		run := func(f func()) { f() }
		counts := func() (running, idle int) {
			p.mu.Lock()
			defer p.mu.Unlock()
			return p.running, p.idle
		}
		ran := 0
		for range 100 { // one after another: one goroutine does them all
			p.submit(func() { ran++ }, run)
			synctest.Wait()
			if r, i := counts(); r != 1 || i != 1 {
				t.Fatalf("after a func: %d goroutines, %d waiting; want 1 and 1", r, i)
			}
		}
		if ran != 100 {
			t.Fatalf("%d funcs ran, want 100", ran)
		}
		time.Sleep(poolIdle + time.Second)
		synctest.Wait()
		if r, i := counts(); r != 0 || i != 0 {
			t.Fatalf("after poolIdle: %d goroutines, %d waiting; want none", r, i)
		}
		// Many at once: the ones past poolMaxIdle end as soon as they are done.
		release := make(chan struct{})
		for range p.max {
			p.submit(func() { <-release }, run)
		}
		synctest.Wait()
		if r, _ := counts(); r != p.max {
			t.Fatalf("%d goroutines for %d blocked funcs", r, p.max)
		}
		close(release)
		synctest.Wait()
		if r, i := counts(); r != poolMaxIdle || i != poolMaxIdle {
			t.Fatalf("after the burst: %d goroutines, %d waiting; want %d", r, i, poolMaxIdle)
		}
		p.close()
		if r, i := counts(); r != 0 || i != 0 {
			t.Fatalf("after close: %d goroutines, %d waiting", r, i)
		}
		if p.submit(func() {}, run) {
			t.Fatal("submit after close accepted")
		}
	})
}
