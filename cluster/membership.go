package cluster

// The I/O shell around the member set CRDT (members.go): memberlist for gossip and
// failure detection, a MetaStore for durability, a join loop, and a notifier
// goroutine for the caller's callbacks.
//
// Locking: memberlist calls the event delegate while holding its own node lock, so
// Membership never calls into memberlist while holding mu, and nothing called under
// memberlist's lock (the delegates) calls back into memberlist. The broadcast queue
// counts nodes from an atomic the event delegate maintains instead of asking
// memberlist. Callbacks (OnAlive, OnChange) and memberlist.UpdateNode run on the
// notifier goroutine, outside every lock.
//
// Lifecycle: NewMembership builds (persists this node's entry, binds the gossip
// port and creates memberlist, which answers peers and feeds the delegates from
// then on); Start starts the notifier, the join loop and the reconnect loop. The
// callbacks queued in between are delivered once Start runs, so a caller can build
// whatever its callbacks use after NewMembership and before Start.

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/lni/goutils/syncutil"

	"github.com/dynakv/dynakv/ring"
)

// MembersMetaName is the MetaStore name the member set is persisted under.
const MembersMetaName = "cluster.members"

const (
	// DefaultGossipAddr is the gossip bind address when MembershipConfig.BindAddr is
	// empty.
	DefaultGossipAddr = "127.0.0.1:7946"
	// DefaultJoinBackoffMin and DefaultJoinBackoffMax bound the join loop's backoff.
	DefaultJoinBackoffMin = 100 * time.Millisecond
	DefaultJoinBackoffMax = 5 * time.Second
	// DefaultReconnectInterval is MembershipConfig.ReconnectInterval's default.
	DefaultReconnectInterval = 3 * time.Second
	// DefaultPushPullInterval replaces memberlist's LAN default of 30 s between full
	// state exchanges with a random peer. Gossip reaches everyone almost always, but a
	// node that missed every packet about a joiner (a busy host dropping UDP) learns
	// of it only in the next push/pull; 5 s bounds that. memberlist stretches the
	// interval on clusters over 32 nodes, and one exchange of a few KiB every 5 s per
	// node costs nothing next to client traffic.
	DefaultPushPullInterval = 5 * time.Second

	// memberLeaveTimeout bounds how long Close waits for memberlist's leave message
	// to go out.
	memberLeaveTimeout = time.Second
	// memberUpdateTimeout bounds how long the notifier waits for a re-advertised
	// node metadata to go out.
	memberUpdateTimeout = time.Second
	// memberBindAttempts is how often a port-0 bind is retried: the TCP port the
	// kernel picks may be taken for UDP.
	memberBindAttempts = 10
)

// Errors returned by Membership; test with errors.Is.
var (
	// ErrRemoved is returned by NewMembership when the persisted member set says
	// this node was removed. Removal is final for a name.
	ErrRemoved = errors.New("cluster: node was removed from the cluster")
	// ErrUnknownMember is returned by Remove for a name that is not in the set.
	ErrUnknownMember = errors.New("cluster: unknown member")
	// ErrRemoveSelf is returned by Remove for the local node's own name.
	ErrRemoveSelf = errors.New("cluster: a node cannot remove itself; remove it from another node, or let it leave")
	ErrLastMember = errors.New("cluster: the last active member cannot leave")
	// ErrMembershipClosed is returned by Remove after Close.
	ErrMembershipClosed = errors.New("cluster: membership closed")
)

// memberRemovedError is ErrRemoved with the node's name and what to do about it.
type memberRemovedError struct{ name string }

func (e *memberRemovedError) Error() string {
	return fmt.Sprintf("cluster: node %s was removed from the cluster; removal is final for a name: start it with a fresh data directory under a new name to join again", e.name)
}

func (e *memberRemovedError) Is(target error) bool { return target == ErrRemoved }

// MetaStore is durable storage for small named values. *storage.Store implements it.
// PutMeta must be durable when it returns.
type MetaStore interface {
	GetMeta(name string) ([]byte, bool, error)
	PutMeta(name string, v []byte) error
}

