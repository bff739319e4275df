package storage

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble"

	"github.com/dynakv/dynakv/record"
)

// Graves are the records whose every value is a tombstone (DELs, and expired values
// the reaper buried). They are indexed by the time their newest value died ('g' |
// time | partition | hash | key; see GraveTime) so that tombstone
// purge (repair.Purger) finds the ones older than the grace period without a scan.
// Nothing here decides whether a tombstone may go: DeleteIf removes a record only
// if it is still exactly the one the caller checked.

// Grave is one record of tombstones found by Graves.
type Grave struct {
	Key     []byte
	Written int64  // when the newest tombstone died (GraveTime), unix ms
	Record  []byte // the record's encoding
}

// Graves returns up to limit records of tombstones that died before before (unix
// ms), oldest first. Index entries whose record changed meanwhile are cleaned.
func (s *Store) Graves(before int64, limit int) ([]Grave, error) {
	gs, _, err := s.GravesFrom(nil, before, limit, nil)
	return gs, err
}

// gravesVisitFactor bounds the index entries one GravesFrom call visits, as a
// multiple of its limit (at least gravesVisitMin), so that a walk over many
// entries keep refuses returns to its caller now and then.
const (
	gravesVisitFactor = 16
	gravesVisitMin    = 1 << 16
)

// GravesFrom walks the grave index: it returns, oldest first, up to limit
// records of tombstones that died before before (unix ms), among the index
// entries after cursor (nil: from the oldest) whose partition keep accepts (nil:
// every one), and the cursor to go on from, nil once the walk has passed every
// entry before before. Entries keep refuses cost no record read, so a caller
// that decides only some partitions (tombstone purge: those this node is the
// first owner of) is not held up by the others' graves. One call visits a
// bounded number of entries and may return no grave with a cursor to go on
// from. Index entries whose record changed meanwhile are cleaned.
func (s *Store) GravesFrom(cursor []byte, before int64, limit int, keep func(p int) bool) (_ []Grave, _ []byte, err error) {
	if limit <= 0 {
		return nil, cursor, nil
	}
	if err := s.enter(); err != nil {
		return nil, nil, err
	}
	defer s.exit(&err)
	lo := []byte{spaceGrave}
	if cursor != nil {
		lo = append(bytes.Clone(cursor), 0) // the first key after cursor
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: graveKey(nil, before, 0, 0, nil)})
	if err != nil {
		return nil, nil, fmt.Errorf("storage: graves: %w", err)
	}
	type entry struct {
		t   int64
		p   int
		h   uint64
		key []byte
	}
	var found []entry
	var last []byte // the last entry visited
	more := false
	visits := max(limit*gravesVisitFactor, gravesVisitMin)
	for it.First(); it.Valid(); it.Next() {
		if len(found) == limit || visits == 0 {
			more = true // this entry was not visited: go on from the one before
			break
		}
		visits--
		t, p, h, key, err := parseTimeIndexKey(it.Key(), spaceGrave)
		if err != nil {
			it.Close()
			return nil, nil, err
		}
		ok := keep == nil
		if !ok {
			guest(func() { ok = keep(p) })
		}
		if ok {
			found = append(found, entry{t, p, h, bytes.Clone(key)})
		}
		last = append(last[:0], it.Key()...)
	}
	if err := it.Close(); err != nil {
		return nil, nil, fmt.Errorf("storage: graves: %w", err)
	}
	var next []byte
	if more {
		next = last
	}
	out := make([]Grave, 0, len(found))
	for _, e := range found {
		g, ok, err := s.grave(e.t, e.p, e.h, e.key)
		if err != nil {
			return out, nil, err
		}
		if ok {
			out = append(out, g)
		}
	}
	return out, next, nil
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
	if !found || GraveTime(rec) != t {
		if err := s.db.Delete(graveKey(nil, t, p, h, key), pebble.NoSync); err != nil {
			return Grave{}, false, fmt.Errorf("storage: clean grave index: %w", err)
		}
		return Grave{}, false, nil
	}
	return Grave{Key: key, Written: t, Record: rec.AppendBinary(nil)}, true, nil
}

// DeleteIf deletes key's record if its encoding is exactly enc, and reports
// whether it did: a compare-and-delete, so a write that changed the record since
// enc was read keeps it. The delete is not synced on its own (a later synced
// write or Sync makes it durable): tombstone purge deletes many records at
// once, and a delete a crash loses only brings the tombstone back, which purge
// deletes again later.
func (s *Store) DeleteIf(key, enc []byte) (bool, error) {
	deleted := false
	_, err := s.UpdateNoSync(key, func(cur record.Record, found bool) (record.Record, error) {
		if !found || !bytes.Equal(cur.AppendBinary(nil), enc) {
			return record.Record{}, ErrNoChange
		}
		deleted = true
		return record.Record{}, nil
	})
	return deleted, err
}
