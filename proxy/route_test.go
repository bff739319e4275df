package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/internal/testnode"
	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/peer/peertest"
	"github.com/dynakv/dynakv/proxy"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/vclock"
)

// fakeRouter routes keys with route and forwards with forward, recording both.
type fakeRouter struct {
	route   func(key []byte) string
	forward func(ctx context.Context, node string, op proxy.Op) (proxy.Result, error)

	mu        sync.Mutex
	routed    []string // keys Route was asked about
	forwarded []forwardCall
}

type forwardCall struct {
	node string
	op   proxy.Op
}

var _ proxy.Router = (*fakeRouter)(nil)

func (r *fakeRouter) Route(key []byte) string {
	r.mu.Lock()
	r.routed = append(r.routed, string(key))
	r.mu.Unlock()
	return r.route(key)
}

func (r *fakeRouter) Forward(ctx context.Context, node string, op proxy.Op) (proxy.Result, error) {
	r.mu.Lock()
	r.forwarded = append(r.forwarded, forwardCall{node, op})
	r.mu.Unlock()
	return r.forward(ctx, node, op)
}

func (r *fakeRouter) calls() (routed []string, forwarded []forwardCall) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.routed...), append([]forwardCall(nil), r.forwarded...)
}

// routeRemote sends keys starting with "remote" to node "b".
func routeRemote(key []byte) string {
	if strings.HasPrefix(string(key), "remote") {
		return "b"
	}
	return ""
}

// opFor returns a valid op of kind on key.
func opFor(kind proxy.Kind, key string) proxy.Op {
	op := proxy.Op{Kind: kind, Key: []byte(key), Value: []byte("v"), Delta: 1, UDelta: 1, Float: 1, Expiry: 1 << 50}
	if kind == proxy.OpIncrUnsigned || kind == proxy.OpAppend || kind == proxy.OpSetRange {
		op.Value = []byte("1")
	}
	return op
}

// TestDoForwardsRoutedOps: every Kind on a key the router assigns to another node is
// forwarded as is, its result comes back untouched, and nothing runs (or is counted)
// here.
func TestDoForwardsRoutedOps(t *testing.T) {
	canned := proxy.Result{Status: proxy.Stored, Found: true, Item: proxy.Item{Value: []byte("there"), Siblings: 1}, CAS: 42}
	r := &fakeRouter{route: routeRemote, forward: func(context.Context, string, proxy.Op) (proxy.Result, error) {
		return canned, nil
	}}
	e := newDirectEnv(t, proxy.Config{Router: r})
	for _, k := range allKinds {
		op := opFor(k, "remote-key")
		op.R, op.W = 2, 3
		res, err := e.p.Do(context.Background(), op)
		if err != nil || !reflect.DeepEqual(res, canned) {
			t.Fatalf("kind %d: Do = %+v, %v; want the forwarded result", k, res, err)
		}
		_, fwd := r.calls()
		op.Accepted = e.clk.Now().UnixMilli() // Do stamps the op with its accept time
		if last := fwd[len(fwd)-1]; last.node != "b" || !reflect.DeepEqual(last.op, op) {
			t.Fatalf("kind %d: forwarded %+v to %q, want %+v to b", k, last.op, last.node, op)
		}
	}
	if _, fwd := r.calls(); len(fwd) != len(allKinds) {
		t.Fatalf("%d forwards for %d ops", len(fwd), len(allKinds))
	}
	if s := e.p.Stats(); s != (proxy.Stats{}) {
		t.Fatalf("forwarded reads were counted here: %+v", s)
	}
	if res, err := e.p.DoLocal(context.Background(), proxy.Op{Kind: proxy.OpDGet, Key: []byte("remote-key")}); err != nil || len(res.Values) != 0 {
		t.Fatalf("a forwarded op wrote here: %+v, %v", res, err)
	}
}

