package repair

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dynakv/dynakv/evict"
	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/ring"
	"github.com/dynakv/dynakv/storage"
)

// Eviction for maxmemory (issue 18, design sections 2-5). The Evictor is the
// node's one owner of eviction: it keeps the store's access table (creates it
// for the policy's kind and the budget, ticks its clock every pass, so at least
// every evictTick), and whenever the node is over its limit (a pass every
// evictTick, or at once when Wake is called) it
//
//  1. reaps expired values first (storage's Reap, in batches, until a batch
//     comes back short): they read as absent already, and their graves are
//     within the allowance;
//  2. samples candidates among the partitions this node owns (never those it
//     hands off): Samples records after a random hash of a random non-empty
//     owned partition (allkeys-*), or the expiry index after a random time
//     between its first and last entries (volatile-*), from its head for
//     volatile-ttl; scores them (evict.Policy.Score: the access table's word,
//     else the write time) into a pool of evict.PoolSize;
//  3. evicts the best (random policies: the first live sample) through
//     Config.Evict with the record exactly as sampled: a record that changed
//     since is a ghost and is skipped;
//
// until used memory is at most the target. A pass that finds nothing it may
// evict (volatile-* with no key that has an expiry, or no live record in an
// owned partition) sets Stuck, so that Admit answers -OOM as Redis does; the
// next pass that evicts or finds the node under its limit clears it.
//
// The target is the limit, except past the physical valve: in memory mode
// Pebble's files are in RAM, and an LSM holds more than its logical records
// (obsolete tables until compactions catch up, the WAL, incompressible
// values); when Config.Physical (read at most once a second; the smaller of
// the last two readings, so that a compaction's moment of double files does
// not count) exceeds 1.4 x the limit, the target is lowered in proportion (ValveTarget),
// so that the node evicts below maxmemory until the files fit again and RSS
// stays bounded. Admit still admits writes at the limit: the valve is the
// evictor's goal, not the clients'.
//
// Invariants: one goroutine (the loop) samples, fills the pool and dispatches
// evictions; the pool and the rand are its own. Up to Config.InFlight
// evictions (default 16) run at once, each on a goroutine the pass starts and
// waits for before it ends, so that a write load over the limit is not held to
// one eviction round trip at a time; a key in flight is not sampled again, and
// the bytes in flight count as freed when the loop decides how much more to
// pick. Each eviction stays exact (Config.Evict with the record as sampled).
// Settings (policy, samples) are atomics read at each pass. Admit never evicts
// itself: it wakes the loop and waits for an eviction that brings used memory
// to the limit, or a pass's end, bounded by AdmitWait and its context.
//
// Picks are evicted in batches of up to evictBatch, each confirmed with the
// other owners first (evict_serve.go: MsgAccess).

// evictTick is the time between passes when nothing wakes the loop (and the
// node has a limit); the access table's clock is ticked every pass
// (evict.Table needs one a second at least).
const evictTick = 10 * time.Millisecond

// evictIdleTick is the time between passes of a node without a limit.
const evictIdleTick = time.Second

// evictPassBudget bounds one pass's evictions, so that a pass re-reads the
// settings and signals Admit's waiters regularly.
const evictPassBudget = 1024

// EvictStore is what the evictor needs of the local store (*storage.Store).
type EvictStore interface {
	Partitions() int
	PartitionCount(p int) int64
	SampleRecords(p int, fromHash uint64, n int, fn func(storage.Candidate) bool) error
	SampleExpiring(fromTime int64, n int, keep func(p int) bool, fn func(storage.Candidate) bool) error
	ExpiryBounds() (first, last int64, ok bool, err error)
	Reap(limit int) (int, error)
	SetAccess(t *evict.Table)
	Access() *evict.Table
}

// EvictFunc evicts key's record, which this node held exactly as seen, from
// every replica (node/ passes coordinator.Evict with exact); evicted says
// whether its memory is freed here. It returns an error wrapping
// ErrEvictGhost when the record changed since (nothing written).
type EvictFunc func(ctx context.Context, key []byte, seen record.Record) (evicted bool, err error)

// ErrEvictGhost is EvictFunc's error for a record that changed since sampled.
var ErrEvictGhost = errors.New("repair: evict: the record changed since it was sampled")

