package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dynakv/dynakv/internal/testnode"
	"github.com/dynakv/dynakv/proxy"
)

// model is the simple thing of STYLE.md #13: Redis string semantics as a map, with
// expiry checked lazily against the same clock. It shares no code with proxy/.
type model struct {
	m map[string]modelVal
}

type modelVal struct {
	v   string
	exp int64 // unix ms; 0: none
}

func (m *model) lookup(k string, now int64) (modelVal, bool) {
	v, ok := m.m[k]
	if !ok || (v.exp != 0 && v.exp <= now) {
		return modelVal{}, false
	}
	return v, true
}

var canonicalInt = regexp.MustCompile(`^(0|-?[1-9][0-9]*)$`)

var (
	minInt64 = big.NewInt(math.MinInt64)
	maxInt64 = big.NewInt(math.MaxInt64)
)

// modelOp is one step of a random history.
type modelOp struct {
	kind    string // set, del, incr, append, expire, get, tick
	key     string
	value   string
	ttl     time.Duration // set: 0 none; expire: relative new expiry
	cond    proxy.Cond
	keepTTL bool
	delta   int64
}

func (o modelOp) String() string {
	switch o.kind {
	case "set":
		return fmt.Sprintf("SET %s %q ttl=%v cond=%d keepttl=%v", o.key, o.value, o.ttl, o.cond, o.keepTTL)
	case "incr":
		return fmt.Sprintf("INCRBY %s %d", o.key, o.delta)
	case "append":
		return fmt.Sprintf("APPEND %s %q", o.key, o.value)
	case "expire":
		return fmt.Sprintf("PEXPIRE %s %v cond=%d", o.key, o.ttl, o.cond)
	case "tick":
		return fmt.Sprintf("(clock +%v)", o.ttl)
	}
	return fmt.Sprintf("%s %s", strings.ToUpper(o.kind), o.key)
}

// outcome is what a client observes of one step.
type outcome struct {
	status proxy.Status
	found  bool
	value  string
	exp    int64
	n      int64
	err    string // "", "notint", "overflow"
}

func (m *model) apply(o modelOp, now int64) outcome {
	cur, alive := m.lookup(o.key, now)
	switch o.kind {
	case "get":
		return outcome{found: alive, value: cur.v, exp: cur.exp}
	case "set":
		if (o.cond == proxy.CondNX && alive) || (o.cond == proxy.CondXX && !alive) {
			return outcome{status: proxy.NotStored}
		}
		nv := modelVal{v: o.value}
		if o.ttl != 0 {
			nv.exp = now + o.ttl.Milliseconds()
		}
		if o.keepTTL && alive {
			nv.exp = cur.exp
		}
		m.m[o.key] = nv
		return outcome{status: proxy.Stored}
	case "del":
		if !alive {
			return outcome{status: proxy.NotFound}
		}
		delete(m.m, o.key)
		return outcome{status: proxy.Stored}
	case "incr":
		n := new(big.Int)
		if alive {
			if !canonicalInt.MatchString(cur.v) {
				return outcome{err: "notint"}
			}
			n.SetString(cur.v, 10)
			if n.Cmp(minInt64) < 0 || n.Cmp(maxInt64) > 0 {
				return outcome{err: "notint"}
			}
		}
		n.Add(n, big.NewInt(o.delta))
		if n.Cmp(minInt64) < 0 || n.Cmp(maxInt64) > 0 {
			return outcome{err: "overflow"}
		}
		m.m[o.key] = modelVal{v: n.String(), exp: cur.exp} // cur.exp is 0 when not alive
		return outcome{status: proxy.Stored, n: n.Int64()}
	case "append":
		nv := modelVal{v: cur.v + o.value, exp: cur.exp}
		m.m[o.key] = nv
		return outcome{status: proxy.Stored, n: int64(len(nv.v))}
	case "expire":
		if !alive {
			return outcome{status: proxy.NotFound}
		}
		at := now + o.ttl.Milliseconds()
		ok := true
		switch o.cond {
		case proxy.CondNX:
			ok = cur.exp == 0
		case proxy.CondXX:
			ok = cur.exp != 0
		case proxy.CondGT: // no expiry: infinite TTL, nothing is greater
			ok = cur.exp != 0 && at > cur.exp
		case proxy.CondLT:
			ok = cur.exp == 0 || at < cur.exp
		}
		if !ok {
			return outcome{status: proxy.NotStored}
		}
		if at <= now {
			delete(m.m, o.key)
		} else {
			m.m[o.key] = modelVal{v: cur.v, exp: at}
		}
		return outcome{status: proxy.Stored}
	}
	panic("unknown model op " + o.kind)
}

