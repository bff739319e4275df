package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lni/goutils/leaktest"

	"github.com/dynakv/dynakv/internal/memstore"
	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/peer/peertest"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/ring"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/vclock"
)

// The test network's views are Memberships.
var _ Membership = peertest.View{}

// staticView is a Membership with fixed liveness.
type staticView struct {
	rg   *ring.Ring
	dead map[string]bool
}

func (v staticView) Ring() *ring.Ring       { return v.rg }
func (v staticView) Alive(node string) bool { return !v.dead[node] }

func testRing(t testing.TB, names ...string) *ring.Ring {
	t.Helper()
	ms := make([]ring.Member, len(names))
	for i, n := range names {
		ms[i] = ring.Member{Name: n}
	}
	rg, err := ring.New(64, ms)
	if err != nil {
		t.Fatal(err)
	}
	return rg
}

func nodeNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "n" + strconv.Itoa(i+1)
	}
	return out
}

// TestPlan checks the sloppy-quorum target choice. Nodes are named by their
// position in the key's preference list: p0 is its first replica, p3 its first
// fallback.
func TestPlan(t *testing.T) {
	key := []byte("plan-key")
	type want struct {
		self    bool
		remote  []string // "pI" or "pI>pJ" (pI standing in for pJ)
		orphans []string
	}
	for _, tc := range []struct {
		name  string
		nodes int
		self  int   // position of the coordinator
		dead  []int // positions believed dead
		want  want
	}{
		{"all alive", 5, 0, nil, want{true, []string{"p1", "p2"}, nil}},
		{"all alive, coordinator second", 5, 1, nil, want{true, []string{"p0", "p2"}, nil}},
		{"one replica down: first fallback", 5, 0, []int{1}, want{true, []string{"p3>p1", "p2"}, nil}},
		{"one replica down, first fallback down too", 5, 0, []int{1, 3}, want{true, []string{"p4>p1", "p2"}, nil}},
		{"two replicas down, two fallbacks", 5, 0, []int{1, 2}, want{true, []string{"p3>p1", "p4>p2"}, nil}},
		{"two replicas down, one fallback", 5, 0, []int{1, 2, 4}, want{true, []string{"p3>p1"}, []string{"p2"}}},
		{"no fallback in a 3-node ring", 3, 0, []int{2}, want{true, []string{"p1"}, []string{"p2"}}},
		{"everyone else down", 3, 0, []int{1, 2}, want{true, nil, []string{"p1", "p2"}}},
		{"coordinator not in the top N", 5, 3, nil, want{false, []string{"p0", "p1", "p2"}, nil}},
		{"coordinator not in the top N is no fallback", 5, 3, []int{1}, want{false, []string{"p0", "p4>p1", "p2"}, nil}},
		{"coordinator not in the top N, no fallback left", 5, 3, []int{1, 4}, want{false, []string{"p0", "p2"}, []string{"p1"}}},
		{"two-node ring", 2, 1, nil, want{true, []string{"p0"}, nil}},
		{"one-node ring", 1, 0, nil, want{true, nil, nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rg := testRing(t, nodeNames(tc.nodes)...)
			pl := rg.PreferenceList(rg.Partition(key))
			pos := map[string]string{}
			for i, n := range pl {
				pos[n] = "p" + strconv.Itoa(i)
			}
			dead := map[string]bool{}
			for _, i := range tc.dead {
				dead[pl[i]] = true
			}
			c, err := New(Config{Actor: "a", Node: pl[tc.self], Cluster: staticView{rg, dead},
				Peers: RemotePeers(peer.CallerFunc(nil))}, memstore.New(64))
			if err != nil {
				t.Fatal(err)
			}
			pn := c.plan(key)
			var got want
			got.self = pn.self
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
			if got.self != tc.want.self || !slices.Equal(got.remote, tc.want.remote) || !slices.Equal(got.orphans, tc.want.orphans) {
				t.Fatalf("plan = %+v, want %+v", got, tc.want)
			}
			if wantN := min(3, tc.nodes); pn.n != wantN {
				t.Fatalf("plan.n = %d, want %d", pn.n, wantN)
			}
		})
	}
}

