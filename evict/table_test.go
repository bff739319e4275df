package evict

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

const t0 = int64(1_700_000_000_000) // a unix ms

func newTable(t testing.TB, kind Kind, slots int) *Table {
	t.Helper()
	tb, err := NewTable(kind, slots, t0, 42)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestSlotsFor(t *testing.T) {
	tests := []struct {
		maxMemory int64
		want      int
	}{
		{0, MinSlots},
		{1 << 18, MinSlots},
		{1 << 20, 1 << 14},
		{64 * (MinSlots + 1), 2 * MinSlots},
		{64 << 20, 1 << 20}, // 4 MiB of words for 64 MiB
		{1 << 40, MaxSlots},
	}
	for _, tt := range tests {
		if got := SlotsFor(tt.maxMemory); got != tt.want {
			t.Errorf("SlotsFor(%d) = %d, want %d", tt.maxMemory, got, tt.want)
		}
		if tb := newTable(t, KindLRU, SlotsFor(tt.maxMemory)); int64(tb.Slots())*4 != tb.Bytes() ||
			tt.maxMemory >= 64*MinSlots && tt.maxMemory < 64*MaxSlots && tb.Bytes() > tt.maxMemory/8 {
			t.Errorf("maxmemory %d: table of %d bytes", tt.maxMemory, tb.Bytes())
		}
	}
	for _, slots := range []int{0, 5000, MaxSlots * 2} {
		tb := newTable(t, KindLFU, slots)
		if n := tb.Slots(); n&(n-1) != 0 || n < MinSlots || n > MaxSlots || n < min(slots, MaxSlots) {
			t.Errorf("NewTable(%d slots) has %d", slots, n)
		}
	}
	if _, err := NewTable(KindNone, 0, 0, 0); !errors.Is(err, ErrKind) {
		t.Errorf("KindNone: %v", err)
	}
}

// hashIn returns a hash of bucket b with tag tag (top byte) and partition p.
func hashIn(b uint64, tag byte, p uint64) uint64 {
	return uint64(tag)<<56 | b<<partitionBits | p
}

func TestTableLRU(t *testing.T) {
	tb := newTable(t, KindLRU, 0)
	h := hashIn(7, 0x80, 3)
	if _, ok := tb.Lookup(h); ok {
		t.Fatal("an untouched key is known")
	}
	tb.TouchAt(h, t0)
	if got, ok := tb.Lookup(h); !ok || got != LRUClock(t0) {
		t.Fatalf("Lookup after Touch = %d, %v; want %d", got, ok, LRUClock(t0))
	}
	tb.TouchAt(h, t0+5500)
	if got, _ := tb.Lookup(h); got != LRUClock(t0+5500) {
		t.Errorf("second touch: %d", got)
	}
	// Touch uses the table's clock.
	tb.Tick(t0 + 60_000)
	tb.Touch(h)
	if got, _ := tb.Lookup(h); got != LRUClock(t0+60_000) || tb.Now() != t0+60_000 {
		t.Errorf("Touch at the ticked clock: %d", got)
	}
	// Another partition, same bucket and tag: the same word (lossy by design).
	if _, ok := tb.Lookup(hashIn(7, 0x80, 9)); !ok {
		t.Error("bucket ignores the partition bits?")
	}
	if _, ok := tb.Lookup(hashIn(7, 0x81, 3)); ok {
		t.Error("another tag is known")
	}
	// Tag 0 is taken as 1: never the empty word.
	z := hashIn(9, 0, 0)
	tb.TouchAt(z, t0)
	if _, ok := tb.Lookup(z); !ok {
		t.Error("a hash with a zero top byte is not kept")
	}
	if _, ok := tb.Lookup(hashIn(9, 1, 0)); !ok {
		t.Error("tags 0 and 1 should share a word")
	}
}

func TestTableLFU(t *testing.T) {
	tb := newTable(t, KindLFU, 0)
	h := hashIn(1, 0x42, 0)
	tb.TouchAt(h, t0)
	got, ok := tb.Lookup(h)
	if want := LFUWord(LFUMinutes(t0), LFUInitVal+1); !ok || got != want {
		t.Fatalf("first access: %#x, want %#x (a new key's counter, incremented)", got, want)
	}
	for range 1000 {
		tb.TouchAt(h, t0)
	}
	got, _ = tb.Lookup(h)
	if c := LFUCounter(got); c < 12 || c > 28 {
		t.Errorf("1001 hits: counter %d, want about 18 (19.3 on average over seeds)", c)
	}
	// Decay: 10 minutes later the counter went down by 10 before the access.
	before := LFUCounter(got)
	tb.TouchAt(h, t0+10*60_000)
	got, _ = tb.Lookup(h)
	if c := LFUCounter(got); c != before-10 && c != before-9 || got>>8 != LFUMinutes(t0+10*60_000) {
		t.Errorf("after 10 minutes: counter %d (was %d), time %d", c, before, got>>8)
	}
	// A clock set back: the word's minutes are ahead of now; it keeps its
	// counter rather than decay as if 65535 minutes old.
	c0 := LFUCounter(got)
	tb.TouchAt(h, t0+5*60_000)
	if got, _ = tb.Lookup(h); LFUCounter(got) < c0 || got>>8 != LFUMinutes(t0+5*60_000) {
		t.Errorf("clock set back: counter %d -> %d", c0, LFUCounter(got))
	}
	tb.SetLFU(0, 0)
	if f, d := tb.LFU(); f != 0 || d != 0 {
		t.Errorf("SetLFU(0, 0): %d %d", f, d)
	}
	c := LFUCounter(got)
	tb.TouchAt(h, t0+1000*60_000) // no decay, factor 0: +1
	if got, _ = tb.Lookup(h); LFUCounter(got) != c+1 {
		t.Errorf("no decay, factor 0: %d -> %d", c, LFUCounter(got))
	}
}

// TestTableReplacesColdest fills a bucket and checks which word a new key takes.
func TestTableReplacesColdest(t *testing.T) {
	t.Run("lru", func(t *testing.T) {
		tb := newTable(t, KindLRU, 0)
		for i, age := range []int64{5, 50, 20, 1} { // seconds before t0+100s
			tb.TouchAt(hashIn(3, byte(10+i), 0), t0+100_000-age*1000)
		}
		tb.TouchAt(hashIn(3, 99, 0), t0+100_000)
		for i, want := range []bool{true, false, true, true} {
			if _, ok := tb.Lookup(hashIn(3, byte(10+i), 0)); ok != want {
				t.Errorf("key %d known %v, want %v (the oldest goes)", i, ok, want)
			}
		}
		if _, ok := tb.Lookup(hashIn(3, 99, 0)); !ok {
			t.Error("the new key is not kept")
		}
	})
	t.Run("lfu", func(t *testing.T) {
		tb := newTable(t, KindLFU, 0)
		for i, hits := range []int{30, 2, 30, 30} {
			for range hits {
				tb.TouchAt(hashIn(3, byte(10+i), 0), t0)
			}
		}
		tb.TouchAt(hashIn(3, 99, 0), t0)
		for i, want := range []bool{true, false, true, true} {
			if _, ok := tb.Lookup(hashIn(3, byte(10+i), 0)); ok != want {
				t.Errorf("key %d known %v, want %v (the least used goes)", i, ok, want)
			}
		}
	})
}

// TestTableMissRate fills a table to 40% with distinct random hashes, each
// touched once, and counts the ones it lost.
func TestTableMissRate(t *testing.T) {
	for _, kind := range []Kind{KindLRU, KindLFU} {
		tb := newTable(t, kind, 1<<16)
		r := rand.New(rand.NewPCG(5, 6))
		n := tb.Slots() * 4 / 10
		hs := make([]uint64, n)
		for i := range hs {
			hs[i] = r.Uint64()
			tb.TouchAt(hs[i], t0+int64(i))
		}
		missed := 0
		for _, h := range hs {
			if _, ok := tb.Lookup(h); !ok {
				missed++
			}
		}
		rate := float64(missed) / float64(n)
		t.Logf("%v: %d of %d keys lost at load 0.4 (%.2f%%)", kind, missed, n, 100*rate)
		if rate >= 0.05 {
			t.Errorf("%v: miss rate %.3f at load 0.4, want < 0.05", kind, rate)
		}
	}
}

func TestTableLearn(t *testing.T) {
	t.Run("lru", func(t *testing.T) {
		tb := newTable(t, KindLRU, 0)
		h := hashIn(5, 0x33, 0)
		tb.Learn(h, LRUClock(t0-60_000), t0) // unknown here: taken as is
		if got, _ := tb.Lookup(h); got != LRUClock(t0-60_000) {
			t.Errorf("learnt into an empty slot: %d", got)
		}
		tb.TouchAt(h, t0-30_000)
		tb.Learn(h, LRUClock(t0-60_000), t0) // older than ours: ours stays
		if got, _ := tb.Lookup(h); got != LRUClock(t0-30_000) {
			t.Errorf("an older stamp replaced ours: %d", got)
		}
		tb.Learn(h, LRUClock(t0-1000), t0) // newer: taken
		if got, _ := tb.Lookup(h); got != LRUClock(t0-1000) {
			t.Errorf("a newer stamp not taken: %d", got)
		}
		tb.Learn(h, LRUClock(t0+7000), t0) // a clock ahead: counts as now
		if got, _ := tb.Lookup(h); got != LRUClock(t0) {
			t.Errorf("a stamp ahead of now: %d, want now %d", got, LRUClock(t0))
		}
	})
	t.Run("lfu", func(t *testing.T) {
		tb := newTable(t, KindLFU, 0)
		h := hashIn(5, 0x33, 0)
		m := LFUMinutes(t0)
		tb.Learn(h, LFUWord(m-3, 40), t0) // decayed by 3 on the way in
		if got, _ := tb.Lookup(h); got != LFUWord(m, 37) {
			t.Errorf("learnt: %#x, want counter 37", got)
		}
		tb.Learn(h, LFUWord(m, 20), t0) // smaller: ours stays
		if got, _ := tb.Lookup(h); got != LFUWord(m, 37) {
			t.Errorf("a smaller counter replaced ours: %#x", got)
		}
		tb.Learn(h, LFUWord(m+2, 90), t0) // ahead: counts as now, not as 65k minutes old
		if got, _ := tb.Lookup(h); got != LFUWord(m, 90) {
			t.Errorf("a word ahead of now: %#x", got)
		}
	})
}

// TestTableDeterministic: one goroutine, one seed, the same words.
func TestTableDeterministic(t *testing.T) {
	run := func() []uint32 {
		tb := newTable(t, KindLFU, MinSlots)
		r := rand.New(rand.NewPCG(7, 8))
		for range 50_000 {
			tb.TouchAt(r.Uint64()%64<<partitionBits, t0) // 64 hot keys, random hits
		}
		out := make([]uint32, tb.Slots())
		for i := range out {
			out[i] = tb.words[i].Load()
		}
		return out
	}
	a, b := run(), run()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("word %d: %#x then %#x", i, a[i], b[i])
		}
	}
}

