// Package repair brings replicas back in step after faults and moves data when
// ownership changes. It runs:
//
//   - hinted handoff (Handoff): a node that stored records for an owner it could
//     not reach delivers them when the owner is alive again;
//   - Merkle anti-entropy (AAE, tictac.Trees): per partition a tictac tree (1024 leaf
//     segments by the top bits of the key hash, 32 branches, a root; each level the
//     XOR of hash(key, record encoding) below it) kept exactly in step with the store
//     as its storage.Observer and rebuilt from it at start, each partition while the
//     store keeps its writers out (storage.ExclusivePartition), so a reap or a write
//     racing the rebuild is counted exactly once. Each round, for every partition
//     two owners share, the owner whose name sorts first sends its roots
//     to the other in one message, descends only into differing branches and leaves,
//     lists only the keys of differing segments and moves only the records whose
//     hashes differ, merged with vclock.Sync, both ways. Work is throttled to
//     MaxKeysPerSec keys listed or moved;
//   - partition handoff: a partition this node holds but no longer owns (a node
//     joined, or this node is leaving) is pushed to every current owner the same way
//     and dropped only when all of them took it and nothing was written to it here
//     meanwhile (storage.DropPartitionIf with the tree's change version). Progress is
//     implicit in the trees, so a crash of either side just resumes with the records
//     that still differ;
//   - tombstone purge: a record of tombstones (DELs, and expired values storage's
//     reaper buried) is deleted once no node can hold anything older of its key.
//     The first of the key's N owners decides, for a record whose newest value died
//     more than TombstoneGrace ago: it asks every holder (AAEConfig.Holders, every
//     member of the member set not removed: owners, former owners, a down member,
//     a leaving one, a front node that ran a command itself) with MsgHolds, and each
//     answers per key "nothing" (no record and no hint for any owner), "exactly
//     this record" (byte for byte), or "something else". The purge goes ahead only
//     when every holder is alive and answers "nothing" or "exactly" in two checks
//     at least max(PurgeSettle, RequestTimeout) apart, with the same record both
//     times; then the decider deletes its copy with storage.DeleteIf (only if it is
//     still exactly that record) and sends MsgPurge to the holders that answered
//     "exactly", which delete theirs the same way. A holder down, unreachable or
//     holding anything else postpones it: a returning member hands off or repairs
//     what it holds first, and its older copy is superseded by the tombstone
//     before the tombstone goes. A round walks the grave index with a cursor over
//     the graves it decides only, checks them in batches (one MsgHolds or
//     MsgPurge per holder carries up to 4096 keys), and second-checks each batch
//     in the same round once the settle time has passed, for up to Interval,
//     under the MaxKeysPerSec budget: a cache's expired keys are purged as fast
//     as they die. Why two checks, and what the rule cannot see: see purge.go;
//   - eviction over maxmemory (Evictor, evict.go): the node's loop samples the
//     partitions it owns into Redis's pool of 16, confirms a batch with the
//     other owners' access words (MsgAccess, evict_serve.go) and evicts each
//     pick through the coordinator's causal eviction tombstone, which the other
//     repairs then carry like any tombstone; expired values are reaped first.
//     Up to 16 evictions run at once, each exact (a changed record is left
//     alone). The physical valve: in memory mode, while Pebble's in-memory
//     files exceed 1.4 x maxmemory (compactions behind, incompressible values),
//     the evictor evicts below maxmemory, to maxmemory x 1.4 x maxmemory /
//     files and never below half of it (ValveTarget), read once a second.
//
// Invariants:
//
//   - A hint is deleted only after its owner acknowledged a durable write of it, and
//     only if it did not change while being delivered (storage.DeleteHint compares):
//     a hint merged further during delivery is delivered again on the next pass.
//   - Delivery is idempotent: records merge with vclock.Sync, so delivering a hint
//     twice (after a crash between the owner's ack and the delete) is harmless.
//   - Hints for a member removed from the ring go to the key's current replicas
//     instead, and are deleted once every one of them acknowledged (a replica
//     down keeps the hint for a later pass). A member this node does not know yet
//     keeps its hints. Those replicas are the ring's, spread over the zones by
//     placement: no stand-in is chosen, so no zone preference applies.
//   - A leaving node hands a down owner's hints to the key's live current
//     replicas and, with zones, also as a hint for the owner to the live fallback
//     in the owner's zone (ring.Ring.Fallback), if there is one: a hint is the
//     copy a coordinator kept in the owner's zone, and the zone keeps it.
//   - Anti-entropy only ever stores Sync(local, remote), so it never loses a value
//     either side had. Records whose values have all expired are stored and sent
//     like any other: an expired value is causal history (storage's reaper turns it
//     into a tombstone that keeps its dot, and vclock.Sync merges an expired value
//     with that tombstone to the tombstone), so what it overwrote stays superseded
//     on every replica and is never brought back by one that missed the overwrite.
//     A key whose record has a typed part (issue 20) is not merged by its string
//     layer alone (record.SyncStrings refuses it): anti-entropy leaves it as it is
//     on both sides until typed records are merged, and a typed hint never counts
//     as too old.
//   - A tombstone is purged only when it is older than the grace period and every
//     holder, alive, answered twice that it holds exactly it or nothing of the key
//     (no record, no hint), so no copy older than a purged tombstone is left on
//     any member to come back. So hints need no age limit for tombstones' sake
//     (MaxHintAge, off in node/): a hint is kept until it is delivered.
//   - The handoff and anti-entropy loops are this package's goroutines; Close stops
//     each and waits.
package repair

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/ring"
)

