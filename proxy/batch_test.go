package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/internal/testnode"
	"github.com/dynakv/dynakv/proxy"
	"github.com/dynakv/dynakv/storage"
)

func TestBatchable(t *testing.T) {
	k := []byte("k")
	elsewhere := &fakeRouter{route: func(key []byte) string {
		if string(key) == "far" {
			return "n2"
		}
		return ""
	}}
	p := proxy.New(proxy.Config{Router: elsewhere}, nil)
	for _, tc := range []struct {
		op   proxy.Op
		want bool
	}{
		{proxy.Op{Kind: proxy.OpSet, Key: k, Value: []byte("v")}, true},
		{proxy.Op{Kind: proxy.OpSet, Key: k, Value: []byte("v"), Expiry: 5, Flags: 3}, true},
		{proxy.Op{Kind: proxy.OpDelete, Key: k}, true},
		{proxy.Op{Kind: proxy.OpSet, Key: k, Value: []byte("v"), W: 2}, false},
		{proxy.Op{Kind: proxy.OpSet, Key: k, Value: []byte("v"), Cond: proxy.CondNX}, false},
		{proxy.Op{Kind: proxy.OpSet, Key: k, Value: []byte("v"), ReturnOld: true}, false},
		{proxy.Op{Kind: proxy.OpSet, Key: k, Value: []byte("v"), KeepTTL: true}, false},
		{proxy.Op{Kind: proxy.OpDelete, Key: k, Cond: proxy.CondCAS, CAS: 1}, false},
		{proxy.Op{Kind: proxy.OpDelete, Key: k, W: 1}, false},
		{proxy.Op{Kind: proxy.OpGetDel, Key: k}, false},
		{proxy.Op{Kind: proxy.OpIncr, Key: k, Delta: 1}, false},
		{proxy.Op{Kind: proxy.OpGet, Key: k}, true},
		{proxy.Op{Kind: proxy.OpGet, Key: k, R: 2}, false},
		{proxy.Op{Kind: proxy.OpGet, Key: k, Vivify: true, Value: []byte("v")}, false},
		{proxy.Op{Kind: proxy.OpGet, Key: []byte("far")}, false},
		{proxy.Op{Kind: proxy.OpDGet, Key: k}, false},
		{proxy.Op{Kind: proxy.OpGetEx, Key: k}, false},
		{proxy.Op{Kind: proxy.OpDPut, Key: k, Value: []byte("v")}, false},
		{proxy.Op{Kind: proxy.OpSet, Key: []byte("far"), Value: []byte("v")}, false},
		{proxy.Op{Kind: proxy.OpDelete, Key: []byte("far")}, false},
	} {
		if got := p.Batchable(tc.op); got != tc.want {
			t.Errorf("Batchable(%+v) = %v, want %v", tc.op, got, tc.want)
		}
		b := p.NewBatch()
		if _, ok := b.Add(tc.op); ok != tc.want || b.Len() != map[bool]int{false: 0, true: 1}[tc.want] {
			t.Errorf("Add(%+v) = %v, len %d", tc.op, ok, b.Len())
		}
	}
}

// soleCo is a coordinator whose keys "solo*" only this node holds.
type soleCo struct{ proxy.Coordinator }

func (soleCo) SoleReplica(key []byte) bool { return strings.HasPrefix(string(key), "solo") }

// TestSoleReplica: the proxy tells the keys its coordinator holds alone; a
// coordinator that cannot tell holds none alone.
func TestSoleReplica(t *testing.T) {
	p := proxy.New(proxy.Config{}, soleCo{})
	if !p.SoleReplica([]byte("solo1")) || p.SoleReplica([]byte("shared")) {
		t.Error("SoleReplica does not follow the coordinator's")
	}
	if proxy.New(proxy.Config{}, unbatched{}).SoleReplica([]byte("solo1")) {
		t.Error("SoleReplica true without a coordinator that tells")
	}
}

// unbatched hides the coordinator's ModifyBatch: DoBatch runs the ops one by one.
type unbatched struct{ proxy.Coordinator }

