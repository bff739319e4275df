package storage

import (
	"bytes"
	"fmt"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble"

	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/ring"
)

// Hints are the records a fallback keeps for an owner it could not reach (hinted
// handoff). They live in their own key space, 'h' | len(owner) | owner | key, so
// Count, Scan, the partition drops and the reaper never see them; only DropAll
// (FLUSHALL) and DropHints delete them wholesale. A hint's lock is the stripe of the
// hash of its Pebble key, so a hint and the fallback's own record of the same key do
// not contend.

func (s *Store) hintLock(hk []byte) *sync.Mutex { return s.lock(ring.KeyHash(hk)) }

// UpdateHint atomically reads the hint for (owner, key), applies fn and stores the
// result durably, with the same durability as Update (see SyncMode).
// An empty result deletes the hint; ErrNoChange leaves it as it is. It returns the
// record as stored (the current one if fn returned ErrNoChange). owner must be 1 to
// 255 bytes (ErrHintOwner).
func (s *Store) UpdateHint(owner string, key []byte, fn UpdateFunc) (_ record.Record, err error) {
	if err := checkOwner(owner); err != nil {
		return record.Record{}, err
	}
	if err := s.enter(); err != nil {
		return record.Record{}, err
	}
	defer s.exit(&err)
	hk := hintKey(nil, owner, key)
	mu := s.hintLock(hk)
	mu.Lock()
	defer mu.Unlock()
	cur, curEnc, found, next, write, err := s.modify(hk, fn)
	if err != nil || !write {
		return cur, err
	}
	switch {
	case next.Empty() && !found:
		// Nothing stored, nothing to store.
	case next.Empty():
		if err := s.db.Delete(hk, s.wo); err != nil {
			return record.Record{}, fmt.Errorf("storage: delete hint: %w", err)
		}
		s.hints.Add(-1)
		s.mem.hints.Add(-hintSize(len(hk), len(curEnc)))
	default:
		enc := next.AppendBinary(nil)
		if err := s.db.Set(hk, enc, s.wo); err != nil {
			return record.Record{}, fmt.Errorf("storage: write hint: %w", err)
		}
		size := hintSize(len(hk), len(enc))
		if found {
			size -= hintSize(len(hk), len(curEnc))
		} else {
			s.hints.Add(1)
		}
		s.mem.hints.Add(size)
	}
	return next, nil
}

// GetHint returns the hint kept for owner's key; found is false when there is none.
func (s *Store) GetHint(owner string, key []byte) (rec record.Record, found bool, err error) {
	if err := checkOwner(owner); err != nil {
		return record.Record{}, false, err
	}
	if err := s.enter(); err != nil {
		return record.Record{}, false, err
	}
	defer s.exit(&err)
	return s.get(hintKey(nil, owner, key))
}

// ScanHints calls fn for owner's hints whose key is >= from, in key order, until fn
// returns false. The key and record passed to fn are only valid during the call. fn
// may call the store, DeleteHint included (the replay loop deletes what the owner
// acknowledged as it goes).
func (s *Store) ScanHints(owner string, from []byte, fn func(key []byte, rec record.Record) bool) (err error) {
	if err := checkOwner(owner); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit(&err)
	_, hi := hintBounds(owner)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: hintKey(nil, owner, from), UpperBound: hi})
	if err != nil {
		return fmt.Errorf("storage: scan hints: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		_, key, err := parseHintKey(it.Key())
		if err != nil {
			return err
		}
		rec, err := record.Decode(it.Value())
		if err != nil {
			return fmt.Errorf("storage: hint %q: %w", it.Key(), err)
		}
		more := false
		guest(func() { more = fn(key, rec) })
		if !more {
			break
		}
	}
	return it.Error()
}

// DeleteHint deletes owner's hint for key if the stored record still encodes exactly
// like delivered, the record the owner acknowledged, and reports whether it deleted
// it. A hint that was merged further while it was being delivered is kept for the
// next replay. The comparison and the delete happen under the key's lock.
func (s *Store) DeleteHint(owner string, key []byte, delivered record.Record) (_ bool, err error) {
	if err := checkOwner(owner); err != nil {
		return false, err
	}
	if err := s.enter(); err != nil {
		return false, err
	}
	defer s.exit(&err)
	hk := hintKey(nil, owner, key)
	mu := s.hintLock(hk)
	mu.Lock()
	defer mu.Unlock()
	cur, curEnc, found, err := s.load(hk)
	if err != nil || !found {
		return false, err
	}
	if !bytes.Equal(cur.AppendBinary(nil), delivered.AppendBinary(nil)) {
		return false, nil
	}
	if err := s.db.Delete(hk, s.wo); err != nil {
		return false, fmt.Errorf("storage: delete hint: %w", err)
	}
	s.hints.Add(-1)
	s.mem.hints.Add(-hintSize(len(hk), len(curEnc)))
	return true, nil
}

// HintOwners returns the owners that have at least one hint, sorted. It visits one
// hint per owner: after reading an owner it seeks past the owner's key range.
func (s *Store) HintOwners() (_ []string, err error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit(&err)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{spaceHint}, UpperBound: []byte{spaceHint + 1}})
	if err != nil {
		return nil, fmt.Errorf("storage: hint owners: %w", err)
	}
	defer it.Close()
	var owners []string
	for valid := it.First(); valid; {
		owner, _, err := parseHintKey(it.Key())
		if err != nil {
			return nil, err
		}
		owners = append(owners, owner)
		_, next := hintBounds(owner)
		valid = it.SeekGE(next)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("storage: hint owners: %w", err)
	}
	// Pebble orders owners by length first (the length byte leads).
	slices.Sort(owners)
	return owners, nil
}

// HintCount returns the number of hints stored, for every owner. Their bytes
// are Memory().Hints.
func (s *Store) HintCount() int64 { return s.hints.Load() }

// DropHints deletes every hint kept for owner: for an owner removed from the
// cluster, once its hints were delivered to the new replicas. It holds every key lock
// while it counts the owner's hints and deletes their range, so that HintCount and
// the hint bytes stay exact; it is meant for that rare administrative step, not for
// a hot path.
func (s *Store) DropHints(owner string) (err error) {
	if err := checkOwner(owner); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit(&err)
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	for i := range s.locks {
		s.locks[i].Lock()
	}
	defer func() {
		for i := range s.locks {
			s.locks[i].Unlock()
		}
	}()
	lo, hi := hintBounds(owner)
	n, size, err := s.countHints(lo, hi)
	if err != nil || n == 0 {
		return err
	}
	if err := s.db.DeleteRange(lo, hi, s.wo); err != nil {
		return fmt.Errorf("storage: drop hints: %w", err)
	}
	s.hints.Add(-n)
	s.mem.hints.Add(-size)
	return nil
}

// loadHintCount counts the hint space, and its bytes, at Open.
func (s *Store) loadHintCount() error {
	n, size, err := s.countHints([]byte{spaceHint}, []byte{spaceHint + 1})
	if err != nil {
		return err
	}
	s.hints.Store(n)
	s.mem.hints.Store(size)
	return nil
}

// countHints counts the hint keys in [lo, hi), checking each is well formed, and
// sums their sizes (hintSize).
func (s *Store) countHints(lo, hi []byte) (n, size int64, err error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, 0, fmt.Errorf("storage: count hints: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if _, _, err := parseHintKey(it.Key()); err != nil {
			return 0, 0, err
		}
		n++
		size += hintSize(len(it.Key()), len(it.Value()))
	}
	if err := it.Error(); err != nil {
		return 0, 0, fmt.Errorf("storage: count hints: %w", err)
	}
	return n, size, nil
}