// TestTableConcurrent touches, learns and looks up overlapping keys from
// several goroutines (run with -race) and checks that every word is whole:
// empty or a valid tag and a payload one of the writers could have made.
func TestTableConcurrent(t *testing.T) {
	for _, kind := range []Kind{KindLRU, KindLFU} {
		tb := newTable(t, kind, MinSlots)
		const workers, ops = 8, 20_000
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(w), 1))
				for i := range ops {
					h := r.Uint64()%2048<<partitionBits | r.Uint64()&0xff<<56 // crowded buckets
					now := t0 + int64(r.IntN(120))*1000
					switch i % 8 {
					case 0:
						tb.Learn(h, tb.next(0, false, now, 0, false, h), now)
					case 1:
						tb.Lookup(h)
					default:
						tb.TouchAt(h, now)
					}
				}
			})
		}
		wg.Wait()
		used := 0
		for i := range tb.Slots() {
			w := tb.words[i].Load()
			if w == 0 {
				continue
			}
			used++
			p := w & payloadMask
			switch kind {
			case KindLRU:
				if IdleTime(LRUClock(t0+120_000), p) > 120_000 {
					t.Fatalf("word %d: stamp %d outside the writers' times", i, p)
				}
			case KindLFU:
				if m := p >> 8; m < LFUMinutes(t0) || m > LFUMinutes(t0+120_000) || LFUCounter(p) == 0 { // an access leaves at least 1
					t.Fatalf("word %d: %#x is no LFU word of the writers", i, p)
				}
			}
		}
		if used == 0 {
			t.Fatal("nothing kept")
		}
	}
}

