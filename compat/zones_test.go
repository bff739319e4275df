package compat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dynakv/dynakv/node"
	"github.com/dynakv/dynakv/ring"
)

// threeZones puts six nodes c1..c6 in three zones of two.
var threeZones = []string{"z1", "z1", "z2", "z2", "z3", "z3"}

// zoneRing is the ring the nodes compute for procs with zones[i] the zone of
// procs[i] (every node has weight 1 and the server's default 1024 partitions).
func zoneRing(t *testing.T, procs []*proc, zones []string) *ring.Ring {
	t.Helper()
	ms := make([]ring.Member, len(procs))
	for i, p := range procs {
		ms[i] = ring.Member{Name: p.name, Zone: zones[i]}
	}
	r, err := ring.New(1024, ms)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// replicasOf is the key's 3 replicas on r.
func replicasOf(r *ring.Ring, key string) []string {
	return r.Replicas(r.Partition([]byte(key)), 3)
}

// pipelined sends p one command per key, args(key), in one pipeline (30 s at
// most) and returns their replies in keys' order. A nil reply is not an error.
func pipelined(p *proc, keys []string, args func(key string) []any) ([]*redis.Cmd, error) {
	c := newRedis(p.RESP, 2)
	defer c.Close()
	rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pipe := c.Pipeline()
	cmds := make([]*redis.Cmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.Do(rctx, args(k)...)
	}
	if _, err := pipe.Exec(rctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%v... on %s: %w", args(keys[0]), p.name, err)
	}
	return cmds, nil
}

// preflists returns DPREFLIST of every key as p sees it.
func preflists(p *proc, keys []string) (map[string][]string, error) {
	cmds, err := pipelined(p, keys, func(k string) []any { return []any{"DPREFLIST", k} })
	if err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(keys))
	for i, k := range keys {
		pl, err := cmds[i].StringSlice()
		if err != nil {
			return nil, fmt.Errorf("DPREFLIST %s on %s: %w", k, p.name, err)
		}
		out[k] = pl
	}
	return out, nil
}

// localRecord is a replica's DGET key LOCAL: its causal context and values.
type localRecord struct {
	ctx  string
	vals []string // sorted
}

func (r localRecord) String() string { return fmt.Sprintf("%q %q", r.ctx, r.vals) }

func (r localRecord) equal(o localRecord) bool {
	return r.ctx == o.ctx && slices.Equal(r.vals, o.vals)
}

// localRecords returns DGET key LOCAL of every key on p.
func localRecords(p *proc, keys []string) (map[string]localRecord, error) {
	cmds, err := pipelined(p, keys, func(k string) []any { return []any{"DGET", k, "LOCAL"} })
	if err != nil {
		return nil, err
	}
	out := make(map[string]localRecord, len(keys))
	for i, k := range keys {
		r, err := cmds[i].Slice()
		if err != nil || len(r) != 2 {
			return nil, fmt.Errorf("DGET %s LOCAL on %s = %v, %v", k, p.name, r, err)
		}
		var rec localRecord
		rec.ctx, _ = r[0].(string)
		vs, _ := r[1].([]any)
		for _, v := range vs {
			s, _ := v.(string)
			rec.vals = append(rec.vals, s)
		}
		slices.Sort(rec.vals)
		out[k] = rec
	}
	return out, nil
}

