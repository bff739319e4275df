package bench

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/redcon"
)

// fakeCache is a RESP server that answers GET and SET from a map and records every
// command it receives, in order. With forget set it never stores (every GET
// misses), as a cache with no room would.
type fakeCache struct {
	forget bool

	mu   sync.Mutex
	m    map[string]string
	cmds []string // "GET key", "SET key"
}

// serveFake starts f on a loopback port for the test's lifetime.
func serveFake(t *testing.T, f *fakeCache) string {
	t.Helper()
	f.m = map[string]string{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := redcon.NewServer("", f.handle, nil, nil)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = ln.Close()
		_ = srv.Close()
		<-done
	})
	return ln.Addr().String()
}

func (f *fakeCache) handle(c redcon.Conn, cmd redcon.Command) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := strings.ToUpper(string(cmd.Args[0]))
	if len(cmd.Args) > 1 {
		f.cmds = append(f.cmds, name+" "+string(cmd.Args[1]))
	}
	switch {
	case name == "GET" && len(cmd.Args) == 2:
		if v, ok := f.m[string(cmd.Args[1])]; ok {
			c.WriteBulkString(v)
		} else {
			c.WriteNull()
		}
	case name == "SET" && len(cmd.Args) == 3:
		if !f.forget {
			f.m[string(cmd.Args[1])] = string(cmd.Args[2])
		}
		c.WriteString("OK")
	default:
		c.WriteError("ERR unknown command")
	}
}

func (f *fakeCache) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cmds...)
}

func cacheConfig(addr string) Config {
	cfg := smallConfig(ProtoRESP, addr)
	cfg.Workload.Pattern = PatternCache
	cfg.Workload.Gets, cfg.Workload.Sets = 1, 0
	return cfg
}

// TestCachePatternFillsAMiss: over one connection without pipelining, the first GET
// of a key misses, the next request is the SET of that key, and the GETs after it
// hit; the result counts one miss, the hits and one SET.
func TestCachePatternFillsAMiss(t *testing.T) {
	f := &fakeCache{}
	cfg := cacheConfig(serveFake(t, f))
	cfg.Conns, cfg.Pipeline, cfg.Requests = 1, 1, 5
	cfg.Workload.Keys = 1
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"GET key:000000000000", "SET key:000000000000", "GET key:000000000000", "GET key:000000000000", "GET key:000000000000"}
	if got := f.commands(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("commands %q; want %q", got, want)
	}
	g, _ := res.Op(OpGet)
	s, _ := res.Op(OpSet)
	if res.Hits != 3 || res.Misses != 1 || res.HitRatio != 0.75 || g.Count != 4 || s.Count != 1 || res.Pattern != PatternCache {
		t.Errorf("hits %d, misses %d, ratio %v, GETs %d, SETs %d, pattern %q", res.Hits, res.Misses, res.HitRatio, g.Count, s.Count, res.Pattern)
	}
}

// TestCachePatternPipelined: with batches of 4, the misses of a batch are SET at
// the start of the next one, before its new GETs; nothing is filled twice from
// one miss and every SET follows a miss of its key.
func TestCachePatternPipelined(t *testing.T) {
	f := &fakeCache{}
	cfg := cacheConfig(serveFake(t, f))
	cfg.Conns, cfg.Pipeline, cfg.Requests = 1, 4, 400
	cfg.Workload.Keys, cfg.Workload.Dist = 30, DistZipfian
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmds := f.commands()
	missed := map[string]int{} // misses of a key not yet followed by a SET
	stored := map[string]bool{}
	var misses, sets int64
	for i, c := range cmds {
		op, key, _ := strings.Cut(c, " ")
		if op == "SET" {
			if missed[key] == 0 {
				t.Fatalf("command %d: %s without a miss before it", i, c)
			}
			// The fills of a batch come first in the next: the batch boundary is
			// a multiple of 4, and the commands before it in this batch are SETs.
			for j := i - i%4; j < i; j++ {
				if !strings.HasPrefix(cmds[j], "SET ") {
					t.Fatalf("command %d: %s after a GET of its batch (%q)", i, c, cmds[i-i%4:i+1])
				}
			}
			missed[key]--
			stored[key] = true
			sets++
		} else if !stored[key] {
			missed[key]++
			misses++
		}
	}
	if len(stored) < 10 {
		t.Errorf("%d keys stored: want most of the 30 filled", len(stored))
	}
	g, _ := res.Op(OpGet)
	s, _ := res.Op(OpSet)
	if res.Hits+res.Misses != g.Count || res.Misses != misses || s.Count != sets || sets < misses-int64(cfg.Pipeline) {
		t.Errorf("hits %d + misses %d, GETs %d, SETs %d; the server saw %d misses and %d SETs", res.Hits, res.Misses, g.Count, s.Count,
			misses, sets)
	}
	if g.Count+s.Count != cfg.Requests {
		t.Errorf("%d GETs + %d SETs; want %d requests", g.Count, s.Count, cfg.Requests)
	}
}

