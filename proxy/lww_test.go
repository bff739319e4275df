package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dynakv/dynakv/proxy"
)

// lwwScenario leaves key "k" with a live value "5" concurrent with a newer sibling
// that hides it for plain clients.
type lwwScenario struct {
	name  string
	setup func(e *env)
}

// lwwScenarios are finding 8's two histories, made with DPUT/DDEL and the empty
// context, which is how concurrent siblings arise on one node: the value's write
// reached some replicas only, and the later write's read missed it.
var lwwScenarios = []lwwScenario{
	{"older value, newer delete", func(e *env) {
		// SET k old (outcome unknown), then DEL k acknowledged: its read missed old.
		e.do(proxy.Op{Kind: proxy.OpDPut, Key: []byte("k"), Value: []byte("5")})
		e.clk.Advance(time.Second)
		e.do(proxy.Op{Kind: proxy.OpDDel, Key: []byte("k")})
	}},
	{"older value, newer value expired", func(e *env) {
		// SET k old, then SET k new EX 2 concurrent with it, then two seconds pass.
		e.do(proxy.Op{Kind: proxy.OpDPut, Key: []byte("k"), Value: []byte("5")})
		e.clk.Advance(time.Second)
		e.do(proxy.Op{Kind: proxy.OpDPut, Key: []byte("k"), Value: []byte("7"), Expiry: msAfter(e.clk, 2*time.Second)})
		e.clk.Advance(2 * time.Second)
	}},
}

// TestPlainReadsLastWriterWins (finding 8): a plain command picks the winner among
// every sibling, tombstones and expired values included, by (timestamp, dot), and
// sees the key absent when the winner is a tombstone or expired. DGET still lists
// the older live value. Every command that decides existence or reads the value
// follows the one rule, for Redis and memcached alike.
func TestPlainReadsLastWriterWins(t *testing.T) {
	k := []byte("k")
	type tcase struct {
		name string
		op   proxy.Op
		// check inspects the result; then the key must read as after (nil: absent).
		check func(res proxy.Result) error
		after *string
	}
	str := func(s string) *string { return &s }
	notFound := func(res proxy.Result) error {
		if res.Found {
			return fmt.Errorf("found %q, want absent", res.Item.Value)
		}
		return nil
	}
	status := func(want proxy.Status) func(proxy.Result) error {
		return func(res proxy.Result) error {
			if res.Status != want {
				return fmt.Errorf("status %s, want %s", statusName(res.Status), statusName(want))
			}
			return nil
		}
	}
	cases := []tcase{
		{"GET / memcached get", proxy.Op{Kind: proxy.OpGet, Key: k}, notFound, nil},
		{"GETEX", proxy.Op{Kind: proxy.OpGetEx, Key: k}, notFound, nil},
		{"GETEX PERSIST", proxy.Op{Kind: proxy.OpGetEx, Key: k, SetExpiry: true, Persist: true}, notFound, nil},
		{"GETDEL", proxy.Op{Kind: proxy.OpGetDel, Key: k}, notFound, nil},
		{"DEL / memcached delete", proxy.Op{Kind: proxy.OpDelete, Key: k}, status(proxy.NotFound), nil},
		{"SET NX / memcached add", proxy.Op{Kind: proxy.OpSet, Key: k, Value: []byte("new"), Cond: proxy.CondNX}, status(proxy.Stored), str("new")},
		{"SET XX / memcached replace", proxy.Op{Kind: proxy.OpSet, Key: k, Value: []byte("new"), Cond: proxy.CondXX}, status(proxy.NotStored), nil},
		{"SET GET", proxy.Op{Kind: proxy.OpSet, Key: k, Value: []byte("new"), ReturnOld: true}, notFound, str("new")},
		{"SET KEEPTTL", proxy.Op{Kind: proxy.OpSet, Key: k, Value: []byte("new"), KeepTTL: true}, status(proxy.Stored), str("new")},
		{"memcached cas", proxy.Op{Kind: proxy.OpSet, Key: k, Value: []byte("new"), Cond: proxy.CondCAS, CAS: 12345}, status(proxy.NotFound), nil},
		{"INCR", proxy.Op{Kind: proxy.OpIncr, Key: k, Delta: 1}, func(res proxy.Result) error {
			if res.Int != 1 {
				return fmt.Errorf("INCR = %d, want 1 (from an absent key)", res.Int)
			}
			return nil
		}, str("1")},
		{"memcached incr", proxy.Op{Kind: proxy.OpIncrUnsigned, Key: k, UDelta: 1}, status(proxy.NotFound), nil},
		{"APPEND", proxy.Op{Kind: proxy.OpAppend, Key: k, Value: []byte("x")}, func(res proxy.Result) error {
			if res.Int != 1 {
				return fmt.Errorf("APPEND length %d, want 1", res.Int)
			}
			return nil
		}, str("x")},
		{"memcached append", proxy.Op{Kind: proxy.OpAppend, Key: k, Value: []byte("x"), Cond: proxy.CondXX}, status(proxy.NotStored), nil},
		{"SETRANGE", proxy.Op{Kind: proxy.OpSetRange, Key: k, Offset: 1, Value: []byte("x")}, func(res proxy.Result) error {
			if res.Int != 2 {
				return fmt.Errorf("SETRANGE length %d, want 2", res.Int)
			}
			return nil
		}, str("\x00x")},
		{"SETRANGE empty (STRLEN-like)", proxy.Op{Kind: proxy.OpSetRange, Key: k, Value: []byte{}}, func(res proxy.Result) error {
			if res.Int != 0 {
				return fmt.Errorf("length %d, want 0", res.Int)
			}
			return nil
		}, nil},
		{"SETBIT", proxy.Op{Kind: proxy.OpSetBit, Key: k, Offset: 7, Delta: 1}, func(res proxy.Result) error {
			if res.Int != 0 {
				return fmt.Errorf("old bit %d, want 0", res.Int)
			}
			return nil
		}, str("\x01")},
		{"EXPIRE", proxy.Op{Kind: proxy.OpExpire, Key: k, Expiry: 1 << 50}, status(proxy.NotFound), nil},
	}
	for _, sc := range lwwScenarios {
		for _, tc := range cases {
			t.Run(sc.name+"/"+tc.name, func(t *testing.T) {
				e := newEnv(t)
				sc.setup(e)
				res := e.do(tc.op)
				if err := tc.check(res); err != nil {
					t.Fatal(err)
				}
				if tc.after == nil {
					e.mustMissing("k")
				} else {
					e.mustValue("k", *tc.after)
				}
			})
		}
		t.Run(sc.name+"/DGET lists the live sibling", func(t *testing.T) {
			e := newEnv(t)
			sc.setup(e)
			r := e.do(proxy.Op{Kind: proxy.OpDGet, Key: k})
			if len(r.Values) != 1 || string(r.Values[0]) != "5" || !r.Found {
				t.Fatalf("DGET = %+v, want the live sibling 5", r)
			}
		})
		t.Run(sc.name+"/keyspace", func(t *testing.T) {
			ctx := context.Background()
			e := newDirectEnv(t, proxy.Config{})
			sc.setup(e)
			e.set("other", "v")
			keys, err := e.p.Keys(ctx, "*")
			if err != nil || !slices.Equal(sorted(keys), []string{"other"}) {
				t.Fatalf("KEYS * = %q, %v; want only other", keys, err)
			}
			_, page, err := e.p.Scan(ctx, 0, "", 1000)
			if err != nil || !slices.Equal(sorted(page), []string{"other"}) {
				t.Fatalf("SCAN = %q, %v; want only other", page, err)
			}
			for range 20 {
				if key, ok, err := e.p.RandomKey(ctx); err != nil || !ok || string(key) != "other" {
					t.Fatalf("RANDOMKEY = %q, %v, %v; want other", key, ok, err)
				}
			}
		})
	}
}

