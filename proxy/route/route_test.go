package route

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dynakv/dynakv/cluster/transport"
	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/proxy"
)

// fakeCluster places every key on the same replicas; alive names the live nodes.
type fakeCluster struct {
	replicas []string
	alive    map[string]bool
}

func (c fakeCluster) Replicas([]byte) []string { return c.replicas }
func (c fakeCluster) Alive(node string) bool   { return c.alive[node] }
func (c fakeCluster) Zone(string) string       { return "" }

// zonedCluster is a fakeCluster whose nodes are in zones (a node not in zones is
// in zone "").
type zonedCluster struct {
	fakeCluster
	zones map[string]string
}

func (c zonedCluster) Zone(node string) string { return c.zones[node] }

// allAlive returns the liveness of a cluster where exactly nodes are alive.
func allAlive(nodes ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range nodes {
		m[n] = true
	}
	return m
}

var (
	_ Cluster = fakeCluster{}
	_ Cluster = zonedCluster{}
)

// fakeCaller answers each forwarded op with reply, recording what it was sent.
type fakeCaller struct {
	reply func(ctx context.Context, node string, op proxy.Op) ([]byte, error)

	mu   sync.Mutex
	sent []string // nodes, in order
	ops  []proxy.Op
}

func (s *fakeCaller) Call(ctx context.Context, node string, typ peer.MsgType, req []byte) ([]byte, error) {
	if typ != peer.MsgForward {
		return nil, fmt.Errorf("forwarded as %v, want %v", typ, peer.MsgForward)
	}
	op, err := proxy.DecodeOp(req)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.sent, s.ops = append(s.sent, node), append(s.ops, op)
	s.mu.Unlock()
	return s.reply(ctx, node, op)
}

var _ peer.Caller = (*fakeCaller)(nil)

// answer replies with res (or the op's error opErr), as a node's serveCluster does.
func answer(res proxy.Result, opErr error) func(context.Context, string, proxy.Op) ([]byte, error) {
	return func(context.Context, string, proxy.Op) ([]byte, error) {
		return proxy.AppendResult(nil, res, opErr), nil
	}
}

// fail makes every Send fail with err, as the transport does.
func fail(err error) func(context.Context, string, proxy.Op) ([]byte, error) {
	return func(context.Context, string, proxy.Op) ([]byte, error) { return nil, err }
}

const testTimeout = time.Second

