package compat

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func newRedis(addr string, protocol int) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Protocol: protocol, MaxRetries: -1})
}

// TestGoRedis drives a real node with go-redis over RESP2 and RESP3.
func TestGoRedis(t *testing.T) {
	p := startNode(t)
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("RESP%d", proto), func(t *testing.T) {
			c := newRedis(p.RESP, proto)
			defer c.Close()
			ctx := ctx(t)
			k := func(s string) string { return fmt.Sprintf("p%d:%s", proto, s) }

			if err := c.Set(ctx, k("a"), "1", 0).Err(); err != nil {
				t.Fatal(err)
			}
			if v, err := c.Get(ctx, k("a")).Result(); err != nil || v != "1" {
				t.Fatalf("GET = %q, %v", v, err)
			}
			if _, err := c.Get(ctx, k("missing")).Result(); err != redis.Nil {
				t.Fatalf("GET missing: %v, want redis.Nil", err)
			}
			if n, err := c.Incr(ctx, k("a")).Result(); err != nil || n != 2 {
				t.Fatalf("INCR = %d, %v", n, err)
			}
			if ok, err := c.SetNX(ctx, k("a"), "x", 0).Result(); err != nil || ok {
				t.Fatalf("SETNX existing = %v, %v", ok, err)
			}
			if err := c.Set(ctx, k("ttl"), "v", time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
			if d, err := c.TTL(ctx, k("ttl")).Result(); err != nil || d <= 50*time.Second || d > time.Minute {
				t.Fatalf("TTL = %v, %v", d, err)
			}
			vals, err := c.MGet(ctx, k("a"), k("missing"), k("ttl")).Result()
			if err != nil || len(vals) != 3 || vals[0] != "2" || vals[1] != nil || vals[2] != "v" {
				t.Fatalf("MGET = %v, %v", vals, err)
			}
			if n, err := c.Del(ctx, k("a"), k("missing")).Result(); err != nil || n != 1 {
				t.Fatalf("DEL = %d, %v", n, err)
			}
			if err := c.Do(ctx, "LPUSH", k("l"), "x").Err(); err == nil || !strings.HasPrefix(err.Error(), "ERR unknown command 'LPUSH'") {
				t.Fatalf("LPUSH: %v", err)
			}

			// Pipelines: one round trip, in order.
			pipe := c.Pipeline()
			for i := 0; i < 100; i++ {
				pipe.Set(ctx, k(fmt.Sprint("pipe", i)), i, 0)
			}
			get := pipe.Get(ctx, k("pipe42"))
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
			if get.Val() != "42" {
				t.Fatalf("pipelined GET = %q", get.Val())
			}

			// Siblings: two blind DPUTs are concurrent; a DPUT with the DGET context
			// resolves them.
			sib := k("cart")
			for _, v := range []string{"apple", "pear"} {
				if err := c.Do(ctx, "DPUT", sib, "", v).Err(); err != nil {
					t.Fatal(err)
				}
			}
			ctxt, sibs := dget(t, c, sib)
			if len(sibs) != 2 {
				t.Fatalf("DGET siblings = %q, want 2", sibs)
			}
			if err := c.Do(ctx, "DPUT", sib, ctxt, "apple+pear").Err(); err != nil {
				t.Fatal(err)
			}
			if _, sibs := dget(t, c, sib); len(sibs) != 1 || sibs[0] != "apple+pear" {
				t.Fatalf("after resolving DPUT: %q", sibs)
			}
		})
	}
}

// dget runs DGET and returns the context and the sibling values.
func dget(t *testing.T, c *redis.Client, key string) (string, []string) {
	t.Helper()
	r, err := c.Do(ctx(t), "DGET", key).Slice()
	if err != nil || len(r) != 2 {
		t.Fatalf("DGET %s = %v, %v", key, r, err)
	}
	cx, _ := r[0].(string)
	var out []string
	vs, _ := r[1].([]any)
	for _, v := range vs {
		out = append(out, v.(string))
	}
	return cx, out
}

// TestMalformedRESP sends broken frames to the real process: each gets Redis's
// protocol error and the connection is closed, and other clients keep working.
func TestMalformedRESP(t *testing.T) {
	p := startNode(t)
	good := newRedis(p.RESP, 2)
	defer good.Close()
	cases := []struct{ name, send, want string }{
		{"huge multibulk", "*2147483647\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"negative bulk", "*1\r\n$-5\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"huge bulk", "*1\r\n$2147483648\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"not a bulk", "*1\r\nfoo\r\n", "-ERR Protocol error: expected '$', got 'f'\r\n"},
		{"unbalanced quotes", "SET \"a b\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, p.RESP)
			r.send(tc.send)
			if got := r.line(); got != tc.want {
				t.Fatalf("reply %q, want %q", got, tc.want)
			}
			if !r.closed() {
				t.Fatal("connection not closed after a protocol error")
			}
			if err := good.Ping(ctx(t)).Err(); err != nil {
				t.Fatalf("other client after %s: %v", tc.name, err)
			}
		})
	}
	// Binary garbage then a claimed-but-never-sent frame must not wedge the node.
	r := dialRaw(t, p.RESP)
	r.send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000000\r\nshort")
	if err := good.Set(ctx(t), "after-garbage", "ok", 0).Err(); err != nil {
		t.Fatal(err)
	}
}