// MembershipConfig configures NewMembership. Zero fields take the defaults
// documented here (EnsureDefaults); NewMembership never modifies the caller's
// struct.
type MembershipConfig struct {
	// Self describes the local node: Name (required, unique in the cluster, at most
	// MemberMaxStringLen bytes), Weight (<= 0 means 1), Zone ("" for none, at most
	// MemberMaxZoneLen bytes; a changed zone takes effect with the restart's version
	// bump, like changed addresses) and its client and cluster addresses. Self.GossipAddr, if set, is the address advertised to other nodes
	// ("ip:port"; port 0 means the bound port), for a node bound to 0.0.0.0 or
	// behind NAT; if empty it is derived from BindAddr (for 0.0.0.0, memberlist
	// picks a private IP). Version and State are managed by Membership and ignored.
	// Self, encoded, must fit memberlist's 512-byte node metadata limit.
	Self Member
	// BindAddr is the gossip "host:port" memberlist listens on, TCP and UDP.
	// Default DefaultGossipAddr. Port 0 picks a free port; GossipAddr reports it.
	BindAddr string
	// Seeds are gossip addresses of existing members to join. Empty: this node
	// starts a cluster, unless the persisted member set names other members, whose
	// gossip addresses are tried instead.
	Seeds []string
	// Secret, if non-empty, encrypts and authenticates gossip: memberlist's
	// SecretKey is sha256(Secret) (AES-256-GCM). Nodes with different secrets cannot
	// join each other. Empty means plain-text gossip, logged as a warning.
	Secret []byte
	// Store persists the member set under MembersMetaName. Required.
	Store MetaStore
	// Partitions is Q for Ring: a power of two in [1, ring.MaxPartitions]. Default
	// ring.DefaultPartitions.
	Partitions int
	// Logger receives Membership's and memberlist's logs (memberlist's [DEBUG],
	// [INFO], [WARN] and [ERR] lines map to slog levels). Default slog.Default().
	Logger *slog.Logger
	// OnAlive, if set, is called with a ring member's name when it is seen alive
	// after having been not alive (including the first time after start): the
	// trigger to replay hints. It runs on a goroutine Membership owns, never while
	// holding Membership's or memberlist's locks, one call at a time, and never
	// before Start. It may call Membership's methods except Close, and should
	// return promptly.
	OnAlive func(name string)
	// OnChange, if set, is called after the member set changed (any entry: state,
	// weight or addresses) and the new set was persisted and Ring rebuilt. Bursts
	// coalesce into one call. Same goroutine as OnAlive.
	OnChange func()
	// Tuning, if set, adjusts the memberlist configuration (memberlist's
	// DefaultLANConfig with PushPullInterval DefaultPushPullInterval) before
	// Membership sets the fields it owns: Name, addresses, Transport, delegates,
	// logging and encryption. Tests use it to shrink
	// intervals; production might use DefaultWANConfig's timings.
	Tuning func(*memberlist.Config)
	// JoinBackoffMin and JoinBackoffMax bound the exponential backoff (with jitter)
	// between join attempts. Defaults DefaultJoinBackoffMin, DefaultJoinBackoffMax.
	JoinBackoffMin, JoinBackoffMax time.Duration
	// ReconnectInterval is how often the node tries to reach ring members memberlist
	// reports dead (as Serf's reconnector does): one push/pull with each, so that
	// both sides of a healed network partition see each other alive within about
	// this long instead of waiting for memberlist's gossip to the dead and its
	// periodic push/pull (DefaultPushPullInterval). Default DefaultReconnectInterval;
	// negative turns it off.
	ReconnectInterval time.Duration
}

