package coordinator_test

// Eviction (issue 18) in the simulation. In a run with evictions (params.evict)
// every incarnation runs an evictor at random moments, from a generator of its
// own, while the clients run: it picks a random record of its store that holds a
// value that is not a tombstone (a random partition, from a random hash, as the
// real evictor samples), keeps it a random while (the real evictor's candidate
// pool), then calls Coordinator.Evict with the record as it saw it, exact or not.
// Each eviction that wrote its tombstone is recorded as a write of the key: its
// dot, the tombstone, the evicted context (the clock of the record the evictor
// saw, not what Evict wrote with: a wider context is caught as a lost write) and
// whether the quorum acknowledged it. Then the rules of sim_rules_test.go apply
// to it as to any write (a lost dot is accounted for only by a context that
// covered it: a write concurrent with an eviction is never lost), and these:
//
//   - When an eviction is acknowledged, at least W nodes hold its tombstone in
//     their own records (its owners, in a run whose ring does not change): no
//     fallback stood in and no hint counted toward its quorum.
//   - An acknowledged eviction's covered dots never appear again in any member's
//     final record, nor in a final plain read, through anti-entropy, read
//     repair, hints, handoff, purge and restarts. (During the run a plain read
//     answered by a fallback standing in for an owner may still see an evicted
//     value, as it may see a deleted one: sloppy quorum; the purge rule covers
//     reads after the tombstone was purged.)

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/proxy"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/vclock"
)

// startEvictor runs n's evictor at random moments until the returned function
// stops it; it evicts only while the clients run (sim.evicting).
func (s *sim) startEvictor(n *simNode, co *coordinator.Coordinator, now func() time.Time) (stop func()) {
	h := fnv.New64a()
	fmt.Fprint(h, "evict", n.name, n.inc)
	rng := rand.New(rand.NewPCG(s.seed, h.Sum64()))
	f := n.fence
	quit, done := make(chan struct{}), make(chan struct{})
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-quit:
			return false
		case <-t.C:
			return true
		}
	}
	go func() {
		defer close(done)
		for wait(200*time.Millisecond + time.Duration(rng.Int64N(int64(1500*time.Millisecond)))) {
			if !s.beginEvict() {
				continue
			}
			key, seen, ok := sampleLive(f, rng)
			exact := rng.IntN(3) != 0
			if ok && wait(time.Duration(rng.Int64N(int64(100*time.Millisecond)))) {
				s.evict(n, co, key, seen, exact, now)
			}
			s.evicts.Done()
		}
	}()
	return func() { close(quit); <-done }
}

// beginEvict reports whether the evictors evict now, and if so counts one
// eviction in flight (sim.evicts: the caller calls Done).
func (s *sim) beginEvict() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.evicting {
		s.evicts.Add(1)
	}
	return s.evicting
}

// stopEvicting ends the evictions, once the clients are done, and waits for
// those in flight, so that faults heal and the checks run with nothing evicted.
func (s *sim) stopEvicting() {
	s.mu.Lock()
	s.evicting = false
	s.mu.Unlock()
	s.evicts.Wait()
}

// sampleLive returns a random record of st holding a value that is not a
// tombstone: the first one from a random hash of a random partition on.
func sampleLive(st *fence, rng *rand.Rand) (string, record.Record, bool) {
	p0, from := rng.IntN(simQ), rng.Uint64()
	var key string
	var seen record.Record
	for i := range simQ + 1 {
		if i > 0 {
			from = 0
		}
		st.Scan((p0+i)%simQ, from, func(_ uint64, k []byte, rec record.Record) bool { //nolint:errcheck // a crashed incarnation finds nothing
			if storage.GraveTime(rec) == 0 && !rec.Empty() {
				key, seen = string(k), rec
				return false
			}
			return true
		})
		if key != "" {
			return key, seen, true
		}
	}
	return "", record.Record{}, false
}

// evict runs one eviction of key, seen as it was, through co and records it.
func (s *sim) evict(n *simNode, co *coordinator.Coordinator, key string, seen record.Record, exact bool, now func() time.Time) {
	o := &op{client: -3, node: n.name, kind: "EVICT", key: key, start: s.now(), accepted: now().UnixMilli()}
	if exact {
		o.arg = "exact"
	}
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	res, err := co.Evict(ctx, []byte(key), seen, exact)
	cancel()
	o.end, o.err = s.now(), err
	s.mu.Lock()
	o.seq = len(s.ops)
	s.ops = append(s.ops, o)
	s.mu.Unlock()
	if !res.Evicted {
		return
	}
	// The tombstone: the newest value of the coordinator's actor (or one of its
	// partition epochs) in the record Evict returned, stamped as the evicted
	// winner.
	win, _ := vclock.Winner(seen.Str.Siblings())
	w := &write{key: key, by: co.Actor(), ctx: seen.Str.Join(), acked: res.Acked, op: o}
	actor := co.Actor()
	for _, e := range res.Record.Str.Entries {
		if (e.Actor == actor || strings.HasPrefix(e.Actor, actor+":")) && len(e.Values) > 0 &&
			e.Values[0].Tombstone && e.Values[0].Timestamp == win.Timestamp {
			w.dot, w.value = vclock.Dot{Actor: e.Actor, Counter: e.Counter}, e.Values[0]
		}
	}
	if w.dot.Counter == 0 {
		s.t.Errorf("%s: the record Evict returned holds no tombstone of %s: %v (deleted outright: %v)", o, actor, res.Record, res.Deleted)
		return
	}
	o.w = w
	s.mu.Lock()
	s.writes[key] = append(s.writes[key], w)
	s.mu.Unlock()
	if w.acked {
		s.checkEvictAcked(w)
	}
}

