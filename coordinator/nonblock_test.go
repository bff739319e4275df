package coordinator

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/vclock"
)

var errRefused = errors.New("refused")

// randomModify draws a read-modify-write: a put over what was seen, an append
// to the winner's data (so it depends on the writes before), no write, or an
// error.
func randomModify(rng *rand.Rand) ModifyFunc {
	data := fmt.Sprint(rng.IntN(100))
	switch rng.IntN(5) {
	case 0:
		return func(record.Record) (vclock.Clock, vclock.Value, error) { return nil, vclock.Value{}, ErrNoWrite }
	case 1:
		return func(record.Record) (vclock.Clock, vclock.Value, error) { return nil, vclock.Value{}, errRefused }
	case 2:
		return func(cur record.Record) (vclock.Clock, vclock.Value, error) {
			prev := ""
			if w, ok := vclock.Winner(cur.Str.Siblings()); ok {
				prev = string(w.Data)
			}
			return cur.Str.Join(), value(prev + "+" + data), nil
		}
	default:
		return func(cur record.Record) (vclock.Clock, vclock.Value, error) { return cur.Str.Join(), value(data), nil }
	}
}

// TestModifyInMatchesModify: on a single node, writes staged with ModifyIn and
// committed at random points return and store what the same writes return and
// store through Modify, and GetIn answers what Get answers after them.
func TestModifyInMatchesModify(t *testing.T) {
	for seed := range uint64(10) {
		rng := rand.New(rand.NewPCG(seed, 5))
		clk := newFakeClock()
		oracle, ost := newCoordinator(t, 8, clk.Now)
		c, st := newCoordinator(t, 8, clk.Now)
		ws := st.NewWriteSet()
		ctx := context.Background()
		for round := range 30 {
			for range 1 + rng.IntN(20) {
				key := fmt.Appendf(nil, "k%d", rng.IntN(12))
				fn := randomModify(rng)
				want, wantErr := oracle.Modify(ctx, key, fn, WriteOptions{})
				got, err := c.ModifyIn(ctx, ws, key, fn, WriteOptions{})
				if !errors.Is(err, wantErr) || !sameSet(got.Record, want.Record) || got.Durable {
					t.Fatalf("seed %d round %d: ModifyIn(%s) = %+v, %v; Modify gave %+v, %v", seed, round, key, got, err, want, wantErr)
				}
				if rng.IntN(3) == 0 {
					key := fmt.Appendf(nil, "k%d", rng.IntN(12))
					want, _ := oracle.Get(ctx, key, ReadOptions{})
					got, err := c.GetIn(ctx, ws, key, ReadOptions{})
					if err != nil || !sameSet(got, want) {
						t.Fatalf("seed %d round %d: GetIn(%s) = %v, %v; Get gave %v", seed, round, key, got, err, want)
					}
				}
			}
			if err := ws.Commit(true); err != nil {
				t.Fatal(err)
			}
			for i := range 12 {
				key := fmt.Appendf(nil, "k%d", i)
				a, _, _ := ost.Get(key)
				b, _, _ := st.Get(key)
				if !sameSet(a, b) {
					t.Fatalf("seed %d round %d: %s stored %v, Modify stored %v", seed, round, key, b, a)
				}
			}
			if ost.Count() != st.Count() {
				t.Fatalf("Count %d vs %d", st.Count(), ost.Count())
			}
		}
	}
}

func sameSet(a, b record.Record) bool {
	return string(a.AppendBinary(nil)) == string(b.AppendBinary(nil))
}