func TestQuorumClamping(t *testing.T) {
	c, err := New(Config{Actor: "a"}, memstore.New(4)) // N=3, R=2, W=2
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		members, override int
		n, r, w           int
	}{
		{1, 0, 1, 1, 1}, {1, 1, 1, 1, 1}, {1, 5, 1, 1, 1},
		{2, 0, 2, 2, 2}, {2, 1, 2, 1, 1}, {2, 5, 2, 2, 2},
		{3, 0, 3, 2, 2}, {3, 1, 3, 1, 1}, {3, 5, 3, 3, 3},
		{5, 0, 3, 2, 2}, {5, 1, 3, 1, 1}, {5, 5, 3, 3, 3},
		{0, 0, 1, 1, 1},
	} {
		n, r, w := c.Quorum(tc.members, tc.override, tc.override)
		if n != tc.n || r != tc.r || w != tc.w {
			t.Errorf("Quorum(%d, %d, %d) = %d, %d, %d; want %d, %d, %d", tc.members, tc.override, tc.override,
				n, r, w, tc.n, tc.r, tc.w)
		}
	}
	// The defaults clamp on their own too: N=5, R=4, W=1 on a ring of 2.
	c5, err := New(Config{Actor: "a", N: 5, R: 4, W: 1}, memstore.New(4))
	if err != nil {
		t.Fatal(err)
	}
	if n, r, w := c5.Quorum(2, 0, 0); n != 2 || r != 2 || w != 1 {
		t.Errorf("N=5 R=4 W=1 on 2 members: %d, %d, %d", n, r, w)
	}
}

// testCluster is nodes over a peertest.Network, each a memstore and a Coordinator. Build it
// inside a synctest bubble (or defer leaktest) and Close it before returning.
type testCluster struct {
	t      testing.TB
	net    *peertest.Network
	names  []string
	stores map[string]*memstore.Store
	cos    map[string]*Coordinator
}

func newTestCluster(t testing.TB, nodes int, cfg func(*Config)) *testCluster {
	t.Helper()
	names := nodeNames(nodes)
	net, err := peertest.NewNetwork(1, 64, 100*time.Millisecond, names...)
	if err != nil {
		t.Fatal(err)
	}
	tc := &testCluster{t: t, net: net, names: names, stores: map[string]*memstore.Store{}, cos: map[string]*Coordinator{}}
	for _, name := range names {
		c := Config{Actor: name + ":1", Node: name, Cluster: net.View(name), Peers: RemotePeers(net.Caller(name)),
			Logger: slog.New(slog.DiscardHandler)}
		if cfg != nil {
			cfg(&c)
		}
		st := memstore.New(64)
		co, err := New(c, st)
		if err != nil {
			t.Fatal(err)
		}
		tc.stores[name], tc.cos[name] = st, co
		net.Start(name, serverOf(co))
	}
	return tc
}

func (tc *testCluster) Close() {
	for _, name := range tc.names {
		tc.cos[name].Close()
	}
}

// prefs returns key's preference list.
func (tc *testCluster) prefs(key string) []string {
	rg := tc.net.Ring()
	return rg.PreferenceList(rg.Partition([]byte(key)))
}

// crash takes node down and waits until everyone sees it dead.
func (tc *testCluster) crash(node string) {
	tc.net.Crash(node)
	time.Sleep(time.Second)
}

func (tc *testCluster) local(node, key string) record.Record {
	tc.t.Helper()
	rec, _, err := tc.stores[node].Get([]byte(key))
	if err != nil {
		tc.t.Fatal(err)
	}
	return rec
}

func (tc *testCluster) hint(node, owner, key string) (record.Record, bool) {
	tc.t.Helper()
	rec, found, err := tc.stores[node].GetHint(owner, []byte(key))
	if err != nil {
		tc.t.Fatal(err)
	}
	return rec, found
}

func covers(rec record.Record, d vclock.Dot) bool { return rec.Str.Join().Covers(d) }

// dotOf returns the dot a write by actor gave its value in rec, the record the
// write returned.
func dotOf(rec record.Record, actor string) vclock.Dot {
	for _, e := range rec.Str.Entries {
		if e.Actor == actor && len(e.Values) > 0 {
			return vclock.Dot{Actor: actor, Counter: e.Counter}
		}
	}
	return vclock.Dot{}
}

