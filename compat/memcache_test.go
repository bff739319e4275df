package compat

import (
	"testing"

	"github.com/bradfitz/gomemcache/memcache"
)

// TestGomemcache drives a real node with gomemcache, including gets/cas.
func TestGomemcache(t *testing.T) {
	p := startNode(t)
	c := memcache.New(p.Memcache)
	if err := c.Set(&memcache.Item{Key: "k", Value: []byte("v1"), Flags: 42}); err != nil {
		t.Fatal(err)
	}
	it, err := c.Get("k")
	if err != nil || string(it.Value) != "v1" || it.Flags != 42 {
		t.Fatalf("Get = %+v, %v", it, err)
	}
	it.Value = []byte("v2")
	if err := c.CompareAndSwap(it); err != nil {
		t.Fatalf("CAS with fresh unique: %v", err)
	}
	it.Value = []byte("v3")
	if err := c.CompareAndSwap(it); err != memcache.ErrCASConflict {
		t.Fatalf("CAS with stale unique: %v, want ErrCASConflict", err)
	}
	if err := c.Add(&memcache.Item{Key: "k", Value: []byte("x")}); err != memcache.ErrNotStored {
		t.Fatalf("Add existing: %v", err)
	}
	if err := c.Set(&memcache.Item{Key: "n", Value: []byte("18446744073709551615")}); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Increment("n", 2); err != nil || v != 1 {
		t.Fatalf("incr wrap = %d, %v", v, err)
	}
	if v, err := c.Decrement("n", 5); err != nil || v != 0 {
		t.Fatalf("decr floor = %d, %v", v, err)
	}
	m, err := c.GetMulti([]string{"k", "n", "missing"})
	if err != nil || len(m) != 2 || string(m["k"].Value) != "v2" {
		t.Fatalf("GetMulti = %v, %v", m, err)
	}
	if err := c.Delete("k"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get("k"); err != memcache.ErrCacheMiss {
		t.Fatalf("Get deleted: %v", err)
	}

	// The same data is visible over RESP: one store, two protocols.
	rc := newRedis(p.RESP, 2)
	defer rc.Close()
	if v, err := rc.Get(ctx(t), "n").Result(); err != nil || v != "0" {
		t.Fatalf("RESP GET of a memcached key = %q, %v", v, err)
	}
}

// TestMalformedMemcache checks memcached's error lines on the real process.
func TestMalformedMemcache(t *testing.T) {
	p := startNode(t)
	r := dialRaw(t, p.Memcache)
	r.send("bogus\r\n")
	if got := r.line(); got != "ERROR\r\n" {
		t.Fatalf("unknown command: %q", got)
	}
	long := make([]byte, 251)
	for i := range long {
		long[i] = 'k'
	}
	r.send("get " + string(long) + "\r\n")
	if got := r.line(); got != "CLIENT_ERROR bad command line format\r\n" {
		t.Fatalf("overlong key: %q", got)
	}
	r.send("set k 0 0 3\r\nabcdef\r\n")
	if got := r.line(); got != "CLIENT_ERROR bad data chunk\r\n" {
		t.Fatalf("long data block: %q", got)
	}
	// The connection is still usable (memcached keeps it).
	c := dialRaw(t, p.Memcache)
	c.send("version\r\n")
	if got := c.line(); len(got) < 8 || got[:8] != "VERSION " {
		t.Fatalf("version: %q", got)
	}
}
