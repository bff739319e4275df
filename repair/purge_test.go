package repair_test

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/vclock"
)

// ttlGraves writes keys records of one expiring value (a cache's SET EX) to
// every node, reaps them once expired and lets the grace pass: keys graves on
// every node, for the purge.
func (c *aaeCluster) ttlGraves(keys int) {
	c.t.Helper()
	now := c.clock.Millis()
	var ks [][]byte
	var fns []storage.UpdateFunc
	flush := func() {
		for _, nd := range c.nodes {
			for _, err := range nd.st.UpdateBatch(ks, fns) {
				if err != nil {
					c.t.Fatal(err)
				}
			}
		}
		ks, fns = ks[:0], fns[:0]
	}
	for i := range keys {
		r := vclock.Update(vclock.Set{}, nil, "a", vclock.Value{Data: []byte("v"), Timestamp: now, Expiry: now + 1000}, now, 1)
		ks = append(ks, fmt.Appendf(nil, "ttl:%07d", i))
		fns = append(fns, func(record.Record, bool) (record.Record, error) { return record.String(r), nil })
		if len(ks) == 1000 {
			flush()
		}
	}
	flush()
	c.clock.Advance(2 * time.Second)
	for name, nd := range c.nodes {
		if n, err := nd.st.Reap(1 << 30); err != nil || n != keys {
			c.t.Fatalf("%s: Reap = %d, %v; want %d", name, n, err, keys)
		}
	}
	c.clock.Advance(2 * c.grace)
}

// graves returns how many records of tombstones node holds.
func (c *aaeCluster) graves(node string) int {
	c.t.Helper()
	gs, err := c.nodes[node].st.Graves(c.clock.Millis()+1, 1<<30)
	if err != nil {
		c.t.Fatal(err)
	}
	return len(gs)
}

// purgeRate runs cluster rounds until no node holds a grave (at most maxRounds)
// and returns the rounds it took and the time it would take a cluster whose
// nodes run their rounds in parallel every interval: a round lasts as long as
// its slowest node (real time working plus fake time sleeping), and the next
// starts an interval after it began or when it ends, whichever is later.
func (c *aaeCluster) purgeRate(maxRounds int, interval time.Duration) (rounds int, took time.Duration) {
	c.t.Helper()
	for rounds < maxRounds {
		left := 0
		for name := range c.nodes {
			left += c.graves(name)
		}
		if left == 0 {
			return rounds, took
		}
		if rounds > 0 {
			took = max(took, time.Duration(rounds)*interval) // the ticker's wait
		}
		var slowest time.Duration
		for _, name := range slices.Sorted(maps.Keys(c.nodes)) {
			slept := c.slept.Load()
			start := time.Now()
			if err := c.nodes[name].aae.RunOnce(c.t.Context()); err != nil {
				c.t.Fatalf("%s: round: %v", name, err)
			}
			slowest = max(slowest, time.Since(start)+time.Duration(c.slept.Load()-slept))
		}
		took += slowest
		rounds++
		c.clock.Advance(interval)
	}
	c.t.Fatalf("graves left after %d rounds", maxRounds)
	return 0, 0
}

// TestPurgeKeepsUpWithTTLChurn: every expired value becomes a tombstone only
// purge removes, so purge must clear a cache's worth of them in a round, not
// 1024 oldest graves a node (most of them decided by other nodes) and two
// rounds per tombstone: 6000 took 11 rounds of 30 s before, about 17 keys/s
// where the old reaper deleted 10,000 records/s.
func TestPurgeKeepsUpWithTTLChurn(t *testing.T) {
	const keys = 6000
	c := newAAECluster(t, 64, 3, "a", "b", "c")
	c.ttlGraves(keys)
	rounds, took := c.purgeRate(20, 30*time.Second)
	t.Logf("%d graves purged in %d round(s), %v: %.0f keys/s", keys, rounds, took, keys/took.Seconds())
	if rounds != 1 {
		t.Fatalf("purging %d graves took %d rounds, want 1: the purge does not keep up with TTL churn", keys, rounds)
	}
	var purged int64
	for _, nd := range c.nodes {
		purged += nd.aae.Metrics().TombstonesPurged
	}
	if purged != 3*keys {
		t.Fatalf("purged %d tombstones, want %d (every key on every node)", purged, 3*keys)
	}
}

// BenchmarkPurgeTTLChurn reports the purge's throughput on three in-process
// nodes holding 50,000 expired keys each (every node owns every key), with the
// default anti-entropy budget of 20,000 keys/s (real time) and the default
// 30 s interval and 10 s settle (fake time): keys/s is the graves cleared over
// the time a cluster running its nodes' rounds in parallel would take.
func BenchmarkPurgeTTLChurn(b *testing.B) {
	const keys = 50_000
	for range b.N {
		b.StopTimer()
		c := newAAEClusterLimited(b, 64, 3, 20_000, "a", "b", "c")
		c.ttlGraves(keys)
		b.StartTimer()
		rounds, took := c.purgeRate(200, 30*time.Second)
		b.ReportMetric(float64(keys)/took.Seconds(), "keys/s")
		b.ReportMetric(float64(rounds), "rounds")
	}
}
