package storage

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble"

	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/vclock"
)

// Sampling finds eviction candidates without any structure kept beside the
// records: a partition's records are one key range ordered by key hash, which
// is random, so the records after a random hash are a random sample, as
// Redis's dictGetSomeKeys takes consecutive buckets from a random start. The
// expiry index is ordered by expiry time, so the entries after a time are the
// keys expiring next. Sampling reads what is committed, without key locks: a
// candidate may change or go right after; whoever acts on one checks that the
// record still encodes as Candidate.Enc (storage's DeleteIf, coordinator's
// exact eviction).

// Candidate is one record found by sampling: what an evictor scores it by,
// and the exact encoding it would evict. Its slices are the caller's.
type Candidate struct {
	Key []byte
	P   int    // partition
	H   uint64 // key hash (ring.KeyHash)
	Enc []byte // the record's stored encoding
	// Written is the plain-GET winner's write time (vclock.Winner's
	// Timestamp, unix ms): the key's last access when nothing better is known.
	Written int64
	// Expiry is the plain-GET winner's expiry (unix ms), 0 when it has none
	// or is a tombstone: at or before now the key reads as absent.
	Expiry int64
	// ReapAt is the record's earliest expiry (ReapTime), 0 when none.
	ReapAt int64
	// Bytes is what the record counts for in Memory (recordSize: its data
	// key, encoding and index entries with their overheads): what removing
	// it frees.
	Bytes int64
	// Live says that some value of the record is not a tombstone (a grave
	// holds tombstones only, and only purge removes it).
	Live bool
}

// sampleVisitFactor bounds the index entries one SampleExpiring call visits,
// as a multiple of n (at least sampleVisitMin), so that a walk over entries
// keep refuses, or dangling ones, returns.
const (
	sampleVisitFactor = 64
	sampleVisitMin    = 4096
)

// SampleRecords calls fn with up to n records of partition p: the first at or
// after key hash fromHash, then the ones after it in hash order, wrapping
// around to the partition's start, each at most once; graves included
// (Candidate.Live). It stops early when fn returns false. Every record of p
// is reachable: it is the first one from its own hash.
func (s *Store) SampleRecords(p int, fromHash uint64, n int, fn func(Candidate) bool) (err error) {
	if n <= 0 {
		return nil
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit(&err)
	if p < 0 || p >= s.cfg.Partitions {
		return fmt.Errorf("storage: sample: partition %d out of range", p)
	}
	lo, hi := partitionBounds(p)
	start := dataKey(nil, p, fromHash, nil)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("storage: sample: %w", err)
	}
	defer it.Close()
	seen := 0
	visit := func() (bool, error) {
		_, h, key, err := parseDataKey(it.Key())
		if err != nil {
			return false, err
		}
		c, err := candidate(p, h, key, it.Key(), it.Value())
		if err != nil {
			return false, err
		}
		seen++
		more := false
		guest(func() { more = fn(c) })
		return more && seen < n, nil
	}
	return sweep(it, start, visit)
}

