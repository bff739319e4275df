package memcache

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dynakv/dynakv/internal/testnode"
)

// recObserver records the events a Server reports.
type recObserver struct {
	mu       sync.Mutex
	commands []string // "name" or "name!" when failed
	conns    int
	opened   int
}

func (o *recObserver) Command(protocol, name string, _ time.Duration, failed bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if protocol != "memcache" {
		name = protocol + ":" + name
	}
	if failed {
		name += "!"
	}
	o.commands = append(o.commands, name)
}

func (o *recObserver) Connection(protocol string, delta int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.conns += delta
	if delta > 0 {
		o.opened++
	}
}

func (o *recObserver) snapshot() ([]string, int, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.commands), o.conns, o.opened
}

// TestLifecycle: Close stops accepting, closes idle and busy connections, waits for
// their goroutines and is idempotent; Serve returns nil; nothing leaks.
func TestLifecycle(t *testing.T) {
	testnode.NoLeaks(t, func(t *testing.T) {
		clk := newFakeClock()
		px := testnode.Proxy(t, testnode.Options{Now: clk.Now})

		obs := &recObserver{}
		s := New(ioConfig(Config{Now: clk.Now, Observer: obs}), px)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Serve(ln) }()

		idle := dialRaw(t, ln.Addr().String())
		idle.roundTrip("version\r\n", "VERSION dynakv")
		midLine := dialRaw(t, ln.Addr().String())
		midLine.send("get parti")
		midBlock := dialRaw(t, ln.Addr().String())
		midBlock.send("set k 0 0 100\r\nabc")
		swallowing := dialRaw(t, ln.Addr().String())
		swallowing.roundTrip("set k 0 0 2000000000\r\n", "SERVER_ERROR object too large for cache")
		waitFor(t, "4 clients", func() bool { return s.Clients() == 4 })

		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if err := <-done; err != nil {
			t.Fatalf("Serve after Close = %v", err)
		}
		if n := s.Clients(); n != 0 {
			t.Fatalf("Clients after Close = %d", n)
		}
		for _, c := range []*rawConn{idle, midLine, midBlock, swallowing} {
			c.expectClosed()
		}
		if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			t.Fatal("listener still accepting after Close")
		}

		// Serve after Close returns at once and closes its listener.
		ln2, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Serve(ln2); err != nil {
			t.Fatalf("Serve on a closed server = %v", err)
		}
		if _, err := ln2.Accept(); err == nil {
			t.Fatal("Serve left its listener open")
		}

		cmds, conns, opened := obs.snapshot()
		if conns != 0 || opened != 4 {
			t.Fatalf("connection events: net %d, opened %d", conns, opened)
		}
		if !slices.Contains(cmds, "version") {
			t.Fatalf("commands = %v", cmds)
		}
	})
}

// TestCloseWhileServing: Close with busy clients pipelining requests.
func TestCloseWhileServing(t *testing.T) {
	testnode.NoLeaks(t, func(t *testing.T) {
		clk := newFakeClock()
		px := testnode.Proxy(t, testnode.Options{Now: clk.Now})
		s := New(ioConfig(Config{Now: clk.Now}), px)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Serve(ln) }()
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				nc, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					return
				}
				defer nc.Close()
				go func() { // drain replies
					buf := make([]byte, 4096)
					for {
						if _, err := nc.Read(buf); err != nil {
							return
						}
					}
				}()
				// Pipelined reads keep every connection busy while Close runs.
				req := "get k" + strconv.Itoa(i) + "\r\nmg k v\r\nversion\r\n"
				for {
					nc.SetWriteDeadline(time.Now().Add(ioTimeout))
					if _, err := nc.Write([]byte(strings.Repeat(req, 50))); err != nil {
						return
					}
				}
			}()
		}
		waitFor(t, "busy clients", func() bool { return s.Clients() == 8 })
		s.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		wg.Wait()
	})
}

