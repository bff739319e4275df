package memcache

import (
	"fmt"
	"strings"
	"testing"

	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/internal/testnode"
)

// TestRepliesFollowWALSync: a pipelined batch of sets shares one WAL sync, every
// set is covered by a sync before its STORED arrives, and gets never sync.
func TestRepliesFollowWALSync(t *testing.T) {
	sc := &testnode.SyncCounter{}
	ts := startServer(t, serverOptions{wrapStore: func(s coordinator.Store) coordinator.Store { sc.Store = s; return sc }})
	r := dialRaw(t, ts.addr)
	const n = 200
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "set k%d 0 0 1\r\nv\r\n", i)
	}
	r.send(b.String())
	for i := 0; i < n; i++ {
		if got := r.line(); got != "STORED\r\n" {
			t.Fatalf("reply %d = %q", i, got)
		}
		if deferred, synced, _ := sc.Counts(); synced < int64(i+1) {
			t.Fatalf("reply %d arrived with %d of %d writes synced", i, synced, deferred)
		}
	}
	_, _, syncs := sc.Counts()
	if syncs >= n/2 {
		t.Fatalf("%d syncs for one pipelined batch of %d sets: not shared", syncs, n)
	}
	r.send("get k1\r\n")
	for _, want := range []string{"VALUE k1 0 1\r\n", "v\r\n", "END\r\n"} {
		if got := r.line(); got != want {
			t.Fatalf("get: %q, want %q", got, want)
		}
	}
	if _, _, after := sc.Counts(); after != syncs {
		t.Fatalf("a get synced the WAL (%d -> %d syncs)", syncs, after)
	}
}
