package evict

import (
	"errors"
	"fmt"
	"math/bits"
	"sync/atomic"
)

// Table sizes, in slots (one uint32 word each).
const (
	BucketSlots = 4       // slots per bucket: a key's word may sit in any of them
	MinSlots    = 1 << 12 // 16 KiB
	MaxSlots    = 1 << 28 // 1 GiB
	// BytesPerSlot is the maxmemory a slot stands for in SlotsFor: a table
	// takes at most 1/16 of the budget (4 bytes a slot).
	BytesPerSlot = 64

	payloadBits = 24
	payloadMask = 1<<payloadBits - 1
	// partitionBits are the low hash bits storage uses for the partition
	// (at most 65536 partitions): the bucket index skips them, or all the
	// keys of a partition would crowd into a few buckets.
	partitionBits = 16
	rngStripes    = 64
)

// SlotsFor returns the slots of a table for a node with maxMemory bytes: the
// power of two at or above maxMemory/BytesPerSlot, within [MinSlots, MaxSlots].
func SlotsFor(maxMemory int64) int {
	n := max(maxMemory/BytesPerSlot, MinSlots)
	if n >= MaxSlots {
		return MaxSlots
	}
	return 1 << bits.Len64(uint64(n-1))
}

// Table holds an access word per key hash, lossily: LRU stamps or LFU words
// (see Kind) in 4-way buckets of tagged uint32 words (see the package doc).
// Reads of a key (Touch) keep its word; the evictor reads it (Lookup) to score
// a sampled key and merges words learnt from other replicas (Learn).
//
// Its clock is set by its owner (Tick), as Redis caches its LRU clock in
// serverCron rather than read the time on every access; Touch uses it, TouchAt
// takes the time. A Table is safe for concurrent use.
type Table struct {
	kind   Kind
	mask   uint64 // buckets - 1
	words  []atomic.Uint32
	now    atomic.Int64 // unix ms, set by Tick
	factor atomic.Int64 // lfu-log-factor
	decay  atomic.Int64 // lfu-decay-time, minutes
	rng    []rngStripe
}

// rngStripe is one splitmix64 state, alone on its cache line so that readers
// of different buckets do not contend for it.
type rngStripe struct {
	state atomic.Uint64
	_     [56]byte
}

// ErrKind is returned by NewTable for a kind that keeps no words.
var ErrKind = errors.New("evict: a table holds LRU or LFU words")

// NewTable returns an empty table of kind words, with slots rounded up to a
// power of two within [MinSlots, MaxSlots] (use SlotsFor), whose clock reads
// now (unix ms) until the first Tick and whose LFU increments draw from a
// splitmix64 sequence seeded with seed. LFU parameters start at Redis's
// defaults (DefaultLFULogFactor, DefaultLFUDecayTime; see SetLFU).
func NewTable(kind Kind, slots int, now int64, seed uint64) (*Table, error) {
	if kind != KindLRU && kind != KindLFU {
		return nil, fmt.Errorf("%w: got %v", ErrKind, kind)
	}
	n := max(slots, MinSlots)
	if n >= MaxSlots {
		n = MaxSlots
	} else {
		n = 1 << bits.Len64(uint64(n-1))
	}
	t := &Table{
		kind:  kind,
		mask:  uint64(n/BucketSlots - 1),
		words: make([]atomic.Uint32, n),
		rng:   make([]rngStripe, rngStripes),
	}
	for i := range t.rng {
		t.rng[i].state.Store(seed + uint64(i)*0x632be59bd9b4e019)
	}
	t.now.Store(now)
	t.SetLFU(DefaultLFULogFactor, DefaultLFUDecayTime)
	return t, nil
}

// Kind returns what the table's words hold.
func (t *Table) Kind() Kind { return t.kind }

// Slots returns the number of words.
func (t *Table) Slots() int { return len(t.words) }

// Bytes returns the memory of the words (INFO's evict_table_bytes).
func (t *Table) Bytes() int64 { return int64(len(t.words)) * 4 }

// Tick sets the table's clock to now (unix ms). Its owner calls it at least
// once a second: LRU stamps have a resolution of a second, LFU times of a
// minute.
func (t *Table) Tick(now int64) { t.now.Store(now) }

// Now returns the table's clock (unix ms).
func (t *Table) Now() int64 { return t.now.Load() }

// SetLFU sets lfu-log-factor (negative counts as 0) and lfu-decay-time
// (minutes; 0 or less never decays), as Redis's CONFIG SET; words already
// kept stay as they are.
func (t *Table) SetLFU(factor, decayTime int) {
	t.factor.Store(int64(max(factor, 0)))
	t.decay.Store(int64(max(decayTime, 0)))
}

// LFU returns lfu-log-factor and lfu-decay-time.
func (t *Table) LFU() (factor, decayTime int) {
	return int(t.factor.Load()), int(t.decay.Load())
}

// tagOf returns the tag of hash h: its top 8 bits, 0 taken as 1 (0 is the empty word).
func tagOf(h uint64) uint32 { return max(uint32(h>>56), 1) }

// bucket returns the words of h's bucket.
func (t *Table) bucket(h uint64) []atomic.Uint32 {
	i := (h >> partitionBits & t.mask) * BucketSlots
	return t.words[i : i+BucketSlots : i+BucketSlots]
}