// checkEvictAcked checks, when eviction w is acknowledged, that W nodes hold its
// tombstone in their own records (its owners, when the ring does not change):
// it keeps no hint, and no fallback counts toward its quorum.
func (s *sim) checkEvictAcked(w *write) {
	nodes := s.owners(w.key)
	if s.p.churn {
		nodes = nil
		for _, n := range s.allNodes() {
			if s.member(n) {
				nodes = append(nodes, n.name)
			}
		}
	}
	count := 0
	for _, name := range nodes {
		if rec, _, _ := s.node(name).store.Get([]byte(w.key)); rec.Str.Join().Covers(w.dot) {
			count++
		}
	}
	if count < simW {
		s.t.Errorf("%s: eviction acknowledged, but only %d nodes of %v hold its tombstone in their records", w.op, count, nodes)
	}
}

// evicted reports whether w is an eviction's tombstone.
func evicted(w *write) bool { return w.op != nil && w.op.kind == "EVICT" }

// checkEvicted checks that no covered dot of an eviction that took effect
// (acknowledged, or its tombstone in the final record, or purged) is in the
// final record of an owner (of any member, with anti-entropy), and that no final
// plain read returned one.
func (s *sim) checkEvicted(keys []string, finals map[string]record.Record) {
	for _, key := range keys {
		clk := finals[key].Str.Join()
		var evs []*write
		for _, w := range s.writes[key] {
			if evicted(w) && s.tookEffect(w, clk) {
				evs = append(evs, w)
			}
		}
		if len(evs) == 0 {
			continue
		}
		// The owners; with anti-entropy every member (handoff left the others
		// nothing). Without, a node that coordinated a write of a key it does not
		// own keeps its copy, which nothing reads: a write it coordinates later
		// merges it with what the owners hold, whose tombstone supersedes it.
		nodes := s.owners(key)
		if s.p.churn {
			nodes = nil
			for _, n := range s.allNodes() {
				if n.x.phase == phaseMember {
					nodes = append(nodes, n.name)
				}
			}
		}
		for _, name := range nodes {
			n := s.node(name)
			rec, _, _ := n.store.Get([]byte(key))
			for _, sb := range rec.Str.Siblings() {
				for _, e := range evs {
					if e.ctx.Covers(sb.Dot) {
						s.t.Errorf("rule: %s: an eviction was undone: %s holds %s at %v, which %s evicted",
							key, n.name, show(sb.Value), sb.Dot, e.op)
						break
					}
				}
			}
		}
		for _, o := range s.x.finals {
			// A counter's values name no write: its records are checked above.
			if o.key != key || o.err != nil || !o.res.Found || strings.HasPrefix(key, "ctr") {
				continue
			}
			for _, w := range s.writes[key] {
				if w.value.Tombstone || string(w.value.Data) != string(o.res.Item.Value) {
					continue
				}
				for _, e := range evs {
					if e.ctx.Covers(w.dot) {
						s.t.Errorf("rule: %s: an evicted value came back: %s returned the value of %s, which %s evicted", key, o, w.op, e.op)
					}
				}
			}
		}
	}
}

// scriptEvict: an owner is down; another evicts the key: the tombstone goes to
// the live owner only (no fallback, no hint), and a read asking every owner
// once the third is back repairs it with the tombstone.
func scriptEvict(s *sim, note func(string, ...any)) {
	ctx := context.Background()
	pl := scriptSetK(s, note)
	note("crash %s", pl[2])
	s.crash(s.node(pl[2]))
	time.Sleep(time.Second) // everyone sees it dead
	note("%s: evict k as it holds it (exact)", pl[1])
	seen, _, err := s.node(pl[1]).store.Get([]byte("k"))
	if err != nil {
		s.t.Fatal(err)
	}
	res, err := s.node(pl[1]).co.Evict(ctx, []byte("k"), seen, true)
	if err != nil || !res.Acked {
		s.t.Fatalf("Evict: %+v, %v", res, err)
	}
	note("acknowledged by W=2 owners; %d hints anywhere", s.hints())
	time.Sleep(100 * time.Millisecond)
	note("restart %s", pl[2])
	s.boot(s.node(pl[2]))
	time.Sleep(2 * time.Second) // no hint to deliver
	note("%s: GET k with R=3", pl[0])
	got, err := s.node(pl[0]).px.Do(ctx, proxy.Op{Kind: proxy.OpGet, Key: []byte("k"), R: 3})
	if err != nil || got.Found {
		s.t.Fatalf("GET k after the eviction: %+v, %v", got, err)
	}
	time.Sleep(100 * time.Millisecond)
}