// EvictorConfig configures an Evictor.
type EvictorConfig struct {
	Node  string     // this node's ring name; required with Cluster
	Store EvictStore // required
	// Cluster gives the ring: the evictor samples the partitions this node owns
	// (among the N first replicas). Nil: every partition (a lone store).
	Cluster Membership
	// Caller reaches the other owners for their access words (MsgAccess) before
	// a batch is evicted; nil: no confirmation (each replica scores by the
	// reads it saw).
	Caller peer.Caller
	N      int // replication factor; default 3
	// Usage returns used_memory and maxmemory (0: no limit); required.
	Usage func() (used, max int64)
	// Evict evicts one record; required.
	Evict EvictFunc
	// GravesHigh, when set, reports that tombstones awaiting purge crowd the
	// allowance (node/: graves > A/2); the loop then calls KickPurge, at most
	// once a second, so that anti-entropy rounds (and their purges) run back
	// to back (design section 3, "graves under pressure").
	GravesHigh func() bool
	KickPurge  func()
	// Policy and Samples are the starting settings (SetPolicy, SetSamples).
	Policy  evict.Policy
	Samples int // default 5
	// ReapBatch is the batch of Store.Reap calls. Default 10000.
	ReapBatch int
	// AdmitWait bounds Admit's wait for room. Default 500ms: redis-server
	// refuses a write only when it can evict nothing, and evicts in the
	// write's path; here an eviction is a quorum round trip, so a writer over
	// the limit waits for the evictor (backpressure) rather than being refused
	// as soon as it falls behind, which on a loaded machine took 100 ms.
	AdmitWait time.Duration
	// RequestTimeout bounds one eviction. Default 1s.
	RequestTimeout time.Duration
	// Physical, when set, returns the bytes of the store's files held in
	// memory (memory mode: storage's Physical(), FS without the WAL), for the
	// physical valve (ValveTarget); read at most once a second, and the
	// smaller of the last two readings taken. Nil: no valve (disk).
	Physical func() int64
	// InFlight bounds the evictions running at once. Default 16.
	InFlight int
	Now      func() time.Time // default time.Now
	Seed     uint64           // the sampling and LFU randomness; 0: random
	Logger   *slog.Logger     // default slog.Default()
}

// Evictor is the node's eviction loop; see the comment above evictTick.
type Evictor struct {
	cfg     EvictorConfig
	policy  atomic.Uint32
	samples atomic.Int64
	evicted atomic.Int64
	stuck   atomic.Bool
	target  atomic.Int64 // the valve's target; 0: the limit

	// The evictions in flight: their bytes and keys' hashes.
	flightMu    sync.Mutex
	flightKeys  map[uint64]struct{}
	flightBytes atomic.Int64

	wake   chan struct{}
	mu     sync.Mutex
	passed chan struct{} // closed and replaced at the end of each pass

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started atomic.Bool
	closeMu sync.Once

	// The loop's own.
	rng          *rand.Rand
	pool         evict.Pool[storage.Candidate]
	table        *evict.Table
	tableMax     int64
	poolPolicy   evict.Policy
	lastKick     int64      // unix ms of the last KickPurge
	lastValve    int64      // unix ms of the last Physical read
	physical     int64      // the valve's figure: the smaller of the last two answers
	prevPhysical int64      // the last answer
	ownedRing    *ring.Ring // the ring ownedOf was computed for
	ownedOf      []int
	nonEmpty     []int // batch's buffer
}

// NewEvictor returns an Evictor; Start runs its loop.
func NewEvictor(cfg EvictorConfig) (*Evictor, error) {
	if cfg.Store == nil || cfg.Usage == nil || cfg.Evict == nil {
		return nil, errors.New("repair: evictor: Store, Usage and Evict are required")
	}
	if cfg.Cluster != nil && cfg.Node == "" {
		return nil, errors.New("repair: evictor: Node is required with Cluster")
	}
	if cfg.N <= 0 {
		cfg.N = 3
	}
	if cfg.Samples == 0 {
		cfg.Samples = 5
	}
	if err := CheckSamples(cfg.Samples); err != nil {
		return nil, err
	}
	if cfg.ReapBatch <= 0 {
		cfg.ReapBatch = 10000
	}
	if cfg.AdmitWait <= 0 {
		cfg.AdmitWait = 500 * time.Millisecond
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = time.Second
	}
	if cfg.InFlight <= 0 {
		cfg.InFlight = 16
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Evictor{cfg: cfg, wake: make(chan struct{}, 1), passed: make(chan struct{}), ctx: ctx, cancel: cancel,
		rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)), flightKeys: map[uint64]struct{}{}}
	e.policy.Store(uint32(cfg.Policy))
	e.samples.Store(int64(cfg.Samples))
	return e, nil
}

