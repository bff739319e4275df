//go:build linux

package evloop

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dynakv/dynakv/internal/leakcheck"
)

func TestMain(m *testing.M) {
	// Start Go's own netpoller (an epoll fd and an eventfd) before any test counts
	// its descriptors.
	if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
	}
	os.Exit(m.Run())
}

// checkLeaks checks, when the test ends, that no goroutine is left and that the
// descriptor count is back to what it was.
func checkLeaks(t *testing.T) { leakcheck.Check(t) }

// server is a group of loops behind a loopback listener.
type server struct {
	g  *Group
	ln net.Listener
	wg sync.WaitGroup
}

// serve starts a group of n loops with cfg, and an accept goroutine that gives
// every connection to the group with the handler newHandler returns. The test's
// cleanup closes it all.
func serve(t testing.TB, n int, cfg Config, newHandler func() Handler) *server {
	t.Helper()
	g, err := NewGroup(n, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		g.Close()
		t.Fatal(err)
	}
	s := &server{g: g, ln: ln}
	s.wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			fd, err := Dup(nc.(*net.TCPConn))
			nc.Close()
			if err != nil {
				t.Error(err)
				continue
			}
			if _, err := g.Add(fd, newHandler()); err != nil && !errors.Is(err, ErrClosed) {
				t.Error(err)
			}
		}
	})
	t.Cleanup(s.close)
	return s
}

func (s *server) close() {
	s.ln.Close()
	s.wg.Wait()
	s.g.Close()
}

func (s *server) dial(t testing.TB) *net.TCPConn {
	t.Helper()
	nc, err := net.Dial("tcp", s.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	return nc.(*net.TCPConn)
}

// lines is a handler that answers every complete line with reply(line) and keeps
// an incomplete one for later.
type lines struct {
	reply   func(c *Conn, line []byte)
	closed  chan error // gets OnClose's error, if not nil
	drained atomic.Int32
}

func (h *lines) OnData(c *Conn, in []byte) int {
	used := 0
	for !c.Paused() && !c.Closed() {
		i := bytes.IndexByte(in[used:], '\n')
		if i < 0 {
			break
		}
		line := in[used : used+i+1]
		used += i + 1
		if h.reply != nil {
			h.reply(c, line)
		} else {
			c.Write(line)
		}
	}
	return used
}

func (h *lines) OnClose(c *Conn, err error) {
	if h.closed != nil {
		h.closed <- err
	}
}

func (h *lines) OnDrain(c *Conn) { h.drained.Add(1) }

func echo() Handler { return &lines{} }

// readN reads exactly n bytes.
func readN(t testing.TB, r io.Reader, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatalf("read %d bytes: %v (got %q...)", n, err, b[:min(n, 40)])
	}
	return string(b)
}

