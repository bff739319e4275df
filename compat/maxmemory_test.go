package compat

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Issue 18's real-process proof: three `--storage memory` nodes with a small
// --maxmemory hold it under a write load several times their memory, evict, and
// no evicted key comes back; with noeviction they refuse growing writes with
// Redis's and memcached's errors and lose nothing they acknowledged.

const (
	respOOM = "OOM command not allowed when used memory > 'maxmemory'."
	mcOOM   = "SERVER_ERROR out of memory storing object"
)

// memFigures is one node's INFO memory and stats figures that these tests use.
type memFigures struct {
	used, max, rss, graves, evicted int64
	policy                          string
}

// memInfo reads p's INFO memory and INFO stats; ok is false when INFO failed.
// It may run in any goroutine.
func memInfo(t *testing.T, p *proc) (memFigures, bool) {
	t.Helper()
	m, s := infoSection(t, p, "memory"), infoSection(t, p, "stats")
	if m == nil || s == nil {
		return memFigures{}, false
	}
	ok := true
	num := func(v string) int64 {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Errorf("%s: INFO field %q is not a number", p.name, v)
			ok = false
		}
		return n
	}
	return memFigures{used: num(m["used_memory"]), max: num(m["maxmemory"]), rss: num(m["used_memory_rss"]),
		graves: num(m["used_memory_graves"]), evicted: num(s["evicted_keys"]), policy: m["maxmemory_policy"]}, ok
}

// mcStats returns the fields of memcached's "stats" (or "stats settings") on addr.
func mcStats(t *testing.T, addr, cmd string) map[string]string {
	t.Helper()
	c := dialRaw(t, addr)
	defer c.c.Close()
	c.send(cmd + "\r\n")
	out := map[string]string{}
	for range 1000 {
		l := strings.TrimSuffix(c.line(), "\r\n")
		if l == "END" {
			return out
		}
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != "STAT" {
			t.Fatalf("%s: line %q", cmd, l)
		}
		out[f[1]] = f[2]
	}
	t.Fatalf("%s: no END after 1000 lines", cmd)
	return nil
}

// peakRSS returns the process's peak resident set size (VmHWM).
func (p *proc) peakRSS(t *testing.T) int64 { return p.procStatus(t, "VmHWM") }

// readAll GETs keys through c, pipelined in chunks, and returns the value of
// each key present ("" and false for a miss).
func readAll(t *testing.T, c *redis.Client, keys []string) map[string]string {
	t.Helper()
	out := make(map[string]string, len(keys))
	for start := 0; start < len(keys); start += 1000 {
		chunk := keys[start:min(start+1000, len(keys))]
		cx := ctx(t)
		pipe := c.Pipeline()
		cmds := make([]*redis.StringCmd, len(chunk))
		for i, k := range chunk {
			cmds[i] = pipe.Get(cx, k)
		}
		if _, err := pipe.Exec(cx); err != nil && !errors.Is(err, redis.Nil) {
			t.Fatalf("pipelined GETs: %v", err)
		}
		for i, cmd := range cmds {
			v, err := cmd.Result()
			switch {
			case err == nil:
				out[chunk[i]] = v
			case !errors.Is(err, redis.Nil):
				t.Fatalf("GET %s: %v", chunk[i], err)
			}
		}
	}
	return out
}

