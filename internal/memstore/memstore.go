// Package memstore is an in-memory replica store for tests: a map-based,
// mutex-guarded fake of storage.Store that implements coordinator.Store and
// repair.HintStore (the checks are in memstore_test.go, since coordinator's own
// tests import this package).
//
// It keeps storage.Store's semantics, which TestAgreesWithStorage checks against
// the real thing on random operation sequences:
//
//   - Update and UpdateHint are atomic read-merge-writes: an UpdateFunc returning
//     storage.ErrNoChange leaves the record (and returns it), an empty result
//     deletes it, any other error aborts and is returned.
//   - A key's partition is storage.Hash(key) & (Q-1); Scan visits one partition in
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
//   - Records are kept encoded (vclock.Set.AppendBinary) and decoded on every read,
//     so callers never share memory with the store, as with Pebble.
//   - Epoch(p) is 0 until partition p is dropped and every drop raises it by one
//     (DropAll raises all), as storage's epochs; it may be read inside an
//     UpdateFunc (it takes no lock) and does not change while one runs.
//
// Every write is "durable" when it returns: a simulated crash keeps the Store and
// a restart reuses it. There are no goroutines and no clocks, so a Store works
// inside testing/synctest bubbles. UpdateFunc callbacks run under the store's lock
// and must not call the store. A Store is safe for concurrent use.
package memstore

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/vclock"
)

// ErrClosed is returned by every call after Close.
var ErrClosed = errors.New("memstore: closed")

// record is one stored record.
type record struct {
	key  []byte
	hash uint64
	enc  []byte // vclock.Set binary
	live bool   // its plain-GET winner is not a tombstone (counted)
}

