package resp

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
)

const (
	multiErr   = "-ERR MULTI is not supported by dynakv (Dynamo-style store: no transactions)\r\n"
	inMultiErr = "-ERR command not run: MULTI is not supported by dynakv; EXEC or DISCARD ends the transaction\r\n"
	execAbort  = "-EXECABORT Transaction discarded because MULTI is not supported by dynakv\r\n"
)

// TestMultiRefused: MULTI is a clear error, and nothing sent before its EXEC or
// DISCARD runs, so a client's transaction never half-applies.
func TestMultiRefused(t *testing.T) {
	ts := startServer(t)
	c := dialRaw(t, ts.addr)
	runSteps(t, c, []step{
		cmd("-ERR EXEC without MULTI\r\n", "EXEC"),
		cmd("-ERR DISCARD without MULTI\r\n", "discard"),
		cmd(arity("multi"), "MULTI", "x"),
		cmd(multiErr, "multi"),
		cmd(inMultiErr, "SET", "k", "v"),
		cmd(inMultiErr, "PING"),
		cmd(multiErr, "MULTI"),
		cmd(arity("exec"), "EXEC", "x"),
		cmd(execAbort, "EXEC"),
		cmd(nil2, "GET", "k"),
		cmd(multiErr, "MULTI"),
		cmd(inMultiErr, "INCR", "n"),
		cmd(ok, "DISCARD"),
		cmd(":1\r\n", "INCR", "n"),
	})
	// A whole transaction in one batch, as libraries send it.
	c.send(encode("MULTI") + encode("SET", "k", "v") + encode("INCR", "n") + encode("EXEC") + encode("GET", "k"))
	for i, want := range []string{multiErr, inMultiErr, inMultiErr, execAbort, nil2} {
		if got := c.read(); got != want {
			t.Errorf("batched transaction reply %d = %q, want %q", i, got, want)
		}
	}
	runSteps(t, c, []step{
		cmd(multiErr, "MULTI"),
		cmd("+OK\r\n", "QUIT"),
	})
	c.expectClosed()

	p := startServer(t, withPass("pw"))
	u := dialRaw(t, p.addr)
	runSteps(t, u, []step{
		cmd("-NOAUTH Authentication required.\r\n", "MULTI"),
		cmd(ok, "AUTH", "pw"),
		cmd(multiErr, "MULTI"),
	})
}

// TestGoRedisTxPipeline: go-redis's TxPipeline gets the MULTI error, none of its
// commands run, and the client keeps working.
func TestGoRedisTxPipeline(t *testing.T) {
	ts := startServer(t)
	for _, proto := range []int{2, 3} {
		rdb := newGoRedis(t, ts.addr, proto, func(o *redis.Options) { o.PoolSize = 1 })
		ctx := context.Background()
		tx := rdb.TxPipeline()
		tx.Set(ctx, "tx", "v", 0)
		tx.Incr(ctx, "txn")
		_, err := tx.Exec(ctx)
		check(t, "TxPipeline", err, "ERR MULTI is not supported by dynakv (Dynamo-style store: no transactions)")
		check(t, "GET after TxPipeline", rdb.Get(ctx, "tx").Err(), "redis: nil")
		n, err := rdb.Incr(ctx, "txn").Result()
		check(t, "INCR after TxPipeline", err, "")
		eq(t, "INCR after TxPipeline", n, 1)
		check(t, "DEL", rdb.Del(ctx, "txn").Err(), "")
	}
}
