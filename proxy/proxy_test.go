package proxy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/dynakv/dynakv/internal/fakeclock"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/internal/testnode"
	"github.com/dynakv/dynakv/proxy"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/vclock"
)

// fakeClock is the tests' settable clock.
type fakeClock = fakeclock.Clock

func newFakeClock() *fakeClock { return fakeclock.New(time.UnixMilli(1_700_000_000_000)) }

// ms returns the clock plus d as unix milliseconds, the unit of Op.Expiry.
// env is a proxy under test with its clock.
type env struct {
	t   *testing.T
	p   *proxy.Proxy
	clk *fakeClock
	st  *storage.Store // nil for testnode stacks
}

// newEnv builds the stack through testnode, as the front ends' tests do.
func newEnv(t *testing.T) *env {
	clk := newFakeClock()
	return &env{t: t, p: testnode.Proxy(t, testnode.Options{Now: clk.Now, MaxValueBytes: 64}), clk: clk}
}

// newDirectEnv builds storage, coordinator and proxy by hand, with a reaper that
// only runs when the test calls Reap, and cfg's proxy options.
func newDirectEnv(t *testing.T, cfg proxy.Config) *env {
	clk := newFakeClock()
	st, err := storage.Open(storage.Config{InMemory: true, Partitions: 64, Now: clk.Now,
		ReapInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	co, err := coordinator.New(coordinator.Config{Actor: "n1", Now: clk.Now}, st)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Now = clk.Now
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewPCG(1, 2))
	}
	return &env{t: t, p: proxy.New(cfg, co), clk: clk, st: st}
}

func (e *env) do(op proxy.Op) proxy.Result {
	e.t.Helper()
	res, err := e.p.Do(context.Background(), op)
	if err != nil {
		e.t.Fatalf("Do(%s): %v", opString(op), err)
	}
	return res
}

func (e *env) doErr(op proxy.Op) error {
	e.t.Helper()
	_, err := e.p.Do(context.Background(), op)
	return err
}

func (e *env) get(key string) (proxy.Item, bool) {
	e.t.Helper()
	res := e.do(proxy.Op{Kind: proxy.OpGet, Key: []byte(key)})
	return res.Item, res.Found
}

func (e *env) mustValue(key, want string) proxy.Item {
	e.t.Helper()
	it, ok := e.get(key)
	if !ok {
		e.t.Fatalf("GET %s: missing, want %q", key, want)
	}
	if string(it.Value) != want {
		e.t.Fatalf("GET %s = %q, want %q", key, it.Value, want)
	}
	return it
}

func (e *env) mustMissing(key string) {
	e.t.Helper()
	if it, ok := e.get(key); ok {
		e.t.Fatalf("GET %s = %q, want missing", key, it.Value)
	}
}

func (e *env) set(key, value string) proxy.Result {
	e.t.Helper()
	return e.do(proxy.Op{Kind: proxy.OpSet, Key: []byte(key), Value: []byte(value)})
}

func (e *env) setEx(key, value string, ttl time.Duration) proxy.Result {
	e.t.Helper()
	return e.do(proxy.Op{Kind: proxy.OpSet, Key: []byte(key), Value: []byte(value), Expiry: msAfter(e.clk, ttl)})
}

func opString(op proxy.Op) string {
	return fmt.Sprintf("kind=%d key=%q value=%q cond=%d expiry=%d", op.Kind, op.Key, op.Value, op.Cond, op.Expiry)
}

func statusName(s proxy.Status) string {
	switch s {
	case 0:
		return "none"
	case proxy.Stored:
		return "Stored"
	case proxy.NotStored:
		return "NotStored"
	case proxy.Exists:
		return "Exists"
	case proxy.NotFound:
		return "NotFound"
	}
	return fmt.Sprint(int(s))
}

// state describes a key before a table case runs.
type state struct {
	value  string
	ttl    time.Duration // 0: no expiry; negative: already expired
	flags  uint32
	absent bool
}

func (e *env) prepare(key string, st state) {
	e.t.Helper()
	if st.absent {
		return
	}
	op := proxy.Op{Kind: proxy.OpSet, Key: []byte(key), Value: []byte(st.value), Flags: st.flags}
	if st.ttl > 0 {
		op.Expiry = msAfter(e.clk, st.ttl)
	}
	if st.ttl < 0 {
		op.Expiry = msAfter(e.clk, time.Second)
	}
	e.do(op)
	if st.ttl < 0 {
		e.clk.Advance(2 * time.Second)
	}
}

// after describes a key after a table case ran.
type after struct {
	missing bool
	value   string
	ttl     time.Duration // 0: no expiry; -1: don't check
	flags   uint32
}

func (e *env) check(key string, want after) {
	e.t.Helper()
	it, ok := e.get(key)
	if want.missing {
		if ok {
			e.t.Fatalf("key holds %q, want missing", it.Value)
		}
		return
	}
	if !ok {
		e.t.Fatalf("key missing, want %q", want.value)
	}
	if string(it.Value) != want.value {
		e.t.Fatalf("value = %q, want %q", it.Value, want.value)
	}
	if it.Flags != want.flags {
		e.t.Fatalf("flags = %d, want %d", it.Flags, want.flags)
	}
	switch {
	case want.ttl == -1:
	case want.ttl == 0 && it.Expiry != 0:
		e.t.Fatalf("expiry = %d, want none", it.Expiry)
	case want.ttl != 0 && it.Expiry != msAfter(e.clk, want.ttl):
		e.t.Fatalf("expiry = %d (ttl %dms), want ttl %v", it.Expiry, it.TTL(e.clk.Now()), want.ttl)
	}
	if it.Siblings != 1 {
		e.t.Fatalf("%d siblings after plain writes", it.Siblings)
	}
}

