package repair

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/tictac"
)

// AAEStore is what anti-entropy needs of the local store (*storage.Store).
type AAEStore interface {
	tictac.RecordScanner
	GetEncoded(key []byte) ([]byte, error)
	UpdateNoSync(key []byte, fn storage.UpdateFunc) (record.Record, error)
	Sync() error
	GravesFrom(cursor []byte, before int64, limit int, keep func(p int) bool) ([]storage.Grave, []byte, error)
	DeleteIf(key, enc []byte) (bool, error)
	HintOwners() ([]string, error)
	GetHint(owner string, key []byte) (record.Record, bool, error)
	DropPartitionIf(p int, cond func() bool) (bool, error)
}

// AAEConfig configures AAE.
type AAEConfig struct {
	Node    string        // this node's ring name; required
	Store   AAEStore      // required
	Trees   *tictac.Trees // the store's observer; required
	Cluster Membership    // required
	Caller  peer.Caller   // required: reaches the other ring members
	// N is the replication factor. Default 3.
	N int
	// Interval is the time between rounds. Default 30s.
	Interval time.Duration
	// MaxKeysPerSec throttles the keys a round lists, fetches and sends, and
	// those its tombstone purge checks (each check of a key counts one). Default
	// 20000.
	MaxKeysPerSec int
	// TombstoneGrace is how old a tombstone must be before it may be purged; 0
	// means the default, 24h; negative disables purging.
	TombstoneGrace time.Duration
	// Sealed, when set, reports whether this node sealed its coordinator for
	// the end of a leave (coordinator.Seal): anti-entropy then brings no data
	// in either: a push from a peer is refused, and this node's own rounds
	// only push (a sealed node must hold nothing purge does not ask about).
	Sealed func() bool
	// Holders lists every node that may hold records or hints of any key: each
	// must answer a tombstone purge (see purge.go). node/ passes every member of
	// the member set that was not removed (leaving ones hand off what they hold).
	// Default: the ring's members.
	Holders func() []string
	// PurgeSettle is the longest time after reading a record that the other
	// parts of the node may still carry it to a replica or keep it as a hint
	// (node/ passes its request timeout plus RequestTimeout/32: the
	// coordinator's shared-deadline slack, RequestTimeout/64, and as much again
	// for keeping a hint of a replica write that timed out; see coordinator's
	// deadline); a tombstone purge's two checks are at least
	// max(PurgeSettle, RequestTimeout) apart (see purge.go). Default 0.
	PurgeSettle time.Duration
	// RequestTimeout bounds one message exchange. Default 10s.
	RequestTimeout time.Duration
	// Sleep waits d or until ctx ends (then it returns ctx's error): how a
	// tombstone purge waits, within a round, for its second check to be due.
	// Default: a timer. Tests on a fake clock pass one that advances it.
	Sleep func(ctx context.Context, d time.Duration) error
	// AfterRound, when set, is called after each round with the partitions this
	// node still has to hand off (node/ completes a leave with it).
	AfterRound func(handoffPending int)
	// Now is the clock for expiry and tombstone age; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// EnsureDefaults returns a copy of c with defaults filled in.
func (c AAEConfig) EnsureDefaults() AAEConfig {
	if c.N == 0 {
		c.N = 3
	}
	if c.Interval == 0 {
		c.Interval = 30 * time.Second
	}
	if c.MaxKeysPerSec == 0 {
		c.MaxKeysPerSec = 20000
	}
	if c.TombstoneGrace == 0 {
		c.TombstoneGrace = 24 * time.Hour
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Sleep == nil {
		c.Sleep = sleep
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// sleep is AAEConfig.Sleep's default.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Validate reports a configuration that cannot work.
func (c AAEConfig) Validate() error {
	if c.Node == "" || c.Store == nil || c.Trees == nil || c.Cluster == nil || c.Caller == nil {
		return errors.New("repair: anti-entropy needs Node, Store, Trees, Cluster and Caller")
	}
	if c.N < 1 || c.Interval <= 0 || c.MaxKeysPerSec < 1 || c.RequestTimeout <= 0 {
		return errors.New("repair: anti-entropy N, Interval, MaxKeysPerSec and RequestTimeout must be positive")
	}
	if c.Trees.Partitions() != c.Store.Partitions() {
		return fmt.Errorf("repair: %d trees for %d partitions", c.Trees.Partitions(), c.Store.Partitions())
	}
	return nil
}

// AAE runs Merkle-tree anti-entropy, partition handoff and tombstone purge.
type AAE struct {
	cfg     AAEConfig
	limiter *rate.Limiter
	kick    chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closeMu sync.Once
	roundMu sync.Mutex // one round at a time

	lastSync []atomic.Int64 // per partition: unix ms of the last exchange that found or made it equal

	// checked holds the tombstones that passed a purge's first check in an
	// earlier round, until their second (guarded by roundMu).
	checked purgeState

	exchanges, keysRepaired, recordsSent, recordsFetched atomic.Int64
	keysListed, purged, handedOff, rounds                atomic.Int64
	handoffPending, handoffKeys                          atomic.Int64
}

// NewAAE returns an AAE; Start runs its loop. The handlers Register puts on a
// peer.Mux answer peers either way.
func NewAAE(cfg AAEConfig) (*AAE, error) {
	cfg = cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	burst := max(cfg.MaxKeysPerSec, peer.MaxKeysPerMsg)
	return &AAE{
		cfg:      cfg,
		limiter:  rate.NewLimiter(rate.Limit(cfg.MaxKeysPerSec), burst),
		kick:     make(chan struct{}, 1),
		ctx:      ctx,
		cancel:   cancel,
		lastSync: make([]atomic.Int64, cfg.Store.Partitions()),
	}, nil
}

// sealed reports AAEConfig.Sealed.
func (a *AAE) sealed() bool { return a.cfg.Sealed != nil && a.cfg.Sealed() }

// ErrSealed is a push refused by a sealed node (AAEConfig.Sealed): nothing
// was merged.
var ErrSealed = errors.New("repair: this node is leaving the ring and takes no more data, nothing merged")

// Start runs a round every Interval (and soon after Kick) until Close.
func (a *AAE) Start() {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		t := time.NewTicker(a.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-a.ctx.Done():
				return
			case <-t.C:
			case <-a.kick:
			}
			if err := a.RunOnce(a.ctx); err != nil && a.ctx.Err() == nil {
				a.cfg.Logger.Warn("repair: anti-entropy round", "err", err)
			}
		}
	}()
}

// Kick starts a round soon (a membership change calls it). It never blocks.
func (a *AAE) Kick() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// Close stops the loop and waits for it. It is idempotent.
func (a *AAE) Close() error {
	a.closeMu.Do(a.cancel)
	a.wg.Wait()
	return nil
}

// AAEMetrics is a snapshot of the anti-entropy counters.
type AAEMetrics struct {
	Rounds             int64 // rounds completed
	Exchanges          int64 // partition exchanges with a peer (equal or repaired)
	KeysRepaired       int64 // records written here or sent to a peer because they differed
	KeysListed         int64 // keys listed (both sides) in differing segments
	RecordsSent        int64 // records pushed to peers (repairs and handoff)
	RecordsFetched     int64 // records fetched from peers
	TombstonesPurged   int64 // tombstones deleted here once every holder held them or nothing
	HandoffPending     int64 // partitions held here that this node no longer owns
	HandoffKeysPending int64 // records in those partitions
	PartitionsHanded   int64 // partitions handed off and dropped
}

// Metrics returns a snapshot of the counters.
func (a *AAE) Metrics() AAEMetrics {
	return AAEMetrics{
		Rounds: a.rounds.Load(), Exchanges: a.exchanges.Load(), KeysRepaired: a.keysRepaired.Load(),
		KeysListed: a.keysListed.Load(), RecordsSent: a.recordsSent.Load(), RecordsFetched: a.recordsFetched.Load(),
		TombstonesPurged: a.purged.Load(), HandoffPending: a.handoffPending.Load(),
		HandoffKeysPending: a.handoffKeys.Load(), PartitionsHanded: a.handedOff.Load(),
	}
}

// LastSync returns, per partition, the unix ms of the last exchange that found this
// node's replica equal to a peer's or made it so (0: never since start).
func (a *AAE) LastSync() []int64 {
	out := make([]int64, len(a.lastSync))
	for i := range a.lastSync {
		out[i] = a.lastSync[i].Load()
	}
	return out
}

// RunOnce runs one round: exchanges with the other owners of every partition this
// node owns, handoff of the partitions it holds but no longer owns, and tombstone
// purge.
func (a *AAE) RunOnce(ctx context.Context) error {
	a.roundMu.Lock()
	defer a.roundMu.Unlock()
	rg := a.cfg.Cluster.Ring()
	if rg == nil {
		return nil
	}
	self := a.cfg.Node
	// Each pair of owners is exchanged once per round, by the one whose name sorts
	// first; both directions are repaired, so that is enough.
	perPeer := map[string][]int{}
	var handoff []int
	var handoffKeys int64
	for p := range a.lastSync {
		owners := rg.Replicas(p, a.cfg.N)
		if !slices.Contains(owners, self) {
			if _, keys, _ := a.cfg.Trees.Root(p); keys > 0 {
				handoff = append(handoff, p)
				handoffKeys += keys
			}
			continue
		}
		for _, o := range owners {
			if o > self && a.cfg.Cluster.Alive(o) {
				perPeer[o] = append(perPeer[o], p)
			}
		}
	}
	a.handoffPending.Store(int64(len(handoff)))
	a.handoffKeys.Store(handoffKeys)
	var errs []error
	for _, node := range slices.Sorted(maps.Keys(perPeer)) {
		if err := a.exchangePeer(ctx, node, perPeer[node]); err != nil {
			errs = append(errs, fmt.Errorf("exchange with %s: %w", node, err))
		}
	}
	for _, p := range handoff {
		if err := a.handOff(ctx, p, rg.Replicas(p, a.cfg.N)); err != nil {
			errs = append(errs, fmt.Errorf("handoff of partition %d: %w", p, err))
		}
	}
	if err := a.purge(ctx); err != nil {
		errs = append(errs, fmt.Errorf("tombstone purge: %w", err))
	}
	a.rounds.Add(1)
	if a.cfg.AfterRound != nil {
		a.cfg.AfterRound(int(a.handoffPending.Load()))
	}
	return errors.Join(errs...)
}

// call sends one message with the request timeout.
func (a *AAE) call(ctx context.Context, node string, typ peer.MsgType, req []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.RequestTimeout)
	defer cancel()
	return a.cfg.Caller.Call(ctx, node, typ, req)
}

// take waits for n keys' worth of the throughput budget.
func (a *AAE) take(ctx context.Context, n int) error {
	for n > 0 {
		k := min(n, a.limiter.Burst())
		if err := a.limiter.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// exchangePeer compares the roots of parts with peer in one message, then repairs
// the partitions whose roots differ.
func (a *AAE) exchangePeer(ctx context.Context, node string, parts []int) error {
	m := peer.RootsRequest{Parts: parts, Roots: make([]uint64, len(parts))}
	for i, p := range parts {
		m.Roots[i], _, _ = a.cfg.Trees.Root(p)
	}
	rep, err := a.call(ctx, node, peer.MsgRoots, m.AppendBinary(nil))
	if err != nil {
		return err
	}
	differ, err := peer.DecodeInts(rep, a.cfg.Trees.Partitions())
	if err != nil {
		return err
	}
	asked := make(map[int]bool, len(parts)) // true: the roots differ
	for _, p := range parts {
		asked[p] = false
	}
	for _, p := range differ {
		if _, ok := asked[p]; !ok {
			return fmt.Errorf("%w: peer named partition %d it was not asked about", peer.ErrBadMessage, p)
		}
		asked[p] = true
	}
	now := a.cfg.Now().UnixMilli()
	for _, p := range parts {
		if !asked[p] {
			a.lastSync[p].Store(now)
			a.exchanges.Add(1)
		}
	}
	var errs []error
	for _, p := range differ {
		if err := a.syncPartition(ctx, node, p, false); err != nil {
			errs = append(errs, fmt.Errorf("partition %d: %w", p, err))
			continue
		}
		a.lastSync[p].Store(a.cfg.Now().UnixMilli())
		a.exchanges.Add(1)
	}
	return errors.Join(errs...)
}

// syncPartition descends partition p's tree with peer and repairs the records that
// differ: both ways, or with pushOnly only peer's (handoff: this node is not an
// owner and keeps nothing new).
func (a *AAE) syncPartition(ctx context.Context, node string, p int, pushOnly bool) error {
	rep, err := a.call(ctx, node, peer.MsgBranches, peer.AppendInts(nil, []int{p}))
	if err != nil {
		return err
	}
	theirs, err := peer.DecodeHashes(rep)
	if err != nil {
		return err
	}
	if len(theirs) != tictac.Branches {
		return fmt.Errorf("%w: %d branches", peer.ErrBadMessage, len(theirs))
	}
	branches := a.cfg.Trees.DiffBranches(p, (*[tictac.Branches]uint64)(theirs))
	if len(branches) == 0 {
		return nil
	}
	rep, err = a.call(ctx, node, peer.MsgLeaves, peer.PartList{Part: p, Items: branches}.AppendBinary(nil))
	if err != nil {
		return err
	}
	leaves, err := peer.DecodeHashes(rep)
	if err != nil {
		return err
	}
	if len(leaves) != len(branches)*tictac.SegmentsPerBranch {
		return fmt.Errorf("%w: %d leaves for %d branches", peer.ErrBadMessage, len(leaves), len(branches))
	}
	segs := a.cfg.Trees.DiffSegments(p, branches, leaves)
	for chunk := range slices.Chunk(segs, segmentsPerRequest) {
		if err := a.syncSegments(ctx, node, p, chunk, pushOnly); err != nil {
			return err
		}
	}
	return nil
}

// segmentsPerRequest bounds the segments listed per MsgKeys, and keysPerRequest
// the records per MsgFetch or MsgPush.
const (
	segmentsPerRequest = 64
	keysPerRequest     = 256
)

// syncSegments lists both sides' keys of some segments and repairs those whose
// record hashes differ.
func (a *AAE) syncSegments(ctx context.Context, node string, p int, segs []int, pushOnly bool) error {
	rep, err := a.call(ctx, node, peer.MsgKeys, peer.PartList{Part: p, Items: segs}.AppendBinary(nil))
	if err != nil {
		return err
	}
	theirs, err := peer.DecodeKeyHashes(rep)
	if err != nil {
		return err
	}
	mine, err := a.segmentItems(p, segs)
	if err != nil {
		return err
	}
	a.keysListed.Add(int64(len(theirs) + len(mine)))
	if err := a.take(ctx, len(theirs)+len(mine)); err != nil {
		return err
	}
	local := make(map[string]uint64, len(mine))
	for _, it := range mine {
		local[string(it.Key)] = it.Hash
	}
	var differ [][]byte
	for _, it := range theirs {
		h, ok := local[string(it.Key)]
		if !ok || h != it.Hash {
			differ = append(differ, it.Key)
		}
		delete(local, string(it.Key))
	}
	for _, k := range slices.Sorted(maps.Keys(local)) { // only here
		differ = append(differ, []byte(k))
	}
	for chunk := range slices.Chunk(differ, keysPerRequest) {
		if err := a.repairKeys(ctx, node, chunk, pushOnly); err != nil {
			return err
		}
	}
	return nil
}

// segmentItems lists the keys and item hashes of some segments of partition p.
func (a *AAE) segmentItems(p int, segs []int) ([]peer.KeyItem, error) {
	var out []peer.KeyItem
	for _, s := range segs {
		lo, hi := tictac.SegmentRange(s)
		err := a.cfg.Store.ScanEncoded(p, lo, func(h uint64, key, enc []byte) bool {
			if h > hi {
				return false
			}
			out = append(out, peer.KeyItem{Key: bytes.Clone(key), Hash: tictac.ItemHash(key, enc)})
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// repairKeys fetches peer's records of keys, merges each with this node's, stores
// the merge here (unless pushOnly) and sends it to peer where peer's differs. The
// fetch, the merges and the push share one RequestTimeout: what the fetch read is
// stored here and pushed back only until then (purge.go relies on it).
func (a *AAE) repairKeys(ctx context.Context, node string, keys [][]byte, pushOnly bool) error {
	if err := a.take(ctx, len(keys)); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.RequestTimeout)
	defer cancel()
	rep, err := a.cfg.Caller.Call(ctx, node, peer.MsgFetch, peer.AppendKeys(nil, keys))
	if err != nil {
		return err
	}
	remote, err := peer.DecodeKeyRecords(rep)
	if err != nil {
		return err
	}
	if len(remote) != len(keys) {
		return fmt.Errorf("%w: %d records for %d keys", peer.ErrBadMessage, len(remote), len(keys))
	}
	a.recordsFetched.Add(int64(len(remote)))
	var push []peer.KeyItem
	wrote := false
	for i, key := range keys {
		if !bytes.Equal(remote[i].Key, key) {
			return fmt.Errorf("%w: record for another key", peer.ErrBadMessage)
		}
		theirs, err := peer.DecodeRecord(remote[i].Enc)
		if err != nil {
			return err
		}
		var merged record.Record
		if pushOnly || a.sealed() {
			localEnc, err := a.cfg.Store.GetEncoded(key)
			if err != nil {
				return err
			}
			mine, err := peer.DecodeRecord(localEnc)
			if err != nil {
				return err
			}
			if merged, err = record.SyncStrings(mine, theirs); err != nil {
				continue // a typed record: left to issue 20's range exchange (S7)
			}
		} else {
			var changed bool
			if merged, changed, err = a.merge(ctx, key, theirs); err != nil {
				return err
			}
			if changed {
				wrote = true
				a.keysRepaired.Add(1)
			}
		}
		if merged.Empty() {
			continue
		}
		if enc := merged.AppendBinary(nil); !bytes.Equal(enc, remote[i].Enc) {
			push = append(push, peer.KeyItem{Key: key, Enc: enc})
		}
	}
	if wrote {
		if err := a.cfg.Store.Sync(); err != nil {
			return err
		}
	}
	if len(push) == 0 {
		return nil
	}
	if _, err := a.cfg.Caller.Call(ctx, node, peer.MsgPush, peer.AppendKeyRecords(nil, push)); err != nil {
		return err
	}
	a.recordsSent.Add(int64(len(push)))
	a.keysRepaired.Add(int64(len(push)))
	return nil
}

// merge stores Sync(local, in) for key without syncing the WAL and returns that
// merge, reporting whether the stored record changed. Records whose values have
// all expired are stored and sent like any other: they are causal history (the
// reaper turns them into tombstones, purged by the tombstone rule), and dropping
// them would let a replica that missed an expiring overwrite bring back the value
// it replaced. in is stored only while ctx is in time, checked under the key's
// lock: in carries what a request read, which purge.go assumes never lands later
// than that request's deadline (errLate otherwise).
func (a *AAE) merge(ctx context.Context, key []byte, in record.Record) (merged record.Record, changed bool, err error) {
	_, err = a.cfg.Store.UpdateNoSync(key, func(cur record.Record, found bool) (record.Record, error) {
		if past(ctx) {
			return record.Record{}, errLate
		}
		merged = in
		if found {
			m, err := record.SyncStrings(cur, in)
			if err != nil {
				// A typed record: left as it is, to issue 20's range exchange (S7).
				merged = record.Record{}
				return record.Record{}, storage.ErrNoChange
			}
			merged = m
		}
		if merged.Empty() {
			return record.Record{}, storage.ErrNoChange
		}
		if found && bytes.Equal(merged.AppendBinary(nil), cur.AppendBinary(nil)) {
			return record.Record{}, storage.ErrNoChange
		}
		changed = true
		return merged, nil
	})
	return merged, changed, err
}

// errLate is merge's error for a record that arrived past its request's deadline.
var errLate = fmt.Errorf("repair: record past its request's deadline: %w", context.DeadlineExceeded)

// past reports whether ctx has ended or its deadline has passed (read against
// time.Now, as contexts' deadlines are: a timer may not have fired yet).
func past(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// handOff pushes partition p, which this node no longer owns, to every one of its
// owners and drops it once all of them hold it, if nothing was written to it here
// meanwhile. An owner that is down keeps the partition here for a later round.
func (a *AAE) handOff(ctx context.Context, p int, owners []string) error {
	for _, o := range owners {
		if !a.cfg.Cluster.Alive(o) {
			return nil
		}
	}
	v0 := a.cfg.Trees.Version(p)
	for _, o := range owners {
		if err := a.syncPartition(ctx, o, p, true); err != nil {
			return fmt.Errorf("to %s: %w", o, err)
		}
	}
	dropped, err := a.cfg.Store.DropPartitionIf(p, func() bool { return a.cfg.Trees.Version(p) == v0 })
	if err != nil {
		return err
	}
	if dropped {
		a.handedOff.Add(1)
		a.handoffPending.Add(-1)
		a.cfg.Logger.Info("repair: partition handed off", "partition", p, "owners", owners)
	}
	return nil
}