// CheckSamples checks a maxmemory-samples value: 1..64.
func CheckSamples(n int) error {
	if n < 1 || n > 64 {
		return fmt.Errorf("maxmemory-samples %d: must be within 1..64", n)
	}
	return nil
}

// SetPolicy changes the policy from the next pass on.
func (e *Evictor) SetPolicy(p evict.Policy) { e.policy.Store(uint32(p)); e.Wake() }

// Policy returns the policy in effect.
func (e *Evictor) Policy() evict.Policy { return evict.Policy(e.policy.Load()) }

// SetSamples changes maxmemory-samples (CheckSamples).
func (e *Evictor) SetSamples(n int) error {
	if err := CheckSamples(n); err != nil {
		return err
	}
	e.samples.Store(int64(n))
	return nil
}

// Samples returns maxmemory-samples.
func (e *Evictor) Samples() int { return int(e.samples.Load()) }

// Evicted returns the records this node evicted (INFO's evicted_keys).
func (e *Evictor) Evicted() int64 { return e.evicted.Load() }

// Target returns the used memory the evictor brings the node down to: the
// limit, or less while the physical valve is open (ValveTarget).
func (e *Evictor) Target() int64 {
	if t := e.target.Load(); t > 0 {
		return t
	}
	_, limit := e.cfg.Usage()
	return limit
}

// ValveRatio is the physical valve's bound, in tenths: the store's in-memory
// files may hold up to 1.4 x maxmemory (plus ValveSlack) before the evictor
// evicts below the limit.
const ValveRatio = 14

// ValveSlack is what the store's files may hold beyond 1.4 x maxmemory: a
// store has files whatever its limit (the manifest, a flushed memtable's
// table, tombstones not counted yet), which a small limit (Redis's tests give
// 100 KiB) could never get under, and evicting its few live records would not
// shrink them.
const ValveSlack = 4 << 20

// ValveTarget is the evictor's target for used memory under limit when the
// store's files hold physical bytes in memory: the limit while physical is at
// most 1.4 x limit + ValveSlack (ValveRatio); past it, the limit scaled by how
// far it is over, limit x bound / physical (the files shrink with the records
// once compactions drop what was evicted), and never below half the limit (a
// backlog of obsolete files, or graves and hints that cannot be evicted, must
// not empty the cache). 0 limit: 0 (no limit).
func ValveTarget(limit, physical int64) int64 {
	// In float64: exact for these integers below 2^49, and no overflow above.
	bound := float64(limit)*ValveRatio/10 + ValveSlack
	if limit <= 0 || float64(physical) <= bound {
		return limit
	}
	return max(int64(float64(limit)*bound/float64(physical)), limit/2)
}

// Stuck reports whether the last pass over the limit found nothing to evict.
func (e *Evictor) Stuck() bool { return e.stuck.Load() }

// TableBytes returns the access table's size (INFO's evict_table_bytes).
func (e *Evictor) TableBytes() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.table == nil {
		return 0
	}
	return e.table.Bytes()
}

// Wake asks for a pass soon. It never blocks.
func (e *Evictor) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Start runs the loop until Close.
func (e *Evictor) Start() {
	e.started.Store(true)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		t := time.NewTimer(evictTick)
		defer t.Stop()
		for {
			e.RunOnce(e.ctx)
			// Without a limit there is no table to tick and nothing to evict:
			// a pass a second (or at Wake) is enough.
			next := evictTick
			if _, limit := e.cfg.Usage(); limit == 0 {
				next = evictIdleTick
			}
			t.Reset(next)
			select {
			case <-e.ctx.Done():
				return
			case <-t.C:
			case <-e.wake:
			}
		}
	}()
}

// Close stops the loop and waits for it; Admit's waiters return. Idempotent.
func (e *Evictor) Close() error {
	e.closeMu.Do(e.cancel)
	e.wg.Wait()
	e.cfg.Store.SetAccess(nil)
	return nil
}