// TestMaxMemoryClusterEvicts: three memory nodes, each with --maxmemory 4mb and
// allkeys-lru (N=3: every node holds every key), take 80 MiB of unique 8 KiB
// writes through all three (6.7x the three budgets together, 20x one node's).
// Checked:
//   - every node's used_memory, polled every 100 ms during the load, stays within
//     maxmemory plus a slack (replica writes are accepted over the limit; the
//     evictor brings the node back), and comes back within a record of it after
//     the load; its peak RSS (VmHWM) stays within 1.5 x maxmemory plus a fixed
//     overhead;
//   - every node evicts (INFO evicted_keys, memcached's evictions and
//     limit_maxbytes) and SETs succeed: few or no -OOM;
//   - no evicted key comes back: every key is written once, so a key a GET missed
//     (during the load, or in a sweep after it) was evicted, and it must miss in
//     every later sweep through every node, after anti-entropy has had rounds to
//     carry the tombstones; DGET LOCAL on every node then finds no value of it.
//     During the load a GET may hit after a miss while the eviction's tombstone
//     is on fewer than W replicas (quorum reads are not monotonic under a write
//     in flight): such hits are counted and logged, not failed.
func TestMaxMemoryClusterEvicts(t *testing.T) {
	if testing.Short() {
		t.Skip("three processes; skipped with -short")
	}
	const (
		limit    = 4 << 20
		valueLen = 8 << 10
		writes   = 10 << 10 // 80 MiB of values
		workers  = 4        // per node
		// slack over maxmemory while writes arrive: a full node takes the
		// replica writes the other coordinators admitted (Redis's
		// replica-ignore-maxmemory) before its evictor makes room, so up to one
		// record per writer in flight (12 x 9 KiB = 108 KiB, 2.6 %).
		slack = 3 * workers * (valueLen + 1<<10)
		// fixed is what a small memory node holds besides 1.5 x its data:
		// 104 MiB of caches at their configured sizes (record cache 32 MiB, its
		// minimum; Pebble's block cache 64 MiB; memtables 2 x 4 MiB) and 72 MiB
		// for the Go runtime and heap: an idle node is at 23 MiB RSS, and the
		// memory filesystem's files live on the Go heap (17 MiB here, 4x the
		// data: WAL, sstables and obsolete ones until compaction), with the
		// GC's headroom on top. Peak RSS measured: 143-156 MiB.
		fixed = 176 << 20
	)
	procs := startCluster(t, 3, "--storage", "memory", "--maxmemory", "4mb", "--maxmemory-policy", "allkeys-lru",
		"--record-cache-mb", "32", "--aae-interval", "1s", "--tombstone-grace", "1s")
	start := time.Now()
	lctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	clients := make([]*redis.Client, len(procs))
	for i, p := range procs {
		clients[i] = newRedis(p.RESP, 2)
		defer clients[i].Close()
	}
	key := func(i int) string { return fmt.Sprintf("mm-%06d", i) }
	value := func(i int) string { return fmt.Sprintf("%06d", i) + strings.Repeat("v", valueLen-6) }

	var (
		mu      sync.Mutex
		acked   []int              // keys whose only SET was acknowledged
		missed  = map[int]string{} // key -> when and where a GET first missed
		flapped = map[int]string{} // key -> a GET hit after a miss, during the load
		ooms    atomic.Int64       // -OOM replies
		failed  atomic.Int64       // other errors
		firstEr atomic.Pointer[error]
	)
	// Load: writes unique keys through every node, bounded by count and time.
	loadDeadline := time.Now().Add(60 * time.Second)
	var next atomic.Int64
	var wg sync.WaitGroup
	for n := range procs {
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(loadDeadline) {
					i := int(next.Add(1) - 1)
					if i >= writes {
						return
					}
					err := clients[n].Set(lctx, key(i), value(i), 0).Err()
					switch {
					case err == nil:
						mu.Lock()
						acked = append(acked, i)
						mu.Unlock()
					case err.Error() == respOOM:
						ooms.Add(1)
					default:
						failed.Add(1)
						firstEr.CompareAndSwap(nil, &err)
					}
				}
			}()
		}
	}
	// Readers: one per node GETs random acknowledged keys while the load runs.
	loadDone := make(chan struct{})
	var rg sync.WaitGroup
	var reads atomic.Int64
	for n := range procs {
		rg.Add(1)
		go func() {
			defer rg.Done()
			rnd := rand.New(rand.NewPCG(uint64(n), 18))
			for range writes {
				select {
				case <-loadDone:
					return
				default:
				}
				mu.Lock()
				if len(acked) == 0 {
					mu.Unlock()
					time.Sleep(time.Millisecond)
					continue
				}
				i := acked[rnd.IntN(len(acked))]
				mu.Unlock()
				v, err := clients[n].Get(lctx, key(i)).Result()
				reads.Add(1)
				mu.Lock()
				switch {
				case errors.Is(err, redis.Nil):
					if _, ok := missed[i]; !ok {
						missed[i] = fmt.Sprintf("during the load at %v through %s", time.Since(start).Round(time.Millisecond), procs[n].name)
					}
				case err != nil:
					failed.Add(1)
					firstEr.CompareAndSwap(nil, &err)
				case v != value(i):
					t.Errorf("GET %s through %s: %.12q..., not the value written", key(i), procs[n].name, v)
				default:
					if m, ok := missed[i]; ok {
						flapped[i] = m + fmt.Sprintf(", hit at %v through %s", time.Since(start).Round(time.Millisecond), procs[n].name)
					}
				}
				mu.Unlock()
			}
		}()
	}
	// Monitor: every node's INFO memory, every 100 ms while the load runs.
	worst := make([]int64, len(procs)) // largest used_memory seen
	var mg sync.WaitGroup
	mg.Add(1)
	go func() {
		defer mg.Done()
		for range 2000 {
			for n, p := range procs {
				if f, ok := memInfo(t, p); ok {
					worst[n] = max(worst[n], f.used)
				}
			}
			select {
			case <-loadDone:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	wg.Wait()
	close(loadDone)
	rg.Wait()
	mg.Wait()
	loadTime := time.Since(start)
	if e := firstEr.Load(); e != nil {
		t.Errorf("%d SETs or GETs failed other than -OOM, the first: %v", failed.Load(), *e)
	}
	t.Logf("load: %d of %d SETs of %d B acknowledged, %d -OOM, in %v; %d GETs during it, %d missed",
		len(acked), writes, valueLen, ooms.Load(), loadTime.Round(time.Millisecond), reads.Load(), len(missed))
	if len(acked) < writes*9/10 {
		t.Fatalf("only %d of %d writes acknowledged within the load's time bound", len(acked), writes)
	}
	if o := ooms.Load(); o > writes/100 {
		t.Errorf("%d of %d SETs answered -OOM under allkeys-lru, want few or none", o, writes)
	}

	// The limits, during the load and once the evictors have caught up.
	for n, p := range procs {
		if worst[n] > limit+slack {
			t.Errorf("%s: used_memory reached %d during the load, maxmemory %d + slack %d", p.name, worst[n], limit, slack)
		}
	}
	var evicted int64
	for n, p := range procs {
		var f memFigures
		eventually(t, 10*time.Second, p.name+" used_memory back within maxmemory", func() bool {
			var ok bool
			f, ok = memInfo(t, p)
			return ok && f.used <= limit+2*valueLen
		})
		if f.max != limit || f.policy != "allkeys-lru" {
			t.Errorf("%s: INFO maxmemory %d policy %q", p.name, f.max, f.policy)
		}
		hwm := p.peakRSS(t)
		m := infoSection(t, p, "memory")
		t.Logf("%s: used_memory peak during the load %d (maxmemory %d), now %d, graves %d, evicted_keys %d; RSS %.1f MiB, peak RSS %.1f MiB; Go heap %s, memory fs %s, memtables %s MiB, record cache %s",
			p.name, worst[n], limit, f.used, f.graves, f.evicted, float64(f.rss)/(1<<20), float64(hwm)/(1<<20),
			m["go_heap_alloc"], m["storage_fs_bytes"], m["storage_memtable_mb"], m["record_cache_bytes"])
		if hwm > limit*3/2+fixed {
			t.Errorf("%s: peak RSS %d > 1.5 x maxmemory + %d MiB", p.name, hwm, fixed>>20)
		}
		if f.evicted == 0 {
			t.Errorf("%s evicted nothing", p.name)
		}
		st := mcStats(t, p.Memcache, "stats")
		if st["limit_maxbytes"] != strconv.Itoa(limit) {
			t.Errorf("%s: memcached limit_maxbytes %s, want %d", p.name, st["limit_maxbytes"], limit)
		}
		if ev, err := strconv.ParseInt(st["evictions"], 10, 64); err != nil || ev < f.evicted {
			t.Errorf("%s: memcached evictions %s, INFO evicted_keys %d before", p.name, st["evictions"], f.evicted)
		}
		if s := mcStats(t, p.Memcache, "stats settings"); s["maxbytes"] != strconv.Itoa(limit) || s["evictions"] != "on" {
			t.Errorf("%s: stats settings maxbytes %s evictions %s", p.name, s["maxbytes"], s["evictions"])
		}
		evicted += f.evicted
	}

	// No resurrection. Sweep every acknowledged key through every node, now and
	// again after anti-entropy rounds (--aae-interval 1s); a key that missed
	// before must miss after.
	keys := make([]string, len(acked))
	for j, i := range acked {
		keys[j] = key(i)
	}
	sweep := func(round string) {
		for n, c := range clients {
			got := readAll(t, c, keys)
			for _, i := range acked {
				v, hit := got[key(i)]
				m, wasMissed := missed[i]
				switch {
				case hit && v != value(i):
					t.Fatalf("%s: GET %s through %s: %.12q..., not the value written", round, key(i), procs[n].name, v)
				case hit && wasMissed:
					t.Fatalf("%s: %s is back through %s; it missed %s", round, key(i), procs[n].name, m)
				case !hit && !wasMissed:
					missed[i] = fmt.Sprintf("in the %s through %s", round, procs[n].name)
				}
			}
		}
	}
	sweep("sweep after the load")
	if len(missed) < len(acked)/2 {
		t.Fatalf("%d of %d keys missed with room for about %d per node", len(missed), len(acked), limit/valueLen)
	}
	rounds := func() (sum int) {
		for _, p := range procs {
			r, _ := strconv.Atoi(info(t, p)["aae_rounds"])
			sum += r
		}
		return sum
	}
	r0 := rounds()
	eventually(t, 20*time.Second, "two anti-entropy rounds on every node", func() bool { return rounds() >= r0+2*len(procs) })
	sweep("sweep after anti-entropy")
	for n, p := range procs {
		c := clients[n]
		var live []string
		for start := 0; start < len(acked); start += 1000 {
			cx := ctx(t)
			pipe := c.Pipeline()
			cmds := map[int]*redis.Cmd{}
			for _, i := range acked[start:min(start+1000, len(acked))] {
				if _, ok := missed[i]; ok {
					cmds[i] = pipe.Do(cx, "DGET", key(i), "LOCAL")
				}
			}
			if _, err := pipe.Exec(cx); err != nil && !errors.Is(err, redis.Nil) {
				t.Fatalf("DGET LOCAL through %s: %v", p.name, err)
			}
			for i, cmd := range cmds {
				r, err := cmd.Slice()
				if errors.Is(err, redis.Nil) {
					continue
				}
				if err != nil || len(r) != 2 {
					t.Fatalf("DGET %s LOCAL on %s = %v, %v", key(i), p.name, r, err)
				}
				if sibs, _ := r[1].([]any); len(sibs) > 0 {
					live = append(live, key(i))
				}
			}
		}
		if len(live) > 0 {
			t.Errorf("%s holds a value of %d keys that missed before, after anti-entropy: %v", p.name, len(live), live[:min(5, len(live))])
		}
	}
	t.Logf("%d of %d keys evicted (missed), %d evictions counted over the nodes; %d GETs hit after a miss during the load (an eviction in flight), e.g. %v; whole test %v",
		len(missed), len(acked), evicted, len(flapped), firstOf(flapped), time.Since(start).Round(time.Millisecond))
}

// firstOf returns one of m's entries, for a log line.
func firstOf(m map[int]string) string {
	for k, v := range m {
		return fmt.Sprintf("key %d: %s", k, v)
	}
	return "none"
}

// TestMaxMemoryClusterNoEviction: three memory nodes with --maxmemory 1mb and
// noeviction take 1 KiB writes through all three until they refuse them; then
// every node answers a SET with Redis's exact -OOM line and a memcached set with
// SERVER_ERROR out of memory storing object, on connections that stay usable;
// GETs work and every acknowledged write reads back through every node; nothing
// was evicted; DEL frees room and SETs work again.
func TestMaxMemoryClusterNoEviction(t *testing.T) {
	if testing.Short() {
		t.Skip("three processes; skipped with -short")
	}
	const limit, valueLen, bound = 1 << 20, 1024, 4096
	procs := startCluster(t, 3, "--storage", "memory", "--maxmemory", "1mb", "--maxmemory-policy", "noeviction")
	clients := make([]*redis.Client, len(procs))
	for i, p := range procs {
		clients[i] = newRedis(p.RESP, 2)
		defer clients[i].Close()
	}
	value := func(i int) string { return fmt.Sprintf("%06d", i) + strings.Repeat("n", valueLen-6) }
	// Fill until 30 SETs in a row (10 through each node) are refused: a node
	// may reach its limit a few writes before another.
	acked := map[string]string{}
	refused, inRow := 0, 0
	for i := 0; inRow < 30; i++ {
		if i == bound {
			t.Fatalf("%d SETs of %d B under a %d-byte limit: %d acknowledged, %d refused", bound, valueLen, limit, len(acked), refused)
		}
		k := fmt.Sprintf("ne-%05d", i)
		err := clients[i%len(clients)].Set(ctx(t), k, value(i), 0).Err()
		switch {
		case err == nil:
			acked[k] = value(i)
			inRow = 0
		case err.Error() == respOOM:
			refused++
			inRow++
		default:
			t.Fatalf("SET %s: %v, want nil or %q", k, err, respOOM)
		}
	}
	if len(acked)*valueLen < limit/2 {
		t.Fatalf("refused after %d acknowledged writes of %d B under a %d-byte limit", len(acked), valueLen, limit)
	}
	t.Logf("%d SETs of %d B acknowledged, %d refused (-OOM) under a %d-byte limit", len(acked), valueLen, refused, limit)
	for _, p := range procs {
		r := dialRaw(t, p.RESP)
		r.send("*3\r\n$3\r\nSET\r\n$4\r\nfull\r\n$1\r\nx\r\n")
		if got := r.line(); got != "-"+respOOM+"\r\n" {
			t.Errorf("%s: SET when full answered %q", p.name, got)
		}
		k := firstKey(acked)
		r.send(fmt.Sprintf("*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(k), k))
		if got := r.line(); got != fmt.Sprintf("$%d\r\n", valueLen) {
			t.Errorf("%s: GET %s when full answered %q", p.name, k, got)
		}
		m := dialRaw(t, p.Memcache)
		m.send("set full 0 0 1\r\nx\r\n")
		if got := m.line(); got != mcOOM+"\r\n" {
			t.Errorf("%s: memcached set when full answered %q", p.name, got)
		}
		m.send("get " + k + "\r\n")
		if got := m.line(); !strings.HasPrefix(got, "VALUE "+k+" ") {
			t.Errorf("%s: memcached get %s when full answered %q", p.name, k, got)
		}
		f, ok := memInfo(t, p)
		if !ok || f.max != limit || f.policy != "noeviction" || f.evicted != 0 || f.used <= limit-2*valueLen {
			t.Errorf("%s: INFO maxmemory %d policy %q evicted_keys %d used_memory %d: want %d, noeviction, 0, about full",
				p.name, f.max, f.policy, f.evicted, f.used, limit)
		}
		if st := mcStats(t, p.Memcache, "stats"); st["limit_maxbytes"] != strconv.Itoa(limit) || st["evictions"] != "0" {
			t.Errorf("%s: memcached stats limit_maxbytes %s evictions %s", p.name, st["limit_maxbytes"], st["evictions"])
		}
		if s := mcStats(t, p.Memcache, "stats settings"); s["evictions"] != "off" {
			t.Errorf("%s: memcached stats settings evictions %s, want off under noeviction", p.name, s["evictions"])
		}
	}
	keys := make([]string, 0, len(acked))
	for k := range acked {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	readBack := func(when string) {
		for n, c := range clients {
			got := readAll(t, c, keys)
			for _, k := range keys {
				if got[k] != acked[k] {
					t.Fatalf("%s: GET %s through %s: %d bytes, want the %d acknowledged", when, k, procs[n].name, len(got[k]), valueLen)
				}
			}
		}
	}
	readBack("when full")
	// DEL a quarter of the keys: their tombstones fit the allowance, so the
	// bytes are free at once, on every node.
	gone := keys[:len(keys)/4]
	if n, err := clients[0].Del(ctx(t), gone...).Result(); err != nil || n != int64(len(gone)) {
		t.Fatalf("DEL of %d keys when full: %d, %v", len(gone), n, err)
	}
	for _, k := range gone {
		delete(acked, k)
	}
	keys = keys[len(gone):]
	for n, c := range clients {
		k := fmt.Sprintf("again-%d", n)
		eventually(t, 10*time.Second, "a SET through "+procs[n].name+" after DEL", func() bool {
			return c.Set(ctx(t), k, "x", 0).Err() == nil
		})
		acked[k] = "x"
		keys = append(keys, k)
	}
	readBack("after DEL")
}

// firstKey returns the smallest key of m.
func firstKey(m map[string]string) string {
	return slices.Min(slices.Collect(maps.Keys(m)))
}
