package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dynakv/dynakv/internal/memstore"
	"github.com/dynakv/dynakv/peer/peertest"
)

// TestPlanAvoidance checks planFor with avoided peers and the spares it leaves.
// Nodes are named by their position in the preference list of partition 0 of a
// ring without zones: p0..p2 are its N=3 replicas, the rest
// its fallbacks in order.
func TestPlanAvoidance(t *testing.T) {
	type want struct {
		self    bool
		remote  []string // "pI" or "pI>pJ" (pI standing in for pJ)
		orphans []string
		spare   []string
	}
	for _, tc := range []struct {
		name          string
		nodes, self   int
		dead, avoided []int
		noHints       bool
		want          want
	}{
		{"all alive: the fallbacks are spares, at most N", 8, 0, nil, nil, false,
			want{true, []string{"p1", "p2"}, nil, []string{"p3", "p4", "p5"}}},
		{"avoided replica: first fallback stands in", 6, 0, nil, []int{1}, false,
			want{true, []string{"p3>p1", "p2"}, nil, []string{"p4", "p5"}}},
		{"avoided and dead replicas", 6, 0, []int{2}, []int{1}, false,
			want{true, []string{"p3>p1", "p4>p2"}, nil, []string{"p5"}}},
		{"avoided fallback skipped", 6, 0, []int{1}, []int{3}, false,
			want{true, []string{"p4>p1", "p2"}, nil, []string{"p5"}}},
		{"avoided replica, no fallback: asked anyway", 3, 0, nil, []int{1}, false,
			want{true, []string{"p1", "p2"}, nil, nil}},
		{"avoided replica, only fallback avoided too: asked anyway", 4, 0, nil, []int{1, 3}, false,
			want{true, []string{"p1", "p2"}, nil, nil}},
		{"dead replica, only fallback avoided: orphan", 4, 0, []int{1}, []int{3}, false,
			want{true, []string{"p2"}, []string{"p1"}, nil}},
		{"spares skip dead, avoided and the coordinator", 8, 4, []int{5}, []int{6}, false,
			want{false, []string{"p0", "p1", "p2"}, nil, []string{"p3", "p7"}}},
		{"hints off: avoided replicas asked, dead ones not, no spares", 6, 0, []int{2}, []int{1}, true,
			want{true, []string{"p1"}, nil, nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rg := testRing(t, nodeNames(tc.nodes)...)
			pl := rg.PreferenceList(0)
			pos := map[string]string{}
			for i, n := range pl {
				pos[n] = "p" + strconv.Itoa(i)
			}
			in := func(set []int) func(string) bool {
				return func(node string) bool {
					i, _ := strconv.Atoi(strings.TrimPrefix(pos[node], "p"))
					return slices.Contains(set, i)
				}
			}
			dead := in(tc.dead)
			pn := planFor(rg, 0, 3, pl[tc.self], func(n string) bool { return !dead(n) }, in(tc.avoided), tc.noHints)
			got := want{self: pn.self}
			for _, tg := range pn.remote {
				s := pos[tg.node]
				if tg.hintFor != "" {
					s += ">" + pos[tg.hintFor]
				}
				got.remote = append(got.remote, s)
			}
			for _, o := range pn.orphans {
				got.orphans = append(got.orphans, pos[o])
			}
			for _, o := range pn.spare {
				got.spare = append(got.spare, pos[o])
			}
			if got.self != tc.want.self || !slices.Equal(got.remote, tc.want.remote) ||
				!slices.Equal(got.orphans, tc.want.orphans) || !slices.Equal(got.spare, tc.want.spare) {
				t.Fatalf("plan = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// newDetectCluster is newTestCluster whose failure detector never declares a
// node dead within the test: membership says every node is alive throughout.
func newDetectCluster(t testing.TB, nodes int, detect time.Duration) *testCluster {
	t.Helper()
	names := nodeNames(nodes)
	net, err := peertest.NewNetwork(1, 64, detect, names...)
	if err != nil {
		t.Fatal(err)
	}
	tc := &testCluster{t: t, net: net, names: names, stores: map[string]*memstore.Store{}, cos: map[string]*Coordinator{}}
	for _, name := range names {
		st := memstore.New(64)
		co, err := New(Config{Actor: name + ":1", Node: name, Cluster: net.View(name), Peers: RemotePeers(net.Caller(name)),
			Logger: slog.New(slog.DiscardHandler)}, st)
		if err != nil {
			t.Fatal(err)
		}
		tc.stores[name], tc.cos[name] = st, co
		net.Start(name, serverOf(co))
	}
	return tc
}

// peerFault is a way for a node to fail its peers' requests while membership
// still says it is alive.
type peerFault struct {
	name        string
	apply, undo func(tc *testCluster, node string)
	// took is how long the first write waits for its quorum: nothing for a peer
	// that refuses or resets, the replica timeout for one that does not answer.
	took time.Duration
	// late: the first calls succeed after the request was answered.
	late bool
}

var peerFaults = []peerFault{
	{name: "refuse",
		apply: func(tc *testCluster, n string) { tc.net.Crash(n) },
		undo:  func(tc *testCluster, n string) { tc.net.Start(n, serverOf(tc.cos[n])) }},
	{name: "reset",
		apply: func(tc *testCluster, n string) { tc.net.Reset(n, true) },
		undo:  func(tc *testCluster, n string) { tc.net.Reset(n, false) }},
	{name: "stall",
		apply: func(tc *testCluster, n string) { tc.net.Slow(n, -1) },
		undo:  func(tc *testCluster, n string) { tc.net.Slow(n, 0) },
		took:  250 * time.Millisecond},
	{name: "slow",
		apply: func(tc *testCluster, n string) { tc.net.Slow(n, 400*time.Millisecond) },
		undo:  func(tc *testCluster, n string) { tc.net.Slow(n, 0) },
		took:  250 * time.Millisecond, late: true},
}

// TestWritesAndReadsDoNotWaitForFailureDetection: two of a key's three owners
// refuse, reset, stall or are slow while membership still says they are alive
// (N=3, R=2, W=2, six nodes). A write through the third is acknowledged at once
// (after the replica timeout for silent owners) with the two next nodes of the
// extended preference list holding it as hints for the owners, and reads succeed
// too; the failed owners are then avoided (the next requests go straight to the
// fallbacks, without waiting), and tried again once the avoidance expired.
func TestWritesAndReadsDoNotWaitForFailureDetection(t *testing.T) {
	for _, f := range peerFaults {
		t.Run(f.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tc := newDetectCluster(t, 6, time.Hour)
				defer tc.Close()
				ctx := context.Background()
				key := "k"
				pl := tc.prefs(key)
				co := tc.cos[pl[0]]
				for _, o := range pl[1:3] {
					f.apply(tc, o)
				}
				start := time.Now()
				rec, err := writtenRecord(co.Put(ctx, []byte(key), nil, value("v1"), WriteOptions{}))
				if err != nil {
					t.Fatalf("write with two owners failing: %v", err)
				}
				if took := time.Since(start); took != f.took {
					t.Errorf("write answered after %v, want %v", took, f.took)
				}
				dot := dotOf(rec, pl[0]+":1")
				synctest.Wait()
				var standIns []string
				for _, fb := range pl[3:5] {
					for _, o := range pl[1:3] {
						if h, ok := tc.hint(fb, o, key); ok && covers(h, dot) {
							standIns = append(standIns, o)
						}
					}
				}
				slices.Sort(standIns)
				if want := slices.Sorted(slices.Values(pl[1:3])); !slices.Equal(standIns, want) {
					t.Errorf("fallbacks %v hold hints for %v, want one each for %v", pl[3:5], standIns, want)
				}
				if m := co.Metrics(); m.Fallbacks != 2 || m.WriteQuorumFailures != 0 {
					t.Errorf("metrics after the first write: %+v; want 2 fallbacks", m)
				}

				// Reads succeed too, through the owner and through a node that has
				// not met the failures yet.
				for _, via := range []string{pl[0], pl[5]} {
					start := time.Now()
					got, err := tc.cos[via].Get(ctx, []byte(key), ReadOptions{})
					if err != nil || !covers(got, dot) {
						t.Fatalf("read via %s: %v, %v; want the write", via, data(got), err)
					}
					if took := time.Since(start); took > f.took {
						t.Errorf("read via %s answered after %v, want at most %v", via, took, f.took)
					}
				}

				// The failed owners are avoided: the next write goes straight to the
				// fallbacks and waits for nobody.
				synctest.Wait()
				calls := tc.net.Stats().Calls
				start = time.Now()
				rec, err = writtenRecord(co.Put(ctx, []byte(key), rec.Str.Join(), value("v2"), WriteOptions{}))
				if err != nil {
					t.Fatal(err)
				}
				if took := time.Since(start); took != 0 {
					t.Errorf("a write while the owners are avoided answered after %v", took)
				}
				synctest.Wait()
				if n := tc.net.Stats().Calls - calls; n != 2 {
					t.Errorf("a write while the owners are avoided made %d calls, want 2 (the fallbacks)", n)
				}

				// After the avoidance (renewed when the calls that stalled ended at
				// the request deadline), the owners are asked again: back to
				// health, they take the write themselves.
				time.Sleep(DefaultAvoidFor + time.Second)
				for _, o := range pl[1:3] {
					if f.late {
						if !covers(tc.local(o, key), dot) {
							t.Errorf("owner %s lacks the first write, whose slow call was not cancelled", o)
						}
					}
					f.undo(tc, o)
				}
				rec, err = writtenRecord(co.Put(ctx, []byte(key), rec.Str.Join(), value("v3"), WriteOptions{W: 3}))
				if err != nil {
					t.Fatal(err)
				}
				synctest.Wait()
				dot = dotOf(rec, pl[0]+":1")
				for _, o := range pl[1:3] {
					if !covers(tc.local(o, key), dot) {
						t.Errorf("owner %s was not asked again after the avoidance expired", o)
					}
				}
			})
		})
	}
}

// TestAvoidedOwnerRetriedWhileStillFailing: an owner that still refuses when its
// avoidance expires costs one more failed call, and is avoided again.
func TestAvoidedOwnerRetriedWhileStillFailing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newDetectCluster(t, 5, time.Hour)
		defer tc.Close()
		ctx := context.Background()
		pl := tc.prefs("k")
		co := tc.cos[pl[0]]
		tc.net.Crash(pl[1])
		refusedAfter := func() int64 {
			if _, err := co.Put(ctx, []byte("k"), nil, value("v"), WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			return tc.net.Stats().Refused
		}
		for i, want := range []int64{1, 1, 1} {
			if got := refusedAfter(); got != want {
				t.Fatalf("write %d within the avoidance: %d refused calls in all, want %d", i, got, want)
			}
			time.Sleep(time.Second)
		}
		time.Sleep(DefaultAvoidFor)
		for i, want := range []int64{2, 2} {
			if got := refusedAfter(); got != want {
				t.Fatalf("write %d after the avoidance: %d refused calls in all, want %d", i, got, want)
			}
		}
	})
}

// TestRequestTimeoutBoundsFallbacks: with no node left to stand in, a write and a
// read whose replicas do not answer fail after the request timeout, not later.
func TestRequestTimeoutBoundsFallbacks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newDetectCluster(t, 4, time.Hour)
		defer tc.Close()
		ctx := context.Background()
		pl := tc.prefs("k")
		for _, n := range pl[1:] {
			tc.net.Slow(n, -1)
		}
		start := time.Now()
		_, err := tc.cos[pl[0]].Put(ctx, []byte("k"), nil, value("v"), WriteOptions{})
		var qe *QuorumError
		if !errors.As(err, &qe) || qe.Acks != 1 {
			t.Fatalf("write with every other node stalled: %v, want a QuorumError with 1 ack", err)
		}
		// Requests share deadlines within RequestTimeout/64 (sharedDeadline).
		late := func(took time.Duration) bool { return took < time.Second || took > time.Second+time.Second/64 }
		if took := time.Since(start); late(took) {
			t.Fatalf("failed write answered after %v, want the request timeout", took)
		}
		start = time.Now()
		if _, err := tc.cos[pl[0]].Get(ctx, []byte("k"), ReadOptions{}); !errors.As(err, &qe) {
			t.Fatalf("read with every other node stalled: %v, want a QuorumError", err)
		}
		if took := time.Since(start); late(took) {
			t.Fatalf("failed read answered after %v, want the request timeout", took)
		}
	})
}