// EnsureDefaults returns a copy of c with every zero field set to its default.
// Seeds and Secret are copied, so later changes to the caller's slices do not reach
// a running Membership.
func (c MembershipConfig) EnsureDefaults() MembershipConfig {
	if c.BindAddr == "" {
		c.BindAddr = DefaultGossipAddr
	}
	if c.Partitions == 0 {
		c.Partitions = ring.DefaultPartitions
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.JoinBackoffMin == 0 {
		c.JoinBackoffMin = DefaultJoinBackoffMin
	}
	if c.JoinBackoffMax == 0 {
		c.JoinBackoffMax = max(DefaultJoinBackoffMax, c.JoinBackoffMin)
	}
	if c.ReconnectInterval == 0 {
		c.ReconnectInterval = DefaultReconnectInterval
	}
	c.Seeds = slices.Clone(c.Seeds)
	c.Secret = slices.Clone(c.Secret)
	return c
}

// Validate reports the first problem of a config that went through EnsureDefaults.
// The advertised gossip address and the final size of the node metadata are checked
// by NewMembership, once the bound port is known.
func (c MembershipConfig) Validate() error {
	self := c.Self
	self.State, self.Version = StateActive, 0
	switch {
	case c.Store == nil:
		return errors.New("cluster: MembershipConfig.Store is required")
	case c.Logger == nil:
		return errors.New("cluster: MembershipConfig.Logger is required")
	case c.JoinBackoffMin <= 0 || c.JoinBackoffMax < c.JoinBackoffMin:
		return fmt.Errorf("cluster: need 0 < JoinBackoffMin (%v) <= JoinBackoffMax (%v)", c.JoinBackoffMin, c.JoinBackoffMax)
	}
	if err := memberValidate(self); err != nil {
		return err
	}
	if _, err := memberBindPort(c.BindAddr); err != nil {
		return err
	}
	if _, err := (Members{}).Ring(c.Partitions); err != nil {
		return err
	}
	return nil
}

func memberBindPort(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("cluster: gossip address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return 0, fmt.Errorf("cluster: gossip address %q: bad port", addr)
	}
	return port, nil
}

// MemberStatus is a member with its liveness as this node sees it.
type MemberStatus struct {
	Member
	// Alive reports whether memberlist considers the member alive (or suspect).
	Alive bool
}

// Membership is a node's view of the cluster: the durable ring member set and
// the liveness of its members. It is safe for concurrent use. Create it with
// NewMembership, start it with Start and stop it with Close.
type Membership struct {
	cfg        MembershipConfig
	log        *slog.Logger
	name       string
	gossipAddr string
	ml         *memberlist.Memberlist // set by NewMembership
	queue      *memberlist.TransmitLimitedQueue
	stopper    *syncutil.Stopper
	kick       chan struct{} // capacity 1: wakes the notifier

	mu            sync.Mutex
	members       Members         // persisted before it is installed here
	self          Member          // what this node wants its entry to say, minus Version
	alive         map[string]bool // memberlist liveness by node name
	pendingAlive  []string        // OnAlive calls for the notifier
	pendingChange bool            // an OnChange call for the notifier
	pendingMeta   bool            // self's entry changed: re-advertise node metadata
	removedLogged bool
	closed        bool

	ring       atomic.Pointer[ring.Ring]
	numAlive   atomic.Int64
	joined     atomic.Bool
	joinFailed atomic.Int64 // join rounds in which no candidate answered
	reconnects atomic.Int64 // successful pushes/pulls with a member reported dead

	closeOnce sync.Once
	closeErr  error
}

// NewMembership loads the persisted member set, enters this node into it as Active
// with a new version, persists the result and starts memberlist on BindAddr, which
// answers peers from then on; it calls no callback and joins nobody until Start.
// It returns ErrRemoved (wrapped with the name) if the persisted set says this node
// was removed. Close releases it, started or not.
func NewMembership(cfg MembershipConfig) (*Membership, error) {
	cfg = cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Membership{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "membership"),
		name:    cfg.Self.Name,
		alive:   map[string]bool{},
		members: Members{},
		kick:    make(chan struct{}, 1),
		stopper: syncutil.NewStopper(),
	}
	m.queue = &memberlist.TransmitLimitedQueue{
		NumNodes: func() int { return int(max(1, m.numAlive.Load())) },
	}

	persisted, err := m.load()
	if err != nil {
		return nil, err
	}
	m.members.Merge(persisted)
	prev, hadSelf := m.members[m.name]
	if hadSelf && prev.State == StateRemoved {
		return nil, &memberRemovedError{m.name}
	}

	mlc, nt, err := m.memberlistConfig()
	if err != nil {
		return nil, err
	}
	m.queue.RetransmitMult = mlc.RetransmitMult
	self := cfg.Self
	self.State, self.GossipAddr = StateActive, m.gossipAddr
	if hadSelf && prev.State == StateLeaving {
		self.State = StateLeaving // a restart resumes the leave
	}
	if err := memberValidate(self); err != nil {
		_ = nt.Shutdown()
		return nil, err
	}
	m.self = self
	self.Version = prev.Version + 1
	m.members[m.name] = self
	if err := m.members.checkBounds(); err != nil {
		_ = nt.Shutdown()
		return nil, fmt.Errorf("cluster: this node cannot join its persisted member set: %w", err)
	}
	r, err := m.members.Ring(cfg.Partitions)
	if err == nil {
		err = m.persist(m.members)
	}
	if err != nil {
		_ = nt.Shutdown()
		return nil, err
	}
	m.ring.Store(r)
	m.queueBroadcastLocked(m.name) // no lock needed yet: nothing else runs

	if len(cfg.Secret) == 0 {
		m.log.Warn("gossip is not encrypted: no cluster secret configured")
	}
	// Read before Create: once memberlist listens, a peer's push/pull may
	// replace m.members under m.mu.
	known := len(m.members)
	ml, err := memberlist.Create(mlc)
	if err != nil {
		_ = nt.Shutdown() // Create may have shut it down already; a second call is harmless
		return nil, fmt.Errorf("cluster: start memberlist on %s: %w", cfg.BindAddr, err)
	}
	m.ml = ml
	m.log.Info("membership started", "name", m.name, "gossip", m.gossipAddr,
		"version", self.Version, "members", known, "encrypted", len(cfg.Secret) > 0)
	return m, nil
}

