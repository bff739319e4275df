package compat

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

// gomemcacheWorkload drives d with gomemcache through its whole API. It writes
// through the first node and reads through the last; a client given every node
// (gomemcache then shards keys over them) checks GetMulti across nodes.
func gomemcacheWorkload(t *testing.T, d deployment) {
	addrs := d.memcache()
	w, r, all := memcache.New(addrs[0]), memcache.New(addrs[len(addrs)-1]), memcache.New(addrs...)
	for _, c := range []*memcache.Client{w, r, all} {
		c.Timeout = 5 * time.Second
		defer c.Close()
	}
	check := func(what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Fatalf("%s: %v, want %v", what, err, want)
		}
	}
	value := func(c *memcache.Client, key string) string {
		t.Helper()
		it, err := c.Get(key)
		if err != nil {
			t.Fatalf("Get %s: %v", key, err)
		}
		return string(it.Value)
	}
	item := func(key, val string) *memcache.Item { return &memcache.Item{Key: key, Value: []byte(val)} }

	check("Ping", w.Ping(), nil)
	check("Ping all", all.Ping(), nil)
	check("Set", w.Set(&memcache.Item{Key: "mc:k", Value: []byte("v1"), Flags: 42}), nil)
	it, err := r.Get("mc:k")
	if err != nil || string(it.Value) != "v1" || it.Flags != 42 || it.CasID == 0 {
		t.Fatalf("Get = %+v, %v", it, err)
	}
	_, err = r.Get("mc:missing")
	check("Get missing", err, memcache.ErrCacheMiss)

	// CompareAndSwap with a unique read through another node.
	it.Value = []byte("v2")
	check("CompareAndSwap fresh", w.CompareAndSwap(it), nil)
	it.Value = []byte("v3")
	check("CompareAndSwap stale", w.CompareAndSwap(it), memcache.ErrCASConflict)
	check("CompareAndSwap missing", w.CompareAndSwap(&memcache.Item{Key: "mc:missing", Value: []byte("x"), CasID: 1}), memcache.ErrCacheMiss)
	if v := value(r, "mc:k"); v != "v2" {
		t.Fatalf("after CompareAndSwap: %q", v)
	}

	check("Add existing", w.Add(item("mc:k", "x")), memcache.ErrNotStored)
	check("Add new", w.Add(item("mc:a", "b")), nil)
	check("Replace missing", w.Replace(item("mc:missing", "x")), memcache.ErrNotStored)
	check("Replace", w.Replace(&memcache.Item{Key: "mc:a", Value: []byte("b"), Flags: 7}), nil)
	check("Append", w.Append(item("mc:a", "c")), nil)
	check("Prepend", w.Prepend(item("mc:a", "a")), nil)
	check("Append missing", w.Append(item("mc:missing", "x")), memcache.ErrNotStored)
	check("Prepend missing", w.Prepend(item("mc:missing", "x")), memcache.ErrNotStored)
	if it, err := r.Get("mc:a"); err != nil || string(it.Value) != "abc" || it.Flags != 7 {
		t.Fatalf("after Replace/Append/Prepend: %+v, %v", it, err)
	}

	// Increment / Decrement, with memcached's 64-bit wrap and floor at 0.
	check("Set counter", w.Set(item("mc:n", "18446744073709551614")), nil)
	if v, err := w.Increment("mc:n", 3); err != nil || v != 1 {
		t.Fatalf("Increment past 2^64 = %d, %v", v, err)
	}
	if v, err := w.Decrement("mc:n", 5); err != nil || v != 0 {
		t.Fatalf("Decrement below 0 = %d, %v", v, err)
	}
	if v, err := w.Increment("mc:n", 10); err != nil || v != 10 {
		t.Fatalf("Increment = %d, %v", v, err)
	}
	if v := value(r, "mc:n"); v != "10" {
		t.Fatalf("counter read elsewhere = %q", v)
	}
	_, err = w.Increment("mc:missing", 1)
	check("Increment missing", err, memcache.ErrCacheMiss)
	if _, err := w.Decrement("mc:k", 1); err == nil || !strings.Contains(err.Error(), "non-numeric value") {
		t.Fatalf("Decrement of a non-number: %v", err)
	}

	// Touch and expiry: a negative expiration is already past.
	check("Touch", w.Touch("mc:k", 3600), nil)
	check("Touch missing", w.Touch("mc:missing", 10), memcache.ErrCacheMiss)
	if it, err := r.GetAndTouch("mc:k", 3600); err != nil || string(it.Value) != "v2" {
		t.Fatalf("GetAndTouch = %+v, %v", it, err)
	}
	check("Set expired", w.Set(&memcache.Item{Key: "mc:gone", Value: []byte("x"), Expiration: -1}), nil)
	_, err = r.Get("mc:gone")
	check("Get expired", err, memcache.ErrCacheMiss)

	// GetMulti through one node and sharded over all of them.
	keys := []string{"mc:missing"}
	for i := range 40 {
		key := fmt.Sprintf("mc:multi%d", i)
		keys = append(keys, key)
		check("Set sharded", all.Set(item(key, fmt.Sprint(i))), nil)
	}
	for _, c := range []*memcache.Client{r, all} {
		m, err := c.GetMulti(keys)
		if err != nil || len(m) != 40 || string(m["mc:multi39"].Value) != "39" {
			t.Fatalf("GetMulti = %d items, %v", len(m), err)
		}
	}

	// Client-side checks and server errors.
	check("Set with a space in the key", w.Set(item("bad key", "x")), memcache.ErrMalformedKey)
	big := make([]byte, 2<<20)
	if err := w.Set(&memcache.Item{Key: "mc:big", Value: big}); err == nil {
		t.Fatal("Set of a 2 MiB value succeeded")
	}
	check("Ping after an error", w.Ping(), nil)

	// Delete, DeleteAll, FlushAll: flush_all empties every node.
	check("Delete", w.Delete("mc:a"), nil)
	check("Delete again", w.Delete("mc:a"), memcache.ErrCacheMiss)
	_, err = r.Get("mc:a")
	check("Get deleted", err, memcache.ErrCacheMiss)
	check("DeleteAll", w.DeleteAll(), nil)
	_, err = r.Get("mc:k")
	check("Get after DeleteAll", err, memcache.ErrCacheMiss)
	check("Set after DeleteAll", w.Set(item("mc:k", "again")), nil)
	check("FlushAll", all.FlushAll(), nil)
	for _, key := range []string{"mc:k", "mc:multi7"} {
		_, err = r.Get(key)
		check("Get after FlushAll", err, memcache.ErrCacheMiss)
	}

	// The same data is visible over RESP: one store, two protocols.
	check("Set for RESP", w.Set(item("mc:shared", "both")), nil)
	rc := newRedis(d.resp()[len(addrs)-1], 2)
	defer rc.Close()
	if v, err := rc.Get(ctx(t), "mc:shared").Result(); err != nil || v != "both" {
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