func TestSet(t *testing.T) {
	tests := []struct {
		name       string
		before     state
		op         proxy.Op // Key is filled in
		wantStatus proxy.Status
		wantOld    *string // ReturnOld: the previous value (nil: not found)
		after      after
	}{
		{name: "plain on missing", before: state{absent: true},
			op: proxy.Op{Value: []byte("v")}, wantStatus: proxy.Stored, after: after{value: "v"}},
		{name: "plain overwrites and clears ttl", before: state{value: "old", ttl: time.Minute, flags: 3},
			op: proxy.Op{Value: []byte("v")}, wantStatus: proxy.Stored, after: after{value: "v"}},
		{name: "with expiry", before: state{absent: true},
			op: proxy.Op{Value: []byte("v"), Expiry: 1}, wantStatus: proxy.Stored, after: after{value: "v", ttl: 10 * time.Second}},
		{name: "flags", before: state{absent: true},
			op: proxy.Op{Value: []byte("v"), Flags: 0xdeadbeef}, wantStatus: proxy.Stored, after: after{value: "v", flags: 0xdeadbeef}},
		{name: "empty value", before: state{value: "x"},
			op: proxy.Op{Value: []byte{}}, wantStatus: proxy.Stored, after: after{value: ""}},
		{name: "NX on missing", before: state{absent: true},
			op: proxy.Op{Value: []byte("v"), Cond: proxy.CondNX}, wantStatus: proxy.Stored, after: after{value: "v"}},
		{name: "NX on existing", before: state{value: "old"},
			op: proxy.Op{Value: []byte("v"), Cond: proxy.CondNX}, wantStatus: proxy.NotStored, after: after{value: "old"}},
		{name: "NX on expired", before: state{value: "old", ttl: -1},
			op: proxy.Op{Value: []byte("v"), Cond: proxy.CondNX}, wantStatus: proxy.Stored, after: after{value: "v"}},
		{name: "XX on missing", before: state{absent: true},
			op: proxy.Op{Value: []byte("v"), Cond: proxy.CondXX}, wantStatus: proxy.NotStored, after: after{missing: true}},
		{name: "XX on expired", before: state{value: "old", ttl: -1},
			op: proxy.Op{Value: []byte("v"), Cond: proxy.CondXX}, wantStatus: proxy.NotStored, after: after{missing: true}},
		{name: "XX on existing", before: state{value: "old"},
			op: proxy.Op{Value: []byte("v"), Cond: proxy.CondXX}, wantStatus: proxy.Stored, after: after{value: "v"}},
		{name: "KEEPTTL keeps the expiry", before: state{value: "old", ttl: time.Minute},
			op: proxy.Op{Value: []byte("v"), KeepTTL: true}, wantStatus: proxy.Stored, after: after{value: "v", ttl: time.Minute}},
		{name: "KEEPTTL without a ttl", before: state{value: "old"},
			op: proxy.Op{Value: []byte("v"), KeepTTL: true}, wantStatus: proxy.Stored, after: after{value: "v"}},
		{name: "KEEPTTL on missing", before: state{absent: true},
			op: proxy.Op{Value: []byte("v"), KeepTTL: true}, wantStatus: proxy.Stored, after: after{value: "v"}},
		{name: "KEEPTTL on expired", before: state{value: "old", ttl: -1},
			op: proxy.Op{Value: []byte("v"), KeepTTL: true}, wantStatus: proxy.Stored, after: after{value: "v"}},
		{name: "GET returns the old value", before: state{value: "old"},
			op: proxy.Op{Value: []byte("v"), ReturnOld: true}, wantStatus: proxy.Stored, wantOld: ptr("old"), after: after{value: "v"}},
		{name: "GET on missing", before: state{absent: true},
			op: proxy.Op{Value: []byte("v"), ReturnOld: true}, wantStatus: proxy.Stored, after: after{value: "v"}},
		{name: "NX GET on existing", before: state{value: "old"},
			op: proxy.Op{Value: []byte("v"), Cond: proxy.CondNX, ReturnOld: true}, wantStatus: proxy.NotStored, wantOld: ptr("old"), after: after{value: "old"}},
		{name: "XX GET on missing", before: state{absent: true},
			op: proxy.Op{Value: []byte("v"), Cond: proxy.CondXX, ReturnOld: true}, wantStatus: proxy.NotStored, after: after{missing: true}},
		{name: "CAS on missing", before: state{absent: true},
			op: proxy.Op{Value: []byte("v"), Cond: proxy.CondCAS, CAS: 12345}, wantStatus: proxy.NotFound, after: after{missing: true}},
		{name: "CAS on expired", before: state{value: "old", ttl: -1},
			op: proxy.Op{Value: []byte("v"), Cond: proxy.CondCAS, CAS: 12345}, wantStatus: proxy.NotFound, after: after{missing: true}},
		{name: "CAS mismatch", before: state{value: "old"},
			op: proxy.Op{Value: []byte("v"), Cond: proxy.CondCAS, CAS: 12345}, wantStatus: proxy.Exists, after: after{value: "old"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.prepare("k", tt.before)
			op := tt.op
			op.Kind, op.Key = proxy.OpSet, []byte("k")
			if op.Expiry == 1 {
				op.Expiry = msAfter(e.clk, 10*time.Second)
			}
			res := e.do(op)
			if res.Status != tt.wantStatus {
				t.Fatalf("status = %s, want %s", statusName(res.Status), statusName(tt.wantStatus))
			}
			if op.ReturnOld {
				if (tt.wantOld != nil) != res.Found || (res.Found && string(res.Item.Value) != *tt.wantOld) {
					t.Fatalf("old = %q (found %v), want %v", res.Item.Value, res.Found, tt.wantOld)
				}
			}
			if res.Status == proxy.Stored {
				it, _ := e.get("k")
				if res.CAS == 0 || res.CAS != it.CAS {
					t.Fatalf("result CAS %d, GET CAS %d", res.CAS, it.CAS)
				}
			}
			e.check("k", tt.after)
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestSetCASMatch(t *testing.T) {
	e := newEnv(t)
	e.set("k", "a")
	it, _ := e.get("k")
	res := e.do(proxy.Op{Kind: proxy.OpSet, Key: []byte("k"), Value: []byte("b"), Cond: proxy.CondCAS, CAS: it.CAS})
	if res.Status != proxy.Stored {
		t.Fatalf("cas with the current unique: %s", statusName(res.Status))
	}
	// The old unique is now stale.
	if res := e.do(proxy.Op{Kind: proxy.OpSet, Key: []byte("k"), Value: []byte("c"), Cond: proxy.CondCAS, CAS: it.CAS}); res.Status != proxy.Exists {
		t.Fatalf("cas with a stale unique: %s", statusName(res.Status))
	}
	e.mustValue("k", "b")
}

func TestValueTooBig(t *testing.T) {
	e := newEnv(t) // MaxValueBytes 64
	big := bytes.Repeat([]byte("x"), 65)
	ok := bytes.Repeat([]byte("x"), 64)
	if err := e.doErr(proxy.Op{Kind: proxy.OpSet, Key: []byte("k"), Value: big}); !errors.Is(err, proxy.ErrValueTooBig) {
		t.Fatalf("SET 65 bytes: %v", err)
	}
	e.mustMissing("k")
	e.do(proxy.Op{Kind: proxy.OpSet, Key: []byte("k"), Value: ok})
	if err := e.doErr(proxy.Op{Kind: proxy.OpAppend, Key: []byte("k"), Value: []byte("y")}); !errors.Is(err, proxy.ErrValueTooBig) {
		t.Fatalf("APPEND past the limit: %v", err)
	}
	if err := e.doErr(proxy.Op{Kind: proxy.OpDPut, Key: []byte("d"), Value: big}); !errors.Is(err, proxy.ErrValueTooBig) {
		t.Fatalf("DPUT 65 bytes: %v", err)
	}
	if err := e.doErr(proxy.Op{Kind: proxy.OpSetRange, Key: []byte("k"), Offset: 64, Value: []byte("y")}); !errors.Is(err, proxy.ErrValueTooBig) {
		t.Fatalf("SETRANGE past the limit: %v", err)
	}
	e.mustValue("k", string(ok))
	if e.p.MaxValueBytes() != 64 {
		t.Fatalf("MaxValueBytes() = %d", e.p.MaxValueBytes())
	}
}

func TestDeleteAndGetDel(t *testing.T) {
	for _, kind := range []proxy.Kind{proxy.OpDelete, proxy.OpGetDel} {
		t.Run(fmt.Sprint("kind=", kind), func(t *testing.T) {
			e := newEnv(t)
			del := func(key string, cas uint64) proxy.Result {
				op := proxy.Op{Kind: kind, Key: []byte(key)}
				if cas != 0 {
					op.Cond, op.CAS = proxy.CondCAS, cas
				}
				return e.do(op)
			}
			if res := del("missing", 0); res.Status != proxy.NotFound || res.Found {
				t.Fatalf("delete missing: %s found=%v", statusName(res.Status), res.Found)
			}
			e.do(proxy.Op{Kind: proxy.OpSet, Key: []byte("k"), Value: []byte("v"), Flags: 9})
			it, _ := e.get("k")
			if res := del("k", it.CAS+1); res.Status != proxy.Exists {
				t.Fatalf("delete with a wrong cas: %s", statusName(res.Status))
			}
			e.mustValue("k", "v")
			res := del("k", it.CAS)
			if res.Status != proxy.Stored || !res.Found || string(res.Item.Value) != "v" || res.Item.Flags != 9 {
				t.Fatalf("delete: %s found=%v item=%+v", statusName(res.Status), res.Found, res.Item)
			}
			e.mustMissing("k")
			if res := del("k", 0); res.Status != proxy.NotFound {
				t.Fatalf("second delete: %s", statusName(res.Status))
			}
			// An expired key is not there to delete.
			e.setEx("x", "v", time.Second)
			e.clk.Advance(time.Second)
			if res := del("x", 0); res.Status != proxy.NotFound || res.Found {
				t.Fatalf("delete expired: %s found=%v", statusName(res.Status), res.Found)
			}
			// A deleted key can be written again.
			e.set("k", "again")
			e.mustValue("k", "again")
		})
	}
}

func TestGetEx(t *testing.T) {
	e := newEnv(t)
	getex := func(op proxy.Op) proxy.Result {
		op.Kind, op.Key = proxy.OpGetEx, []byte("k")
		return e.do(op)
	}
	if res := getex(proxy.Op{}); res.Found {
		t.Fatal("GETEX on a missing key found something")
	}
	if res := getex(proxy.Op{SetExpiry: true, Expiry: msAfter(e.clk, time.Minute)}); res.Found {
		t.Fatal("GETEX EX on a missing key found something")
	}
	e.mustMissing("k")
	e.set("k", "v")
	before, _ := e.get("k")
	// Without an option GETEX only reads.
	if res := getex(proxy.Op{}); !res.Found || string(res.Item.Value) != "v" {
		t.Fatalf("GETEX: %+v", res)
	}
	if after, _ := e.get("k"); after.CAS != before.CAS {
		t.Fatal("plain GETEX wrote")
	}
	if res := getex(proxy.Op{SetExpiry: true, Expiry: msAfter(e.clk, time.Minute)}); !res.Found || string(res.Item.Value) != "v" || res.Item.Expiry != 0 {
		t.Fatalf("GETEX EX returns the item as read: %+v", res)
	}
	e.check("k", after{value: "v", ttl: time.Minute})
	getex(proxy.Op{SetExpiry: true, Persist: true})
	e.check("k", after{value: "v"})
	// An expiry in the past returns the value and deletes the key.
	if res := getex(proxy.Op{SetExpiry: true, Expiry: msAfter(e.clk, -time.Second)}); !res.Found || string(res.Item.Value) != "v" {
		t.Fatalf("GETEX with a past expiry: %+v", res)
	}
	e.mustMissing("k")
}

func TestExpire(t *testing.T) {
	const none = time.Duration(0)
	tests := []struct {
		name       string
		before     state
		cond       proxy.Cond
		ttl        time.Duration // new ttl, relative to now
		persist    bool
		wantStatus proxy.Status
		after      after
	}{
		{name: "missing", before: state{absent: true}, ttl: time.Minute, wantStatus: proxy.NotFound, after: after{missing: true}},
		{name: "expired", before: state{value: "v", ttl: -1}, ttl: time.Minute, wantStatus: proxy.NotFound, after: after{missing: true}},
		{name: "set", before: state{value: "v"}, ttl: time.Minute, wantStatus: proxy.Stored, after: after{value: "v", ttl: time.Minute}},
		{name: "replace", before: state{value: "v", ttl: time.Hour}, ttl: time.Minute, wantStatus: proxy.Stored, after: after{value: "v", ttl: time.Minute}},
		{name: "keeps flags", before: state{value: "v", flags: 42}, ttl: time.Minute, wantStatus: proxy.Stored, after: after{value: "v", ttl: time.Minute, flags: 42}},
		{name: "NX without ttl", before: state{value: "v"}, cond: proxy.CondNX, ttl: time.Minute, wantStatus: proxy.Stored, after: after{value: "v", ttl: time.Minute}},
		{name: "NX with ttl", before: state{value: "v", ttl: time.Hour}, cond: proxy.CondNX, ttl: time.Minute, wantStatus: proxy.NotStored, after: after{value: "v", ttl: time.Hour}},
		{name: "XX without ttl", before: state{value: "v"}, cond: proxy.CondXX, ttl: time.Minute, wantStatus: proxy.NotStored, after: after{value: "v", ttl: none}},
		{name: "XX with ttl", before: state{value: "v", ttl: time.Hour}, cond: proxy.CondXX, ttl: time.Minute, wantStatus: proxy.Stored, after: after{value: "v", ttl: time.Minute}},
		// A persistent key has an infinite TTL for GT and LT.
		{name: "GT on persistent", before: state{value: "v"}, cond: proxy.CondGT, ttl: time.Hour, wantStatus: proxy.NotStored, after: after{value: "v", ttl: none}},
		{name: "GT greater", before: state{value: "v", ttl: time.Minute}, cond: proxy.CondGT, ttl: time.Hour, wantStatus: proxy.Stored, after: after{value: "v", ttl: time.Hour}},
		{name: "GT equal", before: state{value: "v", ttl: time.Minute}, cond: proxy.CondGT, ttl: time.Minute, wantStatus: proxy.NotStored, after: after{value: "v", ttl: time.Minute}},
		{name: "GT smaller", before: state{value: "v", ttl: time.Hour}, cond: proxy.CondGT, ttl: time.Minute, wantStatus: proxy.NotStored, after: after{value: "v", ttl: time.Hour}},
		{name: "LT on persistent", before: state{value: "v"}, cond: proxy.CondLT, ttl: time.Hour, wantStatus: proxy.Stored, after: after{value: "v", ttl: time.Hour}},
		{name: "LT smaller", before: state{value: "v", ttl: time.Hour}, cond: proxy.CondLT, ttl: time.Minute, wantStatus: proxy.Stored, after: after{value: "v", ttl: time.Minute}},
		{name: "LT equal", before: state{value: "v", ttl: time.Minute}, cond: proxy.CondLT, ttl: time.Minute, wantStatus: proxy.NotStored, after: after{value: "v", ttl: time.Minute}},
		{name: "LT greater", before: state{value: "v", ttl: time.Minute}, cond: proxy.CondLT, ttl: time.Hour, wantStatus: proxy.NotStored, after: after{value: "v", ttl: time.Minute}},
		// A time at or before now deletes the key, once the condition holds.
		{name: "past deletes", before: state{value: "v"}, ttl: -time.Second, wantStatus: proxy.Stored, after: after{missing: true}},
		{name: "now deletes", before: state{value: "v", ttl: time.Hour}, ttl: 0, wantStatus: proxy.Stored, after: after{missing: true}},
		{name: "past with LT on persistent deletes", before: state{value: "v"}, cond: proxy.CondLT, ttl: -time.Second, wantStatus: proxy.Stored, after: after{missing: true}},
		{name: "past with GT on persistent keeps", before: state{value: "v"}, cond: proxy.CondGT, ttl: -time.Second, wantStatus: proxy.NotStored, after: after{value: "v"}},
		{name: "past with NX on volatile keeps", before: state{value: "v", ttl: time.Hour}, cond: proxy.CondNX, ttl: -time.Second, wantStatus: proxy.NotStored, after: after{value: "v", ttl: time.Hour}},
		// PERSIST.
		{name: "persist volatile", before: state{value: "v", ttl: time.Hour, flags: 1}, persist: true, wantStatus: proxy.Stored, after: after{value: "v", flags: 1}},
		{name: "persist persistent", before: state{value: "v"}, persist: true, wantStatus: proxy.NotStored, after: after{value: "v"}},
		{name: "persist missing", before: state{absent: true}, persist: true, wantStatus: proxy.NotFound, after: after{missing: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.prepare("k", tt.before)
			before, _ := e.get("k")
			res := e.do(proxy.Op{Kind: proxy.OpExpire, Key: []byte("k"), Cond: tt.cond, Expiry: msAfter(e.clk, tt.ttl), Persist: tt.persist})
			if res.Status != tt.wantStatus {
				t.Fatalf("status = %s, want %s", statusName(res.Status), statusName(tt.wantStatus))
			}
			e.check("k", tt.after)
			if res.Status != proxy.Stored && !tt.after.missing {
				if it, _ := e.get("k"); it.CAS != before.CAS {
					t.Fatal("a refused EXPIRE wrote")
				}
			}
		})
	}
}

func TestIncr(t *testing.T) {
	tests := []struct {
		stored  *string // nil: missing key
		delta   int64
		want    int64
		wantErr error
	}{
		{nil, 1, 1, nil},
		{nil, -5, -5, nil},
		{ptr("0"), 1, 1, nil},
		{ptr("10"), -20, -10, nil},
		{ptr("-1"), 1, 0, nil},
		{ptr("9223372036854775806"), 1, math.MaxInt64, nil},
		{ptr("-9223372036854775807"), -1, math.MinInt64, nil},
		{ptr("9223372036854775807"), 0, math.MaxInt64, nil},
		{ptr("-9223372036854775808"), 0, math.MinInt64, nil},
		{ptr("9223372036854775807"), -1, math.MaxInt64 - 1, nil},
		{ptr("-9223372036854775808"), math.MaxInt64, -1, nil},
		// Overflow both ways.
		{ptr("9223372036854775807"), 1, 0, proxy.ErrOverflow},
		{ptr("1"), math.MaxInt64, 0, proxy.ErrOverflow},
		{ptr("-9223372036854775808"), -1, 0, proxy.ErrOverflow},
		{ptr("-2"), math.MinInt64, 0, proxy.ErrOverflow},
		{nil, math.MinInt64, math.MinInt64, nil},
		// Redis string2ll strictness.
		{ptr("01"), 1, 0, proxy.ErrNotInteger},
		{ptr("+1"), 1, 0, proxy.ErrNotInteger},
		{ptr(" 1"), 1, 0, proxy.ErrNotInteger},
		{ptr("1 "), 1, 0, proxy.ErrNotInteger},
		{ptr("-0"), 1, 0, proxy.ErrNotInteger},
		{ptr("-"), 1, 0, proxy.ErrNotInteger},
		{ptr("00"), 1, 0, proxy.ErrNotInteger},
		{ptr(""), 1, 0, proxy.ErrNotInteger},
		{ptr("1.0"), 1, 0, proxy.ErrNotInteger},
		{ptr("1e3"), 1, 0, proxy.ErrNotInteger},
		{ptr("0x10"), 1, 0, proxy.ErrNotInteger},
		{ptr("1_000"), 1, 0, proxy.ErrNotInteger},
		{ptr("abc"), 1, 0, proxy.ErrNotInteger},
		{ptr("12a"), 1, 0, proxy.ErrNotInteger},
		{ptr("9223372036854775808"), 1, 0, proxy.ErrNotInteger},
		{ptr("-9223372036854775809"), 1, 0, proxy.ErrNotInteger},
		{ptr("99999999999999999999999"), 1, 0, proxy.ErrNotInteger},
		{ptr("1\x00"), 1, 0, proxy.ErrNotInteger},
	}
	for _, tt := range tests {
		name := "missing"
		if tt.stored != nil {
			name = strconv.Quote(*tt.stored)
		}
		t.Run(fmt.Sprintf("%s%+d", name, tt.delta), func(t *testing.T) {
			e := newEnv(t)
			if tt.stored != nil {
				e.do(proxy.Op{Kind: proxy.OpSet, Key: []byte("k"), Value: []byte(*tt.stored), Flags: 5, Expiry: msAfter(e.clk, time.Minute)})
			}
			res, err := e.p.Do(context.Background(), proxy.Op{Kind: proxy.OpIncr, Key: []byte("k"), Delta: tt.delta})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if tt.stored == nil {
					e.mustMissing("k")
				} else {
					e.check("k", after{value: *tt.stored, ttl: time.Minute, flags: 5})
				}
				return
			}
			want := strconv.FormatInt(tt.want, 10)
			if res.Int != tt.want || res.Status != proxy.Stored || !res.Found || string(res.Item.Value) != want {
				t.Fatalf("result = %+v, want %d", res, tt.want)
			}
			if tt.stored == nil {
				e.check("k", after{value: want})
			} else {
				e.check("k", after{value: want, ttl: time.Minute, flags: 5}) // INCR keeps TTL and flags
			}
			if it, _ := e.get("k"); it.CAS != res.CAS || res.Item.CAS != res.CAS {
				t.Fatalf("CAS: result %d, item %d, GET %d", res.CAS, res.Item.CAS, it.CAS)
			}
		})
	}
}

func TestIncrByFloat(t *testing.T) {
	tests := []struct {
		stored  *string
		incr    float64
		want    string
		wantErr error
	}{
		{ptr("10.50"), 0.1, "10.6", nil}, // INCRBYFLOAT documentation example
		{ptr("10.6"), -5, "5.6", nil},
		{ptr("5.0e3"), 2.0e2, "5200", nil}, // exponent input, plain output
		{nil, 1.5, "1.5", nil},
		{ptr("3"), 1.5, "4.5", nil},
		{ptr("1"), -1, "0", nil},
		{ptr("-0"), 0, "0", nil}, // never "-0"
		{ptr("0"), math.Copysign(0, -1), "0", nil},
		{ptr("-0.0"), math.Copysign(0, -1), "0", nil},
		{ptr("1e20"), 0, "100000000000000000000", nil}, // no exponent in the reply
		{ptr("1"), 1e-7, "1.0000001", nil},
		{ptr("0.1"), 0.2, "0.30000000000000004", nil}, // float64, not Redis's long double
		{ptr(".5"), 0, "0.5", nil},
		{ptr("+1.5"), 0, "1.5", nil},
		{ptr("7"), 0, "7", nil},
		{ptr("abc"), 1, "", proxy.ErrNotFloat},
		{ptr(" 1"), 1, "", proxy.ErrNotFloat},
		{ptr("1 "), 1, "", proxy.ErrNotFloat},
		{ptr(""), 1, "", proxy.ErrNotFloat},
		{ptr("inf"), 1, "", proxy.ErrNotFloat},
		{ptr("nan"), 1, "", proxy.ErrNotFloat},
		{ptr("1.7e308"), 1.7e308, "", proxy.ErrNaN},
		{nil, math.Inf(1), "", proxy.ErrNaN},
	}
	for _, tt := range tests {
		name := "missing"
		if tt.stored != nil {
			name = *tt.stored
		}
		t.Run(fmt.Sprintf("%s+%g", name, tt.incr), func(t *testing.T) {
			e := newEnv(t)
			if tt.stored != nil {
				e.do(proxy.Op{Kind: proxy.OpSet, Key: []byte("k"), Value: []byte(*tt.stored), Expiry: msAfter(e.clk, time.Minute)})
			}
			res, err := e.p.Do(context.Background(), proxy.Op{Kind: proxy.OpIncrFloat, Key: []byte("k"), Float: tt.incr})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if tt.stored != nil {
					e.mustValue("k", *tt.stored)
				} else {
					e.mustMissing("k")
				}
				return
			}
			if string(res.Float) != tt.want || res.Status != proxy.Stored {
				t.Fatalf("INCRBYFLOAT = %q, want %q", res.Float, tt.want)
			}
			ttl := time.Duration(0)
			if tt.stored != nil {
				ttl = time.Minute
			}
			e.check("k", after{value: tt.want, ttl: ttl})
		})
	}
	for f, want := range map[float64]string{
		0: "0", math.Copysign(0, -1): "0", 1: "1", -1.25: "-1.25", 1e21: "1000000000000000000000",
		1e-5: "0.00001", 123456789.125: "123456789.125",
	} {
		if got := string(proxy.FormatFloat(f)); got != want {
			t.Errorf("FormatFloat(%g) = %q, want %q", f, got, want)
		}
	}
}

// TestIncrByFloatLongValue: a stored value is read as Redis's string2ld reads it, up
// to 5 KiB (internal/num.ParseFloat, as INCRBYFLOAT's argument).
func TestIncrByFloatLongValue(t *testing.T) {
	e := newDirectEnv(t, proxy.Config{})
	for _, tc := range []struct {
		stored string
		err    error
	}{
		{"1." + strings.Repeat("0", 5117), nil},               // 5119 bytes
		{"1." + strings.Repeat("0", 5118), proxy.ErrNotFloat}, // 5120 bytes
	} {
		e.set("k", tc.stored)
		res, err := e.p.Do(context.Background(), proxy.Op{Kind: proxy.OpIncrFloat, Key: []byte("k"), Float: 1})
		if !errors.Is(err, tc.err) || err == nil && string(res.Float) != "2" {
			t.Errorf("INCRBYFLOAT 1 on %d bytes = %q, %v; want error %v", len(tc.stored), res.Float, err, tc.err)
		}
	}
}

func TestIncrUnsigned(t *testing.T) {
	tests := []struct {
		stored     *string
		delta      uint64
		decr       bool
		want       uint64
		wantStatus proxy.Status
		wantErr    error
	}{
		{stored: nil, delta: 1, wantStatus: proxy.NotFound},
		{stored: ptr("0"), delta: 1, want: 1, wantStatus: proxy.Stored},
		{stored: ptr("41"), delta: 1, want: 42, wantStatus: proxy.Stored},
		{stored: ptr("18446744073709551615"), delta: 1, want: 0, wantStatus: proxy.Stored}, // wraps at 2^64
		{stored: ptr("18446744073709551615"), delta: 2, want: 1, wantStatus: proxy.Stored},
		{stored: ptr("18446744073709551615"), delta: math.MaxUint64, want: math.MaxUint64 - 1, wantStatus: proxy.Stored},
		{stored: ptr("10"), delta: 3, decr: true, want: 7, wantStatus: proxy.Stored},
		{stored: ptr("3"), delta: 5, decr: true, want: 0, wantStatus: proxy.Stored}, // decr floors at 0
		{stored: ptr("3"), delta: 3, decr: true, want: 0, wantStatus: proxy.Stored},
		{stored: ptr("0"), delta: math.MaxUint64, decr: true, want: 0, wantStatus: proxy.Stored},
		{stored: ptr("100  "), delta: 1, decr: true, want: 99, wantStatus: proxy.Stored}, // memcached's space padding
		{stored: ptr("007"), delta: 1, want: 8, wantStatus: proxy.Stored},
		{stored: ptr("abc"), delta: 1, wantErr: proxy.ErrNonNumeric},
		{stored: ptr("-1"), delta: 1, wantErr: proxy.ErrNonNumeric},
		{stored: ptr("+1"), delta: 1, wantErr: proxy.ErrNonNumeric},
		{stored: ptr(""), delta: 1, wantErr: proxy.ErrNonNumeric},
		{stored: ptr("1.5"), delta: 1, wantErr: proxy.ErrNonNumeric},
		{stored: ptr(" 1"), delta: 1, wantErr: proxy.ErrNonNumeric},
		{stored: ptr("18446744073709551616"), delta: 1, wantErr: proxy.ErrNonNumeric},
		{stored: ptr("123456789012345678901"), delta: 1, wantErr: proxy.ErrNonNumeric},
	}
	for _, tt := range tests {
		name := "missing"
		if tt.stored != nil {
			name = strconv.Quote(*tt.stored)
		}
		verb := "incr"
		if tt.decr {
			verb = "decr"
		}
		t.Run(fmt.Sprintf("%s %s %d", verb, name, tt.delta), func(t *testing.T) {
			e := newEnv(t)
			if tt.stored != nil {
				e.do(proxy.Op{Kind: proxy.OpSet, Key: []byte("k"), Value: []byte(*tt.stored), Flags: 77})
			}
			res, err := e.p.Do(context.Background(), proxy.Op{Kind: proxy.OpIncrUnsigned, Key: []byte("k"), UDelta: tt.delta, Decr: tt.decr})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				e.mustValue("k", *tt.stored)
				return
			}
			if res.Status != tt.wantStatus {
				t.Fatalf("status = %s, want %s", statusName(res.Status), statusName(tt.wantStatus))
			}
			if res.Status == proxy.NotFound {
				e.mustMissing("k")
				return
			}
			want := strconv.FormatUint(tt.want, 10)
			if res.Uint != tt.want || string(res.Item.Value) != want {
				t.Fatalf("result %d (item %q), want %d", res.Uint, res.Item.Value, tt.want)
			}
			e.check("k", after{value: want, flags: 77})
		})
	}
}

func TestAppendPrepend(t *testing.T) {
	e := newEnv(t)
	app := func(key, v string, prepend bool, cond proxy.Cond) proxy.Result {
		return e.do(proxy.Op{Kind: proxy.OpAppend, Key: []byte(key), Value: []byte(v), Prepend: prepend, Cond: cond})
	}
	// Redis APPEND creates the key.
	if res := app("r", "ab", false, proxy.CondNone); res.Status != proxy.Stored || res.Int != 2 {
		t.Fatalf("APPEND on missing: %+v", res)
	}
	if res := app("r", "cd", false, proxy.CondNone); res.Int != 4 || string(res.Item.Value) != "abcd" {
		t.Fatalf("APPEND: %+v", res)
	}
	e.mustValue("r", "abcd")
	// memcached append/prepend need the key (Cond XX).
	if res := app("m", "x", false, proxy.CondXX); res.Status != proxy.NotStored {
		t.Fatalf("memcached append on missing: %s", statusName(res.Status))
	}
	if res := app("m", "x", true, proxy.CondXX); res.Status != proxy.NotStored {
		t.Fatalf("memcached prepend on missing: %s", statusName(res.Status))
	}
	e.mustMissing("m")
	e.do(proxy.Op{Kind: proxy.OpSet, Key: []byte("m"), Value: []byte("mid"), Flags: 12, Expiry: msAfter(e.clk, time.Minute)})
	app("m", "-end", false, proxy.CondXX)
	if res := app("m", "start-", true, proxy.CondXX); res.Status != proxy.Stored || res.Int != int64(len("start-mid-end")) {
		t.Fatalf("prepend: %+v", res)
	}
	e.check("m", after{value: "start-mid-end", flags: 12, ttl: time.Minute}) // flags and TTL kept
	// An expired key counts as missing.
	e.setEx("x", "old", time.Second)
	e.clk.Advance(time.Second)
	if res := app("x", "new", false, proxy.CondXX); res.Status != proxy.NotStored {
		t.Fatalf("append on expired: %s", statusName(res.Status))
	}
	app("x", "new", false, proxy.CondNone)
	e.check("x", after{value: "new"})
	// Appending nothing still answers the length.
	if res := app("r", "", false, proxy.CondNone); res.Int != 4 {
		t.Fatalf("empty append: %+v", res)
	}
}

func TestSetRange(t *testing.T) {
	tests := []struct {
		name    string
		stored  *string
		offset  int64
		value   string
		wantInt int64
		want    *string // nil: key missing afterwards
		wantErr error
	}{
		{"pads missing key with zero bytes", nil, 5, "ab", 7, ptr("\x00\x00\x00\x00\x00ab"), nil},
		{"at zero on missing", nil, 0, "ab", 2, ptr("ab"), nil},
		{"pads a short value", ptr("xy"), 4, "z", 5, ptr("xy\x00\x00z"), nil},
		{"overwrites the middle", ptr("Hello World"), 6, "Redis", 11, ptr("Hello Redis"), nil},
		{"extends", ptr("Hello"), 3, "p me", 7, ptr("Help me"), nil},
		{"at the end", ptr("ab"), 2, "c", 3, ptr("abc"), nil},
		{"empty value on missing creates nothing", nil, 5, "", 0, nil, nil},
		{"empty value on existing answers its length", ptr("abc"), 10, "", 3, ptr("abc"), nil},
		{"negative offset", ptr("abc"), -1, "x", 0, ptr("abc"), proxy.ErrBadOffset},
		{"negative offset on missing", nil, -1, "x", 0, nil, proxy.ErrBadOffset},
		{"past the value limit", nil, 64, "x", 0, nil, proxy.ErrValueTooBig},
		{"up to the value limit", nil, 63, "x", 64, ptr(string(make([]byte, 63)) + "x"), nil},
		{"huge offset does not overflow", ptr("abc"), math.MaxInt64, "x", 0, ptr("abc"), proxy.ErrValueTooBig},
		{"huge offset minus one", nil, math.MaxInt64 - 1, "xy", 0, nil, proxy.ErrValueTooBig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t) // MaxValueBytes 64
			if tt.stored != nil {
				e.do(proxy.Op{Kind: proxy.OpSet, Key: []byte("k"), Value: []byte(*tt.stored), Expiry: msAfter(e.clk, time.Minute), Flags: 3})
			}
			res, err := e.p.Do(context.Background(), proxy.Op{Kind: proxy.OpSetRange, Key: []byte("k"), Offset: tt.offset, Value: []byte(tt.value)})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && res.Int != tt.wantInt {
				t.Fatalf("length = %d, want %d", res.Int, tt.wantInt)
			}
			switch {
			case tt.want == nil:
				e.mustMissing("k")
			case tt.stored != nil:
				e.check("k", after{value: *tt.want, ttl: time.Minute, flags: 3})
			default:
				e.check("k", after{value: *tt.want})
			}
		})
	}
}