// Start starts the notifier, which from now on runs OnAlive and OnChange, and,
// if there is anyone to join (Seeds, or other members' persisted gossip
// addresses), a join loop that retries with backoff until one of them answers,
// and the reconnect loop. Call it once, before Close.
func (m *Membership) Start() {
	m.stopper.RunWorker(m.notifyLoop)
	if len(m.joinCandidates()) == 0 {
		m.joined.Store(true)
	} else {
		m.stopper.RunWorker(m.joinLoop)
	}
	if m.cfg.ReconnectInterval > 0 {
		m.stopper.RunWorker(m.reconnectLoop)
	}
	m.wake() // deliver anything the delegates queued since NewMembership
}

// load reads and decodes the persisted member set (empty if none).
func (m *Membership) load() (Members, error) {
	b, ok, err := m.cfg.Store.GetMeta(MembersMetaName)
	if err != nil {
		return nil, fmt.Errorf("cluster: load member set: %w", err)
	}
	if !ok {
		return Members{}, nil
	}
	ms, err := DecodeMembers(b)
	if err != nil {
		return nil, fmt.Errorf("cluster: load member set %q: %w", MembersMetaName, err)
	}
	return ms, nil
}

// persist writes ms durably.
func (m *Membership) persist(ms Members) error {
	if err := m.cfg.Store.PutMeta(MembersMetaName, ms.AppendBinary(nil)); err != nil {
		return fmt.Errorf("cluster: persist member set: %w", err)
	}
	return nil
}

// memberlistConfig builds memberlist's configuration and binds its transport, so
// the real gossip address (port 0 resolved) is known before the first alive message
// carries it in the node metadata. It sets m.gossipAddr.
func (m *Membership) memberlistConfig() (*memberlist.Config, *memberlist.NetTransport, error) {
	c := memberlist.DefaultLANConfig()
	c.PushPullInterval = DefaultPushPullInterval
	if m.cfg.Tuning != nil {
		m.cfg.Tuning(c)
	}
	mlLog := log.New(memberLogWriter{m.cfg.Logger.With("component", "memberlist")}, "", 0)
	host, _, _ := net.SplitHostPort(m.cfg.BindAddr)
	if host == "" {
		host = "0.0.0.0"
	}
	port, _ := memberBindPort(m.cfg.BindAddr)

	var nt *memberlist.NetTransport
	var err error
	attempts := 1
	if port == 0 {
		attempts = memberBindAttempts
	}
	for range attempts {
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{host}, BindPort: port, Logger: mlLog,
		})
		if err == nil {
			break
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: bind gossip %s: %w", m.cfg.BindAddr, err)
	}
	bound := nt.GetAutoBindPort()
	advHost, advPort := "", bound
	if a := m.cfg.Self.GossipAddr; a != "" {
		h, p, err := net.SplitHostPort(a)
		if err == nil && p != "0" {
			advPort, err = strconv.Atoi(p)
		}
		if err != nil || net.ParseIP(h) == nil || advPort <= 0 || advPort > 65535 {
			_ = nt.Shutdown()
			return nil, nil, fmt.Errorf("cluster: advertised gossip address %q must be ip:port", a)
		}
		advHost = h
	}
	ip, advPort, err := nt.FinalAdvertiseAddr(advHost, advPort)
	if err != nil {
		_ = nt.Shutdown()
		return nil, nil, fmt.Errorf("cluster: gossip advertise address: %w", err)
	}
	m.gossipAddr = net.JoinHostPort(ip.String(), strconv.Itoa(advPort))

	c.Name = m.name
	c.Transport = nt
	c.BindAddr, c.BindPort = host, bound
	c.AdvertiseAddr, c.AdvertisePort = ip.String(), advPort
	d := &memberDelegate{m}
	c.Delegate, c.Events = d, d
	c.Logger, c.LogOutput = mlLog, nil
	c.Keyring, c.SecretKey = nil, nil
	if len(m.cfg.Secret) > 0 {
		k := sha256.Sum256(m.cfg.Secret)
		c.SecretKey = k[:]
	}
	return c, nt, nil
}

