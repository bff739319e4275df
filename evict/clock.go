package evict

import "math/bits"

// LRU clock (Redis server.h: LRU_BITS 24, LRU_CLOCK_MAX, LRU_CLOCK_RESOLUTION
// 1000 ms).
const (
	LRUClockMax        = 1<<24 - 1 // the clock wraps after about 194 days
	LRUClockResolution = 1000      // ms per tick
)

// LRUClock returns the 24-bit LRU clock at now (unix ms): seconds, wrapping
// at LRUClockMax, as Redis's getLRUClock.
func LRUClock(now int64) uint32 {
	return uint32(uint64(now/LRUClockResolution) & LRUClockMax)
}

// IdleTime returns the least number of milliseconds a key stamped stamp
// (an LRUClock) has not been accessed when the clock reads clock, as Redis's
// estimateObjectIdleTime: a stamp ahead of the clock is taken to have wrapped
// exactly once (and, like Redis, that case counts LRUClockMax-stamp+clock
// ticks, one short of the modular difference).
func IdleTime(clock, stamp uint32) int64 {
	clock, stamp = clock&LRUClockMax, stamp&LRUClockMax
	if clock >= stamp {
		return int64(clock-stamp) * LRUClockResolution
	}
	return int64(clock+(LRUClockMax-stamp)) * LRUClockResolution
}

// LFU counter (Redis server.h LFU_INIT_VAL, config.c defaults of
// lfu-log-factor and lfu-decay-time).
const (
	LFUInitVal          = 5  // the counter of a new key, so that it can gather hits before it goes
	DefaultLFULogFactor = 10 // hits needed to saturate grow with it
	DefaultLFUDecayTime = 1  // minutes per counter decrement; 0 never decays
	maxLFULogFactor     = 1<<31 - 1
)

// LFUMinutes returns the LFU word's 16-bit time at now (unix ms): minutes,
// wrapping at 65536, as Redis's LFUGetTimeInMinutes.
func LFUMinutes(now int64) uint32 {
	return uint32(uint64(now/60000) & 0xffff)
}

// LFUTimeElapsed returns the minutes since ldt (an LFUMinutes) when the time
// reads now (an LFUMinutes), taking ldt ahead of now as one wrap, as Redis's
// LFUTimeElapsed (which also counts 65535-ldt+now there).
func LFUTimeElapsed(now, ldt uint32) uint32 {
	now, ldt = now&0xffff, ldt&0xffff
	if now >= ldt {
		return now - ldt
	}
	return 65535 - ldt + now
}

// LFUWord returns the 24-bit LFU payload of counter c decremented last at
// minutes ldt.
func LFUWord(ldt uint32, c uint8) uint32 { return (ldt&0xffff)<<8 | uint32(c) }

// LFUCounter returns the counter of an LFU payload, undecayed.
func LFUCounter(w uint32) uint8 { return uint8(w) }

// LFULogIncr increments counter c with probability 1/((c-LFUInitVal)*factor+1)
// (1 at or below LFUInitVal), saturating at 255, as Redis's LFULogIncr. r is a
// uniformly random 64-bit number: the increment happens when r/2^64 < p,
// computed exactly in integers (Redis draws rand()/RAND_MAX). A negative
// factor counts as 0.
func LFULogIncr(c uint8, factor int, r uint64) uint8 {
	if c == 255 {
		return 255
	}
	if c <= LFUInitVal || factor <= 0 {
		return c + 1
	}
	d := uint64(c-LFUInitVal)*uint64(min(factor, maxLFULogFactor)) + 1
	// r < 2^64/d  <=>  r*d < 2^64: the high word of the product is zero.
	if hi, _ := bits.Mul64(r, d); hi == 0 {
		c++
	}
	return c
}

// LFUDecrAndReturn returns the counter of LFU payload w decayed to now (an
// LFUMinutes): one less per decayTime minutes elapsed since its time, not
// below 0; decayTime 0 never decays. As Redis's LFUDecrAndReturn, it does not
// change w: the decay is written back only when the key is accessed.
func LFUDecrAndReturn(w, now uint32, decayTime int) uint8 {
	c := LFUCounter(w)
	elapsed := LFUTimeElapsed(now, w>>8)
	if decayTime <= 0 || elapsed == 0 {
		return c
	}
	periods := elapsed / uint32(decayTime)
	if periods >= uint32(c) {
		return 0
	}
	return c - uint8(periods)
}

// LFUAccess returns LFU payload w after one access at now (an LFUMinutes), as
// Redis's updateLFU: decay, then a logarithmic increment, stamped now.
func LFUAccess(w, now uint32, factor, decayTime int, r uint64) uint32 {
	return LFUWord(now, LFULogIncr(LFUDecrAndReturn(w, now, decayTime), factor, r))
}

// splitmix64 returns the splitmix64 output for state x (Steele, Lea and Flood,
// "Fast splittable pseudorandom number generators"): the state advances by
// the golden gamma, the output is its mix.
func splitmix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

const golden = 0x9e3779b97f4a7c15
