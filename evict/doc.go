// Package evict is the pure core of maxmemory eviction: Redis's eight
// maxmemory policies, its 24-bit LRU clock and 8-bit logarithmic LFU counter,
// a lossy table of per-key access words (Table), and the eviction pool that
// keeps the best candidates found by sampling (Pool). It does no I/O, starts
// no goroutine and reads no clock: times are unix milliseconds passed in by
// the caller, and randomness comes from a seed the caller chooses.
//
// What is matched from Redis (src/evict.c, 7.x; cited next to each function):
// getLRUClock and estimateObjectIdleTime (24-bit clock in seconds, one wrap
// allowed), LFUGetTimeInMinutes, LFUTimeElapsed, LFULogIncr, LFUDecrAndReturn
// and updateLFU (db.c) with LFU_INIT_VAL 5, lfu-log-factor 10 and
// lfu-decay-time 1 by default, and evictionPoolPopulate's pool of EVPOOL_SIZE
// 16 candidates ordered by score (idle time, 255 minus the decayed counter,
// or ULLONG_MAX minus the expiry time).
//
// Invariants:
//
//   - A word of a Table is 0 (empty) or tag<<24 | payload, with a tag of 8
//     bits that is never 0; the payload is an LRU stamp (LRUClock) or an LFU
//     word (minutes<<8 | counter), by the table's Kind, never a mix.
//   - A key hash's words live only in its bucket (4 slots chosen by the hash's
//     middle bits: the low 16 bits are the storage partition); a lookup finds
//     the first slot holding its tag. The table is lossy: two keys of a bucket
//     with the same tag share a word, and a key whose word was replaced by a
//     busier bucket reads as unknown (callers fall back to the record's write
//     time). It never reports a word for a key that was never touched or learnt
//     unless a key of the same bucket and tag was.
//   - Table is safe for concurrent use: every change of a word is one
//     compare-and-swap from the value it was computed from, so an access is
//     either recorded whole or lost, never torn. Touch writes nothing when
//     the word would not change (a hot key read many times a second costs
//     loads only).
//   - Pool is not safe for concurrent use: it belongs to the one evictor
//     that fills and drains it. Its entries are in ascending score order, at
//     most one per key, the best candidate last.
package evict
