package repair_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lni/goutils/leaktest"

	"github.com/dynakv/dynakv/evict"
	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/repair"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/vclock"
)

// evictRig is one lone store with an evictor over it: evictions delete
// outright (a one-member ring), the limit is settable, time is fake.
type evictRig struct {
	st    *storage.Store
	ev    *repair.Evictor
	now   atomic.Int64 // unix ms
	limit atomic.Int64
}

func newEvictRig(t *testing.T, p evict.Policy) *evictRig { return newEvictRigWith(t, p, nil) }

// newEvictRigWith is newEvictRig with edit, when not nil, applied to the
// evictor's configuration.
func newEvictRigWith(t *testing.T, p evict.Policy, edit func(*repair.EvictorConfig)) *evictRig {
	t.Helper()
	r := &evictRig{}
	r.now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	now := func() time.Time { return time.UnixMilli(r.now.Load()) }
	st, err := storage.Open(storage.Config{InMemory: true, Partitions: 16, Logger: slog.New(slog.DiscardHandler),
		ReapInterval: time.Hour, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r.st = st
	cfg := repair.EvictorConfig{
		Store:  st,
		Policy: p,
		Usage:  func() (int64, int64) { return st.Memory().Live, r.limit.Load() },
		Evict: func(_ context.Context, key []byte, seen record.Record) (bool, error) {
			ok, err := st.DeleteIf(key, seen.AppendBinary(nil))
			if err == nil && !ok {
				err = repair.ErrEvictGhost
			}
			return ok, err
		},
		Now: now, Seed: 7, Logger: slog.New(slog.DiscardHandler),
	}
	if edit != nil {
		edit(&cfg)
	}
	r.ev, err = repair.NewEvictor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.ev.Close() })
	return r
}

// put writes key with a 100-byte value written an hour ago, expiring at
// expiry (0: never).
func (r *evictRig) put(t *testing.T, key string, expiry int64) {
	t.Helper()
	v := vclock.Value{Data: make([]byte, 100), Timestamp: r.now.Load() - 3600_000, Expiry: expiry}
	rec := record.String(vclock.Set{Entries: []vclock.Entry{{Actor: "a", Counter: 1, Values: []vclock.Value{v}}}})
	if _, err := r.st.Update([]byte(key), func(record.Record, bool) (record.Record, error) { return rec, nil }); err != nil {
		t.Fatal(err)
	}
}