// HintStore is where hints are kept. *storage.Store implements it.
type HintStore interface {
	HintOwners() ([]string, error)
	GetHint(owner string, key []byte) (record.Record, bool, error)
	ScanHints(owner string, from []byte, fn func(key []byte, rec record.Record) bool) error
	DeleteHint(owner string, key []byte, delivered record.Record) (bool, error)
	HintCount() int64
}

// Membership is the ring and liveness view (cluster.Membership implements it).
type Membership interface {
	Ring() *ring.Ring
	Alive(node string) bool
}

// Writer delivers a record to a node's replica of req.Key durably, kept there as a
// hint for req.HintFor when that is set and names another node: a replica write of
// the replica protocol. A write to this node itself must be applied locally (node/
// wires the coordinator's HandleWrite for that, and its RemotePeers for others).
type Writer interface {
	Write(ctx context.Context, node string, req peer.WriteRequest) error
}

// WriterFunc adapts a function to Writer.
type WriterFunc func(ctx context.Context, node string, req peer.WriteRequest) error

// Write implements Writer.
func (f WriterFunc) Write(ctx context.Context, node string, req peer.WriteRequest) error {
	return f(ctx, node, req)
}

// HandoffConfig configures Handoff.
type HandoffConfig struct {
	Store   HintStore  // required
	Cluster Membership // required
	Writer  Writer     // required
	// Node is this node's ring name. Required.
	Node string
	// N is the replication factor, for re-routing hints of removed members. Default 3.
	N int
	// Interval is the time between delivery passes. Default 1s. An owner coming
	// back alive (Kick) starts a pass at once.
	Interval time.Duration
	// Concurrency bounds the hint deliveries in flight. Default 16.
	Concurrency int
	// RequestTimeout bounds one delivery. Default 1s.
	RequestTimeout time.Duration
	// Removed reports whether a member was removed from the ring for good; only
	// then are its hints re-routed to the keys' current replicas. Default: a
	// member is removed when it is not in the ring (tests' fakes); node/ wires the
	// membership's state, so that a member merely not yet gossiped here keeps its
	// hints.
	Removed func(name string) bool
	// Leaving, when set, reports whether this node is leaving the ring. A leaving
	// node does not wait for an owner that is down: it hands that owner's hints to
	// the key's live current replicas, so that its leave, which completes only
	// once it holds no hint, is not held up by a dead member, and no hint stays on
	// a node that purge no longer asks once it left. With zones, a live
	// fallback in the owner's zone also takes them, as hints for the owner.
	Leaving func() bool
	// MaxHintAge drops, instead of replaying, a hint whose newest value was written
	// longer ago. 0 (node/'s choice) keeps a hint until its owner acknowledged it,
	// or, once the owner is removed, the key's replicas did: a hint may be the only
	// copy of an acknowledged write besides its coordinator's, and tombstone purge
	// waits while any node keeps a hint of the key, so a hint replayed late cannot
	// bring back a value whose tombstone was purged.
	MaxHintAge time.Duration
	// Now is the clock for MaxHintAge; default time.Now.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// EnsureDefaults returns a copy of c with defaults filled in.
func (c HandoffConfig) EnsureDefaults() HandoffConfig {
	if c.N == 0 {
		c.N = 3
	}
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.Concurrency == 0 {
		c.Concurrency = 16
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c HandoffConfig) Validate() error {
	if c.Store == nil || c.Cluster == nil || c.Writer == nil || c.Node == "" {
		return errors.New("repair: handoff needs Store, Cluster, Writer and Node")
	}
	if c.N < 1 || c.Interval <= 0 || c.Concurrency < 1 || c.RequestTimeout <= 0 {
		return errors.New("repair: handoff N, Interval, Concurrency and RequestTimeout must be positive")
	}
	return nil
}

// Handoff delivers hints to their owners.
type Handoff struct {
	cfg       HandoffConfig
	kick      chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	delivered atomic.Int64
	failed    atomic.Int64
	expired   atomic.Int64
	passMu    sync.Mutex // one pass at a time (the loop, or RunOnce from tests)
}

// NewHandoff returns a Handoff; Start runs its loop.
func NewHandoff(cfg HandoffConfig) (*Handoff, error) {
	cfg = cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Handoff{cfg: cfg, kick: make(chan struct{}, 1), ctx: ctx, cancel: cancel}, nil
}

// Start runs the delivery loop until Close.
func (h *Handoff) Start() {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(h.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-h.ctx.Done():
				return
			case <-t.C:
			case <-h.kick:
			}
			if h.cfg.Store.HintCount() == 0 {
				continue
			}
			if _, err := h.RunOnce(h.ctx); err != nil && h.ctx.Err() == nil {
				h.cfg.Logger.Warn("repair: hint delivery pass", "err", err)
			}
		}
	}()
}

