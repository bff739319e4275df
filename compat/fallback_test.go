package compat

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestClusterWritesDoNotWaitForGossip: Dynamo's coordinator does not wait for
// failure detection. Two of six nodes are killed with SIGKILL and, two seconds
// later (long before gossip declares them dead), 2,000 keys are written through the
// four live nodes and read back through another one: every write and every read
// succeeds, including those of the keys whose N=3 replicas hold both dead nodes (a
// replica that refuses is replaced at once by the next node of the key's extended
// preference list, which keeps the write as a hint).
func TestClusterWritesDoNotWaitForGossip(t *testing.T) {
	if testing.Short() {
		t.Skip("six processes; skipped with -short")
	}
	procs := startCluster(t, 6, "--n", "3", "--r", "2", "--w", "2", "--request-timeout", "1s")
	live, dead := procs[:4], procs[4:]
	for _, p := range dead {
		p.signal(syscall.SIGKILL)
	}
	for _, p := range dead {
		p.wait()
	}
	killed := time.Now()
	time.Sleep(2 * time.Second)

	const keys = 2000
	const clientsPerNode = 2
	// The whole load is bounded in time too: no request waits past its own 5s.
	phase, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	type failure struct {
		op, key, via string
		err          error
	}
	var mu sync.Mutex
	var failures []failure
	fail := func(f failure) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, f)
	}
	var done atomic.Int64
	run := func(op string, node func(i int) *proc, do func(ctx context.Context, c *redis.Client, key string) error) {
		var wg sync.WaitGroup
		workers := len(live) * clientsPerNode
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				clients := map[*proc]*redis.Client{}
				defer func() {
					for _, c := range clients {
						c.Close()
					}
				}()
				for i := w; i < keys && phase.Err() == nil; i += workers {
					p := node(i)
					c := clients[p]
					if c == nil {
						c = newRedis(p.RESP, 2)
						clients[p] = c
					}
					key := fmt.Sprintf("fb-%d", i)
					rctx, cancel := context.WithTimeout(phase, 5*time.Second)
					err := do(rctx, c, key)
					cancel()
					if err != nil {
						fail(failure{op, key, p.name, err})
					}
					done.Add(1)
				}
			}()
		}
		wg.Wait()
	}
	start := time.Now()
	run("SET", func(i int) *proc { return live[i%len(live)] }, func(ctx context.Context, c *redis.Client, key string) error {
		return c.Set(ctx, key, "v-"+key, 0).Err()
	})
	wrote := time.Since(start)
	run("GET", func(i int) *proc { return live[(i+1)%len(live)] }, func(ctx context.Context, c *redis.Client, key string) error {
		got, err := c.Get(ctx, key).Result()
		if err == nil && got != "v-"+key {
			err = fmt.Errorf("read %q, want %q", got, "v-"+key)
		}
		return err
	})
	if phase.Err() != nil {
		t.Fatalf("the load did not finish in time: %d of %d requests done", done.Load(), 2*keys)
	}
	// How many keys had both dead nodes among their replicas: today's target.
	both := 0
	c := newRedis(live[0].RESP, 2)
	defer c.Close()
	for i := range keys {
		pl, err := c.Do(ctx(t), "DPREFLIST", fmt.Sprintf("fb-%d", i)).StringSlice()
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(pl, dead[0].name) && slices.Contains(pl, dead[1].name) {
			both++
		}
	}
	alive := info(t, live[0])["cluster_members_alive"]
	t.Logf("writes took %v, reads %v; load ended %v after the kill, %s members alive then as %s sees it; %d keys had both dead nodes among their replicas",
		wrote, time.Since(start)-wrote, time.Since(killed).Round(time.Millisecond), alive, live[0].name, both)
	fallbacks := 0
	for _, p := range live {
		n, _ := strconv.Atoi(info(t, p)["replica_fallbacks"])
		fallbacks += n
	}
	t.Logf("%d replica calls went to a fallback in place of a failed replica", fallbacks)
	if both < keys/20 {
		t.Fatalf("only %d of %d keys have both dead nodes among their replicas: the test shows nothing", both, keys)
	}
	if len(failures) > 0 {
		writes := 0
		for _, f := range failures {
			if f.op == "SET" {
				writes++
			}
		}
		for _, f := range failures[:min(len(failures), 5)] {
			t.Errorf("%s %s via %s: %v", f.op, f.key, f.via, f.err)
		}
		t.Fatalf("%d of %d writes and %d of %d reads failed with two of six nodes killed (N=3, R=2, W=2)",
			writes, keys, len(failures)-writes, keys)
	}
}
