package transport

import (
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lni/goutils/leaktest"
)

// trtServerConns returns how many inbound connections a transport holds.
func trtServerConns(tr *Transport) int { return tr.ns.Len() }

// TestForget: forgetting a peer drops its entry from the peer table and
// closes its idle connection (the peer sees it go); a call awaiting a reply fails
// with ErrUnreachable; a later call starts afresh.
func TestForget(t *testing.T) {
	defer leaktest.AfterTest(t)()
	b := newTrtBlocker()
	srv := trtStart(t, trtConfig("srv", b.serve))
	defer srv.Close()
	cli := trtStart(t, trtConfig("cli", nil))
	defer cli.Close()
	addr := srv.Addr()

	ctx, cancel := trtCtx(5 * time.Second)
	defer cancel()
	close(b.release) // answer at once for now
	if _, err := cli.Call(ctx, addr, 1, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if got := cli.PeerAddrs(); !slices.Equal(got, []string{addr}) {
		t.Fatalf("PeerAddrs = %v, want [%s]", got, addr)
	}
	trtEventually(t, 5*time.Second, "the server to hold the connection", func() bool { return trtServerConns(srv) == 1 })

	if !cli.Forget(addr) {
		t.Fatal("Forget of a known peer reported none")
	}
	if got := cli.PeerAddrs(); len(got) != 0 {
		t.Fatalf("PeerAddrs after Forget = %v", got)
	}
	trtEventually(t, 5*time.Second, "the forgotten connection to close", func() bool { return trtServerConns(srv) == 0 })
	if cli.Forget(addr) {
		t.Fatal("second Forget reported an entry")
	}

	// A call after Forget dials anew.
	if _, err := cli.Call(ctx, addr, 1, []byte("y")); err != nil {
		t.Fatalf("call after Forget: %v", err)
	}

	// A call awaiting its reply when its peer is forgotten fails as unreachable.
	b2 := newTrtBlocker()
	slow := trtStart(t, trtConfig("slow", b2.serve))
	defer slow.Close()
	done := make(chan error, 1)
	go func() {
		_, err := cli.Call(ctx, slow.Addr(), 1, []byte("z"))
		done <- err
	}()
	b2.waitStarted(t, 1)
	cli.Forget(slow.Addr())
	if err := <-done; !errors.Is(err, ErrUnreachable) {
		t.Fatalf("call in flight when its peer was forgotten: %v, want ErrUnreachable", err)
	}
	close(b2.release)
}

// TestForgetRace: Forget racing calls and dials leaves no connection
// behind: Close still finds and stops everything (leaktest).
func TestForgetRace(t *testing.T) {
	defer leaktest.AfterTest(t)()
	srv := trtStart(t, trtConfig("srv", nil))
	defer srv.Close()
	cli := trtStart(t, trtConfig("cli", nil))
	addr := srv.Addr()
	ctx, cancel := trtCtx(10 * time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if (g+i)%7 == 0 {
					cli.Forget(addr)
					continue
				}
				_, _ = cli.Call(ctx, addr, 1, []byte("r")) // may fail: forgotten meanwhile
			}
		}()
	}
	wg.Wait()
	cli.Forget(addr)
	trtEventually(t, 5*time.Second, "every forgotten connection to close", func() bool { return trtServerConns(srv) == 0 })
	cli.Close()
}

// TestHandshakeLimit: with maxHandshakes connections silent in their handshake,
// one more is closed unanswered and counted; Close closes the silent ones.
func TestHandshakeLimit(t *testing.T) {
	defer leaktest.AfterTest(t)()
	cfg := trtConfig("srv", nil)
	cfg.handshakeTimeout = time.Minute // the silent ones hold their slots
	srv := trtStart(t, cfg)
	var silent []net.Conn
	defer func() {
		for _, c := range silent {
			c.Close()
		}
	}()
	for range maxHandshakes {
		c, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		silent = append(silent, c)
	}
	trtEventually(t, 10*time.Second, "the silent connections accepted", func() bool {
		return srv.Stats().Accepted == maxHandshakes
	})
	extra, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	_ = extra.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := extra.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("connection past the handshake limit: read %d, %v; want EOF", n, err)
	}
	if st := srv.Stats(); st.Accepted != maxHandshakes+1 || st.RefusedHandshakes != 1 || trtServerConns(srv) != maxHandshakes {
		t.Fatalf("accepted %d, refused %d, held %d", st.Accepted, st.RefusedHandshakes, trtServerConns(srv))
	}
	srv.Close()
	for _, c := range silent[:3] {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadAll(c); err != nil { // the server's hello, then EOF
			t.Fatalf("a silent connection after Close: %v", err)
		}
	}
}
