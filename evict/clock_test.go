package evict

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestLRUClock(t *testing.T) {
	const wrap = (LRUClockMax + 1) * LRUClockResolution // ms per clock cycle
	tests := []struct {
		now  int64
		want uint32
	}{
		{0, 0},
		{999, 0},
		{1000, 1},
		{wrap - 1, LRUClockMax},
		{wrap, 0},
		{wrap + 3500, 3},
		{1_700_000_000_000, uint32(1_700_000_000 % (LRUClockMax + 1))},
	}
	for _, tt := range tests {
		if got := LRUClock(tt.now); got != tt.want {
			t.Errorf("LRUClock(%d) = %d, want %d", tt.now, got, tt.want)
		}
	}
}

// TestIdleTime checks estimateObjectIdleTime's arithmetic, wrap included.
func TestIdleTime(t *testing.T) {
	tests := []struct {
		name         string
		clock, stamp uint32
		want         int64
	}{
		{"same second", 100, 100, 0},
		{"behind", 100, 40, 60_000},
		{"whole range", LRUClockMax, 0, LRUClockMax * 1000},
		// A stamp ahead of the clock wrapped once: Redis counts
		// clock + (LRU_CLOCK_MAX - stamp) ticks, one short of the modular gap.
		{"wrapped", 5, LRUClockMax - 9, 14_000},
		{"wrapped at max", 0, LRUClockMax, 0},
		{"wrapped far", 0, 1, (LRUClockMax - 1) * 1000},
		{"high bits ignored", 1<<24 | 10, 1<<25 | 4, 6000},
	}
	for _, tt := range tests {
		if got := IdleTime(tt.clock, tt.stamp); got != tt.want {
			t.Errorf("%s: IdleTime(%d, %d) = %d, want %d", tt.name, tt.clock, tt.stamp, got, tt.want)
		}
	}
	// Property: across a wrap, a key touched d seconds ago is at most one
	// tick off the true idle time.
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		start := r.Int64N(1 << 40)
		d := r.Int64N(LRUClockMax) // less than a cycle
		got := IdleTime(LRUClock(start+d*1000), LRUClock(start))
		if got != d*1000 && got != (d-1)*1000 {
			t.Fatalf("touched at %d, %ds later: idle %d ms", start, d, got)
		}
	}
}

func TestLFUTime(t *testing.T) {
	if got := LFUMinutes(61 * 60_000); got != 61 {
		t.Errorf("LFUMinutes(61 min) = %d", got)
	}
	if got := LFUMinutes((65536 + 7) * 60_000); got != 7 {
		t.Errorf("LFUMinutes wraps: %d", got)
	}
	tests := []struct{ now, ldt, want uint32 }{
		{10, 10, 0},
		{10, 3, 7},
		{2, 65530, 7}, // 65535-ldt+now, as Redis's LFUTimeElapsed
		{0, 65535, 0},
		{65535, 0, 65535},
	}
	for _, tt := range tests {
		if got := LFUTimeElapsed(tt.now, tt.ldt); got != tt.want {
			t.Errorf("LFUTimeElapsed(%d, %d) = %d, want %d", tt.now, tt.ldt, got, tt.want)
		}
	}
}

