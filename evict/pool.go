package evict

import (
	"bytes"
	"math"
)

// Facts is what scoring knows of one sampled key.
type Facts struct {
	// Access is the key's payload in the access table (Table.Lookup), valid
	// when Known.
	Access uint32
	Known  bool
	// Written is when the key's plain-GET winner was written (unix ms): the
	// access time of a key the table does not know (its last write), as the
	// LRU stamp and LFU time Redis gives a new object.
	Written int64
	// ReapAt is the key's earliest expiry (unix ms), 0 when it has none.
	ReapAt int64
	// Expired says that the key's plain-GET winner has expired (it reads as
	// absent already): the best candidate whatever the policy.
	Expired bool
}

// ScoreExpired is the score of an expired key: above every other.
const ScoreExpired = math.MaxUint64

// Score returns key f's score under policy p at now (unix ms), higher meaning
// a better candidate, as evictionPoolPopulate's "idle": the idle time in ms
// (LRU), 255 minus the counter decayed with decayTime (LFU), or
// ULLONG_MAX minus the expiry time (volatile-ttl: the sooner the better). A
// key the table does not know counts as accessed when written, with an LFU
// counter of LFUInitVal then. Random policies and noeviction score 0.
func (p Policy) Score(f Facts, now int64, decayTime int) uint64 {
	if f.Expired {
		return ScoreExpired
	}
	written := min(f.Written, now) // a write stamped by a clock ahead of ours is recent
	switch p.Kind() {
	case KindLRU:
		clock := LRUClock(now)
		stamp := LRUClock(written)
		if f.Known {
			stamp = f.Access
			if lruAhead(clock, stamp) {
				stamp = clock
			}
		}
		return uint64(IdleTime(clock, stamp))
	case KindLFU:
		mins := LFUMinutes(now)
		w := LFUWord(LFUMinutes(written), LFUInitVal)
		if f.Known {
			w = f.Access
			if lfuAhead(mins, w>>8) {
				w = LFUWord(mins, LFUCounter(w))
			}
		}
		return 255 - uint64(LFUDecrAndReturn(w, mins, decayTime))
	}
	if p == VolatileTTL && f.ReapAt != 0 {
		return math.MaxUint64 - uint64(max(f.ReapAt, 0))
	}
	return 0
}

// PoolSize is the number of candidates a Pool keeps (Redis's EVPOOL_SIZE).
const PoolSize = 16

// Pool keeps the PoolSize best eviction candidates seen so far, by score, as
// Redis's eviction pool: sampling rounds offer candidates (Offer), eviction
// takes the best (Pop), and candidates that are gone by then are the caller's
// to skip (Redis's "ghosts"). T is whatever the caller needs to evict a
// candidate (the record it saw). Not safe for concurrent use.
type Pool[T any] struct {
	n int
	// e[:n] are the candidates in ascending score order; e[n:] keep spare key
	// buffers, reused like Redis's cached sds.
	e [PoolSize]poolEntry[T]
}

type poolEntry[T any] struct {
	score uint64
	key   []byte
	item  T
}

// Len returns the number of candidates held.
func (p *Pool[T]) Len() int { return p.n }

// Offer adds a candidate (key is copied) as evictionPoolPopulate inserts a
// sample: into a free place, or, when the pool is full, in place of the
// worst candidate if it scores above it; it reports whether key is now held.
// Unlike Redis's pool a key is held at most once: offering a key already held
// replaces it, with the new score.
func (p *Pool[T]) Offer(key []byte, score uint64, item T) bool {
	p.Remove(key)
	k := 0
	for k < p.n && p.e[k].score < score {
		k++
	}
	var buf []byte
	switch {
	case p.n == PoolSize && k == 0:
		return false // not better than the worst held
	case p.n == PoolSize:
		// Drop the worst (e[0]) and insert at k-1, shifting e[1:k] left.
		buf = p.e[0].key
		k--
		copy(p.e[:k], p.e[1:k+1])
	default:
		buf = p.e[p.n].key
		copy(p.e[k+1:p.n+1], p.e[k:p.n])
		p.n++
	}
	p.e[k] = poolEntry[T]{score: score, key: append(buf[:0], key...), item: item}
	return true
}

// Remove drops key's candidate, if held, and reports whether it was.
func (p *Pool[T]) Remove(key []byte) bool {
	for i := range p.n {
		if bytes.Equal(p.e[i].key, key) {
			buf := p.e[i].key
			copy(p.e[i:p.n-1], p.e[i+1:p.n])
			p.n--
			p.e[p.n] = poolEntry[T]{key: buf[:0]}
			return true
		}
	}
	return false
}

// Pop removes and returns the best candidate (highest score; of equal scores,
// the one offered first); ok is false when the pool is empty. The key is the
// caller's.
func (p *Pool[T]) Pop() (key []byte, score uint64, item T, ok bool) {
	if p.n == 0 {
		return nil, 0, item, false
	}
	p.n--
	e := &p.e[p.n]
	key, score, item = bytes.Clone(e.key), e.score, e.item
	*e = poolEntry[T]{key: e.key[:0]} // drop the item's references
	return key, score, item, true
}

// Median returns the score of the middle candidate (the lower middle of an
// even count), 0 when the pool is empty: the bar a pick confirmed with the
// other replicas must still clear.
func (p *Pool[T]) Median() uint64 {
	if p.n == 0 {
		return 0
	}
	return p.e[(p.n-1)/2].score
}

// Scores returns the scores held, ascending (for tests and debugging).
func (p *Pool[T]) Scores() []uint64 {
	out := make([]uint64, p.n)
	for i := range p.n {
		out[i] = p.e[i].score
	}
	return out
}

// Reset empties the pool (a policy change makes its scores meaningless).
func (p *Pool[T]) Reset() {
	for i := range p.n {
		p.e[i] = poolEntry[T]{key: p.e[i].key[:0]}
	}
	p.n = 0
}
