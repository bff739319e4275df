package proxy_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dynakv/dynakv/proxy"
)

// TestVivify: memcached's N flag, for every Kind that takes it. A miss creates the
// key with Value (OpIncrUnsigned: Initial), Flags and VivifyExpiry and says
// Created; a hit is the op alone.
func TestVivify(t *testing.T) {
	type want struct {
		created bool
		status  proxy.Status
		value   string // GET afterwards
		flags   uint32
		ttl     time.Duration
		uint    uint64
		int     int64
	}
	tests := []struct {
		name   string
		before state
		op     proxy.Op // Key, Vivify and VivifyExpiry (a minute) are filled in
		want   want
	}{
		{"mg on missing", state{absent: true}, proxy.Op{Kind: proxy.OpGet, Value: []byte{}},
			want{created: true, status: proxy.Stored, value: "", ttl: time.Minute}},
		{"mg on expired", state{value: "old", ttl: -1}, proxy.Op{Kind: proxy.OpGet, Value: []byte{}},
			want{created: true, status: proxy.Stored, value: "", ttl: time.Minute}},
		{"mg on existing", state{value: "v", flags: 3}, proxy.Op{Kind: proxy.OpGet, Value: []byte{}},
			want{value: "v", flags: 3}},
		{"mg T on missing", state{absent: true}, proxy.Op{Kind: proxy.OpGetEx, SetExpiry: true, Expiry: 1, Value: []byte{}},
			want{created: true, status: proxy.Stored, value: "", ttl: time.Minute}},
		{"mg T on existing touches", state{value: "v"}, proxy.Op{Kind: proxy.OpGetEx, SetExpiry: true, Expiry: 1, Value: []byte{}},
			want{status: proxy.Stored, value: "v", ttl: 10 * time.Second}},
		{"ms append on missing", state{absent: true}, proxy.Op{Kind: proxy.OpAppend, Value: []byte("ab"), Flags: 5, Cond: proxy.CondXX},
			want{created: true, status: proxy.Stored, value: "ab", flags: 5, ttl: time.Minute, int: 2}},
		{"ms append on existing", state{value: "x", flags: 2}, proxy.Op{Kind: proxy.OpAppend, Value: []byte("ab"), Flags: 5, Cond: proxy.CondXX},
			want{status: proxy.Stored, value: "xab", flags: 2, int: 3}},
		{"ms prepend with cas on missing", state{absent: true}, proxy.Op{Kind: proxy.OpAppend, Value: []byte("ab"), Prepend: true, Cond: proxy.CondCAS, CAS: 9},
			want{created: true, status: proxy.Stored, value: "ab", ttl: time.Minute, int: 2}},
		{"ma on missing", state{absent: true}, proxy.Op{Kind: proxy.OpIncrUnsigned, UDelta: 5, Initial: 100},
			want{created: true, status: proxy.Stored, value: "100", ttl: time.Minute, uint: 100}},
		{"ma on existing", state{value: "7"}, proxy.Op{Kind: proxy.OpIncrUnsigned, UDelta: 5, Initial: 100},
			want{status: proxy.Stored, value: "12", uint: 12}},
		{"ma decr on missing", state{absent: true}, proxy.Op{Kind: proxy.OpIncrUnsigned, UDelta: 5, Decr: true, Initial: 3},
			want{created: true, status: proxy.Stored, value: "3", ttl: time.Minute, uint: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.prepare("k", tt.before)
			op := tt.op
			op.Key, op.Vivify, op.VivifyExpiry = []byte("k"), true, msAfter(e.clk, time.Minute)
			if op.Expiry == 1 {
				op.Expiry = msAfter(e.clk, 10*time.Second)
			}
			if !op.Writes() {
				t.Fatal("a Vivify op does not report that it writes")
			}
			res := e.do(op)
			w := tt.want
			if res.Created != w.created || res.Status != w.status || !res.Found {
				t.Fatalf("created=%v status=%s found=%v; want created=%v status=%s found", res.Created, statusName(res.Status), res.Found, w.created, statusName(w.status))
			}
			if res.Uint != w.uint || res.Int != w.int {
				t.Fatalf("Uint, Int = %d, %d; want %d, %d", res.Uint, res.Int, w.uint, w.int)
			}
			it, _ := e.get("k")
			if w.status == proxy.Stored && res.CAS != it.CAS {
				t.Fatalf("result CAS %d, GET CAS %d", res.CAS, it.CAS)
			}
			if w.created && (string(res.Item.Value) != w.value || res.Item.CAS != it.CAS || res.Item.Expiry != it.Expiry) {
				t.Fatalf("created item %+v, GET %+v", res.Item, it)
			}
			e.check("k", after{value: w.value, flags: w.flags, ttl: w.ttl})
		})
	}
}