// TestEchoPipelines: many connections each send a pipeline of lines split at
// random points; each gets its own lines back, in order.
func TestEchoPipelines(t *testing.T) {
	checkLeaks(t)
	s := serve(t, 3, Config{Panic: PanicCrash}, echo)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			nc := s.dial(t)
			defer nc.Close()
			var want bytes.Buffer
			for j := range 2000 {
				fmt.Fprintf(&want, "conn %d line %d %s\n", i, j, strings.Repeat("x", rng.IntN(300)))
			}
			errc := make(chan error, 1)
			go func() {
				b := want.Bytes()
				for len(b) > 0 {
					k := min(len(b), 1+rng.IntN(9000))
					if _, err := nc.Write(b[:k]); err != nil {
						errc <- err
						return
					}
					b = b[k:]
				}
				errc <- nil
			}()
			if got := readN(t, nc, want.Len()); got != want.String() {
				t.Errorf("conn %d: the echo differs", i)
			}
			if err := <-errc; err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// TestChurn opens and closes 10,000 connections, 50 at a time, each with one
// request; the loops end with none, and every OnClose ran.
func TestChurn(t *testing.T) {
	checkLeaks(t)
	var closes atomic.Int64
	s := serve(t, 2, Config{Panic: PanicCrash}, func() Handler {
		return HandlerFuncs{
			Data:  func(c *Conn, in []byte) int { c.Write(in); return len(in) },
			Close: func(*Conn, error) { closes.Add(1) },
		}
	})
	const total, par = 10000, 50
	work := make(chan int)
	var wg sync.WaitGroup
	for range par {
		wg.Go(func() {
			for i := range work {
				nc := s.dial(t)
				msg := fmt.Sprintf("ping %d\n", i)
				if _, err := nc.Write([]byte(msg)); err != nil {
					t.Error(err)
				} else if got := readN(t, nc, len(msg)); got != msg {
					t.Errorf("got %q; want %q", got, msg)
				}
				if i%2 == 0 {
					nc.SetLinger(0) // a reset rather than a FIN
				}
				nc.Close()
			}
		})
	}
	for i := range total {
		work <- i
	}
	close(work)
	wg.Wait()
	waitFor(t, "every connection closed", func() bool { return closes.Load() == total && s.g.Len() == 0 })
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// onLoop runs f on c's loop and waits for it.
func onLoop(t *testing.T, l *Loop, f func()) {
	t.Helper()
	done := make(chan struct{})
	if !l.Post(func() { f(); close(done) }) {
		t.Fatal("the loop is closed")
	}
	<-done
}

// TestSlowReader: a client that does not read makes the output wait (EAGAIN,
// then EPOLLOUT); once it reads, all of it arrives in order and OnDrain runs.
func TestSlowReader(t *testing.T) {
	checkLeaks(t)
	const size = 16 << 20
	blob := make([]byte, size)
	for i := range blob {
		blob[i] = byte('a' + i%26)
	}
	conns := make(chan *Conn, 1)
	h := &lines{reply: func(c *Conn, line []byte) {
		c.Write(blob)
		conns <- c
	}}
	s := serve(t, 1, Config{Panic: PanicCrash}, func() Handler { return h })
	nc := s.dial(t)
	defer nc.Close()
	if _, err := nc.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	c := <-conns
	l := s.g.Loops()[0]
	var pending int
	var since time.Time
	var wantOut bool
	waitFor(t, "the write to stall", func() bool {
		onLoop(t, l, func() { pending, since, wantOut = c.OutPending(), c.OutPendingSince(), c.wantOut })
		return wantOut
	})
	if pending == 0 || pending == size || since.IsZero() {
		t.Errorf("stalled with %d of %d bytes pending, since %v", pending, size, since)
	}
	// Output written meanwhile queues behind it.
	onLoop(t, l, func() { c.WriteString("tail\n") })
	got := readN(t, bufio.NewReaderSize(nc, 64<<10), size+5)
	if got[:size] != string(blob) || got[size:] != "tail\n" {
		t.Error("the output differs")
	}
	waitFor(t, "OnDrain", func() bool { return h.drained.Load() == 1 })
	onLoop(t, l, func() { pending, since, wantOut = c.OutPending(), c.OutPendingSince(), c.wantOut })
	if pending != 0 || !since.IsZero() || wantOut {
		t.Errorf("after the drain: %d pending, since %v, EPOLLOUT %v", pending, since, wantOut)
	}
}

// TestTickClosesStaleWriter: Tick sees OutPendingSince and closes a connection
// whose output has not moved for a while.
func TestTickClosesStaleWriter(t *testing.T) {
	checkLeaks(t)
	var mu sync.Mutex
	var all []*Conn
	closed := make(chan error, 1)
	blob := make([]byte, 16<<20)
	tick := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range all {
			if s := c.OutPendingSince(); !s.IsZero() && time.Since(s) > 300*time.Millisecond {
				c.Close()
			}
		}
	}
	s := serve(t, 1, Config{Panic: PanicCrash, Tick: tick, TickInterval: 20 * time.Millisecond}, func() Handler {
		return &lines{closed: closed, reply: func(c *Conn, _ []byte) {
			mu.Lock()
			all = append(all, c)
			mu.Unlock()
			c.Write(blob)
		}}
	})
	nc := s.dial(t)
	defer nc.Close()
	if _, err := nc.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("OnClose(%v); want nil (Conn.Close)", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the stale writer was not closed")
	}
}

// TestHalfClose: a client that shuts its sending side gets the replies to all it
// sent, then EOF; an incomplete last line is dropped. A reply that the kernel
// cannot take at once (EPOLLOUT) is still written in full before the close.
func TestHalfClose(t *testing.T) {
	checkLeaks(t)
	big := strings.Repeat("z", 16<<20) + "\n"
	closed := make(chan error, 1)
	s := serve(t, 1, Config{Panic: PanicCrash}, func() Handler {
		return &lines{closed: closed, reply: func(c *Conn, line []byte) {
			if string(line) == "big\n" {
				c.WriteString(big)
				return
			}
			c.Write(line)
		}}
	})
	for _, tc := range []struct{ send, want string }{
		{"a\nb\nincomplete", "a\nb\n"},
		{"a\nbig\nb\n", "a\n" + big + "b\n"},
	} {
		nc := s.dial(t)
		defer nc.Close()
		if _, err := nc.Write([]byte(tc.send)); err != nil {
			t.Fatal(err)
		}
		if err := nc.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // let the server see the EOF before the client reads
		got, err := io.ReadAll(nc)
		if err != nil || string(got) != tc.want {
			t.Errorf("%.20q: got %d bytes (%.20q), %v; want %d bytes, then EOF", tc.send, len(got), got, err, len(tc.want))
		}
		if err := <-closed; err != io.EOF {
			t.Errorf("OnClose(%v); want EOF", err)
		}
	}
}

// pauser pauses on "slow" lines and answers them from another goroutine, as a
// handoff does; later lines wait and keep their order.
func pauser(wg *sync.WaitGroup, closed chan error) Handler {
	h := &lines{closed: closed}
	h.reply = func(c *Conn, line []byte) {
		if !bytes.HasPrefix(line, []byte("slow")) {
			c.Write(line)
			return
		}
		c.Pause()
		reply := "done " + string(line)
		wg.Go(func() {
			time.Sleep(20 * time.Millisecond)
			c.Post(func() {
				c.WriteString(reply)
				c.Resume()
			})
		})
	}
	return h
}

// TestPauseResume: lines that arrived behind a paused one are answered after it,
// in order, also when nothing more arrives, and also after a half-close.
func TestPauseResume(t *testing.T) {
	checkLeaks(t)
	var wg sync.WaitGroup
	defer wg.Wait()
	closed := make(chan error, 4)
	s := serve(t, 1, Config{Panic: PanicCrash}, func() Handler { return pauser(&wg, closed) })
	nc := s.dial(t)
	defer nc.Close()
	send := "x\nslow 1\ny\nslow 2\nz\n"
	want := "x\ndone slow 1\ny\ndone slow 2\nz\n"
	if _, err := nc.Write([]byte(send)); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, nc, len(want)); got != want {
		t.Errorf("got %q; want %q", got, want)
	}
	// The same, with the sending side shut at once: the replies still all come.
	if _, err := nc.Write([]byte(send)); err != nil {
		t.Fatal(err)
	}
	if err := nc.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(nc)
	if err != nil || string(got) != want {
		t.Errorf("after a half-close: got %q, %v; want %q", got, err, want)
	}
	if err := <-closed; err != io.EOF {
		t.Errorf("OnClose(%v); want EOF", err)
	}
}