// TestDoRunsLocallyWhenRouteIsEmpty: Route "" runs the op here; Forward is not called.
func TestDoRunsLocallyWhenRouteIsEmpty(t *testing.T) {
	r := &fakeRouter{route: routeRemote, forward: func(context.Context, string, proxy.Op) (proxy.Result, error) {
		t.Error("Forward called for a local key")
		return proxy.Result{}, nil
	}}
	e := newDirectEnv(t, proxy.Config{Router: r})
	e.set("k", "v")
	e.mustValue("k", "v")
	if routed, _ := r.calls(); !reflect.DeepEqual(routed, []string{"k", "k"}) {
		t.Fatalf("Route asked about %q", routed)
	}
	if s := e.p.Stats(); s.Hits != 1 {
		t.Fatalf("local read not counted: %+v", s)
	}
}

// TestDoRunsLocallyOnErrRunLocally: when the node cannot be reached, the op runs here.
func TestDoRunsLocallyOnErrRunLocally(t *testing.T) {
	r := &fakeRouter{route: routeRemote, forward: func(_ context.Context, node string, _ proxy.Op) (proxy.Result, error) {
		return proxy.Result{Status: proxy.NotStored}, fmt.Errorf("dial %s: connection refused: %w", node, proxy.ErrRunLocally)
	}}
	e := newDirectEnv(t, proxy.Config{Router: r})
	if res := e.set("remote1", "v"); res.Status != proxy.Stored {
		t.Fatalf("SET = %+v, want the local result", res)
	}
	if res := e.do(proxy.Op{Kind: proxy.OpIncr, Key: []byte("remote2"), Delta: 5}); res.Int != 5 {
		t.Fatalf("INCR = %+v", res)
	}
	e.mustValue("remote1", "v")
	if _, fwd := r.calls(); len(fwd) != 3 {
		t.Fatalf("%d forwards, want 3 (each one tried first)", len(fwd))
	}
	if s := e.p.Stats(); s.Hits != 1 {
		t.Fatalf("a read run here after a failed forward must be counted here: %+v", s)
	}
}

// TestDoAfterAForwardThatMayHaveRun: when the node an idempotent op was
// forwarded to may have run it (no answer: ErrMayHaveRun), the op runs here too,
// and its reply is given only where the first run cannot have made it: a DEL,
// memcached delete, EXPIRE or PERSIST that finds nothing to do, or a SETBIT that
// finds its bit set already, is an unknown outcome, never a 0 that hides what
// the first run did.
func TestDoAfterAForwardThatMayHaveRun(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		setup    bool // the key holds "v" first
		ranThere bool // the forward's node ran the op before it went silent
		op       proxy.Op
		unknown  bool
	}{
		{"del ran there", true, true, proxy.Op{Kind: proxy.OpDelete}, true},
		{"del did not run there", true, false, proxy.Op{Kind: proxy.OpDelete}, false},
		{"del of a missing key", false, false, proxy.Op{Kind: proxy.OpDelete}, true},
		{"expire ran there, in the past", true, true, proxy.Op{Kind: proxy.OpExpire, Expiry: 1}, true},
		{"expire did not run there", true, false, proxy.Op{Kind: proxy.OpExpire, Expiry: 1 << 50}, false},
		{"setbit ran there", true, true, proxy.Op{Kind: proxy.OpSetBit, Offset: 7, Delta: 1}, true},
		{"setbit did not run there", true, false, proxy.Op{Kind: proxy.OpSetBit, Offset: 7, Delta: 1}, false},
		{"plain set ran there", true, true, proxy.Op{Kind: proxy.OpSet, Value: []byte("w")}, false},
		{"get", true, true, proxy.Op{Kind: proxy.OpGet}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e *env
			r := &fakeRouter{route: routeRemote, forward: func(ctx context.Context, node string, op proxy.Op) (proxy.Result, error) {
				if tc.ranThere {
					if _, err := e.p.DoLocal(ctx, op); err != nil {
						t.Error(err)
					}
				}
				return proxy.Result{}, fmt.Errorf("%w: %w: no answer from %s", proxy.ErrRunLocally, proxy.ErrMayHaveRun, node)
			}}
			e = newDirectEnv(t, proxy.Config{Router: r})
			if tc.setup {
				e.set("remote", "v")
			}
			op := tc.op
			op.Key = []byte("remote")
			_, err := e.p.Do(ctx, op)
			if got := errors.Is(err, proxy.ErrOutcomeUnknown); got != tc.unknown || !tc.unknown && err != nil {
				t.Fatalf("Do = %v; want an unknown outcome: %v", err, tc.unknown)
			}
		})
	}
}