// TestCachePatternNoRoom: against a server that keeps nothing every GET misses and
// every miss is filled, so half the requests are SETs and the hit ratio is 0; in
// the mix pattern with the ratio 1:0 the misses are counted but never filled.
func TestCachePatternNoRoom(t *testing.T) {
	for _, pattern := range []string{PatternCache, PatternMix} {
		f := &fakeCache{forget: true}
		cfg := cacheConfig(serveFake(t, f))
		cfg.Workload.Pattern = pattern
		cfg.Conns, cfg.Pipeline, cfg.Requests = 2, 8, 800
		res, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		g, _ := res.Op(OpGet)
		s, _ := res.Op(OpSet)
		if res.Hits != 0 || res.Misses != g.Count || res.HitRatio != 0 {
			t.Errorf("%s: hits %d, misses %d of %d GETs, ratio %v", pattern, res.Hits, res.Misses, g.Count, res.HitRatio)
		}
		wantSets := g.Count - int64(cfg.Conns*cfg.Pipeline) // the last batches' fills do not fit the budget
		if pattern == PatternMix {
			wantSets = 0
		}
		if s.Count < wantSets || s.Count > max(wantSets, 0)+int64(cfg.Conns*cfg.Pipeline) || (pattern == PatternMix && s.Count != 0) {
			t.Errorf("%s: %d SETs after %d missed GETs", pattern, s.Count, g.Count)
		}
	}
}

// TestCachePatternAgainstDynakv runs the cache pattern over both protocols against
// an in-process dynakv node (which never evicts): every GET is a hit or a miss,
// nearly all of them hit once the few keys are filled, and no request fails.
func TestCachePatternAgainstDynakv(t *testing.T) {
	for _, proto := range []string{ProtoRESP, ProtoMemcache} {
		t.Run(proto, func(t *testing.T) {
			cfg := smallConfig(proto, serve(t, proto))
			cfg.Workload.Pattern, cfg.Workload.Gets, cfg.Workload.Sets = PatternCache, 1, 0
			cfg.Workload.Keys = 50
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			g, _ := res.Op(OpGet)
			s, _ := res.Op(OpSet)
			if g.Errors != 0 || s.Errors != 0 || res.Hits+res.Misses != g.Count || s.Count > res.Misses ||
				res.Misses > int64(cfg.Workload.Keys*cfg.Conns*cfg.Pipeline) || res.HitRatio < 0.5 {
				t.Errorf("GET %+v, SET count %d, hits %d, misses %d, ratio %v", g, s.Count, res.Hits, res.Misses, res.HitRatio)
			}
		})
	}
}

// TestWarmCache: Warm in the cache pattern runs the workload (on another seed)
// rather than setting every key.
func TestWarmCache(t *testing.T) {
	f := &fakeCache{}
	cfg := cacheConfig(serveFake(t, f))
	cfg.Conns, cfg.Pipeline, cfg.Requests = 1, 1, 20
	cfg.Workload.Keys = 1000
	if err := Warm(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if n := len(f.commands()); n != 20 {
		t.Errorf("warm-up sent %d commands; want the run's 20", n)
	}
	cfg.Workload.Pattern = PatternMix
	if err := Warm(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if n := len(f.commands()); n != 20+1000 {
		t.Errorf("prefill sent %d commands; want 1000 more", n-20)
	}
}

func TestHitRatio(t *testing.T) {
	r := fakeResult(t, "a", ProtoRESP, 10, 0, 100, time.Second)
	if r.HitRatio != 0 || r.Hits != 0 || r.hitRatio("GET") != "-" {
		t.Errorf("no hits nor misses: %v %d %q", r.HitRatio, r.Hits, r.hitRatio("GET"))
	}
	r.Hits, r.Misses = 3, 1
	r.summarize()
	o := fakeResult(t, "a", ProtoRESP, 10, 0, 100, time.Second)
	o.Hits, o.Misses = 0, 4
	o.summarize()
	if r.HitRatio != 0.75 || o.HitRatio != 0 {
		t.Errorf("ratios %v, %v; want 0.75, 0", r.HitRatio, o.HitRatio)
	}
	if err := r.Merge(o); err != nil {
		t.Fatal(err)
	}
	if r.Hits != 3 || r.Misses != 5 || r.HitRatio != 3.0/8 || r.hitRatio("GET") != "0.3750" || r.hitRatio("SET") != "-" {
		t.Errorf("merged: %d hits, %d misses, ratio %v (%q)", r.Hits, r.Misses, r.HitRatio, r.hitRatio("GET"))
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"hits":3`, `"misses":5`, `"hit_ratio":0.375`, `"pattern":"mix"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s: %s", want, b)
		}
	}
	c := fakeResult(t, "a", ProtoRESP, 10, 0, 100, time.Second)
	c.Pattern = PatternCache
	if err := r.Merge(c); err == nil {
		t.Error("merged a cache-pattern result into a mix one")
	}
}

func TestWorkloadPattern(t *testing.T) {
	w := DefaultWorkload()
	if w.Mix() != "1:1" {
		t.Errorf("mix label %q", w.Mix())
	}
	w.Pattern, w.Gets, w.Sets = PatternCache, 1, 0
	if err := w.Validate(); err != nil || w.Mix() != "cache 1:0" {
		t.Errorf("cache: %v, %q", err, w.Mix())
	}
	w.Pattern = ""
	if err := w.Validate(); err != nil || w.Mix() != "1:0" {
		t.Errorf("no pattern: %v, %q", err, w.Mix())
	}
	for name, mut := range map[string]func(*Workload){
		"unknown pattern": func(w *Workload) { w.Pattern = "lru" },
		"cache, no GETs":  func(w *Workload) { w.Pattern, w.Gets, w.Sets = PatternCache, 0, 1 },
	} {
		b := DefaultWorkload()
		mut(&b)
		if err := b.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v; want ErrConfig", name, err)
		}
	}
}
