package storage

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/bloom"
	"github.com/cockroachdb/pebble/vfs"
	"github.com/lni/goutils/syncutil"

	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/ring"
	"github.com/dynakv/dynakv/vclock"
)

// Sentinel errors.
var (
	ErrClosed     = errors.New("storage: closed")
	ErrPartitions = errors.New("storage: partitions must be a power of two between 1 and 65536")
	ErrNoChange   = errors.New("storage: no change") // returned by an UpdateFunc to leave a record untouched
	ErrHintOwner  = errors.New("storage: a hint owner must be 1 to 255 bytes")
)

// Config configures a Store. The zero value is completed by EnsureDefaults.
type Config struct {
	// Dir is the data directory (disk mode). Required unless InMemory.
	Dir string
	// InMemory keeps Pebble on an in-memory filesystem: nothing survives the process.
	InMemory bool
	// Partitions is Q, a power of two; it must never change for a data directory.
	// Default 1024.
	Partitions int
	// CacheBytes is Pebble's block cache size. Default 64 MiB.
	CacheBytes int64
	// MemTableBytes is the size of Pebble's memtables (MemTableSize: up to two
	// are kept, the one written and one being flushed). Default 4 MiB (Pebble's).
	MemTableBytes int64
	// RecordCacheBytes bounds the record cache, which keeps recently read and
	// written records in memory so that their reads skip Pebble. Default 64 MiB
	// (fastcache's minimum is 32 MiB); negative turns it off.
	RecordCacheBytes int64
	// Sync says when a write is durable relative to its acknowledgement (see
	// SyncMode). Default SyncInterval.
	Sync SyncMode
	// SyncInterval is how often SyncInterval mode fsyncs the WAL. Default 100ms.
	SyncInterval time.Duration
	// ReapInterval is how often the reaper turns expired records into tombstones.
	// Default 1s.
	ReapInterval time.Duration
	// ReapBatch bounds the records the reaper rewrites per pass. Default 10000.
	ReapBatch int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives Pebble's and the store's logs. Default slog.Default().
	Logger *slog.Logger
	// Observer, when set, is told about every change to the records (not hints or
	// metadata): anti-entropy keeps its Merkle trees with it.
	Observer Observer

	// format, set by tests only, replaces formatCurrent (format.go): the Pebble
	// format a new store is created at and an existing one ratcheted to.
	format pebble.FormatMajorVersion
	// stripes, set by tests only (a power of two), replaces lockStripes: the
	// tests that take every stripe of a partition many times under -race (tree
	// rebuilds) run with fewer. TestPartitionStripes checks the real count.
	stripes int
}

// Observer watches the records of a Store. Its methods are called synchronously,
// after the change is committed and while the changed keys are still locked, so
// an observer sees the changes of one key in commit order. They must be fast and
// must not call back into the Store.
type Observer interface {
	// RecordChanged reports that the record of key (partition p, hash h) went from
	// the encoding old to new; an empty encoding means no record.
	RecordChanged(p int, h uint64, key, old, new []byte)
	// PartitionsDropped reports that partitions first..last were emptied.
	PartitionsDropped(first, last int)
}

// DefaultMemTableBytes is the memtable size a store gets when
// Config.MemTableBytes is 0: Pebble's own default, which storage leaves to it.
const DefaultMemTableBytes = 4 << 20