// Admit waits for room under an evicting policy: nil once used memory is at
// most the limit, an error wrapping errFull when the evictor is stuck, its
// wait (AdmitWait or ctx) ends first, or it is not running.
func (e *Evictor) Admit(ctx context.Context) error {
	deadline := time.NewTimer(e.cfg.AdmitWait)
	defer deadline.Stop()
	for {
		used, limit := e.cfg.Usage()
		if limit == 0 || used <= limit {
			return nil
		}
		if e.stuck.Load() || !e.started.Load() {
			return fmt.Errorf("used memory %d > maxmemory %d and nothing evictable: %w", used, limit, ErrFull)
		}
		e.mu.Lock()
		passed := e.passed
		e.mu.Unlock()
		e.Wake()
		select {
		case <-passed:
		case <-deadline.C:
			return fmt.Errorf("used memory %d > maxmemory %d after waiting %v for eviction: %w", used, limit, e.cfg.AdmitWait, ErrFull)
		case <-ctx.Done():
			return fmt.Errorf("waiting for eviction: %w: %w", ctx.Err(), ErrFull)
		case <-e.ctx.Done():
			return fmt.Errorf("evictor closed: %w", ErrFull)
		}
	}
}

// ErrFull is Admit's error: the node stays over its limit.
var ErrFull = errors.New("repair: over maxmemory")

// progress wakes Admit's waiters: a pass ended, or an eviction freed memory.
func (e *Evictor) progress() {
	e.mu.Lock()
	close(e.passed)
	e.passed = make(chan struct{})
	e.mu.Unlock()
}

// RunOnce runs one pass: the loop calls it; a test may call it on an evictor
// that was not started (never concurrently with the loop). The evictions it
// starts have ended when it returns.
func (e *Evictor) RunOnce(ctx context.Context) {
	var flight sync.WaitGroup
	defer e.progress()
	defer flight.Wait()
	now := e.cfg.Now().UnixMilli()
	policy := e.Policy()
	_, limit := e.cfg.Usage()
	e.keepTable(policy, limit, now)
	e.keepValve(limit, now)
	if policy != e.poolPolicy {
		e.pool.Reset()
		e.poolPolicy = policy
	}
	if e.cfg.GravesHigh != nil && e.cfg.KickPurge != nil && now-e.lastKick >= 1000 && e.cfg.GravesHigh() {
		e.lastKick = now
		e.cfg.KickPurge()
	}
	if !policy.Evicts() || !e.over() {
		e.stuck.Store(false)
		return
	}
	// Expired values first.
	for e.over() && ctx.Err() == nil {
		n, err := e.cfg.Store.Reap(e.cfg.ReapBatch)
		if err != nil {
			e.cfg.Logger.Warn("repair: evictor: reap", "err", err)
			break
		}
		if n < e.cfg.ReapBatch {
			break
		}
	}
	owned := e.owned()
	misses, started := 0, 0
	var failed atomic.Int64 // evictions of the pass that failed
	slots := make(chan struct{}, e.cfg.InFlight)
	for started < evictPassBudget && ctx.Err() == nil {
		need := e.need() - e.flightBytes.Load()
		if need <= 0 {
			// What is in flight frees enough, if it all goes: wait for it and
			// look again (a ghost frees nothing).
			flight.Wait()
			if e.need() <= 0 {
				break
			}
			continue
		}
		batch, err := e.batch(policy, owned, now, need)
		if err != nil {
			// Stuck until a pass evicts: Admit answers at once instead of
			// waking a pass per waiter that fails the same way, and the
			// warning is logged once.
			if !e.stuck.Swap(true) {
				e.cfg.Logger.Warn("repair: evictor: sample", "err", err)
			}
			return
		}
		if len(batch) == 0 {
			if e.flightBytes.Load() > 0 {
				// The candidates may all be in flight: not a miss.
				flight.Wait()
				continue
			}
			// A few empty rounds in a row: nothing to evict (a sample round
			// may miss when live records are rare among graves).
			if misses++; misses >= 8 {
				if !e.stuck.Swap(true) {
					used, limit := e.cfg.Usage()
					e.cfg.Logger.Warn("repair: evictor: over maxmemory with nothing to evict", "policy", policy, "used_memory", used, "maxmemory", limit)
				}
				return
			}
			continue
		}
		misses = 0
		for _, c := range e.confirm(ctx, policy, batch, now) {
			if !e.fly(c) {
				continue // picked twice in one batch
			}
			slots <- struct{}{}
			started++
			flight.Add(1)
			go func() {
				defer flight.Done()
				defer func() { <-slots }()
				defer e.land(c)
				ok, err := e.evictOne(ctx, c)
				if err != nil {
					failed.Add(1)
				}
				if ok {
					e.stuck.Store(false)
					if used, limit := e.cfg.Usage(); used <= limit {
						e.progress()
					}
				}
			}()
		}
	}
	flight.Wait()
	switch {
	case !e.over():
		e.stuck.Store(false)
	case started > 0 && int(failed.Load()) == started:
		// Every eviction of the pass failed (no quorum, a store error; a
		// ghost is not a failure): the next tick tries again; meanwhile
		// growing writes get -OOM at once.
		e.stuck.Store(true)
	}
}

