package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/ring"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/vclock"
)

// ErrNoWrite is returned by a ModifyFunc that decided to write nothing; Modify then
// returns the current record and no error.
var ErrNoWrite = errors.New("coordinator: no write")

// ErrLate is returned by a write whose request deadline had passed when the write
// was about to be applied on this node: nothing was written here (see the package
// doc). It wraps context.DeadlineExceeded.
var ErrLate = fmt.Errorf("coordinator: request deadline passed before the write was applied, nothing written: %w", context.DeadlineExceeded)

// Config configures a Coordinator.
type Config struct {
	// Actor is this node's id in version vectors, 1 to MaxActorLen bytes. A write
	// of a key gets its dot from Actor while the store has never dropped the key's
	// partition, and from Actor+":"+epoch after (see ActorFor); no other node's
	// actor may have that form (node/'s "<name>:<incarnation>", whose name has no
	// ':', never does). Required.
	Actor string
	// MaxEntries bounds version vectors (vclock.Prune): a write leaving more
	// entries forgets idle ones it does not need that are older than PruneAge.
	// Default vclock.MaxEntries. Entries younger than PruneAge are forgotten only
	// above 5*MaxEntries; entries a write's own context needs are never
	// forgotten, so one write's record is bounded by its context's size (which
	// the codecs bound) plus 5*MaxEntries.
	MaxEntries int
	// PruneAge is how long an entry stays after its actor wrote or a write needed
	// it (vclock.PruneOptions.MinAge): a value superseded less than PruneAge ago
	// cannot come back as a sibling from a stale replica through pruning. Set it
	// to no less than the time every write takes to reach every replica
	// (directly, by a hint or by anti-entropy). It is not the tombstone grace:
	// purge does not rest on time (it asks every holder), and a cache tier that
	// shortens the grace to reclaim expired keys' tombstones should not forget
	// causality sooner. Default 24h; negative turns the age rule off.
	PruneAge time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time

	// Cluster is the ring and liveness view. nil runs a single node: every request
	// is served by the local replica alone (N = R = W = 1) and Peers is unused.
	Cluster Membership
	// Peers reaches the other nodes' replicas. Required with Cluster.
	Peers Peers
	// Node is this node's ring member name. Required with Cluster.
	Node string
	// N, R, W: replication factor, read and write quorums. Defaults 3, 2, 2. Each
	// request clamps them to the ring's member count (and R, W to N).
	N, R, W int
	// RequestTimeout bounds every request that reaches other nodes, when the
	// caller's context has no earlier deadline. Default 1s.
	RequestTimeout time.Duration
	// ReplicaTimeout is the per-replica deadline within a request: a replica that
	// has not answered a read or write this long after it was asked is avoided
	// (Avoid) and, while the request still lacks its quorum, replaced at once by
	// the next node of the key's extended preference list; its call goes on until
	// the request's deadline. Default RequestTimeout/4 (250ms at the default 1s):
	// far above a healthy replica's round trip (a WAL commit on a busy disk is
	// tens of ms), so a loaded but healthy replica is not replaced, and short
	// enough that the replacement, and one after it, still fit in the request's
	// time. At most RequestTimeout.
	ReplicaTimeout time.Duration
	// Avoid is the node's view of the peers that recently failed a request, shared
	// with whatever else routes requests on this node (node/'s forwarding): plans
	// replace an avoided replica by a fallback, as a dead one. Default: one of the
	// coordinator's own, avoiding for DefaultAvoidFor by Now.
	Avoid *Avoidance
	// PeerFailed reports whether an error from a replica call means the peer
	// failed (it refused, reset, timed out or answered with an error), so that it
	// is avoided, rather than the request (a frame too big for the transport) or
	// this node (closing). Default: every error but context.Canceled.
	PeerFailed func(error) bool
	// MaxRepairs bounds the read repairs in flight; a read that finds the bound
	// reached skips its repair (anti-entropy catches up). Default 64.
	MaxRepairs int
	// SyncIsCheap says that the store's Sync is a write to the OS, not a wait for
	// the disk (storage.SyncInterval, or SyncNone). It changes how a write with
	// other replicas is made durable (see the package doc on durability): it
	// commits with its sync before its record leaves for them, instead of syncing
	// alongside its replica writes, which pays off only while a sync waits for the
	// disk. Default false.
	SyncIsCheap bool
	// DisableHints turns sloppy quorum and hinted handoff off: a write reaches only
	// the live ones among its key's N replicas, and nothing is kept for the others
	// (anti-entropy alone heals them). Default false.
	DisableHints bool
	// Logger receives the coordinator's warnings. Default slog.Default().
	Logger *slog.Logger
	// Floor keeps the fresh-counter floor across restarts of this actor (see
	// FloorStore); nil keeps it in memory only, which is right when every
	// start is a new actor (an in-memory node) and in tests.
	Floor FloorStore
}