// EnsureDefaults returns a copy of c with defaults filled in.
func (c Config) EnsureDefaults() Config {
	if c.Partitions == 0 {
		c.Partitions = 1024
	}
	if c.CacheBytes == 0 {
		c.CacheBytes = 64 << 20
	}
	if c.RecordCacheBytes == 0 {
		c.RecordCacheBytes = 64 << 20
	}
	if c.ReapInterval == 0 {
		c.ReapInterval = time.Second
	}
	if c.Sync == "" {
		c.Sync = SyncInterval
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = 100 * time.Millisecond
	}
	if c.ReapBatch == 0 {
		c.ReapBatch = 10000
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
func (c Config) Validate() error {
	if c.Partitions < 1 || c.Partitions > 1<<16 || bits.OnesCount(uint(c.Partitions)) != 1 {
		return fmt.Errorf("%w: got %d", ErrPartitions, c.Partitions)
	}
	if !c.InMemory && c.Dir == "" {
		return errors.New("storage: a data directory is required for disk storage")
	}
	if _, err := ParseSyncMode(string(c.Sync)); c.Sync != "" && err != nil {
		return err
	}
	if c.SyncInterval < 0 {
		return fmt.Errorf("storage: negative fsync interval %v", c.SyncInterval)
	}
	return nil
}

// lockStripes is the number of key lock stripes of a store (a power of two):
// enough that event loops staging write sets rarely meet on one.
const lockStripes = 65536

// Store is one node's replica store.
type Store struct {
	cfg Config
	db  *pebble.DB
	wo  *pebble.WriteOptions
	rc  *recordCache // nil when off
	kf  *keyFilter   // the hashes of every stored record, and more (keyfilter.go)
	gc  committer    // groups the synced commits of concurrent writers
	// access is the access table Get touches (SetAccess).
	access accessTable
	// walFS is the file system that defers WAL fsyncs, in SyncInterval mode on
	// disk only.
	walFS *walFS
	// unclean: the data directory was not closed by its last user; stop tells
	// how that user ran.
	unclean bool
	stop    UncleanStop
	// testHookFill, set by tests only, runs when a read that missed the record
	// cache has read Pebble and is about to fill the cache.
	testHookFill func(dk []byte)
	// testHookDrop, set by tests only, sees a partition drop's batch just before
	// it commits.
	testHookDrop func(b *pebble.Batch)
	locks        []sync.Mutex    // key lock stripes: lockStripes, or Config.stripes (tests)
	counts       []atomic.Int64  // live records per partition
	mem          memory          // logical bytes (Memory)
	epochs       []atomic.Uint64 // actor epoch per partition (Epoch); stored under every key lock
	hints        atomic.Int64    // hints stored, for every owner
	reaped       atomic.Int64
	flushMu      sync.Mutex // held by DropAll to exclude concurrent partition drops
	stopper      *syncutil.Stopper
	closed       atomic.Bool
	// ops counts the calls using db, plus closingBit once Close began; Close waits
	// for idle (closed when the calls drained) before closing db, so a call racing
	// Close gets ErrClosed instead of a Pebble panic.
	ops      atomic.Int64
	idle     chan struct{}
	idleOnce sync.Once
	// failErr is set, and failed closed, once when the engine fails (see Failed).
	failErr  atomic.Pointer[error]
	failed   chan struct{}
	failOnce sync.Once
}

const closingBit = 1 << 62

// enter registers a call that uses db; it fails once Close has begun, or the
// engine failed. Every successful enter is paired with a deferred exit. Calls may
// nest (a Scan callback may Get).
func (s *Store) enter() error {
	if err := s.Err(); err != nil {
		return err
	}
	if s.ops.Add(1)&closingBit != 0 {
		s.done()
		return ErrClosed
	}
	return nil
}

// exit ends a call begun by enter; deferred right after it, it is the store's
// boundary for engine panics: a panic that went through Pebble (or the store's
// own code) is recovered, fails the store (see Failed), and becomes the call's
// error in *errp (nil: the call has no error result). A panic of the caller's
// code run by the call (guest) goes on.
func (s *Store) exit(errp *error) {
	r := recover()
	// Done after the failure is recorded: Close must not find the calls drained
	// and the store sound, and close a wedged Pebble.
	defer s.done()
	if r == nil {
		return
	}
	if err := s.recovered(r); errp != nil {
		*errp = err
	}
}

func (s *Store) done() {
	if s.ops.Add(-1) == closingBit {
		s.idleOnce.Do(func() { close(s.idle) })
	}
}

// Open opens (or creates) the store and starts its reaper. A panic of the engine
// while opening is returned as an error wrapping ErrEngineFailed.
func Open(cfg Config) (*Store, error) { return openOn(cfg, nil) }

// openOn is Open on the file system base (nil: the operating system's, or a new
// in-memory one with Config.InMemory); tests pass one that fails.
func openOn(cfg Config, base vfs.FS) (_ *Store, err error) {
	cfg = cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	defer func() {
		// No Store to fail yet, and Pebble may hold its locks: it is left as it is.
		if r := recover(); r != nil {
			err = fmt.Errorf("storage: open %q: %w", cfg.Dir, engineError(r))
		}
	}()
	if base == nil {
		base = vfs.Default
		if cfg.InMemory {
			base = vfs.NewMem()
		}
	}
	cache := pebble.NewCache(cfg.CacheBytes)
	defer cache.Unref()
	opts := &pebble.Options{
		Cache:  cache,
		Logger: pebbleLogger{cfg.Logger.With("component", "pebble")},
	}
	if cfg.MemTableBytes > 0 {
		opts.MemTableSize = uint64(cfg.MemTableBytes)
	}
	// Every write reads its key first (read-merge-write), so most reads find
	// their key in one level of several: bloom filters let the others be skipped
	// without reading their blocks.
	opts.Levels = make([]pebble.LevelOptions, 7)
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		opts.Levels[i].FilterType = pebble.TableFilter
	}
	var wfs *walFS
	dir := cfg.Dir
	switch {
	case cfg.InMemory:
		opts.FS = base
		dir = ""
	case cfg.Sync == SyncInterval:
		// Under Pebble's disk-health checks (WithFSDefaults wraps them around
		// opts.FS): they allow one operation at a time per file, and walFS fsyncs
		// the files beneath them from its own goroutine while Pebble writes.
		wfs = newWALFS(base)
		opts.FS = wfs
		opts.WithFSDefaults()
	default:
		opts.FS = base
		opts.WithFSDefaults()
	}
	upgraded := setFormat(cfg, opts, dir)
	opts.EnsureDefaults()
	db, err := pebble.Open(dir, opts)
	upgraded(err)
	if err != nil {
		return nil, fmt.Errorf("storage: open %q: %w", cfg.Dir, err)
	}
	stripes := lockStripes
	if cfg.stripes > 0 {
		stripes = cfg.stripes
	}
	s := &Store{locks: make([]sync.Mutex, stripes), cfg: cfg, db: db, wo: pebble.Sync, rc: newRecordCache(cfg.RecordCacheBytes), walFS: wfs, counts: make([]atomic.Int64, cfg.Partitions), mem: memory{parts: make([]partMemory, cfg.Partitions)}, epochs: make([]atomic.Uint64, cfg.Partitions), stopper: syncutil.NewStopper(), idle: make(chan struct{}), failed: make(chan struct{})}
	s.gc.s = s
	if cfg.Sync == SyncNone {
		s.wo = pebble.NoSync
	}
	if err := s.loadState(); err != nil {
		if s.Err() == nil { // a failed Pebble may never finish closing
			db.Close()
		}
		return nil, err
	}
	s.stopper.RunWorker(s.reapLoop)
	if wfs != nil {
		s.stopper.RunWorker(s.syncLoop)
	}
	return s, nil
}

// loadState reads what Open keeps in memory and marks the directory open.
func (s *Store) loadState() (err error) {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit(&err)
	if err := s.checkPartitions(); err != nil {
		return err
	}
	s.kf = newKeyFilter(0)
	if err := s.loadCounts(); err != nil {
		return err
	}
	if err := s.loadEpochs(); err != nil {
		return err
	}
	if err := s.loadHintCount(); err != nil {
		return err
	}
	if !s.cfg.InMemory {
		return s.markOpen()
	}
	return nil
}

// Metadata of the clean-stop protocol: metaOpen is present while a process has
// the data directory open; metaUnclean from the Open that found metaOpen left
// behind until ClearUnclean.
const (
	metaOpen    = "open"
	metaUnclean = "unclean"
)

// markOpen notes (durably) that the data directory is in use, after recording
// whether a process that used it left without closing it. The mark holds the
// sync mode and the kernel's boot id, so that the next Open can tell how much
// the stop may have taken (UncleanStop).
func (s *Store) markOpen() error {
	last, open, err := s.GetMeta(metaOpen)
	if err != nil {
		return err
	}
	stop, unclean, err := s.GetMeta(metaUnclean)
	if err != nil {
		return err
	}
	if open && !unclean {
		if err := s.PutMeta(metaUnclean, last); err != nil {
			return err
		}
		stop = last
	}
	if s.unclean = open || unclean; s.unclean {
		s.stop = parseOpenMark(stop)
	}
	return s.PutMeta(metaOpen, []byte(string(s.cfg.Sync)+"\n"+bootID()))
}

// UncleanStop describes the last unclean stop of a data directory.
type UncleanStop struct {
	// Mode is the sync mode the stopped process ran with ("" if unknown).
	Mode SyncMode
	// SameBoot is set when the machine has not restarted since: the operating
	// system still holds everything that process wrote, fsynced or not.
	SameBoot bool
}

func parseOpenMark(b []byte) UncleanStop {
	mode, boot, _ := strings.Cut(string(b), "\n")
	cur := bootID()
	return UncleanStop{Mode: SyncMode(mode), SameBoot: boot != "" && boot == cur}
}

// bootID returns the kernel's id of this boot ("" where there is none to read).
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Unclean reports whether a process that used the data directory ended without
// closing the store (killed, crashed, or the machine lost power), and nobody has
// called ClearUnclean since, with what is known of that stop. Its last writes may
// then be gone here although other replicas got them: after a power loss (what
// was not fsynced), or a kill of a process that sends records to replicas before
// they reach the OS locally (Pebble's NoSync commits). A node must then not reuse
// the version-vector dots it handed out: it takes a new actor id, then calls
// ClearUnclean. The flag is durable, so a node that fails before that does it
// again at its next start.
func (s *Store) Unclean() (UncleanStop, bool) { return s.stop, s.unclean }

// ClearUnclean records that the unclean stop was dealt with.
func (s *Store) ClearUnclean() (err error) {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit(&err)
	if err := s.metaDurably(s.db.Delete(metaKey(metaUnclean), pebble.Sync)); err != nil {
		return fmt.Errorf("storage: clear unclean: %w", err)
	}
	s.unclean = false
	return nil
}

// checkPartitions refuses to open a data directory made with a different Q: its
// records would sit in the wrong partitions.
func (s *Store) checkPartitions() error {
	const name = "partitions"
	v, ok, err := s.GetMeta(name)
	if err != nil {
		return err
	}
	want := fmt.Sprint(s.cfg.Partitions)
	if !ok {
		return s.PutMeta(name, []byte(want))
	}
	if string(v) != want {
		return fmt.Errorf("%w: data directory was created with %s partitions, not %s", ErrPartitions, v, want)
	}
	return nil
}

// metaIndexVersion names the metadata entry holding the version of the rules
// the expiry and grave indexes were built by (indexVersion). A data directory
// without it was written by a binary that indexed fewer records: before issue
// 15's fixes, a record went into the expiry index only when every value had an
// expiry, and nothing went into the grave index for values the reaper buried.
const (
	metaIndexVersion = "index"
	indexVersion     = "2" // expiry at ReapTime (the earliest expiry), graves at GraveTime
)

// reindexBatch bounds the index entries one commit of the re-indexing adds.
const reindexBatch = 4096

// loadCounts counts the records of every partition (see Count). When the data
// directory's indexes were built by older rules (metaIndexVersion), the same
// scan adds every record's expiry and grave index entries as the current rules
// want them, then records the version, so later Opens skip that work. Entries
// the old rules put elsewhere become dangling, which the reaper and Graves
// already clean when they reach them. The entries are committed before the
// version (synced, in WAL order), so a crash midway only makes the next Open
// do it again; setting an entry twice is harmless.
func (s *Store) loadCounts() error {
	v, _, err := s.GetMeta(metaIndexVersion)
	if err != nil {
		return err
	}
	reindex := string(v) != indexVersion
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{spaceData}, UpperBound: []byte{spaceData + 1}})
	if err != nil {
		return fmt.Errorf("storage: count records: %w", err)
	}
	defer it.Close()
	b := s.db.NewBatch()
	defer func() { b.Close() }()
	added := 0
	for it.First(); it.Valid(); it.Next() {
		p, h, key, err := parseDataKey(it.Key())
		if err != nil {
			return err
		}
		s.kf.add(h)
		rec, err := record.Decode(it.Value())
		if err != nil {
			return fmt.Errorf("storage: record %q: %w", it.Key(), err)
		}
		if Counts(rec) {
			s.counts[p].Add(1)
		}
		reap, grave := ReapTime(rec), GraveTime(rec)
		if size := recordSize(len(it.Key()), len(it.Value()), reap, grave); grave != 0 {
			s.mem.add(p, 0, size)
			s.mem.graveChanged(grave, size)
		} else {
			s.mem.add(p, size, 0)
		}
		if !reindex {
			continue
		}
		for _, e := range []struct {
			key func([]byte, int64, int, uint64, []byte) []byte
			at  int64
		}{{expiryKey, reap}, {graveKey, grave}} {
			if e.at == 0 {
				continue
			}
			if err := b.Set(e.key(nil, e.at, p, h, key), nil, nil); err != nil {
				return fmt.Errorf("storage: re-index: %w", err)
			}
			added++
		}
		if b.Count() >= reindexBatch {
			if err := b.Commit(pebble.NoSync); err != nil {
				return fmt.Errorf("storage: re-index: %w", err)
			}
			b.Close()
			b = s.db.NewBatch()
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("storage: count records: %w", err)
	}
	if !reindex {
		return nil
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("storage: re-index: %w", err)
	}
	if added > 0 {
		s.cfg.Logger.Info("storage: indexed records for expiry and purge", "entries", added, "from version", string(v))
	}
	return s.PutMeta(metaIndexVersion, []byte(indexVersion))
}

