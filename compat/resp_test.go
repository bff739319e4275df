package compat

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func newRedis(addr string, protocol int) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Protocol: protocol, MaxRetries: -1})
}

// goRedisWorkload drives d with go-redis over RESP proto: strings, keys, expiry,
// pipelines, siblings, the errors Redis gives, and TxPipeline refused as a whole.
// It writes through the first node and reads through the last.
func goRedisWorkload(t *testing.T, d deployment, proto int) {
	addrs := d.resp()
	w, r := newRedis(addrs[0], proto), newRedis(addrs[len(addrs)-1], proto)
	defer w.Close()
	defer r.Close()
	ctx := ctx(t)
	k := func(s string) string { return fmt.Sprintf("goredis%d:%s", proto, s) }
	wantErr := func(what string, err error, want string) {
		t.Helper()
		if err == nil || err.Error() != want {
			t.Fatalf("%s: error %v, want %q", what, err, want)
		}
	}

	if err := w.Set(ctx, k("a"), "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := r.Get(ctx, k("a")).Result(); err != nil || v != "1" {
		t.Fatalf("GET = %q, %v", v, err)
	}
	if _, err := r.Get(ctx, k("missing")).Result(); err != redis.Nil {
		t.Fatalf("GET missing: %v, want redis.Nil", err)
	}
	if n, err := w.Incr(ctx, k("a")).Result(); err != nil || n != 2 {
		t.Fatalf("INCR = %d, %v", n, err)
	}
	if n, err := w.IncrBy(ctx, k("a"), 40).Result(); err != nil || n != 42 {
		t.Fatalf("INCRBY = %d, %v", n, err)
	}
	if n, err := w.Decr(ctx, k("a")).Result(); err != nil || n != 41 {
		t.Fatalf("DECR = %d, %v", n, err)
	}
	if ok, err := w.SetNX(ctx, k("a"), "x", 0).Result(); err != nil || ok {
		t.Fatalf("SETNX existing = %v, %v", ok, err)
	}
	if err := w.MSet(ctx, k("m1"), "one", k("m2"), "two").Err(); err != nil {
		t.Fatal(err)
	}
	if err := w.Set(ctx, k("ttl"), "v", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if d, err := r.TTL(ctx, k("ttl")).Result(); err != nil || d <= 50*time.Second || d > time.Minute {
		t.Fatalf("TTL = %v, %v", d, err)
	}
	vals, err := r.MGet(ctx, k("a"), k("missing"), k("ttl"), k("m1"), k("m2")).Result()
	if err != nil || fmt.Sprint(vals) != "[41 <nil> v one two]" {
		t.Fatalf("MGET = %v, %v", vals, err)
	}
	if n, err := r.Exists(ctx, k("a"), k("missing"), k("m1"), k("a")).Result(); err != nil || n != 3 {
		t.Fatalf("EXISTS = %d, %v", n, err)
	}
	if ok, err := w.Expire(ctx, k("m1"), time.Hour).Result(); err != nil || !ok {
		t.Fatalf("EXPIRE = %v, %v", ok, err)
	}
	if ok, err := w.Expire(ctx, k("missing"), time.Hour).Result(); err != nil || ok {
		t.Fatalf("EXPIRE missing = %v, %v", ok, err)
	}
	if d, err := r.TTL(ctx, k("m1")).Result(); err != nil || d <= 59*time.Minute {
		t.Fatalf("TTL after EXPIRE = %v, %v", d, err)
	}
	if d, err := r.TTL(ctx, k("m2")).Result(); err != nil || d != -1 {
		t.Fatalf("TTL without expiry = %v, %v", d, err)
	}
	if err := w.PExpire(ctx, k("m2"), 100*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n, err := r.Exists(ctx, k("m2")).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a key with a 100ms PEXPIRE still exists after 5s")
		}
	}
	if n, err := w.Del(ctx, k("a"), k("missing")).Result(); err != nil || n != 1 {
		t.Fatalf("DEL = %d, %v", n, err)
	}

	// The errors Redis gives.
	wantErr("INCR of a string", w.Incr(ctx, k("ttl")).Err(), "ERR value is not an integer or out of range")
	wantErr("SET EX abc", w.Do(ctx, "SET", k("x"), "v", "EX", "abc").Err(), "ERR value is not an integer or out of range")
	wantErr("GET without a key", w.Do(ctx, "GET").Err(), "ERR wrong number of arguments for 'get' command")
	wantErr("SET NX XX", w.Do(ctx, "SET", k("x"), "v", "NX", "XX").Err(), "ERR syntax error")
	wantErr("LPUSH", w.Do(ctx, "LPUSH", k("l"), "x").Err(), "ERR unknown command 'LPUSH', with args beginning with: 'goredis"+fmt.Sprint(proto)+":l' 'x' ")
	wantErr("DPUT with a bad context", w.Do(ctx, "DPUT", k("x"), "garbage", "v").Err(), "ERR invalid causal context")

	// Pipelines: one round trip, in order, on each node.
	pipe := w.Pipeline()
	for i := 0; i < 100; i++ {
		pipe.Set(ctx, k(fmt.Sprint("pipe", i)), i, 0)
	}
	incr := pipe.Incr(ctx, k("pipe42"))
	bad := pipe.Incr(ctx, k("ttl"))
	if _, err := pipe.Exec(ctx); err == nil || bad.Err() == nil || incr.Val() != 43 {
		t.Fatalf("pipeline: %v, INCR %d, INCR of a string %v", err, incr.Val(), bad.Err())
	}
	rpipe := r.Pipeline()
	gets := make([]*redis.StringCmd, 100)
	for i := range gets {
		gets[i] = rpipe.Get(ctx, k(fmt.Sprint("pipe", i)))
	}
	if _, err := rpipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	for i, g := range gets {
		want := fmt.Sprint(i)
		if i == 42 {
			want = "43"
		}
		if g.Val() != want {
			t.Fatalf("pipelined GET pipe%d = %q, want %q", i, g.Val(), want)
		}
	}

	// TxPipeline: MULTI is refused with a clear error and none of it runs.
	tx := w.TxPipeline()
	tx.Set(ctx, k("tx"), "v", 0)
	tx.Incr(ctx, k("pipe0"))
	if _, err := tx.Exec(ctx); err == nil || !strings.Contains(err.Error(), "MULTI is not supported by dynakv") {
		t.Fatalf("TxPipeline: %v, want MULTI refused", err)
	}
	if n, err := r.Exists(ctx, k("tx")).Result(); err != nil || n != 0 {
		t.Fatalf("a refused transaction's SET ran: EXISTS = %d, %v", n, err)
	}
	if v, err := w.Get(ctx, k("pipe0")).Result(); err != nil || v != "0" {
		t.Fatalf("a refused transaction's INCR ran: %q, %v", v, err)
	}

	// Siblings: two blind DPUTs (through different nodes on the cluster) are
	// concurrent; a DPUT with the DGET context resolves them.
	sib := k("cart")
	for i, v := range []string{"apple", "pear"} {
		c := w
		if i == 1 {
			c = r
		}
		if err := c.Do(ctx, "DPUT", sib, "", v).Err(); err != nil {
			t.Fatal(err)
		}
	}
	ctxt, sibs := dget(t, r, sib)
	slices.Sort(sibs)
	if !slices.Equal(sibs, []string{"apple", "pear"}) {
		t.Fatalf("DGET siblings = %q, want apple and pear", sibs)
	}
	if err := r.Do(ctx, "DPUT", sib, ctxt, "apple+pear").Err(); err != nil {
		t.Fatal(err)
	}
	if _, sibs := dget(t, w, sib); len(sibs) != 1 || sibs[0] != "apple+pear" {
		t.Fatalf("after resolving DPUT: %q", sibs)
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