// TestPlainReadsNewerValueWins: the rule is symmetric: a newer live value beats an
// older tombstone or an older expired value, and Item.Siblings counts the live
// siblings only.
func TestPlainReadsNewerValueWins(t *testing.T) {
	k := []byte("k")
	for _, tc := range []struct {
		name  string
		setup func(e *env)
		live  int
	}{
		{"newer value, older delete", func(e *env) {
			e.do(proxy.Op{Kind: proxy.OpDDel, Key: k})
			e.clk.Advance(time.Second)
			e.do(proxy.Op{Kind: proxy.OpDPut, Key: k, Value: []byte("new")})
		}, 1},
		{"newer value, older expired value", func(e *env) {
			e.do(proxy.Op{Kind: proxy.OpDPut, Key: k, Value: []byte("old"), Expiry: msAfter(e.clk, time.Second)})
			e.clk.Advance(time.Second)
			e.do(proxy.Op{Kind: proxy.OpDPut, Key: k, Value: []byte("new")})
		}, 1},
		{"newer value, older live value and older delete", func(e *env) {
			e.do(proxy.Op{Kind: proxy.OpDPut, Key: k, Value: []byte("old")})
			e.clk.Advance(time.Second)
			e.do(proxy.Op{Kind: proxy.OpDDel, Key: k})
			e.clk.Advance(time.Second)
			e.do(proxy.Op{Kind: proxy.OpDPut, Key: k, Value: []byte("new")})
		}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tc.setup(e)
			it := e.mustValue("k", "new")
			if it.Siblings != tc.live {
				t.Fatalf("Siblings = %d, want %d live", it.Siblings, tc.live)
			}
			// "new" is not an integer: INCR decides on it, not on the older values.
			if err := e.doErr(proxy.Op{Kind: proxy.OpIncr, Key: []byte("k"), Delta: 1}); !errors.Is(err, proxy.ErrNotInteger) {
				t.Fatalf("INCR on \"new\": %v, want ErrNotInteger", err)
			}
		})
	}
}

func sorted(keys [][]byte) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, string(k))
	}
	slices.Sort(out)
	return out
}