// TestResetWhilePaused: a paused connection whose peer resets is closed, without
// the loop spinning on its events.
func TestResetWhilePaused(t *testing.T) {
	checkLeaks(t)
	closed := make(chan error, 1)
	paused := make(chan struct{})
	s := serve(t, 1, Config{Panic: PanicCrash}, func() Handler {
		return &lines{closed: closed, reply: func(c *Conn, _ []byte) { c.Pause(); close(paused) }}
	})
	nc := s.dial(t)
	if _, err := nc.Write([]byte("pause\n")); err != nil {
		t.Fatal(err)
	}
	<-paused
	nc.SetLinger(0)
	nc.Close()
	select {
	case err := <-closed:
		if err == nil {
			t.Error("OnClose(nil); want the reset")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the reset connection was not closed")
	}
}

// TestPostStorm: many goroutines post to several loops at once; every func runs
// once, on its loop, in each poster's order.
func TestPostStorm(t *testing.T) {
	checkLeaks(t)
	g, err := NewGroup(4, Config{Panic: PanicCrash})
	if err != nil {
		t.Fatal(err)
	}
	const posters, each = 8, 5000
	// last[l][p] is the last number poster p had run on loop l; only loop l
	// touches its row.
	var last [4][posters]int
	var ran [4]int
	var wg sync.WaitGroup
	for p := range posters {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(p), 2))
			for i := 1; i <= each; i++ {
				li := rng.IntN(4)
				if !g.Loops()[li].Post(func() {
					if last[li][p] >= i {
						panic(fmt.Sprintf("loop %d: poster %d's %d ran after %d", li, p, i, last[li][p]))
					}
					last[li][p] = i
					ran[li]++
				}) {
					t.Error("Post refused before Close")
				}
			}
		})
	}
	wg.Wait()
	g.Close() // runs what was posted, then ends the loops
	total := 0
	for _, n := range ran {
		total += n
	}
	if total != posters*each {
		t.Errorf("%d funcs ran; want %d", total, posters*each)
	}
	if g.Loops()[0].Post(func() {}) {
		t.Error("Post accepted after Close")
	}
}

