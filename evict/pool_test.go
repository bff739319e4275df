package evict

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestScore(t *testing.T) {
	now := t0
	m := LFUMinutes(now)
	tests := []struct {
		name  string
		p     Policy
		f     Facts
		decay int
		want  uint64
	}{
		{"lru known", AllKeysLRU, Facts{Access: LRUClock(now - 30_000), Known: true, Written: now - 90_000}, 1, 30_000},
		{"lru falls back to the write", VolatileLRU, Facts{Written: now - 90_000}, 1, 90_000},
		{"lru write ahead of us", AllKeysLRU, Facts{Written: now + 5000}, 1, 0},
		{"lru stamp ahead of us", AllKeysLRU, Facts{Access: LRUClock(now + 5000), Known: true}, 1, 0},
		{"lfu known", AllKeysLFU, Facts{Access: LFUWord(m, 40), Known: true}, 1, 215},
		{"lfu known, decayed", AllKeysLFU, Facts{Access: LFUWord(m-10, 40), Known: true}, 1, 225},
		{"lfu falls back to a new key", VolatileLFU, Facts{Written: now}, 1, 255 - LFUInitVal},
		{"lfu fallback decays", AllKeysLFU, Facts{Written: now - 3*60_000}, 1, 255 - 2},
		{"lfu fallback, decay off", AllKeysLFU, Facts{Written: now - 3*60_000}, 0, 255 - LFUInitVal},
		{"lfu word ahead", AllKeysLFU, Facts{Access: LFUWord(m+1, 40), Known: true}, 1, 215},
		{"ttl", VolatileTTL, Facts{ReapAt: now + 1000}, 1, math.MaxUint64 - uint64(now+1000)},
		{"ttl without expiry", VolatileTTL, Facts{}, 1, 0},
		{"expired beats all", AllKeysLRU, Facts{Expired: true}, 1, ScoreExpired},
		{"random", AllKeysRandom, Facts{Written: now - 1e6}, 1, 0},
	}
	for _, tt := range tests {
		if got := tt.p.Score(tt.f, now, tt.decay); got != tt.want {
			t.Errorf("%s: Score = %d, want %d", tt.name, got, tt.want)
		}
	}
	// Orders: idler, rarer and sooner are better.
	if AllKeysLRU.Score(Facts{Written: now - 2000}, now, 1) <= AllKeysLRU.Score(Facts{Written: now - 1000}, now, 1) {
		t.Error("lru: the idler key is not better")
	}
	if VolatileTTL.Score(Facts{ReapAt: now + 10}, now, 1) <= VolatileTTL.Score(Facts{ReapAt: now + 20}, now, 1) {
		t.Error("ttl: the sooner expiry is not better")
	}
}

func TestPoolOrder(t *testing.T) {
	var p Pool[int]
	if _, _, _, ok := p.Pop(); ok || p.Median() != 0 {
		t.Fatal("an empty pool pops")
	}
	for i, s := range []uint64{50, 10, 30, 20, 40} {
		if !p.Offer(fmt.Appendf(nil, "k%d", i), s, i) {
			t.Fatalf("offer %d refused with room left", i)
		}
	}
	if got := p.Scores(); !slices.Equal(got, []uint64{10, 20, 30, 40, 50}) {
		t.Errorf("scores %v, want ascending", got)
	}
	if p.Median() != 30 {
		t.Errorf("median %d", p.Median())
	}
	key, s, item, ok := p.Pop()
	if !ok || string(key) != "k0" || s != 50 || item != 0 || p.Len() != 4 {
		t.Errorf("Pop = %s %d %d %v", key, s, item, ok)
	}
	// Re-offering a key held replaces it.
	p.Offer([]byte("k1"), 45, 1)
	if got := p.Scores(); !slices.Equal(got, []uint64{20, 30, 40, 45}) || p.Len() != 4 {
		t.Errorf("after re-offering k1: %v", got)
	}
	if !p.Remove([]byte("k3")) || p.Remove([]byte("k3")) || p.Len() != 3 {
		t.Error("Remove")
	}
	p.Reset()
	if p.Len() != 0 {
		t.Error("Reset")
	}
}