func TestWriteAcksCountSelf(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestCluster(t, 5, nil)
		defer tc.Close()
		const d = 100 * time.Millisecond
		tc.net.SetFaults(peertest.Faults{MinDelay: d, MaxDelay: d}) // every message takes d each way
		ctx := context.Background()
		for i, tt := range []struct {
			coord int // position of the coordinator in the key's preference list
			w     int
			took  time.Duration
		}{
			{0, 1, 0},     // its own write is the one ack it needs
			{0, 2, 2 * d}, // plus one replica's round trip
			{0, 3, 2 * d},
			// A coordinator outside the top N counts no ack of its own, and reads R
			// replicas first (its own copy is no context): two round trips.
			{3, 1, 4 * d},
			{3, 2, 4 * d},
			{3, 3, 4 * d},
		} {
			key := fmt.Sprintf("acks-%d", i)
			node := tc.prefs(key)[tt.coord]
			start := time.Now()
			rec, err := writtenRecord(tc.cos[node].Put(ctx, []byte(key), nil, value("v"), WriteOptions{W: tt.w}))
			if err != nil {
				t.Fatalf("coordinator p%d, W=%d: %v", tt.coord, tt.w, err)
			}
			if took := time.Since(start); took != tt.took {
				t.Errorf("coordinator p%d, W=%d: answered after %v, want %v", tt.coord, tt.w, took, tt.took)
			}
			synctest.Wait()
			time.Sleep(3 * d) // the background replica writes finish
			dot := dotOf(rec, node+":1")
			for _, r := range tc.prefs(key)[:3] {
				if !covers(tc.local(r, key), dot) {
					t.Errorf("replica %s lacks the write after the background finished", r)
				}
			}
		}
	})
}

func TestWriteQuorumFailureStillStores(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestCluster(t, 3, nil)
		defer tc.Close()
		key := "k"
		pl := tc.prefs(key)
		tc.crash(pl[2])
		co := tc.cos[pl[0]]
		rec, err := writtenRecord(co.Put(context.Background(), []byte(key), nil, value("v"), WriteOptions{W: 3}))
		var qe *QuorumError
		if !errors.As(err, &qe) || qe.Acks != 2 || qe.Need != 3 {
			t.Fatalf("W=3 with a node down: %v, want QuorumError{2, 3}", err)
		}
		if rec.Empty() {
			t.Fatal("a failed write returned no record")
		}
		synctest.Wait()
		dot := dotOf(rec, pl[0]+":1")
		for _, r := range pl[:2] {
			if !covers(tc.local(r, key), dot) {
				t.Errorf("live replica %s lacks the write that missed its quorum", r)
			}
		}
		// No fallback in a 3-node ring: the coordinator keeps the hint itself.
		if h, ok := tc.hint(pl[0], pl[2], key); !ok || !covers(h, dot) {
			t.Errorf("coordinator holds no hint for the down owner %s", pl[2])
		}
		if m := co.Metrics(); m.WriteQuorumFailures != 1 || m.HintsStored != 1 {
			t.Errorf("metrics %+v", m)
		}
	})
}

// TestOrphanHintSmallCluster: "A 3-node cluster with one node down still stores
// hints for it on the coordinator so that a small cluster also heals."
func TestOrphanHintSmallCluster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestCluster(t, 3, nil)
		defer tc.Close()
		down := tc.names[2]
		tc.crash(down)
		for i := range 20 {
			key := fmt.Sprint("orphan-", i)
			coord := tc.names[i%2]
			rec, err := writtenRecord(tc.cos[coord].Put(context.Background(), []byte(key), nil, value("v"), WriteOptions{}))
			if err != nil {
				t.Fatalf("W=2 with 2 of 3 up: %v", err)
			}
			synctest.Wait()
			if h, ok := tc.hint(coord, down, key); !ok || !covers(h, dotOf(rec, coord+":1")) {
				t.Fatalf("%s: coordinator %s stored no hint for %s", key, coord, down)
			}
		}
		if n := tc.stores[tc.names[0]].HintCount() + tc.stores[tc.names[1]].HintCount(); n != 20 {
			t.Fatalf("%d hints stored, want 20", n)
		}
	})
}

