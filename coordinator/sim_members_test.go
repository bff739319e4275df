package coordinator_test

// Membership changes in the simulation (see sim_test.go's header): the ring member
// set changes while the clients run, and every node learns each change after a
// gossip lag of its own.
//
//   - A join adds a new node (its store empty) as an Active member: partitions move
//     to it, pushed by their former owners' partition handoff (repair.AAE).
//   - A leave makes a live member Leaving: it owns nothing from then on (its ring
//     excludes it, as cluster.Members.Ring does) but stays a holder that tombstone
//     purge asks; its anti-entropy hands every partition it holds to the current
//     owners, and once none is left and it keeps no hint, it makes itself Removed
//     (node/'s afterAAERound finishes the leave on pending handoffs alone; the
//     simulation's operator also waits for the hints, see leaveDone). Once every
//     node knows and it holds nothing any more, it is stopped for good.
//   - A removal takes a crashed member out of the ring for good (an administrator's
//     "remove" of a dead node): its store is gone, it never restarts.
//
// A node that gave a partition away and is given it again (a joiner took it, then
// left or was removed) regains it with a raised partition epoch (finding 2 of
// issue 15). At most one removal per run, so that no acknowledged write (on W
// nodes when acknowledged) loses its last copy, at least simN Active members at
// every moment, and one leave at a time: a leaving node finishes once it keeps no
// hint, and hints for a Leaving owner wait until it is Removed, so two nodes
// leaving together could each wait for the other.

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dynakv/dynakv/peer/peertest"
	"github.com/dynakv/dynakv/proxy"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/ring"
)

// memberState is a member's lifecycle state (cluster.State's three).
type memberState uint8

const (
	stateActive memberState = iota + 1
	stateLeaving
	stateRemoved
)

// phase is where a simulated node is in its life.
type phase uint8

const (
	phaseNew    phase = iota // not joined yet (a name in the pool)
	phaseMember              // joined: running or crashed, Active or Leaving (or Removed, still running after its leave)
	phaseGone                // stopped for good: removed by an administrator, or stopped after its leave
)

// memberSet is one version of the ring member set.
type memberSet struct {
	n       int // version number, from 0
	at      time.Time
	states  map[string]memberState
	ring    *ring.Ring // of the Active members
	holders []string   // the members not Removed, sorted: whom a tombstone purge asks
}

// members is the versions of the member set, in order. A node sees the newest
// version whose gossip lag for it has passed (seen); each version is a whole set,
// as memberlist's push/pull exchanges carry, so skipping one is harmless.
type members struct {
	seed   uint64
	detect time.Duration
	zone   func(name string) string // each node's zone, for life
	mu     sync.Mutex
	sets   []*memberSet
	// self names, per version, the node that made the change, which knows at once.
	self []string
}

func newMembers(seed uint64, detect time.Duration, zone func(string) string, names ...string) (*members, error) {
	m := &members{seed: seed, detect: detect, zone: zone}
	states := map[string]memberState{}
	for _, n := range names {
		states[n] = stateActive
	}
	if err := m.add(time.Now(), "", states); err != nil {
		return nil, err
	}
	return m, nil
}

// add appends a version with states, made at at by self ("" for everyone at once).
func (m *members) add(at time.Time, self string, states map[string]memberState) error {
	var active []ring.Member
	var holders []string
	for name, st := range states {
		if st == stateActive {
			active = append(active, ring.Member{Name: name, Zone: m.zone(name)})
		}
		if st != stateRemoved {
			holders = append(holders, name)
		}
	}
	slices.SortFunc(active, func(a, b ring.Member) int { return cmp.Compare(a.Name, b.Name) })
	slices.Sort(holders)
	rg, err := ring.New(simQ, active)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sets = append(m.sets, &memberSet{n: len(m.sets), at: at, states: states, ring: rg, holders: holders})
	m.self = append(m.self, self)
	return nil
}

// lag is how long node takes to learn version n: up to the failure-detection
// delay, from a hash (not a shared random stream, so that a change made in an
// anti-entropy goroutine does not depend on the scheduler). The node that made the
// change knows at once.
func (m *members) lag(n int, node string) time.Duration {
	if m.self[n] == "" || m.self[n] == node {
		return 0
	}
	h := fnv.New64a()
	fmt.Fprint(h, m.seed, n, node)
	return time.Duration(h.Sum64() % uint64(m.detect))
}

// latest is the newest version: the truth, which every node knows after the lag.
func (m *members) latest() *memberSet {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sets[len(m.sets)-1]
}

