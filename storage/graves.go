package storage

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble"

	"github.com/dynakv/dynakv/vclock"
)

// Graves are the records whose every value is a tombstone (DELs, and expired values
// the reaper buried). They are indexed by the time their newest value died ('g' |
// time | partition | hash | key; see graveTime) so that tombstone
// purge (repair.Purger) finds the ones older than the grace period without a scan.
// Nothing here decides whether a tombstone may go: DeleteIf removes a record only
// if it is still exactly the one the caller checked.

// Grave is one record of tombstones found by Graves.
type Grave struct {
	Key     []byte
	Written int64  // when the newest tombstone died (graveTime), unix ms
	Record  []byte // the record's encoding
}

// Graves returns up to limit records of tombstones that died before before (unix
// ms), oldest first. Index entries whose record changed meanwhile are cleaned.
func (s *Store) Graves(before int64, limit int) ([]Grave, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{spaceGrave},
		UpperBound: graveKey(nil, before, 0, 0, nil),
	})
	if err != nil {
		return nil, fmt.Errorf("storage: graves: %w", err)
	}
	type entry struct {
		t   int64
		p   int
		h   uint64
		key []byte
	}
	var found []entry
	for it.First(); it.Valid() && len(found) < limit; it.Next() {
		t, p, h, key, err := parseTimeIndexKey(it.Key(), spaceGrave)
		if err != nil {
			it.Close()
			return nil, err
		}
		found = append(found, entry{t, p, h, bytes.Clone(key)})
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("storage: graves: %w", err)
	}
	out := make([]Grave, 0, len(found))
	for _, e := range found {
		g, ok, err := s.grave(e.t, e.p, e.h, e.key)
		if err != nil {
			return out, err
		}
		if ok {
			out = append(out, g)
		}
	}
	return out, nil
}

// grave re-reads one indexed grave under its key lock and drops the index entry if
// the record is no longer a grave of that time.
func (s *Store) grave(t int64, p int, h uint64, key []byte) (Grave, bool, error) {
	mu := s.lock(h)
	mu.Lock()
	defer mu.Unlock()
	rec, found, err := s.get(dataKey(nil, p, h, key))
	if err != nil {
		return Grave{}, false, err
	}
	if !found || graveTime(rec) != t {
		if err := s.db.Delete(graveKey(nil, t, p, h, key), pebble.NoSync); err != nil {
			return Grave{}, false, fmt.Errorf("storage: clean grave index: %w", err)
		}
		return Grave{}, false, nil
	}
	return Grave{Key: key, Written: t, Record: rec.AppendBinary(nil)}, true, nil
}

// DeleteIf deletes key's record if its encoding is exactly enc, and reports
// whether it did: a compare-and-delete, so a write that changed the record since
// enc was read keeps it.
func (s *Store) DeleteIf(key, enc []byte) (bool, error) {
	deleted := false
	_, err := s.Update(key, func(cur vclock.Set, found bool) (vclock.Set, error) {
		if !found || !bytes.Equal(cur.AppendBinary(nil), enc) {
			return vclock.Set{}, ErrNoChange
		}
		deleted = true
		return vclock.Set{}, nil
	})
	return deleted, err
}