// sweep calls visit on it's entries from start to its upper bound, then,
// wrapping around, from its lower bound up to start, while visit returns
// true: each entry at most once.
func sweep(it *pebble.Iterator, start []byte, visit func() (bool, error)) (err error) {
	more := true
	for ok := it.SeekGE(start); more && ok; ok = it.Next() {
		if more, err = visit(); err != nil {
			return err
		}
	}
	if more {
		for ok := it.First(); more && ok && bytes.Compare(it.Key(), start) < 0; ok = it.Next() {
			if more, err = visit(); err != nil {
				return err
			}
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("storage: sample: %w", err)
	}
	return nil
}

// candidate describes the record enc of key (partition p, hash h, data key dk).
func candidate(p int, h uint64, key, dk, enc []byte) (Candidate, error) {
	rec, err := record.Decode(enc)
	if err != nil {
		return Candidate{}, fmt.Errorf("storage: record %q: %w", dk, err)
	}
	reap, grave := ReapTime(rec), GraveTime(rec)
	c := Candidate{
		Key:    bytes.Clone(key),
		P:      p,
		H:      h,
		Enc:    bytes.Clone(enc),
		ReapAt: reap,
		Bytes:  recordSize(len(dk), len(enc), reap, grave),
		Live:   !rec.Empty() && grave == 0,
	}
	if w, ok := vclock.Winner(rec.Str.Siblings()); ok {
		c.Written = w.Timestamp
		if !w.Tombstone {
			c.Expiry = w.Expiry
		}
	}
	return c, nil
}

// SampleExpiring calls fn with up to n records holding a value with an expiry
// (the volatile-* policies' keys), by the expiry index: those whose earliest
// expiry (ReapTime) is at or after fromTime (unix ms), soonest first, then,
// wrapping around, the ones before it. From the index's first time
// (ExpiryBounds) it yields the keys expiring next, in order: what
// volatile-ttl evicts (expired ones first, if the reaper has not reached
// them yet). Entries of partitions keep refuses (nil: every one) cost no
// record read; entries whose record is gone or changed (a dropped
// partition's: the reaper cleans them when due) are skipped. One call visits
// a bounded number of entries, so it may yield fewer than n when most are
// refused or dangling. It stops early when fn returns false.
func (s *Store) SampleExpiring(fromTime int64, n int, keep func(p int) bool, fn func(Candidate) bool) (err error) {
	if n <= 0 {
		return nil
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit(&err)
	lo, hi := []byte{spaceExpiry}, []byte{spaceExpiry + 1}
	start := expiryKey(nil, max(fromTime, 0), 0, 0, nil)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("storage: sample expiring: %w", err)
	}
	defer it.Close()
	seen, visits := 0, max(n*sampleVisitFactor, sampleVisitMin)
	visit := func() (bool, error) {
		visits--
		at, p, h, key, err := parseTimeIndexKey(it.Key(), spaceExpiry)
		if err != nil {
			return false, err
		}
		ok := keep == nil
		if !ok {
			guest(func() { ok = keep(p) })
		}
		if !ok || p >= s.cfg.Partitions {
			return visits > 0, nil
		}
		dk := dataKey(nil, p, h, key)
		enc, found, err := s.getEncoded(dk)
		if err != nil || !found {
			return visits > 0, err
		}
		c, err := candidate(p, h, key, dk, enc)
		if err != nil || c.ReapAt != at {
			return visits > 0, err // dangling: the record changed or went
		}
		seen++
		more := false
		guest(func() { more = fn(c) })
		return more && seen < n && visits > 0, nil
	}
	return sweep(it, start, visit)
}

// ExpiryBounds returns the times (unix ms) of the expiry index's first and
// last entries, dangling ones included; ok is false when it is empty. An
// evictor of a volatile policy draws SampleExpiring's fromTime between them
// (biased towards keys after a sparse stretch of times), and volatile-ttl
// starts at first.
func (s *Store) ExpiryBounds() (first, last int64, ok bool, err error) {
	if err := s.enter(); err != nil {
		return 0, 0, false, err
	}
	defer s.exit(&err)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{spaceExpiry}, UpperBound: []byte{spaceExpiry + 1}})
	if err != nil {
		return 0, 0, false, fmt.Errorf("storage: expiry bounds: %w", err)
	}
	defer it.Close()
	if !it.First() {
		return 0, 0, false, it.Error()
	}
	if first, _, _, _, err = parseTimeIndexKey(it.Key(), spaceExpiry); err != nil {
		return 0, 0, false, err
	}
	if !it.Last() {
		return 0, 0, false, it.Error()
	}
	if last, _, _, _, err = parseTimeIndexKey(it.Key(), spaceExpiry); err != nil {
		return 0, 0, false, err
	}
	return first, last, true, nil
}
