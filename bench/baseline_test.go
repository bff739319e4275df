package bench

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/lni/goutils/leaktest"
	"github.com/redis/go-redis/v9"

	"github.com/dynakv/dynakv/internal/evloop"
)

// serveFunc is ServeBaseline or ServeBaselineLoop.
type serveFunc func(ctx context.Context, resp, mc net.Listener) error

// forEachBaseline runs test against each baseline server: on redcon and
// goroutines, and on event loops where there are (Linux).
func forEachBaseline(t *testing.T, test func(t *testing.T, serve serveFunc)) {
	t.Run(NameBaseline, func(t *testing.T) { test(t, ServeBaseline) })
	t.Run(NameBaselineLoop, func(t *testing.T) {
		if !evloop.Supported() {
			t.Skip("no event loops here")
		}
		test(t, func(ctx context.Context, resp, mc net.Listener) error { return ServeBaselineLoop(ctx, resp, mc, 2) })
	})
}

// runBaseline serves the baseline on two loopback listeners until the test ends,
// then checks that ServeBaseline returned nil and left no goroutine behind.
func runBaseline(t *testing.T, serve serveFunc) (respAddr, mcAddr string) {
	t.Helper()
	resp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mc, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, resp, mc) }()
	t.Cleanup(leaktest.AfterTest(t))
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("ServeBaseline: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("ServeBaseline did not return 10s after its context ended")
		}
	})
	return resp.Addr().String(), mc.Addr().String()
}

// TestBaselineServesTheWorkload runs the bench workload against the baseline over
// both protocols: every request succeeds and GETs find what the prefill stored.
func TestBaselineServesTheWorkload(t *testing.T) { forEachBaseline(t, testBaselineServesTheWorkload) }

func testBaselineServesTheWorkload(t *testing.T, serve serveFunc) {
	respAddr, mcAddr := runBaseline(t, serve)
	for proto, addr := range map[string]string{ProtoRESP: respAddr, ProtoMemcache: mcAddr} {
		t.Run(proto, func(t *testing.T) {
			cfg := smallConfig(proto, addr)
			ctx := context.Background()
			if err := Prefill(ctx, cfg); err != nil {
				t.Fatal(err)
			}
			key := string(cfg.Workload.AppendKey(nil, 42))
			if got, want := getWithClient(t, proto, addr, key), string(makeValue(cfg.Workload.ValueSize, cfg.Seed)); got != want {
				t.Errorf("after prefill %s = %q; want %q", key, got, want)
			}
			res, err := Run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range res.Ops {
				if s.Errors != 0 || s.Count == 0 {
					t.Errorf("%s: %+v", s.Op, s)
				}
			}
		})
	}
}

// TestBaselineRESP checks the replies a RESP client gets, including the errors.
func TestBaselineRESP(t *testing.T) { forEachBaseline(t, testBaselineRESP) }

func testBaselineRESP(t *testing.T, serve serveFunc) {
	respAddr, _ := runBaseline(t, serve)
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: respAddr, Protocol: 2, DisableIdentity: true})
	defer c.Close()
	if err := c.Get(ctx, "absent").Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("GET absent: %v; want nil reply", err)
	}
	if err := c.Set(ctx, "k", "v1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "k", "v2", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v2" {
		t.Errorf("GET k = %q, %v; want v2", v, err)
	}
	if v, err := c.Ping(ctx).Result(); err != nil || v != "PONG" {
		t.Errorf("PING = %q, %v", v, err)
	}
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"incr", "k"}, "ERR unknown command 'incr'"},
		{[]any{"get"}, "ERR wrong number of arguments for 'get' command"},
		{[]any{"GET", "a", "b"}, "ERR wrong number of arguments for 'get' command"},
	} {
		if err := c.Do(ctx, tc.args...).Err(); err == nil || err.Error() != tc.want {
			t.Errorf("%v: %v; want %q", tc.args, err, tc.want)
		}
	}
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v2" {
		t.Errorf("the connection is unusable after errors: %q, %v", v, err)
	}
}

// TestBaselineMemcache checks gomemcache's view (flags kept, misses) and the
// replies to lines gomemcache does not send.
func TestBaselineMemcache(t *testing.T) { forEachBaseline(t, testBaselineMemcache) }