// TestDoReturnsForwardErrors: an error from the coordinating node (other than
// ErrRunLocally) is the op's error, with its identity; the op does not run here.
func TestDoReturnsForwardErrors(t *testing.T) {
	for _, want := range []error{
		proxy.ErrNotInteger,
		fmt.Errorf("node b: %w", proxy.ErrBadContext),
		&coordinator.QuorumError{Acks: 1, Need: 2},
		context.DeadlineExceeded,
		errors.New("node b: storage: closed"),
	} {
		r := &fakeRouter{route: routeRemote, forward: func(context.Context, string, proxy.Op) (proxy.Result, error) {
			return proxy.Result{}, want
		}}
		e := newDirectEnv(t, proxy.Config{Router: r})
		if _, err := e.p.Do(context.Background(), opFor(proxy.OpIncr, "remote")); err != want {
			t.Fatalf("Do returned %v, want %v itself", err, want)
		}
		if res, err := e.p.DoLocal(context.Background(), proxy.Op{Kind: proxy.OpGet, Key: []byte("remote")}); err != nil || res.Found {
			t.Fatalf("the op ran here after %v: %+v, %v", want, res, err)
		}
	}
}

// TestDoLocalNeverRoutes: DoLocal, what a node runs for a forwarded op, never
// consults the router, even for keys it would send elsewhere.
func TestDoLocalNeverRoutes(t *testing.T) {
	r := &fakeRouter{
		route: func([]byte) string { t.Error("Route called by DoLocal"); return "b" },
		forward: func(context.Context, string, proxy.Op) (proxy.Result, error) {
			t.Error("Forward called by DoLocal")
			return proxy.Result{}, nil
		},
	}
	e := newDirectEnv(t, proxy.Config{Router: r})
	ctx := context.Background()
	for _, k := range allKinds {
		if _, err := e.p.DoLocal(ctx, opFor(k, "remote")); err != nil {
			t.Fatalf("kind %d: %v", k, err)
		}
	}
	if res, err := e.p.DoLocal(ctx, proxy.Op{Kind: proxy.OpGet, Key: []byte("remote")}); err != nil || !res.Found {
		t.Fatalf("GET after local writes: %+v, %v", res, err)
	}
}

// TestLocalDGetAndUnknownKindsAreNotRouted: a Local DGET reads this node's replica,
// and an unknown Kind fails here; neither asks the router.
func TestLocalDGetAndUnknownKindsAreNotRouted(t *testing.T) {
	r := &fakeRouter{route: func([]byte) string { return "b" }, forward: func(context.Context, string, proxy.Op) (proxy.Result, error) {
		return proxy.Result{Context: "remote"}, nil
	}}
	e := newDirectEnv(t, proxy.Config{Router: r})
	ctx := context.Background()
	if _, err := e.p.DoLocal(ctx, proxy.Op{Kind: proxy.OpSet, Key: []byte("k"), Value: []byte("here")}); err != nil {
		t.Fatal(err)
	}
	res, err := e.p.Do(ctx, proxy.Op{Kind: proxy.OpDGet, Key: []byte("k"), Local: true})
	if err != nil || len(res.Values) != 1 || string(res.Values[0]) != "here" {
		t.Fatalf("Local DGET = %+v, %v; want this node's replica", res, err)
	}
	if _, err := e.p.Do(ctx, proxy.Op{Kind: 200, Key: []byte("k")}); !errors.Is(err, proxy.ErrUnknownOp) {
		t.Fatalf("unknown kind: %v", err)
	}
	if routed, fwd := r.calls(); len(routed) != 0 || len(fwd) != 0 {
		t.Fatalf("routed %q, forwarded %d", routed, len(fwd))
	}
	if res, err := e.p.Do(ctx, proxy.Op{Kind: proxy.OpDGet, Key: []byte("k")}); err != nil || res.Context != "remote" {
		t.Fatalf("DGET without Local = %+v, %v; want it forwarded", res, err)
	}
	// Local means nothing to other kinds: they are routed as usual.
	if res, err := e.p.Do(ctx, proxy.Op{Kind: proxy.OpGet, Key: []byte("k"), Local: true}); err != nil || res.Context != "remote" {
		t.Fatalf("GET with Local = %+v, %v; want it forwarded", res, err)
	}
}