// Ring returns the current ring of the members that are not Removed. It is never nil
// and is replaced, not modified, when the member set changes.
func (m *Membership) Ring() *ring.Ring { return m.ring.Load() }

// Alive reports whether name is alive as far as this node knows: always true for the
// local node; for others, whether memberlist last reported it alive (a suspect node
// is still alive; dead, left and never-seen nodes are not). Liveness says nothing
// about ring membership.
func (m *Membership) Alive(name string) bool {
	if name == m.name {
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.alive[name]
}

// Reachable reports whether requests should be sent to name now: Alive's answer
// once memberlist has reported on name since this node started, or once this node
// has joined the cluster; until then, true for every member that is not Removed,
// whose liveness is unknown. So a node restarted into a running cluster serves
// requests from its first moment instead of failing them for want of replicas
// until its join completes, and a member that is in fact down fails the request
// it is sent (fast, when its host refuses the connection) and is avoided. The
// coordinator and the router use it; repair, which can wait, uses Alive.
func (m *Membership) Reachable(name string) bool {
	if name == m.name {
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if alive, known := m.alive[name]; known || m.joined.Load() {
		return alive
	}
	mb, ok := m.members[name]
	return ok && mb.State != StateRemoved
}

// Member returns name's entry in the member set, Removed entries included.
func (m *Membership) Member(name string) (Member, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mb, ok := m.members[name]
	return mb, ok
}

// Members returns every entry of the member set, Removed ones included, with its
// liveness, sorted by name.
func (m *Membership) Members() []MemberStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]MemberStatus, 0, len(m.members))
	for _, name := range m.members.Names() {
		out = append(out, MemberStatus{Member: m.members[name], Alive: name == m.name || m.alive[name]})
	}
	return out
}

// Remove takes name out of the ring for good: it marks the entry Removed with the
// next version, persists the set, and broadcasts the change. Removing a member that
// is already Removed succeeds and changes nothing. It returns ErrUnknownMember for a
// name not in the set and ErrRemoveSelf for the local node (a node leaves gracefully
// instead). Remove is meant for dead nodes; a live node that is removed logs an
// error and stops being a ring member, but keeps gossiping until it is shut down.
func (m *Membership) Remove(name string) error {
	if name == m.name {
		return fmt.Errorf("%w (%s)", ErrRemoveSelf, name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrMembershipClosed
	}
	cur, ok := m.members[name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownMember, name)
	}
	if cur.State == StateRemoved {
		return nil
	}
	cur.State, cur.Version = StateRemoved, cur.Version+1
	if err := m.applyLocked(Members{name: cur}, "remove"); err != nil {
		return err
	}
	m.log.Info("member removed", "name", name, "version", cur.Version)
	return nil
}

// Leave starts this node's graceful leave: it becomes Leaving, so it owns no
// partition any more and hands its data to the new owners (repair does), after
// which FinishLeave takes it out of the ring. It refuses to leave a ring with no
// other Active member (ErrLastMember). Leaving twice is harmless.
func (m *Membership) Leave() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrMembershipClosed
	}
	if m.self.State != StateActive {
		return nil
	}
	others := 0
	for name, mb := range m.members {
		if name != m.name && mb.State == StateActive {
			others++
		}
	}
	if others == 0 {
		return ErrLastMember
	}
	return m.setSelfStateLocked(StateLeaving)
}

// FinishLeave marks a Leaving node Removed once its handoff is done. It is a no-op
// unless the node is Leaving.
func (m *Membership) FinishLeave() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrMembershipClosed
	}
	if m.self.State != StateLeaving {
		return nil
	}
	return m.setSelfStateLocked(StateRemoved)
}

// Leaving reports whether this node is Leaving.
func (m *Membership) Leaving() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.self.State == StateLeaving
}

func (m *Membership) setSelfStateLocked(st State) error {
	prev := m.self.State
	m.self.State = st
	cur := m.members[m.name]
	if err := m.applyLocked(Members{m.name: m.withVersion(cur.Version + 1)}, "leave"); err != nil {
		m.self.State = prev
		return err
	}
	m.log.Info("this node changed state", "name", m.name, "state", st)
	return nil
}

// GossipAddr returns the gossip address other nodes reach this node at, with a
// port-0 bind resolved to the real port.
func (m *Membership) GossipAddr() string { return m.gossipAddr }

// Joined reports whether this node is connected to the cluster: a join target
// answered, another node reached this one, or there was nobody to join.
func (m *Membership) Joined() bool { return m.joined.Load() }