// loadEpochs reads the partitions' actor epochs (see Epoch).
func (s *Store) loadEpochs() error {
	lo := metaKey(metaEpoch)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return fmt.Errorf("storage: read partition epochs: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		p, epoch, err := parseEpoch(it.Key(), it.Value(), s.cfg.Partitions)
		if err != nil {
			return err
		}
		s.epochs[p].Store(epoch)
	}
	return it.Error()
}

// Epoch returns partition p's actor epoch: 0 until the partition is first dropped
// (DropPartition, DropPartitionIf, DropAll), then raised by every drop, durably and
// in the same Pebble batch as the drop, so a crash never separates them. A node
// that dropped a partition has lost its records of the partition's keys, while
// other replicas may still hold values it wrote: its coordinator writes those keys
// as a new actor per epoch, so that no new dot claims an older one as seen (see
// coordinator). Read inside an UpdateFunc of a key of p, it stays what it is until
// the function returns (a drop takes every key lock).
func (s *Store) Epoch(p int) uint64 { return s.epochs[p].Load() }

// Close waits for the calls in progress, stops the reaper and closes Pebble; calls
// made after Close began return ErrClosed. It is idempotent. Once the engine
// failed (see Failed), it returns the failure at once, leaving Pebble, and any
// call or worker stuck in it, to the end of the process: Pebble may hold its
// locks for good.
func (s *Store) Close() (err error) {
	if s.closed.Swap(true) {
		return nil
	}
	if s.ops.Add(closingBit) == closingBit {
		s.idleOnce.Do(func() { close(s.idle) })
	}
	select {
	case <-s.idle:
		s.stopper.Stop() // a worker stops at its next tick after a failure
	case <-s.failed:
		s.stopper.Close()
	}
	if err := s.Err(); err != nil {
		return fmt.Errorf("storage: close: %w", err)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("storage: close: %w", s.recovered(r))
		}
	}()
	var markErr error
	if !s.cfg.InMemory {
		if err := s.db.Delete(metaKey(metaOpen), pebble.Sync); err != nil {
			markErr = fmt.Errorf("storage: close: %w", err)
		}
	}
	// fastcache's chunks live outside the Go heap: a reset hands them back to its
	// process-wide free list, for the next cache.
	s.rc.reset()
	// Closing Pebble closes (and so fsyncs) the WAL, in every sync mode.
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("storage: close: %w", err)
	}
	return markErr
}

