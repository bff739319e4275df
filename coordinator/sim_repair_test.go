package coordinator_test

// Anti-entropy, partition handoff, tombstone purge and the reaper in the
// simulation. In a run with membership changes (params.churn) every incarnation
// runs repair.AAE over its fenced store, with Merkle trees it rebuilds at boot (the
// store's observer from then on), a short tombstone grace in fake time (simGrace),
// and the holders a purge asks from its own membership view; its messages travel
// over the peertest.Network like the coordinator's. In a run with expiry (params.expiry)
// every incarnation runs a reaper (memstore.Reap with its own clock) at random
// moments. Each purge (a DeleteIf that deleted) is recorded for the rules.

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/peer/peertest"
	"github.com/dynakv/dynakv/proxy"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/repair"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/tictac"
	"github.com/dynakv/dynakv/vclock"
)

// simGrace is the tombstone grace of runs with anti-entropy: tombstones are purged
// while the clients run.
const simGrace = 2 * time.Second

var (
	_ repair.AAEStore        = repairFence{}
	_ tictac.PartitionLocker = repairFence{}
)

// nodeExtra is a simulated node's part in membership, repair and expiry.
type nodeExtra struct {
	phase       phase
	now         func() time.Time // this incarnation's clock
	trees       *tictac.Trees
	aae         *repair.AAE
	stopReaper  func()
	stopEvictor func()
}

// simExtra is the run's membership, its budget of changes, and what repair did.
type simExtra struct {
	members          *members
	pool             []string // nodes that may still join, in order
	leaves, removals int
	purges           map[string][]purge // by key
	finals           []*op              // the final plain reads
	keys             []string           // the run's keys
}

// purge is one record of tombstones deleted by tombstone purge.
type purge struct {
	node string
	at   time.Duration
	rec  record.Record
	clk  vclock.Clock
}

func (f *fence) ScanEncoded(p int, from uint64, fn func(h uint64, key, enc []byte) bool) error {
	if err := f.err(); err != nil {
		return err
	}
	return f.st.ScanEncoded(p, from, fn)
}

func (f *fence) GetEncoded(key []byte) ([]byte, error) {
	if err := f.err(); err != nil {
		return nil, err
	}
	return f.st.GetEncoded(key)
}

func (f *fence) GravesFrom(cursor []byte, before int64, limit int, keep func(p int) bool) ([]storage.Grave, []byte, error) {
	if err := f.err(); err != nil {
		return nil, nil, err
	}
	return f.st.GravesFrom(cursor, before, limit, keep)
}

func (f *fence) ExclusivePartition(p int, fn func() error) error {
	if err := f.err(); err != nil {
		return err
	}
	return f.st.ExclusivePartition(p, fn)
}

func (f *fence) Reap(now int64) (int, error) {
	if err := f.err(); err != nil {
		return 0, err
	}
	return f.st.Reap(now)
}

// repairFence is the fence anti-entropy writes through: it records purges and
// partition drops.
type repairFence struct {
	*fence
	s    *sim
	node string
}

func (f repairFence) DeleteIf(key, enc []byte) (bool, error) {
	if err := f.err(); err != nil {
		return false, err
	}
	deleted, err := f.st.DeleteIf(key, enc)
	if deleted {
		f.s.recordPurge(f.node, string(key), enc)
	}
	return deleted, err
}

func (f repairFence) DropPartitionIf(p int, cond func() bool) (bool, error) {
	if err := f.err(); err != nil {
		return false, err
	}
	dropped, err := f.st.DropPartitionIf(p, cond)
	if dropped {
		f.s.event("%s hands partition %d off and drops it (epoch %d)", f.node, p, f.st.Epoch(p))
	}
	return dropped, err
}