// TestAvoidance checks the avoidance view on its own clock.
func TestAvoidance(t *testing.T) {
	now := time.Unix(1000, 0)
	a := NewAvoidance(5*time.Second, func() time.Time { return now })
	if a.Avoided("x") {
		t.Fatal("a node that never failed is avoided")
	}
	if !a.Failed("x") || a.Failed("x") {
		t.Fatal("Failed should report only the first failure as fresh")
	}
	now = now.Add(4 * time.Second)
	if !a.Avoided("x") {
		t.Fatal("not avoided 4s after failing")
	}
	now = now.Add(time.Second)
	if a.Avoided("x") {
		t.Fatal("still avoided 5s after failing")
	}
	if !a.Failed("x") {
		t.Fatal("a failure after the avoidance expired is not fresh")
	}
	a.Forget("x")
	if a.Avoided("x") {
		t.Fatal("avoided after Forget")
	}
	for i := range 2 * avoidSweepAt {
		a.Failed(fmt.Sprint("n", i))
		now = now.Add(time.Minute)
	}
	if n := len(a.until); n > avoidSweepAt {
		t.Fatalf("%d entries kept for nodes whose avoidance expired long ago", n)
	}
	var nilAvoid *Avoidance
	if nilAvoid.Avoided("x") {
		t.Fatal("a nil Avoidance avoids")
	}
}