// Partitions returns Q.
func (s *Store) Partitions() int { return s.cfg.Partitions }

// PartitionOf returns the partition of key.
func (s *Store) PartitionOf(key []byte) int { return ring.PartitionOf(key, s.cfg.Partitions) }

func (s *Store) lock(h uint64) *sync.Mutex { return &s.locks[s.stripe(h)] }

// stripe is the lock stripe of a key whose ring.KeyHash is h.
func (s *Store) stripe(h uint64) uint32 { return uint32(h & uint64(len(s.locks)-1)) }

// Get returns the record of key; found is false when there is none. It never
// waits for a key's lock (see TryGet).
func (s *Store) Get(key []byte) (rec record.Record, found bool, err error) {
	return s.read(key, ring.KeyHash(key), false)
}

// TryGet is Get, for a caller that must never wait (an event loop), named for
// that contract: it never waits for a key's lock. It answers from the record
// cache, or else reads Pebble (a memtable, block cache or file read; Pebble's
// reads take no lock a writer holds long). On a miss it fills the cache only
// if it can take the key's lock stripe at once; when the stripe is busy (a
// writer, a WriteSet, a partition drop holds it) it reads Pebble and leaves
// the cache as it is, so it returns the record as last committed: a write in
// progress on that key is not applied, and not acknowledged, yet.
func (s *Store) TryGet(key []byte) (rec record.Record, found bool, err error) {
	return s.read(key, ring.KeyHash(key), false)
}

// read is Get of key (hash h); held says that the caller holds the key's lock
// stripe, so a miss may fill the cache.
func (s *Store) read(key []byte, h uint64, held bool) (rec record.Record, found bool, err error) {
	if err := s.enter(); err != nil {
		return record.Record{}, false, err
	}
	defer s.exit(&err)
	defer s.touch(h, &found)
	dk := dataKey(nil, s.partition(h), h, key)
	if s.rc == nil {
		return s.get(dk)
	}
	buf := s.rc.scratch()
	enc, found, err := s.lookup((*buf)[:0], dk, h, held)
	defer s.rc.release(buf, enc)
	if err != nil || !found {
		return record.Record{}, false, err
	}
	return decodeRecord(dk, enc)
}

func (s *Store) partition(h uint64) int { return ring.PartitionOfHash(h, s.cfg.Partitions) }

func decodeRecord(dk, enc []byte) (record.Record, bool, error) {
	rec, err := record.Decode(enc)
	if err != nil {
		return record.Record{}, false, fmt.Errorf("storage: record %q: %w", dk, err)
	}
	return rec, true, nil
}

// lookup returns the stored encoding of the record under data key dk (hash h)
// appended to dst, from the record cache when it holds it; found is false when
// there is no record. held says that the caller holds the key's lock; otherwise a
// miss fills the cache only if the lock is free at once (see recordCache).
func (s *Store) lookup(dst, dk []byte, h uint64, held bool) (enc []byte, found bool, err error) {
	if s.rc == nil {
		return s.getEncoded(dk)
	}
	if enc, ok := s.rc.get(dst, dk); ok {
		return enc, len(enc) > 0, nil
	}
	if s.absent(dk) {
		return nil, false, nil // nothing to cache: the filter answers as fast
	}
	if !held {
		mu := s.lock(h)
		if !mu.TryLock() {
			return s.getEncoded(dk)
		}
		defer mu.Unlock()
	}
	if enc, found, err = s.getEncoded(dk); err != nil {
		return nil, false, err
	}
	if s.testHookFill != nil {
		s.testHookFill(dk)
	}
	// A stored empty value is a damaged record: it is left to fail decoding
	// rather than cached, where it would read as no record at all.
	if !found || len(enc) > 0 {
		s.rc.set(dk, enc)
	}
	return enc, found, nil
}

func (s *Store) get(dk []byte) (record.Record, bool, error) {
	if s.absent(dk) {
		return record.Record{}, false, nil
	}
	v, closer, err := s.db.Get(dk)
	if errors.Is(err, pebble.ErrNotFound) {
		return record.Record{}, false, nil
	}
	if err != nil {
		return record.Record{}, false, fmt.Errorf("storage: get: %w", err)
	}
	defer closer.Close()
	rec, err := record.Decode(v)
	if err != nil {
		return record.Record{}, false, fmt.Errorf("storage: record %q: %w", dk, err)
	}
	return rec, true, nil
}

// GetEncoded returns the stored encoding of key's record (nil when there is none),
// as anti-entropy hashes and ships it.
func (s *Store) GetEncoded(key []byte) (_ []byte, err error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit(&err)
	h := ring.KeyHash(key)
	enc, _, err := s.lookup(nil, dataKey(nil, s.partition(h), h, key), h, false)
	return enc, err
}