// Kick starts a delivery pass soon: what the membership's OnAlive callback calls.
// It never blocks.
func (h *Handoff) Kick() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// Close stops the loop and waits for it. It is idempotent.
func (h *Handoff) Close() error {
	h.closeOnce.Do(h.cancel)
	h.wg.Wait()
	return nil
}

// HandoffMetrics is a snapshot of the handoff counters.
type HandoffMetrics struct {
	Delivered int64 // hints delivered and deleted
	Failed    int64 // delivery attempts that failed (retried on a later pass)
	Expired   int64 // hints dropped unreplayed for being older than MaxHintAge
}

// Metrics returns a snapshot of the counters.
func (h *Handoff) Metrics() HandoffMetrics {
	return HandoffMetrics{Delivered: h.delivered.Load(), Failed: h.failed.Load(), Expired: h.expired.Load()}
}

// RunOnce makes one delivery pass over every owner that can take its hints now and
// returns the number of hints delivered.
func (h *Handoff) RunOnce(ctx context.Context) (int, error) {
	h.passMu.Lock()
	defer h.passMu.Unlock()
	owners, err := h.cfg.Store.HintOwners()
	if err != nil {
		return 0, err
	}
	total := 0
	var errs []error
	for _, owner := range owners {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := h.deliverOwner(ctx, owner)
		total += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}

// hint is one hint found in the store (deliver reads its record again).
type hint struct {
	key []byte
}

// pageSize bounds the hints read from the store per batch.
const pageSize = 256

// route is where a hint goes.
type route uint8

const (
	toOwner        route = iota // the owner, alive and a ring member
	toReplicas                  // every current replica of the key (the owner was removed)
	toLiveReplicas              // the live current replicas (this node is leaving; the owner is down)
)

// deliverOwner delivers owner's hints, a page at a time, if owner can take them:
// alive and still a ring member, or removed (then to the keys' current replicas);
// or, while this node leaves, to the keys' live replicas when owner is down.
func (h *Handoff) deliverOwner(ctx context.Context, owner string) (int, error) {
	rg := h.cfg.Cluster.Ring()
	member := slices.ContainsFunc(rg.Members(), func(m ring.Member) bool { return m.Name == owner })
	rt := toOwner
	switch {
	case !member && h.cfg.Removed != nil && !h.cfg.Removed(owner):
		return 0, nil // not known here yet: keep its hints until gossip tells
	case !member:
		rt = toReplicas
	case !h.cfg.Cluster.Alive(owner) && h.cfg.Leaving != nil && h.cfg.Leaving():
		rt = toLiveReplicas
	case !h.cfg.Cluster.Alive(owner):
		return 0, nil
	}
	total := 0
	var from []byte
	for {
		var page []hint
		err := h.cfg.Store.ScanHints(owner, from, func(key []byte, _ record.Record) bool {
			if len(page) == pageSize {
				from = append(from[:0], key...)
				return false
			}
			page = append(page, hint{key: append([]byte(nil), key...)})
			return true
		})
		if err != nil {
			return total, fmt.Errorf("repair: scan hints for %s: %w", owner, err)
		}
		n, failed := h.deliverPage(ctx, owner, rt, page)
		total += n
		if failed > 0 {
			return total, fmt.Errorf("repair: %d hints for %s not delivered", failed, owner)
		}
		if len(page) < pageSize {
			return total, nil
		}
	}
}

// deliverPage delivers a page of hints with bounded concurrency and returns how
// many were delivered and how many failed.
func (h *Handoff) deliverPage(ctx context.Context, owner string, rt route, page []hint) (delivered, failed int) {
	sem := make(chan struct{}, h.cfg.Concurrency)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, ht := range page {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := h.deliver(ctx, owner, rt, ht)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				h.failed.Add(1)
				return
			}
			delivered++
		}()
	}
	wg.Wait()
	return delivered, failed
}