func TestFallbackHint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestCluster(t, 5, nil)
		defer tc.Close()
		key := "fallback"
		pl := tc.prefs(key)
		tc.crash(pl[1])
		rec, err := writtenRecord(tc.cos[pl[0]].Put(context.Background(), []byte(key), nil, value("v"), WriteOptions{W: 3}))
		if err != nil {
			t.Fatalf("W=3 with a fallback standing in: %v", err)
		}
		dot := dotOf(rec, pl[0]+":1")
		h, ok := tc.hint(pl[3], pl[1], key)
		if !ok || !covers(h, dot) {
			t.Fatalf("fallback %s holds no hint for %s", pl[3], pl[1])
		}
		if got := tc.local(pl[3], key); !got.Empty() {
			t.Fatalf("fallback stored the hinted write as its own record: %v", got)
		}
		if n := tc.stores[pl[0]].HintCount(); n != 0 {
			t.Fatalf("coordinator stored %d hints although the fallback acknowledged", n)
		}
		got, err := tc.cos[pl[3]].HandleRead(peer.ReadRequest{Key: []byte(key), HintFor: pl[1]})
		if err != nil || !covers(got, dot) {
			t.Fatalf("HandleRead on the fallback for %s: %v, %v", pl[1], got, err)
		}
		if got, _ := tc.cos[pl[3]].HandleRead(peer.ReadRequest{Key: []byte(key)}); !got.Empty() {
			t.Fatalf("HandleRead without HintFor sees the hint: %v", got)
		}
		// A quorum read through another replica finds it through the fallback too.
		rd, err := tc.cos[pl[2]].Get(context.Background(), []byte(key), ReadOptions{R: 3})
		if err != nil || !covers(rd, dot) {
			t.Fatalf("R=3 read with a fallback: %v, %v", rd, err)
		}
	})
}

func TestReadRepair(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestCluster(t, 3, nil)
		defer tc.Close()
		ctx := context.Background()
		key := "repair"
		pl := tc.prefs(key)
		old := vclock.Update(vclock.Set{}, nil, "x:1", value("old"), 1, 1)
		newer := vclock.Update(old, old.Join(), "x:1", value("new"), 2, 1)
		for i, r := range pl {
			rec := newer
			if i == 2 {
				rec = old // the third replica is behind
			}
			if err := tc.cos[r].HandleWrite(peer.WriteRequest{Key: []byte(key), Record: record.String(rec)}); err != nil {
				t.Fatal(err)
			}
		}
		got, err := tc.cos[pl[0]].Get(ctx, []byte(key), ReadOptions{R: 3})
		if err != nil || !sameRecord(got, record.String(newer)) {
			t.Fatalf("R=3 read: %v, %v", data(got), err)
		}
		synctest.Wait()
		if behind := tc.local(pl[2], key); !sameRecord(behind, record.String(newer)) {
			t.Fatalf("replica behind still holds %v after read repair", data(behind))
		}
		if m := tc.cos[pl[0]].Metrics(); m.ReadRepairs != 1 {
			t.Fatalf("ReadRepairs = %d, want 1", m.ReadRepairs)
		}
		// A read that finds every replica equal repairs nothing.
		if _, err := tc.cos[pl[1]].Get(ctx, []byte(key), ReadOptions{}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if m := tc.cos[pl[1]].Metrics(); m.ReadRepairs != 0 {
			t.Fatalf("ReadRepairs = %d after reading equal replicas", m.ReadRepairs)
		}
	})
}

// incr is an INCR-style ModifyFunc: it reads the winning value as an integer.
func incr(cur record.Record) (vclock.Clock, vclock.Value, error) {
	n := 0
	var best vclock.Sibling
	for i, s := range cur.Str.Siblings() {
		if i == 0 || s.Timestamp > best.Timestamp {
			best = s
		}
	}
	if len(best.Data) > 0 {
		var err error
		if n, err = strconv.Atoi(string(best.Data)); err != nil {
			return nil, vclock.Value{}, err
		}
	}
	return cur.Str.Join(), vclock.Value{Data: []byte(strconv.Itoa(n + 1)), Timestamp: time.Now().UnixMilli()}, nil
}

