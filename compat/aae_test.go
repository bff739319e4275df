package compat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dynakv/dynakv/internal/launch"
	"github.com/dynakv/dynakv/node"
)

// localValues counts the keys whose DGET LOCAL on p holds want[key].
func localValues(t *testing.T, p *proc, want map[string]string) int {
	t.Helper()
	c := newRedis(p.RESP, 2)
	defer c.Close()
	pipe := c.Pipeline()
	cmds := map[string]*redis.Cmd{}
	for k := range want {
		cmds[k] = pipe.Do(ctx(t), "DGET", k, "LOCAL")
	}
	if _, err := pipe.Exec(ctx(t)); err != nil && !errors.Is(err, redis.Nil) {
		return 0
	}
	n := 0
	for k, cmd := range cmds {
		r, err := cmd.Slice()
		if err != nil || len(r) != 2 {
			continue
		}
		if sibs, _ := r[1].([]any); slices.Contains(sibs, any(want[k])) {
			n++
		}
	}
	return n
}

// TestClusterAntiEntropyHealsWithoutHints: with hinted handoff off, a node that was
// down while 1,000 keys were written gets every one of them from anti-entropy.
func TestClusterAntiEntropyHealsWithoutHints(t *testing.T) {
	if testing.Short() {
		t.Skip("three processes; skipped with -short")
	}
	procs := startCluster(t, 3, "--hinted-handoff=false", "--aae-interval", "2s")
	victim := procs[2]
	victim.signal(syscall.SIGTERM)
	if err := victim.wait(); err != nil {
		t.Fatalf("%s exit: %v", victim.name, err)
	}
	c := newRedis(procs[0].RESP, 2)
	defer c.Close()
	want := map[string]string{}
	pipe := c.Pipeline()
	for i := range 1000 {
		k, v := fmt.Sprintf("aae-%04d", i), fmt.Sprintf("v%d", i)
		want[k] = v
		pipe.Set(ctx(t), k, v, 0)
	}
	if _, err := pipe.Exec(ctx(t)); err != nil {
		t.Fatalf("writes with one node down: %v", err)
	}
	if n := localValues(t, procs[1], want); n != 1000 {
		t.Fatalf("c2 holds %d of 1000 keys before the repair; N=3 over 3 nodes means all", n)
	}
	victim.restart()
	start := time.Now()
	deadline := start.Add(60 * time.Second)
	for {
		n := localValues(t, victim, want)
		if n == 1000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s the restarted node holds %d of 1000 keys", n)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("the restarted node had all 1,000 keys after %v", time.Since(start).Round(100*time.Millisecond))
	if hp := info(t, victim)["hints_pending"]; hp != "0" {
		t.Fatalf("hints_pending = %s with hinted handoff off", hp)
	}
	var repaired int
	for _, p := range procs {
		r, _ := strconv.Atoi(info(t, p)["aae_keys_repaired"])
		repaired += r
	}
	if repaired < 1000 {
		t.Fatalf("aae_keys_repaired adds up to %d, want at least 1000", repaired)
	}

	// dynakv status shows the repair ages, per partition with --partitions, and
	// follows the node with a handoff progress bar with --watch.
	out, err := exec.Command(binary, "status", "--http", victim.HTTP, "--partitions").CombinedOutput()
	if err != nil {
		t.Fatalf("dynakv status: %v\n%s", err, out)
	}
	for _, want := range []string{"anti-entropy every 2s", "repair age median", "PARTITION  KEYS", "handoff: 0 partitions pending"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("dynakv status --partitions lacks %q:\n%s", want, out)
		}
	}
	var buf launch.Buffer
	watch := exec.Command(binary, "status", "--http", victim.HTTP, "--watch", "--every", "200ms")
	watch.Stdout, watch.Stderr = &buf, &buf
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	_ = watch.Process.Signal(syscall.SIGINT)
	if err := watch.Wait(); err != nil {
		t.Fatalf("status --watch: %v\n%s", err, buf.String())
	}
	if got := buf.String(); strings.Count(got, "MEMBER") < 2 || !strings.Contains(got, "100%") {
		t.Fatalf("status --watch did not refresh with a handoff bar:\n%s", got)
	}
}

