package resp

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dynakv/dynakv/internal/testnode"
	"github.com/dynakv/dynakv/proxy"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func TestServeClose(t *testing.T) {
	testnode.NoLeaks(t, func(t *testing.T) {
		px := testnode.Proxy(t, testnode.Options{})
		s := New(ioConfig(Config{}), px)
		ln := listen(t)
		done := make(chan error, 1)
		go func() { done <- s.Serve(ln) }()
		// A few clients, one idle, one in the middle of a request, one pipelining.
		idle := dialRaw(t, ln.Addr().String())
		if got := idle.do("PING"); got != "+PONG\r\n" {
			t.Fatalf("PING = %q", got)
		}
		half := dialRaw(t, ln.Addr().String())
		half.send("*2\r\n$3\r\nGET\r\n$10\r\nabc")
		busy := dialRaw(t, ln.Addr().String())
		go busy.c.Write([]byte(strings.Repeat(encode("INCR", "n"), 5000)))
		waitFor(t, func() bool { return s.Clients() == 3 })
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("Serve = %v", err)
		}
		if s.Clients() != 0 {
			t.Errorf("Clients = %d after Close", s.Clients())
		}
		idle.expectClosed()
		half.expectClosed()
		if err := s.Close(); err != nil { // idempotent
			t.Fatal(err)
		}
		if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			t.Error("listener still open")
		}
	})
}

func TestCloseBeforeServe(t *testing.T) {
	testnode.NoLeaks(t, func(t *testing.T) {
		px := testnode.Proxy(t, testnode.Options{})
		s := New(ioConfig(Config{}), px)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		ln := listen(t)
		if err := s.Serve(ln); err != nil {
			t.Fatalf("Serve after Close = %v", err)
		}
		if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			t.Error("listener still open")
		}
	})
}