// TestDoBatchAnswersAsDo: a random sequence of SETs, DELs and GETs (repeated
// keys, values too big, existing keys or not, reads before and after writes
// of their key) run with DoBatch gives each op the result and error Do gives it
// alone, in order, and leaves the same values, with the coordinator's
// ModifyBatch and GetBatch and without.
func TestDoBatchAnswersAsDo(t *testing.T) {
	ctx := context.Background()
	for seed := range uint64(20) {
		for _, batched := range []bool{true, false} {
			t.Run(fmt.Sprintf("seed=%d/batched=%v", seed, batched), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 0xd0))
				clk := newFakeClock()
				one := testnode.Proxy(t, testnode.Options{Now: clk.Now, MaxValueBytes: 8})
				co := proxy.Coordinator(newCoordinator(t, clk))
				if !batched {
					co = unbatched{co}
				}
				many := proxy.New(proxy.Config{Now: clk.Now, MaxValueBytes: 8}, co)
				keys := []string{"a", "b", "c", "d"}
				for _, k := range keys[:2] { // existing keys
					for _, p := range []*proxy.Proxy{one, many} {
						if _, err := p.Do(ctx, proxy.Op{Kind: proxy.OpSet, Key: []byte(k), Value: []byte("old")}); err != nil {
							t.Fatal(err)
						}
					}
				}
				b := many.NewBatch()
				var ops []proxy.Op
				for i := range 1 + rng.IntN(12) {
					k := []byte(keys[rng.IntN(len(keys))])
					op := proxy.Op{Kind: proxy.OpDelete, Key: k}
					switch rng.IntN(6) {
					case 4, 5:
						op = proxy.Op{Kind: proxy.OpGet, Key: k}
					case 0:
						op = proxy.Op{Kind: proxy.OpSet, Key: k, Value: []byte("far too big")}
					case 1, 2:
						op = proxy.Op{Kind: proxy.OpSet, Key: k, Value: fmt.Appendf(nil, "v%d", i), Flags: uint32(i)}
					}
					if j, ok := b.Add(op); !ok || j != len(ops) {
						t.Fatalf("Add(%+v) = %d, %v", op, j, ok)
					}
					ops = append(ops, op)
				}
				got := many.DoBatch(ctx, b)
				if b.Len() != 0 {
					t.Errorf("batch holds %d ops after DoBatch", b.Len())
				}
				for i, op := range ops {
					res, err := one.Do(ctx, op)
					if !errors.Is(got[i].Err, err) || !reflect.DeepEqual(got[i].Result, res) {
						t.Errorf("op %d %+v: DoBatch %+v %v, Do %+v %v", i, op, got[i].Result, got[i].Err, res, err)
					}
				}
				for _, k := range keys {
					a, _ := one.Do(ctx, proxy.Op{Kind: proxy.OpGet, Key: []byte(k)})
					b, _ := many.Do(ctx, proxy.Op{Kind: proxy.OpGet, Key: []byte(k)})
					if !reflect.DeepEqual(a, b) {
						t.Errorf("GET %s: %+v after Do, %+v after DoBatch", k, a, b)
					}
				}
			})
		}
	}
}

// TestDoBatchOOM: on a full node a batched SET fails with ErrOOM alone; the
// DELs of the batch run.
func TestDoBatchOOM(t *testing.T) {
	ctx := context.Background()
	mem := &fullMemory{}
	e := newDirectEnv(t, proxy.Config{Memory: mem})
	e.set("a", "1")
	e.set("b", "2")
	mem.full.Store(true)
	b := e.p.NewBatch()
	for _, op := range []proxy.Op{
		{Kind: proxy.OpDelete, Key: []byte("a")},
		{Kind: proxy.OpSet, Key: []byte("c"), Value: []byte("3")},
		{Kind: proxy.OpDelete, Key: []byte("b")},
	} {
		b.Add(op)
	}
	got := e.p.DoBatch(ctx, b)
	if got[0].Err != nil || got[0].Result.Status != proxy.Stored || got[2].Err != nil || !errors.Is(got[1].Err, proxy.ErrOOM) {
		t.Fatalf("results %+v", got)
	}
	e.mustMissing("a")
	e.mustMissing("b")
	e.mustMissing("c")
}