// nodeKeys is the number of records p holds (its /cluster/status keys).
func nodeKeys(t *testing.T, p *proc) int64 {
	t.Helper()
	resp, err := http.Get("http://" + p.HTTP + "/cluster/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Keys int64 `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st.Keys
}

// TestClusterJoinAndLeaveUnderLoad: a fourth node joins and then a node leaves while
// clients write and read; every acknowledged key stays readable throughout, and in
// the end every key sits on exactly its N preference-list owners.
func TestClusterJoinAndLeaveUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("four processes; skipped with -short")
	}
	procs := startCluster(t, 3, "--aae-interval", "1s")
	c := newRedis(procs[0].RESP, 2)
	defer c.Close()
	var mu sync.Mutex
	acked := map[string]string{}
	for i := range 300 {
		k := fmt.Sprintf("pre-%03d", i)
		if err := c.Set(ctx(t), k, "p"+k, 0).Err(); err != nil {
			t.Fatal(err)
		}
		acked[k] = "p" + k
	}

	// Load through c1 and c2: writes of new keys and reads of acknowledged ones,
	// bounded in count and time.
	var readErrs, writeErrs, ops atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w, p := range procs[:2] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc := newRedis(p.RESP, 2)
			defer rc.Close()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := 0; i < 20000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ops.Add(1)
				rctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				if i%2 == 0 {
					k := fmt.Sprintf("load-%d-%d", w, i)
					if err := rc.Set(rctx, k, "v"+k, 0).Err(); err != nil {
						writeErrs.Add(1)
						firstErr.CompareAndSwap(nil, fmt.Sprintf("SET %s via %s: %v", k, p.name, err))
					} else {
						mu.Lock()
						acked[k] = "v" + k
						mu.Unlock()
					}
				} else {
					k := fmt.Sprintf("pre-%03d", rng.IntN(300))
					got, err := rc.Get(rctx, k).Result()
					if err != nil || got != "p"+k {
						readErrs.Add(1)
						firstErr.CompareAndSwap(nil, fmt.Sprintf("GET %s via %s = %q, %v", k, p.name, got, err))
					}
				}
				cancel()
				time.Sleep(time.Millisecond)
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()

	// Join.
	c4 := startClusterNode(t, "c4", freeAddr(t), procs[0].node.Gossip, "--aae-interval", "1s")
	all := append(slices.Clone(procs), c4)
	for _, p := range all {
		waitInfo(t, p, "cluster_members_alive", "4", 30*time.Second)
	}
	for _, p := range all {
		waitInfo(t, p, "handoff_partitions_pending", "0", 60*time.Second)
	}
	if nodeKeys(t, c4) == 0 {
		t.Fatal("the new node received no keys")
	}

	// Leave: c3 hands everything off and leaves the ring.
	leaver := procs[2]
	req, _ := http.NewRequest(http.MethodPost, "http://"+leaver.HTTP+"/cluster/leave", nil)
	req.Header.Set("Authorization", "Bearer "+node.AdminToken(clusterSecret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("leave: %v %v", resp, err)
	}
	resp.Body.Close()
	remaining := []*proc{procs[0], procs[1], c4}
	for _, p := range remaining {
		waitInfo(t, p, "cluster_members", "3", 60*time.Second)
	}
	deadline := time.Now().Add(60 * time.Second)
	for nodeKeys(t, leaver) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the leaving node still holds %d keys", nodeKeys(t, leaver))
		}
		time.Sleep(200 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	stop = make(chan struct{})
	t.Logf("%d ops under join and leave: %d read errors, %d write errors", ops.Load(), readErrs.Load(), writeErrs.Load())
	if readErrs.Load()+writeErrs.Load() > 0 {
		t.Fatalf("%d reads and %d writes failed during the moves; first: %v", readErrs.Load(), writeErrs.Load(), firstErr.Load())
	}
	for _, p := range remaining {
		waitInfo(t, p, "handoff_partitions_pending", "0", 60*time.Second)
	}

	// Every acknowledged key is on exactly its owners: wait for anti-entropy to copy
	// the writes made while ownership moved, then check each owner's replica.
	checkPlacement(t, remaining, acked)
}