func testBaselineMemcache(t *testing.T, serve serveFunc) {
	_, mcAddr := runBaseline(t, serve)
	mc := memcache.New(mcAddr)
	if _, err := mc.Get("absent"); !errors.Is(err, memcache.ErrCacheMiss) {
		t.Errorf("get absent: %v; want a miss", err)
	}
	if err := mc.Set(&memcache.Item{Key: "k", Value: []byte("hello"), Flags: 7}); err != nil {
		t.Fatal(err)
	}
	it, err := mc.Get("k")
	if err != nil || string(it.Value) != "hello" || it.Flags != 7 {
		t.Fatalf("get k = %+v, %v", it, err)
	}
	if err := mc.Set(&memcache.Item{Key: "j", Value: []byte("")}); err != nil {
		t.Fatal(err)
	}
	items, err := mc.GetMulti([]string{"k", "absent", "j"})
	if err != nil || len(items) != 2 || string(items["k"].Value) != "hello" || len(items["j"].Value) != 0 {
		t.Errorf("GetMulti = %v, %v", items, err)
	}

	nc, err := net.Dial("tcp", mcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(nc)
	for _, tc := range []struct{ send, want string }{
		{"set n 0 0 2 noreply\r\nhi\r\n", ""},
		{"gets n\r\n", "VALUE n 0 2 0\r\nhi\r\nEND\r\n"},
		{"incr n 1\r\n", "ERROR\r\n"},
		{"set n 0 0\r\n", "ERROR\r\n"},
		{"set n x 0 1\r\n", "CLIENT_ERROR bad command line format\r\n"},
		{"set n 0 0 2\r\nhiXY", "CLIENT_ERROR bad data chunk\r\n"},
		{"\r\n", "ERROR\r\n"},
		{"get\r\n", "ERROR\r\n"},
		{"set big 0 0 1048577\r\n" + strings.Repeat("x", 1048577) + "\r\n", "SERVER_ERROR object too large for cache\r\n"},
		{"get big\r\n", "END\r\n"},
		{"version\r\n", "VERSION dynakv-bench-baseline\r\n"},
	} {
		if _, err := nc.Write([]byte(tc.send)); err != nil {
			t.Fatal(err)
		}
		if tc.want == "" {
			continue
		}
		var got strings.Builder
		for got.Len() < len(tc.want) {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%q: read: %v (so far %q)", tc.send, err, got.String())
			}
			got.WriteString(line)
		}
		if got.String() != tc.want {
			t.Errorf("%q: got %q; want %q", tc.send, got.String(), tc.want)
		}
	}
	if _, err := nc.Write([]byte("quit\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadByte(); err == nil {
		t.Error("the connection is still open after quit")
	}
}

// TestBaselineMemcacheSplitWrites: a command line and its data block that arrive
// in separate reads are stored under the right key (the data's read may reuse the
// buffer the line was in), noreply included.
func TestBaselineMemcacheSplitWrites(t *testing.T) {
	forEachBaseline(t, testBaselineMemcacheSplitWrites)
}

func testBaselineMemcacheSplitWrites(t *testing.T, serve serveFunc) {
	_, mcAddr := runBaseline(t, serve)
	nc, err := net.Dial("tcp", mcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(nc)
	for _, part := range []string{"set key 0 0 5\r\n", "hello\r\n", "set quiet 0 0 2 noreply\r\n", "hi\r\n", "get key quiet\r\n"} {
		if _, err := nc.Write([]byte(part)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // let the server read each part alone
	}
	var got strings.Builder
	want := "STORED\r\nVALUE key 0 5\r\nhello\r\nVALUE quiet 0 2\r\nhi\r\nEND\r\n"
	for got.Len() < len(want) {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v (so far %q)", err, got.String())
		}
		got.WriteString(line)
	}
	if got.String() != want {
		t.Errorf("got %q; want %q", got.String(), want)
	}
}

// TestBaselineStopsBeforeServing: a context that ends before the servers have
// started still ends ServeBaseline, and closes its listeners.
func TestBaselineStopsBeforeServing(t *testing.T) { forEachBaseline(t, testBaselineStopsBeforeServing) }

func testBaselineStopsBeforeServing(t *testing.T, serve serveFunc) {
	for i := range 300 {
		resp, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var mc net.Listener
		if i%2 == 0 {
			if mc, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan error, 1)
		go func() { done <- serve(ctx, resp, mc) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("ServeBaseline: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("ServeBaseline did not return with its context ended before it served")
		}
		if c, err := net.Dial("tcp", resp.Addr().String()); err == nil {
			c.Close()
			t.Fatal("the RESP listener is still open")
		}
	}
}