func TestDGetDPutDDel(t *testing.T) {
	e := newEnv(t)
	key := []byte("k")
	dget := func() proxy.Result { return e.do(proxy.Op{Kind: proxy.OpDGet, Key: key}) }
	dput := func(ctx, v string) proxy.Result {
		return e.do(proxy.Op{Kind: proxy.OpDPut, Key: key, Context: ctx, Value: []byte(v)})
	}
	ddel := func(ctx string) proxy.Result { return e.do(proxy.Op{Kind: proxy.OpDDel, Key: key, Context: ctx}) }
	values := func(r proxy.Result) []string {
		var out []string
		for _, v := range r.Values {
			out = append(out, string(v))
		}
		slices.Sort(out)
		return out
	}

	if r := dget(); r.Found || r.Context != "" || len(r.Values) != 0 || r.Values == nil {
		t.Fatalf("DGET missing: %+v (want an empty, non-nil list)", r)
	}
	// Two writes with the empty context are concurrent: two siblings.
	first := dput("", "a")
	if first.Context == "" || first.Status != proxy.Stored {
		t.Fatalf("DPUT: %+v", first)
	}
	second := dput("", "b")
	r := dget()
	if got := values(r); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("after two DPUTs with \"\": %v", got)
	}
	if r.Context != second.Context {
		t.Fatalf("DGET context %q, last DPUT replied %q", r.Context, second.Context)
	}
	if it, _ := e.get("k"); it.Siblings != 2 {
		t.Fatalf("GET sees %d siblings", it.Siblings)
	}
	// DPUT with the DGET context supersedes both.
	third := dput(r.Context, "c")
	if got := values(dget()); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("after DPUT with the DGET context: %v", got)
	}
	// Make two siblings again, then delete with a context covering only one.
	fourth := dput(third.Context, "d")
	dput(third.Context, "e") // concurrent with d
	if got := values(dget()); !slices.Equal(got, []string{"d", "e"}) {
		t.Fatalf("siblings d, e: %v", got)
	}
	delRes := ddel(fourth.Context) // covers d, not e
	if delRes.Context == "" {
		t.Fatal("DDEL replied an empty context")
	}
	r = dget()
	if got := values(r); !slices.Equal(got, []string{"e"}) {
		t.Fatalf("after DDEL covering d only: %v", got)
	}
	// The delete is the newest write: plain reads see the key absent (last writer
	// wins over every sibling, tombstones included), while DGET lists e.
	e.mustMissing("k")
	// DDEL with the full context deletes the key.
	ddel(r.Context)
	if r := dget(); r.Found || len(r.Values) != 0 || r.Context == "" {
		t.Fatalf("after DDEL with the full context: %+v (the context survives the delete)", r)
	}
	e.mustMissing("k")
	// Plain SET after DPUT siblings supersedes them all.
	dput("", "x")
	dput("", "y")
	e.set("k", "z")
	if got := values(dget()); !slices.Equal(got, []string{"z"}) {
		t.Fatalf("SET after siblings: %v", got)
	}
	// An empty value is a value.
	dput(dget().Context, "")
	if r := dget(); len(r.Values) != 1 || r.Values[0] == nil || len(r.Values[0]) != 0 {
		t.Fatalf("DPUT of an empty value: %+v", r)
	}
}