// seen is the newest version node knows now.
func (m *members) seen(node string) *memberSet {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := len(m.sets) - 1; i > 0; i-- {
		if s := m.sets[i]; !now.Before(s.at.Add(m.lag(i, node))) {
			return s
		}
	}
	return m.sets[0]
}

// settled reports whether every node knows the latest version.
func (m *members) settled() bool {
	return !time.Now().Before(m.latest().at.Add(m.detect))
}

// change makes a new version in which name is in state st, made by self.
func (m *members) change(self, name string, st memberState) error {
	next := map[string]memberState{}
	for k, v := range m.latest().states {
		next[k] = v
	}
	next[name] = st
	return m.add(time.Now(), self, next)
}

// simView is one node's membership view: its own version of the member set, and
// the network's liveness (coordinator.Membership and repair.Membership).
type simView struct {
	m    *members
	node string
	net  peertest.View
}

func (v simView) Ring() *ring.Ring              { return v.m.seen(v.node).ring }
func (v simView) Alive(node string) bool        { return v.net.Alive(node) }
func (v simView) holders() []string             { return v.m.seen(v.node).holders }
func (v simView) state(name string) memberState { return v.m.seen(v.node).states[name] }

// removed is handoff's Removed: a member this node knows was removed (one it has
// not heard of keeps its hints).
func (v simView) removed(name string) bool { return v.state(name) == stateRemoved }

// view returns node's membership view.
func (s *sim) view(node string) simView {
	return simView{m: s.x.members, node: node, net: s.net.View(node)}
}

// churn makes one membership change, if the run's budget and the cluster allow:
// a join, a leave of a live member, or the removal of a crashed one.
func (s *sim) churn(rng *rand.Rand) {
	latest := s.x.members.latest()
	var active, leavable, removable []*simNode
	leaving := false
	for _, n := range s.allNodes() {
		st := latest.states[n.name]
		leaving = leaving || st == stateLeaving
		if n.x.phase != phaseMember || st != stateActive {
			continue
		}
		active = append(active, n)
		if n.up {
			leavable = append(leavable, n)
		} else {
			removable = append(removable, n)
		}
	}
	switch r := rng.IntN(3); {
	case r == 0 && len(s.x.pool) > 0:
		n := s.node(s.x.pool[0])
		s.x.pool = s.x.pool[1:]
		if err := s.x.members.change(n.name, n.name, stateActive); err != nil {
			s.t.Fatal(err)
		}
		s.mu.Lock()
		n.x.phase = phaseMember
		s.mu.Unlock()
		s.boot(n)
		s.event("join %s as %s", n.name, n.co.Actor())
	case r == 1 && len(active) > simN && len(leavable) > 0 && s.x.leaves < 2 && !leaving:
		n := leavable[rng.IntN(len(leavable))]
		s.x.leaves++
		if err := s.x.members.change(n.name, n.name, stateLeaving); err != nil {
			s.t.Fatal(err)
		}
		s.event("leave %s begins", n.name)
	case r == 2 && len(active) > simN && len(removable) > 0 && s.x.removals < 1:
		n := removable[rng.IntN(len(removable))]
		s.x.removals++
		if err := s.x.members.change("", n.name, stateRemoved); err != nil {
			s.t.Fatal(err)
		}
		s.mu.Lock()
		n.x.phase = phaseGone
		s.mu.Unlock()
		s.event("remove %s (down since its crash; its data is gone)", n.name)
	}
}

// leaveDone is the leaving node's AAE AfterRound: once the round found nothing
// left to hand off (pending) and the node keeps no hint, it seals its
// coordinator, and once a later round finds the same, the leave is complete
// and the node makes itself Removed. node/ finishes on pending alone; the
// simulation waits for the hints too, as an operator would before stopping the
// node: hints a stopped node kept are lost, and tombstone purge no longer asks a
// node that left (repair's purge.go says what the rule cannot see).
func (s *sim) leaveDone(n *simNode, inc, pending int) {
	s.mu.Lock()
	current := n.inc == inc && n.up
	s.mu.Unlock()
	if !current || pending > 0 || s.x.members.latest().states[n.name] != stateLeaving || n.store.HintCount() > 0 {
		return
	}
	if !n.co.Sealed() {
		// As node/: seal, and finish after a round that began after the seal
		// (coordinator/seal.go).
		n.co.Seal()
		s.event("leave %s: sealed", n.name)
		return
	}
	if err := s.x.members.change(n.name, n.name, stateRemoved); err != nil {
		s.t.Error(err)
		return
	}
	s.event("leave %s done: removed from the ring", n.name)
}