// clusterStatus is p's /cluster/status.
func clusterStatus(p *proc) (node.Status, error) {
	var st node.Status
	hc := http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + p.HTTP + "/cluster/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

// bulkSet writes every key of want through procs, a pipeline per node, all
// nodes at once.
func bulkSet(t *testing.T, procs []*proc, keys []string, want map[string]string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(procs))
	for w, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newRedis(p.RESP, 2)
			defer c.Close()
			rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			pipe := c.Pipeline()
			for i := w; i < len(keys); i += len(procs) {
				pipe.Set(rctx, keys[i], want[keys[i]], 0)
			}
			if _, err := pipe.Exec(rctx); err != nil {
				errs <- fmt.Errorf("SETs via %s: %w", p.name, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// checkZonePlacement checks that p's DPREFLIST of every key is the key's replicas
// on want and names three distinct zones.
func checkZonePlacement(t *testing.T, p *proc, keys []string, want *ring.Ring) {
	t.Helper()
	pls, err := preflists(p, keys)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		pl := pls[k]
		if exp := replicasOf(want, k); !slices.Equal(pl, exp) {
			t.Fatalf("DPREFLIST %s on %s = %v; the ring with the nodes' zones gives %v", k, p.name, pl, exp)
		}
		zs := map[string]bool{}
		for _, o := range pl {
			z, _ := want.Zone(o)
			zs[z] = true
		}
		if len(zs) != 3 {
			t.Fatalf("DPREFLIST %s = %v: replicas in %d zones, want 3", k, pl, len(zs))
		}
	}
}

// opCounts counts the requests of a load phase and its failures by kind.
type opCounts struct {
	reads, writes    atomic.Int64
	errors, noquorum atomic.Int64
	missing, stale   atomic.Int64
	worst            atomic.Int64 // nanoseconds, the slowest request
	firstOK          atomic.Int64 // nanoseconds from the kill to the first success
	mu               sync.Mutex
	first            []string // the first failures, for the message
}

func (c *opCounts) took(d time.Duration) {
	for {
		cur := c.worst.Load()
		if int64(d) <= cur || c.worst.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}

func (c *opCounts) fail(kind *atomic.Int64, format string, args ...any) {
	kind.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.first) < 5 {
		c.first = append(c.first, fmt.Sprintf(format, args...))
	}
}

// failure counts an error: NOQUORUM separately from the others.
func (c *opCounts) failure(err error, format string, args ...any) {
	if strings.HasPrefix(err.Error(), "NOQUORUM") {
		c.noquorum.Add(1)
	}
	c.fail(&c.errors, format+": %v", append(args, err)...)
}

// TestZoneDownTornado is the tornado test (issue 17): six nodes in three zones of
// two, N=3 R=2 W=2. Every key's three replicas are in three zones, so killing both
// nodes of one zone at once (kill -9) leaves every key two of its own replicas: from
// the moment of the kill, without waiting for gossip to notice, every key reads back
// its latest value through the four survivors and updates and new keys are
// acknowledged, with no error at all.
//
// Hinted handoff gives no help: the reads run while the zone is down, so no hint has
// been delivered to anyone, and DGET LOCAL on the two surviving replicas of every
// key shows that both hold its latest value. A read merges R=2 distinct owners and
// only one owner of a key is down, so at least one of the two answering is a
// surviving replica in person, which has the value; no fallback's hint is needed.
// The subtest "without hints" runs the same with sloppy quorum and hinted handoff
// off (--hinted-handoff=false), where only a key's own replicas can answer at all.
//
// Then the zone comes back on its data directories and every replica converges:
// hints pending 0 on every node and DGET LOCAL equal on all 3 replicas of every key.
func TestZoneDownTornado(t *testing.T) {
	if testing.Short() {
		t.Skip("six processes, twice; skipped with -short")
	}
	for _, tc := range []struct {
		name  string
		extra []string
	}{
		{"with hints", nil},
		// Anti-entropy alone brings the zone back up to date.
		{"without hints", []string{"--hinted-handoff=false", "--aae-interval", "1s"}},
	} {
		t.Run(tc.name, func(t *testing.T) { tornado(t, tc.extra) })
	}
}

func tornado(t *testing.T, extra []string) {
	const keys = 2000
	procs := startZonedCluster(t, threeZones, slices.Concat([]string{"--n", "3", "--r", "2", "--w", "2"}, extra)...)
	rg := zoneRing(t, procs, threeZones)
	hintsOn := !slices.Contains(extra, "--hinted-handoff=false")

	old := make([]string, keys)
	want := map[string]string{}
	for i := range old {
		old[i] = fmt.Sprintf("tornado-%04d", i)
		want[old[i]] = "v0-" + old[i]
	}
	start := time.Now()
	bulkSet(t, procs, old, want)
	t.Logf("%d keys written through 6 nodes in %v", keys, time.Since(start).Round(time.Millisecond))
	// The placement guarantee, through DPREFLIST and the ring rule both.
	checkZonePlacement(t, procs[0], old, rg)

	live, dead := procs[:4], procs[4:]
	for _, p := range dead {
		p.signal(syscall.SIGKILL)
	}
	for _, p := range dead {
		_ = p.wait()
	}
	killed := time.Now()

	// From now on: through the survivors, reads of every key (its v0), an update of
	// every other key, a new key per old one, then reads of all of those. No
	// waiting: the first request leaves within milliseconds of the kill.
	var oc opCounts
	aliveAtStart := info(t, live[0])["cluster_members_alive"]
	phase, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	fresh := make([]string, keys)
	for i := range fresh {
		fresh[i] = fmt.Sprintf("tornado-new-%04d", i)
	}
	run := func(do func(i int, c func(n int) *redis.Client)) {
		const workers = 8
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				clients := make([]*redis.Client, len(live))
				for j, p := range live {
					clients[j] = newRedis(p.RESP, 2)
					defer clients[j].Close()
				}
				for i := w; i < keys && phase.Err() == nil; i += workers {
					do(i, func(n int) *redis.Client { return clients[n%len(live)] })
				}
			}()
		}
		wg.Wait()
	}
	timed := func(f func(rctx context.Context) error) error {
		rctx, cancel := context.WithTimeout(phase, 10*time.Second)
		defer cancel()
		began := time.Now()
		err := f(rctx)
		oc.took(time.Since(began))
		if err == nil {
			oc.firstOK.CompareAndSwap(0, int64(time.Since(killed)))
		}
		return err
	}
	get := func(c *redis.Client, key, via string) {
		mu.Lock()
		exp := want[key]
		mu.Unlock()
		oc.reads.Add(1)
		var got string
		err := timed(func(rctx context.Context) (err error) { got, err = c.Get(rctx, key).Result(); return err })
		switch {
		case errors.Is(err, redis.Nil):
			oc.fail(&oc.missing, "GET %s via %s: missing, want %q", key, via, exp)
		case err != nil:
			oc.failure(err, "GET %s via %s", key, via)
		case got != exp:
			oc.fail(&oc.stale, "GET %s via %s = %q, want %q", key, via, got, exp)
		}
	}
	set := func(c *redis.Client, key, val, via string) {
		oc.writes.Add(1)
		if err := timed(func(rctx context.Context) error { return c.Set(rctx, key, val, 0).Err() }); err != nil {
			oc.failure(err, "SET %s via %s", key, via)
			return
		}
		mu.Lock()
		want[key] = val
		mu.Unlock()
	}
	run(func(i int, c func(int) *redis.Client) {
		get(c(i), old[i], live[i%4].name)
		if i%2 == 0 {
			set(c(i+1), old[i], "v1-"+old[i], live[(i+1)%4].name)
		}
		set(c(i+2), fresh[i], "v1-"+fresh[i], live[(i+2)%4].name)
	})
	run(func(i int, c func(int) *redis.Client) {
		get(c(i+3), old[i], live[(i+3)%4].name)
		get(c(i+1), fresh[i], live[(i+1)%4].name)
	})
	loadTook := time.Since(killed)
	aliveAtEnd := info(t, live[0])["cluster_members_alive"]
	if phase.Err() != nil {
		t.Fatalf("the load did not finish within 60s: %d reads, %d writes", oc.reads.Load(), oc.writes.Load())
	}
	t.Logf("zone z3 down (c5, c6 killed): first request answered %v after the kill; %d reads and %d writes through the 4 survivors in %v, slowest %v; %s as c1 saw it at the start, %s at the end",
		time.Duration(oc.firstOK.Load()).Round(time.Millisecond), oc.reads.Load(), oc.writes.Load(), loadTook.Round(time.Millisecond),
		time.Duration(oc.worst.Load()).Round(time.Millisecond), aliveAtStart+" alive", aliveAtEnd+" alive")
	t.Logf("failures during the outage: %d errors (%d NOQUORUM), %d missing, %d stale", oc.errors.Load(), oc.noquorum.Load(), oc.missing.Load(), oc.stale.Load())
	if n := oc.errors.Load() + oc.missing.Load() + oc.stale.Load(); n > 0 {
		t.Fatalf("%d requests failed with one zone of three down; first: %q", n, oc.first)
	}

	// No help from hints: both surviving replicas of every key hold its latest
	// value themselves, while the zone is still down.
	all := slices.Concat(old, fresh)
	pls, err := preflists(live[0], all)
	if err != nil {
		t.Fatal(err)
	}
	perOwner := map[string][]string{}
	for _, k := range all {
		for _, o := range pls[k] {
			perOwner[o] = append(perOwner[o], k)
		}
	}
	onBoth := map[string]int{}
	for _, p := range live {
		recs, err := localRecords(p, perOwner[p.name])
		if err != nil {
			t.Fatal(err)
		}
		for k, rec := range recs {
			if slices.Contains(rec.vals, want[k]) {
				onBoth[k]++
			}
		}
	}
	short := 0
	for _, k := range all {
		surviving := 0
		for _, o := range pls[k] {
			if procByName(live, o) != nil {
				surviving++
			}
		}
		if onBoth[k] != 2 || surviving != 2 {
			if short++; short <= 5 {
				t.Errorf("%s (replicas %v): latest value %q on %d of its %d surviving replicas, want 2 of 2", k, pls[k], want[k], onBoth[k], surviving)
			}
		}
	}
	var hints, fallbacks int
	for _, p := range live {
		st := info(t, p)
		n, _ := strconv.Atoi(st["hints_pending"])
		hints += n
		n, _ = strconv.Atoi(st["replica_fallbacks"])
		fallbacks += n
	}
	t.Logf("while z3 was down: %d of %d keys had their latest value on both surviving replicas (DGET LOCAL); the survivors kept %d hints for c5/c6 and made %d replica calls to a fallback",
		len(all)-short, len(all), hints, fallbacks)
	if short > 0 {
		t.Fatalf("%d keys lack their latest value on a surviving replica", short)
	}
	if !hintsOn && hints > 0 {
		t.Fatalf("%d hints kept with hinted handoff off", hints)
	}

	// The zone comes back on its data directories; every replica converges.
	for _, p := range dead {
		p.restart()
	}
	back := time.Now()
	for _, p := range procs {
		waitInfo(t, p, "cluster_members_alive", "6", 30*time.Second)
	}
	deadline := back.Add(60 * time.Second)
	for {
		pending, diverged, example := converged(t, procs, all, pls, want)
		if pending == 0 && diverged == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("60s after z3 came back: %d hints pending, %d of %d keys differ between replicas (%s)", pending, diverged, len(all), example)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("z3 back: every replica converged %v after its nodes were healthy again (hints pending 0 everywhere, DGET LOCAL equal on the 3 replicas of all %d keys)",
		time.Since(back).Round(100*time.Millisecond), len(all))
}

// converged returns the hints pending over procs and the keys whose DGET LOCAL
// differs between their replicas pls[key] or lacks want[key], with one example.
func converged(t *testing.T, procs []*proc, keys []string, pls map[string][]string, want map[string]string) (pending, diverged int, example string) {
	t.Helper()
	for _, p := range procs {
		n, err := strconv.Atoi(info(t, p)["hints_pending"])
		if err != nil {
			n = 1 // not answering yet
		}
		pending += n
	}
	perOwner := map[string][]string{}
	for _, k := range keys {
		for _, o := range pls[k] {
			perOwner[o] = append(perOwner[o], k)
		}
	}
	recs := map[string]map[string]localRecord{}
	for _, p := range procs {
		r, err := localRecords(p, perOwner[p.name])
		if err != nil {
			return pending, len(keys), err.Error()
		}
		recs[p.name] = r
	}
	for _, k := range keys {
		first := recs[pls[k][0]][k]
		ok := slices.Contains(first.vals, want[k])
		for _, o := range pls[k][1:] {
			ok = ok && recs[o][k].equal(first)
		}
		if !ok {
			if diverged++; diverged == 1 {
				var b strings.Builder
				fmt.Fprintf(&b, "%s, latest %q:", k, want[k])
				for _, o := range pls[k] {
					fmt.Fprintf(&b, " %s %v", o, recs[o][k])
				}
				example = b.String()
			}
		}
	}
	return pending, diverged, example
}

// TestZoneChangeLive changes the zones of a live cluster: six nodes started
// without zones, restarted one at a time into three zones of two, each time
// waiting until the node is back and partition handoff has finished, while a
// writer updates keys and a reader checks them through the nodes that are up.
// Each restart changes one replica of many partitions (never two: the ring moves
// only what must move); the new replica gets the partition's data from handoff and
// anti-entropy. A read merges R=2 owners, at most one of which lacks the data, so
// no read should miss a key or see an older value; the test counts any that do,
// and asserts what is guaranteed: in the end every key reads its latest value,
// sits on its three replicas in three distinct zones, and no handoff is pending.
func TestZoneChangeLive(t *testing.T) {
	if testing.Short() {
		t.Skip("six processes, six restarts; skipped with -short")
	}
	const keys = 2000
	procs := startZonedCluster(t, make([]string, 6), "--n", "3", "--r", "2", "--w", "2", "--aae-interval", "1s")
	zones := make([]string, 6)
	names := make([]string, keys)
	latest := make([]atomic.Int64, keys) // the version of the last acknowledged write
	// tried is the highest version written, acknowledged or not: a write that failed
	// (NOQUORUM, a timeout) may still have taken effect on the replicas it reached, and
	// a later write of the key then supersedes it, so a key may end at any version
	// from latest to tried.
	tried := make([]atomic.Int64, keys)
	want := map[string]string{}
	for i := range names {
		names[i] = fmt.Sprintf("zc-%04d", i)
		want[names[i]] = "v0"
	}
	bulkSet(t, procs, names, want)

	// gates[i] is held by the restart of procs[i]: the load uses a node only while
	// it can take its gate's read lock, so no request is in flight on a node as it
	// stops.
	gates := make([]sync.RWMutex, len(procs))
	var reads, writes, misses, stale, readErrs, writeErrs atomic.Int64
	var mu sync.Mutex
	type failure struct {
		key int // in names
		msg string
		at  time.Time
	}
	var failures []failure // the first 100
	note := func(n *atomic.Int64, k int, format string, args ...any) {
		n.Add(1)
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 100 {
			failures = append(failures, failure{k, fmt.Sprintf(format, args...), time.Now()})
		}
	}
	failed := func() []failure {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(failures)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// loadWorker runs f, bounded in count, each time on a node that is up, picked
	// by a seeded rng.
	loadWorker := func(seed uint64, f func(rng *rand.Rand, p *proc, c *redis.Client)) {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(seed, 17))
		clients := make([]*redis.Client, len(procs))
		for i, p := range procs {
			clients[i] = newRedis(p.RESP, 2)
			defer clients[i].Close()
		}
		for op := 0; op < 200000; op++ {
			select {
			case <-stop:
				return
			default:
			}
			i := rng.IntN(len(procs))
			if !gates[i].TryRLock() {
				continue
			}
			f(rng, procs[i], clients[i])
			gates[i].RUnlock()
			time.Sleep(2 * time.Millisecond)
		}
	}
	// The writer: each key's versions go up one by one; latest is set after the ack.
	wg.Add(1)
	go loadWorker(1, func(rng *rand.Rand, p *proc, c *redis.Client) {
		k := rng.IntN(keys)
		v := latest[k].Load() + 1
		tried[k].Store(max(tried[k].Load(), v)) // one writer: no race between load and store
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		writes.Add(1)
		if err := c.Set(rctx, names[k], fmt.Sprintf("v%d", v), 0).Err(); err != nil {
			note(&writeErrs, k, "SET %s via %s: %v", names[k], p.name, err)
			return
		}
		latest[k].Store(v)
	})
	// Two readers: a read must return at least the version acknowledged before it
	// began.
	for r := range 2 {
		wg.Add(1)
		go loadWorker(uint64(2+r), func(rng *rand.Rand, p *proc, c *redis.Client) {
			k := rng.IntN(keys)
			floor := latest[k].Load()
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			reads.Add(1)
			got, err := c.Get(rctx, names[k]).Result()
			switch {
			case errors.Is(err, redis.Nil):
				note(&misses, k, "GET %s via %s: missing (v%d acknowledged)", names[k], p.name, floor)
			case err != nil:
				note(&readErrs, k, "GET %s via %s: %v", names[k], p.name, err)
			default:
				v, perr := strconv.ParseInt(strings.TrimPrefix(got, "v"), 10, 64)
				if perr != nil || v < floor {
					note(&stale, k, "GET %s via %s = %q, v%d acknowledged before", names[k], p.name, got, floor)
				}
			}
		})
	}
	stopLoad := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}
	defer stopLoad()

	prev := zoneRing(t, procs, zones)
	for _, i := range []int{0, 2, 4, 1, 3, 5} {
		p := procs[i]
		before := [3]int64{reads.Load(), misses.Load() + stale.Load(), readErrs.Load() + writeErrs.Load()}
		failedBefore := len(failed())
		stopped := time.Now()
		gates[i].Lock()
		p.signal(syscall.SIGTERM)
		if err := p.wait(); err != nil {
			t.Fatalf("%s exit: %v", p.name, err)
		}
		zones[i] = threeZones[i]
		p.node.Extra = slices.Concat(p.node.Extra, []string{"--zone", zones[i]})
		p.restart()
		back := time.Now()
		// Clients use the node again as soon as it is healthy (/healthz), before
		// it has joined: it sends requests to the members it has no verdict on
		// yet (cluster.Membership.Reachable) instead of failing them.
		gates[i].Unlock()

		last, next := prev, zoneRing(t, procs, zones)
		changed, most := 0, 0
		var moved []string // keys whose replicas changed: the ones to watch
		for part := range next.Partitions() {
			a, b := prev.Replicas(part, 3), next.Replicas(part, 3)
			n := 0
			for _, o := range b {
				if !slices.Contains(a, o) {
					n++
				}
			}
			if n > 0 {
				changed++
			}
			most = max(most, n)
		}
		for _, k := range names {
			if !slices.Equal(replicasOf(prev, k), replicasOf(next, k)) {
				moved = append(moved, k)
			}
		}
		prev = next

		// Every node places by the new zones (gossip carried it), then anti-entropy
		// rounds run on every node until none has a partition left to hand off.
		for _, q := range procs {
			waitInfo(t, q, "cluster_members_alive", "6", 30*time.Second)
		}
		deadline := back.Add(60 * time.Second)
		for _, q := range procs {
			for {
				pls, err := preflists(q, moved)
				agree := err == nil
				for _, k := range moved {
					agree = agree && slices.Equal(pls[k], replicasOf(next, k))
				}
				if agree {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s does not place by %s's new zone after 60s (%v)", q.name, p.name, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		agreed := time.Now()
		rounds := make([]int64, len(procs))
		for j, q := range procs {
			st, err := clusterStatus(q)
			if err != nil {
				t.Fatal(err)
			}
			rounds[j] = st.AAE.Rounds
		}
		var peakKeys int64
		for {
			drained := true
			for j, q := range procs {
				st, err := clusterStatus(q)
				if err != nil {
					t.Fatal(err)
				}
				peakKeys = max(peakKeys, st.AAE.HandoffKeysPending)
				drained = drained && st.AAE.Rounds >= rounds[j]+2 && st.AAE.HandoffPending == 0 && st.AAE.HandoffKeysPending == 0
			}
			if drained {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("handoff after %s's zone change not finished after 60s", p.name)
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("%s -> zone %s: %d of 1024 partitions changed replicas (at most %d new replica each; %d of %d keys), all nodes placed by it %v after the restart, handoff drained %v after that (peak %d keys pending); %d reads meanwhile, %d missing or stale, %d errors",
			p.name, zones[i], changed, most, len(moved), keys, agreed.Sub(back).Round(100*time.Millisecond), time.Since(agreed).Round(100*time.Millisecond), peakKeys,
			reads.Load()-before[0], misses.Load()+stale.Load()-before[1], readErrs.Load()+writeErrs.Load()-before[2])
		// Each failure with the key's replicas before and after the change: which
		// was new (no data until handoff), which was the restarted node.
		for _, f := range failed()[failedBefore:] {
			t.Logf("  %s; replicas before %v, after %v; %v after the SIGTERM, %v after the restart",
				f.msg, replicasOf(last, names[f.key]), replicasOf(next, names[f.key]),
				f.at.Sub(stopped).Round(time.Millisecond), f.at.Sub(back).Round(time.Millisecond))
		}
	}
	stopLoad()
	t.Logf("during the zone change: %d reads (%d missing, %d stale, %d errors), %d writes (%d errors)",
		reads.Load(), misses.Load(), stale.Load(), readErrs.Load(), writes.Load(), writeErrs.Load())

	// What is guaranteed: nothing lost, every key on three replicas in three zones,
	// no handoff pending.
	c := newRedis(procs[0].RESP, 2)
	defer c.Close()
	pipe := c.Pipeline()
	gets := make([]*redis.StringCmd, keys)
	for k, name := range names {
		gets[k] = pipe.Get(ctx(t), name)
	}
	_, _ = pipe.Exec(ctx(t))
	lost := 0
	final := map[string]string{} // each key's value now: its replicas must all hold it
	for k, name := range names {
		got, err := gets[k].Result()
		var v int64
		if _, serr := fmt.Sscanf(got, "v%d", &v); err != nil || serr != nil || v < latest[k].Load() || v > tried[k].Load() {
			if lost++; lost <= 5 {
				t.Errorf("GET %s after the change = %q, %v; want v%d (the last acknowledged) or up to v%d (failed writes may take effect)",
					name, got, err, latest[k].Load(), tried[k].Load())
			}
			continue
		}
		final[name] = got
	}
	if lost > 0 {
		t.Fatalf("%d of %d keys lost their latest value", lost, keys)
	}
	checkZonePlacement(t, procs[0], names, prev)
	checkPlacement(t, procs, final)
	for _, q := range procs {
		waitInfo(t, q, "handoff_partitions_pending", "0", 10*time.Second)
	}
	if n := readErrs.Load() + writeErrs.Load(); n > 0 {
		var errs []string
		for _, f := range failed() {
			if !strings.Contains(f.msg, "acknowledged") { // not a miss or a stale read
				errs = append(errs, f.msg)
			}
		}
		t.Fatalf("%d requests failed during the zone change: %q", n, errs)
	}
}