// newTestRouter returns a router for node "a" over c, with an Avoidance on a
// clock that does not move unless the test moves it.
func newTestRouter(t *testing.T, c Cluster, s peer.Caller) (*Router, *coordinator.Avoidance) {
	t.Helper()
	now := time.Unix(1000, 0)
	avoid := coordinator.NewAvoidance(5*time.Second, func() time.Time { return now })
	r, err := New(Config{Self: "a", Cluster: c, Avoid: avoid, Caller: s, RequestTimeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	return r, avoid
}

var (
	get  = proxy.Op{Kind: proxy.OpGet, Key: []byte("k"), Accepted: 42}
	incr = proxy.Op{Kind: proxy.OpIncr, Key: []byte("k"), Delta: 1, Accepted: 42}
)

// routeCase is a case of Route: "a" routes a key of replicas, with alive the
// live nodes and avoided those that failed a request.
type routeCase struct {
	name     string
	replicas []string
	alive    map[string]bool
	avoided  []string
	want     string
}

// testRoute runs cases on a cluster whose nodes are in zones (none if nil).
func testRoute(t *testing.T, zones map[string]string, cases []routeCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c Cluster = fakeCluster{tc.replicas, tc.alive}
			if zones != nil {
				c = zonedCluster{fakeCluster{tc.replicas, tc.alive}, zones}
			}
			r, avoid := newTestRouter(t, c, &fakeCaller{})
			for _, n := range tc.avoided {
				avoid.Failed(n)
			}
			if got := r.Route([]byte("k")); got != tc.want {
				t.Fatalf("Route = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRoute(t *testing.T) {
	testRoute(t, nil, []routeCase{
		{"a replica itself", []string{"b", "a", "c"}, allAlive("a", "b", "c"), nil, ""},
		{"no replicas", nil, allAlive("a"), nil, ""},
		{"first replica", []string{"b", "c", "d"}, allAlive("a", "b", "c", "d"), nil, "b"},
		{"first live replica", []string{"b", "c", "d"}, allAlive("a", "c", "d"), nil, "c"},
		{"first replica not avoided", []string{"b", "c", "d"}, allAlive("a", "b", "c", "d"), []string{"b"}, "c"},
		{"avoided and dead skipped", []string{"b", "c", "d"}, allAlive("a", "c", "d"), []string{"c"}, "d"},
		{"none answering: run here", []string{"b", "c", "d"}, allAlive("a", "d"), []string{"d"}, ""},
	})
}

// TestRouteInZone: with zones, "a" (in zone A) forwards to the first usable
// replica in zone A, in preference order, even when a replica of another zone
// comes first; to the first usable replica of any zone when none in A is usable;
// and never when it is a replica itself.
func TestRouteInZone(t *testing.T) {
	zones := map[string]string{"a": "A", "b": "B", "c": "A", "d": "C", "e": "A", "f": "B"}
	testRoute(t, zones, []routeCase{
		{"own zone preferred over the first", []string{"b", "d", "c"}, allAlive("a", "b", "c", "d"), nil, "c"},
		{"own zone first anyway", []string{"c", "b", "d"}, allAlive("a", "b", "c", "d"), nil, "c"},
		{"first of the own zone", []string{"b", "e", "c"}, allAlive("a", "b", "c", "e"), nil, "e"},
		{"own zone dead: next in own zone", []string{"b", "e", "c"}, allAlive("a", "b", "c"), nil, "c"},
		{"own zone avoided: next in own zone", []string{"b", "e", "c"}, allAlive("a", "b", "c", "e"), []string{"e"}, "c"},
		{"own zone dead: first other", []string{"d", "b", "c"}, allAlive("a", "b", "d"), nil, "d"},
		{"own zone avoided: first other usable", []string{"d", "b", "c"}, allAlive("a", "b", "c", "d"), []string{"c", "d"}, "b"},
		{"none in own zone", []string{"d", "b", "f"}, allAlive("a", "b", "d", "f"), nil, "d"},
		{"a replica itself", []string{"b", "d", "a"}, allAlive("a", "b", "c", "d"), nil, ""},
		{"none answering: run here", []string{"b", "c", "d"}, allAlive("a"), nil, ""},
	})
}

// TestRouteNoAlloc: routing a key allocates nothing, zones or not.
func TestRouteNoAlloc(t *testing.T) {
	zones := map[string]string{"a": "A", "b": "B", "c": "A", "d": "C"}
	for name, c := range map[string]Cluster{
		"no zones": fakeCluster{[]string{"b", "c", "d"}, allAlive("a", "c", "d")},
		"zones":    zonedCluster{fakeCluster{[]string{"b", "d", "c"}, allAlive("a", "b", "c", "d")}, zones},
	} {
		r, _ := newTestRouter(t, c, &fakeCaller{})
		if n := testing.AllocsPerRun(100, func() { r.Route(get.Key) }); n != 0 {
			t.Errorf("%s: Route allocates %v times", name, n)
		}
	}
}

// BenchmarkRoute measures routing a key that is forwarded to a replica of this
// node's zone behind one of another zone.
func BenchmarkRoute(b *testing.B) {
	zones := map[string]string{"a": "A", "b": "B", "c": "A", "d": "C"}
	for _, bc := range []struct {
		name string
		c    Cluster
	}{
		{"no-zones", fakeCluster{[]string{"b", "c", "d"}, allAlive("a", "b", "c", "d")}},
		{"zones", zonedCluster{fakeCluster{[]string{"b", "d", "c"}, allAlive("a", "b", "c", "d")}, zones}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			avoid := coordinator.NewAvoidance(5*time.Second, time.Now)
			r, err := New(Config{Self: "a", Cluster: bc.c, Avoid: avoid, Caller: &fakeCaller{}, RequestTimeout: testTimeout})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if r.Route(get.Key) == "" {
					b.Fatal("not routed")
				}
			}
		})
	}
}

// TestForwardToFirstLiveReplica: the op goes to the first live replica unchanged
// (its accept time included), and its result comes back as the replica gave it.
func TestForwardToFirstLiveReplica(t *testing.T) {
	c := fakeCluster{[]string{"b", "c", "d"}, allAlive("a", "c", "d")}
	s := &fakeCaller{reply: answer(proxy.Result{Found: true, Item: proxy.Item{Value: []byte("v")}}, nil)}
	r, _ := newTestRouter(t, c, s)
	node := r.Route(get.Key)
	if node != "c" {
		t.Fatalf("Route = %q, want c (b is down)", node)
	}
	res, err := r.Forward(context.Background(), node, get)
	if err != nil || !res.Found || !bytes.Equal(res.Item.Value, []byte("v")) {
		t.Fatalf("Forward = %+v, %v", res, err)
	}
	if !slices.Equal(s.sent, []string{"c"}) || s.ops[0].Kind != get.Kind || s.ops[0].Accepted != get.Accepted {
		t.Fatalf("sent %v %+v, want the GET to c with its accept time", s.sent, s.ops)
	}
	if m := r.Metrics(); m != (Metrics{Forwarded: 1}) {
		t.Fatalf("Metrics = %+v", m)
	}
}

// TestForwardOutcomes: what Forward makes of each way a forward can end, for an
// idempotent op (GET) and one that must not run twice (INCR): run here
// (ErrRunLocally), the replica's outcome, or an unknown outcome; and whether the
// replica is avoided afterwards.
func TestForwardOutcomes(t *testing.T) {
	late := fmt.Errorf("transport: %w", transport.ErrLate)
	for _, tc := range []struct {
		name      string
		op        proxy.Op
		reply     func(context.Context, string, proxy.Op) ([]byte, error)
		runLocal  bool  // the error wraps ErrRunLocally
		want      error // the error wraps it (when not runLocal)
		avoided   bool
		forwarded int64
		fallbacks int64
	}{
		{"answered", incr, answer(proxy.Result{Int: 7}, nil), false, nil, false, 1, 0},
		{"op error from the replica", incr, answer(proxy.Result{}, proxy.ErrNotInteger), false, proxy.ErrNotInteger, false, 1, 0},
		{"replica starting", incr, answer(proxy.Result{}, proxy.ErrRunLocally), true, nil, false, 0, 1},
		{"replica's coordinator: late", incr, answer(proxy.Result{}, coordinator.ErrLate), true, nil, false, 0, 1},
		{"not sent", incr, fail(transport.ErrNotSent), true, nil, true, 0, 1},
		{"authentication failed", incr, fail(transport.ErrAuth), true, nil, true, 0, 1},
		{"refused as late: not avoided", incr, fail(late), true, nil, false, 0, 1},
		{"unreachable, idempotent", get, fail(transport.ErrUnreachable), true, nil, true, 0, 1},
		{"unreachable, not idempotent", incr, fail(transport.ErrUnreachable), false, proxy.ErrOutcomeUnknown, true, 0, 0},
		{"bad reply", incr, func(context.Context, string, proxy.Op) ([]byte, error) { return []byte{0xff}, nil },
			false, proxy.ErrBadEncoding, false, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fakeCluster{[]string{"b", "c"}, allAlive("a", "b", "c")}
			r, avoid := newTestRouter(t, c, &fakeCaller{reply: tc.reply})
			_, err := r.Forward(context.Background(), "b", tc.op)
			if got := errors.Is(err, proxy.ErrRunLocally); got != tc.runLocal {
				t.Fatalf("Forward error %v: run locally %v, want %v", err, got, tc.runLocal)
			}
			// Only an unknown outcome says the op may have run there.
			if got, want := errors.Is(err, proxy.ErrMayHaveRun), tc.name == "unreachable, idempotent"; got != want {
				t.Fatalf("Forward error %v: may have run there %v, want %v", err, got, want)
			}
			if tc.want != nil && !errors.Is(err, tc.want) || tc.want == nil && !tc.runLocal && err != nil {
				t.Fatalf("Forward error %v, want %v", err, tc.want)
			}
			if got := avoid.Avoided("b"); got != tc.avoided {
				t.Fatalf("b avoided: %v, want %v", got, tc.avoided)
			}
			if m := r.Metrics(); m.Forwarded != tc.forwarded || m.Fallbacks != tc.fallbacks {
				t.Fatalf("Metrics = %+v, want forwarded %d, fallbacks %d", m, tc.forwarded, tc.fallbacks)
			}
		})
	}
}

// TestAvoidAfterFailure: a replica that fails a forward is skipped by the next
// ops, which go to the next replica, until the avoidance is forgotten (memberlist
// saw it come back).
func TestAvoidAfterFailure(t *testing.T) {
	c := fakeCluster{[]string{"b", "c", "d"}, allAlive("a", "b", "c", "d")}
	s := &fakeCaller{reply: func(_ context.Context, node string, _ proxy.Op) ([]byte, error) {
		if node == "b" {
			return nil, fmt.Errorf("dial: connection refused: %w", transport.ErrNotSent)
		}
		return proxy.AppendResult(nil, proxy.Result{}, nil), nil
	}}
	r, avoid := newTestRouter(t, c, s)
	ctx := context.Background()
	if _, err := r.Forward(ctx, r.Route(get.Key), get); !errors.Is(err, proxy.ErrRunLocally) {
		t.Fatalf("first forward: %v, want ErrRunLocally", err)
	}
	for range 3 {
		node := r.Route(get.Key)
		if node != "c" {
			t.Fatalf("Route = %q after b failed, want c", node)
		}
		if _, err := r.Forward(ctx, node, get); err != nil {
			t.Fatal(err)
		}
	}
	avoid.Forget("b")
	if node := r.Route(get.Key); node != "b" {
		t.Fatalf("Route = %q once b is forgotten, want b", node)
	}
	if want := []string{"b", "c", "c", "c"}; !slices.Equal(s.sent, want) {
		t.Fatalf("sent to %v, want %v", s.sent, want)
	}
	if m := r.Metrics(); m != (Metrics{Forwarded: 3, Fallbacks: 1}) {
		t.Fatalf("Metrics = %+v", m)
	}
}

// TestForwardTimeout: a replica that does not answer is given half the request
// timeout for an idempotent op, which then runs here, and the whole of it for one
// that must not run twice, which then fails with ErrOutcomeUnknown; either way the
// replica is avoided. A caller that gives up first avoids nobody.
func TestForwardTimeout(t *testing.T) {
	silent := func(ctx context.Context, _ string, _ proxy.Op) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	for _, tc := range []struct {
		name     string
		op       proxy.Op
		took     time.Duration
		runLocal bool
	}{{"get", get, testTimeout / 2, true}, {"incr", incr, testTimeout, false}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := fakeCluster{[]string{"b"}, allAlive("a", "b")}
				r, avoid := newTestRouter(t, c, &fakeCaller{reply: silent})
				start := time.Now()
				_, err := r.Forward(context.Background(), "b", tc.op)
				if took := time.Since(start); took != tc.took {
					t.Fatalf("gave up after %v, want %v", took, tc.took)
				}
				if errors.Is(err, proxy.ErrRunLocally) != tc.runLocal ||
					!tc.runLocal && !errors.Is(err, proxy.ErrOutcomeUnknown) {
					t.Fatalf("Forward = %v, want run locally: %v", err, tc.runLocal)
				}
				if !avoid.Avoided("b") {
					t.Fatal("b not avoided after it timed out")
				}
			})
		})
	}
	t.Run("caller gave up", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c := fakeCluster{[]string{"b"}, allAlive("a", "b")}
			r, avoid := newTestRouter(t, c, &fakeCaller{reply: silent})
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout/4)
			defer cancel()
			_, err := r.Forward(ctx, "b", incr)
			if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, proxy.ErrRunLocally) || errors.Is(err, proxy.ErrOutcomeUnknown) {
				t.Fatalf("Forward = %v, want the caller's deadline", err)
			}
			if avoid.Avoided("b") {
				t.Fatal("b avoided although the caller gave up first")
			}
		})
	})
}

func TestNewValidates(t *testing.T) {
	ok := Config{Self: "a", Cluster: fakeCluster{}, Avoid: coordinator.NewAvoidance(0, nil),
		Caller: &fakeCaller{}, RequestTimeout: time.Second}
	if _, err := New(ok); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Config){
		"no self":    func(c *Config) { c.Self = "" },
		"no cluster": func(c *Config) { c.Cluster = nil },
		"no avoid":   func(c *Config) { c.Avoid = nil },
		"no caller":  func(c *Config) { c.Caller = nil },
		"no timeout": func(c *Config) { c.RequestTimeout = 0 },
	} {
		c := ok
		mod(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}