// Close stops the join loop and the notifier and waits for them, then leaves the
// memberlist cluster (waiting at most a second for the leave message to go out, so
// peers see this node as left at once rather than after failure detection) and shuts
// memberlist down. The node stays a ring member. Close is idempotent.
func (m *Membership) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		m.mu.Unlock()
		m.stopper.Stop()
		if err := m.ml.Leave(memberLeaveTimeout); err != nil {
			m.log.Debug("leave", "err", err)
		}
		if err := m.ml.Shutdown(); err != nil {
			m.closeErr = fmt.Errorf("cluster: shut down memberlist: %w", err)
		}
	})
	return m.closeErr
}

// applyLocked merges in into the member set: if anything changes, it re-asserts
// this node's own entry if the merge overrode it, persists the new set, installs
// it, rebuilds the ring, queues broadcasts of the changed entries and schedules
// OnChange. If persisting fails nothing is installed: gossip will bring the change
// again. Once Close has begun nothing is applied, so the MetaStore is not written
// after Close returns (memberlist may still deliver a message while it shuts
// down). m.mu must be held.
func (m *Membership) applyLocked(in Members, source string) error {
	if m.closed {
		return ErrMembershipClosed
	}
	would, refused := m.members.wouldChange(in)
	if len(refused) > 0 {
		m.log.Error("member set full: new members refused", "source", source, "refused", refused[:min(len(refused), 8)],
			"count", len(refused), "max_members", MembersMaxCount, "max_ring_members", MembersMaxRing)
	}
	if !would {
		return nil
	}
	next := m.members.Clone()
	changed := next.Merge(in)
	if cur, ok := next[m.name]; ok && !memberEqual(cur, m.withVersion(cur.Version)) {
		if cur.State == StateRemoved {
			if !m.removedLogged {
				m.removedLogged = true
				m.log.Error("this node was removed from the cluster: it is no longer a ring member; shut it down",
					"name", m.name, "version", cur.Version)
			}
		} else {
			// Someone holds a newer entry for this node than the node itself (its data
			// directory was lost, or it restarted with a stale one): outvote it. Two
			// processes sharing a name would do this to each other forever: say so.
			m.log.Warn("outvoting a newer entry for this node; is another node using the same name?",
				"name", m.name, "theirs", cur.Version, "gossip", cur.GossipAddr)
			next[m.name] = m.withVersion(cur.Version + 1)
			if !slices.Contains(changed, m.name) {
				changed = append(changed, m.name)
			}
		}
	}
	if err := m.persist(next); err != nil {
		m.log.Error("member set change dropped", "source", source, "err", err)
		return err
	}
	m.members = next
	if r, err := next.Ring(m.cfg.Partitions); err != nil {
		m.log.Error("rebuild ring", "err", err) // not reachable: entries are validated
	} else {
		m.ring.Store(r)
	}
	for _, name := range changed {
		m.queueBroadcastLocked(name)
		if name == m.name {
			m.pendingMeta = true
		}
	}
	m.pendingChange = true
	m.log.Debug("member set changed", "source", source, "changed", changed)
	m.wake()
	return nil
}

// withVersion returns the entry this node wants for itself at version v.
func (m *Membership) withVersion(v uint64) Member {
	s := m.self
	s.Version = v
	return s
}

// queueBroadcastLocked queues name's current entry for gossip; a newer broadcast for
// the same name replaces an older one still queued.
func (m *Membership) queueBroadcastLocked(name string) {
	mb, ok := m.members[name]
	if !ok {
		return
	}
	m.queue.QueueBroadcast(&memberBroadcast{name: name, msg: Members{name: mb}.AppendBinary(nil)})
}

// wake nudges the notifier without blocking.
func (m *Membership) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// setAliveLocked records name's liveness and schedules OnAlive for a ring member
// that became alive.
func (m *Membership) setAliveLocked(name string, alive bool) {
	was := m.alive[name]
	m.alive[name] = alive
	if was == alive {
		return
	}
	if alive {
		m.numAlive.Add(1)
	} else {
		m.numAlive.Add(-1)
	}
	if !alive || name == m.name {
		return
	}
	m.joined.Store(true) // another node reached us: we are part of a cluster
	if mb, ok := m.members[name]; ok && mb.State != StateRemoved {
		m.pendingAlive = append(m.pendingAlive, name)
		m.wake()
	}
}

