// Package memstore is an in-memory replica store for tests: a map-based,
// mutex-guarded fake of storage.Store that implements coordinator.Store,
// repair.HintStore, repair.AAEStore and tictac.PartitionLocker (the checks are in
// memstore_test.go, since coordinator's own tests import this package).
//
// It keeps storage.Store's semantics, which TestAgreesWithStorage checks against
// the real thing on random operation sequences:
//
//   - Update and UpdateHint are atomic read-merge-writes: an UpdateFunc returning
//     storage.ErrNoChange leaves the record (and returns it), an empty result
//     deletes it, any other error aborts and is returned.
//   - A key's partition is ring.PartitionOf(key, Q); Scan visits one partition in
//     hash order (then key order) from a hash on, over a snapshot taken when it
//     starts, so its callback may call the store.
//   - Count and PartitionCount count the records whose plain-GET winner
//     (vclock.Winner over every sibling, tombstones and expired values included)
//     is not a tombstone, as storage does; hints are never counted, scanned or
//     dropped by DropPartition.
//   - Reap(now) is storage's reaper with the time passed in: every record
//     holding a value (not a tombstone) expired at now (storage.ReapTime at or
//     before now) gets its expired values turned into tombstones (vclock.Bury),
//     whatever its other values; nothing is deleted. Whether a record counts is
//     storage.Counts, so DBSIZE moves as storage's does.
//   - DeleteHint deletes a hint only if it still encodes exactly like the record
//     delivered; HintOwners is sorted; ScanHints is in key order.
//   - Records are kept encoded (record.Record.AppendBinary) and decoded on every
//     read, so callers never share memory with the store, as with Pebble.
//   - Epoch(p) is 0 until partition p is dropped and every drop raises it by one
//     (DropAll raises all), as storage's epochs; it may be read inside an
//     UpdateFunc (it takes no lock) and does not change while one runs.
//   - What anti-entropy needs (repair.AAEStore, tictac.PartitionLocker) is there
//     with storage's semantics: GetEncoded and ScanEncoded hand out the stored
//     encodings; GravesFrom walks the records whose every value is a tombstone
//     that died before a time (storage.GraveTime) in storage's grave-index
//     order (death time, partition, hash, key) with storage's cursors, a page of
//     up to limit of those in the partitions the caller keeps (storage's pages
//     may stop short of limit, never list others); DeleteIf deletes a record
//     only if it still encodes exactly as given; DropPartitionIf drops (and
//     raises the epoch) only if its condition, called with the partition's
//     writers held out, holds; ExclusivePartition runs a function while no
//     record of the partition changes (it may read the store, not write it).
//   - The Observer (SetObserver; a restarted node's new Merkle trees) hears of
//     every record change exactly as storage's does: after the change and before
//     any later change of the partition, once per Update, DeleteIf or reaped
//     record whose function did not return storage.ErrNoChange (a delete of an
//     absent key included, as nil to nil), once per distinct key an UpdateBatch
//     changed (its first encoding to its last), and once per drop
//     (PartitionsDropped; DropAll reports every partition). Hints are not
//     observed. So a tictac.Trees fed by either store agrees with one fed by the
//     other, change versions included (TestAgreesWithStorage).
//
// Every write is "durable" when it returns: a simulated crash keeps the Store and
// a restart reuses it. There are no goroutines and no clocks, so a Store works
// inside testing/synctest bubbles. UpdateFunc callbacks and the Observer run under
// the store's lock and must not call the store. A Store is safe for concurrent use.
// Lock order: the partitions' writer locks, ascending, then the store's lock.
package memstore

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/ring"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/vclock"
)

// ErrClosed is returned by every call after Close.
var ErrClosed = errors.New("memstore: closed")

// stored is one stored record.
type stored struct {
	key  []byte
	hash uint64
	enc  []byte // record.Record binary
	live bool   // its plain-GET winner is not a tombstone (counted)
	// grave is storage.GraveTime of the record: when its newest tombstone died, 0 unless
	// every value is a tombstone (GravesFrom).
	grave int64
}

// newRecord returns the stored form of rec for key.
func newRecord(key []byte, h uint64, rec record.Record) *stored {
	return &stored{key: key, hash: h, enc: rec.AppendBinary(nil), live: storage.Counts(rec), grave: storage.GraveTime(rec)}
}