// newCoordinator returns a single-node coordinator over an in-memory store,
// as testnode builds it.
func newCoordinator(t *testing.T, clk *fakeClock) *coordinator.Coordinator {
	st, err := storage.Open(storage.Config{InMemory: true, Now: clk.Now, ReapInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	co, err := coordinator.New(coordinator.Config{Actor: "test", Now: clk.Now}, st)
	if err != nil {
		t.Fatal(err)
	}
	return co
}

// TestDoBatchReadsInOrder: in one batch, a GET before a write of its key does
// not see it, a GET after it does, through the coordinator's batches and
// without them.
func TestDoBatchReadsInOrder(t *testing.T) {
	ctx := context.Background()
	for _, batched := range []bool{true, false} {
		clk := newFakeClock()
		co := proxy.Coordinator(newCoordinator(t, clk))
		if !batched {
			co = unbatched{co}
		}
		p := proxy.New(proxy.Config{Now: clk.Now}, co)
		if _, err := p.Do(ctx, proxy.Op{Kind: proxy.OpSet, Key: []byte("j"), Value: []byte("old")}); err != nil {
			t.Fatal(err)
		}
		b := p.NewBatch()
		for _, op := range []proxy.Op{
			{Kind: proxy.OpGet, Key: []byte("k")},
			{Kind: proxy.OpGet, Key: []byte("j")},
			{Kind: proxy.OpSet, Key: []byte("k"), Value: []byte("v1")},
			{Kind: proxy.OpDelete, Key: []byte("j")},
			{Kind: proxy.OpGet, Key: []byte("k")},
			{Kind: proxy.OpGet, Key: []byte("j")},
			{Kind: proxy.OpSet, Key: []byte("k"), Value: []byte("v2")},
			{Kind: proxy.OpGet, Key: []byte("k")},
		} {
			if _, ok := b.Add(op); !ok {
				t.Fatalf("%+v not batchable", op)
			}
		}
		got := p.DoBatch(ctx, b)
		var saw []string
		for i, r := range got {
			if r.Err != nil {
				t.Fatalf("batched=%v op %d: %v", batched, i, r.Err)
			}
			switch {
			case r.Result.Status == proxy.Stored:
				saw = append(saw, "stored")
			case r.Result.Found:
				saw = append(saw, string(r.Result.Item.Value))
			default:
				saw = append(saw, "-")
			}
		}
		if want := []string{"-", "old", "stored", "stored", "v1", "-", "stored", "v2"}; !reflect.DeepEqual(saw, want) {
			t.Errorf("batched=%v: %v, want %v", batched, saw, want)
		}
	}
}

// TestSessionPreset: a Session's Do of the op a front end ran ahead returns
// DoBatch's outcome without running the op again (the key keeps what the
// batch wrote); a Do of another op drops the preset outcome and runs.
func TestSessionPreset(t *testing.T) {
	ctx := context.Background()
	p := testnode.Proxy(t, testnode.Options{})
	sess := p.NewSession(nil)
	set := proxy.Op{Kind: proxy.OpSet, Key: []byte("k"), Value: []byte("batched")}
	b := p.NewBatch()
	b.Add(set)
	out := p.DoBatch(ctx, b)
	if out[0].Err != nil {
		t.Fatal(out[0].Err)
	}
	// The same op (but for Accepted) takes the outcome: nothing runs, so a
	// made-up outcome comes back and the key is unchanged.
	made := proxy.BatchResult{Err: proxy.ErrNotInteger}
	sess.Preset(set, made)
	if !sess.HasPreset() {
		t.Fatal("no preset")
	}
	same := set
	same.Key, same.Value = []byte("k"), []byte("batched")
	if _, err := sess.Do(ctx, same); !errors.Is(err, proxy.ErrNotInteger) {
		t.Fatalf("Do of the preset op: %v, want the preset outcome", err)
	}
	if sess.HasPreset() || sess.TakePreset() {
		t.Fatal("preset outcome not taken")
	}
	// Another op drops it and runs.
	for _, other := range []proxy.Op{
		{Kind: proxy.OpSet, Key: []byte("k"), Value: []byte("alone")},
		{Kind: proxy.OpSet, Key: []byte("k"), Value: []byte("batched"), Expiry: 1 << 50},
	} {
		sess.Preset(set, made)
		if _, err := sess.Do(ctx, other); err != nil {
			t.Fatalf("Do of %+v: %v", other, err)
		}
		if sess.TakePreset() {
			t.Fatal("preset outcome kept past another op")
		}
	}
	res, err := p.Do(ctx, proxy.Op{Kind: proxy.OpGet, Key: []byte("k")})
	if err != nil || string(res.Item.Value) != "batched" || res.Item.Expiry != 1<<50 {
		t.Fatalf("k = %q (%+v), %v", res.Item.Value, res.Item, err)
	}
	var none *proxy.Session
	if none.HasPreset() || none.TakePreset() {
		t.Fatal("nil session has a preset")
	}
}