// FloorStore persists a reservation of fresh counters for Config.Actor: every
// counter the coordinator hands out is at or below the last value saved, but
// for the ones handed out in the second before a crash (see floorKeeper). A
// new coordinator with the same actor starts above what Load returns, so a
// clock that went back across a restart (an NTP step, a VM restored, the chaos
// harness's clock offsets) never makes it hand out a dot an older copy of a
// purged key still carries.
type FloorStore interface {
	Load() (uint64, error)
	Save(uint64) error
}

// EnsureDefaults returns a copy of c with defaults filled in.
func (c Config) EnsureDefaults() Config {
	if c.MaxEntries == 0 {
		c.MaxEntries = vclock.MaxEntries
	}
	if c.PruneAge == 0 {
		c.PruneAge = 24 * time.Hour
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.N == 0 {
		c.N = 3
	}
	if c.R == 0 {
		c.R = 2
	}
	if c.W == 0 {
		c.W = 2
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = time.Second
	}
	if c.ReplicaTimeout == 0 {
		c.ReplicaTimeout = c.RequestTimeout / 4
	}
	if c.Avoid == nil {
		c.Avoid = NewAvoidance(DefaultAvoidFor, c.Now)
	}
	if c.PeerFailed == nil {
		c.PeerFailed = func(err error) bool { return !errors.Is(err, context.Canceled) }
	}
	if c.MaxRepairs == 0 {
		c.MaxRepairs = 64
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.Actor == "" || len(c.Actor) > MaxActorLen {
		return fmt.Errorf("coordinator: actor id must be 1..%d bytes", MaxActorLen)
	}
	if c.N < 1 || c.R < 1 || c.W < 1 || c.R > c.N || c.W > c.N {
		return fmt.Errorf("coordinator: need 1 <= R, W <= N, got N=%d R=%d W=%d", c.N, c.R, c.W)
	}
	if c.RequestTimeout < 0 || c.MaxRepairs < 0 {
		return errors.New("coordinator: negative request timeout or repair bound")
	}
	if c.ReplicaTimeout < 0 || c.ReplicaTimeout > c.RequestTimeout {
		return fmt.Errorf("coordinator: replica timeout %v must be between 0 and the request timeout %v", c.ReplicaTimeout, c.RequestTimeout)
	}
	if c.Cluster != nil && (c.Peers == nil || c.Node == "") {
		return errors.New("coordinator: a cluster coordinator needs Peers and Node")
	}
	return nil
}

// MaxActorLen bounds Config.Actor: room for the epoch suffix (":" and up to 20
// digits) within vclock.MaxActorLen.
const MaxActorLen = vclock.MaxActorLen - 21

// Store is the local replica the coordinator writes through. *storage.Store
// implements it. Epoch(p) is partition p's actor epoch (storage.Store.Epoch): 0
// until the store drops p, raised by every drop, stable while an UpdateFunc of a
// key of p runs.
type Store interface {
	Get(key []byte) (record.Record, bool, error)
	Update(key []byte, fn storage.UpdateFunc) (record.Record, error)
	UpdateNoSync(key []byte, fn storage.UpdateFunc) (record.Record, error)
	UpdateBatch(keys [][]byte, fns []storage.UpdateFunc) []error
	Sync() error
	Partitions() int
	Count() int64
	PartitionCount(p int) int64
	UpdateHint(owner string, key []byte, fn storage.UpdateFunc) (record.Record, error)
	GetHint(owner string, key []byte) (record.Record, bool, error)
	Scan(p int, fromHash uint64, fn func(h uint64, key []byte, rec record.Record) bool) error
	DropAll() error
	Epoch(p int) uint64
	// DeleteIf and HintCount serve Evict's one-member fast path: a
	// compare-and-delete of the record as encoded, and the hints held.
	DeleteIf(key, enc []byte) (bool, error)
	HintCount() int64
}

var _ Store = (*storage.Store)(nil)

// Coordinator coordinates reads and writes of keys.
type Coordinator struct {
	cfg   Config
	store Store
	floor atomic.Uint64 // last fresh-entry counter handed out
	// reserved is the floor last saved to Config.Floor: counters up to it
	// may be handed out without another save.
	reserved atomic.Uint64

	// Background work (replica writes past the quorum, read repairs, hints) runs
	// in goroutines counted by bg, under base, which Close cancels.
	base    context.Context
	cancel  context.CancelFunc
	bg      sync.WaitGroup
	closeMu sync.RWMutex // held for reading while starting background work
	closed  bool
	repairs chan struct{} // semaphore bounding read repairs in flight
	stats   counters
	// deadlines shares request contexts between requests (requestContext).
	deadlines sharedDeadline
	// sealMu is held for reading by every local write that brings data in
	// (admitWrite), and for writing by Seal, which sets sealed (seal.go).
	sealMu sync.RWMutex
	sealed bool
	// readObserver, when set (tests only: export_test.go), is told of every
	// quorum read that reached its R: the owners counted toward it and the
	// key's replicas in the ring the read planned on.
	readObserver func(key []byte, r int, acked, replicas []string)
}

// New returns a Coordinator over store.
func New(cfg Config, store Store) (*Coordinator, error) {
	cfg = cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	base, cancel := context.WithCancel(context.Background())
	c := &Coordinator{cfg: cfg, store: store, base: base, cancel: cancel,
		repairs: make(chan struct{}, cfg.MaxRepairs)}
	if cfg.Floor != nil {
		saved, err := cfg.Floor.Load()
		if err != nil {
			cancel()
			return nil, fmt.Errorf("coordinator: load the fresh-counter floor: %w", err)
		}
		c.floor.Store(saved)
		if err := c.reserve(); err != nil {
			cancel()
			return nil, err
		}
		c.goBackground(c.floorKeeper)
	}
	return c, nil
}

// Close stops the background work (replica writes still in flight after their
// request was answered, read repairs) and waits for it. Requests after Close still
// run; they just start no background work. Close is idempotent.
func (c *Coordinator) Close() error {
	c.closeMu.Lock()
	c.closed = true
	c.closeMu.Unlock()
	c.cancel()
	c.bg.Wait()
	if c.cfg.Floor != nil {
		// The exact floor: a clean restart then starts right above it.
		if f := c.floor.Load(); f > c.reserved.Load() {
			if err := c.cfg.Floor.Save(f); err != nil {
				return fmt.Errorf("coordinator: save the fresh-counter floor: %w", err)
			}
			c.reserved.Store(f)
		}
	}
	return nil
}

// goBackground runs fn in a goroutine Close waits for; it reports false (and runs
// nothing) once Close has begun.
func (c *Coordinator) goBackground(fn func()) bool {
	c.closeMu.RLock()
	defer c.closeMu.RUnlock()
	if c.closed {
		return false
	}
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		fn()
	}()
	return true
}

// Actor returns this coordinator's actor id (Config.Actor), the base of the actors
// its writes get their dots from (ActorFor).
func (c *Coordinator) Actor() string { return c.cfg.Actor }

// ActorFor returns the actor a write of key through this coordinator gets its dot
// from now: Actor while the store has never dropped key's partition, Actor+":"+epoch
// once it has (see the package doc on epochs).
func (c *Coordinator) ActorFor(key []byte) string { return c.actorOf(c.partition(key)) }

func (c *Coordinator) partition(key []byte) int {
	return ring.PartitionOf(key, c.store.Partitions())
}

// actorOf returns the actor for writes of partition p. Called under a key lock of
// p (inside an UpdateFunc), its answer holds until the write is stored.
func (c *Coordinator) actorOf(p int) string {
	e := c.store.Epoch(p)
	if e == 0 {
		return c.cfg.Actor
	}
	return c.cfg.Actor + ":" + strconv.FormatUint(e, 10)
}

// ReadOptions are per-request read options.
type ReadOptions struct {
	// R overrides the read quorum (0: the configured default). It is clamped to N.
	R int
	// Local reads only this node's replica.
	Local bool
}

// WriteOptions are per-request write options.
type WriteOptions struct {
	// W overrides the write quorum (0: the configured default). It is clamped to N.
	W int
	// Durability says whether Modify may return before the local write is
	// durable. Default DurableOnReturn.
	Durability Durability
	// ReadFirst makes Modify read the key from R replicas and merge what they hold
	// into the local replica before running its function, so that a read-modify-write
	// (INCR, SET NX, cas...) sees writes coordinated elsewhere. A plain SET leaves it
	// off: it overwrites what the coordinator has seen, as Dynamo's put does.
	ReadFirst bool
	// NoHints turns sloppy quorum and hinted handoff off for this write, as
	// Config.DisableHints does for all: it reaches only the live ones among its
	// key's N replicas, counts only their acknowledgements toward W, and keeps no
	// hint for the others (anti-entropy and read repair carry it there). Evict's
	// tombstones use it: a hint would move the evicted bytes to a fallback.
	NoHints bool
}

// Durability says when a write's local part must be durable (see the package doc).
type Durability uint8

const (
	// DurableOnReturn: Modify returns a result only once the local write, and
	// whatever of this node's the write decided on, is durable, at the least cost:
	// one synced commit when no other replica is written (not a write and a
	// separate sync), the sync alongside the replica writes otherwise.
	DurableOnReturn Durability = iota
	// Deferred: Modify may return before the local write is durable; the caller
	// calls Sync before it acknowledges the write, unless WriteResult.Durable says
	// it is durable already. Writes followed by one Sync share one WAL sync.
	Deferred
)

// WriteResult is the outcome of a write.
type WriteResult struct {
	// Record is the key's record as stored (as found, when the ModifyFunc
	// returned ErrNoWrite).
	Record record.Record
	// Durable: the local write, and whatever of this node's the write decided on,
	// is durable. Always set for a DurableOnReturn write. A Deferred write is
	// durable when the coordinator synced it with no extra cost (alongside its
	// replica writes, or with SyncIsCheap); one that wrote nothing never is (what
	// it read may be another writer's Deferred write, which the caller's Sync
	// covers).
	Durable bool
}

// QuorumError reports a read or write that reached fewer replicas than its quorum.
// A write that fails this way may still be stored on the replicas that answered.
type QuorumError struct {
	Acks, Need int
}

func (e *QuorumError) Error() string {
	return fmt.Sprintf("coordinator: quorum not reached: %d of %d replicas", e.Acks, e.Need)
}

// Sync makes every write this node applied before the call durable: what a caller
// of Deferred writes calls before it acknowledges them.
func (c *Coordinator) Sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.store.Sync()
}