func TestNoRouter(t *testing.T) {
	e := newDirectEnv(t, proxy.Config{Router: proxy.NoRouter{}})
	e.set("k", "v")
	e.mustValue("k", "v")
}

// netRouter forwards to other proxies in the process the way a node's router does
// over the cluster transport: the op and its outcome cross a peertest.Network as
// the bytes of a peer.MsgForward, and the remote node's handler (Proxy.Register)
// runs DoLocal. An unreachable node leaves the op to run here.
type netRouter struct {
	t      *testing.T
	route  func(key []byte) string
	caller peer.Caller
}

// newNetRouter returns a netRouter of node "a" with routeRemote, over a network
// where the named proxies serve forwarded ops, and the network.
func newNetRouter(t *testing.T, nodes map[string]*proxy.Proxy) (*netRouter, *peertest.Network) {
	t.Helper()
	net, err := peertest.NewNetwork(1, 64, 0, "a")
	if err != nil {
		t.Fatal(err)
	}
	net.Start("a", peer.NewMux())
	for name, p := range nodes {
		m := peer.NewMux()
		p.Register(m)
		net.Start(name, m)
	}
	return &netRouter{t: t, route: routeRemote, caller: net.Caller("a")}, net
}

func (r *netRouter) Route(key []byte) string { return r.route(key) }

func (r *netRouter) Forward(ctx context.Context, node string, op proxy.Op) (proxy.Result, error) {
	reply, err := r.caller.Call(ctx, node, peer.MsgForward, op.AppendBinary(nil))
	if errors.Is(err, peertest.ErrUnreachable) {
		return proxy.Result{}, fmt.Errorf("node %s: %w: %w", node, proxy.ErrRunLocally, err)
	}
	if err != nil {
		r.t.Fatalf("forward to %s: %v", node, err)
	}
	res, opErr, err := proxy.DecodeResult(reply)
	if err != nil {
		r.t.Fatalf("reply from %s: %v", node, err)
	}
	return res, opErr
}

