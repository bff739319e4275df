package node

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lni/goutils/leaktest"
	"github.com/redis/go-redis/v9"

	"github.com/dynakv/dynakv/vclock"
)

// TestConfigMaxMemoryDefaults: no limit; a memory node is a cache
// (allkeys-lru), a disk node refuses (noeviction); 5 samples.
func TestConfigMaxMemoryDefaults(t *testing.T) {
	for st, want := range map[string]string{StorageDisk: PolicyNoEviction, StorageMemory: "allkeys-lru"} {
		c := Config{Name: "x", Storage: st}.EnsureDefaults()
		if c.MaxMemory != 0 || c.MaxMemoryPolicy != want || c.MaxMemorySamples != 5 {
			t.Errorf("%s: maxmemory %d, policy %q, samples %d; want 0, %s, 5", st, c.MaxMemory, c.MaxMemoryPolicy, c.MaxMemorySamples, want)
		}
	}
}

// infoFields returns INFO section's fields, failing on a key shown twice.
func infoFields(t *testing.T, c *redis.Client, section string) map[string]string {
	t.Helper()
	out, err := c.Info(context.Background(), section).Result()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(out, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if _, dup := m[k]; dup {
			t.Errorf("INFO %s shows %s twice", section, k)
		}
		m[k] = v
	}
	return m
}

func infoInt(t *testing.T, m map[string]string, k string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(m[k], 10, 64)
	if err != nil {
		t.Fatalf("INFO %s = %q", k, m[k])
	}
	return v
}

// mcConn is a raw memcached connection.
type mcConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialMC(t *testing.T, addr string) *mcConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &mcConn{t: t, c: c, r: bufio.NewReader(c)}
}