func runProxy(p *proxy.Proxy, o modelOp, now int64) outcome {
	ctx := context.Background()
	var op proxy.Op
	switch o.kind {
	case "get":
		op = proxy.Op{Kind: proxy.OpGet}
	case "set":
		op = proxy.Op{Kind: proxy.OpSet, Value: []byte(o.value), Cond: o.cond, KeepTTL: o.keepTTL}
		if o.ttl != 0 {
			op.Expiry = now + o.ttl.Milliseconds()
		}
	case "del":
		op = proxy.Op{Kind: proxy.OpDelete}
	case "incr":
		op = proxy.Op{Kind: proxy.OpIncr, Delta: o.delta}
	case "append":
		op = proxy.Op{Kind: proxy.OpAppend, Value: []byte(o.value)}
	case "expire":
		op = proxy.Op{Kind: proxy.OpExpire, Cond: o.cond, Expiry: now + o.ttl.Milliseconds()}
	}
	op.Key = []byte(o.key)
	res, err := p.Do(ctx, op)
	switch {
	case errors.Is(err, proxy.ErrNotInteger):
		return outcome{err: "notint"}
	case errors.Is(err, proxy.ErrOverflow):
		return outcome{err: "overflow"}
	case err != nil:
		return outcome{err: err.Error()}
	}
	switch o.kind {
	case "get":
		return outcome{found: res.Found, value: string(res.Item.Value), exp: res.Item.Expiry}
	case "incr", "append":
		return outcome{status: res.Status, n: res.Int}
	}
	return outcome{status: res.Status}
}

func randomOp(rng *rand.Rand) modelOp {
	keys := []string{"a", "b", "c", "d"}
	values := []string{"0", "1", "-1", "42", "01", "+1", " 1", "-0", "abc", "", "x y",
		"9223372036854775807", "-9223372036854775808", "9223372036854775806", "1.5"}
	deltas := []int64{1, -1, 7, -100, math.MaxInt64, math.MinInt64, 0}
	conds := []proxy.Cond{proxy.CondNone, proxy.CondNone, proxy.CondNX, proxy.CondXX, proxy.CondGT, proxy.CondLT}
	o := modelOp{key: keys[rng.IntN(len(keys))]}
	switch r := rng.IntN(100); {
	case r < 25:
		o.kind = "get"
	case r < 45:
		o.kind = "set"
		o.value = values[rng.IntN(len(values))]
		if rng.IntN(3) == 0 {
			o.ttl = time.Duration(1+rng.IntN(5000)) * time.Millisecond
		}
		o.cond = conds[rng.IntN(4)] // none, none, NX, XX
		o.keepTTL = o.ttl == 0 && rng.IntN(4) == 0
	case r < 53:
		o.kind = "del"
	case r < 68:
		o.kind = "incr"
		o.delta = deltas[rng.IntN(len(deltas))]
	case r < 76:
		o.kind = "append"
		o.value = values[rng.IntN(len(values))]
	case r < 88:
		o.kind = "expire"
		o.ttl = time.Duration(rng.IntN(6000)-1000) * time.Millisecond
		o.cond = conds[rng.IntN(len(conds))]
	default:
		o.kind = "tick"
		o.ttl = time.Duration(rng.IntN(2000)) * time.Millisecond
	}
	return o
}

// TestProxyAgainstModel runs random histories of SET/DEL/INCR/APPEND/EXPIRE/GET and
// clock ticks against the proxy (through testnode, reaper running) and against the
// map model, and requires the same observable outcome at every step. A failure
// prints its seed and the history.
func TestProxyAgainstModel(t *testing.T) {
	seeds, steps := 30, 600
	if testing.Short() {
		seeds = 5
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			clk := newFakeClock()
			p := testnode.Proxy(t, testnode.Options{Now: clk.Now})
			m := &model{m: map[string]modelVal{}}
			rng := rand.New(rand.NewPCG(seed, 0xd1a))
			var history []string
			for i := range steps {
				o := randomOp(rng)
				history = append(history, o.String())
				if o.kind == "tick" {
					clk.Advance(o.ttl)
					continue
				}
				now := clk.Now().UnixMilli()
				want := m.apply(o, now)
				got := runProxy(p, o, now)
				if got != want {
					t.Fatalf("seed %d step %d: %s\n got  %+v\n want %+v\nhistory:\n  %s",
						seed, i, o, got, want, strings.Join(history, "\n  "))
				}
			}
			// The keyspace agrees too.
			now := clk.Now().UnixMilli()
			var want []string
			for k := range m.m {
				if _, ok := m.lookup(k, now); ok {
					want = append(want, k)
				}
			}
			slices.Sort(want)
			keys, err := p.Keys(context.Background(), "*")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, k := range keys {
				got = append(got, string(k))
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("seed %d: KEYS * = %v, model has %v", seed, got, want)
			}
		})
	}
}
