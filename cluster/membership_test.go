package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/lni/goutils/leaktest"
)

// memberFakeStore is an in-memory MetaStore. It survives a Membership's restart when
// the test passes the same value again.
type memberFakeStore struct {
	mu      sync.Mutex
	m       map[string][]byte
	puts    int
	failPut error
}

var _ MetaStore = (*memberFakeStore)(nil)

func (s *memberFakeStore) GetMeta(name string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[name]
	return bytes.Clone(v), ok, nil
}

func (s *memberFakeStore) PutMeta(name string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failPut != nil {
		return s.failPut
	}
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[name] = bytes.Clone(v)
	s.puts++
	return nil
}

// persisted decodes the member set the store holds.
func (s *memberFakeStore) persisted(t *testing.T) Members {
	t.Helper()
	b, ok, _ := s.GetMeta(MembersMetaName)
	if !ok {
		t.Fatal("no member set persisted")
	}
	ms, err := DecodeMembers(b)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// memberLogCapture is a slog.Handler that keeps Warn and Error records for
// assertions. It never writes to the test log, because memberlist may still log
// from its goroutines for a moment after a test returns.
type memberLogCapture struct {
	mu   *sync.Mutex
	recs *[]string
}

func newMemberLogCapture() memberLogCapture {
	return memberLogCapture{mu: &sync.Mutex{}, recs: new([]string)}
}

func (h memberLogCapture) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h memberLogCapture) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	h.mu.Lock()
	*h.recs = append(*h.recs, b.String())
	h.mu.Unlock()
	return nil
}
func (h memberLogCapture) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h memberLogCapture) WithGroup(string) slog.Handler      { return h }

// count returns how many captured records contain s.
func (h memberLogCapture) count(s string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range *h.recs {
		if strings.Contains(r, s) {
			n++
		}
	}
	return n
}

func (h memberLogCapture) dump() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(*h.recs, "\n")
}

// memberTestTuning makes memberlist fast enough for loopback tests.
func memberTestTuning(c *memberlist.Config) {
	*c = *memberlist.DefaultLocalConfig()
	c.ProbeInterval = 50 * time.Millisecond
	c.ProbeTimeout = 25 * time.Millisecond
	c.GossipInterval = 20 * time.Millisecond
	c.PushPullInterval = 500 * time.Millisecond
	c.SuspicionMult = 2
	c.SuspicionMaxTimeoutMult = 2
	c.TCPTimeout = 500 * time.Millisecond
	c.GossipToTheDeadTime = time.Second
}

// memberTestNode is one Membership under test with what survives its restarts.
type memberTestNode struct {
	name    string
	zone    string // Self.Zone at the next start
	store   *memberFakeStore
	logs    memberLogCapture
	mu      sync.Mutex
	aliveCB []string // names passed to OnAlive
	changes int      // OnChange calls
	m       *Membership
}

func (n *memberTestNode) onAlive() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.aliveCB)
}

func memberTestConfig(n *memberTestNode, bind string, seeds []string, secret string) MembershipConfig {
	return MembershipConfig{
		Self: Member{
			Name: n.name, Weight: 1,
			RESPAddr: "127.0.0.1:6379", MemcacheAddr: "127.0.0.1:11211",
			HTTPAddr: "127.0.0.1:9121", ClusterAddr: "127.0.0.1:7947/" + n.name,
			Zone: n.zone,
		},
		BindAddr:       bind,
		Seeds:          seeds,
		Secret:         []byte(secret),
		Store:          n.store,
		Partitions:     64,
		Logger:         slog.New(n.logs),
		Tuning:         memberTestTuning,
		JoinBackoffMin: 20 * time.Millisecond,
		JoinBackoffMax: 200 * time.Millisecond,
		OnAlive: func(name string) {
			n.mu.Lock()
			n.aliveCB = append(n.aliveCB, name)
			n.mu.Unlock()
		},
		OnChange: func() {
			n.mu.Lock()
			n.changes++
			n.mu.Unlock()
		},
	}
}

// startMembership builds and starts a Membership, as a node does in two steps.
func startMembership(cfg MembershipConfig) (*Membership, error) {
	m, err := NewMembership(cfg)
	if err != nil {
		return nil, err
	}
	m.Start()
	return m, nil
}

func newMemberTestNode(name string) *memberTestNode {
	return &memberTestNode{name: name, store: &memberFakeStore{}, logs: newMemberLogCapture()}
}