func (s *sim) recordPurge(node, key string, enc []byte) {
	rec, err := record.Decode(enc)
	if err != nil {
		s.t.Errorf("purge of %s on %s: %v", key, node, err)
		return
	}
	s.mu.Lock()
	if s.x.purges == nil {
		s.x.purges = map[string][]purge{}
	}
	s.x.purges[key] = append(s.x.purges[key], purge{node: node, at: s.now(), rec: rec, clk: rec.Str.Join()})
	s.mu.Unlock()
	s.event("purge %s on %s: %s", key, node, peertest.DescribeRecord(rec))
}

// startRepair starts n's new incarnation's reaper and anti-entropy, as the run
// has them, and returns what answers its messages: a mux with its coordinator's
// handlers and its anti-entropy's.
func (s *sim) startRepair(n *simNode, co *coordinator.Coordinator, now func() time.Time) *peer.Mux {
	mux := peer.NewMux()
	co.Register(mux)
	var stopReaper, stopEvictor func()
	if s.p.expiry {
		stopReaper = s.startReaper(n, now)
	}
	if s.p.evict {
		stopEvictor = s.startEvictor(n, co, now)
	}
	s.mu.Lock()
	n.x.now, n.x.trees, n.x.aae, n.x.stopReaper, n.x.stopEvictor = now, nil, nil, stopReaper, stopEvictor
	s.mu.Unlock()
	if !s.p.churn {
		return mux
	}
	trees := tictac.NewTrees(simQ)
	n.store.SetObserver(trees)
	if err := trees.Rebuild(n.fence); err != nil {
		s.t.Fatal(err)
	}
	view, inc := s.view(n.name), n.inc
	a, err := repair.NewAAE(repair.AAEConfig{
		Node: n.name, Store: repairFence{fence: n.fence, s: s, node: n.name}, Trees: trees, Cluster: view,
		Caller: s.net.Caller(n.name), N: simN,
		Interval: s.jitter(n.name, "aae", time.Second), MaxKeysPerSec: 1 << 20,
		// PurgeSettle as node/ sets it: the coordinators' requests carry what they
		// read until their deadline (up to RequestTimeout/64 late with a shared
		// context) and keep hints of it until RequestTimeout/32 past it. A purge
		// sleeps through the settle with AAEConfig.Sleep's default, a timer: fake
		// time in the synctest bubble, like every other timer here.
		TombstoneGrace: simGrace, Holders: view.holders, PurgeSettle: simTimeout + simTimeout/32, RequestTimeout: simTimeout,
		AfterRound: func(pending int) { s.leaveDone(n, inc, pending) },
		Now:        now, Logger: slog.New(s.quiet),
	})
	if err != nil {
		s.t.Fatal(err)
	}
	a.Start()
	s.mu.Lock()
	n.x.trees, n.x.aae = trees, a
	s.mu.Unlock()
	a.Register(mux)
	return mux
}

// jitter is about d, but not the same for two nodes, whose loops would otherwise
// run at the same instants.
func (s *sim) jitter(node, what string, d time.Duration) time.Duration {
	h := fnv.New64a()
	fmt.Fprint(h, s.seed, node, what)
	return d + time.Duration(h.Sum64()%uint64(time.Millisecond))
}

// startReaper runs n's reaper at random moments (from a generator of its own)
// until the returned function stops it.
func (s *sim) startReaper(n *simNode, now func() time.Time) (stop func()) {
	h := fnv.New64a()
	fmt.Fprint(h, n.name, n.inc)
	rng := rand.New(rand.NewPCG(s.seed, h.Sum64()))
	f := n.fence
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			t := time.NewTimer(100*time.Millisecond + time.Duration(rng.Int64N(int64(1500*time.Millisecond))))
			select {
			case <-quit:
				t.Stop()
				return
			case <-t.C:
			}
			f.Reap(now().UnixMilli()) //nolint:errcheck // fails only once the incarnation crashed
		}
	}()
	return func() { close(quit); <-done }
}