// Store is an in-memory replica store.
type Store struct {
	q int
	// plocks are the partitions' writer locks: every change to a partition's
	// records holds its lock (before mu), and ExclusivePartition holds it while its
	// function runs, which may read the store (mu) meanwhile.
	plocks []sync.Mutex
	mu     sync.Mutex
	obs    storage.Observer             // nil: none; guarded by mu
	parts  []map[string]*stored         // per partition, by key
	hints  map[string]map[string][]byte // owner -> key -> encoded record
	counts []int64
	epochs []atomic.Uint64 // written under mu, read without it (Epoch)
	nhints int64
	closed bool
}

// New returns an empty Store with partitions partitions (a power of two in [1,
// 65536], as storage requires; it panics otherwise, being a test helper).
func New(partitions int) *Store {
	if partitions < 1 || partitions > 1<<16 || bits.OnesCount(uint(partitions)) != 1 {
		panic(fmt.Sprintf("memstore: %d partitions: %v", partitions, storage.ErrPartitions))
	}
	s := &Store{q: partitions, plocks: make([]sync.Mutex, partitions), parts: make([]map[string]*stored, partitions),
		hints: map[string]map[string][]byte{}, counts: make([]int64, partitions),
		epochs: make([]atomic.Uint64, partitions)}
	for i := range s.parts {
		s.parts[i] = map[string]*stored{}
	}
	return s
}

// Close makes every later call fail with ErrClosed. It is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *Store) enter() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// Partitions returns Q.
func (s *Store) Partitions() int { return s.q }

// PartitionOf returns the partition of key.
func (s *Store) PartitionOf(key []byte) int { return ring.PartitionOf(key, s.q) }

func decode(enc []byte) (record.Record, error) {
	rec, err := record.Decode(enc)
	if err != nil {
		return record.Record{}, fmt.Errorf("memstore: %w", err)
	}
	return rec, nil
}

// lockParts takes the writer locks of the partitions ps (ascending, no repeats)
// and then the store's lock; it returns ErrClosed, holding nothing, after Close.
func (s *Store) lockParts(ps ...int) error {
	for _, p := range ps {
		s.plocks[p].Lock()
	}
	if err := s.enter(); err != nil {
		s.unlockParts(ps...)
		return err
	}
	return nil
}

// unlockParts releases the writer locks lockParts took (not the store's lock).
func (s *Store) unlockParts(ps ...int) {
	for _, p := range ps {
		s.plocks[p].Unlock()
	}
}

// changed stores next (an empty one deletes) as key's record in partition p in
// place of old (nil: none), keeps the counts and tells the observer. The caller
// holds p's writer lock and mu.
func (s *Store) changed(p int, h uint64, key []byte, old *stored, next record.Record) {
	part := s.parts[p]
	var oldEnc, newEnc []byte
	if old != nil {
		oldEnc = old.enc
		if old.live {
			s.counts[p]--
		}
	}
	if next.Empty() {
		delete(part, string(key))
	} else {
		r := newRecord(bytes.Clone(key), h, next)
		part[string(key)] = r
		newEnc = r.enc
		if r.live {
			s.counts[p]++
		}
	}
	if s.obs != nil {
		s.obs.RecordChanged(p, h, bytes.Clone(key), oldEnc, newEnc)
	}
}

// SetObserver makes o (nil: none) hear of every later record change and drop (see
// the package doc); every change before it returns went to the previous one. A
// restarted node's new Merkle trees take over this way, and are then rebuilt from
// the store (tictac.Trees.Rebuild).
func (s *Store) SetObserver(o storage.Observer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.obs = o
}

