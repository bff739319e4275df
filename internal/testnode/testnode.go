// Package testnode builds an in-memory single-node stack (storage, coordinator,
// proxy) for the front ends' tests, so they run without node/ or sockets of their own.
package testnode

import (
	"testing"
	"time"

	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/proxy"
	"github.com/dynakv/dynakv/storage"
)

// Options tunes the stack. The zero value is fine.
type Options struct {
	Now           func() time.Time
	MaxValueBytes int
}

// Proxy returns a proxy over an in-memory store, closed when t ends.
func Proxy(t testing.TB, opt Options) *proxy.Proxy {
	t.Helper()
	st, err := storage.Open(storage.Config{InMemory: true, Now: opt.Now, ReapInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	co, err := coordinator.New(coordinator.Config{Actor: "test", Now: opt.Now}, st)
	if err != nil {
		t.Fatal(err)
	}
	return proxy.New(proxy.Config{Now: opt.Now, MaxValueBytes: opt.MaxValueBytes}, co)
}
