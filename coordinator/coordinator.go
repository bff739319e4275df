package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/vclock"
)

// ErrNoWrite is returned by a ModifyFunc that decided to write nothing; Modify then
// returns the current record and no error.
var ErrNoWrite = errors.New("coordinator: no write")

// Config configures a Coordinator.
type Config struct {
	// Actor is this node's id in version vectors. Required.
	Actor string
	// MaxEntries bounds version vectors (vclock.Prune). Default vclock.MaxEntries.
	MaxEntries int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// EnsureDefaults returns a copy of c with defaults filled in.
func (c Config) EnsureDefaults() Config {
	if c.MaxEntries == 0 {
		c.MaxEntries = vclock.MaxEntries
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.Actor == "" || len(c.Actor) > vclock.MaxActorLen {
		return fmt.Errorf("coordinator: actor id must be 1..%d bytes", vclock.MaxActorLen)
	}
	return nil
}

// Store is the local replica the coordinator writes through. *storage.Store
// implements it.
type Store interface {
	Get(key []byte) (vclock.Set, bool, error)
	Update(key []byte, fn storage.UpdateFunc) (vclock.Set, error)
	UpdateNoSync(key []byte, fn storage.UpdateFunc) (vclock.Set, error)
	SyncWAL() error
	Partitions() int
	Count() int64
	Scan(p int, fromHash uint64, fn func(h uint64, key []byte, rec vclock.Set) bool) error
	DropAll() error
}

var _ Store = (*storage.Store)(nil)

// Coordinator coordinates reads and writes of keys.
type Coordinator struct {
	cfg   Config
	store Store
	floor atomic.Uint64 // last fresh-entry counter handed out
}

// New returns a Coordinator over store.
func New(cfg Config, store Store) (*Coordinator, error) {
	cfg = cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Coordinator{cfg: cfg, store: store}, nil
}

// Actor returns this coordinator's actor id.
func (c *Coordinator) Actor() string { return c.cfg.Actor }

// ReadOptions are per-request read options.
type ReadOptions struct {
	// R overrides the read quorum (0: the configured default).
	R int
	// Local reads only this node's replica.
	Local bool
}

// WriteOptions are per-request write options.
type WriteOptions struct {
	// W overrides the write quorum (0: the configured default).
	W int
	// DeferSync returns once the write is applied, before it is durable; the caller
	// calls Sync before acknowledging it, so a batch of writes shares one fsync.
	DeferSync bool
}

// Sync makes every write this node applied before the call durable.
func (c *Coordinator) Sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.store.SyncWAL()
}

// Get returns the merged record of key (empty when no replica has one).
func (c *Coordinator) Get(ctx context.Context, key []byte, _ ReadOptions) (vclock.Set, error) {
	if err := ctx.Err(); err != nil {
		return vclock.Set{}, err
	}
	rec, _, err := c.store.Get(key)
	return rec, err
}

// Put writes v for key with the client's causal context clk: it supersedes exactly the
// values clk covers. It returns the record as stored.
func (c *Coordinator) Put(ctx context.Context, key []byte, clk vclock.Clock, v vclock.Value, opt WriteOptions) (vclock.Set, error) {
	return c.Modify(ctx, key, func(vclock.Set) (vclock.Clock, vclock.Value, error) { return clk, v, nil }, opt)
}

// ModifyFunc decides a read-modify-write: given the current record it returns the
// context to write with (usually cur.Join(), superseding everything seen) and the
// value, or ErrNoWrite to leave the key alone, or another error to abort.
type ModifyFunc func(cur vclock.Set) (vclock.Clock, vclock.Value, error)

// Modify runs fn on the current record of key and writes its result, atomically with
// respect to other writes of key through this node. It returns the record as stored
// (or as found, when fn returned ErrNoWrite).
func (c *Coordinator) Modify(ctx context.Context, key []byte, fn ModifyFunc, opt WriteOptions) (vclock.Set, error) {
	if err := ctx.Err(); err != nil {
		return vclock.Set{}, err
	}
	update := c.store.Update
	if opt.DeferSync {
		update = c.store.UpdateNoSync
	}
	rec, err := update(key, func(cur vclock.Set, _ bool) (vclock.Set, error) {
		clk, v, err := fn(cur)
		if errors.Is(err, ErrNoWrite) {
			return vclock.Set{}, storage.ErrNoChange
		}
		if err != nil {
			return vclock.Set{}, err
		}
		next := vclock.Update(cur, clk, c.cfg.Actor, v, c.cfg.Now().UnixMilli(), c.freshCounter())
		return vclock.Prune(next, c.cfg.MaxEntries, c.cfg.Actor), nil
	})
	if err != nil {
		return vclock.Set{}, err
	}
	return rec, nil
}

// freshCounter returns a counter above every fresh counter handed out before and at
// least the current unix microsecond, so that a key written again after its record
// was reaped gets a dot no old copy carries (see vclock's package doc).
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
