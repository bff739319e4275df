package coordinator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/vclock"
)

// A sealed node (the end of a leave) takes no data of any kind: writes it would
// coordinate, replica and hinted writes, batches, hints and local read repairs
// are refused or skipped, while reads and the other nodes' writes go on without
// it.
func TestSealTakesNoData(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestCluster(t, 4, nil)
		defer tc.Close()
		sealed := tc.names[0]
		ctx := context.Background()
		// A record written before the seal, which reads must still find.
		before := "before"
		if _, err := tc.cos[sealed].Put(ctx, []byte(before), nil, value("v"), WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		tc.cos[sealed].Seal()
		if !tc.cos[sealed].Sealed() {
			t.Fatal("Sealed() = false after Seal")
		}
		if rec, err := tc.cos[sealed].Get(ctx, []byte(before), ReadOptions{}); err != nil || rec.Empty() {
			t.Fatalf("read through the sealed node: %v, %v", rec, err)
		}
		owned := 0
		for i := range 40 {
			key := fmt.Sprint("k", i)
			if _, err := tc.cos[sealed].Put(ctx, []byte(key), nil, value("x"), WriteOptions{}); !errors.Is(err, ErrSealed) {
				t.Fatalf("%s: write through the sealed node: %v, want ErrSealed", key, err)
			}
			other := tc.names[1+i%3]
			if slices.Contains(tc.prefs(key), sealed) {
				owned++
			}
			if _, err := tc.cos[other].Put(ctx, []byte(key), nil, value("y"), WriteOptions{}); err != nil {
				t.Fatalf("%s: write through %s with %s sealed: %v", key, other, sealed, err)
			}
		}
		if owned == 0 {
			t.Fatal("no key had the sealed node among its owners: the test proves nothing")
		}
		rec := vclock.Update(vclock.Set{}, nil, "n9:1", value("r"), 1, 0)
		if err := tc.cos[sealed].HandleWrite(peer.WriteRequest{Key: []byte("r"), Record: record.String(rec)}); !errors.Is(err, ErrSealed) {
			t.Errorf("replica write: %v, want ErrSealed", err)
		}
		if err := tc.cos[sealed].HandleWrite(peer.WriteRequest{Key: []byte("h"), Record: record.String(rec), HintFor: tc.names[1]}); !errors.Is(err, ErrSealed) {
			t.Errorf("hinted write: %v, want ErrSealed", err)
		}
		for i, err := range tc.cos[sealed].HandleWriteBatch([]peer.WriteRequest{
			{Key: []byte("b1"), Record: record.String(rec)}, {Key: []byte("b2"), Record: record.String(rec), HintFor: tc.names[2]},
		}) {
			if !errors.Is(err, ErrSealed) {
				t.Errorf("batch write %d: %v, want ErrSealed", i, err)
			}
		}
		tc.cos[sealed].storeHint(tc.names[1], []byte("sh"), record.String(rec), time.Time{})
		synctest.Wait()
		st := tc.stores[sealed]
		if n, h := st.Count(), st.HintCount(); n != 1 || h != 0 {
			t.Errorf("the sealed node holds %d records and %d hints, want only %q and no hint", n, h, before)
		}
	})
}

// Seal waits for the local writes already admitted, and none is admitted after.
// (Real time: synctest cannot wait on a goroutine blocked on a mutex.)
func TestSealWaitsForWritesInProgress(t *testing.T) {
	co, _ := newCoordinator(t, 4, nil)
	defer co.Close()
	release, err := co.admitWrite()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { co.Seal(); close(done) }()
	select {
	case <-done:
		t.Fatal("Seal returned while a write was in progress")
	case <-time.After(50 * time.Millisecond):
	}
	release()
	<-done
	if _, err := co.admitWrite(); !errors.Is(err, ErrSealed) {
		t.Fatalf("a write admitted after Seal: %v", err)
	}
}