// checkPlacement waits (up to 60 s) until every key of acked is on each of its N=3
// preference-list owners among procs with its value, then checks no node holds a
// stray record: the nodes hold exactly 3 records per key.
func checkPlacement(t *testing.T, procs []*proc, acked map[string]string) {
	t.Helper()
	c := newRedis(procs[0].RESP, 2)
	defer c.Close()
	byName := map[string]*proc{}
	for _, p := range procs {
		byName[p.name] = p
	}
	perOwner := map[string]map[string]string{}
	for k, v := range acked {
		pl, err := c.Do(ctx(t), "DPREFLIST", k).StringSlice()
		if err != nil {
			t.Fatal(err)
		}
		if len(pl) != 3 {
			t.Fatalf("DPREFLIST %s = %v, want 3 owners", k, pl)
		}
		for _, o := range pl {
			if byName[o] == nil {
				t.Fatalf("DPREFLIST %s = %v names %s, not one of the remaining nodes", k, pl, o)
			}
			if perOwner[o] == nil {
				perOwner[o] = map[string]string{}
			}
			perOwner[o][k] = v
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for name, want := range perOwner {
		for {
			n := localValues(t, byName[name], want)
			if n == len(want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s holds %d of the %d keys it owns", name, n, len(want))
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	var total int64
	for _, p := range procs {
		total += nodeKeys(t, p)
	}
	if want := int64(3 * len(acked)); total != want {
		t.Fatalf("the nodes hold %d records, want %d: 3 per key, none stray", total, want)
	}
}

// pendingHandoffs adds up handoff_partitions_pending over procs (a node that does
// not answer counts as 0).
func pendingHandoffs(t *testing.T, procs []*proc) int {
	t.Helper()
	sum := 0
	for _, p := range procs {
		n, _ := strconv.Atoi(info(t, p)["handoff_partitions_pending"])
		sum += n
	}
	return sum
}

// TestClusterHandoffResumesAfterCrash: a join's partition handoff, throttled so it
// takes a while, survives kill -9 of the receiving node and then of a sending node
// in the middle of the move. After each restart the move goes on from what the
// trees still show as different; in the end every key is on exactly its owners,
// the former owners dropped what they handed off, and nothing acknowledged is lost.
func TestClusterHandoffResumesAfterCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("four processes; skipped with -short")
	}
	const keys = 6000
	throttle := []string{"--aae-interval", "1s", "--aae-max-keys-per-sec", "300"}
	procs := startCluster(t, 3, throttle...)
	acked := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newRedis(procs[w%3].RESP, 2)
			defer c.Close()
			pipe := c.Pipeline()
			batch := map[string]string{}
			for i := w; i < keys; i += 4 {
				k := fmt.Sprintf("move-%05d", i)
				batch[k] = "v" + k
				pipe.Set(ctx(t), k, "v"+k, 0)
			}
			if _, err := pipe.Exec(ctx(t)); err != nil {
				errs <- err
				return
			}
			mu.Lock()
			maps.Copy(acked, batch)
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("loading %d keys: %v", keys, err)
	}

	c4 := startClusterNode(t, "c4", freeAddr(t), procs[0].node.Gossip, throttle...)
	all := append(slices.Clone(procs), c4)
	for _, p := range all {
		waitInfo(t, p, "cluster_members_alive", "4", 30*time.Second)
	}

	// midway waits until the move has started (the new node holds some keys) and is
	// still under way, so the crash lands in the middle of it.
	midway := func(what string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			got, pending := nodeKeys(t, c4), pendingHandoffs(t, procs)
			if got > keys/10 && pending > 0 {
				t.Logf("%s: the new node holds %d keys, %d partitions still to hand off", what, got, pending)
				return
			}
			if pending == 0 && got > 0 {
				t.Fatalf("%s: the handoff ended before the crash (throttle too loose?)", what)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no handoff under way after 60s (new node holds %d keys, %d pending)", what, got, pending)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	crash := func(p *proc) {
		t.Helper()
		p.signal(syscall.SIGKILL)
		_ = p.wait()
		time.Sleep(500 * time.Millisecond)
		p.restart()
		for _, q := range all {
			waitInfo(t, q, "cluster_members_alive", "4", 30*time.Second)
		}
	}

	midway("receiver crash")
	crash(c4)
	midway("sender crash")
	var sender *proc
	for _, p := range procs {
		if n, _ := strconv.Atoi(info(t, p)["handoff_partitions_pending"]); n > 0 {
			sender = p
			break
		}
	}
	if sender == nil {
		t.Fatal("no former owner has partitions pending")
	}
	crash(sender)

	start := time.Now()
	for _, p := range all {
		waitInfo(t, p, "handoff_partitions_pending", "0", 120*time.Second)
	}
	t.Logf("handoff finished %v after the second restart", time.Since(start).Round(100*time.Millisecond))
	checkPlacement(t, all, acked)
	var done int
	for _, p := range procs {
		n, _ := strconv.Atoi(info(t, p)["handoff_partitions_done"])
		done += n
	}
	if done == 0 {
		t.Fatal("handoff_partitions_done is 0 on every former owner")
	}
}