// Reap runs storage's reaper at time now (unix ms) over every record: a record
// whose ReapTime (its earliest expiry among values that are not tombstones) is
// at or before now is rewritten with every value expired at now turned into its
// tombstone (vclock.Bury), its other values kept. It returns how many records it
// rewrote.
func (s *Store) Reap(now int64) (int, error) {
	n := 0
	for p := range s.q {
		if err := s.lockParts(p); err != nil {
			return n, err
		}
		var due []*stored
		for _, r := range s.parts[p] {
			due = append(due, r)
		}
		// The observer hears of the rewrites in hash order, as storage's reaper
		// (by time, then hash) would for records that died at one moment.
		slices.SortFunc(due, func(a, b *stored) int {
			return cmp.Or(cmp.Compare(a.hash, b.hash), bytes.Compare(a.key, b.key))
		})
		var err error
		for _, r := range due {
			var rec record.Record
			if rec, err = decode(r.enc); err != nil {
				break
			}
			if at := storage.ReapTime(rec); at == 0 || at > now {
				continue
			}
			next := rec // a typed part is kept as it is (issue 20's S3 reaps it)
			next.Str, _ = vclock.Bury(rec.Str, now)
			s.changed(p, r.hash, r.key, r, next)
			n++
		}
		s.mu.Unlock()
		s.unlockParts(p)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Get returns the record of key; found is false when there is none.
func (s *Store) Get(key []byte) (record.Record, bool, error) {
	if err := s.enter(); err != nil {
		return record.Record{}, false, err
	}
	defer s.mu.Unlock()
	r, ok := s.parts[s.PartitionOf(key)][string(key)]
	if !ok {
		return record.Record{}, false, nil
	}
	rec, err := decode(r.enc)
	return rec, err == nil, err
}

// Update atomically reads key's record, applies fn and stores the result.
func (s *Store) Update(key []byte, fn storage.UpdateFunc) (record.Record, error) {
	h := ring.KeyHash(key)
	p := ring.PartitionOfHash(h, s.q)
	if err := s.lockParts(p); err != nil {
		return record.Record{}, err
	}
	defer s.unlockParts(p)
	defer s.mu.Unlock()
	old := s.parts[p][string(key)]
	var cur record.Record
	if old != nil {
		var err error
		if cur, err = decode(old.enc); err != nil {
			return record.Record{}, err
		}
	}
	next, err := fn(cur, old != nil)
	if errors.Is(err, storage.ErrNoChange) {
		return cur, nil
	}
	if err != nil {
		return record.Record{}, err
	}
	s.changed(p, h, key, old, next)
	return next, nil
}

// UpdateNoSync is Update: every write is durable at once.
func (s *Store) UpdateNoSync(key []byte, fn storage.UpdateFunc) (record.Record, error) {
	return s.Update(key, fn)
}

// UpdateBatch is storage's: Update for each key in turn (a key may repeat: each
// write sees the one before), all under the keys' partitions' locks, each changed
// key stored once with its last result (the observer hears of it once); errs[i]
// is write i's outcome.
func (s *Store) UpdateBatch(keys [][]byte, fns []storage.UpdateFunc) []error {
	errs := make([]error, len(keys))
	fail := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	if len(keys) != len(fns) {
		// As storage: the whole batch is refused.
		return fail(errors.New("memstore: UpdateBatch: as many functions as keys needed"))
	}
	type pending struct {
		key     []byte
		p       int
		h       uint64
		old     *stored
		cur     record.Record // what the next write of the key sees
		found   bool
		changed bool
	}
	var changes []*pending
	byKey := map[string]*pending{}
	var ps []int
	for _, k := range keys {
		if byKey[string(k)] != nil {
			continue
		}
		h := ring.KeyHash(k)
		c := &pending{key: k, h: h, p: ring.PartitionOfHash(h, s.q)}
		byKey[string(k)] = c
		changes = append(changes, c)
		ps = append(ps, c.p)
	}
	slices.Sort(ps)
	ps = slices.Compact(ps)
	if err := s.lockParts(ps...); err != nil {
		return fail(err)
	}
	defer s.unlockParts(ps...)
	defer s.mu.Unlock()
	for _, c := range changes {
		c.old = s.parts[c.p][string(c.key)]
		if c.old != nil {
			rec, err := decode(c.old.enc)
			if err != nil {
				return fail(err)
			}
			c.cur, c.found = rec, true
		}
	}
	for i, k := range keys {
		c := byKey[string(k)]
		next, err := fns[i](c.cur, c.found)
		switch {
		case errors.Is(err, storage.ErrNoChange):
		case err != nil:
			errs[i] = err
		default:
			c.cur, c.found, c.changed = next, !next.Empty(), true
		}
	}
	for _, c := range changes {
		if c.changed {
			s.changed(c.p, c.h, c.key, c.old, c.cur)
		}
	}
	return errs
}

// Sync does nothing (beyond failing after Close).
func (s *Store) Sync() error {
	if err := s.enter(); err != nil {
		return err
	}
	s.mu.Unlock()
	return nil
}

// Count returns the number of records holding a non-tombstone value.
func (s *Store) Count() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, c := range s.counts {
		n += c
	}
	return n
}

// PartitionCount returns Count for partition p.
func (s *Store) PartitionCount(p int) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[p]
}

