package proxy_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/proxy"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/vclock"
)

// TestForwardedOpKeepsAcceptTime (finding 7): an op forwarded to another node runs
// there with the time the front node accepted it, not the executing node's clock:
// the value's timestamp (the plain-GET order) and expiry decisions use it, even
// with the two clocks minutes apart.
func TestForwardedOpKeepsAcceptTime(t *testing.T) {
	b := newDirectEnv(t, proxy.Config{})
	b.clk.Advance(3 * time.Minute) // the coordinating node's clock is far ahead
	r, net := newNetRouter(t, map[string]*proxy.Proxy{"b": b.p})
	a := newDirectEnv(t, proxy.Config{Router: r})
	key := []byte("remote:k")
	stamp := func() int64 {
		t.Helper()
		rec, _, err := b.st.Get(key)
		if err != nil {
			t.Fatal(err)
		}
		sibs := rec.Str.Siblings()
		if len(sibs) != 1 {
			t.Fatalf("%d siblings", len(sibs))
		}
		return sibs[0].Timestamp
	}

	accepted := a.clk.Now().UnixMilli()
	a.do(proxy.Op{Kind: proxy.OpSet, Key: key, Value: []byte("v")})
	if ts := stamp(); ts != accepted {
		t.Fatalf("forwarded SET stored timestamp %d, want the front node's accept time %d (B's clock: %d)",
			ts, accepted, b.clk.Now().UnixMilli())
	}
	// EXPIRE a minute from the front node's now: by B's clock that is past, which
	// would delete the key; by the accept time it is a TTL.
	a.clk.Advance(time.Second)
	res := a.do(proxy.Op{Kind: proxy.OpExpire, Key: key, Expiry: a.clk.Now().Add(time.Minute).UnixMilli()})
	if res.Status != proxy.Stored {
		t.Fatalf("EXPIRE: %s", statusName(res.Status))
	}
	if ts := stamp(); ts != a.clk.Now().UnixMilli() {
		t.Fatalf("forwarded EXPIRE stored timestamp %d, want %d", ts, a.clk.Now().UnixMilli())
	}
	if it, ok := a.get("remote:k"); !ok || string(it.Value) != "v" {
		t.Fatalf("GET after EXPIRE in a minute: %q, %v", it.Value, ok)
	}
	// A write that came back to the front node (ErrRunLocally) keeps the same time.
	net.Crash("b")
	a.clk.Advance(time.Second)
	at := a.clk.Now().UnixMilli()
	a.do(proxy.Op{Kind: proxy.OpSet, Key: []byte("remote:local"), Value: []byte("w")})
	rec, _, err := a.st.Get([]byte("remote:local"))
	if err != nil || len(rec.Str.Siblings()) != 1 || rec.Str.Siblings()[0].Timestamp != at {
		t.Fatalf("locally run SET: %+v, %v; want timestamp %d", rec, err, at)
	}
}

// TestLateForwardedSetAfterDelete is the history: SET k v accepted at
// t=3.4s and acknowledged, DEL k acknowledged at t=4.6s, and at t=9.8s a forwarded
// copy of the SET, held in the network, reaches a node. Past its deadline it does
// not run (on a node that has the DEL it would supersede it). And where a copy
// runs in time on a node isolated from the DEL, it carries the accept time, so
// once the replicas merge the later DEL still hides it.
func TestLateForwardedSetAfterDelete(t *testing.T) {
	ctx := context.Background()
	x := newActorEnv(t, "x") // isolated before the DEL
	y := newActorEnv(t, "y") // took the DEL
	base := x.clk.Now()
	at := func(sec float64) time.Time { return base.Add(time.Duration(sec * float64(time.Second))) }
	setClocks := func(sec float64) { x.clk.Set(at(sec)); y.clk.Set(at(sec)) }
	key := []byte("k")

	// t=3.4: SET k v, acknowledged, on both replicas; a forwarded copy is held.
	setClocks(3.4)
	x.do(proxy.Op{Kind: proxy.OpSet, Key: key, Value: []byte("v")})
	merge(t, y, key, storedRecord(t, x, key))
	held := proxy.Op{Kind: proxy.OpSet, Key: key, Value: []byte("v"), Accepted: at(3.4).UnixMilli()}.AppendBinary(nil)
	// t=4.6: DEL k through y, acknowledged; x is cut off and misses it.
	setClocks(4.6)
	if res := y.do(proxy.Op{Kind: proxy.OpDelete, Key: key}); res.Status != proxy.Stored {
		t.Fatalf("DEL: %s", statusName(res.Status))
	}
	// t=9.8: the held copy arrives at y, whose transport hands DoLocal the
	// caller's deadline, long past: it does not run.
	setClocks(9.8)
	op, err := proxy.DecodeOp(held)
	if err != nil {
		t.Fatal(err)
	}
	late, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Millisecond))
	defer cancel()
	if _, err := y.p.DoLocal(late, op); !errors.Is(err, coordinator.ErrLate) {
		t.Fatalf("late DoLocal: %v, want coordinator.ErrLate", err)
	}
	y.mustMissing("k")

	// The copy reaches x in time: it runs on x's replica, which lacks the DEL,
	// so its value is concurrent with the tombstone, stamped 3.4s.
	if _, err := x.p.DoLocal(ctx, op); err != nil {
		t.Fatal(err)
	}
	// The partition heals: the replicas exchange records.
	rx, ry := storedRecord(t, x, key), storedRecord(t, y, key)
	merge(t, x, key, ry)
	merge(t, y, key, rx)
	for _, e := range []*env{x, y} {
		e.mustMissing("k") // the DEL, at 4.6s, is the last writer
		if r := e.do(proxy.Op{Kind: proxy.OpDGet, Key: key}); len(r.Values) != 1 || string(r.Values[0]) != "v" {
			t.Fatalf("DGET after the merge: %q, want the concurrent copy listed", r.Values)
		}
	}
}

// newActorEnv is newDirectEnv for a node with its own actor id, so that two envs
// can exchange records.
func newActorEnv(t *testing.T, actor string) *env {
	t.Helper()
	clk := newFakeClock()
	st, err := storage.Open(storage.Config{InMemory: true, Partitions: 64, Now: clk.Now,
		ReapInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	co, err := coordinator.New(coordinator.Config{Actor: actor, Now: clk.Now}, st)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, p: proxy.New(proxy.Config{Now: clk.Now}, co), clk: clk, st: st}
}

func storedRecord(t *testing.T, e *env, key []byte) record.Record {
	t.Helper()
	rec, _, err := e.st.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// merge merges rec into e's replica of key, as a replica write does.
func merge(t *testing.T, e *env, key []byte, rec record.Record) {
	t.Helper()
	if _, err := e.st.Update(key, func(cur record.Record, _ bool) (record.Record, error) {
		return record.String(vclock.Sync(cur.Str, rec.Str)), nil
	}); err != nil {
		t.Fatal(err)
	}
}