func TestReadFirstSeesOtherCoordinators(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestCluster(t, 3, nil)
		defer tc.Close()
		ctx := context.Background()
		pl := tc.prefs("counter")
		a, c := pl[0], pl[2]
		// Write 5 through a while c is cut off (but not yet suspected): c misses it.
		tc.net.Partition([]string{c})
		if _, err := tc.cos[a].Put(ctx, []byte("counter"), nil, value("5"), WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // the write to c times out (a keeps a hint for it)
		tc.net.Heal()
		if !tc.local(c, "counter").Empty() {
			t.Fatal("c got the write through the partition")
		}
		if got, err := tc.cos[c].Get(ctx, []byte("counter"), ReadOptions{Local: true}); err != nil || !got.Empty() {
			t.Fatalf("local read on c: %v, %v; want nothing", data(got), err)
		}
		if got, err := tc.cos[c].Get(ctx, []byte("counter"), ReadOptions{}); err != nil || !slices.Equal(data(got), []string{"5"}) {
			t.Fatalf("quorum read on c: %v, %v; want 5", data(got), err)
		}
		synctest.Wait() // c was repaired by that read; undo it to test ReadFirst
		tc.stores[c].DropAll()

		rec, err := writtenRecord(tc.cos[c].Modify(ctx, []byte("counter"), incr, WriteOptions{ReadFirst: true}))
		if err != nil || !slices.Equal(data(rec), []string{"6"}) {
			t.Fatalf("INCR with ReadFirst on c: %v, %v; want 6", data(rec), err)
		}
		// Without ReadFirst, c decides on its own replica alone: 1, a sibling of 5.
		tc.net.Partition([]string{c})
		if _, err := tc.cos[a].Put(ctx, []byte("blind"), nil, value("5"), WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		tc.net.Heal()
		rec, err = writtenRecord(tc.cos[c].Modify(ctx, []byte("blind"), incr, WriteOptions{}))
		if err != nil || !slices.Equal(data(rec), []string{"1"}) {
			t.Fatalf("INCR without ReadFirst on c: %v, %v; want 1", data(rec), err)
		}
		got, err := tc.cos[c].Get(ctx, []byte("blind"), ReadOptions{R: 3})
		if err != nil || !slices.Equal(data(got), []string{"1", "5"}) {
			t.Fatalf("after a blind INCR: %v, %v; want siblings 1, 5", data(got), err)
		}
	})
}

func TestScanAndCountCluster(t *testing.T) {
	for _, nodes := range []int{3, 5} {
		t.Run(fmt.Sprint(nodes, " nodes"), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tc := newTestCluster(t, nodes, nil)
				defer tc.Close()
				ctx := context.Background()
				want := map[string]bool{}
				for i := range 200 {
					key := fmt.Sprint("key-", i)
					want[key] = true
					// Any node coordinates, owners and others alike.
					if _, err := tc.cos[tc.names[i%nodes]].Put(ctx, []byte(key), nil, value("v"), WriteOptions{}); err != nil {
						t.Fatal(err)
					}
				}
				// A deleted key is not counted and not visited with a live-only filter.
				if _, err := tc.cos[tc.names[0]].Modify(ctx, []byte("key-0"), func(cur record.Record) (vclock.Clock, vclock.Value, error) {
					return cur.Str.Join(), vclock.Value{Tombstone: true}, nil
				}, WriteOptions{ReadFirst: true}); err != nil {
					t.Fatal(err)
				}
				delete(want, "key-0")
				synctest.Wait()
				for _, name := range tc.names {
					co := tc.cos[name]
					if n, err := co.Count(ctx); err != nil || n != int64(len(want)) {
						t.Fatalf("Count on %s: %d, %v; want %d", name, n, err, len(want))
					}
					seen := map[string]int{}
					var cursor uint64
					for page := 0; ; page++ {
						var err error
						cursor, err = co.ScanPage(ctx, cursor, 7, func(key []byte, rec record.Record) bool {
							for v := range rec.Str.Values() {
								if !v.Tombstone {
									seen[string(key)]++
									return true
								}
							}
							return false
						})
						if err != nil {
							t.Fatal(err)
						}
						if cursor == 0 {
							break
						}
						if page > 1000 {
							t.Fatal("scan does not end")
						}
					}
					for k := range want {
						if seen[k] != 1 {
							t.Errorf("scan on %s visited %s %d times", name, k, seen[k])
						}
					}
					if len(seen) != len(want) {
						t.Errorf("scan on %s visited %d keys, want %d", name, len(seen), len(want))
					}
				}
			})
		})
	}
}