// TestQuorumCountsOwnersOnce: a slow owner that answers after a fallback already
// answered for it adds a copy, not an acknowledgement: W and R count distinct
// owners, so a quorum always means W (R) of the key's owners answered, in person
// or through a fallback. p1 is slow, p2 stalls, and one spare stands in for p1.
func TestQuorumCountsOwnersOnce(t *testing.T) {
	t.Run("write", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tc := newDetectCluster(t, 4, time.Hour) // p3 is the only spare
			defer tc.Close()
			pl := tc.prefs("k")
			tc.net.Slow(pl[1], 400*time.Millisecond)
			tc.net.Slow(pl[2], -1)
			rec, err := writtenRecord(tc.cos[pl[0]].Put(context.Background(), []byte("k"), nil, value("v"), WriteOptions{W: 3}))
			var qe *QuorumError
			if !errors.As(err, &qe) || qe.Acks != 2 || qe.Need != 3 {
				t.Fatalf("W=3 with p1 slow, p2 stalled and one spare: %v; want QuorumError{2, 3}", err)
			}
			synctest.Wait()
			dot := dotOf(rec, pl[0]+":1")
			if h, ok := tc.hint(pl[3], pl[1], "k"); !ok || !covers(h, dot) || !covers(tc.local(pl[1], "k"), dot) {
				t.Fatal("want the write both on slow p1 and as p3's hint for it")
			}
		})
	})
	t.Run("read", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tc := newDetectCluster(t, 5, time.Hour)
			defer tc.Close()
			pl := tc.prefs("k")
			// p4 reads: not an owner, so it asks p0, p1, p2; p3 is its only spare.
			tc.net.Slow(pl[1], 400*time.Millisecond)
			tc.net.Slow(pl[2], -1)
			_, err := tc.cos[pl[4]].Get(context.Background(), []byte("k"), ReadOptions{R: 3})
			var qe *QuorumError
			if !errors.As(err, &qe) || qe.Acks != 2 || qe.Need != 3 {
				t.Fatalf("R=3 read with p1 slow, p2 stalled and one spare: %v; want QuorumError{2, 3}", err)
			}
		})
	})
}