// retire stops, for good, the nodes that finished their leave once every node
// knows and they hold no record and no hint (or, with force, whatever they hold,
// which check then reports).
func (s *sim) retire(force bool) {
	if !s.x.members.settled() {
		return
	}
	latest := s.x.members.latest()
	for _, n := range s.allNodes() {
		if n.x.phase != phaseMember || latest.states[n.name] != stateRemoved {
			continue
		}
		held := s.holdings(n)
		if held > 0 && !force {
			continue
		}
		if held > 0 {
			s.t.Errorf("%s finished its leave, but still holds %d records or hints after heal", n.name, held)
		}
		if n.up {
			s.crash(n)
		}
		s.mu.Lock()
		n.x.phase = phaseGone
		s.mu.Unlock()
		s.event("stop %s after its leave", n.name)
	}
}

// stopsForGood makes a node that crashed after its leave was done gone for good:
// a removed node refuses to start (cluster.Members), so what it still held (a
// record a peer with an older member set sent it after it finished) goes with it.
func (s *sim) stopsForGood(n *simNode) {
	if s.x.members == nil || s.x.members.latest().states[n.name] != stateRemoved {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n.x.phase = phaseGone
}

// holdings counts the records and hints n's store keeps.
func (s *sim) holdings(n *simNode) int64 {
	var recs int64
	for p := range simQ {
		n.store.Scan(p, 0, func(uint64, []byte, record.Record) bool { recs++; return true }) //nolint:errcheck // a memstore scan fails only once closed
	}
	return recs + n.store.HintCount()
}

// leaving reports whether some node is still Leaving, or finished and runs on.
func (s *sim) leaving() bool {
	latest := s.x.members.latest()
	for _, n := range s.allNodes() {
		st := latest.states[n.name]
		if n.x.phase == phaseMember && (st == stateLeaving || st == stateRemoved) {
			return true
		}
	}
	return false
}

// clientNodes are the nodes clients send to: every member that has not left. The
// caller holds s.mu.
func (s *sim) clientNodes() []string {
	latest := s.x.members.latest()
	var out []string
	for _, name := range s.names {
		if s.nodes[name].x.phase == phaseMember && latest.states[name] != stateRemoved {
			out = append(out, name)
		}
	}
	return out
}

// zoneOf returns the zone of the run's node name ("n1", "n2"...): with p.zones,
// nodes are dealt out over zones z0, z1... by number, so that every zone has
// nodes as soon as there are as many; without, no node has a zone.
func (p params) zoneOf(name string) string {
	if p.zones == 0 {
		return ""
	}
	i, err := strconv.Atoi(strings.TrimPrefix(name, "n"))
	if err != nil {
		panic(fmt.Sprintf("sim: node name %q", name))
	}
	return fmt.Sprint("z", (i-1)%p.zones)
}

// simNames returns the run's first members and, with churn, the names of up to
// two nodes that may join.
func simNames(p params) (names, pool []string) {
	for i := range p.nodes {
		names = append(names, fmt.Sprint("n", i+1))
	}
	if p.churn {
		pool = []string{fmt.Sprint("n", p.nodes+1), fmt.Sprint("n", p.nodes+2)}
	}
	return names, pool
}

// siblingKeys are the keys written only by DPUTs with an empty context, in runs
// whose ring changes: each such write is concurrent with every other, so every
// value stays a sibling for good, and a write that claims more than its context
// covers (a node that lost its copy of the key with a partition it handed off and
// writes the key again, finding 2 of issue 15) removes one, which the rules see.
func siblingKeys(p params) []string {
	if !p.churn {
		return nil
	}
	return []string{"sib0"}
}

// siblingOp is a client's operation on a sibling key: mostly a DPUT with an empty
// context, sometimes a DGET or GET.
func siblingOp(rng *rand.Rand, key, val string) (string, proxy.Op) {
	switch r := rng.IntN(8); {
	case r == 0:
		return "DGET", proxy.Op{Kind: proxy.OpDGet, Key: []byte(key)}
	case r == 1:
		return "GET", proxy.Op{Kind: proxy.OpGet, Key: []byte(key)}
	}
	return "DPUT", proxy.Op{Kind: proxy.OpDPut, Key: []byte(key), Value: []byte(val)}
}