// TestPanicClosesOnlyItsConn: a panic in OnData closes that connection (OnClose
// gets a *PanicError, OnPanic is told) and the other keeps working; so does a
// panic in a posted func.
func TestPanicClosesOnlyItsConn(t *testing.T) {
	checkLeaks(t)
	closed := make(chan error, 2)
	var panics atomic.Int32
	cfg := Config{OnPanic: func(c *Conn, p *PanicError) { panics.Add(1) }}
	s := serve(t, 1, cfg, func() Handler {
		return &lines{closed: closed, reply: func(c *Conn, line []byte) {
			if string(line) == "panic\n" {
				panic("boom")
			}
			c.Write(line)
		}}
	})
	a, b := s.dial(t), s.dial(t)
	defer a.Close()
	defer b.Close()
	if _, err := b.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	readN(t, b, 6)
	if _, err := a.Write([]byte("panic\n")); err != nil {
		t.Fatal(err)
	}
	if n, err := a.Read(make([]byte, 1)); err == nil {
		t.Errorf("read %d bytes from the panicked connection", n)
	}
	var pe *PanicError
	if err := <-closed; !errors.As(err, &pe) || pe.Value != "boom" || len(pe.Stack) == 0 {
		t.Errorf("OnClose(%v); want the panic", err)
	}
	if _, err := b.Write([]byte("still\n")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, b, 6); got != "still\n" {
		t.Errorf("got %q", got)
	}
	// A panic in a posted func is reported and the loop goes on.
	l := s.g.Loops()[0]
	l.Post(func() { panic("posted") })
	onLoop(t, l, func() {})
	if n := panics.Load(); n != 2 {
		t.Errorf("OnPanic told of %d panics; want 2", n)
	}
}

// TestBadUsed: OnData returning more than it was given closes the connection.
func TestBadUsed(t *testing.T) {
	checkLeaks(t)
	closed := make(chan error, 1)
	s := serve(t, 1, Config{Panic: PanicCrash}, func() Handler {
		return HandlerFuncs{Data: func(c *Conn, in []byte) int { return len(in) + 1 }, Close: func(_ *Conn, err error) { closed <- err }}
	})
	nc := s.dial(t)
	defer nc.Close()
	nc.Write([]byte("x"))
	if err := <-closed; err != ErrBadUsed {
		t.Errorf("OnClose(%v); want ErrBadUsed", err)
	}
}