func TestLFUDecrAndReturn(t *testing.T) {
	tests := []struct {
		name   string
		w, now uint32
		decay  int
		want   uint8
	}{
		{"no time", LFUWord(10, 20), 10, 1, 20},
		{"five minutes", LFUWord(10, 20), 15, 1, 15},
		{"decay time 2", LFUWord(10, 20), 15, 2, 18},
		{"decay time 0 never decays", LFUWord(10, 20), 5000, 0, 20},
		{"to zero", LFUWord(10, 20), 30, 1, 0},
		{"beyond zero", LFUWord(10, 20), 400, 1, 0},
		{"wrapped minutes", LFUWord(65530, 20), 3, 1, 12},
		{"saturated", LFUWord(0, 255), 1, 1, 254},
	}
	for _, tt := range tests {
		if got := LFUDecrAndReturn(tt.w, tt.now, tt.decay); got != tt.want {
			t.Errorf("%s: got %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestLFULogIncr(t *testing.T) {
	// At or below LFU_INIT_VAL, and with factor 0, p = 1: always, whatever r.
	for c := range uint8(LFUInitVal + 1) {
		if got := LFULogIncr(c, 10, math.MaxUint64); got != c+1 {
			t.Errorf("LFULogIncr(%d) = %d", c, got)
		}
	}
	if got := LFULogIncr(100, 0, math.MaxUint64); got != 101 {
		t.Errorf("factor 0: %d", got)
	}
	if got := LFULogIncr(255, 0, 0); got != 255 {
		t.Errorf("255 saturates: %d", got)
	}
	// r = 0 always increments; r = max never above LFU_INIT_VAL.
	if LFULogIncr(200, 10, 0) != 201 || LFULogIncr(6, 10, math.MaxUint64) != 6 {
		t.Error("bounds of r")
	}
	if LFULogIncr(250, math.MaxInt, 0) != 251 {
		t.Error("a huge factor must not overflow")
	}
	// The threshold is exact: r/2^64 < 1/((c-5)*factor+1).
	for _, c := range []uint8{6, 7, 100, 254} {
		d := uint64(c-LFUInitVal)*10 + 1
		if LFULogIncr(c, 10, math.MaxUint64/d) != c+1 || LFULogIncr(c, 10, math.MaxUint64/d+1) != c {
			t.Errorf("counter %d: the increment's threshold is not 2^64/%d", c, d)
		}
	}
	// The probability is 1/((c-5)*factor+1).
	r := rand.New(rand.NewPCG(3, 4))
	for _, c := range []uint8{6, 8, 20} {
		const draws = 200_000
		n := 0
		for range draws {
			if LFULogIncr(c, 10, r.Uint64()) > c {
				n++
			}
		}
		p := 1 / (float64(c-LFUInitVal)*10 + 1)
		if got := float64(n) / draws; math.Abs(got-p) > 0.1*p {
			t.Errorf("counter %d: incremented %.4f of draws, want %.4f", c, got, p)
		}
	}
}

// TestLFUCounterTable reproduces the table of redis.conf ("lfu-log-factor"),
// obtained with redis-benchmark INCR on one key then OBJECT FREQ: the key is
// created at LFU_INIT_VAL and every hit is an access within one minute.
func TestLFUCounterTable(t *testing.T) {
	tests := []struct {
		factor int
		hits   int
		want   int
	}{
		{0, 100, 104}, {0, 1000, 255},
		{1, 100, 18}, {1, 1000, 49}, {1, 100_000, 255},
		{10, 100, 10}, {10, 1000, 18}, {10, 100_000, 142}, {10, 1_000_000, 255},
		{100, 100, 8}, {100, 1000, 11}, {100, 100_000, 49}, {100, 1_000_000, 143},
	}
	for _, tt := range tests {
		for seed := range uint64(3) {
			r := rand.New(rand.NewPCG(seed, 99))
			w := LFUWord(7, LFUInitVal)
			for range tt.hits - 1 { // the first hit created the key
				w = LFUAccess(w, 7, tt.factor, DefaultLFUDecayTime, r.Uint64())
			}
			got := int(LFUCounter(w))
			// The counter is random: allow 15% and 2 counts around Redis's figure.
			if tol := tt.want*15/100 + 2; got < tt.want-tol || got > min(tt.want+tol, 255) {
				t.Errorf("factor %d, %d hits, seed %d: counter %d, Redis's table says %d", tt.factor, tt.hits, seed, got, tt.want)
			}
		}
	}
}

func TestLFUAccess(t *testing.T) {
	// updateLFU: decay first, then increment, stamped now.
	w := LFUWord(100, 9)
	got := LFUAccess(w, 104, 10, 1, 0) // decayed to 5: p = 1
	if got != LFUWord(104, 6) {
		t.Errorf("LFUAccess = %#x, want counter 6 at minute 104", got)
	}
}
