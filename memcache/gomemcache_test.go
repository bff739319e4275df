package memcache

import (
	"errors"
	"fmt"
	"testing"
	"time"

	gomemcache "github.com/bradfitz/gomemcache/memcache"
)

// TestGomemcache drives the server with a stock client through its whole API.
func TestGomemcache(t *testing.T) {
	ts := startServer(t, serverOptions{})
	c := gomemcache.New(ts.addr)
	c.Timeout = ioTimeout
	defer c.Close()

	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	wantErr := func(what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Fatalf("%s: err %v, want %v", what, err, want)
		}
	}
	get := func(key string) *gomemcache.Item {
		t.Helper()
		it, err := c.Get(key)
		must("Get "+key, err)
		return it
	}

	must("Ping", c.Ping())

	must("Set", c.Set(&gomemcache.Item{Key: "k", Value: []byte("v1"), Flags: 42}))
	if it := get("k"); string(it.Value) != "v1" || it.Flags != 42 || it.CasID == 0 {
		t.Fatalf("Get = %+v", it)
	}
	_, err := c.Get("missing")
	wantErr("Get missing", err, gomemcache.ErrCacheMiss)

	// Add / Replace.
	wantErr("Add existing", c.Add(&gomemcache.Item{Key: "k", Value: []byte("x")}), gomemcache.ErrNotStored)
	must("Add new", c.Add(&gomemcache.Item{Key: "a", Value: []byte("1")}))
	wantErr("Replace missing", c.Replace(&gomemcache.Item{Key: "nope", Value: []byte("x")}), gomemcache.ErrNotStored)
	must("Replace", c.Replace(&gomemcache.Item{Key: "a", Value: []byte("2"), Flags: 7}))
	if it := get("a"); string(it.Value) != "2" || it.Flags != 7 {
		t.Fatalf("after Replace: %+v", it)
	}

	// Append / Prepend keep the flags.
	must("Append", c.Append(&gomemcache.Item{Key: "a", Value: []byte("3")}))
	must("Prepend", c.Prepend(&gomemcache.Item{Key: "a", Value: []byte("1")}))
	if it := get("a"); string(it.Value) != "123" || it.Flags != 7 {
		t.Fatalf("after Append/Prepend: %+v", it)
	}
	wantErr("Append missing", c.Append(&gomemcache.Item{Key: "nope", Value: []byte("x")}), gomemcache.ErrNotStored)
	wantErr("Prepend missing", c.Prepend(&gomemcache.Item{Key: "nope", Value: []byte("x")}), gomemcache.ErrNotStored)

	// gets / cas.
	it := get("k")
	it.Value = []byte("v2")
	must("CompareAndSwap fresh", c.CompareAndSwap(it))
	it.Value = []byte("v3")
	wantErr("CompareAndSwap stale", c.CompareAndSwap(it), gomemcache.ErrCASConflict)
	if got := get("k"); string(got.Value) != "v2" {
		t.Fatalf("after CAS: %q", got.Value)
	}
	gone := get("a")
	must("Delete a", c.Delete("a"))
	wantErr("CompareAndSwap deleted", c.CompareAndSwap(gone), gomemcache.ErrCacheMiss)

	// GetMulti.
	for i := range 50 {
		must("Set multi", c.Set(&gomemcache.Item{Key: fmt.Sprintf("m%d", i), Value: []byte(fmt.Sprint(i))}))
	}
	keys := []string{"missing", "k"}
	for i := range 50 {
		keys = append(keys, fmt.Sprintf("m%d", i))
	}
	m, err := c.GetMulti(keys)
	must("GetMulti", err)
	if len(m) != 51 || string(m["k"].Value) != "v2" || string(m["m49"].Value) != "49" {
		t.Fatalf("GetMulti = %d items", len(m))
	}

	// Increment / Decrement.
	must("Set n", c.Set(&gomemcache.Item{Key: "n", Value: []byte("18446744073709551615"), Flags: 3}))
	if v, err := c.Increment("n", 2); err != nil || v != 1 {
		t.Fatalf("Increment wrap = %d, %v", v, err)
	}
	if v, err := c.Decrement("n", 5); err != nil || v != 0 {
		t.Fatalf("Decrement floor = %d, %v", v, err)
	}
	if v, err := c.Increment("n", 41); err != nil || v != 41 {
		t.Fatalf("Increment = %d, %v", v, err)
	}
	if it := get("n"); it.Flags != 3 || string(it.Value) != "41" {
		t.Fatalf("incr kept flags? %+v", it)
	}
	_, err = c.Increment("nope", 1)
	wantErr("Increment missing", err, gomemcache.ErrCacheMiss)
	_, err = c.Decrement("nope", 1)
	wantErr("Decrement missing", err, gomemcache.ErrCacheMiss)
	if _, err := c.Increment("k", 1); err == nil {
		t.Fatal("Increment of a non-number succeeded")
	}

	// Expiration, Touch, GetAndTouch on the fake clock.
	must("Set ttl", c.Set(&gomemcache.Item{Key: "ttl", Value: []byte("x"), Expiration: 10}))
	ts.clock.Advance(9 * time.Second)
	get("ttl")
	must("Touch", c.Touch("ttl", 100))
	ts.clock.Advance(50 * time.Second)
	get("ttl")
	wantErr("Touch missing", c.Touch("nope", 10), gomemcache.ErrCacheMiss)
	it, err = c.GetAndTouch("ttl", 5)
	if err != nil || string(it.Value) != "x" {
		t.Fatalf("GetAndTouch = %+v, %v", it, err)
	}
	ts.clock.Advance(5 * time.Second)
	_, err = c.Get("ttl")
	wantErr("Get expired", err, gomemcache.ErrCacheMiss)
	_, err = c.GetAndTouch("ttl", 5)
	wantErr("GetAndTouch missing", err, gomemcache.ErrCacheMiss)
	abs := int32(testEpoch.Unix() + 3600)
	must("Set absolute", c.Set(&gomemcache.Item{Key: "abs", Value: []byte("x"), Expiration: abs}))
	get("abs")
	ts.clock.Set(time.Unix(int64(abs), 0))
	_, err = c.Get("abs")
	wantErr("Get absolute expired", err, gomemcache.ErrCacheMiss)

	// Delete / DeleteAll / FlushAll.
	must("Delete", c.Delete("k"))
	wantErr("Delete again", c.Delete("k"), gomemcache.ErrCacheMiss)
	must("Set", c.Set(&gomemcache.Item{Key: "k", Value: []byte("v")}))
	must("DeleteAll", c.DeleteAll())
	_, err = c.Get("k")
	wantErr("Get after DeleteAll", err, gomemcache.ErrCacheMiss)
	must("Set", c.Set(&gomemcache.Item{Key: "k", Value: []byte("v")}))
	must("FlushAll", c.FlushAll())
	_, err = c.Get("m1")
	wantErr("Get after FlushAll", err, gomemcache.ErrCacheMiss)

	// Binary values survive.
	bin := make([]byte, 256)
	for i := range bin {
		bin[i] = byte(i)
	}
	must("Set binary", c.Set(&gomemcache.Item{Key: "bin", Value: bin}))
	if it := get("bin"); string(it.Value) != string(bin) {
		t.Fatal("binary value changed")
	}

	// An oversized value is a server error, and the connection stays usable.
	big := make([]byte, ts.px.MaxValueBytes()+1)
	if err := c.Set(&gomemcache.Item{Key: "big", Value: big}); err == nil {
		t.Fatal("Set of an oversized value succeeded")
	}
	must("Ping after oversize", c.Ping())
	must("Set max", c.Set(&gomemcache.Item{Key: "max", Value: big[:len(big)-1]}))
	if it := get("max"); len(it.Value) != len(big)-1 {
		t.Fatalf("max value: %d bytes", len(it.Value))
	}
}