// getEncoded returns a copy of the value stored under Pebble key k; found is
// false when there is none.
func (s *Store) getEncoded(k []byte) (enc []byte, found bool, err error) {
	if s.absent(k) {
		return nil, false, nil
	}
	v, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("storage: get: %w", err)
	}
	defer closer.Close()
	return append([]byte{}, v...), true, nil
}

// absent reports whether the key filter rules out a record under Pebble key k
// (a data key); false for every other key.
func (s *Store) absent(k []byte) bool {
	return s.kf != nil && len(k) >= dataKeyHashEnd && k[0] == spaceData &&
		!s.kf.mayHold(binary.BigEndian.Uint64(k[dataKeyHashEnd-8:dataKeyHashEnd]))
}

// load is get that also returns the stored encoding: the observer is told the
// old encoding of every change, and the memory sums take its length off, so it
// is kept rather than encoded again.
func (s *Store) load(k []byte) (rec record.Record, enc []byte, found bool, err error) {
	if s.rc != nil && k[0] == spaceData {
		// The caller holds k's lock, so the hash (used only to take it) is moot.
		enc, found, err = s.lookup(nil, k, 0, true)
	} else {
		enc, found, err = s.getEncoded(k)
	}
	if err != nil || !found {
		return record.Record{}, nil, false, err
	}
	if rec, err = record.Decode(enc); err != nil {
		return record.Record{}, nil, false, fmt.Errorf("storage: record %q: %w", k, err)
	}
	return rec, enc, true, nil
}

// UpdateFunc computes a key's new record from its current one. Returning ErrNoChange
// leaves the record as it is; returning an empty Set deletes it; any other error
// aborts the update and is returned by Update. The derived fields of a
// collection layer (Coll.Len, Bytes, Buckets) are storage's: the stored ones are
// kept whatever the function returns, and a record dropping a collection layer
// whose element keys remain is refused (ErrBadHeader); see UpdateKey.
type UpdateFunc func(cur record.Record, found bool) (record.Record, error)

// Update atomically reads key's record, applies fn and stores the result durably
// (see the package doc on durability): it returns once the write is durable. It
// returns the record as stored (the current one if fn returned ErrNoChange; that
// case writes nothing and does not sync).
func (s *Store) Update(key []byte, fn UpdateFunc) (record.Record, error) {
	return s.update(key, fn, s.wo)
}

// UpdateNoSync is Update without waiting for the WAL sync: the write is visible at
// once and durable once a later Sync (or any synced commit) has returned. Callers
// must not acknowledge it before then. Many writes followed by one Sync share one
// WAL sync: how a pipelined batch of commands is acknowledged.
func (s *Store) UpdateNoSync(key []byte, fn UpdateFunc) (record.Record, error) {
	return s.update(key, fn, pebble.NoSync)
}

// Sync makes every write committed before it durable (one WAL sync, shared through
// group commit with concurrent synced writers). With SyncNone it does nothing.
func (s *Store) Sync() (err error) {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit(&err)
	if s.wo == pebble.NoSync {
		return nil
	}
	if err := s.gc.commit(nil); err != nil {
		return fmt.Errorf("storage: sync wal: %w", err)
	}
	return nil
}

// UpdateBatch runs Update(keys[i], fns[i]) for every i and commits the records
// that changed as one Pebble batch, with one (group) commit and WAL sync, instead
// of one commit each: how a replica applies a batch of writes. errs[i] is key i's
// outcome (nil for ErrNoChange too). When it returns, every write of the batch
// that succeeded, and every write committed before it, is durable, as after
// Update and Sync; a failed commit fails every write of the batch. A key may
// appear more than once: each of its writes sees the one before, as one by one,
// and its record changes once, to the last result (the cache, counts, memory
// sums and Observer move from what was stored to that).
//
// It is a WriteSet without bounds whose keys' lock stripes are all taken first,
// in ascending order, as DropPartition takes them all, and held until the commit
// has returned and the cache is updated.
func (s *Store) UpdateBatch(keys [][]byte, fns []UpdateFunc) (errs []error) {
	errs = make([]error, len(keys))
	fail := func(err error) []error {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return errs
	}
	if len(keys) != len(fns) {
		return fail(errors.New("storage: UpdateBatch: as many functions as keys needed"))
	}
	if err := s.enter(); err != nil {
		return fail(err)
	}
	var failed error // an engine panic, recovered by exit: every write fails
	defer func() {
		if failed != nil {
			fail(failed)
		}
	}()
	defer s.exit(&failed)
	// A WriteSet without bounds, whose stripes are all taken first: its
	// Updates never find one busy.
	ws := s.newWriteSet(false)
	defer ws.Discard() // after a panic; nothing left to do after Commit
	ws.lockKeys(keys)
	for i, k := range keys {
		_, errs[i] = ws.Update(k, fns[i])
	}
	if err := ws.Commit(true); err != nil {
		return fail(err)
	}
	return errs
}

// lockKey takes the lock stripe of key and returns the key's partition, hash and
// data key, and the lock, for the caller to unlock.
func (s *Store) lockKey(key []byte) (p int, h uint64, dk []byte, mu *sync.Mutex) {
	h = ring.KeyHash(key)
	p = s.partition(h)
	mu = s.lock(h)
	mu.Lock()
	return p, h, dataKey(nil, p, h, key), mu
}

func (s *Store) update(key []byte, fn UpdateFunc, wo *pebble.WriteOptions) (_ record.Record, err error) {
	if err := s.enter(); err != nil {
		return record.Record{}, err
	}
	defer s.exit(&err)
	p, h, dk, mu := s.lockKey(key)
	defer mu.Unlock()
	cur, curEnc, found, next, write, err := s.modify(dk, fn)
	if err != nil || !write {
		return cur, err
	}
	// A record-only write keeps a collection's derived fields, and its
	// elements under their layer (nothing to do for a string key).
	if next, err = deriveHeader(cur, next, nil); err != nil {
		return record.Record{}, fmt.Errorf("storage: update %q: %w", key, err)
	}
	if err := s.write(dk, p, h, key, cur, curEnc, found, next, wo); err != nil {
		return record.Record{}, err
	}
	return next, nil
}