// do sends s and returns the reply's first line, without "\r\n".
func (m *mcConn) do(s string) string {
	m.t.Helper()
	m.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := m.c.Write([]byte(s)); err != nil {
		m.t.Fatal(err)
	}
	l, err := m.r.ReadString('\n')
	if err != nil {
		m.t.Fatal(err)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// stats returns the lines of "stats" or "stats settings".
func (m *mcConn) stats(cmd string) map[string]string {
	m.t.Helper()
	out := map[string]string{}
	for l := m.do(cmd + "\r\n"); l != "END"; l = m.do("") {
		f := strings.Fields(l)
		if len(f) != 3 {
			m.t.Fatalf("%s line %q", cmd, l)
		}
		if _, dup := out[f[1]]; dup {
			m.t.Errorf("%s shows %s twice", cmd, f[1])
		}
		out[f[1]] = f[2]
	}
	return out
}

const (
	respOOM = "OOM command not allowed when used memory > 'maxmemory'."
	mcOOM   = "SERVER_ERROR out of memory storing object"
)

// TestMaxMemoryNoEviction: a node with --maxmemory a little above its starting
// usage takes writes until used_memory passes the limit, then answers -OOM (RESP)
// and SERVER_ERROR out of memory storing object (memcached) to growing writes on
// a connection that stays usable, while reads work; DEL frees at once (the
// tombstones fit the allowance) and writes work again. INFO and memcached's
// stats show the limit and the usage, each key once.
func TestMaxMemoryNoEviction(t *testing.T) {
	const limit = 64 << 10
	n := startTestNode(t, Config{MaxMemory: limit, MaxMemoryPolicy: PolicyNoEviction})
	defer n.Close()
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: n.RESPAddr(), MaxRetries: -1})
	defer c.Close()
	mc := dialMC(t, n.MemcacheAddr())

	m := infoFields(t, c, "memory")
	if start := infoInt(t, m, "used_memory"); start >= limit {
		t.Fatalf("starting used_memory %d is not under %d", start, limit)
	}
	for k, want := range map[string]string{"maxmemory": strconv.Itoa(limit), "maxmemory_human": "64.00K", "maxmemory_policy": "noeviction"} {
		if m[k] != want {
			t.Errorf("INFO %s = %q, want %q", k, m[k], want)
		}
	}
	value := strings.Repeat("v", 1024)
	var keys []string
	for i := 0; ; i++ {
		if i == 200 {
			t.Fatal("200 SETs of 1 KiB under a 64 KiB limit all succeeded")
		}
		k := fmt.Sprint("k", i)
		err := c.Set(ctx, k, value, 0).Err()
		if err != nil {
			if err.Error() != respOOM {
				t.Fatalf("SET %s: %v, want %q", k, err, respOOM)
			}
			break
		}
		keys = append(keys, k)
	}
	m = infoFields(t, c, "memory")
	if used := infoInt(t, m, "used_memory"); used <= limit || used > limit+2048 {
		t.Errorf("used_memory %d when full, want just over %d", used, limit)
	}
	if infoInt(t, m, "used_memory_dataset") != infoInt(t, m, "used_memory") {
		t.Errorf("without deletes used_memory_dataset %s != used_memory %s", m["used_memory_dataset"], m["used_memory"])
	}
	for _, cmd := range [][]any{{"MSET", "a", "1", "b", "2"}, {"INCR", "ctr"}, {"APPEND", keys[0], "x"}, {"COPY", keys[0], "copy"}} {
		if err := c.Do(ctx, cmd...).Err(); err == nil || err.Error() != respOOM {
			t.Errorf("%v when full: %v", cmd, err)
		}
	}
	if got := mc.do("set m 0 0 1\r\nx\r\n"); got != mcOOM {
		t.Errorf("memcached set when full: %q", got)
	}
	if got := mc.do("incr " + keys[0] + " 1\r\n"); got != "CLIENT_ERROR cannot increment or decrement non-numeric value" && got != mcOOM {
		t.Errorf("memcached incr when full: %q", got)
	}
	st := mc.stats("stats")
	if st["limit_maxbytes"] != strconv.Itoa(limit) || st["bytes"] != m["used_memory"] || st["evictions"] != "0" {
		t.Errorf("stats: limit_maxbytes %s bytes %s evictions %s; want %d, %s, 0", st["limit_maxbytes"], st["bytes"], st["evictions"], limit, m["used_memory"])
	}
	if set := mc.stats("stats settings"); set["maxbytes"] != strconv.Itoa(limit) || set["evictions"] != "off" {
		t.Errorf("stats settings: maxbytes %s evictions %s", set["maxbytes"], set["evictions"])
	}
	met := httpGet(t, "http://"+n.HTTPAddr()+"/metrics")
	for _, want := range []string{"dynakv_maxmemory_bytes 65536", "dynakv_used_memory_bytes " + m["used_memory"]} {
		if !strings.Contains(met, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if got, err := c.Get(ctx, keys[0]).Result(); err != nil || got != value {
		t.Errorf("GET when full: %d bytes, %v", len(got), err)
	}
	if got, err := c.Del(ctx, keys[:8]...).Result(); err != nil || got != 8 {
		t.Fatalf("DEL when full: %d, %v", got, err)
	}
	m = infoFields(t, c, "memory")
	if used := infoInt(t, m, "used_memory"); used >= limit {
		t.Errorf("used_memory %d after DEL of 8 KiB, want under %d", used, limit)
	}
	if g := infoInt(t, m, "used_memory_graves"); g == 0 || infoInt(t, m, "mem_not_counted_for_evict") != g {
		t.Errorf("graves %s, not counted %s: want the same, not 0", m["used_memory_graves"], m["mem_not_counted_for_evict"])
	}
	if err := c.Set(ctx, "again", "x", 0).Err(); err != nil {
		t.Errorf("SET after DEL: %v", err)
	}
	if got := mc.do("set m 0 0 1\r\nx\r\n"); got != "STORED" {
		t.Errorf("memcached set after DEL: %q", got)
	}
	if got := infoFields(t, c, "stats"); got["evicted_keys"] != "0" || got["expired_keys"] == "" {
		t.Errorf("INFO stats evicted_keys %q expired_keys %q", got["evicted_keys"], got["expired_keys"])
	}
}

// TestConfigSetMaxMemory: CONFIG SET maxmemory takes effect at once (a node
// without a limit refuses growing writes once the limit is under its usage, and
// takes them again at 0), CONFIG GET and INFO show the live values, volatile-lru
// with no key that has an expiry answers -OOM as Redis does, and
// maxmemory-samples is checked (1..64).
func TestConfigSetMaxMemory(t *testing.T) {
	n := startTestNode(t, Config{MaxMemoryPolicy: PolicyNoEviction})
	defer n.Close()
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: n.RESPAddr(), MaxRetries: -1})
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.ConfigGet(ctx, "maxmemory").Result(); got["maxmemory"] != "0" {
		t.Errorf("CONFIG GET maxmemory = %v", got)
	}
	if err := c.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "k2", "v", 0).Err(); err == nil || err.Error() != respOOM {
		t.Errorf("SET after CONFIG SET maxmemory 1: %v", err)
	}
	// volatile-lru with no key that has an expiry: nothing evictable, -OOM.
	if err := c.ConfigSet(ctx, "maxmemory-policy", "volatile-lru").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "k2", "v", 0).Err(); err == nil || err.Error() != respOOM {
		t.Errorf("SET under volatile-lru with no volatile key: %v", err)
	}
	if got, _ := c.Get(ctx, "k").Result(); got != "v" {
		t.Errorf("volatile-lru evicted a persistent key: GET k = %q", got)
	}
	if err := c.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.ConfigSet(ctx, "maxmemory-samples", "65").Err(); err == nil {
		t.Error("CONFIG SET maxmemory-samples 65 accepted")
	}
	if err := c.ConfigSet(ctx, "maxmemory-samples", "10").Err(); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.ConfigGet(ctx, "maxmemory-samples").Result(); got["maxmemory-samples"] != "10" {
		t.Errorf("CONFIG GET maxmemory-samples = %v", got)
	}
	if err := c.ConfigSet(ctx, "maxmemory", "64mb").Err(); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.ConfigGet(ctx, "maxmemory*").Result(); got["maxmemory"] != "67108864" || got["maxmemory-policy"] != "noeviction" {
		t.Errorf("CONFIG GET maxmemory* = %v", got)
	}
	if m := infoFields(t, c, "memory"); m["maxmemory"] != "67108864" || m["maxmemory_human"] != "64.00M" {
		t.Errorf("INFO maxmemory %q %q", m["maxmemory"], m["maxmemory_human"])
	}
	if err := c.Set(ctx, "k2", "v", 0).Err(); err != nil {
		t.Errorf("SET under 64mb: %v", err)
	}
}