// Scan calls fn for the records of partition p whose hash is >= fromHash, in hash
// order, until fn returns false. It visits a snapshot taken when it starts.
func (s *Store) Scan(p int, fromHash uint64, fn func(h uint64, key []byte, rec record.Record) bool) error {
	var derr error
	err := s.ScanEncoded(p, fromHash, func(h uint64, key, enc []byte) bool {
		rec, err := decode(enc)
		if err != nil {
			derr = err
			return false
		}
		return fn(h, key, rec)
	})
	return cmp.Or(derr, err)
}

// ScanEncoded is Scan without decoding: fn gets each record's stored encoding (a
// copy). It visits a snapshot taken when it starts, so fn may call the store.
func (s *Store) ScanEncoded(p int, fromHash uint64, fn func(h uint64, key, enc []byte) bool) error {
	if err := s.enter(); err != nil {
		return err
	}
	if p < 0 || p >= s.q {
		s.mu.Unlock()
		return fmt.Errorf("memstore: partition %d out of range", p)
	}
	var snap []*stored
	for _, r := range s.parts[p] {
		if r.hash >= fromHash {
			snap = append(snap, r) // records are replaced, never modified: sharing is safe
		}
	}
	s.mu.Unlock()
	slices.SortFunc(snap, func(a, b *stored) int {
		return cmp.Or(cmp.Compare(a.hash, b.hash), bytes.Compare(a.key, b.key))
	})
	for _, r := range snap {
		if !fn(r.hash, bytes.Clone(r.key), bytes.Clone(r.enc)) {
			break
		}
	}
	return nil
}

// GetEncoded returns the stored encoding of key's record (a copy; nil when there
// is none).
func (s *Store) GetEncoded(key []byte) ([]byte, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	if r, ok := s.parts[s.PartitionOf(key)][string(key)]; ok {
		return bytes.Clone(r.enc), nil
	}
	return nil, nil
}

// Graves is GravesFrom from the oldest grave, with no partition refused, as
// storage.Store.Graves.
func (s *Store) Graves(before int64, limit int) ([]storage.Grave, error) {
	gs, _, err := s.GravesFrom(nil, before, limit, nil)
	return gs, err
}

// graveKey is storage's grave-index key of a record whose every value is a
// tombstone, the newest having died at t: 'g' | t (be64) | partition (be16) |
// hash (be64) | key. The walk is in the order of these keys and its cursors are
// such keys, as storage's are.
func graveKey(t int64, p int, h uint64, key []byte) []byte {
	b := make([]byte, 0, 1+8+2+8+len(key))
	b = append(b, 'g')
	b = binary.BigEndian.AppendUint64(b, uint64(t))
	b = binary.BigEndian.AppendUint16(b, uint16(p))
	b = binary.BigEndian.AppendUint64(b, h)
	return append(b, key...)
}

// gravesVisits is storage's bound on the index entries one GravesFrom call
// visits (gravesVisitFactor and gravesVisitMin there).
func gravesVisits(limit int) int { return max(limit*16, 1<<16) }