// Get returns the merged record of key (empty when no replica has one): the records
// of R replicas merged, or only the local replica's with opt.Local.
func (c *Coordinator) Get(ctx context.Context, key []byte, opt ReadOptions) (record.Record, error) {
	if err := ctx.Err(); err != nil {
		return record.Record{}, err
	}
	if c.cfg.Cluster == nil || opt.Local {
		rec, _, err := c.store.Get(key)
		return rec, err
	}
	return c.quorumGet(ctx, key, opt.R)
}

// Put writes v for key with the client's causal context clk: it supersedes exactly the
// values clk covers. Its result holds the record as stored.
func (c *Coordinator) Put(ctx context.Context, key []byte, clk vclock.Clock, v vclock.Value, opt WriteOptions) (WriteResult, error) {
	return c.Modify(ctx, key, func(record.Record) (vclock.Clock, vclock.Value, error) { return clk, v, nil }, opt)
}

// ModifyFunc decides a read-modify-write: given the current record it returns the
// context to write with (usually cur.Str.Join(), superseding everything seen) and
// the value, or ErrNoWrite to leave the key alone, or another error to abort. The
// value is written to the string layer; a record with a typed part is refused
// (record.ErrTyped) before fn runs, until issue 20's S3 writes strings over it.
type ModifyFunc func(cur record.Record) (vclock.Clock, vclock.Value, error)