// modify reads the record stored under Pebble key k and runs fn on it, for Update
// and UpdateHint; the caller holds k's lock. write is false when fn returned
// ErrNoChange (cur is then the result); an error from fn is returned. It also
// returns the current record's stored encoding.
func (s *Store) modify(k []byte, fn UpdateFunc) (cur record.Record, curEnc []byte, found bool, next record.Record, write bool, err error) {
	cur, curEnc, found, err = s.load(k)
	if err != nil {
		return record.Record{}, nil, false, record.Record{}, false, err
	}
	guest(func() { next, err = fn(cur, found) })
	switch {
	case errors.Is(err, ErrNoChange):
		return cur, curEnc, found, record.Record{}, false, nil
	case err != nil:
		return record.Record{}, nil, false, record.Record{}, false, err
	}
	return cur, curEnc, found, next, true, nil
}

// commit commits b: a synced commit joins the group commit of concurrent writers.
func (s *Store) commit(b *pebble.Batch, wo *pebble.WriteOptions) error {
	if wo.Sync {
		return s.gc.commit(b)
	}
	return b.Commit(wo)
}

// write replaces (or deletes, for an empty next) a record and keeps the expiry and
// grave indexes, counts and memory sums in step, then tells the observer (curEnc is
// cur's stored encoding, needed only when there is one). The caller holds the key's
// lock.
func (s *Store) write(dk []byte, p int, h uint64, key []byte, cur record.Record, curEnc []byte, found bool, next record.Record, wo *pebble.WriteOptions) error {
	b := s.db.NewBatch()
	defer b.Close()
	st := staged{kf: s.kf, dk: dk, p: p, h: h, key: key, cur: cur, curEnc: curEnc, found: found, next: next}
	if err := st.stage(b); err != nil {
		return err
	}
	if err := s.commit(b, wo); err != nil {
		// Pebble may have applied the batch before its WAL write or sync failed:
		// what the record is now is unknown, so the cache forgets it.
		s.rc.forget(dk)
		return fmt.Errorf("storage: write: %w", err)
	}
	s.committed(&st)
	return nil
}

// staged is one record change on its way into a Pebble batch: the key, the
// record it replaces (curEnc is cur's stored encoding, for the observer and the
// memory sums) and the new one (empty: delete), and once staged, its encoding
// (nil: delete), whether it exists and counts (Counts), and the index times of
// the stored record and the new one (ReapTime, GraveTime; 0 for no record). Once
// staged, committed reads only those, never next, which may alias the caller's
// buffers (a WriteSet keeps a change across calls and drops next).
type staged struct {
	kf     *keyFilter // takes the hash of a record this creates
	dk     []byte
	p      int
	h      uint64
	key    []byte
	cur    record.Record
	curEnc []byte
	found  bool
	next   record.Record
	enc    []byte

	exists, counts                       bool // the new record: !next.Empty(), Counts(next)
	oldReap, oldGrave, newReap, newGrave int64
}

// stage adds the change, with the moves of its expiry and grave index entries, to b.
func (st *staged) stage(b *pebble.Batch) error {
	st.oldReap, st.oldGrave = 0, 0
	if st.found {
		st.oldReap, st.oldGrave = ReapTime(st.cur), GraveTime(st.cur)
	}
	return st.restage(b, st.oldReap, st.oldGrave)
}

// restage adds next to b over what b (or the store, the first time) holds for
// the key, whose index times are reap and grave: a WriteSet's later write of a
// key it changed already moves the index entries from where its last write put
// them. The stored record's (oldReap, oldGrave) stay, for committed.
func (st *staged) restage(b *pebble.Batch, reap, grave int64) error {
	st.newReap, st.newGrave = ReapTime(st.next), GraveTime(st.next)
	st.exists, st.counts, st.enc = !st.next.Empty(), false, nil
	if err := moveIndex(b, expiryKey, reap, st.newReap, st.p, st.h, st.key); err != nil {
		return err
	}
	if err := moveIndex(b, graveKey, grave, st.newGrave, st.p, st.h, st.key); err != nil {
		return err
	}
	if !st.exists {
		return b.Delete(st.dk, nil)
	}
	if !st.found && st.kf != nil {
		st.kf.add(st.h) // before the batch commits: see keyFilter's invariant
	}
	st.counts = Counts(st.next)
	st.enc = st.next.AppendBinary(nil)
	return b.Set(st.dk, st.enc, nil)
}

// committed brings the record cache, the observer and the partition's count and
// memory sums in step with a change whose batch committed. The caller still holds
// the key's lock.
func (s *Store) committed(st *staged) {
	s.rc.set(st.dk, st.enc)
	if s.cfg.Observer != nil {
		guest(func() { s.cfg.Observer.RecordChanged(st.p, st.h, st.key, st.curEnc, st.enc) })
	}
	before, after := st.found && Counts(st.cur), st.exists && st.counts
	switch {
	case before && !after:
		s.counts[st.p].Add(-1)
	case !before && after:
		s.counts[st.p].Add(1)
	}
	var live, graves int64 // the changes of the partition's sums
	if st.found {
		size := recordSize(len(st.dk), len(st.curEnc), st.oldReap, st.oldGrave)
		if st.oldGrave != 0 {
			graves -= size
			s.mem.graveChanged(st.oldGrave, -size)
		} else {
			live -= size
		}
	}
	if st.exists {
		size := recordSize(len(st.dk), len(st.enc), st.newReap, st.newGrave)
		if st.newGrave != 0 {
			graves += size
			s.mem.graveChanged(st.newGrave, size)
		} else {
			live += size
		}
	}
	s.mem.add(st.p, live, graves)
}

// Counts, ReapTime and GraveTime read the string layer (rec.Str) only: nothing
// writes a typed record yet. Issue 20's S3 moves them into record/, where typed
// layers count, expire and die too (docs/design/issue20-data-types.md 1.6); until
// then GraveTime keeps any typed record out of the grave index, so tombstone
// purge can never drop a typed layer.

// Counts reports whether a record counts for DBSIZE: the value plain GET would
// resolve to, the greatest by (Timestamp, dot) among all siblings (vclock.Winner),
// tombstones and expired values included, is not a tombstone. Like Redis, an
// expired value counts until it is reaped (turned into a tombstone, at ReapTime
// whatever its siblings): a key GET reports absent leaves the count within a
// reaper pass of its expiry. It does not depend on the time, so the count moves
// only when a record changes.
func Counts(rec record.Record) bool {
	w, ok := vclock.Winner(rec.Str.Siblings())
	return ok && !w.Tombstone
}