// start starts (or restarts) n; bind "" means a fresh loopback port.
func (n *memberTestNode) start(t *testing.T, bind string, seeds []string, secret string) {
	t.Helper()
	if bind == "" {
		bind = "127.0.0.1:0"
	}
	m, err := startMembership(memberTestConfig(n, bind, seeds, secret))
	if err != nil {
		t.Fatalf("start %s: %v", n.name, err)
	}
	n.m = m
}

func (n *memberTestNode) close(t *testing.T) {
	t.Helper()
	if n.m == nil {
		return
	}
	if err := n.m.Close(); err != nil {
		t.Errorf("close %s: %v", n.name, err)
	}
	n.m = nil
}

// crash stops n the way a killed process stops: no leave message, so peers find out
// through failure detection.
func (n *memberTestNode) crash(t *testing.T) {
	t.Helper()
	m := n.m
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		m.mu.Unlock()
		m.stopper.Stop()
		_ = m.ml.Shutdown()
	})
	n.m = nil
}

// memberFreeAddr returns a loopback address with a port that was free a moment ago.
func memberFreeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// memberEventually polls cond until it returns nil or the deadline passes.
func memberEventually(t *testing.T, d time.Duration, what string, cond func() error, nodes ...*memberTestNode) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			for _, n := range nodes {
				t.Logf("%s logs:\n%s", n.name, n.logs.dump())
			}
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		<-tick.C
	}
}

// memberConverged checks that every node sees exactly want (name -> state), with
// alive as given, and the same ring.
func memberConverged(nodes []*memberTestNode, want map[string]State, alive map[string]bool) error {
	var ref []string
	for i, n := range nodes {
		ms := n.m.Members()
		if len(ms) != len(want) {
			return fmt.Errorf("%s sees %d members, want %d", n.name, len(ms), len(want))
		}
		for _, st := range ms {
			if w, ok := want[st.Name]; !ok || st.State != w {
				return fmt.Errorf("%s sees %s %v, want %v", n.name, st.Name, st.State, w)
			}
			if a, ok := alive[st.Name]; ok && st.Alive != a {
				return fmt.Errorf("%s sees %s alive=%v, want %v", n.name, st.Name, st.Alive, a)
			}
		}
		r := n.m.Ring()
		var lists []string
		for p := range r.Partitions() {
			lists = append(lists, strings.Join(r.PreferenceList(p), ","))
		}
		if i == 0 {
			ref = lists
		} else if !slices.Equal(lists, ref) {
			return fmt.Errorf("%s has a different ring than %s", n.name, nodes[0].name)
		}
	}
	return nil
}

func TestMembershipJoinConvergesWithRetry(t *testing.T) {
	defer leaktest.AfterTest(t)()
	a, b, c := newMemberTestNode("a"), newMemberTestNode("b"), newMemberTestNode("c")
	nodes := []*memberTestNode{a, b, c}
	defer func() {
		for _, n := range nodes {
			n.close(t)
		}
	}()
	seed := memberFreeAddr(t)

	// b starts before its seed exists: its join loop must keep retrying.
	b.start(t, "", []string{seed}, "secret")
	memberEventually(t, 5*time.Second, "b's first join failures", func() error {
		if b.m.joinFailed.Load() < 2 || b.logs.count("join failed") == 0 {
			return errors.New("not yet")
		}
		return nil
	}, b)
	if b.m.Joined() {
		t.Fatal("b joined a seed that does not exist")
	}
	a.start(t, seed, nil, "secret")
	if !a.m.Joined() || a.m.GossipAddr() != seed {
		t.Fatalf("seed: Joined=%v GossipAddr=%s, want true %s", a.m.Joined(), a.m.GossipAddr(), seed)
	}
	c.start(t, "", []string{seed}, "secret")

	all := map[string]State{"a": StateActive, "b": StateActive, "c": StateActive}
	up := map[string]bool{"a": true, "b": true, "c": true}
	memberEventually(t, 5*time.Second, "3 members converge", func() error {
		return memberConverged(nodes, all, up)
	}, nodes...)
	for _, n := range nodes {
		if !n.m.Joined() {
			t.Errorf("%s: Joined() = false", n.name)
		}
		if n.m.Ring().Len() != 3 {
			t.Errorf("%s: ring has %d members", n.name, n.m.Ring().Len())
		}
		for _, o := range nodes {
			mb, ok := n.m.Member(o.name)
			if !ok || mb.GossipAddr != o.m.GossipAddr() || mb.ClusterAddr != "127.0.0.1:7947/"+o.name ||
				mb.RESPAddr != "127.0.0.1:6379" || mb.Version != 1 || mb.Weight != 1 {
				t.Errorf("%s sees %s as %+v", n.name, o.name, mb)
			}
		}
		// Persisted: the store holds what the node sees.
		if got := n.store.persisted(t); !membersTestEqual(got, memberTestSnapshot(n.m)) {
			t.Errorf("%s persisted %v, sees %v", n.name, got, memberTestSnapshot(n.m))
		}
	}
	// OnAlive runs on the membership's own goroutine after the change it reports is
	// visible, so it may trail the convergence seen above by a moment.
	memberEventually(t, 5*time.Second, "OnAlive reports a", func() error {
		for _, n := range nodes {
			if n != a && !slices.Contains(n.onAlive(), "a") {
				return fmt.Errorf("%s: OnAlive never reported a: %v", n.name, n.onAlive())
			}
		}
		return nil
	}, nodes...)
}

