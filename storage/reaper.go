package storage

import (
	"errors"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/dynakv/dynakv/vclock"
)

func (s *Store) reapLoop() {
	s.every(s.cfg.ReapInterval, func() {
		if _, err := s.Reap(s.cfg.ReapBatch); err != nil && !errors.Is(err, ErrClosed) {
			s.cfg.Logger.Warn("reaping expired records", "err", err)
		}
	})
}

// every runs fn every d until the store's stopper stops or the engine fails: the
// body of its background workers.
func (s *Store) every(d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-s.stopper.ShouldStop():
			return
		case <-s.failed:
			return
		case <-t.C:
			fn()
		}
	}
}

// Reap rewrites up to limit records holding a value (not a tombstone) whose
// expiry has passed, earliest expiry first (the expiry index, at ReapTime), and
// returns how many it rewrote. Each expired value becomes its
// vclock.Value.Tomb, keeping its dot, so the record stays causal history: what
// the expired value superseded stays superseded on this replica and, through
// anti-entropy, on every other. Values that have not expired, live or expiring
// later, stay; the record is indexed again at its next expiry (ReapTime). The
// conversion is a function of the record and the time alone, and a value's
// tombstone of the value alone, so replicas holding the same value bury it to the
// same bytes, as tombstone purge needs; a record left with tombstones only sits
// in the grave index and is purged by the tombstone rule. Each record is
// re-checked under its key lock, so a write that changed the key in the meantime
// keeps what it wrote.
func (s *Store) Reap(limit int) (_ int, err error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.exit(&err)
	now := s.cfg.Now().UnixMilli()
	hi := expiryKey(nil, now+1, 0, 0, nil)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{spaceExpiry}, UpperBound: hi})
	if err != nil {
		return 0, err
	}
	type due struct {
		reapAt int64
		p      int
		h      uint64
		key    []byte
	}
	var batch []due
	for it.First(); it.Valid() && len(batch) < limit; it.Next() {
		at, p, h, key, err := parseTimeIndexKey(it.Key(), spaceExpiry)
		if err != nil {
			it.Close()
			return 0, err
		}
		batch = append(batch, due{at, p, h, append([]byte(nil), key...)})
	}
	if err := it.Close(); err != nil {
		return 0, err
	}
	n := 0
	for _, d := range batch {
		reaped, err := s.reapOne(d.reapAt, d.p, d.h, d.key, now)
		if err != nil {
			return n, err
		}
		if reaped {
			n++
		}
	}
	s.reaped.Add(int64(n))
	return n, nil
}

func (s *Store) reapOne(at int64, p int, h uint64, key []byte, now int64) (bool, error) {
	mu := s.lock(h)
	mu.Lock()
	defer mu.Unlock()
	dk := dataKey(nil, p, h, key)
	cur, curEnc, found, err := s.load(dk)
	if err != nil {
		return false, err
	}
	if !found || ReapTime(cur) != at {
		// Dangling index entry (dropped partition) or the record changed: the write
		// that changed it maintained its own index entry.
		return false, s.db.Delete(expiryKey(nil, at, p, h, key), pebble.NoSync)
	}
	if at > now {
		return false, nil
	}
	// Only the string layer expires for now; a typed record's other parts are
	// kept as they are (S3 reaps typed layers, 1.6).
	str, changed := vclock.Bury(cur.Str, now)
	next := cur
	next.Str = str
	if !changed {
		// Not reachable (ReapTime(cur) <= now means a value expired); drop the
		// entry rather than loop on it.
		return false, s.db.Delete(expiryKey(nil, at, p, h, key), pebble.NoSync)
	}
	return true, s.write(dk, p, h, key, cur, curEnc, true, next, s.wo)
}