// TestCloseWithLiveConns: Close closes every connection (OnClose gets ErrClosed,
// the clients see EOF after their pending replies), concurrent Closes all wait,
// and Add and Post after it are refused.
func TestCloseWithLiveConns(t *testing.T) {
	checkLeaks(t)
	const n = 100
	closed := make(chan error, n)
	s := serve(t, 3, Config{Panic: PanicCrash}, func() Handler { return &lines{closed: closed} })
	var ncs []*net.TCPConn
	for range n {
		nc := s.dial(t)
		defer nc.Close()
		nc.Write([]byte("hi\n"))
		readN(t, nc, 3)
		ncs = append(ncs, nc)
	}
	s.ln.Close()
	s.wg.Wait()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(s.g.Close)
	}
	wg.Wait()
	if l := s.g.Len(); l != 0 {
		t.Errorf("%d connections after Close", l)
	}
	for range n {
		if err := <-closed; err != ErrClosed {
			t.Errorf("OnClose(%v); want ErrClosed", err)
		}
	}
	for _, nc := range ncs {
		if b, err := io.ReadAll(nc); err != nil || len(b) != 0 {
			t.Errorf("after Close: %q, %v; want EOF", b, err)
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	fd, _ := Dup(w)
	w.Close()
	if _, err := s.g.Add(fd, echo()); !errors.Is(err, ErrClosed) {
		t.Errorf("Add after Close: %v; want ErrClosed", err)
	}
	// Add closed fd: the pipe's reader sees EOF.
	if b, err := io.ReadAll(r); err != nil || len(b) != 0 {
		t.Errorf("the added fd is still open: %q, %v", b, err)
	}
}

// TestStaleConn: once a connection has closed, its Conn.Post funcs do not run,
// even when a new connection got the same descriptor.
func TestStaleConn(t *testing.T) {
	checkLeaks(t)
	conns := make(chan *Conn, 2)
	closed := make(chan error, 2)
	s := serve(t, 1, Config{Panic: PanicCrash}, func() Handler {
		return &lines{closed: closed, reply: func(c *Conn, line []byte) { c.Write(line); conns <- c }}
	})
	a := s.dial(t)
	a.Write([]byte("a\n"))
	readN(t, a, 2)
	ca := <-conns
	a.Close()
	<-closed
	b := s.dial(t)
	defer b.Close()
	b.Write([]byte("b\n"))
	readN(t, b, 2)
	cb := <-conns
	t.Logf("fds: old %d, new %d", ca.Fd(), cb.Fd())
	ran := make(chan bool, 1)
	ca.Post(func() { ran <- true; ca.WriteString("stale\n") })
	onLoop(t, s.g.Loops()[0], func() {})
	select {
	case <-ran:
		t.Error("a closed connection's post ran")
	default:
	}
	b.Write([]byte("c\n"))
	if got := readN(t, b, 2); got != "c\n" {
		t.Errorf("got %q", got)
	}
}

// TestGroupPlacesOnFewest: connections spread over the loops by count.
func TestGroupPlacesOnFewest(t *testing.T) {
	checkLeaks(t)
	s := serve(t, 4, Config{Panic: PanicCrash}, echo)
	for range 40 {
		nc := s.dial(t)
		defer nc.Close()
		nc.Write([]byte("x\n"))
		readN(t, nc, 2)
	}
	for i, l := range s.g.Loops() {
		if l.Len() != 10 {
			t.Errorf("loop %d has %d connections; want 10", i, l.Len())
		}
	}
}

// BenchmarkEcho measures pipelined echo throughput: 16 lines in flight on each
// of 8 connections. Not for figures while other work shares the machine.
func BenchmarkEcho(b *testing.B) {
	s := serve(b, 0, Config{}, echo)
	const conns, depth = 8, 16
	req := bytes.Repeat([]byte("ping 0123456789\n"), depth)
	b.SetBytes(int64(len(req)))
	var wg sync.WaitGroup
	var next atomic.Int64
	b.ResetTimer()
	for range conns {
		wg.Go(func() {
			nc, err := net.Dial("tcp", s.ln.Addr().String())
			if err != nil {
				b.Error(err)
				return
			}
			defer nc.Close()
			buf := make([]byte, len(req))
			for next.Add(1) <= int64(b.N) {
				if _, err := nc.Write(req); err != nil {
					b.Error(err)
					return
				}
				if _, err := io.ReadFull(nc, buf); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestOnTick: funcs given to OnTick run on every loop of a group, every
// TickInterval, also without Config.Tick.
func TestOnTick(t *testing.T) {
	checkLeaks(t)
	g, err := NewGroup(2, Config{Panic: PanicCrash, TickInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ticked := make(chan int, 64)
	for i, l := range g.Loops() {
		l.OnTick(func() {
			select {
			case ticked <- i:
			default:
			}
		})
	}
	seen := map[int]int{}
	deadline := time.After(20 * time.Second)
	for seen[0] < 3 || seen[1] < 3 {
		select {
		case i := <-ticked:
			seen[i]++
		case <-deadline:
			t.Fatalf("ticks seen per loop: %v", seen)
		}
	}
}

// TestWantDrain: after WantDrain, OnDrain comes once the output is written, also
// when the kernel takes it at once and when there is none; without it, a write
// taken at once calls no OnDrain.
func TestWantDrain(t *testing.T) {
	checkLeaks(t)
	var h *lines
	h = &lines{reply: func(c *Conn, line []byte) {
		c.Write(line)
		switch string(line) {
		case "want\n":
			c.WantDrain()
		case "empty\n":
			c.Post(c.WantDrain) // next iteration: the line is written already
		}
	}}
	s := serve(t, 1, Config{Panic: PanicCrash}, func() Handler { return h })
	nc := s.dial(t)
	defer nc.Close()
	r := bufio.NewReader(nc)
	for i, step := range []struct {
		line  string
		drain int32
	}{{"plain\n", 0}, {"want\n", 1}, {"plain\n", 1}, {"empty\n", 2}} {
		if _, err := nc.Write([]byte(step.line)); err != nil {
			t.Fatal(err)
		}
		if got, err := r.ReadString('\n'); err != nil || got != step.line {
			t.Fatalf("step %d: read %q, %v", i, got, err)
		}
		for deadline := time.Now().Add(10 * time.Second); h.drained.Load() != step.drain; {
			if time.Now().After(deadline) {
				t.Fatalf("step %d (%q): %d OnDrain calls, want %d", i, step.line, h.drained.Load(), step.drain)
			}
			time.Sleep(time.Millisecond)
		}
	}
	time.Sleep(20 * time.Millisecond)
	if n := h.drained.Load(); n != 2 {
		t.Fatalf("%d OnDrain calls, want 2", n)
	}
}

// TestOnIteration: every iteration reports how long it kept the loop busy,
// which covers the work of a posted func.
func TestOnIteration(t *testing.T) {
	checkLeaks(t)
	var mu sync.Mutex
	var longest time.Duration
	g, err := NewGroup(1, Config{OnIteration: func(busy time.Duration) {
		mu.Lock()
		longest = max(longest, busy)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	g.Loops()[0].Post(func() { time.Sleep(20 * time.Millisecond); close(done) })
	<-done
	defer g.Close()
	seen := func() time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return longest
	}
	// The iteration reports once its writes and hooks are done, after the func.
	for end := time.Now().Add(10 * time.Second); seen() < 20*time.Millisecond && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}
	if got := seen(); got < 20*time.Millisecond {
		t.Fatalf("longest iteration %v; the posted func alone took 20ms", got)
	}
}

// TestHooksRunAtShutdown: work a post did in the loop's last iteration, which
// ends as soon as its posts ran because the loop is closing, still gets the
// BeforeSleep hooks (a front's write set keeps key locks until its hook
// commits it).
func TestHooksRunAtShutdown(t *testing.T) {
	checkLeaks(t)
	g, err := NewGroup(1, Config{})
	if err != nil {
		t.Fatal(err)
	}
	l := g.Loops()[0]
	staged, finished := false, false // loop goroutine only, then read after Close
	l.BeforeSleep(func() {
		if staged {
			finished = true
		}
	})
	started, release := make(chan struct{}), make(chan struct{})
	l.Post(func() { close(started); <-release })
	<-started
	l.Post(func() { staged = true }) // runs in the iteration that sees the close
	closed := make(chan struct{})
	go func() { g.Close(); close(closed) }()
	for end := time.Now().Add(10 * time.Second); ; {
		l.mu.Lock()
		closing := l.closing
		l.mu.Unlock()
		if closing || time.Now().After(end) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	<-closed
	if !staged || !finished {
		t.Fatalf("post ran: %v, hooks after it: %v", staged, finished)
	}
}