// TestTwoProxiesOverCodec: proxy A forwards the keys of node B to proxy B, over the
// codec and a network; B executes them (durably, counting the reads) and A answers
// as B did.
func TestTwoProxiesOverCodec(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	var syncs *testnode.SyncCounter
	b := testnode.Proxy(t, testnode.Options{Now: clk.Now, WrapStore: func(s coordinator.Store) coordinator.Store {
		syncs = &testnode.SyncCounter{Store: s}
		return syncs
	}})
	r, net := newNetRouter(t, map[string]*proxy.Proxy{"b": b})
	a := newDirectEnv(t, proxy.Config{Router: r})
	a.clk.Set(clk.Now())

	// A session whose writes all defer their sync, as a front end's in a pipelined
	// batch: a forwarded op must be durable anyway.
	sess := a.p.NewSession(func() bool { return true })
	do := func(op proxy.Op) (proxy.Result, error) {
		return sess.Do(ctx, op)
	}
	must := func(op proxy.Op) proxy.Result {
		t.Helper()
		res, err := do(op)
		if err != nil {
			t.Fatalf("Do(%s): %v", opString(op), err)
		}
		return res
	}
	key := []byte("remote:x")

	// SET and GET.
	if res := must(proxy.Op{Kind: proxy.OpSet, Key: key, Value: []byte("hello"), Flags: 9}); res.Status != proxy.Stored || res.CAS == 0 {
		t.Fatalf("SET = %+v", res)
	}
	res := must(proxy.Op{Kind: proxy.OpGet, Key: key})
	local, err := b.DoLocal(ctx, proxy.Op{Kind: proxy.OpGet, Key: key})
	if err != nil || !res.Found || string(res.Item.Value) != "hello" || res.Item.Flags != 9 || !reflect.DeepEqual(res, local) {
		t.Fatalf("forwarded GET = %+v, B's own GET = %+v, %v", res, local, err)
	}
	if res, err := a.p.DoLocal(ctx, proxy.Op{Kind: proxy.OpGet, Key: key}); err != nil || res.Found {
		t.Fatalf("the key was written on A: %+v, %v", res, err)
	}

	// INCR, and INCR on a value that is not an integer (the error keeps its identity).
	n := []byte("remote:n")
	for i := 1; i <= 3; i++ {
		if res := must(proxy.Op{Kind: proxy.OpIncr, Key: n, Delta: 10}); res.Int != int64(10*i) {
			t.Fatalf("INCR #%d = %+v", i, res)
		}
	}
	if _, err := do(proxy.Op{Kind: proxy.OpIncr, Key: key, Delta: 1}); !errors.Is(err, proxy.ErrNotInteger) {
		t.Fatalf("INCR of a string: %v", err)
	}
	if _, err := do(proxy.Op{Kind: proxy.OpDPut, Key: key, Context: "not a context!", Value: []byte("x")}); !errors.Is(err, proxy.ErrBadContext) {
		t.Fatalf("DPUT with a bad context: %v", err)
	}

	// DPUT and DGET: two siblings, then a causal overwrite with DGET's context.
	d := []byte("remote:d")
	if res := must(proxy.Op{Kind: proxy.OpDPut, Key: d, Value: []byte("one")}); res.Context == "" {
		t.Fatalf("DPUT = %+v", res)
	}
	must(proxy.Op{Kind: proxy.OpDPut, Key: d, Value: []byte("two")})
	res = must(proxy.Op{Kind: proxy.OpDGet, Key: d})
	if len(res.Values) != 2 {
		t.Fatalf("DGET = %+v, want two siblings", res)
	}
	must(proxy.Op{Kind: proxy.OpDPut, Key: d, Context: res.Context, Value: []byte("")})
	res = must(proxy.Op{Kind: proxy.OpDGet, Key: d})
	if len(res.Values) != 1 || res.Values[0] == nil || len(res.Values[0]) != 0 {
		t.Fatalf("DGET after the overwrite = %#v, want one empty (non-nil) value", res.Values)
	}
	local, err = b.DoLocal(ctx, proxy.Op{Kind: proxy.OpDGet, Key: d})
	if err != nil || !reflect.DeepEqual(res, local) {
		t.Fatalf("forwarded DGET %#v differs from B's own %#v (%v)", res, local, err)
	}

	// B executed and counted every read; A none. B made every write durable before
	// answering, although the ops asked for deferred sync.
	if s := a.p.Stats(); s != (proxy.Stats{Misses: 1}) { // the DoLocal GET above
		t.Fatalf("A counted forwarded reads: %+v", s)
	}
	if s := b.Stats(); s.Hits != 5 || s.Misses != 0 { // GET and two DGETs forwarded, GET and DGET run on B
		t.Fatalf("B counted %+v, want 5 hits", s)
	}
	if deferred, synced, _ := syncs.Counts(); synced != deferred {
		t.Fatalf("B answered %d forwarded writes, only %d of them synced", deferred, synced)
	}

	// A delayed flush pending on B applies to ops forwarded to B.
	if err := b.FlushAll(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second)
	if res := must(proxy.Op{Kind: proxy.OpGet, Key: key}); res.Found {
		t.Fatalf("GET after B's delayed flush = %+v", res)
	}

	// B unreachable: A takes the op.
	net.Crash("b")
	must(proxy.Op{Kind: proxy.OpSet, Key: key, Value: []byte("on A")})
	a.mustValue(string(key), "on A")
}

