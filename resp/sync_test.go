package resp

import (
	"fmt"
	"strings"
	"testing"

	"github.com/dynakv/dynakv/coordinator"
	"github.com/dynakv/dynakv/internal/testnode"
)

// TestRepliesFollowWALSync: a pipelined batch of writes shares one WAL sync, every
// write is covered by a sync before its reply arrives, and reads never sync.
func TestRepliesFollowWALSync(t *testing.T) {
	sc := &testnode.SyncCounter{}
	ts := startServer(t, func(_ *Config, o *testnode.Options) {
		o.WrapStore = func(s coordinator.Store) coordinator.Store { sc.Store = s; return sc }
	})
	r := dialRaw(t, ts.addr)
	const n = 200
	var b strings.Builder
	for i := 0; i < n; i++ {
		k := fmt.Sprint("k", i)
		fmt.Fprintf(&b, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\nv\r\n", len(k), k)
	}
	r.send(b.String())
	for i := 0; i < n; i++ {
		if got := r.read(); got != "+OK\r\n" {
			t.Fatalf("reply %d = %q", i, got)
		}
		// Every write whose reply has arrived was synced before it.
		if deferred, synced, _ := sc.Counts(); synced < int64(i+1) {
			t.Fatalf("reply %d arrived with %d of %d writes synced", i, synced, deferred)
		}
	}
	deferred, synced, syncs := sc.Counts()
	if deferred != n || synced != n {
		t.Fatalf("deferred %d, synced %d, want %d", deferred, synced, n)
	}
	if syncs >= n/2 {
		t.Fatalf("%d syncs for one pipelined batch of %d writes: not shared", syncs, n)
	}
	if got := r.do("GET", "k1"); got != "$1\r\nv\r\n" {
		t.Fatalf("GET reply %q", got)
	}
	if _, _, after := sc.Counts(); after != syncs {
		t.Fatalf("a read synced the WAL (%d -> %d syncs)", syncs, after)
	}
}