func TestFlushAllCluster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestCluster(t, 5, nil)
		defer tc.Close()
		ctx := context.Background()
		down := tc.names[4]
		tc.crash(down)
		for i := range 50 {
			if _, err := tc.cos[tc.names[i%4]].Put(ctx, []byte(fmt.Sprint("k", i)), nil, value("v"), WriteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		if err := tc.cos[tc.names[0]].FlushAll(ctx); err != nil {
			t.Fatal(err)
		}
		for _, name := range tc.names[:4] {
			if n, h := tc.stores[name].Count(), tc.stores[name].HintCount(); n != 0 || h != 0 {
				t.Errorf("%s holds %d records and %d hints after FLUSHALL", name, n, h)
			}
		}
		if n, err := tc.cos[tc.names[1]].Count(ctx); err != nil || n != 0 {
			t.Errorf("Count after FLUSHALL: %d, %v", n, err)
		}
	})
}

func TestCloseWaitsForBackground(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestCluster(t, 3, nil)
		defer tc.Close()
		const d = 300 * time.Millisecond
		tc.net.SetFaults(peertest.Faults{MinDelay: d, MaxDelay: d})
		ctx := context.Background()
		pl := tc.prefs("k")
		co := tc.cos[pl[0]]
		if _, err := co.Put(ctx, []byte("k"), nil, value("v"), WriteOptions{W: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := co.Get(ctx, []byte("k"), ReadOptions{R: 1}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		// Two replica writes; an R=1 read on a replica reads only its own copy.
		if n := tc.net.Stats().InFlight; n != 2 {
			t.Fatalf("%d calls in flight after W=1 and R=1, want 2", n)
		}
		start := time.Now()
		co.Close()
		if n := tc.net.Stats().InFlight; n != 0 {
			t.Fatalf("%d calls still in flight after Close", n)
		}
		if time.Since(start) != 0 {
			t.Fatalf("Close waited %v instead of cancelling", time.Since(start))
		}
		co.Close() // idempotent
		// The cancelled replica writes left hints, so nothing is lost.
		for _, owner := range pl[1:3] {
			if _, ok := tc.hint(pl[0], owner, "k"); !ok {
				t.Errorf("no hint for %s after its write was cancelled", owner)
			}
		}
		// Requests after Close still run, with no background work: the replica
		// writes they cannot start are left as hints, as failed ones are.
		k2 := "k2"
		for tc.prefs(k2)[0] != pl[0] {
			k2 += "+"
		}
		if _, err := co.Put(ctx, []byte(k2), nil, value("v"), WriteOptions{W: 1}); err != nil {
			t.Fatal(err)
		}
		for _, owner := range tc.prefs(k2)[1:3] {
			if _, ok := tc.hint(pl[0], owner, k2); !ok {
				t.Errorf("no hint for %s after a write made once Close had begun", owner)
			}
		}
		if n := tc.net.Stats().InFlight; n != 0 {
			t.Fatalf("a request after Close left %d calls in flight", n)
		}
	})
}

// TestCloseNoLeaksRealTime runs the same without synctest, checked by leaktest.
func TestCloseNoLeaksRealTime(t *testing.T) {
	defer leaktest.AfterTest(t)()
	tc := newTestCluster(t, 3, nil)
	tc.net.SetFaults(peertest.Faults{MinDelay: 20 * time.Millisecond, MaxDelay: 40 * time.Millisecond})
	ctx := context.Background()
	for i := range 20 {
		key := []byte(fmt.Sprint("k", i))
		if _, err := tc.cos[tc.names[i%3]].Put(ctx, key, nil, value("v"), WriteOptions{W: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := tc.cos[tc.names[(i+1)%3]].Get(ctx, key, ReadOptions{R: 1}); err != nil {
			t.Fatal(err)
		}
	}
	tc.Close()
}

// TestScanPageHugeCount: a SCAN with COUNT above the scan page bound, from a node
// that is not a replica of every partition, still reads the other nodes' pages.
func TestScanPageHugeCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestCluster(t, 5, nil)
		defer tc.Close()
		ctx := context.Background()
		for i := range 100 {
			if _, err := tc.cos[tc.names[i%5]].Put(ctx, []byte(fmt.Sprint("k", i)), nil, value("v"), WriteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		for _, count := range []int{peer.MaxScanCount - 1, peer.MaxScanCount, peer.MaxScanCount + 1, 1 << 20} {
			n := 0
			cursor, err := tc.cos[tc.names[0]].ScanPage(ctx, 0, count, func([]byte, record.Record) bool { n++; return true })
			if err != nil || cursor != 0 || n != 100 {
				t.Errorf("ScanPage(count %d): %d keys, cursor %d, %v; want 100 keys in one page", count, n, cursor, err)
			}
		}
	})
}

// TestDeferredWriteSyncedAlongsideReplicas: a Deferred write is made durable by
// the coordinator alongside its replica writes when there are any (and its result
// says so), and left to the caller otherwise.
func TestDeferredWriteSyncedAlongsideReplicas(t *testing.T) {
	for _, tc := range []struct {
		nodes int
		want  bool
	}{{3, true}, {1, false}} {
		synctest.Test(t, func(t *testing.T) {
			c := newTestCluster(t, tc.nodes, nil)
			defer c.Close()
			// Replica acknowledgements take (fake) time, as over a real network, so
			// the local sync, which takes none, is done when the quorum is: on an
			// instant network the two replica acks could win the race, and the
			// caller would rightly sync itself.
			c.net.SetFaults(peertest.Faults{MinDelay: time.Millisecond, MaxDelay: time.Millisecond})
			co := c.cos[c.prefs("k")[0]]
			res, err := co.Put(context.Background(), []byte("k"), nil, value("v"),
				WriteOptions{Durability: Deferred})
			if err != nil {
				t.Fatal(err)
			}
			if res.Durable != tc.want {
				t.Fatalf("%d nodes: Durable = %v, want %v", tc.nodes, res.Durable, tc.want)
			}
		})
	}
}

// syncCountingStore counts how a coordinator writes: synced, deferred, syncs,
// and batches (UpdateBatch) with the writes in them.
type syncCountingStore struct {
	*memstore.Store
	synced, deferred, syncs int
	batches, batched        int
}

func (s *syncCountingStore) UpdateBatch(keys [][]byte, fns []storage.UpdateFunc) []error {
	s.batches++
	s.batched += len(keys)
	return s.Store.UpdateBatch(keys, fns)
}

func (s *syncCountingStore) Update(key []byte, fn storage.UpdateFunc) (record.Record, error) {
	s.synced++
	return s.Store.Update(key, fn)
}

func (s *syncCountingStore) UpdateNoSync(key []byte, fn storage.UpdateFunc) (record.Record, error) {
	s.deferred++
	return s.Store.UpdateNoSync(key, fn)
}

func (s *syncCountingStore) Sync() error {
	s.syncs++
	return s.Store.Sync()
}

// TestLastWriteCommitsWithItsSync: alone, a DurableOnReturn write is stored with
// one synced commit (not a write and a separate sync) and reported Durable; a
// Deferred one is left unsynced for the caller; a decision not to write is
// Durable only once the coordinator synced (what it read may be another writer's
// unsynced write), and a Deferred one is not.
func TestLastWriteCommitsWithItsSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net, err := peertest.NewNetwork(1, 64, 100*time.Millisecond, "n1")
		if err != nil {
			t.Fatal(err)
		}
		st := &syncCountingStore{Store: memstore.New(64)}
		co, err := New(Config{Actor: "n1:1", Node: "n1", Cluster: net.View("n1"), Peers: RemotePeers(net.Caller("n1")),
			Logger: slog.New(slog.DiscardHandler)}, st)
		if err != nil {
			t.Fatal(err)
		}
		defer co.Close()
		ctx := context.Background()
		put := func(d Durability, fn ModifyFunc) bool {
			t.Helper()
			res, err := co.Modify(ctx, []byte("k"), fn, WriteOptions{Durability: d})
			if err != nil {
				t.Fatal(err)
			}
			return res.Durable
		}
		write := func(cur record.Record) (vclock.Clock, vclock.Value, error) { return cur.Str.Join(), value("v"), nil }
		if !put(DurableOnReturn, write) || st.synced != 1 || st.deferred != 0 || st.syncs != 0 {
			t.Fatalf("last write: synced commits %d, deferred %d, syncs %d; want one synced commit, reported Durable",
				st.synced, st.deferred, st.syncs)
		}
		if put(Deferred, write) || st.synced != 1 || st.deferred != 1 {
			t.Fatalf("not last: synced commits %d, deferred %d; want the write deferred and not reported Durable", st.synced, st.deferred)
		}
		noWrite := func(record.Record) (vclock.Clock, vclock.Value, error) { return nil, vclock.Value{}, ErrNoWrite }
		if put(Deferred, noWrite) {
			t.Fatal("a Deferred op that wrote nothing reported Durable")
		}
		if syncs := st.syncs; !put(DurableOnReturn, noWrite) || st.syncs != syncs+1 {
			t.Fatalf("a DurableOnReturn op that wrote nothing: %d syncs, want 1, and Durable", st.syncs-syncs)
		}
	})
}