func (r *evictRig) has(t *testing.T, key string) bool {
	t.Helper()
	_, found, err := r.st.Get([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestEvictorLRUHoldsBudgetKeepsHotKeys: over its limit, allkeys-lru evicts
// until used memory is at most the limit, counts every eviction, and leaves the
// keys read since (the access table's words) alone.
func TestEvictorLRUHoldsBudgetKeepsHotKeys(t *testing.T) {
	for _, p := range []evict.Policy{evict.AllKeysLRU, evict.AllKeysLFU} {
		t.Run(p.String(), func(t *testing.T) {
			r := newEvictRig(t, p)
			const keys, hot = 1000, 40 // both limits below make tables of evict.MinSlots: one table
			for i := range keys {
				r.put(t, fmt.Sprintf("k%d", i), 0)
			}
			r.limit.Store(r.st.Memory().Live)
			r.ev.RunOnce(context.Background()) // under the limit: makes the access table only
			for range 20 {                     // hot keys: read now, and often (LFU)
				for i := range hot {
					r.has(t, fmt.Sprintf("k%d", i))
				}
			}
			r.limit.Store(r.st.Memory().Live / 2)
			for range 10 {
				r.ev.RunOnce(context.Background())
			}
			if used, limit := r.st.Memory().Live, r.limit.Load(); used > limit {
				t.Fatalf("used %d > limit %d after eviction", used, limit)
			}
			left := int64(0)
			for p := range r.st.Partitions() {
				left += r.st.PartitionCount(p)
			}
			if got := r.ev.Evicted(); got != keys-left || got < keys/3 {
				t.Errorf("Evicted %d, records left %d of %d", got, left, keys)
			}
			lost := 0
			for i := range hot {
				if !r.has(t, fmt.Sprintf("k%d", i)) {
					lost++
				}
			}
			if lost > 0 {
				t.Errorf("%d of %d hot keys evicted", lost, hot)
			}
			if r.ev.Stuck() {
				t.Error("Stuck after evicting")
			}
		})
	}
}

// TestEvictorVolatile: volatile policies evict only keys with an expiry, and
// report nothing evictable (Admit: ErrFull) when there is none;
// volatile-ttl evicts the soonest expiring first.
func TestEvictorVolatile(t *testing.T) {
	for _, p := range []evict.Policy{evict.VolatileLRU, evict.VolatileLFU, evict.VolatileRandom, evict.VolatileTTL} {
		t.Run(p.String(), func(t *testing.T) {
			r := newEvictRig(t, p)
			for i := range 500 {
				r.put(t, fmt.Sprintf("p%d", i), 0)
			}
			r.limit.Store(r.st.Memory().Live / 2)
			r.ev.RunOnce(context.Background())
			if !r.ev.Stuck() || r.ev.Evicted() != 0 {
				t.Fatalf("no volatile key: Stuck %v Evicted %d", r.ev.Stuck(), r.ev.Evicted())
			}
			if err := r.ev.Admit(context.Background()); !errors.Is(err, repair.ErrFull) {
				t.Fatalf("Admit while stuck: %v", err)
			}
			base := r.now.Load()
			for i := range 500 {
				r.put(t, fmt.Sprintf("v%d", i), base+int64(i+1)*60_000)
			}
			r.limit.Store(r.st.Memory().Live * 3 / 4) // the volatile keys are half: room to reach it
			for range 20 {
				r.ev.RunOnce(context.Background())
			}
			if used, limit := r.st.Memory().Live, r.limit.Load(); used > limit || r.ev.Stuck() {
				t.Fatalf("used %d limit %d stuck %v", used, limit, r.ev.Stuck())
			}
			for i := range 500 {
				if !r.has(t, fmt.Sprintf("p%d", i)) {
					t.Fatalf("persistent key p%d evicted", i)
				}
			}
			if p == evict.VolatileTTL {
				// Exact: a prefix of the expiry order is gone, the rest is there.
				gone := int(r.ev.Evicted())
				for i := range 500 {
					if r.has(t, fmt.Sprintf("v%d", i)) != (i >= gone) {
						t.Fatalf("volatile-ttl: v%d present %v with %d evicted", i, !(i < gone), gone)
					}
				}
			}
		})
	}
}

// TestEvictorNoEviction: noeviction never evicts.
func TestEvictorNoEviction(t *testing.T) {
	r := newEvictRig(t, evict.NoEviction)
	for i := range 100 {
		r.put(t, fmt.Sprintf("k%d", i), 0)
	}
	r.limit.Store(1)
	r.ev.RunOnce(context.Background())
	if r.ev.Evicted() != 0 {
		t.Fatalf("noeviction evicted %d", r.ev.Evicted())
	}
}

// TestEvictorAdmitWaitsForRoom: with the loop running, Admit wakes it and
// returns nil once eviction made room; Close ends the loop.
func TestEvictorAdmitWaitsForRoom(t *testing.T) {
	r := newEvictRig(t, evict.AllKeysRandom)
	for i := range 1000 {
		r.put(t, fmt.Sprintf("k%d", i), 0)
	}
	r.ev.Start()
	r.limit.Store(r.st.Memory().Live - 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	for range 20 { // each Admit waits up to 500ms
		if err = r.ev.Admit(ctx); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("Admit: %v", err)
	}
	if used, limit := r.st.Memory().Live, r.limit.Load(); used > limit || r.ev.Evicted() == 0 {
		t.Fatalf("used %d limit %d evicted %d", used, limit, r.ev.Evicted())
	}
	if err := r.ev.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestEvictorAccessConfirm: two replicas of the same keys, whose reads all go
// to B. A evicts under allkeys-lru; with MsgAccess it asks B for the words of
// its picks, learns that the hot keys are hot, and keeps them; without (no
// Caller), the keys B saw read look as cold on A as any.
func TestEvictorAccessConfirm(t *testing.T) {
	for _, confirm := range []bool{true, false} {
		t.Run(fmt.Sprint("confirm=", confirm), func(t *testing.T) {
			ms := newMembers(t, "A", "B")
			b := newEvictRigWith(t, evict.AllKeysLRU, func(c *repair.EvictorConfig) { c.Node, c.Cluster, c.N = "B", ms, 2 })
			mux := peer.NewMux()
			b.ev.Register(mux)
			a := newEvictRigWith(t, evict.AllKeysLRU, func(c *repair.EvictorConfig) {
				c.Node, c.Cluster, c.N = "A", ms, 2
				if confirm {
					c.Caller = peer.CallerFunc(func(ctx context.Context, node string, typ peer.MsgType, req []byte) ([]byte, error) {
						if node != "B" {
							return nil, fmt.Errorf("no node %s", node)
						}
						return mux.ServeCluster(ctx, "A", uint8(typ), req)
					})
				}
			})
			const keys, hot = 1000, 100
			for _, r := range []*evictRig{a, b} {
				for i := range keys {
					r.put(t, fmt.Sprintf("k%d", i), 0)
				}
				r.limit.Store(r.st.Memory().Live) // at the limit: the tables are made
				r.ev.RunOnce(context.Background())
			}
			for i := range hot { // read through B only
				b.has(t, fmt.Sprintf("k%d", i))
			}
			a.limit.Store(a.st.Memory().Live / 2)
			for range 10 {
				a.ev.RunOnce(context.Background())
			}
			if used, limit := a.st.Memory().Live, a.limit.Load(); used > limit {
				t.Fatalf("A: used %d > limit %d", used, limit)
			}
			lost := 0
			for i := range hot {
				if !a.has(t, fmt.Sprintf("k%d", i)) {
					lost++
				}
			}
			t.Logf("A evicted %d, %d of %d keys read on B among them", a.ev.Evicted(), lost, hot)
			if confirm && lost > 0 {
				t.Errorf("with MsgAccess, A evicted %d of the %d keys read on B", lost, hot)
			}
			if !confirm && lost == 0 {
				t.Errorf("without MsgAccess, A kept every key read on B: the test shows nothing")
			}
		})
	}
}

// TestEvictorKicksPurge: while graves crowd the allowance, each pass may kick
// the purge, at most once a second.
func TestEvictorKicksPurge(t *testing.T) {
	var kicks atomic.Int64
	var high atomic.Bool
	r := newEvictRigWith(t, evict.AllKeysLRU, func(c *repair.EvictorConfig) {
		c.GravesHigh = high.Load
		c.KickPurge = func() { kicks.Add(1) }
	})
	step := func(n int) {
		for range n {
			r.ev.RunOnce(context.Background())
			r.now.Add(100) // 100 ms
		}
	}
	step(20)
	if kicks.Load() != 0 {
		t.Fatalf("%d kicks without graves", kicks.Load())
	}
	high.Store(true)
	step(20) // 2 s
	if got := kicks.Load(); got != 2 {
		t.Fatalf("%d kicks in 2 s of high graves, want 2", got)
	}
}

// TestValveTarget: the limit while the files are within 1.4 x the limit plus
// the slack; past it, the limit scaled down by how far they are over, never
// below half.
func TestValveTarget(t *testing.T) {
	const m, s = 64 << 20, repair.ValveSlack
	const b = m*14/10 + s // the bound for m
	for _, tc := range []struct{ limit, physical, want int64 }{
		{0, 1 << 40, 0},           // no limit
		{m, 0, m},                 // nothing yet
		{m, m, m},                 // within
		{m, b, m},                 // at the bound
		{m, b * 5 / 4, m * 4 / 5}, // 1.25x the bound
		{m, b * 2, m / 2},         // 2x: half
		{m, b * 10, m / 2},        // far past: never below half
		{1000, 3 << 20, 1000},     // a small limit: within the slack
		{1000, 2 * (1400 + s), 500},
		{1 << 40, 1 << 41, 1<<39*14/10 + s/2}, // large: no overflow
	} {
		if got := repair.ValveTarget(tc.limit, tc.physical); got != tc.want {
			t.Errorf("ValveTarget(%d, %d) = %d, want %d", tc.limit, tc.physical, got, tc.want)
		}
	}
}

// TestEvictorPhysicalValve: at its limit the node evicts nothing while the
// store's files are within 1.4 x the limit, or were over it at one reading
// only; once two readings a second apart find 2x, the evictor evicts below
// the limit (to 0.7 x it), and goes back to the limit when they fit again.
func TestEvictorPhysicalValve(t *testing.T) {
	var physical atomic.Int64
	r := newEvictRigWith(t, evict.AllKeysRandom, func(c *repair.EvictorConfig) { c.Physical = physical.Load })
	for i := range 1000 {
		r.put(t, fmt.Sprintf("k%d", i), 0)
	}
	limit := r.st.Memory().Live
	r.limit.Store(limit)
	pass := func(ph int64) {
		physical.Store(ph)
		r.now.Add(1000)
		r.ev.RunOnce(context.Background())
	}
	bound := limit*14/10 + repair.ValveSlack
	over := bound * 10 / 7 // the target is then 0.7 x the limit
	pass(bound)
	pass(bound)
	if r.ev.Evicted() != 0 || r.ev.Target() != limit {
		t.Fatalf("files at the bound: evicted %d, target %d (limit %d)", r.ev.Evicted(), r.ev.Target(), limit)
	}
	pass(bound * 3) // one reading: a compaction's moment
	pass(bound)
	if r.ev.Evicted() != 0 {
		t.Fatalf("one reading over the bound: evicted %d", r.ev.Evicted())
	}
	physical.Store(over)
	r.ev.RunOnce(context.Background()) // within the second: not read
	pass(over)
	if r.ev.Evicted() != 0 {
		t.Fatalf("the valve read the files again within a second: evicted %d", r.ev.Evicted())
	}
	pass(over)
	want := limit * 7 / 10
	if used := r.st.Memory().Live; used > want+100 || used < want-1000 || r.ev.Target() != repair.ValveTarget(limit, over) {
		t.Fatalf("files at 1/0.7 x the bound: used %d, target %d; want about %d", used, r.ev.Target(), want)
	}
	evicted := r.ev.Evicted()
	r.put(t, "new", 0)
	pass(limit)
	if r.ev.Evicted() != evicted || r.ev.Target() != limit {
		t.Fatalf("files back within: evicted %d more, target %d", r.ev.Evicted()-evicted, r.ev.Target())
	}
}

// TestEvictorParallel: evictions run InFlight at a time, never more: each
// blocks until InFlight of them are in (with one at a time the first would wait
// until its timeout and fail); the budget is held and every eviction counted.
func TestEvictorParallel(t *testing.T) {
	t.Cleanup(leaktest.AfterTest(t))
	const inFlight = 4
	var cur, most atomic.Int64
	gate := make(chan struct{})
	var once sync.Once
	r := newEvictRigWith(t, evict.AllKeysLRU, func(c *repair.EvictorConfig) {
		c.InFlight, c.RequestTimeout = inFlight, 10*time.Second
		del := c.Evict
		c.Evict = func(ctx context.Context, key []byte, seen record.Record) (bool, error) {
			n := cur.Add(1)
			defer cur.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			if n == inFlight {
				once.Do(func() { close(gate) })
			}
			select {
			case <-gate:
			case <-ctx.Done():
				return false, ctx.Err()
			}
			return del(ctx, key, seen)
		}
	})
	for i := range 1000 {
		r.put(t, fmt.Sprintf("k%d", i), 0)
	}
	r.limit.Store(r.st.Memory().Live / 2)
	r.ev.RunOnce(context.Background())
	if got := most.Load(); got != inFlight {
		t.Errorf("at most %d evictions at once, want %d", got, inFlight)
	}
	if used, limit := r.st.Memory().Live, r.limit.Load(); used > limit {
		t.Errorf("used %d > limit %d", used, limit)
	}
	left := int64(0)
	for p := range r.st.Partitions() {
		left += r.st.PartitionCount(p)
	}
	if got := r.ev.Evicted(); got != 1000-left || got < 400 {
		t.Errorf("Evicted %d, records left %d of 1000", got, left)
	}
	r.ev.Close()
}