// TestForwardedWriteToFullNode: with N=1 each key has one owner; a write sent to
// the other node is forwarded to the owner, which checks its own limit where the
// op executes: a full owner's refusal comes back through the front node as -OOM
// (memcached: SERVER_ERROR out of memory storing object), while keys the front
// owns, and replica writes, are not affected.
func TestForwardedWriteToFullNode(t *testing.T) {
	nodes := startTestClusterWith(t, 2, func(_ int, c *Config) { c.N, c.R, c.W, c.MaxMemoryPolicy = 1, 1, 1, PolicyNoEviction })
	ctx := context.Background()
	front, full := twoClients(t, nodes)
	remote, local := keyFirstOwnedBy(t, front, "n2"), keyFirstOwnedBy(t, front, "n1")
	if err := front.Set(ctx, remote, "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := full.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := front.Set(ctx, remote, "w", 0).Err(); err == nil || err.Error() != respOOM {
		t.Errorf("SET of n2's key through n1 with n2 full: %v, want %q", err, respOOM)
	}
	mc := dialMC(t, nodes[0].MemcacheAddr())
	if got := mc.do("set " + remote + " 0 0 1\r\nx\r\n"); got != mcOOM {
		t.Errorf("memcached set of n2's key through n1 with n2 full: %q", got)
	}
	if got, err := front.Get(ctx, remote).Result(); err != nil || got != "v" {
		t.Errorf("GET of n2's key through n1: %q, %v", got, err)
	}
	if err := front.Set(ctx, local, "v", 0).Err(); err != nil {
		t.Errorf("SET of n1's own key: %v", err)
	}
	if err := front.Del(ctx, remote).Err(); err != nil {
		t.Errorf("DEL of n2's key through n1: %v", err)
	}
}