func TestPoolFull(t *testing.T) {
	var p Pool[string]
	for i := range PoolSize {
		p.Offer(fmt.Appendf(nil, "k%d", i), uint64(100+i*10), "")
	}
	// Not better than the worst (100): refused, ties included (Redis's k == 0 case).
	if p.Offer([]byte("low"), 100, "") || p.Offer([]byte("lower"), 5, "") {
		t.Error("a candidate no better than the worst got in")
	}
	// Better: the worst goes.
	if !p.Offer([]byte("mid"), 135, "") {
		t.Fatal("a better candidate refused")
	}
	got := p.Scores()
	if len(got) != PoolSize || got[0] != 110 || !slices.Contains(got, 135) || !slices.IsSorted(got) {
		t.Errorf("after a better offer: %v", got)
	}
	if !p.Offer([]byte("top"), 1e9, "") {
		t.Fatal("the best refused")
	}
	if k, _, _, _ := p.Pop(); string(k) != "top" {
		t.Errorf("Pop = %s", k)
	}
}

// TestPoolModel checks Pool against a dumb model (a sorted slice) on random
// offers, removes and pops: same candidates, same order.
func TestPoolModel(t *testing.T) {
	type cand struct {
		key   string
		score uint64
	}
	for seed := range uint64(50) {
		r := rand.New(rand.NewPCG(seed, 11))
		var p Pool[string]
		var model []cand // ascending; of equal scores, the newest first
		for op := range 2000 {
			key := fmt.Sprintf("k%d", r.IntN(40))
			switch x := r.IntN(10); {
			case x < 7:
				score := uint64(r.IntN(60))
				model = slices.DeleteFunc(model, func(c cand) bool { return c.key == key })
				i := 0
				for i < len(model) && model[i].score < score {
					i++
				}
				want := !(len(model) == PoolSize && i == 0)
				if want {
					model = slices.Insert(model, i, cand{key, score})
					if len(model) > PoolSize {
						model = model[1:]
					}
				}
				if got := p.Offer([]byte(key), score, key); got != want {
					t.Fatalf("seed %d op %d: Offer(%s, %d) = %v, model says %v", seed, op, key, score, got, want)
				}
			case x < 8:
				n := len(model)
				model = slices.DeleteFunc(model, func(c cand) bool { return c.key == key })
				if got := p.Remove([]byte(key)); got != (n != len(model)) {
					t.Fatalf("seed %d op %d: Remove(%s) = %v", seed, op, key, got)
				}
			default:
				k, s, item, ok := p.Pop()
				if ok != (len(model) > 0) {
					t.Fatalf("seed %d op %d: Pop ok %v with %d in the model", seed, op, ok, len(model))
				}
				if ok {
					last := model[len(model)-1]
					model = model[:len(model)-1]
					if string(k) != last.key || s != last.score || item != last.key {
						t.Fatalf("seed %d op %d: Pop = %s/%d/%s, model says %v", seed, op, k, s, item, last)
					}
				}
			}
			if p.Len() != len(model) {
				t.Fatalf("seed %d op %d: %d held, model %d", seed, op, p.Len(), len(model))
			}
		}
	}
}

func TestPoolPopOwnsKey(t *testing.T) {
	var p Pool[int]
	p.Offer([]byte("aaaa"), 1, 0)
	k, _, _, _ := p.Pop()
	p.Offer([]byte("bbbb"), 1, 0) // reuses the buffer
	if string(k) != "aaaa" {
		t.Errorf("a popped key changed to %q", k)
	}
}

func BenchmarkPoolOffer(b *testing.B) {
	var p Pool[int]
	keys := make([][]byte, 256)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key:%08d", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p.Offer(keys[i&255], splitmix64(uint64(i))>>40, i)
		i++
	}
}
