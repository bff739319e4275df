package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/dynakv/dynakv/internal/memstore"
	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/vclock"
)

// recordingCaller answers replica writes like a replica whose writes of key
// "bad" fail, holds every call until release is closed, and records each
// message's type and write count.
type recordingCaller struct {
	release chan struct{}
	mu      sync.Mutex
	calls   []string // "write" or "batch of N"
}

func (c *recordingCaller) Call(ctx context.Context, _ string, typ peer.MsgType, req []byte) ([]byte, error) {
	select {
	case <-c.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch typ {
	case peer.MsgWrite:
		c.calls = append(c.calls, "write")
		w, err := peer.DecodeWriteRequest(req)
		if err == nil && string(w.Key) == "bad" {
			err = errors.New("disk full")
		}
		return peer.AppendEmpty(nil), err
	case peer.MsgWriteBatch:
		reqs, err := peer.DecodeWriteBatch(req)
		if err != nil {
			return nil, err
		}
		c.calls = append(c.calls, fmt.Sprintf("batch of %d", len(reqs)))
		errs := make([]error, len(reqs))
		for i, w := range reqs {
			if string(w.Key) == "bad" {
				errs[i] = errors.New("disk full")
			}
		}
		return peer.AppendBatchReply(nil, errs), nil
	}
	return nil, fmt.Errorf("unexpected message type %d", typ)
}

// TestWritesQueueBehindMessagesInFlight: while batchSlots messages to a node
// are in flight, further writes to it queue and then leave together in one
// batch; every writer learns its own write's outcome, a failed one included.
func TestWritesQueueBehindMessagesInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		caller := &recordingCaller{release: make(chan struct{})}
		peers := RemotePeers(caller)
		ctx := context.Background()
		write := func(key string) error {
			return peers.Write(ctx, "n2", peer.WriteRequest{Key: []byte(key), Record: record.String(vclock.Update(vclock.Set{}, nil, "n1:1", value(key), 1, 0))})
		}
		results := make(map[string]error)
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := func(key string) {
			wg.Go(func() {
				err := write(key)
				mu.Lock()
				results[key] = err
				mu.Unlock()
			})
		}
		// Two writes take both slots and wait in the caller...
		start("s1")
		synctest.Wait()
		start("s2")
		synctest.Wait()
		// ...so these queue behind them.
		for _, k := range []string{"q1", "bad", "q2", "q3"} {
			start(k)
		}
		synctest.Wait()
		close(caller.release)
		wg.Wait()
		want := map[string]bool{"s1": true, "s2": true, "q1": true, "bad": false, "q2": true, "q3": true}
		for key, ok := range want {
			if err := results[key]; (err == nil) != ok {
				t.Errorf("write %q: %v, want success %v", key, err, ok)
			}
		}
		caller.mu.Lock()
		defer caller.mu.Unlock()
		slices.Sort(caller.calls) // the second lone write and the batch race after the release
		got := fmt.Sprint(caller.calls)
		if got != "[batch of 4 write write]" {
			t.Fatalf("messages sent: %s; want two lone writes, then the four queued writes in one batch", got)
		}
	})
}

// TestHandleWriteBatch: a replica applies every write of a batch, each into its
// replica or its hints as addressed, its own records as one storage batch (which
// syncs once), hints one by one; a batch of hints alone syncs once.
func TestHandleWriteBatch(t *testing.T) {
	st := &syncCountingStore{Store: memstore.New(64)}
	co, err := New(Config{Actor: "n2:1", Node: "n2", Logger: slog.New(slog.DiscardHandler)}, st)
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	rec := func(v string) record.Record {
		return record.String(vclock.Update(vclock.Set{}, nil, "n1:1", value(v), 1, 0))
	}
	errs := co.HandleWriteBatch([]peer.WriteRequest{
		{Key: []byte("a"), Record: rec("va")},
		{Key: []byte("b"), Record: rec("vb")},
		{Key: []byte("c"), Record: rec("vc"), HintFor: "n3"},
		{Key: []byte("d"), Record: rec("vd"), HintFor: "n2"}, // a hint for itself is its own data
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	for _, k := range []string{"a", "b", "d"} {
		if got, found, _ := st.Get([]byte(k)); !found || !encodes(got, rec("v"+k)) {
			t.Errorf("replica record of %q = %v, %v", k, got, found)
		}
	}
	if _, found, _ := st.Get([]byte("c")); found {
		t.Error("a hinted write landed in the replica's own data")
	}
	if got, found, _ := st.GetHint("n3", []byte("c")); !found || !encodes(got, rec("vc")) {
		t.Errorf("hint for n3 = %v, %v", got, found)
	}
	if st.synced != 0 || st.deferred != 0 || st.syncs != 0 || st.batches != 1 || st.batched != 3 {
		t.Fatalf("synced commits %d, deferred %d, syncs %d, batches %d of %d writes; want one batch of 3",
			st.synced, st.deferred, st.syncs, st.batches, st.batched)
	}
	if errs := co.HandleWriteBatch([]peer.WriteRequest{{Key: []byte("e"), Record: rec("ve"), HintFor: "n3"}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if st.syncs != 1 || st.batches != 1 {
		t.Fatalf("a batch of one hint: syncs %d, batches %d; want one sync and no batch", st.syncs, st.batches)
	}
}