// TestFullReplicaAcceptsReplicaWrites: a full node still takes replica writes
// from the coordinator (Redis's replica-ignore-maxmemory): a W=2 write
// coordinated by the other node succeeds and lands on the full node too.
func TestFullReplicaAcceptsReplicaWrites(t *testing.T) {
	nodes := startTestClusterWith(t, 2, func(_ int, c *Config) { c.N, c.R, c.W, c.MaxMemoryPolicy = 2, 1, 2, PolicyNoEviction })
	ctx := context.Background()
	front, full := twoClients(t, nodes)
	key := keyFirstOwnedBy(t, front, "n1")
	if err := full.Set(ctx, "filler", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := full.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := full.Set(ctx, "x", "y", 0).Err(); err == nil || err.Error() != respOOM {
		t.Fatalf("the full node takes a client write: %v", err)
	}
	if err := front.Set(ctx, key, "v", 0).Err(); err != nil {
		t.Fatalf("W=2 SET with a full replica: %v", err)
	}
	got, err := full.Do(ctx, "DGET", key, "LOCAL").Slice()
	if err != nil || len(got) != 2 || fmt.Sprint(got[1]) != "[v]" {
		t.Errorf("DGET LOCAL on the full replica = %v, %v; want the value", got, err)
	}
}

// twoClients returns RESP clients of the first two nodes, closed when t ends.
func twoClients(t *testing.T, nodes []*Node) (*redis.Client, *redis.Client) {
	var cs [2]*redis.Client
	for i := range cs {
		cs[i] = redis.NewClient(&redis.Options{Addr: nodes[i].RESPAddr(), MaxRetries: -1})
		t.Cleanup(func() { cs[i].Close() })
	}
	return cs[0], cs[1]
}

// keyFirstOwnedBy returns a key whose preference list starts with node: the
// node that coordinates its ops.
func keyFirstOwnedBy(t *testing.T, c *redis.Client, node string) string {
	t.Helper()
	for i := range 1000 {
		k := fmt.Sprint("k", i)
		pl, err := c.Do(context.Background(), "DPREFLIST", k).StringSlice()
		if err != nil || len(pl) == 0 {
			t.Fatalf("DPREFLIST %s = %v, %v", k, pl, err)
		}
		if pl[0] == node {
			return k
		}
	}
	t.Fatalf("no key first owned by %s among 1000", node)
	return ""
}

// steppedClock is the wall clock plus a second per Step: LRU stamps have a
// resolution of a second, and a test that writes thousands of keys in a second
// needs them to age.
type steppedClock struct{ steps atomic.Int64 }

func (c *steppedClock) Now() time.Time {
	return time.Now().Add(time.Duration(c.steps.Load()) * time.Second)
}

func (c *steppedClock) Step() { c.steps.Add(1) }

// TestMaxMemoryEvicts: one memory node with a small --maxmemory and an evicting
// policy takes 8x its budget of unique writes, every one of them; used_memory
// stays within the limit plus one record at every step; evicted_keys (INFO,
// memcached's evictions) counts what went; and keys read between the writes
// (hot) survive while most of the others are evicted.
func TestMaxMemoryEvicts(t *testing.T) {
	for _, policy := range []string{"allkeys-lru", "allkeys-lfu"} {
		t.Run(policy, func(t *testing.T) {
			const limit, valueLen, writes, hot = 256 << 10, 1024, 2048, 16
			clock := &steppedClock{}
			n := startTestNode(t, Config{MaxMemory: limit, MaxMemoryPolicy: policy, Now: clock.Now})
			defer n.Close()
			ctx := context.Background()
			c := redis.NewClient(&redis.Options{Addr: n.RESPAddr(), MaxRetries: -1})
			defer c.Close()
			value := strings.Repeat("v", valueLen)
			readHot := func() {
				// The evictor ticks the access table's clock every 10 ms; tick it
				// now, or with a second per write the reads would be stamped
				// several writes ago.
				if tb := n.store.Access(); tb != nil {
					tb.Tick(clock.Now().UnixMilli())
				}
				for i := range hot {
					if err := c.Get(ctx, fmt.Sprint("hot", i)).Err(); err != nil {
						t.Fatalf("GET hot%d: %v (INFO %v %v)", i, err, infoFields(t, c, "memory")["used_memory"], infoFields(t, c, "stats")["evicted_keys"])
					}
				}
			}
			for i := range hot {
				if err := c.Set(ctx, fmt.Sprint("hot", i), value, 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			peak, refused := int64(0), 0
			for i := range writes {
				clock.Step()
				// Admit waits up to 500 ms for the evictor's room: on a loaded
				// machine (-race, CI) that may pass, so -OOM is retried, a
				// bounded number of times.
				for {
					err := c.Set(ctx, fmt.Sprint("k", i), value, 0).Err()
					if err == nil {
						break
					}
					if err.Error() != respOOM || refused == writes/8 {
						t.Fatalf("SET k%d over the limit under %s: %v (%d refused before)", i, policy, err, refused)
					}
					refused++
				}
				if i%16 == 0 {
					readHot()
					peak = max(peak, infoInt(t, infoFields(t, c, "memory"), "used_memory"))
				}
			}
			if peak > limit+2*valueLen {
				t.Errorf("used_memory peaked at %d, limit %d", peak, limit)
			}
			if refused > 0 {
				t.Logf("%d SETs refused (-OOM) and retried", refused)
			}
			evicted := infoInt(t, infoFields(t, c, "stats"), "evicted_keys")
			if evicted < writes/2 {
				t.Errorf("evicted_keys %d after %d writes of %d bytes into %d", evicted, writes, valueLen, limit)
			}
			lost := 0
			for i := range hot {
				if err := c.Get(ctx, fmt.Sprint("hot", i)).Err(); err != nil {
					lost++
				}
			}
			if lost > 0 {
				t.Errorf("%d of %d hot keys evicted", lost, hot)
			}
			mc := dialMC(t, n.MemcacheAddr())
			if ev, err := strconv.ParseInt(mc.stats("stats")["evictions"], 10, 64); err != nil || ev < evicted {
				t.Errorf("memcached evictions %d (%v), INFO evicted_keys %d before", ev, err, evicted)
			}
			if set := mc.stats("stats settings"); set["evictions"] != "on" {
				t.Errorf("stats settings: evictions %q under %s", set["evictions"], policy)
			}
		})
	}
}

// TestMaxMemoryEvictsCluster: three memory nodes with the same small
// --maxmemory (every node holds every key: N = 3) take 8x the budget of unique
// writes through all of them; every node stays within its limit (plus a record)
// and evicts; a key whose quorum GET misses is, after anti-entropy rounds on
// every node, still absent from every replica (the eviction tombstone won: no
// resurrection).
func TestMaxMemoryEvictsCluster(t *testing.T) {
	t.Cleanup(leaktest.AfterTest(t))
	const limit, valueLen, writes = 256 << 10, 1024, 2048
	nodes := startTestClusterWith(t, 3, func(_ int, c *Config) {
		c.MaxMemory, c.MaxMemoryPolicy = limit, "allkeys-lru"
	})
	ctx := context.Background()
	cs := make([]*redis.Client, len(nodes))
	for i, n := range nodes {
		cs[i] = redis.NewClient(&redis.Options{Addr: n.RESPAddr(), MaxRetries: -1})
		defer cs[i].Close()
	}
	value := strings.Repeat("v", valueLen)
	refused := 0
	for i := range writes {
		for {
			err := cs[i%len(cs)].Set(ctx, fmt.Sprint("k", i), value, 0).Err()
			if err == nil {
				break
			}
			// Admit waits 500 ms for room; a loaded machine may need more.
			if err.Error() != respOOM || refused == writes/8 {
				t.Fatalf("SET k%d: %v (%d refused before)", i, err, refused)
			}
			refused++
		}
	}
	if refused > 0 {
		t.Logf("%d SETs refused (-OOM) and retried", refused)
	}
	// Replica writes are accepted over the limit: wait (bounded) for every
	// evictor to bring its node back under it.
	deadline := time.Now().Add(10 * time.Second)
	for i, n := range nodes {
		for u := n.usage(); u.used > limit+2*valueLen; u = n.usage() {
			if time.Now().After(deadline) {
				t.Fatalf("n%d: used_memory %d > maxmemory %d", i+1, u.used, limit)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if ev := n.evictor.Evicted(); ev == 0 {
			t.Errorf("n%d evicted nothing", i+1)
		}
	}
	var missed []string
	for i := range writes {
		k := fmt.Sprint("k", i)
		if err := cs[0].Get(ctx, k).Err(); err == redis.Nil {
			missed = append(missed, k)
		} else if err != nil {
			t.Fatalf("GET %s: %v", k, err)
		}
	}
	if len(missed) < writes/2 {
		t.Fatalf("only %d of %d keys missed with a budget of about %d", len(missed), writes, limit/valueLen)
	}
	for range 2 {
		for _, n := range nodes {
			if err := n.aae.RunOnce(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	now := time.Now().UnixMilli()
	for _, k := range missed {
		for i, n := range nodes {
			rec, _, err := n.store.Get([]byte(k))
			if err != nil {
				t.Fatal(err)
			}
			if w, ok := vclock.Winner(rec.Str.Siblings()); ok && w.Live(now) {
				t.Fatalf("%s missed a quorum GET, yet n%d holds it live after anti-entropy", k, i+1)
			}
		}
		if err := cs[1].Get(ctx, k).Err(); err != redis.Nil {
			t.Fatalf("GET %s after anti-entropy: %v, want a miss", k, err)
		}
	}
}

// TestConfigMemoryCacheDefaults: memory storage with a maxmemory takes the
// memory cache's defaults for the fields left zero; given values stay; a disk
// node, or a memory node without a limit, keeps the general defaults but for
// the tombstone grace, 1 s on any memory node.
func TestConfigMemoryCacheDefaults(t *testing.T) {
	d := DefaultConfig()
	cache := Config{Name: "x", Storage: StorageMemory, MaxMemory: 64 << 20}
	for _, tc := range []struct {
		name  string
		in    Config
		grace time.Duration
		aae   int
		block int64
		mem   int64
		rec   int64
	}{
		{"memory cache", cache, time.Second, 100000, 8 << 20, 2 << 20, 32 << 20},
		{"memory without maxmemory", Config{Name: "x", Storage: StorageMemory}, time.Second, d.AAEMaxKeysPerSec, 0, 0, 0},
		{"disk with maxmemory", Config{Name: "x", Storage: StorageDisk, MaxMemory: 64 << 20}, d.TombstoneGrace, d.AAEMaxKeysPerSec, 0, 0, 0},
		{"memory cache, set by hand", func() Config {
			c := cache
			c.TombstoneGrace, c.AAEMaxKeysPerSec, c.BlockCacheBytes, c.MemTableBytes, c.RecordCacheBytes = time.Hour, 5, 1<<20, 1<<20, -1
			return c
		}(), time.Hour, 5, 1 << 20, 1 << 20, -1},
	} {
		c := tc.in.EnsureDefaults()
		if c.TombstoneGrace != tc.grace || c.AAEMaxKeysPerSec != tc.aae || c.BlockCacheBytes != tc.block || c.MemTableBytes != tc.mem || c.RecordCacheBytes != tc.rec {
			t.Errorf("%s: grace %v, aae %d, block cache %d, memtables %d, record cache %d; want %v, %d, %d, %d, %d", tc.name,
				c.TombstoneGrace, c.AAEMaxKeysPerSec, c.BlockCacheBytes, c.MemTableBytes, c.RecordCacheBytes,
				tc.grace, tc.aae, tc.block, tc.mem, tc.rec)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// TestGoMemoryLimitFor: 1.5 x maxmemory + the access table (4 bytes a slot) +
// Pebble's hand-made allocations + 32 MiB; no limit without maxmemory or when
// the figure would overflow.
func TestGoMemoryLimitFor(t *testing.T) {
	const pebble = 12 << 20
	for _, tc := range []struct{ max, want int64 }{
		{0, math.MaxInt64},
		{-1, math.MaxInt64},
		{64 << 20, 96<<20 + 4<<20 + pebble + 32<<20},
		{1 << 30, 3<<29 + 64<<20 + pebble + 32<<20},
		{3 << 30, 9<<29 + 256<<20 + pebble + 32<<20}, // slots round up: 3/32 of maxmemory
		{math.MaxInt64 / 4 * 3, math.MaxInt64},
		{math.MaxInt64 / 100 * 62, math.MaxInt64}, // 1.625 x: just past
		{math.MaxInt64 / 2, math.MaxInt64/2 + math.MaxInt64/4 + 4<<28 + pebble + 32<<20},
	} {
		if got := GoMemoryLimitFor(tc.max, pebble); got != tc.want {
			t.Errorf("GoMemoryLimitFor(%d) = %d, want %d", tc.max, got, tc.want)
		}
	}
}

// TestGoMemoryLimitHook: a memory node hands Config.GoMemoryLimit the limit
// for its maxmemory and its Pebble caches at start and again on CONFIG SET
// maxmemory; a disk node never calls it.
func TestGoMemoryLimitHook(t *testing.T) {
	var got atomic.Int64
	n := startTestNode(t, Config{MaxMemory: 64 << 20, GoMemoryLimit: func(b int64) { got.Store(b) }})
	defer n.Close()
	pebble := int64(0) // with cgo, Pebble's caches are off the Go heap
	if pebbleManualOnHeap {
		pebble = memoryCacheBlockCacheBytes + 2*memoryCacheMemTableBytes
	}
	if g := got.Load(); g != GoMemoryLimitFor(64<<20, pebble) {
		t.Errorf("at start: limit %d, want %d", g, GoMemoryLimitFor(64<<20, pebble))
	}
	c := redis.NewClient(&redis.Options{Addr: n.RESPAddr(), MaxRetries: -1})
	defer c.Close()
	for _, tc := range []struct {
		set  string
		want int64
	}{{"1gb", GoMemoryLimitFor(1<<30, pebble)}, {"0", math.MaxInt64}} {
		if err := c.ConfigSet(context.Background(), "maxmemory", tc.set).Err(); err != nil {
			t.Fatal(err)
		}
		if g := got.Load(); g != tc.want {
			t.Errorf("CONFIG SET maxmemory %s: limit %d, want %d", tc.set, g, tc.want)
		}
	}

	var called atomic.Bool
	cfg := Config{Name: "d1", Storage: StorageDisk, DataDir: t.TempDir(), MaxMemory: 64 << 20,
		GoMemoryLimit: func(int64) { called.Store(true) }}
	cfg.RESPAddr, cfg.MemcacheAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.GossipAddr, cfg.ClusterAddr = "127.0.0.1:0", "127.0.0.1:0"
	d, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if called.Load() {
		t.Error("a disk node set a Go memory limit")
	}
}

// TestMaxMemoryEvictsConcurrentWriters: writers at once over the limit, on one
// memory node and on three (N = 3), as a cache's clients do: the evictor keeps
// several evictions in flight, every node ends within its limit (plus a
// record per writer), evicts, and few SETs wait past Admit's 500 ms.
func TestMaxMemoryEvictsConcurrentWriters(t *testing.T) {
	for _, count := range []int{1, 3} {
		t.Run(fmt.Sprint(count, " nodes"), func(t *testing.T) {
			t.Cleanup(leaktest.AfterTest(t))
			const limit, valueLen, writers, perWriter = 256 << 10, 1024, 8, 256
			nodes := startTestClusterWith(t, count, func(_ int, c *Config) {
				c.MaxMemory, c.MaxMemoryPolicy = limit, "allkeys-lru"
				// Under -race on a loaded 2-core machine a replica write can
				// take more than the default second: this test is about
				// eviction, not latency.
				c.RequestTimeout = 5 * time.Second
			})
			ctx := context.Background()
			value := strings.Repeat("v", valueLen)
			var refused atomic.Int64
			errs := make(chan error, writers)
			for w := range writers {
				go func() {
					c := redis.NewClient(&redis.Options{Addr: nodes[w%count].RESPAddr(), MaxRetries: -1})
					defer c.Close()
					for i := range perWriter {
						for try := 0; ; try++ {
							err := c.Set(ctx, fmt.Sprint("w", w, "k", i), value, 0).Err()
							if err == nil {
								break
							}
							if err.Error() != respOOM || try == 10 {
								errs <- fmt.Errorf("writer %d SET %d: %w", w, i, err)
								return
							}
							refused.Add(1)
						}
					}
					errs <- nil
				}()
			}
			for range writers {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			if r := refused.Load(); r > writers*perWriter/8 {
				t.Errorf("%d of %d SETs refused (-OOM) and retried", r, writers*perWriter)
			} else if r > 0 {
				t.Logf("%d SETs refused (-OOM) and retried", r)
			}
			// Replica writes are accepted over the limit: wait (bounded) for
			// every evictor to bring its node back under it.
			// Every node holds every key: each one's evictions remove the
			// key from all, so they count together.
			deadline := time.Now().Add(10 * time.Second)
			evicted := int64(0)
			for i, n := range nodes {
				for u := n.usage(); u.used > limit+writers*2*valueLen; u = n.usage() {
					if time.Now().After(deadline) {
						t.Fatalf("n%d: used_memory %d > maxmemory %d", i+1, u.used, limit)
					}
					time.Sleep(10 * time.Millisecond)
				}
				if ev := n.evictor.Evicted(); ev == 0 {
					t.Errorf("n%d evicted nothing", i+1)
				}
				evicted += n.evictor.Evicted()
			}
			if evicted < writers*perWriter/2 {
				t.Errorf("%d evicted of %d writes", evicted, writers*perWriter)
			}
		})
	}
}

// TestMaxMemoryYoungGraves is Redis's unit/maxmemory "is the memory limit
// honoured" on three memory nodes (N = 3) made caches by CONFIG SET after
// deletes left more tombstones than the allowance: SETs of a one-byte value
// through one node fill the limit, as many again evict, and none is refused,
// because the tombstones of the deletes and of the evictions are younger than
// the purge's cycle and so not counted (each eviction frees its whole record;
// counted, a small value's tombstone costs about what its record did, and an
// eviction would free almost nothing). Once older than the cycle (no purge ran:
// the rounds are an hour apart), the tombstones past the allowance count.
func TestMaxMemoryYoungGraves(t *testing.T) {
	t.Cleanup(leaktest.AfterTest(t))
	clock := &steppedClock{}
	nodes := startTestClusterWith(t, 3, func(_ int, c *Config) {
		// No purge may take the graves during the test: rounds an hour
		// apart, and a day's grace (the evictor kicks a round when graves
		// crowd the allowance). A long request timeout: this test is about
		// the accounting, and -race on a loaded machine is slow.
		c.AAEInterval, c.TombstoneGrace, c.Now, c.RequestTimeout = time.Hour, 24*time.Hour, clock.Now, 5*time.Second
	})
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: nodes[0].RESPAddr(), MaxRetries: -1, ReadTimeout: time.Minute})
	defer c.Close()
	const keys, perDel = 16000, 100
	for i := 0; i < keys; i += perDel {
		p := c.Pipeline()
		del := []string{}
		for j := i; j < i+perDel; j++ {
			k := fmt.Sprint("old:", j)
			p.Set(ctx, k, "v", 0)
			del = append(del, k)
		}
		p.Del(ctx, del...)
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var limit int64
	for i, n := range nodes {
		u := n.usage()
		if u.Graves <= 2*graveAllowance(0) {
			t.Fatalf("n%d: graves %d after %d deletes: want over twice the allowance %d", i+1, u.Graves, keys, graveAllowance(0))
		}
		if u.uncounted != u.Graves {
			t.Errorf("n%d: young graves: %d not counted, want all %d", i+1, u.uncounted, u.Graves)
		}
		limit = max(limit, u.used+100<<10)
	}
	for _, n := range nodes {
		nc := redis.NewClient(&redis.Options{Addr: n.RESPAddr()})
		for _, kv := range [][2]string{{"maxmemory", strconv.FormatInt(limit, 10)}, {"maxmemory-policy", "allkeys-lru"}} {
			if err := nc.ConfigSet(ctx, kv[0], kv[1]).Err(); err != nil {
				t.Fatal(err)
			}
		}
		nc.Close()
	}
	set := func(i int) {
		if err := c.SetEx(ctx, fmt.Sprint("key:", i), "x", 10000*time.Second).Err(); err != nil {
			t.Fatalf("SETEX %d (limit %d, INFO %v): %v", i, limit, infoFields(t, c, "memory"), err)
		}
	}
	filled := 0
	for ; filled < 100000; filled++ {
		set(filled)
		if infoInt(t, infoFields(t, c, "memory"), "used_memory")+4096 > limit {
			break
		}
	}
	if filled < 10 || filled == 100000 {
		t.Fatalf("%d SETEX filled 100 KiB", filled)
	}
	for i := range filled {
		set(filled + 1 + i)
	}
	if u := infoInt(t, infoFields(t, c, "memory"), "used_memory"); u >= limit+4096 {
		t.Errorf("used_memory %d after %d more SETEX, limit %d", u, filled, limit)
	}
	if ev := nodes[0].evictor.Evicted(); ev == 0 {
		t.Errorf("no key evicted")
	}
	// Past the purge's cycle the graves count beyond the allowance.
	for range 200 {
		clock.Step()
	}
	for i, n := range nodes {
		if u, a := n.usage(), graveAllowance(limit); u.uncounted != a {
			t.Errorf("n%d: old graves: %d not counted, want the allowance %d (graves %d)", i+1, u.uncounted, a, u.Graves)
		}
	}
}