// Modify runs fn on the current record of key and writes its result, atomically with
// respect to other writes of key through this node. Its result holds the record as
// stored (or as found, when fn returned ErrNoWrite) and says whether the write is
// durable (opt.Durability). It returns ErrLate, having written nothing, when the
// request's deadline passes before the write is applied here. After an error the
// caller must assume nothing of this node's is durable.
func (c *Coordinator) Modify(ctx context.Context, key []byte, fn ModifyFunc, opt WriteOptions) (WriteResult, error) {
	if err := late(ctx, time.Time{}); err != nil {
		return WriteResult{}, err
	}
	if c.cfg.Cluster != nil {
		return c.quorumModify(ctx, key, c.beforeDeadline(ctx, fn, c.cfg.RequestTimeout), opt)
	}
	synced := opt.Durability == DurableOnReturn
	rec, wrote, err := c.modifyLocal(key, record.Record{}, c.beforeDeadline(ctx, fn, 0), synced)
	if err != nil {
		return WriteResult{}, err
	}
	return c.settle(WriteResult{Record: rec, Durable: wrote && synced}, opt)
}

// settle makes a DurableOnReturn write durable if it is not yet: what it wrote
// unsynced, or, when it wrote nothing, what it read (another writer's Deferred
// write, maybe).
func (c *Coordinator) settle(res WriteResult, opt WriteOptions) (WriteResult, error) {
	if res.Durable || opt.Durability != DurableOnReturn {
		return res, nil
	}
	if err := c.store.Sync(); err != nil {
		return WriteResult{}, err
	}
	res.Durable = true
	return res, nil
}