func TestConcurrentClose(t *testing.T) {
	testnode.NoLeaks(t, func(t *testing.T) {
		px := testnode.Proxy(t, testnode.Options{})
		s := New(ioConfig(Config{}), px)
		ln := listen(t)
		done := make(chan error, 1)
		go func() { done <- s.Serve(ln) }()
		c := dialRaw(t, ln.Addr().String())
		c.do("PING")
		if err := s.Serve(listen(t)); err == nil {
			t.Error("second Serve did not fail")
		}
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.Close()
				if s.Clients() != 0 {
					t.Error("Close returned before the connections closed")
				}
			}()
		}
		wg.Wait()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestMaxClients(t *testing.T) {
	testnode.NoLeaks(t, func(t *testing.T) {
		px := testnode.Proxy(t, testnode.Options{})
		s := New(ioConfig(Config{MaxClients: 2}), px)
		ln := listen(t)
		done := make(chan error, 1)
		go func() { done <- s.Serve(ln) }()
		defer func() {
			s.Close()
			<-done
		}()
		addr := ln.Addr().String()
		a, b := dialRaw(t, addr), dialRaw(t, addr)
		a.do("PING")
		b.do("PING")
		c := dialRaw(t, addr)
		if got := c.read(); got != "-ERR max number of clients reached\r\n" {
			t.Fatalf("third client got %q", got)
		}
		c.expectClosed()
		a.c.Close()
		waitFor(t, func() bool { return s.Clients() == 1 })
		d := dialRaw(t, addr)
		if got := d.do("PING"); got != "+PONG\r\n" {
			t.Fatalf("after a client left: %q", got)
		}
		// CONFIG SET maxclients takes effect.
		if got := d.do("CONFIG", "SET", "maxclients", "3"); got != ok {
			t.Fatalf("CONFIG SET maxclients = %q", got)
		}
		e := dialRaw(t, addr)
		if got := e.do("PING"); got != "+PONG\r\n" {
			t.Fatalf("after raising maxclients: %q", got)
		}
		if got := d.do("INFO", "stats"); !strings.Contains(got, "rejected_connections:1\r\n") {
			t.Errorf("INFO stats = %q", got)
		}
		d.c.Close()
		e.c.Close()
		b.c.Close()
	})
}

// observer records events.
type observer struct {
	mu       sync.Mutex
	commands map[string]int
	failed   map[string]int
	conns    atomic.Int64
	opened   atomic.Int64
}

func (o *observer) Command(protocol, name string, _ time.Duration, failed bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if protocol != "resp" {
		panic(protocol)
	}
	o.commands[name]++
	if failed {
		o.failed[name]++
	}
}

func (o *observer) Connection(protocol string, delta int) {
	o.conns.Add(int64(delta))
	if delta > 0 {
		o.opened.Add(1)
	}
}

var _ proxy.Observer = (*observer)(nil)

func TestObserver(t *testing.T) {
	obs := &observer{commands: map[string]int{}, failed: map[string]int{}}
	ts := startServer(t, func(c *Config, _ *testnode.Options) { c.Observer = obs })
	c := dialRaw(t, ts.addr)
	c.do("SET", "k", "v")
	c.do("get", "k")
	c.do("GET", "k", "extra")
	c.do("nosuch")
	c.do("CONFIG", "GET", "save")
	c.do("INCR", "k")
	c.c.Close()
	waitFor(t, func() bool { return obs.conns.Load() == 0 && obs.opened.Load() == 1 })
	obs.mu.Lock()
	defer obs.mu.Unlock()
	for name, want := range map[string]int{"set": 1, "get": 2, "unknown": 1, "config|get": 1, "incr": 1} {
		if obs.commands[name] != want {
			t.Errorf("commands[%q] = %d, want %d (all: %v)", name, obs.commands[name], want, obs.commands)
		}
	}
	for name, want := range map[string]int{"get": 1, "unknown": 1, "incr": 1} {
		if obs.failed[name] != want {
			t.Errorf("failed[%q] = %d, want %d", name, obs.failed[name], want)
		}
	}
}

func TestInfo(t *testing.T) {
	ts := startServer(t, func(c *Config, _ *testnode.Options) {
		c.Info = func(section string) []InfoField {
			var out []InfoField
			if section == "cluster" || section == "default" || section == "all" {
				out = append(out, InfoField{"cluster", "cluster_members", "3"})
			}
			if section == "dynamo" || section == "default" {
				out = append(out, InfoField{"dynamo", "n", "3"}, InfoField{"dynamo", "hints_pending", "0"})
			}
			return out
		}
	})
	c := dialRaw(t, ts.addr)
	c.do("SET", "a", "1")
	c.do("GET", "a")
	c.do("GET", "b")
	all := c.do("INFO")
	order := []string{"# Server\r\n", "# Clients\r\n", "# Memory\r\n", "# Persistence\r\n", "# Stats\r\n", "# Replication\r\n", "# Cluster\r\ncluster_enabled:0\r\ncluster_members:3\r\n", "# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n", "\r\n# Dynamo\r\nn:3\r\nhints_pending:0\r\n"}
	pos := 0
	for _, want := range order {
		i := strings.Index(all[pos:], want)
		if i < 0 {
			t.Fatalf("INFO lacks %q after byte %d:\n%s", want, pos, all)
		}
		pos += i
	}
	for _, want := range []string{"redis_version:7.2.0\r\n", "dynakv_version:0.1.0-test\r\n", "dynakv_node:n1\r\n", "connected_clients:1\r\n", "keyspace_hits:1\r\n", "keyspace_misses:1\r\n", "role:master\r\n", "loading:0\r\n"} {
		if !strings.Contains(all, want) {
			t.Errorf("INFO lacks %q", want)
		}
	}
	if !strings.Contains(all, "# CPU\r\nused_cpu_sys:") || strings.Contains(all, "# Commandstats") {
		t.Error("INFO default does not show CPU, or shows commandstats (Redis 7's default sections)")
	}
	for _, tc := range []struct{ args []string }{{[]string{"INFO", "cluster"}}, {[]string{"INFO", "CLUSTER"}}} {
		if got, want := c.do(tc.args...), bulk("# Cluster\r\ncluster_enabled:0\r\ncluster_members:3\r\n"); got != want {
			t.Errorf("%v = %q, want %q", tc.args, got, want)
		}
	}
	if got, want := c.do("INFO", "dynamo"), bulk("# Dynamo\r\nn:3\r\nhints_pending:0\r\n"); got != want {
		t.Errorf("INFO dynamo = %q, want %q", got, want)
	}
	if got := c.do("INFO", "nosuch"); got != bulk("") {
		t.Errorf("INFO nosuch = %q", got)
	}
	if got := c.do("INFO", "server", "keyspace"); !strings.HasPrefix(got, "$") || !strings.Contains(got, "# Server\r\n") || !strings.Contains(got, "\r\n\r\n# Keyspace\r\ndb0:keys=1") || strings.Contains(got, "# Clients") {
		t.Errorf("INFO server keyspace = %q", got)
	}
	everything := c.do("INFO", "everything")
	for _, want := range []string{"# CPU\r\n", "# Commandstats\r\n", "# Keyspace\r\n"} {
		if !strings.Contains(everything, want) {
			t.Errorf("INFO everything lacks %q", want)
		}
	}
	c.do("CONFIG", "RESETSTAT")
	if got := c.do("INFO", "stats"); !strings.Contains(got, "keyspace_hits:0\r\n") || !strings.Contains(got, "total_commands_processed:1\r\n") {
		t.Errorf("INFO stats after RESETSTAT = %q", got)
	}
}

// handlerHarness runs commands through the dispatch path without sockets.
type handlerHarness struct {
	s *Server
	c *client
}

func newHarness(t testing.TB, cfg Config) *handlerHarness {
	px := testnode.Proxy(t, testnode.Options{Now: cfg.Now})
	s := New(cfg, px)
	t.Cleanup(func() { s.Close() })
	c := &client{id: 1, authed: cfg.RequirePass == "", created: time.Now(), sess: px.NewSession(nil)}
	c.setProto(2)
	return &handlerHarness{s: s, c: c}
}

func (h *handlerHarness) run(args ...string) string {
	argv := make([][]byte, len(args))
	for i, a := range args {
		argv[i] = []byte(a)
	}
	h.c.w.reset()
	h.s.safeExec(h.c, argv)
	if err := h.c.sess.Flush(h.s.ctx); err != nil { // as wire.Write does
		return "flush: " + err.Error()
	}
	var r recorder
	r.WriteRaw(h.c.w.b)
	return string(r.b)
}

func TestHandlersWithoutSockets(t *testing.T) {
	h := newHarness(t, Config{RequirePass: "pw"})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"GET", "k"}, "-NOAUTH Authentication required.\r\n"},
		{[]string{"GET"}, arity("get")}, // arity is checked before authentication
		{[]string{"nosuch", "x"}, "-ERR unknown command 'nosuch', with args beginning with: 'x' \r\n"},
		{[]string{"HELLO", "3"}, "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n"},
		{[]string{"AUTH", "wrong"}, "-WRONGPASS invalid username-password pair or user is disabled.\r\n"},
		{[]string{"AUTH", "pw"}, ok},
		{[]string{"SET", "k", "v"}, ok},
		{[]string{"HELLO", "3"}, helloReply(3, 1)},
		{[]string{"GET", "nokey"}, nil3},
		{[]string{"MGET", "k", "nokey"}, "*2\r\n$1\r\nv\r\n_\r\n"},
		{[]string{"AUTH", "wrong"}, "-WRONGPASS invalid username-password pair or user is disabled.\r\n"},
		{[]string{"GET", "k"}, bulk("v")}, // a failed AUTH does not log out
		{[]string{"QUIT"}, ok},
	} {
		if got := h.run(tc.args...); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.args, got, tc.want)
		}
	}
	if !h.c.closing {
		t.Error("QUIT did not mark the connection closing")
	}
}