// fly marks c in flight, unless it already is.
func (e *Evictor) fly(c storage.Candidate) bool {
	e.flightMu.Lock()
	defer e.flightMu.Unlock()
	if _, ok := e.flightKeys[c.H]; ok {
		return false
	}
	e.flightKeys[c.H] = struct{}{}
	e.flightBytes.Add(c.Bytes)
	return true
}

// land marks c's eviction ended.
func (e *Evictor) land(c storage.Candidate) {
	e.flightMu.Lock()
	defer e.flightMu.Unlock()
	delete(e.flightKeys, c.H)
	e.flightBytes.Add(-c.Bytes)
}

// flying reports whether a candidate of hash h is in flight.
func (e *Evictor) flying(h uint64) bool {
	e.flightMu.Lock()
	defer e.flightMu.Unlock()
	_, ok := e.flightKeys[h]
	return ok
}

// keepValve reads the store's physical bytes, at most once a second, and sets
// the target from them (ValveTarget).
func (e *Evictor) keepValve(limit, now int64) {
	if e.cfg.Physical == nil || limit == 0 {
		e.target.Store(0)
		return
	}
	if e.lastValve == 0 || now-e.lastValve >= 1000 || now < e.lastValve {
		// The smaller of the last two readings: a compaction's outputs stand
		// beside its inputs for a moment, which is no reason to evict.
		ph := e.cfg.Physical()
		e.lastValve, e.physical, e.prevPhysical = now, min(ph, e.prevPhysical), ph
	}
	t := ValveTarget(limit, e.physical)
	if t < limit {
		if e.target.Swap(t) == 0 {
			e.cfg.Logger.Info("repair: evictor: the store's files outgrow maxmemory: evicting below it",
				"physical", e.physical, "maxmemory", limit, "target", t)
		}
		return
	}
	e.target.Store(0)
}

// need is what used memory is over the target by (0 or less: not over).
func (e *Evictor) need() int64 {
	used, limit := e.cfg.Usage()
	if limit <= 0 {
		return 0
	}
	if t := e.target.Load(); t > 0 && t < limit {
		limit = t
	}
	return used - limit
}

func (e *Evictor) over() bool { return e.need() > 0 }

// keepTable makes the store's access table fit the policy and the limit:
// made anew when the kind or the size changes, ticked otherwise.
func (e *Evictor) keepTable(p evict.Policy, limit int64, now int64) {
	kind := p.Kind()
	if limit == 0 {
		kind = evict.KindNone
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case kind == evict.KindNone:
		if e.table != nil {
			e.table = nil
			e.cfg.Store.SetAccess(nil)
		}
	case e.table == nil || e.table.Kind() != kind || evict.SlotsFor(limit) != evict.SlotsFor(e.tableMax):
		t, err := evict.NewTable(kind, evict.SlotsFor(limit), now, e.rng.Uint64())
		if err != nil {
			e.cfg.Logger.Error("repair: evictor: access table", "err", err)
			return
		}
		e.table, e.tableMax = t, limit
		e.cfg.Store.SetAccess(t)
	default:
		e.table.Tick(now)
	}
}

// owned returns the partitions this node owns (all without a cluster),
// computed again only when the ring changes.
func (e *Evictor) owned() []int {
	var rg *ring.Ring
	if e.cfg.Cluster != nil {
		rg = e.cfg.Cluster.Ring()
	}
	if e.ownedOf != nil && e.ownedRing == rg {
		return e.ownedOf
	}
	parts := e.cfg.Store.Partitions()
	out := make([]int, 0, parts)
	for p := range parts {
		if rg == nil || slices.Contains(rg.Replicas(p, e.cfg.N), e.cfg.Node) {
			out = append(out, p)
		}
	}
	e.ownedOf, e.ownedRing = out, rg
	return out
}

// evictBatch bounds the picks evicted together (and confirmed with one
// MsgAccess per other owner).
const evictBatch = 32