// recordingCoordinator is a Coordinator that stores nothing and records the
// per-request options each call received.
type recordingCoordinator struct {
	mu     sync.Mutex
	reads  []coordinator.ReadOptions
	writes []coordinator.WriteOptions
	syncs  int
}

var _ proxy.Coordinator = (*recordingCoordinator)(nil)

func (c *recordingCoordinator) Get(_ context.Context, _ []byte, opt coordinator.ReadOptions) (record.Record, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads = append(c.reads, opt)
	return record.Record{}, nil
}

func (c *recordingCoordinator) Put(_ context.Context, _ []byte, _ vclock.Clock, _ vclock.Value, opt coordinator.WriteOptions) (coordinator.WriteResult, error) {
	c.record(opt)
	return coordinator.WriteResult{Durable: opt.Durability == coordinator.DurableOnReturn}, nil
}

// record keeps a write's options.
func (c *recordingCoordinator) record(opt coordinator.WriteOptions) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes = append(c.writes, opt)
}

func (c *recordingCoordinator) Modify(_ context.Context, _ []byte, fn coordinator.ModifyFunc, opt coordinator.WriteOptions) (coordinator.WriteResult, error) {
	c.record(opt)
	_, _, err := fn(record.Record{})
	if err != nil && !errors.Is(err, coordinator.ErrNoWrite) {
		return coordinator.WriteResult{}, err
	}
	// As the coordinator: a DurableOnReturn write that wrote nothing is synced.
	if err != nil && opt.Durability == coordinator.DurableOnReturn {
		c.Sync(context.Background())
	}
	return coordinator.WriteResult{Durable: opt.Durability == coordinator.DurableOnReturn}, nil
}

func (c *recordingCoordinator) Count(context.Context) (int64, error) { return 0, nil }
func (c *recordingCoordinator) ScanPage(context.Context, uint64, int, func([]byte, record.Record) bool) (uint64, error) {
	return 0, nil
}
func (c *recordingCoordinator) FlushAll(context.Context) error { return nil }
func (c *recordingCoordinator) Sync(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.syncs++
	return nil
}

// last returns the options of the single call since the previous last.
func (c *recordingCoordinator) last(t *testing.T) (r *coordinator.ReadOptions, w *coordinator.WriteOptions) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.reads)+len(c.writes) != 1 {
		t.Fatalf("%d reads and %d writes, want one call", len(c.reads), len(c.writes))
	}
	if len(c.reads) == 1 {
		r = &c.reads[0]
	} else {
		w = &c.writes[0]
	}
	c.reads, c.writes = nil, nil
	return r, w
}