// memberTestSnapshot returns m's member set.
func memberTestSnapshot(m *Membership) Members {
	out := Members{}
	for _, st := range m.Members() {
		out[st.Name] = st.Member
	}
	return out
}

// memberTestCluster starts a converged 3-node cluster a, b, c (seed a), in zones
// zones[0], zones[1], zones[2] ("" if not given).
func memberTestCluster(t *testing.T, zones ...string) []*memberTestNode {
	t.Helper()
	a, b, c := newMemberTestNode("a"), newMemberTestNode("b"), newMemberTestNode("c")
	nodes := []*memberTestNode{a, b, c}
	for i, z := range zones {
		nodes[i].zone = z
	}
	a.start(t, "", nil, "secret")
	b.start(t, "", []string{a.m.GossipAddr()}, "secret")
	c.start(t, "", []string{a.m.GossipAddr()}, "secret")
	memberEventually(t, 5*time.Second, "3 members converge", func() error {
		return memberConverged(nodes, map[string]State{"a": StateActive, "b": StateActive, "c": StateActive},
			map[string]bool{"a": true, "b": true, "c": true})
	}, nodes...)
	return nodes
}

func TestMembershipDownNodeStaysRingMember(t *testing.T) {
	defer leaktest.AfterTest(t)()
	nodes := memberTestCluster(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	defer func() {
		for _, n := range nodes {
			n.close(t)
		}
	}()
	all := map[string]State{"a": StateActive, "b": StateActive, "c": StateActive}

	for _, tc := range []struct {
		how  string
		n    *memberTestNode
		stop func(*testing.T)
	}{
		{"graceful shutdown", c, c.close},
		{"crash", b, b.crash},
	} {
		n := tc.n
		addr := n.m.GossipAddr()
		before, _ := a.m.Member(n.name)
		seenAlive := len(slices.DeleteFunc(a.onAlive(), func(s string) bool { return s != n.name }))
		tc.stop(t)
		var up []*memberTestNode
		for _, o := range nodes {
			if o != n {
				up = append(up, o)
			}
		}
		memberEventually(t, 10*time.Second, tc.how+": peers see "+n.name+" down", func() error {
			return memberConverged(up, all, map[string]bool{n.name: false})
		}, up...)
		for _, o := range up {
			if o.m.Ring().Len() != 3 {
				t.Fatalf("%s: %s: ring has %d members; a down node must stay", tc.how, o.name, o.m.Ring().Len())
			}
		}

		// Restart with the same name, store and address (a crashed node's old address
		// is only reclaimable after memberlist's DeadNodeReclaimTime).
		n.start(t, addr, []string{a.m.GossipAddr()}, "secret")
		memberEventually(t, 5*time.Second, tc.how+": "+n.name+" alive again", func() error {
			if err := memberConverged(nodes, all, map[string]bool{"a": true, "b": true, "c": true}); err != nil {
				return err
			}
			if mb, _ := a.m.Member(n.name); mb.Version != before.Version+1 {
				return fmt.Errorf("a sees %s at version %d, want %d", n.name, mb.Version, before.Version+1)
			}
			got := len(slices.DeleteFunc(a.onAlive(), func(s string) bool { return s != n.name }))
			if got != seenAlive+1 {
				return fmt.Errorf("a: OnAlive(%s) called %d times, want %d", n.name, got, seenAlive+1)
			}
			return nil
		}, nodes...)
	}
}

func TestMembershipRemove(t *testing.T) {
	defer leaktest.AfterTest(t)()
	nodes := memberTestCluster(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	defer func() {
		for _, n := range nodes {
			n.close(t)
		}
	}()

	if err := a.m.Remove("a"); !errors.Is(err, ErrRemoveSelf) {
		t.Errorf("Remove(self) = %v, want ErrRemoveSelf", err)
	}
	if err := a.m.Remove("nope"); !errors.Is(err, ErrUnknownMember) {
		t.Errorf("Remove(unknown) = %v, want ErrUnknownMember", err)
	}

	// A dead node is removed; the removal spreads and is persisted everywhere.
	cAddr := c.m.GossipAddr()
	c.crash(t)
	b.mu.Lock()
	changesBefore := b.changes
	b.mu.Unlock()
	if err := a.m.Remove("c"); err != nil {
		t.Fatal(err)
	}
	if err := a.m.Remove("c"); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	up := nodes[:2]
	want := map[string]State{"a": StateActive, "b": StateActive, "c": StateRemoved}
	memberEventually(t, 5*time.Second, "removal of c spreads", func() error {
		return memberConverged(up, want, map[string]bool{"a": true, "b": true})
	}, up...)
	for _, n := range up {
		if got := n.store.persisted(t)["c"].State; got != StateRemoved {
			t.Errorf("%s persisted c as %v", n.name, got)
		}
		if r := n.m.Ring(); r.Len() != 2 || slices.Contains(r.PreferenceList(0), "c") {
			t.Errorf("%s: ring still has c: %v", n.name, r.PreferenceList(0))
		}
	}
	// OnChange runs on the notifier goroutine, a moment after the change is applied.
	memberEventually(t, 5*time.Second, "b: OnChange called for the removal", func() error {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.changes == changesBefore {
			return errors.New("OnChange not called")
		}
		return nil
	}, b)

	// c comes back with its old data directory, where it is still Active, and bumps
	// its version: removal is final anyway, and c learns of it.
	countC := func() int { return len(slices.DeleteFunc(a.onAlive(), func(s string) bool { return s != "c" })) }
	aliveBefore := countC()
	c.start(t, cAddr, []string{a.m.GossipAddr()}, "secret")
	memberEventually(t, 5*time.Second, "c learns it was removed", func() error {
		return memberConverged(nodes, want, nil)
	}, nodes...)
	if c.m.Ring().Len() != 2 {
		t.Errorf("c's ring has %d members, want 2", c.m.Ring().Len())
	}
	if c.logs.count("this node was removed") == 0 {
		t.Errorf("c did not log its removal:\n%s", c.logs.dump())
	}
	memberEventually(t, 5*time.Second, "a sees removed c alive", func() error {
		if !a.m.Alive("c") {
			return errors.New("not yet")
		}
		return nil
	}, a)
	if countC() != aliveBefore {
		t.Errorf("OnAlive reported removed c: %v", a.onAlive())
	}
	c.close(t)
	if _, err := NewMembership(memberTestConfig(c, "127.0.0.1:0", nil, "secret")); !errors.Is(err, ErrRemoved) ||
		!strings.Contains(err.Error(), "node c was removed") {
		t.Fatalf("restart of removed c = %v, want ErrRemoved", err)
	}

	// A live node is removed: it learns it, persists it, and cannot come back.
	if err := a.m.Remove("b"); err != nil {
		t.Fatal(err)
	}
	want["b"] = StateRemoved
	memberEventually(t, 5*time.Second, "removal of b spreads", func() error {
		return memberConverged(up, want, nil)
	}, up...)
	b.close(t)
	if got := b.store.persisted(t)["b"].State; got != StateRemoved {
		t.Fatalf("b persisted itself as %v", got)
	}
	if _, err := NewMembership(memberTestConfig(b, "127.0.0.1:0", nil, "secret")); !errors.Is(err, ErrRemoved) {
		t.Fatalf("restart of removed b = %v, want ErrRemoved", err)
	}
}

func TestMembershipSecretMismatch(t *testing.T) {
	defer leaktest.AfterTest(t)()
	a, b, c := newMemberTestNode("a"), newMemberTestNode("b"), newMemberTestNode("c")
	nodes := []*memberTestNode{a, b, c}
	defer func() {
		for _, n := range nodes {
			n.close(t)
		}
	}()
	a.start(t, "", nil, "right")
	b.start(t, "", []string{a.m.GossipAddr()}, "wrong")
	c.start(t, "", []string{a.m.GossipAddr()}, "right") // control: the right secret joins
	memberEventually(t, 5*time.Second, "c joins, b keeps failing", func() error {
		if err := memberConverged([]*memberTestNode{a, c}, map[string]State{"a": StateActive, "c": StateActive}, nil); err != nil {
			return err
		}
		if n := b.m.joinFailed.Load(); n < 3 {
			return fmt.Errorf("b failed %d join rounds", n)
		}
		return nil
	}, nodes...)
	if b.m.Joined() {
		t.Error("b joined with the wrong secret")
	}
	if ms := b.m.Members(); len(ms) != 1 || ms[0].Name != "b" {
		t.Errorf("b sees %v", ms)
	}
	if _, ok := a.m.Member("b"); ok || a.m.Alive("b") {
		t.Error("a learned of b, which has the wrong secret")
	}
}

func TestMembershipRejoinFromPersistedMembers(t *testing.T) {
	defer leaktest.AfterTest(t)()
	nodes := memberTestCluster(t)
	a, b := nodes[0], nodes[1]
	defer func() {
		for _, n := range nodes {
			n.close(t)
		}
	}()
	oldAddr := b.m.GossipAddr()
	b.close(t)
	memberEventually(t, 5*time.Second, "b seen down", func() error {
		if a.m.Alive("b") {
			return errors.New("a still sees b alive")
		}
		return nil
	}, a)

	// No seeds, a new port: b finds the cluster through its persisted member set,
	// and the others learn its new address.
	b.start(t, "", nil, "secret")
	if b.m.GossipAddr() == oldAddr {
		t.Skip("the kernel handed out the same port again")
	}
	memberEventually(t, 5*time.Second, "b rejoins without seeds", func() error {
		if !b.m.Joined() {
			return errors.New("b not joined")
		}
		if err := memberConverged(nodes, map[string]State{"a": StateActive, "b": StateActive, "c": StateActive},
			map[string]bool{"a": true, "b": true, "c": true}); err != nil {
			return err
		}
		for _, n := range nodes {
			if mb, _ := n.m.Member("b"); mb.GossipAddr != b.m.GossipAddr() {
				return fmt.Errorf("%s has b at %s, want %s", n.name, mb.GossipAddr, b.m.GossipAddr())
			}
		}
		return nil
	}, nodes...)
}

// TestMembershipReachableBeforeJoin: a member restarted while the others are down
// cannot join, and memberlist says nothing of them: they are not Alive, but
// Reachable (requests find out); once it has joined,
// Reachable is Alive, for a member still down too.
func TestMembershipReachableBeforeJoin(t *testing.T) {
	defer leaktest.AfterTest(t)()
	nodes := memberTestCluster(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	defer func() {
		for _, n := range nodes {
			n.close(t)
		}
	}()
	aAddr := a.m.GossipAddr()
	c.crash(t)
	memberEventually(t, 10*time.Second, "c seen down", func() error {
		if a.m.Alive("c") || b.m.Alive("c") {
			return errors.New("c still seen alive")
		}
		return nil
	}, a, b)
	a.close(t)
	b.close(t)

	b.start(t, "", nil, "secret") // a and c are down: b cannot join
	if b.m.Joined() {
		t.Fatal("b joined with every other member down")
	}
	for _, name := range []string{"a", "c"} {
		if b.m.Alive(name) {
			t.Errorf("b: Alive(%s) before any report", name)
		}
		if !b.m.Reachable(name) {
			t.Errorf("b: Reachable(%s) = false before b joined", name)
		}
	}
	if b.m.Reachable("nobody") {
		t.Error("b: Reachable of a name that is no member")
	}

	a.start(t, aAddr, nil, "secret") // back on its old address: b's join loop finds it
	memberEventually(t, 10*time.Second, "b joins a", func() error {
		if !b.m.Joined() || !b.m.Alive("a") {
			return errors.New("b has not joined a")
		}
		return nil
	}, a, b)
	if !b.m.Reachable("a") {
		t.Error("b: a alive but not Reachable")
	}
	if b.m.Reachable("c") {
		t.Error("b: Reachable(c) after joining, with c down")
	}
}

func TestMembershipSingleNode(t *testing.T) {
	defer leaktest.AfterTest(t)()
	n := newMemberTestNode("solo")
	n.start(t, "", nil, "")
	m := n.m
	if _, port, _ := net.SplitHostPort(m.GossipAddr()); port == "0" || port == "" {
		t.Fatalf("GossipAddr() = %q: port 0 not resolved", m.GossipAddr())
	}
	if !m.Joined() || !m.Alive("solo") || m.Alive("other") {
		t.Fatalf("Joined=%v Alive(self)=%v Alive(other)=%v", m.Joined(), m.Alive("solo"), m.Alive("other"))
	}
	if r := m.Ring(); r == nil || r.Len() != 1 || r.Partitions() != 64 {
		t.Fatalf("Ring() = %v", r)
	}
	self, ok := m.Member("solo")
	if !ok || self.State != StateActive || self.Version != 1 || self.GossipAddr != m.GossipAddr() {
		t.Fatalf("Member(self) = %+v, %v", self, ok)
	}
	if n.logs.count("not encrypted") == 0 {
		t.Error("no warning about plain-text gossip")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := m.Remove("x"); !errors.Is(err, ErrMembershipClosed) {
		t.Fatalf("Remove after Close = %v", err)
	}
	n.m = nil

	// Restart: version bumped, set persisted before and after.
	n.start(t, "", nil, "")
	if self, _ := n.m.Member("solo"); self.Version != 2 {
		t.Errorf("restart: version %d, want 2", self.Version)
	}
	if got := n.store.persisted(t)["solo"].Version; got != 2 {
		t.Errorf("persisted version %d, want 2", got)
	}
	n.close(t)
}

func TestMembershipStartErrors(t *testing.T) {
	defer leaktest.AfterTest(t)()
	base := func(s *memberFakeStore) MembershipConfig {
		return MembershipConfig{Self: Member{Name: "n"}, BindAddr: "127.0.0.1:0", Store: s, Tuning: memberTestTuning}
	}
	corrupt := &memberFakeStore{m: map[string][]byte{MembersMetaName: {1, 9}}}
	failing := &memberFakeStore{failPut: errors.New("disk on fire")}
	long := strings.Repeat("x", 200)
	for _, tc := range []struct {
		name string
		cfg  MembershipConfig
		want string
	}{
		{"no store", func() MembershipConfig { c := base(nil); c.Store = nil; return c }(), "Store is required"},
		{"no name", func() MembershipConfig { c := base(&memberFakeStore{}); c.Self.Name = ""; return c }(), "empty name"},
		{"bad bind", func() MembershipConfig { c := base(&memberFakeStore{}); c.BindAddr = "nope"; return c }(), "gossip"},
		{"bad partitions", func() MembershipConfig { c := base(&memberFakeStore{}); c.Partitions = 6; return c }(), "power of two"},
		{"meta too large", func() MembershipConfig {
			c := base(&memberFakeStore{})
			c.Self.RESPAddr, c.Self.MemcacheAddr, c.Self.HTTPAddr = long, long, long
			return c
		}(), "metadata limit"},
		{"bad advertise", func() MembershipConfig { c := base(&memberFakeStore{}); c.Self.GossipAddr = "host:1"; return c }(), "ip:port"},
		{"bad zone", func() MembershipConfig { c := base(&memberFakeStore{}); c.Self.Zone = "data center 1"; return c }(), "zone"},
		{"corrupt persisted set", base(corrupt), "malformed member encoding"},
		{"persist fails", base(failing), "disk on fire"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := NewMembership(tc.cfg)
			if err == nil {
				m.Close()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// TestMembershipCallbacksWaitForStart: a built but not started Membership answers
// gossip (a peer joins it and the member sets merge) but calls neither OnAlive nor
// OnChange, and does not try its seeds, until Start; then the queued callbacks
// run. A node builds what its callbacks use between the two.
func TestMembershipCallbacksWaitForStart(t *testing.T) {
	defer leaktest.AfterTest(t)()
	a, b := newMemberTestNode("a"), newMemberTestNode("b")
	m, err := NewMembership(memberTestConfig(a, "127.0.0.1:0", []string{memberFreeAddr(t)}, "secret"))
	if err != nil {
		t.Fatal(err)
	}
	a.m = m
	defer a.close(t)
	b.start(t, "", []string{m.GossipAddr()}, "secret")
	defer b.close(t)
	memberEventually(t, 5*time.Second, "a sees b alive and in the set", func() error {
		if mb, ok := m.Member("b"); !ok || mb.State != StateActive || !m.Alive("b") {
			return errors.New("not yet")
		}
		return nil
	}, a, b)
	if m.joinFailed.Load() != 0 {
		t.Fatal("a tried its seed before Start")
	}
	a.mu.Lock()
	alive, changes := len(a.aliveCB), a.changes
	a.mu.Unlock()
	if alive != 0 || changes != 0 {
		t.Fatalf("before Start: %d OnAlive and %d OnChange calls, want none", alive, changes)
	}
	m.Start()
	memberEventually(t, 5*time.Second, "a's queued callbacks after Start", func() error {
		a.mu.Lock()
		defer a.mu.Unlock()
		if !slices.Contains(a.aliveCB, "b") || a.changes == 0 {
			return fmt.Errorf("OnAlive %v, %d OnChange", a.aliveCB, a.changes)
		}
		return nil
	}, a, b)
}

func TestMembershipAdvertiseAddr(t *testing.T) {
	defer leaktest.AfterTest(t)()
	n := newMemberTestNode("adv")
	cfg := memberTestConfig(n, "127.0.0.1:0", nil, "s")
	cfg.Self.GossipAddr = "127.0.0.2:0"
	m, err := startMembership(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	host, port, _ := net.SplitHostPort(m.GossipAddr())
	if host != "127.0.0.2" || port == "0" {
		t.Fatalf("GossipAddr() = %s, want 127.0.0.2 and the bound port", m.GossipAddr())
	}
}

func TestMemberLogWriterLevels(t *testing.T) {
	var buf bytes.Buffer
	w := memberLogWriter{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))}
	for _, line := range []string{
		"[DEBUG] memberlist: probe\n", "[INFO] memberlist: hello\n",
		"[WARN] memberlist: careful\n", "[ERR] memberlist: broken\n", "no prefix\n",
	} {
		if n, err := w.Write([]byte(line)); n != len(line) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	want := `level=DEBUG msg=probe
level=INFO msg=hello
level=WARN msg=careful
level=ERROR msg=broken
level=INFO msg="no prefix"
`
	if buf.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

// TestMembershipReconnectsToDeadMembers: when memberlist on both sides would never
// gossip again (no gossip to the dead, no periodic push/pull), a node still finds a
// ring member it reported dead once that member answers again: the reconnect loop
// pushes and pulls with it. With the loop off the two stay apart, which shows the
// loop is what joins them.
func TestMembershipReconnectsToDeadMembers(t *testing.T) {
	defer leaktest.AfterTest(t)()
	quiet := func(c *memberlist.Config) {
		memberTestTuning(c)
		c.GossipToTheDeadTime = 0
		c.PushPullInterval = 0
	}
	for _, tc := range []struct {
		name      string
		reconnect time.Duration
		want      bool
	}{
		{"loop off", -1, false},
		{"loop on", 50 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newMemberTestNode("a"), newMemberTestNode("b")
			start := func(n *memberTestNode, bind string, seeds []string) {
				cfg := memberTestConfig(n, bind, seeds, "secret")
				cfg.Tuning, cfg.ReconnectInterval = quiet, tc.reconnect
				m, err := startMembership(cfg)
				if err != nil {
					t.Fatalf("start %s: %v", n.name, err)
				}
				n.m = m
			}
			start(a, "127.0.0.1:0", nil)
			defer a.close(t)
			start(b, "127.0.0.1:0", []string{a.m.GossipAddr()})
			addr := b.m.GossipAddr()
			memberEventually(t, 5*time.Second, "a and b see each other", func() error {
				return memberConverged([]*memberTestNode{a, b}, map[string]State{"a": StateActive, "b": StateActive}, map[string]bool{"a": true, "b": true})
			}, a, b)
			b.crash(t)
			memberEventually(t, 5*time.Second, "a sees b dead", func() error {
				if a.m.Alive("b") {
					return errors.New("b still alive to a")
				}
				return nil
			}, a)
			// b comes back at the same address knowing nothing of a: no seeds, an
			// empty store. Only a can find it.
			b.store = &memberFakeStore{}
			start(b, addr, nil)
			defer b.close(t)
			deadline := time.Now().Add(1500 * time.Millisecond)
			// The loop counts a reconnect after Join returns, which may be a moment
			// after the join's events marked both alive: wait for both.
			for time.Now().Before(deadline) && !(a.m.Alive("b") && b.m.Alive("a") && a.m.reconnects.Load() > 0) {
				time.Sleep(20 * time.Millisecond)
			}
			if got := a.m.Alive("b") && b.m.Alive("a"); got != tc.want {
				t.Fatalf("a and b see each other alive: %v, want %v", got, tc.want)
			}
			if tc.want && a.m.reconnects.Load() == 0 {
				t.Fatal("joined without a counted reconnect")
			}
		})
	}
}

// TestMembershipPushPullCatchesMissedJoin: a node that heard no gossip about a
// joiner (gossip and probes off here, as if every UDP packet about it was lost)
// learns of it from the periodic push/pull, which Membership runs every
// DefaultPushPullInterval instead of memberlist's 30 s.
func TestMembershipPushPullCatchesMissedJoin(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a push/pull round; skipped with -short")
	}
	defer leaktest.AfterTest(t)()
	deaf := func(c *memberlist.Config) {
		pp := c.PushPullInterval
		if pp != DefaultPushPullInterval {
			t.Errorf("Tuning got PushPullInterval %v, want %v", pp, DefaultPushPullInterval)
		}
		memberTestTuning(c)
		// An hour, not 0: memberlist stops its push/pull goroutine only when some
		// ticker runs.
		c.GossipInterval, c.ProbeInterval, c.PushPullInterval = time.Hour, time.Hour, pp
	}
	nodes := []*memberTestNode{newMemberTestNode("a"), newMemberTestNode("b"), newMemberTestNode("c")}
	for i, n := range nodes {
		var seeds []string
		if i > 0 {
			seeds = []string{nodes[0].m.GossipAddr()}
		}
		cfg := memberTestConfig(n, "127.0.0.1:0", seeds, "secret")
		cfg.Tuning, cfg.ReconnectInterval = deaf, -1
		m, err := startMembership(cfg)
		if err != nil {
			t.Fatalf("start %s: %v", n.name, err)
		}
		n.m = m
		defer n.close(t)
		// c joins only once b has, so b can learn of c from nothing but a state
		// exchange.
		memberEventually(t, 5*time.Second, n.name+" joined", func() error {
			if i > 0 && !nodes[0].m.Alive(n.name) {
				return errors.New("not alive to a yet")
			}
			return nil
		}, n)
	}
	start := time.Now()
	memberEventually(t, 12*time.Second, "b sees c", func() error {
		if !nodes[1].m.Alive("c") {
			return errors.New("c not alive to b")
		}
		return nil
	}, nodes...)
	t.Logf("b learned of c %v after c joined", time.Since(start).Round(time.Millisecond))
}

// TestMembershipZones: a node's zone is part of its entry: peers learn it (and their
// rings place by it), it is persisted, and changing it takes a restart whose version
// bump carries the new zone to every node.
func TestMembershipZones(t *testing.T) {
	defer leaktest.AfterTest(t)()
	nodes := memberTestCluster(t, "z1")
	a, b, c := nodes[0], nodes[1], nodes[2]
	defer func() {
		for _, n := range nodes {
			n.close(t)
		}
	}()
	all := map[string]State{"a": StateActive, "b": StateActive, "c": StateActive}
	up := map[string]bool{"a": true, "b": true, "c": true}
	zonesAre := func(want map[string]string) func() error {
		return func() error {
			if err := memberConverged(nodes, all, up); err != nil {
				return err
			}
			for _, n := range nodes {
				for name, zone := range want {
					mb, _ := n.m.Member(name)
					rz, _ := n.m.Ring().Zone(name)
					if mb.Zone != zone || rz != zone {
						return fmt.Errorf("%s sees %s in zone %q (ring %q), want %q", n.name, name, mb.Zone, rz, zone)
					}
				}
			}
			return nil
		}
	}
	memberEventually(t, 5*time.Second, "zone of a reaches everyone",
		zonesAre(map[string]string{"a": "z1", "b": "", "c": ""}), nodes...)
	if raw, _, _ := c.store.GetMeta(MembersMetaName); len(raw) == 0 || raw[0] != memberCodecZones {
		t.Fatalf("c persisted %x, want a version 2 set", raw)
	}

	before, _ := a.m.Member("b")
	addr := b.m.GossipAddr()
	b.close(t)
	b.zone = "z2"
	b.start(t, addr, []string{a.m.GossipAddr()}, "secret")
	memberEventually(t, 10*time.Second, "b's new zone reaches everyone",
		zonesAre(map[string]string{"a": "z1", "b": "z2", "c": ""}), nodes...)
	for _, n := range nodes {
		if mb, _ := n.m.Member("b"); mb.Version != before.Version+1 {
			t.Errorf("%s sees b at version %d, want %d", n.name, mb.Version, before.Version+1)
		}
		if got := n.store.persisted(t)["b"].Zone; got != "z2" {
			t.Errorf("%s persisted b in zone %q", n.name, got)
		}
	}
}