// Lookup returns the payload of h's word (an LRU stamp or an LFU word, by Kind)
// and whether the table holds one.
func (t *Table) Lookup(h uint64) (payload uint32, ok bool) {
	tag := tagOf(h)
	for i, ws := 0, t.bucket(h); i < BucketSlots; i++ {
		if w := ws[i].Load(); w>>payloadBits == tag {
			return w & payloadMask, true
		}
	}
	return 0, false
}

// Touch records an access to h at the table's clock (Tick).
func (t *Table) Touch(h uint64) { t.update(h, t.now.Load(), 0, false) }

// TouchAt records an access to h at now (unix ms): the LRU stamp becomes now's
// clock; the LFU word is decayed and incremented as Redis's updateLFU. A hash
// without a word takes the bucket's empty or coldest slot (largest idle time,
// smallest decayed counter), as a new key: an LFU counter starts at
// LFUInitVal before this access.
func (t *Table) TouchAt(h uint64, now int64) { t.update(h, now, 0, false) }

// Learn merges payload, h's word as another replica keeps it, into h's word
// at now (unix ms): the newer LRU stamp, or the larger LFU counter (both decayed
// to now) stamped now. A stamp or minute ahead of now (another clock) counts as
// now.
func (t *Table) Learn(h uint64, payload uint32, now int64) {
	t.update(h, now, payload&payloadMask, true)
}

// maxAttempts bounds the compare-and-swap retries of one update: under heavy
// contention on one bucket an access may be lost, as the table is lossy anyway.
const maxAttempts = 4

func (t *Table) update(h uint64, now int64, learnt uint32, learn bool) {
	tag := tagOf(h) << payloadBits
	ws := t.bucket(h)
attempts:
	for range maxAttempts {
		for i := range BucketSlots {
			if w := ws[i].Load(); w&^payloadMask == tag {
				nw := tag | t.next(w&payloadMask, true, now, learnt, learn, h)
				if nw == w || ws[i].CompareAndSwap(w, nw) {
					return
				}
				continue attempts
			}
		}
		// Not held: take the empty or coldest slot, unless it changed meanwhile
		// (maybe to this very tag: the next attempt finds it).
		victim, coldest := 0, uint64(0)
		var vold uint32
		for i := range BucketSlots {
			w := ws[i].Load()
			if c := t.coldness(w, now); i == 0 || c > coldest {
				victim, coldest, vold = i, c, w
			}
		}
		if ws[victim].CompareAndSwap(vold, tag|t.next(0, false, now, learnt, learn, h)) {
			return
		}
	}
}

// coldness ranks a word for replacement: an empty word first, then the
// largest score (idle time, or 255 minus the decayed counter).
func (t *Table) coldness(w uint32, now int64) uint64 {
	if w == 0 {
		return ^uint64(0)
	}
	return t.score(w&payloadMask, now)
}

// score is the pool score of payload p at now: idle ms (LRU) or 255 minus the
// decayed counter (LFU).
func (t *Table) score(p uint32, now int64) uint64 {
	if t.kind == KindLRU {
		return uint64(IdleTime(LRUClock(now), p))
	}
	return 255 - uint64(LFUDecrAndReturn(p, LFUMinutes(now), int(t.decay.Load())))
}

// next returns the payload after an access at now to a word holding cur (found)
// or none, or after learning learnt.
func (t *Table) next(cur uint32, found bool, now int64, learnt uint32, learn bool, h uint64) uint32 {
	if t.kind == KindLRU {
		clock := LRUClock(now)
		switch {
		case !learn:
			return clock
		case lruAhead(clock, learnt):
			learnt = clock
		}
		if found && IdleTime(clock, cur) <= IdleTime(clock, learnt) {
			return cur
		}
		return learnt
	}
	mins := LFUMinutes(now)
	decay := int(t.decay.Load())
	if learn {
		if lfuAhead(mins, learnt>>8) {
			learnt = LFUWord(mins, LFUCounter(learnt))
		}
		c := LFUDecrAndReturn(learnt, mins, decay)
		if found {
			c = max(c, LFUDecrAndReturn(cur, mins, decay))
		}
		return LFUWord(mins, c)
	}
	switch {
	case !found:
		cur = LFUWord(mins, LFUInitVal) // a new key, as Redis's createObject
	case lfuAhead(mins, cur>>8):
		// Stamped by a clock that was ahead (set back since): it would
		// otherwise count as 65535 minutes old and decay to nothing.
		cur = LFUWord(mins, LFUCounter(cur))
	}
	c := LFUDecrAndReturn(cur, mins, decay)
	var r uint64
	if c > LFUInitVal && c < 255 {
		r = splitmix64(t.rng[(h>>partitionBits)%rngStripes].state.Add(golden))
	}
	return LFUWord(mins, LFULogIncr(c, int(t.factor.Load()), r))
}

// lruAhead reports whether stamp is ahead of clock by less than half the
// clock's range: a stamp from a clock running ahead, not one that wrapped.
func lruAhead(clock, stamp uint32) bool {
	d := (stamp - clock) & LRUClockMax
	return d != 0 && d < 1<<23
}

// lfuAhead is lruAhead for LFU minutes.
func lfuAhead(now, ldt uint32) bool {
	d := (ldt - now) & 0xffff
	return d != 0 && d < 1<<15
}