// TestModifyInWouldBlock: each reason to wait returns ErrWouldBlock (and
// storage's) before any side effect: the function does not run, no fresh
// counter is taken, the set holds nothing new; ErrLate and ErrSealed are
// answers, not would-blocks.
func TestModifyInWouldBlock(t *testing.T) {
	clk := newFakeClock()
	c, st := newCoordinator(t, 8, clk.Now)
	ctx := context.Background()
	ran := false
	spy := func(cur record.Record) (vclock.Clock, vclock.Value, error) {
		ran = true
		return cur.Str.Join(), value("v"), nil
	}
	key := []byte("k")
	check := func(what string, ws *storage.WriteSet, err error, reason error) {
		t.Helper()
		floor := c.floor.Load()
		if !errors.Is(err, ErrWouldBlock) || !errors.Is(err, storage.ErrWouldBlock) || reason != nil && !errors.Is(err, reason) {
			t.Fatalf("%s: %v, want ErrWouldBlock (%v)", what, err, reason)
		}
		if ran || c.floor.Load() != floor || ws.Len() != 0 || ws.Holding(c) {
			t.Fatalf("%s: a would-block left a trace (fn ran %v, set len %d)", what, ran, ws.Len())
		}
		if r, found, _ := st.Get(key); found {
			t.Fatalf("%s: %s written: %v", what, key, r)
		}
	}

	other, ws := st.NewWriteSet(), st.NewWriteSet()
	if _, err := other.Update(key, func(record.Record, bool) (record.Record, error) { return record.Record{}, storage.ErrNoChange }); err != nil {
		t.Fatal(err)
	}
	_, err := c.ModifyIn(ctx, ws, key, spy, WriteOptions{})
	check("stripe busy", ws, err, storage.ErrLockBusy)
	other.Discard()

	c.sealMu.Lock()
	_, err = c.ModifyIn(ctx, ws, key, spy, WriteOptions{})
	c.sealMu.Unlock()
	check("seal busy", ws, err, nil)

	// A cluster where the key has another replica: a quorum request.
	c.cfg.Cluster, c.cfg.Node = staticView{rg: testRing(t, "n1", "n2")}, "n1"
	_, err = c.ModifyIn(ctx, ws, key, spy, WriteOptions{})
	check("quorum write", ws, err, nil)
	if _, err := c.GetIn(ctx, ws, key, ReadOptions{}); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("quorum GetIn: %v, want ErrWouldBlock", err)
	}
	if _, err := c.GetIn(ctx, ws, key, ReadOptions{Local: true}); err != nil {
		t.Fatalf("local GetIn in a cluster: %v", err)
	}
	// N=1 in that cluster: the key's one replica is the other node (forwarded,
	// not this node's to write), or this one (a quorum of one: served).
	c.cfg.N = 1
	var owned [2]bool // keys of this node's, of the other's
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		pn := c.plan([]byte(k))
		owned[map[bool]int{true: 0, false: 1}[pn.self]] = true
		_, err := c.ModifyIn(ctx, ws, []byte(k), func(cur record.Record) (vclock.Clock, vclock.Value, error) {
			return cur.Str.Join(), value("v"), nil
		}, WriteOptions{})
		if pn.self != (err == nil) || !pn.self && !errors.Is(err, ErrWouldBlock) {
			t.Fatalf("N=1, key %q (this node's: %v): ModifyIn = %v", k, pn.self, err)
		}
		if _, err := c.GetIn(ctx, ws, []byte(k), ReadOptions{}); pn.self != (err == nil) {
			t.Fatalf("N=1, key %q (this node's: %v): GetIn = %v", k, pn.self, err)
		}
	}
	if !owned[0] || !owned[1] {
		t.Fatalf("N=1: the keys are not spread over both nodes: %v", owned)
	}
	ws.Discard()
	ws = st.NewWriteSet()
	// A cluster of one member (what a lone dynakv server is): every key is
	// this node's alone, with no read first and nothing to send.
	c.cfg.N, c.cfg.Cluster = 3, staticView{rg: testRing(t, "n1")}
	if _, err := c.ModifyIn(ctx, ws, key, func(cur record.Record) (vclock.Clock, vclock.Value, error) {
		return cur.Str.Join(), value("solo"), nil
	}, WriteOptions{}); err != nil {
		t.Fatalf("one-member cluster: ModifyIn = %v", err)
	}
	if rec, err := c.GetIn(ctx, ws, key, ReadOptions{}); err != nil || !slices.Equal(data(rec), []string{"solo"}) {
		t.Fatalf("one-member cluster: GetIn = %v, %v", data(rec), err)
	}
	ws.Discard()
	ws = st.NewWriteSet()
	c.cfg.Cluster = nil

	past, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel()
	if _, err := c.ModifyIn(past, ws, key, spy, WriteOptions{}); !errors.Is(err, ErrLate) || errors.Is(err, ErrWouldBlock) || ran {
		t.Fatalf("late ModifyIn: %v (fn ran %v), want ErrLate", err, ran)
	}
	if _, err := c.ModifyIn(ctx, other, key, spy, WriteOptions{}); err != nil || !ran {
		t.Fatalf("ModifyIn once nothing blocks: %v", err)
	}
	if err := other.Commit(true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetIn(ctx, st.NewWriteSet(), []byte("x"), ReadOptions{}); err != nil {
		t.Fatal(err)
	}
	foreign := newStore(t, 8).NewWriteSet()
	if _, err := c.ModifyIn(ctx, foreign, key, spy, WriteOptions{}); err == nil || errors.Is(err, ErrWouldBlock) {
		t.Fatalf("ModifyIn with another store's set: %v", err)
	}
}