func BenchmarkTouch(b *testing.B) {
	for _, bc := range []struct {
		name string
		kind Kind
		keys uint64
	}{
		{"lru/hot", KindLRU, 1},
		{"lru/1M", KindLRU, 1 << 20},
		{"lfu/hot", KindLFU, 1},
		{"lfu/1M", KindLFU, 1 << 20},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tb := newTable(b, bc.kind, SlotsFor(64<<20))
			hs := make([]uint64, 4096)
			r := rand.New(rand.NewPCG(1, 1))
			for i := range hs {
				hs[i] = splitmix64(r.Uint64() % bc.keys)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				tb.Touch(hs[i&4095])
				i++
			}
		})
	}
}

func BenchmarkTouchParallel(b *testing.B) {
	for _, kind := range []Kind{KindLRU, KindLFU} {
		b.Run(kind.String(), func(b *testing.B) {
			tb := newTable(b, kind, SlotsFor(64<<20))
			var seed atomic.Uint64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r := rand.New(rand.NewPCG(seed.Add(1), 1)) // each goroutine its own keys
				for pb.Next() {
					tb.Touch(splitmix64(r.Uint64() % (1 << 20)))
				}
			})
		})
	}
}

func BenchmarkLookup(b *testing.B) {
	tb := newTable(b, KindLRU, SlotsFor(64<<20))
	for i := range uint64(1 << 18) {
		tb.Touch(splitmix64(i))
	}
	b.ReportAllocs()
	var i uint64
	for b.Loop() {
		tb.Lookup(splitmix64(i & (1<<18 - 1)))
		i++
	}
}