// zoneFallback returns p's fallback for owner (ring.Ring.Fallback with usable)
// when the ring has zones and the fallback is in owner's zone; else "".
func zoneFallback(rg *ring.Ring, p, n int, owner string, usable func(string) bool) string {
	if rg.NumZones() < 2 {
		return ""
	}
	if fb := rg.Fallback(p, n, owner, usable); fb != "" && rg.SameZone(fb, owner) {
		return fb
	}
	return ""
}

// tooOld reports whether every value of a hinted record was written more than
// MaxHintAge ago.
func (h *Handoff) tooOld(rec record.Record) bool {
	if h.cfg.MaxHintAge <= 0 || rec.Typed() { // issue 20: typed layers have no write times yet
		return false
	}
	limit := h.cfg.Now().Add(-h.cfg.MaxHintAge).UnixMilli()
	for v := range rec.Str.Values() {
		if v.Timestamp >= limit {
			return false
		}
	}
	return true
}

// deliver sends one hint to its owner (or, for a removed owner, to the key's live
// replicas) and deletes it once acknowledged. It reads the hint again first, and
// sends it under one RequestTimeout from that read: what travels is never older
// than that when it lands (purge.go relies on it), however long the page's other
// deliveries took.
func (h *Handoff) deliver(ctx context.Context, owner string, rt route, ht hint) error {
	rec, found, err := h.cfg.Store.GetHint(owner, ht.key)
	if err != nil || !found {
		return err // gone: delivered or dropped meanwhile
	}
	if h.tooOld(rec) {
		deleted, err := h.cfg.Store.DeleteHint(owner, ht.key, rec)
		if deleted {
			h.expired.Add(1)
			h.cfg.Logger.Warn("repair: hint older than the tombstone grace dropped", "owner", owner)
		}
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.RequestTimeout)
	defer cancel()
	switch rt {
	case toOwner:
		if err := h.cfg.Writer.Write(ctx, owner, peer.WriteRequest{Key: ht.key, Record: rec, HintFor: owner}); err != nil {
			return err
		}
	case toReplicas:
		// Every one of the key's current replicas must take it: deleting the hint
		// after fewer could leave a single copy.
		rg := h.cfg.Cluster.Ring()
		reps := rg.Replicas(rg.Partition(ht.key), h.cfg.N)
		if len(reps) == 0 {
			return errors.New("repair: no replica for a removed member's hint")
		}
		for _, node := range reps {
			if node != h.cfg.Node && !h.cfg.Cluster.Alive(node) {
				return fmt.Errorf("repair: replica %s of a removed member's hint is down", node)
			}
			if err := h.cfg.Writer.Write(ctx, node, peer.WriteRequest{Key: ht.key, Record: rec}); err != nil {
				return err
			}
		}
	case toLiveReplicas:
		// This node is leaving and the owner is down: every live current replica
		// takes the record (the down owner gets it from them by anti-entropy when
		// it is back). This node's copy goes when it stops anyway.
		rg := h.cfg.Cluster.Ring()
		p := rg.Partition(ht.key)
		sent := 0
		for _, node := range rg.Replicas(p, h.cfg.N) {
			if node == h.cfg.Node || !h.cfg.Cluster.Alive(node) {
				continue
			}
			if err := h.cfg.Writer.Write(ctx, node, peer.WriteRequest{Key: ht.key, Record: rec}); err != nil {
				return err
			}
			sent++
		}
		if sent == 0 {
			return fmt.Errorf("repair: no live replica takes %s's hint while this node leaves", owner)
		}
		// With zones, the hint was the copy in the owner's zone (coordinators
		// pick fallbacks there): a live fallback of that zone keeps it for the
		// owner, so the zone still holds the key after this node left.
		if fb := zoneFallback(rg, p, h.cfg.N, owner, func(node string) bool {
			return node != h.cfg.Node && h.cfg.Cluster.Alive(node)
		}); fb != "" {
			if err := h.cfg.Writer.Write(ctx, fb, peer.WriteRequest{Key: ht.key, Record: rec, HintFor: owner}); err != nil {
				return err
			}
		}
	}
	deleted, err := h.cfg.Store.DeleteHint(owner, ht.key, rec)
	if err != nil {
		return err
	}
	if deleted {
		h.delivered.Add(1)
	}
	return nil
}
