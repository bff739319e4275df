package coordinator

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/vclock"
)

// Regression tests for issue 15's finding 2: a write supersedes exactly the dots
// its context covers, across a partition drop and regain.

// TestRegainedPartitionKeepsOwnOlderDots: node X coordinates v1, which reaches
// every replica; X then drops the key's partition (a handoff) and holds it again
// without the record (the partition came back after a leave or a remove). A DPUT
// with an empty context (or a DDEL with one) through X covers nothing, so v1
// must survive as a sibling on every replica once they sync. Before partition
// epochs, X's new dot jumped to its floor and its run claimed v1's dot as seen.
func TestRegainedPartitionKeepsOwnOlderDots(t *testing.T) {
	for _, tt := range []struct {
		name string
		v2   vclock.Value
		want []string
	}{
		{"DPUT with an empty context", value("v2"), []string{"v1", "v2"}},
		{"DDEL with an empty context", vclock.Value{Tombstone: true, Timestamp: 2}, []string{"<tombstone>", "v1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tc := newTestCluster(t, 3, nil)
				defer tc.Close()
				ctx := context.Background()
				key := []byte("k")
				x := tc.prefs("k")[0]
				if _, err := tc.cos[x].Put(ctx, key, nil, value("v1"), WriteOptions{}); err != nil {
					t.Fatal(err)
				}
				synctest.Wait() // v1 is on all three replicas
				st := tc.stores[x]
				if err := st.DropPartition(st.PartitionOf(key)); err != nil {
					t.Fatal(err)
				}
				if !tc.local(x, "k").Empty() {
					t.Fatal("the drop left the record")
				}
				if _, err := tc.cos[x].Put(ctx, key, nil, tt.v2, WriteOptions{}); err != nil {
					t.Fatal(err)
				}
				synctest.Wait()
				got, err := tc.cos[x].Get(ctx, key, ReadOptions{R: 3})
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(data(got), tt.want) {
					t.Fatalf("after the write through X synced: %v (%s), want %v: a write with an empty context superseded X's older dot",
						data(got), fmtRecord(got), tt.want)
				}
				synctest.Wait() // the read repaired X
				for _, n := range tc.names {
					if rec := tc.local(n, "k"); !slices.Equal(data(rec), tt.want) {
						t.Fatalf("replica %s holds %v (%s), want %v", n, data(rec), fmtRecord(rec), tt.want)
					}
				}
			})
		})
	}
}

// TestRegainedPartitionOnStorage is the same story on a Pebble store: the drop
// (here FLUSHALL's DropAll too, and a drop followed by a restart of the node)
// must not let X's next dot claim its older ones.
func TestRegainedPartitionOnStorage(t *testing.T) {
	for _, tt := range []struct {
		name    string
		all     bool // DropAll instead of DropPartition
		restart bool // close and reopen the store (and a new coordinator) after the drop
	}{
		{name: "DropPartition"},
		{name: "DropAll", all: true},
		{name: "DropPartition then restart", restart: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			cfg := storage.Config{Dir: t.TempDir(), Partitions: 16, Sync: storage.SyncNone,
				Logger: slog.New(slog.DiscardHandler), ReapInterval: time.Hour}
			xs, err := storage.Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { xs.Close() }()
			x, err := New(Config{Actor: "x:1"}, xs)
			if err != nil {
				t.Fatal(err)
			}
			key := []byte("k")
			v1, err := writtenRecord(x.Put(ctx, key, nil, value("v1"), WriteOptions{}))
			if err != nil {
				t.Fatal(err)
			}
			replica := v1 // what another replica keeps
			if tt.all {
				err = xs.DropAll()
			} else {
				err = xs.DropPartition(xs.PartitionOf(key))
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.restart {
				if err := xs.Close(); err != nil {
					t.Fatal(err)
				}
				if xs, err = storage.Open(cfg); err != nil {
					t.Fatal(err)
				}
				if x, err = New(Config{Actor: "x:1"}, xs); err != nil {
					t.Fatal(err)
				}
			}
			v2, err := writtenRecord(x.Put(ctx, key, nil, value("v2"), WriteOptions{}))
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range []record.Record{record.String(vclock.Sync(replica.Str, v2.Str)), record.String(vclock.Sync(v2.Str, replica.Str))} {
				if got := data(m); !slices.Equal(got, []string{"v1", "v2"}) {
					t.Fatalf("replicas synced to %v (%s), want v1 and v2", got, fmtRecord(m))
				}
			}
		})
	}
}