// stopRepair stops n's reaper and anti-entropy (its incarnation crashed).
func (s *sim) stopRepair(n *simNode) {
	if n.x.stopReaper != nil {
		n.x.stopReaper()
		n.x.stopReaper = nil
	}
	if n.x.stopEvictor != nil {
		n.x.stopEvictor()
		n.x.stopEvictor = nil
	}
	if n.x.aae != nil {
		n.x.aae.Close()
	}
}

// member reports whether n is a member (joined, not gone).
func (s *sim) member(n *simNode) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return n.x.phase == phaseMember
}

// running returns the nodes up, in name order.
func (s *sim) running() []*simNode {
	var out []*simNode
	for _, n := range s.allNodes() {
		if n.up {
			out = append(out, n)
		}
	}
	return out
}

// handoffDone reports whether every running node holds records only of the
// partitions it owns (latest ring): every partition handoff finished.
func (s *sim) handoffDone() bool {
	rg := s.x.members.latest().ring
	for _, n := range s.running() {
		if n.x.trees == nil {
			continue
		}
		for p := range simQ {
			if _, keys, _ := n.x.trees.Root(p); keys > 0 && !rg.Owns(n.name, p, simN) {
				return false
			}
		}
	}
	return true
}

// settle ends the churn after heal: the leaves finish and the nodes that left
// stop, every node knows the last member set, the hints drain and every partition
// is with its owners.
func (s *sim) settle() {
	for range 120 {
		s.retire(false)
		if !s.leaving() && s.x.members.settled() && s.hints() == 0 && s.handoffDone() {
			break
		}
		time.Sleep(time.Second)
	}
	s.retire(true)
	if !s.handoffDone() {
		s.t.Errorf("partition handoff unfinished two minutes after heal")
	}
}

// finalRepair, after the reapers stopped and every expiry passed, reaps on every
// node, stops the anti-entropy loops and runs two rounds on each node in turn, so
// that every pair of owners has exchanged and every handoff and due purge is done
// with nothing running alongside.
func (s *sim) finalRepair(maxExpiry int64) {
	for _, n := range s.running() {
		if n.x.stopReaper != nil {
			n.x.stopReaper()
			n.x.stopReaper = nil
		}
	}
	if maxExpiry > 0 {
		if d := time.Until(time.UnixMilli(maxExpiry)); d > -time.Second {
			time.Sleep(d + time.Second) // past every expiry, by every skewed clock
		}
		for _, n := range s.running() {
			if _, err := n.fence.Reap(n.x.now().UnixMilli()); err != nil {
				s.t.Errorf("final reap on %s: %v", n.name, err)
			}
		}
	}
	if !s.p.churn {
		return
	}
	for _, n := range s.running() {
		n.x.aae.Close()
	}
	for range 2 {
		for _, n := range s.running() {
			if err := n.x.aae.RunOnce(context.Background()); err != nil {
				s.t.Errorf("final anti-entropy round on %s: %v", n.name, err)
			}
		}
	}
}

// maxHintAge is handoff's MaxHintAge: none. node/ sets it to the tombstone grace,
// which is seconds here, shorter than the simulation's outages: an owner down
// longer would lose its hints, and with them an acknowledged write whose only
// other copy was on a coordinator an administrator then removed (a double fault
// that a real grace of hours makes unlikely; tombstone purge waits for hints
// anyway, so keeping them never resurrects anything).
func (s *sim) maxHintAge() time.Duration { return 0 }

// checkAckedAnywhere checks, when w is acknowledged in a run whose ring changes
// (the owners the coordinator saw may not be the latest), that at least W nodes
// hold it, in their record or as a hint.
func (s *sim) checkAckedAnywhere(w *write) {
	count := 0
	for _, n := range s.allNodes() {
		if !s.member(n) {
			continue
		}
		held := false
		if rec, _, _ := n.store.Get([]byte(w.key)); rec.Str.Join().Covers(w.dot) {
			held = true
		}
		owners, _ := n.store.HintOwners()
		for _, o := range owners {
			if h, ok, _ := n.store.GetHint(o, []byte(w.key)); ok && h.Str.Join().Covers(w.dot) {
				held = true
			}
		}
		if held {
			count++
		}
	}
	if count < simW {
		s.t.Errorf("%s: acknowledged, but only %d nodes hold it", w.op, count)
	}
}

