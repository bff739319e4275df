package proxy_test

import (
	"context"
	"testing"

	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/internal/testnode"
	"github.com/dynakv/dynakv/proxy"
)

// TestNotWrittenReplyWaitsForWhatItRead: a read-modify-write that decides not to
// write (SET NX on an existing key, DEL of a missing one, cas mismatch, GETEX
// without options ...) answers from what it read, which may be another
// connection's write made in a pipelined batch and not synced yet. Its session
// must not take it for durable then: the session's Flush syncs before the reply
// leaves, so no reply depends on a write a crash could still lose.
func TestNotWrittenReplyWaitsForWhatItRead(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		first  proxy.Op // another connection's write, deferred and not synced
		second proxy.Op // decides not to write because of it
		status proxy.Status
	}{
		{"SET NX on a key set unsynced",
			proxy.Op{Kind: proxy.OpSet, Key: []byte("k"), Value: []byte("v")},
			proxy.Op{Kind: proxy.OpSet, Key: []byte("k"), Value: []byte("w"), Cond: proxy.CondNX}, proxy.NotStored},
		{"memcached replace on a key deleted unsynced",
			proxy.Op{Kind: proxy.OpDelete, Key: []byte("gone")},
			proxy.Op{Kind: proxy.OpSet, Key: []byte("gone"), Value: []byte("w"), Cond: proxy.CondXX}, proxy.NotStored},
		{"DEL of a key deleted unsynced",
			proxy.Op{Kind: proxy.OpDelete, Key: []byte("gone")},
			proxy.Op{Kind: proxy.OpDelete, Key: []byte("gone")}, proxy.NotFound},
		{"cas against a value set unsynced",
			proxy.Op{Kind: proxy.OpSet, Key: []byte("k"), Value: []byte("v")},
			proxy.Op{Kind: proxy.OpSet, Key: []byte("k"), Value: []byte("w"), Cond: proxy.CondCAS, CAS: 1}, proxy.Exists},
		{"GETEX reading a value set unsynced",
			proxy.Op{Kind: proxy.OpSet, Key: []byte("k"), Value: []byte("v")},
			proxy.Op{Kind: proxy.OpGetEx, Key: []byte("k")}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := &testnode.SyncCounter{}
			p := testnode.Proxy(t, testnode.Options{WrapStore: func(s coordinator.Store) coordinator.Store {
				sc.Store = s
				return sc
			}})
			// "gone" exists, durably, before the case runs.
			if _, err := p.Do(ctx, proxy.Op{Kind: proxy.OpSet, Key: []byte("gone"), Value: []byte("x")}); err != nil {
				t.Fatal(err)
			}
			// Connection A, in the middle of a pipelined batch: its batch syncs later.
			a := p.NewSession(func() bool { return true })
			if _, err := a.Do(ctx, tc.first); err != nil {
				t.Fatalf("first write: %v", err)
			}
			if deferred, synced, _ := sc.Counts(); synced >= deferred {
				t.Fatalf("the first write was synced already (%d of %d)", synced, deferred)
			}
			// Connection B, a lone command (DurableOnReturn) or in a batch.
			for _, more := range []bool{false, true} {
				b := p.NewSession(func() bool { return more })
				res, err := b.Do(ctx, tc.second)
				if err != nil {
					t.Fatal(err)
				}
				if res.Status != tc.status {
					t.Fatalf("status %s, want %s", statusName(res.Status), statusName(tc.status))
				}
				// What the front end does before the reply leaves.
				if err := b.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				if deferred, synced, _ := sc.Counts(); synced < deferred {
					t.Fatalf("more=%v: %s answered while %d of %d deferred writes were synced", more, tc.name, synced, deferred)
				}
				if _, err := a.Do(ctx, tc.first); err != nil { // unsynced again, for the next round
					t.Fatalf("first write: %v", err)
				}
			}
		})
	}
}