func TestDPutExpiry(t *testing.T) {
	e := newEnv(t)
	key := []byte("k")
	e.do(proxy.Op{Kind: proxy.OpDPut, Key: key, Value: []byte("short"), Expiry: msAfter(e.clk, time.Second)})
	e.do(proxy.Op{Kind: proxy.OpDPut, Key: key, Value: []byte("long")})
	if r := e.do(proxy.Op{Kind: proxy.OpDGet, Key: key}); len(r.Values) != 2 {
		t.Fatalf("%d siblings", len(r.Values))
	}
	e.clk.Advance(time.Second)
	r := e.do(proxy.Op{Kind: proxy.OpDGet, Key: key})
	if len(r.Values) != 1 || string(r.Values[0]) != "long" {
		t.Fatalf("expired sibling still listed: %q", r.Values)
	}
}

func TestBadContext(t *testing.T) {
	e := newEnv(t)
	e.set("k", "v")
	valid := e.do(proxy.Op{Kind: proxy.OpDGet, Key: []byte("k")}).Context
	for _, ctx := range []string{"!!!", "AAAA", "not base64 at all", valid + "A", valid[:len(valid)-1], "=" + valid} {
		for _, kind := range []proxy.Kind{proxy.OpDPut, proxy.OpDDel} {
			err := e.doErr(proxy.Op{Kind: kind, Key: []byte("k"), Context: ctx, Value: []byte("x")})
			if !errors.Is(err, proxy.ErrBadContext) {
				t.Errorf("kind %d with context %q: err = %v, want ErrBadContext", kind, ctx, err)
			}
		}
	}
	e.mustValue("k", "v")

	// A context whose counter is at the top of its range must not poison the key
	// (the next dot would wrap to 0): refused, or harmless.
	huge := vclock.Clock{{Actor: "test", Counter: math.MaxUint64}, {Actor: "zz", Counter: math.MaxUint64 - 1}}.String()
	for _, kind := range []proxy.Kind{proxy.OpDPut, proxy.OpDDel} {
		if err := e.doErr(proxy.Op{Kind: kind, Key: []byte("k"), Context: huge, Value: []byte("x")}); err != nil && !errors.Is(err, proxy.ErrBadContext) {
			t.Fatalf("kind %d with a huge counter: %v", kind, err)
		}
		e.get("k")
		e.set("k", "after")
		e.mustValue("k", "after")
		e.do(proxy.Op{Kind: proxy.OpIncr, Key: []byte("n"), Delta: 1})
	}
}