// TestLastWriteWhenSyncIsCheap: in a cluster, a write syncs alongside its replica
// writes when a sync waits for the disk, and commits with its sync (one commit, no
// separate sync, before its record leaves) when the store's sync is cheap,
// DurableOnReturn (last in its batch) or Deferred.
func TestLastWriteWhenSyncIsCheap(t *testing.T) {
	for _, tc := range []struct {
		cheap bool
		d     Durability
	}{{false, DurableOnReturn}, {true, DurableOnReturn}, {true, Deferred}} {
		cheap := tc.cheap
		synctest.Test(t, func(t *testing.T) {
			names := nodeNames(3)
			net, err := peertest.NewNetwork(1, 64, 100*time.Millisecond, names...)
			if err != nil {
				t.Fatal(err)
			}
			net.SetFaults(peertest.Faults{MinDelay: time.Millisecond, MaxDelay: time.Millisecond})
			var counted *syncCountingStore
			var cos []*Coordinator
			for i, name := range names {
				var st Store = memstore.New(64)
				if i == 0 {
					counted = &syncCountingStore{Store: memstore.New(64)}
					st = counted
				}
				co, err := New(Config{Actor: name + ":1", Node: name, Cluster: net.View(name), Peers: RemotePeers(net.Caller(name)),
					SyncIsCheap: cheap, Logger: slog.New(slog.DiscardHandler)}, st)
				if err != nil {
					t.Fatal(err)
				}
				defer co.Close()
				net.Start(name, serverOf(co))
				cos = append(cos, co)
			}
			write := func(cur record.Record) (vclock.Clock, vclock.Value, error) { return cur.Str.Join(), value("v"), nil }
			res, err := cos[0].Modify(context.Background(), []byte("k"), write, WriteOptions{Durability: tc.d})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Durable {
				t.Fatalf("cheap sync %v: the write was not reported synced", cheap)
			}
			st := counted
			if cheap && (st.synced != 1 || st.deferred != 0 || st.syncs != 0) {
				t.Fatalf("cheap sync: synced commits %d, deferred %d, syncs %d; want one synced commit", st.synced, st.deferred, st.syncs)
			}
			if !cheap && (st.synced != 0 || st.deferred != 1 || st.syncs != 1) {
				t.Fatalf("disk sync: synced commits %d, deferred %d, syncs %d; want a deferred write synced alongside the replicas", st.synced, st.deferred, st.syncs)
			}
		})
	}
}

// writtenRecord is a write's record, for tests that look at nothing else.
func writtenRecord(res WriteResult, err error) (record.Record, error) { return res.Record, err }