// maxExpiry is the latest expiry any write set (unix ms), 0 if none.
func (s *sim) maxExpiry() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var at int64
	for _, ws := range s.writes {
		for _, w := range ws {
			at = max(at, w.value.Expiry)
		}
	}
	return at
}

// expiring returns a write with a TTL of 0.3 to 2.5 s over whatever the key holds:
// SET k v PX ttl, or DPUT k ctx v PX ttl with the client's last context; the
// expiry is absolute by the front node's clock, as its front end computes it.
func (s *sim) expiring(rng *rand.Rand, o *op, ctx, val string) (string, proxy.Op) {
	ttl := 300*time.Millisecond + time.Duration(rng.Int64N(int64(2200*time.Millisecond)))
	s.mu.Lock()
	now := s.nodes[o.node].x.now
	s.mu.Unlock()
	exp := now().Add(ttl).UnixMilli() // a crashed node's last clock: the op fails anyway
	if rng.IntN(2) == 0 {
		return "SETEX", proxy.Op{Kind: proxy.OpSet, Key: []byte(o.key), Value: []byte(val), Expiry: exp}
	}
	return "DPUTEX", proxy.Op{Kind: proxy.OpDPut, Key: []byte(o.key), Value: []byte(val), Context: ctx, Expiry: exp}
}

// returnLate, in a run with anti-entropy, keeps the crashed members down a while
// after the faults end (crashing one, if none is down and the run's incarnations
// allow): long past the tombstone grace, so that the others, quiet now, would
// purge the tombstones of keys a returning member may still hold an older copy of
// (in a partition it no longer owns, or one it coordinated a command for as a
// non-owner). Their purge must wait for it (findings 3 and 9 of issue 15),
// however long it stays away.
func (s *sim) returnLate() {
	if !s.p.churn {
		return
	}
	var up, down []*simNode
	latest := s.x.members.latest()
	for _, n := range s.allNodes() {
		switch {
		case !s.member(n):
		case !n.up:
			down = append(down, n)
		case latest.states[n.name] == stateActive:
			up = append(up, n)
		}
	}
	if len(down) == 0 && len(up) > 1 && s.restarts < maxActors-len(s.names) {
		n := up[int(s.seed%uint64(len(up)))]
		s.crash(n)
		s.event("crash %s", n.name)
		down = append(down, n)
	}
	var names []string
	for _, n := range down {
		names = append(names, n.name)
	}
	s.event("faults end; %v stay down for %v", names, 3*simGrace)
	s.deleteSome(up)
	time.Sleep(3 * simGrace)
}

// deleteSome deletes about half the registers (a plain DEL each, through one of
// the nodes up), so that their tombstones are due for purge while some member is
// away.
func (s *sim) deleteSome(up []*simNode) {
	if len(up) == 0 {
		return
	}
	rng := rand.New(rand.NewPCG(s.seed, 0xde1))
	for _, key := range s.x.keys {
		if !strings.HasPrefix(key, "reg") || rng.IntN(2) == 0 {
			continue
		}
		n := up[rng.IntN(len(up))]
		if !n.up {
			continue
		}
		o := &op{client: -2, seq: len(s.ops), node: n.name, kind: "DEL", key: key, start: s.now(), accepted: n.x.now().UnixMilli()}
		s.mu.Lock()
		s.ops = append(s.ops, o)
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), opKey{}, o), clientTimeout)
		o.res, o.err = n.px.Do(ctx, proxy.Op{Kind: proxy.OpDelete, Key: []byte(key)})
		cancel()
		o.end = s.now()
	}
}
