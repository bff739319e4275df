package transport

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lni/goutils/leaktest"
)

// trtRelay forwards TCP connections to a target and can hold the bytes going to
// it, as TCP's retransmission queue does during a partition: held bytes arrive, in
// order, when released.
type trtRelay struct {
	t      *testing.T
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	held  bool
	buf   []byte
	ups   []net.Conn
	conns []net.Conn
}

func newTrtRelay(t *testing.T, target string) *trtRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &trtRelay{t: t, ln: ln, target: target}
	r.wg.Add(1)
	go r.accept()
	return r
}

func (r *trtRelay) addr() string { return r.ln.Addr().String() }

func (r *trtRelay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", r.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		r.mu.Lock()
		r.conns, r.ups = append(r.conns, c), append(r.ups, up)
		r.mu.Unlock()
		r.wg.Add(2)
		go func() {
			defer r.wg.Done()
			_, _ = io.Copy(c, up)
			_ = c.Close()
		}()
		go func() {
			defer r.wg.Done()
			r.forward(c, up)
			_ = up.Close()
		}()
	}
}

// forward copies from c to up, keeping what arrives while held.
func (r *trtRelay) forward(c, up net.Conn) {
	b := make([]byte, 64<<10)
	for {
		n, err := c.Read(b)
		if n > 0 {
			r.mu.Lock()
			if r.held {
				r.buf = append(r.buf, b[:n]...)
				r.mu.Unlock()
			} else {
				r.mu.Unlock()
				if _, werr := up.Write(b[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// hold keeps the bytes sent to the target from now on.
func (r *trtRelay) hold() {
	r.mu.Lock()
	r.held = true
	r.mu.Unlock()
}

// release delivers the held bytes and forwards again.
func (r *trtRelay) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.held = false
	if len(r.buf) > 0 {
		if _, err := r.ups[len(r.ups)-1].Write(r.buf); err != nil {
			r.t.Errorf("relay: releasing held bytes: %v", err)
		}
		r.buf = nil
	}
}

func (r *trtRelay) close() {
	_ = r.ln.Close()
	r.mu.Lock()
	for _, c := range append(r.conns, r.ups...) {
		_ = c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// trtShiftedClock is a clock offset from the real one by a settable amount, with
// the real clock's monotonic reading.
type trtShiftedClock struct{ shift atomic.Int64 }

func (c *trtShiftedClock) now() time.Time { return time.Now().Add(time.Duration(c.shift.Load())) }

// trtRecorder is a handler that records the payloads it ran and the deadlines its
// contexts had.
type trtRecorder struct {
	mu        sync.Mutex
	ran       []string
	deadlines []time.Time
}

func (h *trtRecorder) serve(ctx context.Context, _ string, _ uint8, req []byte) ([]byte, error) {
	d, _ := ctx.Deadline()
	h.mu.Lock()
	h.ran = append(h.ran, string(req))
	h.deadlines = append(h.deadlines, d)
	h.mu.Unlock()
	return req, nil
}

func (h *trtRecorder) calls() ([]string, []time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ran), slices.Clone(h.deadlines)
}

// TestLateRequestNotRun (finding 7): a request that reaches the server
// after its caller's deadline (held in the network, as in TCP's retransmission
// queue during a partition) is not run, however far apart the two nodes' clocks
// are; requests in time run, with the caller's deadline. On the old protocol the
// server measured the time left from the frame's arrival and ran it.
func TestLateRequestNotRun(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		clientOff, serverOff time.Duration
	}{
		{"same clocks", 0, 0},
		{"client three minutes ahead", 3 * time.Minute, 0},
		{"client three minutes behind", -3 * time.Minute, 0},
		{"server two minutes ahead", 0, 2 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer leaktest.AfterTest(t)()
			var h trtRecorder
			var sclk, cclk trtShiftedClock
			sclk.shift.Store(int64(tc.serverOff))
			cclk.shift.Store(int64(tc.clientOff))
			scfg := trtConfig("srv", h.serve)
			scfg.Now = sclk.now
			srv := trtStart(t, scfg)
			defer srv.Close()
			relay := newTrtRelay(t, srv.Addr())
			defer relay.close()
			ccfg := trtConfig("cli", nil)
			ccfg.Now = cclk.now
			cli := trtStart(t, ccfg)
			defer cli.Close()

			call := func(payload string, timeout time.Duration) error {
				ctx, cancel := trtCtx(timeout)
				defer cancel()
				_, err := cli.Call(ctx, relay.addr(), 1, []byte(payload))
				return err
			}
			// In time: runs, and the handler's deadline is the caller's, not a
			// deadline three minutes off.
			ctx, cancel := trtCtx(2 * time.Second)
			want, _ := ctx.Deadline()
			_, err := cli.Call(ctx, relay.addr(), 1, []byte("in time"))
			cancel()
			if err != nil {
				t.Fatalf("in-time call: %v", err)
			}
			_, deadlines := h.calls()
			if diff := deadlines[0].Sub(want); diff < -time.Millisecond || diff > 50*time.Millisecond {
				t.Fatalf("handler deadline %v off the caller's", diff)
			}

			// Held past its deadline, then delivered: not run.
			relay.hold()
			if err := call("late", 100*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("held call: %v, want its deadline", err)
			}
			time.Sleep(50 * time.Millisecond) // the frame stays held past the deadline (not an assertion)
			relay.release()
			trtEventually(t, 5*time.Second, "the late request to be refused", func() bool { return srv.Stats().Expired == 1 })

			if err := call("after", 2*time.Second); err != nil {
				t.Fatalf("call after the late one: %v", err)
			}
			if ran, _ := h.calls(); !slices.Equal(ran, []string{"in time", "after"}) {
				t.Fatalf("handler ran %q, want the late request skipped", ran)
			}
			if d := cli.Stats().Dials; d != 1 {
				t.Fatalf("%d dials: the late refusal must not break the connection", d)
			}
		})
	}
}

// TestLateRefusal: a peer's late refusal reaches a caller that still
// waits as ErrLate, which also reads as a deadline. The first refusal in time makes
// the caller retry once on a fresh connection (its clock may have stood still);
// here the peer (a fake that refuses everything) refuses that too.
func TestLateRefusal(t *testing.T) {
	defer leaktest.AfterTest(t)()
	var handshakes, refused atomic.Int64
	addr, stop := trtFakeServer(t, func(c net.Conn, quit <-chan struct{}) {
		if _, _, err := authServe(c, []byte("test-secret"), authTestNonce(5)); err != nil {
			return
		}
		handshakes.Add(1)
		br := bufio.NewReader(c)
		for {
			f, err := readFrame(br, 1<<20)
			if err != nil {
				return
			}
			refused.Add(1)
			if _, err := c.Write(appendFrame(nil, &frame{kind: frameKindLate, id: f.id})); err != nil {
				return
			}
		}
	})
	defer stop()
	cli := trtStart(t, trtConfig("cli", nil))
	defer cli.Close()
	ctx, cancel := trtCtx(5 * time.Second)
	defer cancel()
	start := time.Now()
	_, err := cli.Call(ctx, addr, 1, []byte("x"))
	if !errors.Is(err, ErrLate) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call = %v, want ErrLate and context.DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the refusal took %v: the caller waited for its own deadline", took)
	}
	if h, r := handshakes.Load(), refused.Load(); h != 2 || r != 2 {
		t.Fatalf("%d handshakes, %d refusals; want the request sent twice, on two connections", h, r)
	}
}

// TestLateRefusalInTimeReconnects: a caller refused as late while its own
// deadline is far away learns that the server's bound of its clock is wrong (its
// clock stood still, say during a system suspend): the request did not run, so it
// sends it again on a fresh connection, whose handshake gives a fresh bound, and
// the connection's later requests are not refused either.
func TestLateRefusalInTimeReconnects(t *testing.T) {
	defer leaktest.AfterTest(t)()
	var h trtRecorder
	var sclk trtShiftedClock
	scfg := trtConfig("srv", h.serve)
	scfg.Now = sclk.now
	srv := trtStart(t, scfg)
	defer srv.Close()
	cli := trtStart(t, trtConfig("cli", nil))
	defer cli.Close()
	ctx, cancel := trtCtx(5 * time.Second)
	defer cancel()
	if _, err := cli.Call(ctx, srv.Addr(), 1, []byte("first")); err != nil {
		t.Fatal(err)
	}
	// Relative to the server's, the client's clock stood still for 10s: the
	// server's monotonic clock moves 10s ahead of it.
	sclk.shift.Store(int64(10 * time.Second))
	for _, p := range []string{"second", "third"} {
		if _, err := cli.Call(ctx, srv.Addr(), 1, []byte(p)); err != nil {
			t.Fatalf("call %s after the client's clock stood still: %v", p, err)
		}
	}
	if ran, _ := h.calls(); !slices.Equal(ran, []string{"first", "second", "third"}) {
		t.Fatalf("handler ran %q", ran)
	}
	if st, cs := srv.Stats(), cli.Stats(); st.Expired != 1 || cs.Dials != 2 {
		t.Fatalf("server refused %d, client dialed %d times; want 1 refusal and one redial", st.Expired, cs.Dials)
	}
}

// TestStalledServer: requests that wait behind a stalled handler (no
// handler slot free) past their deadline are not run when the slot frees.
func TestStalledServer(t *testing.T) {
	defer leaktest.AfterTest(t)()
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	var ran atomic.Int64
	scfg := trtConfig("srv", func(ctx context.Context, _ string, _ uint8, req []byte) ([]byte, error) {
		ran.Add(1)
		if string(req) == "stall" {
			started <- struct{}{}
			<-release
		}
		return req, nil
	})
	scfg.MaxInflight = 1
	srv := trtStart(t, scfg)
	defer srv.Close()
	cli := trtStart(t, trtConfig("cli", nil))
	defer cli.Close()

	stalled := make(chan error, 1)
	go func() {
		ctx, cancel := trtCtx(10 * time.Second)
		defer cancel()
		_, err := cli.Call(ctx, srv.Addr(), 1, []byte("stall"))
		stalled <- err
	}()
	<-started
	const queued = 5
	var wg sync.WaitGroup
	for range queued {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := trtCtx(100 * time.Millisecond)
			defer cancel()
			if _, err := cli.Call(ctx, srv.Addr(), 1, []byte("queued")); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("queued call: %v, want its deadline", err)
			}
		}()
	}
	wg.Wait() // every queued call's deadline has passed
	// and then some: the server may allow the deadline a millisecond or two of
	// rounding and delay (not an assertion).
	time.Sleep(50 * time.Millisecond)
	close(release)
	if err := <-stalled; err != nil {
		t.Fatalf("stalled call: %v", err)
	}
	trtEventually(t, 5*time.Second, "the queued requests to be refused", func() bool { return srv.Stats().Expired == queued })
	if n := ran.Load(); n != 1 {
		t.Fatalf("%d handlers ran, want only the stalled one", n)
	}
}