// beforeDeadline wraps fn so that it refuses to decide a write once the request is
// over: its context ended, or its deadline passed (the context's, or, with a
// positive bound, bound after now, whichever is earlier). modifyLocal calls fn
// under the key's lock right before it applies the write, so a coordinator that was
// paused, or waited long for its read quorum or the lock, never applies a write
// its client has stopped waiting for.
func (c *Coordinator) beforeDeadline(ctx context.Context, fn ModifyFunc, bound time.Duration) ModifyFunc {
	var deadline time.Time
	if bound > 0 {
		deadline = time.Now().Add(bound)
	}
	if d, ok := ctx.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
		deadline = d
	}
	return func(cur record.Record) (vclock.Clock, vclock.Value, error) {
		if err := late(ctx, deadline); err != nil {
			return nil, vclock.Value{}, err
		}
		return fn(cur)
	}
}

// late returns ErrLate once deadline (zero: none) has passed or ctx's deadline
// expired, ctx's error if it was canceled, and nil otherwise. Deadlines are read
// against time.Now, as contexts' are, not against Config.Now: a timer may not have
// fired yet when a goroutine that was paused checks.
func late(ctx context.Context, deadline time.Time) error {
	if err := ctx.Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if d, ok := ctx.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
		deadline = d
	}
	if ctx.Err() != nil || !deadline.IsZero() && !time.Now().Before(deadline) {
		return ErrLate
	}
	return nil
}

// modifyLocal runs fn on the local record of key, merged first with seen (what a
// quorum read found elsewhere), and stores the result, durably with synced, or for
// a later Sync to make durable. It reports whether fn decided to write.
func (c *Coordinator) modifyLocal(key []byte, seen record.Record, fn ModifyFunc, synced bool) (_ record.Record, wrote bool, _ error) {
	update := c.store.UpdateNoSync
	if synced {
		update = c.store.Update
	}
	release, err := c.admitWrite()
	if err != nil {
		return record.Record{}, false, err
	}
	defer release()
	rec, err := update(key, c.localWrite(c.partition(key), seen, fn, &wrote))
	if err != nil {
		return record.Record{}, false, err
	}
	return rec, wrote, nil
}