// ReapTime is the unix ms at which the reaper next has work in rec: the earliest
// expiry among its values that are not tombstones, 0 when none has one. The reaper
// then turns every value expired by then into its tombstone (vclock.Bury) and the
// record is indexed again at its next expiry, if any. A live sibling without an
// expiry does not hold the others back: a record whose plain-GET winner expired
// becomes one whose winner is a tombstone (Counts false, as GET answers), and an
// expired sibling keeps no data. Bury is safe in any record: the tombstone keeps
// the value's dot, timestamp and expiry, and every replica makes the same bytes.
func ReapTime(rec record.Record) int64 {
	var at int64
	for v := range rec.Str.Values() {
		if v.Expiring() && (at == 0 || v.Expiry < at) {
			at = v.Expiry
		}
	}
	return at
}

// GraveTime is the time (unix ms) the newest value of a record whose every value
// is a tombstone died, or 0 when some value is not a tombstone (or there is none).
// A tombstone died when it was written (Timestamp), one the reaper made of an
// expired value when it expired (its Expiry, kept by vclock.Value.Tomb); the grace
// period of tombstone purge runs from there.
func GraveTime(rec record.Record) int64 {
	if rec.Typed() {
		return 0
	}
	var at int64
	for v := range rec.Str.Values() {
		if !v.Tombstone {
			return 0
		}
		at = max(at, v.Timestamp, v.Expiry, 1)
	}
	return at
}

// moveIndex keeps one time index (expiry or graves) in step with a record whose
// index time goes from old to new (0: not indexed).
func moveIndex(b *pebble.Batch, key func([]byte, int64, int, uint64, []byte) []byte, old, new int64, p int, h uint64, k []byte) error {
	if old == new {
		return nil
	}
	if old != 0 {
		if err := b.Delete(key(nil, old, p, h, k), nil); err != nil {
			return err
		}
	}
	if new != 0 {
		return b.Set(key(nil, new, p, h, k), nil, nil)
	}
	return nil
}

// Count returns the number of records that count for DBSIZE (see counts): those
// whose plain-GET winner is a value, live or expired but not yet reaped.
func (s *Store) Count() int64 {
	var n int64
	for i := range s.counts {
		n += s.counts[i].Load()
	}
	return n
}

// PartitionCount returns Count for one partition.
func (s *Store) PartitionCount(p int) int64 { return s.counts[p].Load() }

// Scan calls fn for the records of partition p whose hash is >= fromHash, in hash
// order, until fn returns false. The key and record passed to fn are only valid
// during the call.
func (s *Store) Scan(p int, fromHash uint64, fn func(h uint64, key []byte, rec record.Record) bool) error {
	var derr error
	err := s.ScanEncoded(p, fromHash, func(h uint64, key, enc []byte) bool {
		rec, err := record.Decode(enc)
		if err != nil {
			derr = fmt.Errorf("storage: record %q: %w", key, err)
			return false
		}
		return fn(h, key, rec)
	})
	return cmp.Or(derr, err)
}