// TestCASChangesAfterEveryWrite: the cas unique of a key changes with every write,
// of every kind, and equals what the write returned.
func TestCASChangesAfterEveryWrite(t *testing.T) {
	e := newEnv(t)
	k := []byte("k")
	seen := map[uint64]string{}
	step := func(name string, op proxy.Op) {
		t.Helper()
		op.Key = k
		res := e.do(op)
		it, ok := e.get("k")
		var cas uint64
		if ok {
			cas = it.CAS
			if res.CAS != 0 && res.CAS != cas {
				t.Fatalf("%s: result CAS %d, GET CAS %d", name, res.CAS, cas)
			}
		} else { // deleted: the write's reply still carries the record's unique
			if res.CAS == 0 {
				t.Fatalf("%s: write returned no CAS", name)
			}
			cas = res.CAS
		}
		if prev, dup := seen[cas]; dup {
			t.Fatalf("%s: CAS %d already seen after %s", name, cas, prev)
		}
		seen[cas] = name
	}
	step("set", proxy.Op{Kind: proxy.OpSet, Value: []byte("1")})
	step("set same value", proxy.Op{Kind: proxy.OpSet, Value: []byte("1")})
	step("incr", proxy.Op{Kind: proxy.OpIncr, Delta: 1})
	step("incrbyfloat", proxy.Op{Kind: proxy.OpIncrFloat, Float: 1})
	step("memcached incr", proxy.Op{Kind: proxy.OpIncrUnsigned, UDelta: 1})
	step("append", proxy.Op{Kind: proxy.OpAppend, Value: []byte("0")})
	step("setrange", proxy.Op{Kind: proxy.OpSetRange, Offset: 0, Value: []byte("9")})
	step("expire", proxy.Op{Kind: proxy.OpExpire, Expiry: msAfter(e.clk, time.Hour)})
	step("persist", proxy.Op{Kind: proxy.OpExpire, Persist: true})
	step("getex", proxy.Op{Kind: proxy.OpGetEx, SetExpiry: true, Expiry: msAfter(e.clk, time.Hour)})
	step("dput", proxy.Op{Kind: proxy.OpDPut, Value: []byte("d")})
	step("delete", proxy.Op{Kind: proxy.OpDelete})
	step("set after delete", proxy.Op{Kind: proxy.OpSet, Value: []byte("again")})
	step("ddel", proxy.Op{Kind: proxy.OpDDel})
	step("set after ddel", proxy.Op{Kind: proxy.OpSet, Value: []byte("again")})
	// Reads leave it alone.
	before, _ := e.get("k")
	e.do(proxy.Op{Kind: proxy.OpGetEx, Key: k})
	e.do(proxy.Op{Kind: proxy.OpDGet, Key: k})
	if after, _ := e.get("k"); after.CAS != before.CAS {
		t.Fatal("a read changed the CAS")
	}
}

