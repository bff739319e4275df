package resp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/internal/testnode"
	"github.com/dynakv/dynakv/record"
)

// maxOutput reads INFO's client_recent_max_output_buffer (which resets it) on r.
func maxOutput(t *testing.T, r *rawConn) int {
	t.Helper()
	info := r.do("INFO", "clients")
	m := regexp.MustCompile(`client_recent_max_output_buffer:(\d+)`).FindStringSubmatch(info)
	if m == nil {
		t.Fatalf("INFO clients lacks client_recent_max_output_buffer:\n%s", info)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestHugeReplyBounded: one MGET of many large values, and one KEYS of many keys,
// reply in full to a real client (go-redis), while the node holds at most about
// --client-output-buffer-limit plus one element of the reply at a time: the part
// built so far is written out before the command goes on, as between the commands
// of a pipeline. Before, the whole reply was built in memory first.
func TestHugeReplyBounded(t *testing.T) {
	const limit = 64 << 10
	const valueSize = 16 << 10
	ts := startServer(t, func(c *Config, _ *testnode.Options) { c.OutputBufferLimit = limit })
	rdb := newGoRedis(t, ts.addr, 2, nil)
	info := dialRaw(t, ts.addr)
	ctx := context.Background()
	var keys []string
	for i := range 100 {
		k := fmt.Sprintf("big:%03d", i)
		v := strings.Repeat(string(rune('a'+i%26)), valueSize)
		if err := rdb.Set(ctx, k, v, 0).Err(); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	maxOutput(t, info) // reset
	vals, err := rdb.MGet(ctx, append(keys, "missing")...).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(vals) != len(keys)+1 || vals[len(keys)] != nil {
		t.Fatalf("MGET returned %d values, last %v", len(vals), vals[len(vals)-1])
	}
	for i, v := range vals[:len(keys)] {
		if s, _ := v.(string); len(s) != valueSize || s[0] != byte('a'+i%26) {
			t.Fatalf("MGET value %d: %d bytes", i, len(s))
		}
	}
	if got := maxOutput(t, info); got > limit+valueSize+1024 {
		t.Fatalf("the node held %d bytes of an MGET reply of %d bytes for one client, limit %d",
			got, len(keys)*(valueSize+10), limit)
	}

	// KEYS of 5000 keys of 100 bytes: a 550 KB reply.
	pipe := rdb.Pipeline()
	for i := range 5000 {
		pipe.Set(ctx, fmt.Sprintf("k:%095d", i), "v", 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	maxOutput(t, info)
	got, err := rdb.Keys(ctx, "k:*").Result()
	if err != nil || len(got) != 5000 {
		t.Fatalf("KEYS: %d keys, %v", len(got), err)
	}
	if n := maxOutput(t, info); n > limit+1024 {
		t.Fatalf("the node held %d bytes of a KEYS reply for one client, limit %d", n, limit)
	}
}

// TestHugeReplyToClientThatDoesNotRead: a client that sends one huge MGET (25 MB
// of replies) and reads nothing is dropped after the write timeout, and the node
// never held more than the limit plus one value for it.
func TestHugeReplyToClientThatDoesNotRead(t *testing.T) {
	const limit = 64 << 10
	const valueSize = 256 << 10
	ts := startServer(t, func(c *Config, _ *testnode.Options) {
		c.OutputBufferLimit = limit
		c.WriteTimeout = 300 * time.Millisecond
	})
	r := dialRaw(t, ts.addr)
	if got := r.do("SET", "big", strings.Repeat("x", valueSize)); got != "+OK\r\n" {
		t.Fatalf("SET: %q", got)
	}
	maxOutput(t, r)
	before := ts.Clients()
	slow, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if tc, ok := slow.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(64 << 10)
	}
	args := []string{"MGET"}
	for range 100 {
		args = append(args, "big")
	}
	if _, err := slow.Write([]byte(encode(args...))); err != nil {
		t.Fatal(err)
	}
	waitClients := func(what string, ok func(n int) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok(ts.Clients()) {
			if time.Now().After(deadline) {
				t.Fatalf("%s (%d clients)", what, ts.Clients())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	start := time.Now()
	waitClients("the client that does not read never connected", func(n int) bool { return n > before })
	waitClients("the client that does not read was not dropped", func(n int) bool { return n == before })
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Fatalf("dropped after %v, before the write timeout", took)
	}
	if got := maxOutput(t, r); got > limit+valueSize+1024 {
		t.Fatalf("the node held %d bytes for a client that does not read, limit %d", got, limit)
	}
}

// failingStore fails reads of one key, to fail a command half-way through.
type failingStore struct {
	coordinator.Store
	bad   string
	fails atomic.Int64
}

func (s *failingStore) Get(key []byte) (record.Record, bool, error) {
	if string(key) == s.bad {
		s.fails.Add(1)
		return record.Record{}, false, errors.New("injected read failure")
	}
	return s.Store.Get(key)
}

// TestHugeReplyFailingHalfWay: an MGET that fails on a key after part of its reply
// was written out cannot answer with an error instead: the connection ends, the
// client never reads an error inside an array. One that fails before anything was
// written answers the error, as before.
func TestHugeReplyFailingHalfWay(t *testing.T) {
	const limit = 64 << 10
	fs := &failingStore{bad: "bad"}
	ts := startServer(t, func(c *Config, o *testnode.Options) {
		c.OutputBufferLimit = limit
		o.WrapStore = func(s coordinator.Store) coordinator.Store { fs.Store = s; return fs }
	})
	r := dialRaw(t, ts.addr)
	if got := r.do("SET", "big", strings.Repeat("x", 32<<10)); got != "+OK\r\n" {
		t.Fatalf("SET: %q", got)
	}
	if got := r.do("MGET", "big", "bad"); !strings.HasPrefix(got, "-ERR") {
		t.Fatalf("small MGET failing: %q, want an error", got)
	}
	args := []string{"MGET"}
	for range 10 {
		args = append(args, "big")
	}
	r.send(encode(append(args, "bad")...))
	_ = r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	head, err := r.r.ReadString('\n')
	if err != nil || head != "*11\r\n" {
		t.Fatalf("reply starts %q, %v", head, err)
	}
	var b strings.Builder
	for i := 0; ; i++ {
		err := readReply(r.r, &b)
		if err != nil {
			var ne net.Error
			if i == 0 || errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("after %d of 11 elements: %v, want the connection closed", i, err)
			}
			break
		}
		if i == 10 || strings.HasPrefix(b.String(), "-") {
			t.Fatalf("element %d of 11 is %.40q: the failed key was answered", i+1, b.String())
		}
		b.Reset()
	}
	if fs.fails.Load() != 2 {
		t.Fatalf("%d failed reads", fs.fails.Load())
	}
	if got := dialRaw(t, ts.addr).do("PING"); got != "+PONG\r\n" {
		t.Fatalf("PING on a new connection: %q", got)
	}
}