// GravesFrom is storage.Store.GravesFrom: it walks the graves (records whose
// every value is a tombstone) in grave-index order (death time, partition, hash,
// key) after cursor (nil: from the oldest; otherwise a cursor GravesFrom
// returned), stopping before the first that died at or after before (unix ms),
// and returns up to limit of them whose partition keep accepts (nil: all), with
// the cursor to go on from: the last grave visited when the walk stopped on the
// limit or on storage's visit bound, nil once it passed every grave before
// before. A limit <= 0 returns no grave and cursor unchanged. keep is called
// without the store's lock held. A grave that changed between the walk and the
// reading of its record is left out, as storage leaves out an index entry that
// has gone stale; so, unlike storage, whose index may hold entries it has not
// cleaned yet, a page stops short of limit only then.
func (s *Store) GravesFrom(cursor []byte, before int64, limit int, keep func(p int) bool) ([]storage.Grave, []byte, error) {
	if limit <= 0 {
		return nil, cursor, nil
	}
	type entry struct {
		ik, key []byte // index key, record key
		p       int
		t       int64
	}
	if err := s.enter(); err != nil {
		return nil, nil, err
	}
	hi := graveKey(before, 0, 0, nil)
	var idx []entry
	for p, part := range s.parts {
		for _, r := range part {
			if r.grave == 0 {
				continue
			}
			ik := graveKey(r.grave, p, r.hash, r.key)
			if cursor != nil && bytes.Compare(ik, cursor) <= 0 || bytes.Compare(ik, hi) >= 0 {
				continue
			}
			idx = append(idx, entry{ik: ik, key: bytes.Clone(r.key), p: p, t: r.grave})
		}
	}
	s.mu.Unlock()
	slices.SortFunc(idx, func(a, b entry) int { return bytes.Compare(a.ik, b.ik) })
	var found []entry
	var last []byte // the index key of the last grave visited
	more := false
	visits := gravesVisits(limit)
	for _, e := range idx {
		if len(found) == limit || visits == 0 {
			more = true // e was not visited: go on from the one before
			break
		}
		visits--
		if keep == nil || keep(e.p) {
			found = append(found, e)
		}
		last = e.ik
	}
	var next []byte
	if more {
		next = bytes.Clone(last)
	}
	if err := s.enter(); err != nil {
		return nil, nil, err
	}
	defer s.mu.Unlock()
	out := make([]storage.Grave, 0, len(found))
	for _, e := range found {
		if r := s.parts[e.p][string(e.key)]; r != nil && r.grave == e.t {
			out = append(out, storage.Grave{Key: e.key, Written: e.t, Record: bytes.Clone(r.enc)})
		}
	}
	return out, next, nil
}

// DeleteIf deletes key's record if its encoding is exactly enc, and reports
// whether it did (storage.Store.DeleteIf).
func (s *Store) DeleteIf(key, enc []byte) (bool, error) {
	deleted := false
	_, err := s.Update(key, func(cur record.Record, found bool) (record.Record, error) {
		if !found || !bytes.Equal(cur.AppendBinary(nil), enc) {
			return record.Record{}, storage.ErrNoChange
		}
		deleted = true
		return record.Record{}, nil
	})
	return deleted, err
}

// ExclusivePartition runs fn while no record of partition p changes (its writers
// wait); fn may read the store but must not write to partition p.
func (s *Store) ExclusivePartition(p int, fn func() error) error {
	if p < 0 || p >= s.q {
		return fmt.Errorf("memstore: partition %d out of range", p)
	}
	if err := s.lockParts(p); err != nil {
		return err
	}
	s.mu.Unlock()
	defer s.unlockParts(p)
	return fn()
}

// Epoch returns partition p's actor epoch (see storage.Store.Epoch).
func (s *Store) Epoch(p int) uint64 { return s.epochs[p].Load() }

// DropPartition deletes every record of partition p (not the hints) and raises its
// epoch.
func (s *Store) DropPartition(p int) error {
	_, err := s.DropPartitionIf(p, nil)
	return err
}

// DropPartitionIf is DropPartition if cond (nil: always), called with the
// partition's writers held out, returns true; it reports whether it dropped.
func (s *Store) DropPartitionIf(p int, cond func() bool) (bool, error) {
	if p < 0 || p >= s.q {
		return false, fmt.Errorf("memstore: partition %d out of range", p)
	}
	if err := s.lockParts(p); err != nil {
		return false, err
	}
	defer s.unlockParts(p)
	defer s.mu.Unlock()
	if cond != nil && !cond() {
		return false, nil
	}
	s.dropLocked(p, p)
	return true, nil
}

// dropLocked empties partitions first..last, raises their epochs and tells the
// observer; the caller holds their writer locks and mu.
func (s *Store) dropLocked(first, last int) {
	for p := first; p <= last; p++ {
		s.parts[p] = map[string]*stored{}
		s.counts[p] = 0
		s.epochs[p].Add(1)
	}
	if s.obs != nil {
		s.obs.PartitionsDropped(first, last)
	}
}

// DropAll deletes every record and every hint and raises every epoch.
func (s *Store) DropAll() error {
	all := make([]int, s.q)
	for p := range all {
		all[p] = p
	}
	if err := s.lockParts(all...); err != nil {
		return err
	}
	defer s.unlockParts(all...)
	defer s.mu.Unlock()
	s.dropLocked(0, s.q-1)
	s.hints = map[string]map[string][]byte{}
	s.nhints = 0
	return nil
}