// TestProxyErrorsMapped checks the error table against every sentinel.
func TestProxyErrorsMapped(t *testing.T) {
	for _, err := range []error{proxy.ErrOutcomeUnknown, proxy.ErrNotInteger, proxy.ErrOverflow, proxy.ErrNotFloat, proxy.ErrNaN, proxy.ErrNonNumeric, proxy.ErrValueTooBig, proxy.ErrBadContext, proxy.ErrBadOffset, proxy.ErrInvalidFlush, context.DeadlineExceeded, context.Canceled} {
		if _, known := errorReply(err); !known {
			t.Errorf("%v has no reply text", err)
		}
	}
	line, known := errorReply(context.Canceled)
	if !known || string(line) != "-ERR server is shutting down\r\n" {
		t.Errorf("canceled: %q", line)
	}
	if line, known := errorReply(net.ErrClosed); known || string(line) != "-ERR internal error\r\n" {
		t.Errorf("unknown error: %q %v", line, known)
	}
}

func TestPanicInHandler(t *testing.T) {
	h := newHarness(t, Config{})
	h.s.cmds.byName["boom"] = &command{name: "boom", arity: 1, run: func(*Server, *client, [][]byte) { panic("boom") }}
	if got := h.run("BOOM"); got != "-ERR internal error\r\n" {
		t.Errorf("got %q", got)
	}
	h.c.w.reset()
	if name := h.s.safeExec(h.c, [][]byte{[]byte("boom")}); name != "unknown" || !h.c.closing {
		t.Errorf("name %q, closing %v", name, h.c.closing)
	}
}