// localWrite returns the storage.UpdateFunc of a local write of a key of
// partition p: fn run on the record merged with seen, the result given a dot of
// this node's actor for p, pruned; *wrote is set once fn decided to write.
func (c *Coordinator) localWrite(p int, seen record.Record, fn ModifyFunc, wrote *bool) storage.UpdateFunc {
	return func(cur record.Record, _ bool) (record.Record, error) {
		if cur.Typed() || seen.Typed() {
			return record.Record{}, record.ErrTyped // S3: record.UpdateString
		}
		if !seen.Empty() {
			cur.Str = vclock.Sync(cur.Str, seen.Str)
		}
		clk, v, err := fn(cur)
		if errors.Is(err, ErrNoWrite) {
			return record.Record{}, storage.ErrNoChange
		}
		if err != nil {
			return record.Record{}, err
		}
		*wrote = true
		// The epoch is read under the key's lock, which a partition drop takes:
		// a record dropped before this write is always written as the new actor.
		actor := c.actorOf(p)
		now := c.cfg.Now().UnixMilli()
		next := vclock.Update(cur.Str, clk, actor, v, now, c.freshCounter())
		if len(next.Entries) <= c.cfg.MaxEntries {
			return record.String(next), nil
		}
		return record.String(vclock.Prune(next, c.pruneOptions(cur.Str, clk, actor, now))), nil
	}
}

// pruneOptions returns how the record a write with context clk leaves, applied
// to cur by actor at now, is pruned: never the writer's entry nor the ones the
// write needs (what clk covers beyond what cur knew superseded), young entries
// only above 5*MaxEntries.
func (c *Coordinator) pruneOptions(cur vclock.Set, clk vclock.Clock, actor string, now int64) vclock.PruneOptions {
	return vclock.PruneOptions{
		Limit:     c.cfg.MaxEntries,
		Keep:      actor,
		Needed:    vclock.Needed(cur, clk),
		Now:       now,
		MinAge:    max(c.cfg.PruneAge.Milliseconds(), 0),
		HardLimit: 5 * c.cfg.MaxEntries,
	}
}

// Reserving fresh counters (Config.Floor): New saves a reservation a minute
// (floorAhead, in microseconds) above the floor and the clock before it serves
// anything, and the keeper saves the next one whenever the clock or the floor
// comes within half of that of the last, checking every floorCheck.
// freshCounter never waits for a save (it runs under a key's lock, on an event
// loop's fast path too): a counter can pass the reservation only if the clock
// jumps ahead by more than half a minute between two checks, or saves fail (a
// full or stalled disk, logged), and a crash then may lose that stretch.
const (
	floorAhead = uint64(time.Minute / time.Microsecond)
	floorCheck = time.Second
)

// reserve saves the next reservation when the floor or the clock is within
// floorAhead/2 of the last one.
func (c *Coordinator) reserve() error {
	base := max(c.floor.Load(), uint64(c.cfg.Now().UnixMicro()))
	if base+floorAhead/2 <= c.reserved.Load() {
		return nil
	}
	next := base + floorAhead
	if err := c.cfg.Floor.Save(next); err != nil {
		return fmt.Errorf("coordinator: save the fresh-counter floor: %w", err)
	}
	c.reserved.Store(next)
	return nil
}

// floorKeeper saves fresh-counter reservations until Close.
func (c *Coordinator) floorKeeper() {
	t := time.NewTicker(floorCheck)
	defer t.Stop()
	for {
		select {
		case <-c.base.Done():
			return
		case <-t.C:
		}
		if err := c.reserve(); err != nil {
			c.cfg.Logger.Warn("saving a fresh-counter reservation failed; retrying", "err", err)
		}
	}
}

// freshCounter returns a counter above every fresh counter handed out before and at
// least the current unix microsecond, so that a key written again after its record
// was reaped gets a dot no old copy carries (see vclock's package doc). After a
// partition drop the write's actor is a new epoch's, so the jump claims nothing.
func (c *Coordinator) freshCounter() uint64 {
	now := uint64(c.cfg.Now().UnixMicro())
	for {
		last := c.floor.Load()
		next := max(last+1, now)
		if c.floor.CompareAndSwap(last, next) {
			return next
		}
	}
}
