// Package testnode builds an in-memory single-node stack (storage, coordinator,
// proxy) for the front ends' tests, so they run without node/ or sockets of their own.
package testnode

import (
	"sync"
	"testing"
	"time"

	"github.com/lni/goutils/leaktest"

	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/proxy"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/storage"
)

// Options tunes the stack. The zero value is fine.
type Options struct {
	Now           func() time.Time
	MaxValueBytes int
	// WrapStore, when set, wraps the store the coordinator writes through (to count
	// or fail calls).
	WrapStore func(coordinator.Store) coordinator.Store
	// Memory is the proxy's memory gate (proxy.Config.Memory); nil: no limit.
	Memory proxy.Memory
}

// Proxy returns a proxy over an in-memory store, closed when t ends.
func Proxy(t testing.TB, opt Options) *proxy.Proxy {
	t.Helper()
	st, err := storage.Open(storage.Config{InMemory: true, Now: opt.Now, ReapInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var cs coordinator.Store = st
	if opt.WrapStore != nil {
		cs = opt.WrapStore(st)
	}
	co, err := coordinator.New(coordinator.Config{Actor: "test", Now: opt.Now}, cs)
	if err != nil {
		t.Fatal(err)
	}
	return proxy.New(proxy.Config{Now: opt.Now, MaxValueBytes: opt.MaxValueBytes, Memory: opt.Memory}, co)
}

// SyncCounter wraps a coordinator.Store and counts deferred writes and WAL syncs, so
// front-end tests can check that every write a reply acknowledges was synced first.
type SyncCounter struct {
	coordinator.Store
	mu       sync.Mutex
	deferred int64 // writes made with UpdateNoSync
	synced   int64 // deferred writes covered by the last Sync
	syncs    int64
}

// UpdateNoSync implements coordinator.Store.
func (c *SyncCounter) UpdateNoSync(key []byte, fn storage.UpdateFunc) (record.Record, error) {
	rec, err := c.Store.UpdateNoSync(key, fn)
	c.mu.Lock()
	c.deferred++
	c.mu.Unlock()
	return rec, err
}

// Sync implements coordinator.Store.
func (c *SyncCounter) Sync() error {
	c.mu.Lock()
	upTo := c.deferred
	c.mu.Unlock()
	err := c.Store.Sync()
	c.mu.Lock()
	c.synced, c.syncs = max(c.synced, upTo), c.syncs+1
	c.mu.Unlock()
	return err
}

// Counts returns the deferred writes so far, how many of them a sync covered, and the
// number of syncs.
func (c *SyncCounter) Counts() (deferred, synced, syncs int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deferred, c.synced, c.syncs
}

// NoLeaks runs body as a subtest and then fails t if a goroutine started inside it
// is still running. A stack built with Proxy inside body is closed by the subtest's
// cleanup before the check, so the store's goroutines are checked too.
func NoLeaks(t *testing.T, body func(t *testing.T)) {
	t.Helper()
	defer leaktest.AfterTest(t)()
	t.Run("no-leaks", body)
}