// TestSealWaitsForWriteSet: a set holding a write staged by ModifyIn keeps
// this node's admission until it is committed, so Seal waits for that write
// to be applied, as it waits for Modify's; meanwhile other sets' writes would
// block, and once sealed, ModifyIn answers ErrSealed.
func TestSealWaitsForWriteSet(t *testing.T) {
	c, st := newCoordinator(t, 8, time.Now)
	ctx := context.Background()
	put := func(cur record.Record) (vclock.Clock, vclock.Value, error) { return cur.Str.Join(), value("v"), nil }
	ws := st.NewWriteSet()
	if _, err := c.ModifyIn(ctx, ws, []byte("a"), put, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ModifyIn(ctx, ws, []byte("b"), put, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	sealed := make(chan struct{})
	go func() {
		c.Seal()
		close(sealed)
	}()
	// Wait (bounded) until Seal waits for the lock: other sets then block.
	ws2 := st.NewWriteSet()
	for i := 0; ; i++ {
		_, err := c.ModifyIn(ctx, ws2, []byte("c"), put, WriteOptions{})
		if errors.Is(err, ErrWouldBlock) {
			break
		}
		if err != nil || i == 10000 {
			t.Fatalf("ModifyIn while Seal waits: %v after %d tries", err, i)
		}
		ws2.Discard()
		time.Sleep(time.Millisecond)
	}
	select {
	case <-sealed:
		t.Fatal("Seal returned while a set held a staged write")
	default:
	}
	if err := ws.Commit(true); err != nil {
		t.Fatal(err)
	}
	<-sealed
	for _, k := range []string{"a", "b"} {
		if _, found, _ := st.Get([]byte(k)); !found {
			t.Fatalf("%s not written", k)
		}
	}
	if _, err := c.ModifyIn(ctx, st.NewWriteSet(), []byte("c"), put, WriteOptions{}); !errors.Is(err, ErrSealed) {
		t.Fatalf("ModifyIn after the seal: %v, want ErrSealed", err)
	}
}

// TestModifyInPanicReleasesAdmission: a ModifyFunc that panics (a bug, which a
// front recovers to close only that connection) leaves no admission behind, so
// a later Seal does not wait forever, and the set's stripe is released when it
// ends.
func TestModifyInPanicReleasesAdmission(t *testing.T) {
	clk := newFakeClock()
	c, st := newCoordinator(t, 8, clk.Now)
	ws := st.NewWriteSet()
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the panic did not reach the caller")
			}
		}()
		_, _ = c.ModifyIn(context.Background(), ws, []byte("k"), func(record.Record) (vclock.Clock, vclock.Value, error) {
			panic("bug")
		}, WriteOptions{})
	}()
	if err := ws.Commit(true); err != nil {
		t.Fatal(err)
	}
	sealed := make(chan struct{})
	go func() {
		c.Seal()
		close(sealed)
	}()
	select {
	case <-sealed:
	case <-time.After(5 * time.Second):
		t.Fatal("Seal still waits for the panicked write's admission")
	}
}