// TestVivifyRace: of many clients vivifying one counter at once, exactly one
// creates it; every other one increments what exists (the retry when another
// client created it between its miss and its SET NX).
func TestVivifyRace(t *testing.T) {
	e := newEnv(t)
	const clients = 16
	var created atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			res, err := e.p.Do(context.Background(), proxy.Op{Kind: proxy.OpIncrUnsigned, Key: []byte("n"), UDelta: 1, Vivify: true})
			switch {
			case err != nil:
				t.Error(err)
			case res.Status != proxy.Stored:
				t.Errorf("status %s", statusName(res.Status))
			case res.Created:
				created.Add(1)
			}
		})
	}
	wg.Wait()
	if created.Load() != 1 {
		t.Fatalf("%d clients created the key", created.Load())
	}
	e.mustValue("n", "15")
}

// TestIncrUnsignedSetExpiry: memcached's ma T. The incr keeps the expiry (Item is
// the item it wrote), then a second write sets T's; Result.CAS is the cas after
// both. A key N created gets VivifyExpiry and no second write.
func TestIncrUnsignedSetExpiry(t *testing.T) {
	e := newEnv(t)
	e.prepare("k", state{value: "5", ttl: time.Hour})
	res := e.do(proxy.Op{Kind: proxy.OpIncrUnsigned, Key: []byte("k"), UDelta: 2, SetExpiry: true, Expiry: msAfter(e.clk, time.Minute)})
	if res.Status != proxy.Stored || res.Uint != 7 || res.Item.Expiry != msAfter(e.clk, time.Hour) {
		t.Fatalf("ma T: %+v", res)
	}
	it := e.mustValue("k", "7")
	if it.Expiry != msAfter(e.clk, time.Minute) || res.CAS != it.CAS {
		t.Fatalf("after ma T: expiry %d, CAS %d; result CAS %d", it.Expiry, it.CAS, res.CAS)
	}

	res = e.do(proxy.Op{Kind: proxy.OpIncrUnsigned, Key: []byte("k"), UDelta: 1, SetExpiry: true, Persist: true})
	if it := e.mustValue("k", "8"); res.Status != proxy.Stored || it.Expiry != 0 || res.CAS != it.CAS {
		t.Fatalf("ma T0: %+v, then %+v", res, it)
	}

	if res := e.do(proxy.Op{Kind: proxy.OpIncrUnsigned, Key: []byte("missing"), UDelta: 1, SetExpiry: true, Expiry: msAfter(e.clk, time.Minute)}); res.Status != proxy.NotFound {
		t.Fatalf("ma T on missing: %s", statusName(res.Status))
	}
	e.mustMissing("missing")

	res = e.do(proxy.Op{Kind: proxy.OpIncrUnsigned, Key: []byte("new"), UDelta: 1, SetExpiry: true, Expiry: msAfter(e.clk, time.Minute),
		Vivify: true, Initial: 4, VivifyExpiry: msAfter(e.clk, time.Hour)})
	if it := e.mustValue("new", "4"); !res.Created || it.Expiry != msAfter(e.clk, time.Hour) || res.CAS != it.CAS {
		t.Fatalf("ma N T on missing: %+v, then %+v", res, it)
	}
}