// notifyLoop runs the callbacks and metadata updates the delegates scheduled.
func (m *Membership) notifyLoop() {
	stop := m.stopper.ShouldStop()
	for {
		select {
		case <-stop:
			return
		case <-m.kick:
		}
		m.mu.Lock()
		alive, change, meta := m.pendingAlive, m.pendingChange, m.pendingMeta
		m.pendingAlive, m.pendingChange, m.pendingMeta = nil, false, false
		m.mu.Unlock()
		if meta {
			if err := m.ml.UpdateNode(memberUpdateTimeout); err != nil {
				m.log.Debug("re-advertise node metadata", "err", err)
			}
		}
		if change && m.cfg.OnChange != nil {
			m.cfg.OnChange()
		}
		for _, name := range alive {
			if m.cfg.OnAlive == nil {
				break
			}
			select {
			case <-stop:
				return
			default:
			}
			// Liveness may have flipped back since; the callback is a hint anyway.
			m.cfg.OnAlive(name)
		}
	}
}

// joinCandidates returns the addresses to join: the seeds and the gossip addresses
// of the other members not Removed, without this node's own address, deduplicated.
func (m *Membership) joinCandidates() []string {
	out := append(slices.Clone(m.cfg.Seeds), m.memberAddrs(false)...)
	out = slices.DeleteFunc(out, func(a string) bool { return a == "" || a == m.gossipAddr })
	slices.Sort(out)
	return slices.Compact(out)
}

// memberAddrs returns the gossip addresses of the other ring members not Removed;
// with deadOnly, only of those memberlist does not report alive.
func (m *Membership) memberAddrs(deadOnly bool) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, name := range m.members.Names() {
		mb := m.members[name]
		if name != m.name && mb.State != StateRemoved && mb.GossipAddr != "" && !(deadOnly && m.alive[name]) {
			out = append(out, mb.GossipAddr)
		}
	}
	return out
}

// joinLoop tries the join candidates, one at a time in random order, until one
// answers or another node reaches this one, backing off exponentially with jitter
// between rounds. Each attempt can take up to memberlist's TCPTimeout, which bounds
// how long Close waits for this loop.
func (m *Membership) joinLoop() {
	stop := m.stopper.ShouldStop()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(len(m.name))))
	backoff := m.cfg.JoinBackoffMin
	for round := 1; ; round++ {
		cands := m.joinCandidates()
		rng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
		var errs []error
		for _, addr := range cands {
			select {
			case <-stop:
				return
			default:
			}
			if m.joined.Load() {
				return
			}
			if _, err := m.ml.Join([]string{addr}); err != nil {
				errs = append(errs, err)
				continue
			}
			m.joined.Store(true)
			m.log.Info("joined the cluster", "via", addr, "round", round)
			return
		}
		if len(cands) == 0 {
			m.joined.Store(true) // every other member was removed meanwhile
			return
		}
		m.joinFailed.Add(1)
		level := slog.LevelDebug
		if round == 1 || round%10 == 0 {
			level = slog.LevelWarn
		}
		m.log.Log(context.Background(), level, "join failed; retrying", "round", round,
			"candidates", cands, "retry_in", backoff, "err", errors.Join(errs...))
		// Full jitter in [backoff/2, backoff).
		wait := backoff/2 + time.Duration(rng.Int64N(int64(backoff/2)+1))
		t := time.NewTimer(wait)
		select {
		case <-stop:
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, m.cfg.JoinBackoffMax)
	}
}

// reconnectLoop, once the node has joined, pushes and pulls state with every ring
// member memberlist reports dead, every ReconnectInterval. A member that is really
// down costs one failed connection attempt per interval; one that was only cut off
// learns it was declared dead, refutes it, and is alive everywhere again at once.
func (m *Membership) reconnectLoop() {
	stop := m.stopper.ShouldStop()
	t := time.NewTicker(m.cfg.ReconnectInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if !m.joined.Load() {
			continue // the join loop is still at it
		}
		for _, addr := range m.memberAddrs(true) {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := m.ml.Join([]string{addr}); err != nil {
				m.log.Debug("reconnect to a dead member failed", "addr", addr, "err", err)
				continue
			}
			m.reconnects.Add(1)
			m.log.Info("reconnected to a member reported dead", "addr", addr)
		}
	}
}

// memberDelegate implements memberlist.Delegate and memberlist.EventDelegate for a
// Membership without putting those methods on Membership's API.
type memberDelegate struct{ m *Membership }

var (
	_ memberlist.Delegate      = (*memberDelegate)(nil)
	_ memberlist.EventDelegate = (*memberDelegate)(nil)
)