// batch picks candidates until they free need bytes, or evictBatch of them,
// or a sampling round finds none.
func (e *Evictor) batch(p evict.Policy, owned []int, now int64, need int64) ([]storage.Candidate, error) {
	var out []storage.Candidate
	// The owned partitions that hold records, once per batch (not per pick:
	// with 1024 partitions the scan cost a third of the sampling).
	var nonEmpty []int
	if !p.Volatile() {
		nonEmpty = e.nonEmpty[:0]
		for _, q := range owned {
			if e.cfg.Store.PartitionCount(q) > 0 {
				nonEmpty = append(nonEmpty, q)
			}
		}
		e.nonEmpty = nonEmpty
	}
	for len(out) < evictBatch && need > 0 {
		c, ok, err := e.pick(p, owned, nonEmpty, now)
		if err != nil || !ok {
			return out, err
		}
		out = append(out, c)
		need -= c.Bytes
	}
	return out, nil
}

// pick samples one round and returns the candidate to evict: the pool's best
// (pooled policies) or the first live sample (random ones); ok is false when
// the round found none and the pool is empty. nonEmpty are the owned
// partitions with records (allkeys-*).
func (e *Evictor) pick(p evict.Policy, owned, nonEmpty []int, now int64) (storage.Candidate, bool, error) {
	n := int(e.samples.Load())
	var first *storage.Candidate
	got := 0 // live candidates seen
	offer := func(c storage.Candidate) bool {
		if !c.Live || (p.Volatile() && c.ReapAt == 0) || e.flying(c.H) {
			return true
		}
		got++
		if p.Random() {
			first = &c
			return false
		}
		e.pool.Offer(c.Key, e.score(p, c, now), c)
		return true
	}
	var err error
	if p.Volatile() {
		lo, hi, ok, berr := e.cfg.Store.ExpiryBounds()
		if berr != nil {
			return storage.Candidate{}, false, berr
		}
		if ok {
			from := lo
			if p != evict.VolatileTTL && hi > lo {
				from = lo + e.rng.Int64N(hi-lo+1)
			}
			mine := make(map[int]bool, len(owned))
			for _, q := range owned {
				mine[q] = true
			}
			err = e.cfg.Store.SampleExpiring(from, n, func(q int) bool { return mine[q] }, offer)
		}
	} else {
		// n samples in all: a partition may hold fewer records than n (many
		// partitions, few keys), so the round takes several, each from a random
		// hash, as Redis's dictGetSomeKeys visits buckets until it has its count.
		for tries := 0; len(nonEmpty) > 0 && got < n && tries < 4*n && err == nil; tries++ {
			q := nonEmpty[e.rng.IntN(len(nonEmpty))]
			err = e.cfg.Store.SampleRecords(q, e.rng.Uint64(), n-got, offer)
		}
	}
	if err != nil {
		return storage.Candidate{}, false, err
	}
	if first != nil {
		return *first, true, nil
	}
	_, _, c, ok := e.pool.Pop()
	return c, ok, nil
}

// score scores c under p at now, by the access table's word of its key when
// it has one.
func (e *Evictor) score(p evict.Policy, c storage.Candidate, now int64) uint64 {
	f := evict.Facts{Written: c.Written, ReapAt: c.ReapAt, Expired: c.Expiry != 0 && c.Expiry <= now}
	decay := 0
	if e.table != nil {
		_, decay = e.table.LFU()
		f.Access, f.Known = e.table.Lookup(c.H)
		// A key's last access is its last read or write, whichever is later:
		// a write after the last read makes it recent.
		if f.Known && p.Kind() == evict.KindLRU && lruNewer(evict.LRUClock(c.Written), f.Access) {
			f.Known = false
		}
	}
	return p.Score(f, now, decay)
}

// lruNewer reports whether LRU stamp a is after b (the clock wraps every 194
// days: a difference of half of that or more is taken as a wrap).
func lruNewer(a, b uint32) bool {
	d := (a - b) & evict.LRUClockMax
	return d != 0 && d < evict.LRUClockMax/2
}

// evictOne evicts c as sampled; it reports whether its memory was freed, and
// an error when the eviction failed (a ghost, a record changed since it was
// sampled, is not a failure).
func (e *Evictor) evictOne(ctx context.Context, c storage.Candidate) (bool, error) {
	seen, err := record.Decode(c.Enc)
	if err != nil {
		e.cfg.Logger.Warn("repair: evictor: sampled record", "key", c.Key, "err", err)
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.RequestTimeout)
	defer cancel()
	evicted, err := e.cfg.Evict(ctx, c.Key, seen)
	if evicted {
		e.evicted.Add(1)
	}
	if err != nil && !errors.Is(err, ErrEvictGhost) {
		e.cfg.Logger.Debug("repair: evictor: evict", "key", c.Key, "evicted", evicted, "err", err)
		return evicted, err
	}
	return evicted, nil
}