// ScanEncoded is Scan without decoding: fn gets each record's stored encoding, valid
// only during the call. Anti-entropy hashes records this way.
func (s *Store) ScanEncoded(p int, fromHash uint64, fn func(h uint64, key, enc []byte) bool) (err error) {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit(&err)
	lo, hi := partitionBounds(p)
	start := dataKey(nil, p, fromHash, nil)
	if bytes.Compare(start, lo) < 0 {
		start = lo
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("storage: scan: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		_, h, key, err := parseDataKey(it.Key())
		if err != nil {
			return err
		}
		enc, more := it.Value(), false
		guest(func() { more = fn(h, key, enc) })
		if !more {
			break
		}
	}
	return it.Error()
}

// ExclusivePartition runs fn while holding the lock stripes of every key of
// partition p (in ascending order, as UpdateBatch and the partition drops take
// them): while fn runs no record of p changes, and the Observer hears of no change
// to p; every change committed before fn began has been reported to it. Anti-entropy
// rebuilds a partition's Merkle tree this way, so that a write or a reap can never
// land between its reset and its scan. fn may read the store (ScanEncoded, Get,
// GetEncoded) but must not write to it: a write to p would wait for fn forever.
func (s *Store) ExclusivePartition(p int, fn func() error) (err error) {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit(&err)
	if p < 0 || p >= s.cfg.Partitions {
		return fmt.Errorf("storage: partition %d out of range", p)
	}
	stripes := partitionStripes(p, s.cfg.Partitions, len(s.locks))
	for _, i := range stripes {
		s.locks[i].Lock()
	}
	defer func() {
		for _, i := range stripes {
			s.locks[i].Unlock()
		}
	}()
	guest(func() { err = fn() })
	return err
}

// partitionStripes returns, ascending, the lock stripes of the keys of partition p
// of q, with n stripes: a key's partition is its hash mod q and its stripe the
// hash mod n, both powers of two, so they are the stripes congruent to p modulo
// min(q, n).
func partitionStripes(p, q, n int) []int {
	var out []int
	for i := p % n; i < n; i += q {
		out = append(out, i)
	}
	return out
}

// DropPartition deletes every record of partition p (after a handoff), and every
// element key (UpdateKey), and raises its epoch (Epoch).
func (s *Store) DropPartition(p int) error {
	_, err := s.DropPartitionIf(p, nil)
	return err
}

// DropPartitionIf deletes every record of partition p, and raises its epoch, if
// cond, called with every key of p locked (no write of p can interleave), returns true; a nil
// cond always holds. It reports whether it dropped. Partition handoff drops a partition this way only if
// nothing was written to it since the new owners confirmed they hold it.
func (s *Store) DropPartitionIf(p int, cond func() bool) (_ bool, err error) {
	if err := s.enter(); err != nil {
		return false, err
	}
	defer s.exit(&err)
	if p < 0 || p >= s.cfg.Partitions {
		return false, fmt.Errorf("storage: partition %d out of range", p)
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	return s.dropPartitions(p, p, false, cond)
}

// DropAll deletes every record and every hint (FLUSHALL): a hint kept for another
// node would otherwise bring flushed data back once it is replayed. It raises every
// partition's epoch; other metadata is kept.
func (s *Store) DropAll() (err error) {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit(&err)
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	_, err = s.dropPartitions(0, s.cfg.Partitions-1, true, nil)
	return err
}

// dropPartitions deletes partitions first..last, and every hint too when hints is
// set, with the lock stripes of every key of those partitions held (every stripe
// for more than one partition or with hints; a single partition's otherwise, in
// ascending order, as ExclusivePartition takes them), so that no Update,
// UpdateHint or WriteSet of a dropped key interleaves and the counts stay exact.
// In the same batch it raises the partitions' epochs. With a cond that returns
// false it drops nothing. Resetting the whole record cache while other
// partitions' keys are written is safe: it only loses entries, and a record of
// another partition filled or set meanwhile is still the stored one.
func (s *Store) dropPartitions(first, last int, hints bool, cond func() bool) (bool, error) {
	var stripes []int // nil: every stripe
	if first == last && !hints {
		stripes = partitionStripes(first, s.cfg.Partitions, len(s.locks))
	}
	lockAll := func(f func(*sync.Mutex)) {
		if stripes == nil {
			for i := range s.locks {
				f(&s.locks[i])
			}
			return
		}
		for _, i := range stripes {
			f(&s.locks[i])
		}
	}
	lockAll((*sync.Mutex).Lock)
	defer lockAll((*sync.Mutex).Unlock)
	ok := cond == nil
	if !ok {
		guest(func() { ok = cond() })
	}
	if !ok {
		return false, nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	lo, _ := partitionBounds(first)
	_, hi := partitionBounds(last)
	if err := b.DeleteRange(lo, hi, nil); err != nil {
		return false, err
	}
	// The partitions' element keys go in the same batch as their headers.
	elo, _ := elemBounds(first)
	_, ehi := elemBounds(last)
	if err := b.DeleteRange(elo, ehi, nil); err != nil {
		return false, err
	}
	// Index entries of dropped records become dangling; the reaper and the grave
	// scan skip entries whose record is gone. Dropping everything clears them too.
	if first == 0 && last == s.cfg.Partitions-1 {
		for _, space := range []byte{spaceExpiry, spaceGrave} {
			if err := b.DeleteRange([]byte{space}, []byte{space + 1}, nil); err != nil {
				return false, err
			}
		}
	}
	if hints {
		if err := b.DeleteRange([]byte{spaceHint}, []byte{spaceHint + 1}, nil); err != nil {
			return false, err
		}
	}
	for p := first; p <= last; p++ {
		if err := b.Set(epochKey(p), binary.BigEndian.AppendUint64(nil, s.epochs[p].Load()+1), nil); err != nil {
			return false, err
		}
	}
	if s.testHookDrop != nil {
		s.testHookDrop(b)
	}
	// Reset even if the commit failed: an empty cache is always coherent.
	s.rc.reset()
	if err := b.Commit(s.wo); err != nil {
		return false, fmt.Errorf("storage: drop partitions: %w", err)
	}
	for p := first; p <= last; p++ {
		s.counts[p].Store(0)
		s.mem.dropPartition(p)
		s.epochs[p].Add(1)
	}
	if hints {
		s.hints.Store(0)
		s.mem.hints.Store(0)
	}
	if first == 0 && last == s.cfg.Partitions-1 {
		s.mem.young.reset()
	}
	// Flush the memtable that holds the range deletions: once they are in a
	// table, Pebble drops the files they cover whole (delete-only compactions)
	// instead of keeping them until ordinary compactions reach them, so the
	// bytes leave soon after FLUSHALL or a handoff, which matters most in
	// memory mode, where the files are RAM. Not waited for.
	if _, err := s.db.AsyncFlush(); err != nil {
		s.cfg.Logger.Warn("storage: flush after dropping partitions", "err", err)
	}
	if s.cfg.Observer != nil {
		guest(func() { s.cfg.Observer.PartitionsDropped(first, last) })
	}
	return true, nil
}

// GetMeta reads a metadata value.
func (s *Store) GetMeta(name string) (_ []byte, _ bool, err error) {
	if err := s.enter(); err != nil {
		return nil, false, err
	}
	defer s.exit(&err)
	v, closer, err := s.db.Get(metaKey(name))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("storage: get meta %q: %w", name, err)
	}
	defer closer.Close()
	return bytes.Clone(v), true, nil
}

// PutMeta writes a metadata value durably.
func (s *Store) PutMeta(name string, v []byte) (err error) {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit(&err)
	if err := s.metaDurably(s.db.Set(metaKey(name), v, pebble.Sync)); err != nil {
		return fmt.Errorf("storage: put meta %q: %w", name, err)
	}
	return nil
}

// metaDurably completes a metadata write (err is its Pebble error). Metadata (the
// ring, the node's identity, the clean-stop marks) is rare and precious: it is
// fsynced before the write returns whatever the sync mode, where SyncInterval's
// pebble.Sync only reaches the OS.
func (s *Store) metaDurably(err error) error {
	if err == nil && s.walFS != nil {
		return s.syncWALNow("WAL fsync for metadata")
	}
	return err
}

// Metrics is a snapshot of the store's counters.
type Metrics struct {
	Keys       int64 // records counted by Count
	Reaped     int64 // records whose expired values the reaper turned into tombstones since Open
	Hints      int64 // hints stored for other nodes (HintCount)
	DiskBytes  uint64
	MemtableMB float64
	Cache      CacheStats // zero when the record cache is off
}

// Metrics returns a snapshot of the store's counters.
func (s *Store) Metrics() Metrics {
	out := Metrics{Keys: s.Count(), Reaped: s.reaped.Load(), Hints: s.HintCount(), Cache: s.rc.stats()}
	if s.enter() != nil {
		return out // closed or failed: Pebble's figures are gone
	}
	defer s.exit(nil)
	m := s.db.Metrics()
	out.DiskBytes, out.MemtableMB = m.DiskSpaceUsage(), float64(m.MemTable.Size)/(1<<20)
	return out
}

// pebbleLogger sends Pebble's logs to slog instead of stderr.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) { p.l.Debug(fmt.Sprintf(format, args...)) }

// Fatalf is called by Pebble when it cannot go on (a failed WAL write, a failed
// commit, corruption), often holding its locks: it must not return, so it panics.
// On a call of the store (a commit, most of the time) the store's boundary
// recovers the panic and the store fails (see Failed); on one of Pebble's own
// goroutines (a flush or a compaction) nothing recovers it and the process
// crashes.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error("pebble: fatal error", "err", msg)
	panic(errors.New(msg))
}