// TestCoordinatorOptions: each Kind passes R, W and Local to the coordinator, and
// every read-modify-write but a plain SET asks it to read first. Do and DoLocal
// write DurableOnReturn; a session with more commands buffered writes Deferred
// and syncs once, at Flush.
func TestCoordinatorOptions(t *testing.T) {
	type (
		R = coordinator.ReadOptions
		W = coordinator.WriteOptions
	)
	k := []byte("k")
	cases := []struct {
		name string
		op   proxy.Op
		r    *R
		w    *W
	}{
		{"get", proxy.Op{Kind: proxy.OpGet, Key: k, R: 2, W: 3, Local: true}, &R{R: 2}, nil},
		{"get default", proxy.Op{Kind: proxy.OpGet, Key: k}, &R{}, nil},
		{"dget", proxy.Op{Kind: proxy.OpDGet, Key: k, R: 3}, &R{R: 3}, nil},
		{"dget local", proxy.Op{Kind: proxy.OpDGet, Key: k, R: 1, Local: true}, &R{R: 1, Local: true}, nil},
		{"plain set", proxy.Op{Kind: proxy.OpSet, Key: k, Value: []byte("v"), W: 2, Expiry: 1 << 50, Flags: 3}, nil, &W{W: 2}},
		{"set nx", proxy.Op{Kind: proxy.OpSet, Key: k, Cond: proxy.CondNX, W: 1}, nil, &W{W: 1, ReadFirst: true}},
		{"set xx", proxy.Op{Kind: proxy.OpSet, Key: k, Cond: proxy.CondXX}, nil, &W{ReadFirst: true}},
		{"set cas", proxy.Op{Kind: proxy.OpSet, Key: k, Cond: proxy.CondCAS, CAS: 7}, nil, &W{ReadFirst: true}},
		{"set get", proxy.Op{Kind: proxy.OpSet, Key: k, ReturnOld: true}, nil, &W{ReadFirst: true}},
		{"set keepttl", proxy.Op{Kind: proxy.OpSet, Key: k, KeepTTL: true}, nil, &W{ReadFirst: true}},
		{"delete", proxy.Op{Kind: proxy.OpDelete, Key: k, W: 3}, nil, &W{W: 3, ReadFirst: true}},
		{"getdel", proxy.Op{Kind: proxy.OpGetDel, Key: k}, nil, &W{ReadFirst: true}},
		{"getex", proxy.Op{Kind: proxy.OpGetEx, Key: k, R: 2}, nil, &W{ReadFirst: true}},
		{"getex persist", proxy.Op{Kind: proxy.OpGetEx, Key: k, SetExpiry: true, Persist: true, W: 2}, nil, &W{W: 2, ReadFirst: true}},
		{"incr", proxy.Op{Kind: proxy.OpIncr, Key: k, Delta: 1, W: 2}, nil, &W{W: 2, ReadFirst: true}},
		{"incrbyfloat", proxy.Op{Kind: proxy.OpIncrFloat, Key: k, Float: 1}, nil, &W{ReadFirst: true}},
		{"memcached incr", proxy.Op{Kind: proxy.OpIncrUnsigned, Key: k, UDelta: 1}, nil, &W{ReadFirst: true}},
		{"append", proxy.Op{Kind: proxy.OpAppend, Key: k, Value: []byte("x")}, nil, &W{ReadFirst: true}},
		{"setrange", proxy.Op{Kind: proxy.OpSetRange, Key: k, Value: []byte("x"), W: 1}, nil, &W{W: 1, ReadFirst: true}},
		{"setbit", proxy.Op{Kind: proxy.OpSetBit, Key: k, Offset: 9, Delta: 1, W: 1}, nil, &W{W: 1, ReadFirst: true}},
		{"expire", proxy.Op{Kind: proxy.OpExpire, Key: k, Expiry: 1 << 50}, nil, &W{ReadFirst: true}},
		{"dput", proxy.Op{Kind: proxy.OpDPut, Key: k, Value: []byte("v"), W: 3}, nil, &W{W: 3}},
		{"ddel", proxy.Op{Kind: proxy.OpDDel, Key: k, W: 1}, nil, &W{W: 1}},
	}
	seen := map[proxy.Kind]bool{}
	ctx := context.Background()
	for _, c := range cases {
		seen[c.op.Kind] = true
		co := &recordingCoordinator{}
		p := proxy.New(proxy.Config{}, co)
		if _, err := p.Do(ctx, c.op); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		r, w := co.last(t)
		if !reflect.DeepEqual(r, c.r) || !reflect.DeepEqual(w, c.w) {
			t.Errorf("%s: coordinator got read %+v write %+v, want read %+v write %+v", c.name, r, w, c.r, c.w)
		}
		// DoLocal, for a forwarded op, is durable before it answers.
		if _, err := p.DoLocal(ctx, c.op); err != nil {
			t.Fatalf("%s: DoLocal: %v", c.name, err)
		}
		r, w = co.last(t)
		if !reflect.DeepEqual(r, c.r) || !reflect.DeepEqual(w, c.w) {
			t.Errorf("%s: DoLocal gave the coordinator read %+v write %+v, want read %+v write %+v", c.name, r, w, c.r, c.w)
		}
		// A session in a pipelined batch defers the sync to its Flush.
		sess := p.NewSession(func() bool { return true })
		if _, err := sess.Do(ctx, c.op); err != nil {
			t.Fatalf("%s: Session.Do: %v", c.name, err)
		}
		r, w = co.last(t)
		if want := c.w; want != nil {
			want := *want
			want.Durability = coordinator.Deferred
			if w == nil || *w != want {
				t.Errorf("%s: the session gave the coordinator %+v, want %+v", c.name, w, want)
			}
		} else if !reflect.DeepEqual(r, c.r) {
			t.Errorf("%s: the session gave the coordinator %+v, want %+v", c.name, r, c.r)
		}
		co.mu.Lock()
		syncsBefore := co.syncs
		co.mu.Unlock()
		if err := sess.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		co.mu.Lock()
		syncs := co.syncs - syncsBefore
		co.mu.Unlock()
		if want := map[bool]int{true: 1, false: 0}[c.w != nil]; syncs != want {
			t.Errorf("%s: Flush synced %d times, want %d", c.name, syncs, want)
		}
	}
	for _, kind := range allKinds {
		if !seen[kind] {
			t.Errorf("kind %d has no case", kind)
		}
	}
}