// TestWinnerDeterminism: plain reads of siblings return the greatest (timestamp, dot),
// whatever the order the siblings are listed in.
func TestWinnerDeterminism(t *testing.T) {
	e := newEnv(t)
	k := []byte("k")
	dput := func(v string) {
		e.do(proxy.Op{Kind: proxy.OpDPut, Key: k, Value: []byte(v)})
	}
	// Same timestamp: the later dot wins.
	dput("a")
	dput("b")
	e.mustValue("k", "b")
	// A later timestamp wins over a later dot: the clock steps back between writes.
	e.clk.Advance(time.Second)
	dput("late-ts")
	e.clk.Advance(-time.Minute)
	dput("late-dot")
	e.mustValue("k", "late-ts")

	// vclock.Winner is order-independent, including ties on timestamp.
	sibs := []vclock.Sibling{
		{Value: vclock.Value{Data: []byte("x"), Timestamp: 5}, Dot: vclock.Dot{Actor: "a", Counter: 3}},
		{Value: vclock.Value{Data: []byte("y"), Timestamp: 5}, Dot: vclock.Dot{Actor: "b", Counter: 1}},
		{Value: vclock.Value{Data: []byte("z"), Timestamp: 4}, Dot: vclock.Dot{Actor: "c", Counter: 9}},
		{Value: vclock.Value{Data: []byte("w"), Timestamp: 5}, Dot: vclock.Dot{Actor: "a", Counter: 2}},
		{Value: vclock.Value{Data: []byte("anon1"), Timestamp: 5}},
		{Value: vclock.Value{Data: []byte("anon2"), Timestamp: 5}},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100 {
		rng.Shuffle(len(sibs), func(i, j int) { sibs[i], sibs[j] = sibs[j], sibs[i] })
		w, ok := vclock.Winner(sibs)
		if !ok || string(w.Data) != "y" {
			t.Fatalf("Winner = %q, want y (timestamp 5, greatest dot b:1)", w.Data)
		}
	}
	// Two nodes holding the same siblings (in different internal order) agree.
	if _, ok := vclock.Winner(nil); ok {
		t.Fatal("Winner of nothing")
	}
}

func TestFlushAllWithDelay(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.set("old", "v")
	if err := e.p.FlushAll(ctx, -time.Second); !errors.Is(err, proxy.ErrInvalidFlush) {
		t.Fatalf("negative delay: %v", err)
	}
	if err := e.p.FlushAll(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	e.mustValue("old", "v")
	e.clk.Advance(5 * time.Second)
	e.set("during", "v") // written before the flush time: flushed too
	e.mustValue("old", "v")
	e.clk.Advance(5*time.Second - time.Millisecond)
	e.mustValue("during", "v")
	e.clk.Advance(time.Millisecond)
	e.mustMissing("old")
	e.mustMissing("during")
	e.set("after", "v")
	e.clk.Advance(time.Hour)
	e.mustValue("after", "v") // the flush ran once
	if n, _ := e.p.DBSize(ctx); n != 1 {
		t.Fatalf("DBSize = %d", n)
	}

	// A delayed flush is also due for keyspace commands.
	e.set("x", "v")
	if err := e.p.FlushAll(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(time.Second)
	if n, _ := e.p.DBSize(ctx); n != 0 {
		t.Fatalf("DBSize after the delayed flush = %d", n)
	}

	// An immediate flush cancels a pending one.
	if err := e.p.FlushAll(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := e.p.FlushAll(ctx, 0); err != nil {
		t.Fatal(err)
	}
	e.set("survivor", "v")
	e.clk.Advance(time.Minute)
	e.mustValue("survivor", "v")

	// A later delayed flush replaces an earlier one.
	if err := e.p.FlushAll(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := e.p.FlushAll(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(time.Minute)
	e.mustValue("survivor", "v")
	e.clk.Advance(time.Hour)
	e.mustMissing("survivor")
}

func TestKeyspace(t *testing.T) {
	ctx := context.Background()
	e := newDirectEnv(t, proxy.Config{})
	live := map[string]bool{}
	for i := range 100 {
		k := fmt.Sprintf("user:%d", i)
		switch {
		case i%10 == 0: // expires
			e.setEx(k, "v", time.Second)
		case i%10 == 1: // deleted
			e.set(k, "v")
			e.do(proxy.Op{Kind: proxy.OpDelete, Key: []byte(k)})
		default:
			e.set(k, "v")
			live[k] = true
		}
	}
	e.set("", "the empty key") // Redis allows it, and KEYS * lists it
	live[""] = true
	e.clk.Advance(time.Second)
	sorted := func(keys [][]byte) []string {
		var out []string
		for _, k := range keys {
			out = append(out, string(k))
		}
		slices.Sort(out)
		return out
	}
	var want []string
	for k := range live {
		want = append(want, k)
	}
	slices.Sort(want)

	// DBSIZE counts expired keys until they are reaped (as Redis), not deleted ones.
	if n, err := e.p.DBSize(ctx); err != nil || n != int64(len(live))+10 {
		t.Fatalf("DBSize = %d, %v; want %d", n, err, len(live)+10)
	}
	for _, pattern := range []string{"*", ""} {
		keys, err := e.p.Keys(ctx, pattern)
		if err != nil {
			t.Fatal(err)
		}
		if got := sorted(keys); !slices.Equal(got, want) {
			t.Fatalf("Keys(%q) = %d keys, want %d (expired and deleted keys hidden)", pattern, len(got), len(want))
		}
	}
	keys, err := e.p.Keys(ctx, "user:1?")
	if err != nil {
		t.Fatal(err)
	}
	if got := sorted(keys); !slices.Equal(got, []string{"user:12", "user:13", "user:14", "user:15", "user:16", "user:17", "user:18", "user:19"}) {
		t.Fatalf("Keys(user:1?) = %v", got)
	}
	if keys, _ := e.p.Keys(ctx, "**"); len(keys) != len(want)-1 {
		t.Fatalf("Keys(**) = %d keys, want %d (as in Redis, only \"*\" itself lists the empty key)", len(keys), len(want)-1)
	}
	// SCAN with small pages visits the same keys.
	for _, count := range []int{0, 1, 7, 1000} {
		var all [][]byte
		cursor := uint64(0)
		for {
			next, keys, err := e.p.Scan(ctx, cursor, "", count)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, keys...)
			if next == 0 {
				break
			}
			cursor = next
		}
		if got := sorted(all); !slices.Equal(got, want) {
			t.Fatalf("Scan count %d: %d keys, want %d", count, len(got), len(want))
		}
	}
	// RANDOMKEY only returns live keys, and eventually many different ones.
	picked := map[string]bool{}
	for range 300 {
		k, ok, err := e.p.RandomKey(ctx)
		if err != nil || !ok {
			t.Fatalf("RandomKey: %v %v", ok, err)
		}
		if !live[string(k)] {
			t.Fatalf("RandomKey returned %q, not a live key", k)
		}
		picked[string(k)] = true
	}
	if len(picked) < 20 {
		t.Fatalf("RandomKey returned only %d distinct keys in 300 tries", len(picked))
	}
	// After the reaper ran, DBSIZE agrees with KEYS.
	if _, err := e.st.Reap(1000); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.p.DBSize(ctx); n != int64(len(live)) {
		t.Fatalf("DBSize after reaping = %d, want %d", n, len(live))
	}
}

func TestRandomKeyEmptyAndAllExpired(t *testing.T) {
	ctx := context.Background()
	e := newDirectEnv(t, proxy.Config{})
	if _, ok, err := e.p.RandomKey(ctx); ok || err != nil {
		t.Fatalf("RandomKey on an empty store: %v %v", ok, err)
	}
	for i := range 50 {
		e.setEx(fmt.Sprint(i), "v", time.Second)
	}
	e.set("deleted", "v")
	e.do(proxy.Op{Kind: proxy.OpDelete, Key: []byte("deleted")})
	e.clk.Advance(time.Second)
	for range 20 {
		if k, ok, err := e.p.RandomKey(ctx); ok || err != nil {
			t.Fatalf("RandomKey with only expired keys: %q %v %v", k, ok, err)
		}
	}
	e.set("only", "v")
	for range 20 {
		if k, ok, _ := e.p.RandomKey(ctx); !ok || string(k) != "only" {
			t.Fatalf("RandomKey = %q, %v; want the only live key", k, ok)
		}
	}
}

func TestStatsAndOnRead(t *testing.T) {
	var mu sync.Mutex
	var reads []int
	e := newDirectEnv(t, proxy.Config{OnRead: func(n int) {
		mu.Lock()
		defer mu.Unlock()
		reads = append(reads, n)
	}})
	e.get("missing")
	e.set("k", "v")
	e.get("k")
	e.do(proxy.Op{Kind: proxy.OpDPut, Key: []byte("k"), Value: []byte("w")})
	e.get("k")
	e.do(proxy.Op{Kind: proxy.OpDGet, Key: []byte("k")})
	if s := e.p.Stats(); s.Hits != 3 || s.Misses != 1 {
		t.Fatalf("Stats = %+v, want 3 hits, 1 miss", s)
	}
	if !slices.Equal(reads, []int{0, 1, 2, 2}) {
		t.Fatalf("OnRead saw %v", reads)
	}
}

func TestUnknownOp(t *testing.T) {
	e := newEnv(t)
	for _, kind := range []proxy.Kind{0, 200} {
		if err := e.doErr(proxy.Op{Kind: kind, Key: []byte("k")}); !errors.Is(err, proxy.ErrUnknownOp) {
			t.Errorf("kind %d: %v", kind, err)
		}
	}
}

func TestItemTTL(t *testing.T) {
	now := time.UnixMilli(10_000)
	for _, tc := range []struct {
		expiry, want int64
	}{{0, -1}, {10_500, 500}, {10_000, 0}, {9_000, 0}} {
		if got := (proxy.Item{Expiry: tc.expiry}).TTL(now); got != tc.want {
			t.Errorf("TTL with expiry %d = %d, want %d", tc.expiry, got, tc.want)
		}
	}
}

func TestCancelledContext(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.p.Do(ctx, proxy.Op{Kind: proxy.OpSet, Key: []byte("k"), Value: []byte("v")}); !errors.Is(err, context.Canceled) {
		t.Fatalf("SET with a cancelled context: %v", err)
	}
	e.mustMissing("k")
	if _, err := e.p.Keys(ctx, "*"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Keys with a cancelled context: %v", err)
	}
}

// TestConcurrentIncr: INCR from many goroutines through the proxy loses nothing.
func TestConcurrentIncr(t *testing.T) {
	e := newEnv(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 250 {
				if _, err := e.p.Do(context.Background(), proxy.Op{Kind: proxy.OpIncr, Key: []byte("n"), Delta: 1}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	e.mustValue("n", "2000")
}

// msAfter returns the unix ms d after clk's time.
func msAfter(clk *fakeClock, d time.Duration) int64 { return clk.Now().Add(d).UnixMilli() }