// Store is an in-memory replica store.
type Store struct {
	q      int
	mu     sync.Mutex
	parts  []map[string]*record         // per partition, by key
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
	s := &Store{q: partitions, parts: make([]map[string]*record, partitions),
		hints: map[string]map[string][]byte{}, counts: make([]int64, partitions),
		epochs: make([]atomic.Uint64, partitions)}
	for i := range s.parts {
		s.parts[i] = map[string]*record{}
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
func (s *Store) PartitionOf(key []byte) int { return int(storage.Hash(key) & uint64(s.q-1)) }

func decode(enc []byte) (vclock.Set, error) {
	rec, err := vclock.DecodeSet(enc)
	if err != nil {
		return vclock.Set{}, fmt.Errorf("memstore: %w", err)
	}
	return rec, nil
}

// Reap runs storage's reaper at time now (unix ms) over every record: a record
// whose ReapTime (its earliest expiry among values that are not tombstones) is
// at or before now is rewritten with every value expired at now turned into its
// tombstone (vclock.Bury), its other values kept. It returns how many records it
// rewrote.
func (s *Store) Reap(now int64) (int, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	n := 0
	for p, part := range s.parts {
		for k, r := range part {
			rec, err := decode(r.enc)
			if err != nil {
				return n, err
			}
			if at := storage.ReapTime(rec); at == 0 || at > now {
				continue
			}
			next, _ := vclock.Bury(rec, now)
			nr := &record{key: r.key, hash: r.hash, enc: next.AppendBinary(nil), live: storage.Counts(next)}
			part[k] = nr
			switch {
			case r.live && !nr.live:
				s.counts[p]--
			case !r.live && nr.live:
				s.counts[p]++
			}
			n++
		}
	}
	return n, nil
}

// Get returns the record of key; found is false when there is none.
func (s *Store) Get(key []byte) (vclock.Set, bool, error) {
	if err := s.enter(); err != nil {
		return vclock.Set{}, false, err
	}
	defer s.mu.Unlock()
	r, ok := s.parts[s.PartitionOf(key)][string(key)]
	if !ok {
		return vclock.Set{}, false, nil
	}
	rec, err := decode(r.enc)
	return rec, err == nil, err
}

// Update atomically reads key's record, applies fn and stores the result.
func (s *Store) Update(key []byte, fn storage.UpdateFunc) (vclock.Set, error) {
	if err := s.enter(); err != nil {
		return vclock.Set{}, err
	}
	defer s.mu.Unlock()
	h := storage.Hash(key)
	p := int(h & uint64(s.q-1))
	part := s.parts[p]
	old, found := part[string(key)]
	var cur vclock.Set
	if found {
		var err error
		if cur, err = decode(old.enc); err != nil {
			return vclock.Set{}, err
		}
	}
	next, err := fn(cur, found)
	if errors.Is(err, storage.ErrNoChange) {
		return cur, nil
	}
	if err != nil {
		return vclock.Set{}, err
	}
	if found && old.live {
		s.counts[p]--
	}
	if next.Empty() {
		delete(part, string(key))
		return next, nil
	}
	r := &record{key: bytes.Clone(key), hash: h, enc: next.AppendBinary(nil), live: storage.Counts(next)}
	part[string(key)] = r
	if r.live {
		s.counts[p]++
	}
	return next, nil
}

// UpdateNoSync is Update: every write is durable at once.
func (s *Store) UpdateNoSync(key []byte, fn storage.UpdateFunc) (vclock.Set, error) {
	return s.Update(key, fn)
}

// UpdateBatch is Update for each key in turn (a key may repeat: each write sees
// the one before); errs[i] is key i's outcome.
func (s *Store) UpdateBatch(keys [][]byte, fns []storage.UpdateFunc) []error {
	errs := make([]error, len(keys))
	if len(keys) != len(fns) {
		// As storage: the whole batch is refused.
		for i := range errs {
			errs[i] = errors.New("memstore: UpdateBatch: as many functions as keys needed")
		}
		return errs
	}
	for i, k := range keys {
		_, errs[i] = s.Update(k, fns[i])
	}
	return errs
}

// SyncWAL does nothing (beyond failing after Close).
func (s *Store) SyncWAL() error {
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
func (s *Store) Scan(p int, fromHash uint64, fn func(h uint64, key []byte, rec vclock.Set) bool) error {
	if err := s.enter(); err != nil {
		return err
	}
	if p < 0 || p >= s.q {
		s.mu.Unlock()
		return fmt.Errorf("memstore: partition %d out of range", p)
	}
	var snap []*record
	for _, r := range s.parts[p] {
		if r.hash >= fromHash {
			snap = append(snap, r) // records are replaced, never modified: sharing is safe
		}
	}
	s.mu.Unlock()
	slices.SortFunc(snap, func(a, b *record) int {
		return cmp.Or(cmp.Compare(a.hash, b.hash), bytes.Compare(a.key, b.key))
	})
	for _, r := range snap {
		rec, err := decode(r.enc)
		if err != nil {
			return err
		}
		if !fn(r.hash, bytes.Clone(r.key), rec) {
			break
		}
	}
	return nil
}

// Epoch returns partition p's actor epoch (see storage.Store.Epoch).
func (s *Store) Epoch(p int) uint64 { return s.epochs[p].Load() }

// DropPartition deletes every record of partition p (not the hints) and raises its
// epoch.
func (s *Store) DropPartition(p int) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	s.parts[p] = map[string]*record{}
	s.counts[p] = 0
	s.epochs[p].Add(1)
	return nil
}

// DropAll deletes every record and every hint and raises every epoch.
func (s *Store) DropAll() error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	for p := range s.parts {
		s.parts[p] = map[string]*record{}
		s.counts[p] = 0
		s.epochs[p].Add(1)
	}
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
func (s *Store) UpdateHint(owner string, key []byte, fn storage.UpdateFunc) (vclock.Set, error) {
	if err := checkOwner(owner); err != nil {
		return vclock.Set{}, err
	}
	if err := s.enter(); err != nil {
		return vclock.Set{}, err
	}
	defer s.mu.Unlock()
	hs := s.hints[owner]
	old, found := hs[string(key)]
	var cur vclock.Set
	if found {
		var err error
		if cur, err = decode(old); err != nil {
			return vclock.Set{}, err
		}
	}
	next, err := fn(cur, found)
	if errors.Is(err, storage.ErrNoChange) {
		return cur, nil
	}
	if err != nil {
		return vclock.Set{}, err
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
func (s *Store) GetHint(owner string, key []byte) (vclock.Set, bool, error) {
	if err := checkOwner(owner); err != nil {
		return vclock.Set{}, false, err
	}
	if err := s.enter(); err != nil {
		return vclock.Set{}, false, err
	}
	defer s.mu.Unlock()
	enc, ok := s.hints[owner][string(key)]
	if !ok {
		return vclock.Set{}, false, nil
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
func (s *Store) ScanHints(owner string, from []byte, fn func(key []byte, rec vclock.Set) bool) error {
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
func (s *Store) DeleteHint(owner string, key []byte, delivered vclock.Set) (bool, error) {
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