// checkOwner rejects a hint owner storage cannot encode.
func checkOwner(owner string) error {
	if len(owner) < 1 || len(owner) > 255 {
		return fmt.Errorf("%w: got %d bytes", storage.ErrHintOwner, len(owner))
	}
	return nil
}

// UpdateHint atomically reads the hint for (owner, key), applies fn and stores the
// result, with Update's semantics.
func (s *Store) UpdateHint(owner string, key []byte, fn storage.UpdateFunc) (record.Record, error) {
	if err := checkOwner(owner); err != nil {
		return record.Record{}, err
	}
	if err := s.enter(); err != nil {
		return record.Record{}, err
	}
	defer s.mu.Unlock()
	hs := s.hints[owner]
	old, found := hs[string(key)]
	var cur record.Record
	if found {
		var err error
		if cur, err = decode(old); err != nil {
			return record.Record{}, err
		}
	}
	next, err := fn(cur, found)
	if errors.Is(err, storage.ErrNoChange) {
		return cur, nil
	}
	if err != nil {
		return record.Record{}, err
	}
	switch {
	case next.Empty() && !found:
	case next.Empty():
		delete(hs, string(key))
		if len(hs) == 0 {
			delete(s.hints, owner)
		}
		s.nhints--
	default:
		if hs == nil {
			hs = map[string][]byte{}
			s.hints[owner] = hs
		}
		hs[string(key)] = next.AppendBinary(nil)
		if !found {
			s.nhints++
		}
	}
	return next, nil
}

// GetHint returns the hint kept for owner's key; found is false when there is none.
func (s *Store) GetHint(owner string, key []byte) (record.Record, bool, error) {
	if err := checkOwner(owner); err != nil {
		return record.Record{}, false, err
	}
	if err := s.enter(); err != nil {
		return record.Record{}, false, err
	}
	defer s.mu.Unlock()
	enc, ok := s.hints[owner][string(key)]
	if !ok {
		return record.Record{}, false, nil
	}
	rec, err := decode(enc)
	return rec, err == nil, err
}

// HintOwners returns the owners that have at least one hint, sorted.
func (s *Store) HintOwners() ([]string, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	var owners []string
	for o := range s.hints {
		owners = append(owners, o)
	}
	slices.Sort(owners)
	return owners, nil
}

// ScanHints calls fn for owner's hints whose key is >= from, in key order, until fn
// returns false. It visits a snapshot taken when it starts, so fn may call the store.
func (s *Store) ScanHints(owner string, from []byte, fn func(key []byte, rec record.Record) bool) error {
	if err := checkOwner(owner); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	type hint struct {
		key string
		enc []byte
	}
	var snap []hint
	for k, enc := range s.hints[owner] {
		if k >= string(from) {
			snap = append(snap, hint{k, enc}) // encodings are replaced, never modified
		}
	}
	s.mu.Unlock()
	slices.SortFunc(snap, func(a, b hint) int { return cmp.Compare(a.key, b.key) })
	for _, h := range snap {
		rec, err := decode(h.enc)
		if err != nil {
			return err
		}
		if !fn([]byte(h.key), rec) {
			break
		}
	}
	return nil
}

// DeleteHint deletes owner's hint for key if it still encodes exactly like
// delivered, and reports whether it did.
func (s *Store) DeleteHint(owner string, key []byte, delivered record.Record) (bool, error) {
	if err := checkOwner(owner); err != nil {
		return false, err
	}
	if err := s.enter(); err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	hs := s.hints[owner]
	enc, ok := hs[string(key)]
	if !ok || !bytes.Equal(enc, delivered.AppendBinary(nil)) {
		return false, nil
	}
	delete(hs, string(key))
	if len(hs) == 0 {
		delete(s.hints, owner)
	}
	s.nhints--
	return true, nil
}

// DropHints deletes every hint kept for owner.
func (s *Store) DropHints(owner string) error {
	if err := checkOwner(owner); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	s.nhints -= int64(len(s.hints[owner]))
	delete(s.hints, owner)
	return nil
}

// HintCount returns the number of hints stored, for every owner.
func (s *Store) HintCount() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nhints
}