// TestObserver: one Command event per request line, with memcached's notion of
// failure (an error line), and bounded names.
func TestObserver(t *testing.T) {
	obs := &recObserver{}
	ts := startServer(t, serverOptions{cfg: Config{Observer: obs}})
	c := dialRaw(t, ts.addr)
	c.roundTrip("set a 0 0 1\r\nx\r\n", "STORED")
	c.roundTrip("get a b\r\n", "VALUE a 0 1", "x", "END")
	c.roundTrip("incr a 1\r\n", "CLIENT_ERROR cannot increment or decrement non-numeric value")
	c.roundTrip("NoSuchCommand\r\n", "ERROR")
	c.roundTrip("mg a v\r\n", "VA 1", "x")
	c.roundTrip("mn\r\n", "MN")
	c.roundTrip("delete a noreply\r\nincr a x noreply\r\nmn\r\n", "MN")
	want := []string{"set", "get", "incr!", "unknown!", "mg", "mn", "delete", "incr!", "mn"}
	waitFor(t, "events", func() bool {
		cmds, _, _ := obs.snapshot()
		return len(cmds) == len(want)
	})
	if cmds, conns, _ := obs.snapshot(); !slices.Equal(cmds, want) || conns != 1 {
		t.Fatalf("commands %v (conns %d), want %v", cmds, conns, want)
	}
}

// TestStats: "stats" reports real counters, the node's extra lines, and "stats
// reset" clears the counters.
func TestStats(t *testing.T) {
	ts := startServer(t, serverOptions{cfg: Config{
		Version: "1.2.3",
		Stats: func() []Stat {
			return []Stat{{"evictions", "5"}, {"dynakv_node", "n1"}}
		},
	}})
	ts.clock.Advance(42 * time.Second)
	c := dialRaw(t, ts.addr)
	c.roundTrip("set a 0 0 1\r\n1\r\nset b 0 0 1\r\n2\r\n", "STORED", "STORED")
	c.roundTrip("get a b c\r\n", "VALUE a 0 1", "1", "VALUE b 0 1", "2", "END")
	c.roundTrip("gets c\r\n", "END")
	c.roundTrip("delete b\r\ndelete b\r\n", "DELETED", "NOT_FOUND")
	c.roundTrip("incr a 1\r\nincr z 1\r\ndecr a 1\r\ndecr z 1\r\ndecr z 1\r\n", "2", "NOT_FOUND", "1", "NOT_FOUND", "NOT_FOUND")
	c.roundTrip("touch a 10\r\ntouch z 10\r\ngat 10 a z\r\n", "TOUCHED", "NOT_FOUND", "VALUE a 0 1", "1", "END")
	c.roundTrip("cas a 0 0 1 1\r\nx\r\ncas z 0 0 1 1\r\nx\r\n", "EXISTS", "NOT_FOUND")
	c.send("gets a\r\n")
	cas := strings.Fields(c.line())[4]
	c.expect("1", "END")
	c.roundTrip("cas a 0 0 1 "+cas+"\r\n9\r\n", "STORED")
	c.roundTrip("flush_all 100\r\n", "OK")

	want := map[string]string{
		"version": "1.2.3", "time": strconv.FormatInt(testEpoch.Unix()+42, 10), "uptime": "42",
		"curr_connections": "1", "total_connections": "1", "cmd_get": "5", "get_hits": "3",
		"get_misses": "2", "cmd_set": "5", "delete_hits": "1", "delete_misses": "1",
		"incr_hits": "1", "incr_misses": "1", "decr_hits": "1", "decr_misses": "2",
		"cas_hits": "1", "cas_misses": "1", "cas_badval": "1", "cmd_touch": "4",
		"touch_hits": "2", "touch_misses": "2", "cmd_flush": "1", "curr_items": "1",
		"total_items": "3", "evictions": "5", "dynakv_node": "n1", "limit_maxbytes": "0",
	}
	got := readStats(c)
	for name, v := range want {
		if got[name] != v {
			t.Errorf("stat %s = %q, want %q", name, got[name], v)
		}
	}
	for _, name := range []string{"pid", "threads", "bytes_read", "bytes_written"} {
		if v := got[name]; v == "" || v == "0" {
			t.Errorf("stat %s = %q", name, v)
		}
	}
	c.roundTrip("stats reset\r\n", "RESET")
	if got := stat(t, ts.addr, "cmd_get"); got != "0" {
		t.Errorf("cmd_get after reset = %q", got)
	}
	c.send("stats settings\r\n")
	for l := c.line(); l != "END\r\n"; l = c.line() {
		if !strings.HasPrefix(l, "STAT ") {
			t.Fatalf("stats settings line %q", l)
		}
	}
}