// TestIdempotent: only ops whose second run leaves the data as the first did may be
// run again by a front door that lost track of a forwarded one.
func TestIdempotent(t *testing.T) {
	for _, tc := range []struct {
		op   proxy.Op
		want bool
	}{
		{proxy.Op{Kind: proxy.OpGet}, true},
		{proxy.Op{Kind: proxy.OpDGet}, true},
		{proxy.Op{Kind: proxy.OpSet}, true},
		{proxy.Op{Kind: proxy.OpSet, Cond: proxy.CondNX}, false},
		{proxy.Op{Kind: proxy.OpSet, Cond: proxy.CondCAS, CAS: 7}, false},
		{proxy.Op{Kind: proxy.OpSet, ReturnOld: true}, false},
		{proxy.Op{Kind: proxy.OpDPut}, false}, // a twin dot could resurrect what it replaced
		{proxy.Op{Kind: proxy.OpDDel}, true},
		{proxy.Op{Kind: proxy.OpDelete}, true},
		{proxy.Op{Kind: proxy.OpDelete, Cond: proxy.CondCAS, CAS: 7}, false},
		{proxy.Op{Kind: proxy.OpGetDel}, false},
		{proxy.Op{Kind: proxy.OpIncr}, false},
		{proxy.Op{Kind: proxy.OpIncrUnsigned}, false},
		{proxy.Op{Kind: proxy.OpAppend}, false},
		{proxy.Op{Kind: proxy.OpSetRange}, true},
		{proxy.Op{Kind: proxy.OpSetBit}, true},
		{proxy.Op{Kind: proxy.OpExpire}, true},
		{proxy.Op{Kind: proxy.OpExpire, Cond: proxy.CondGT}, false},
	} {
		if got := tc.op.Idempotent(); got != tc.want {
			t.Errorf("%+v: Idempotent() = %v, want %v", tc.op, got, tc.want)
		}
	}
}

// TestForwardHandlerRefusesWhatDoesNotDecode: the peer.MsgForward handler fails a
// request that is not an Op (the forwarding node gets the error), and answers
// every op it runs, its error included, as a Result.
func TestForwardHandlerRefusesWhatDoesNotDecode(t *testing.T) {
	e := newDirectEnv(t, proxy.Config{})
	m := peer.NewMux()
	e.p.Register(m)
	ctx := context.Background()
	if _, err := m.ServeCluster(ctx, "a", uint8(peer.MsgForward), []byte{0xff, 1, 2}); !errors.Is(err, proxy.ErrBadEncoding) {
		t.Fatalf("garbage: %v, want ErrBadEncoding", err)
	}
	op := proxy.Op{Kind: proxy.OpIncr, Key: []byte("k"), Delta: 1}
	e.set("k", "not a number")
	reply, err := m.ServeCluster(ctx, "a", uint8(peer.MsgForward), op.AppendBinary(nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, opErr, err := proxy.DecodeResult(reply); err != nil || !errors.Is(opErr, proxy.ErrNotInteger) {
		t.Fatalf("INCR of a string: %v, %v; want the op's ErrNotInteger in the reply", opErr, err)
	}
}