// NodeMeta returns this node's own entry: memberlist gossips it with every alive
// message, so peers learn its addresses on join.
func (d *memberDelegate) NodeMeta(limit int) []byte {
	m := d.m
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.members[m.name].AppendBinary(nil)
	if len(b) > limit {
		return nil // not reachable: NewMembership validated the size
	}
	return b
}

// NotifyMsg merges a broadcast member set delta.
func (d *memberDelegate) NotifyMsg(b []byte) {
	d.m.mergeEncoded(b, "broadcast")
}

// GetBroadcasts returns queued member set deltas.
func (d *memberDelegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.m.queue.GetBroadcasts(overhead, limit)
}

// LocalState returns the whole member set for a push/pull exchange.
func (d *memberDelegate) LocalState(join bool) []byte {
	m := d.m
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.members.AppendBinary(nil)
}

// MergeRemoteState merges a peer's whole member set from a push/pull exchange.
func (d *memberDelegate) MergeRemoteState(b []byte, join bool) {
	d.m.mergeEncoded(b, "push/pull")
}

// NotifyJoin records n as alive and merges the entry its metadata carries.
func (d *memberDelegate) NotifyJoin(n *memberlist.Node) { d.m.nodeEvent(n, true) }

// NotifyUpdate is NotifyJoin for a node whose metadata changed.
func (d *memberDelegate) NotifyUpdate(n *memberlist.Node) { d.m.nodeEvent(n, true) }

// NotifyLeave records n as not alive. Its ring membership is untouched.
func (d *memberDelegate) NotifyLeave(n *memberlist.Node) { d.m.nodeEvent(n, false) }

// mergeEncoded decodes and merges a member set from the network. Malformed input is
// logged and dropped.
func (m *Membership) mergeEncoded(b []byte, source string) {
	if len(b) == 0 {
		return
	}
	in, err := DecodeMembers(b)
	if err != nil {
		m.log.Warn("dropped malformed member set", "source", source, "err", err)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_ = m.applyLocked(in, source) // errors are logged; gossip retries
}

// nodeEvent handles a memberlist event: liveness first, then the entry in the
// node's metadata (which must describe the node itself), then OnAlive.
func (m *Membership) nodeEvent(n *memberlist.Node, alive bool) {
	var in Members
	if alive && len(n.Meta) > 0 {
		mb, err := DecodeMember(n.Meta)
		switch {
		case err != nil:
			m.log.Warn("ignored malformed node metadata", "node", n.Name, "err", err)
		case mb.Name != n.Name:
			m.log.Warn("ignored node metadata naming another node", "node", n.Name, "meta_name", mb.Name)
		default:
			in = Members{mb.Name: mb}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if in != nil {
		_ = m.applyLocked(in, "metadata")
	}
	m.setAliveLocked(n.Name, alive)
}

// memberBroadcast is one queued member set delta. Named broadcasts replace older
// ones with the same name in the queue, which is safe because a later broadcast for
// a name always carries an entry at least as new.
type memberBroadcast struct {
	name string
	msg  []byte
}

var _ memberlist.NamedBroadcast = (*memberBroadcast)(nil)

func (b *memberBroadcast) Invalidates(o memberlist.Broadcast) bool {
	ob, ok := o.(*memberBroadcast)
	return ok && ob.name == b.name
}
func (b *memberBroadcast) Name() string    { return "member:" + b.name }
func (b *memberBroadcast) Message() []byte { return b.msg }
func (b *memberBroadcast) Finished()       {}

// memberLogWriter adapts memberlist's *log.Logger output to slog: a line's
// "[DEBUG]", "[INFO]", "[WARN]" or "[ERR]" prefix picks the level.
type memberLogWriter struct{ log *slog.Logger }

var memberLogLevels = []struct {
	prefix string
	level  slog.Level
}{
	{"[DEBUG] ", slog.LevelDebug},
	{"[INFO] ", slog.LevelInfo},
	{"[WARN] ", slog.LevelWarn},
	{"[ERR] ", slog.LevelError},
	{"[ERROR] ", slog.LevelError},
}

func (w memberLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimRight(string(p), "\r\n")
	level := slog.LevelInfo
	for _, l := range memberLogLevels {
		if strings.HasPrefix(msg, l.prefix) {
			msg, level = msg[len(l.prefix):], l.level
			break
		}
	}
	if strings.Contains(msg, "use of closed network connection") {
		level = slog.LevelDebug // memberlist racing its own shutdown, not a fault
	}
	if w.log.Enabled(context.Background(), level) {
		w.log.Log(context.Background(), level, strings.TrimPrefix(msg, "memberlist: "))
	}
	return len(p), nil
}
