package repair_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dynakv/dynakv/internal/memstore"
	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/repair"
)

// Tombstone purge rests on a bound (purge.go): no request carrying a record runs
// later than its sender's request timeout after the record was read. These tests
// check it for hint delivery and for anti-entropy's fetch, merge and push.

// readLog is a hint store that notes when each hint was last read.
type readLog struct {
	*memstore.Store
	mu   sync.Mutex
	read map[string]time.Time
}

func (s *readLog) note(key []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.read[string(key)] = time.Now()
}

func (s *readLog) ScanHints(owner string, from []byte, fn func(key []byte, rec record.Record) bool) error {
	return s.Store.ScanHints(owner, from, func(key []byte, rec record.Record) bool {
		s.note(key)
		return fn(key, rec)
	})
}

func (s *readLog) GetHint(owner string, key []byte) (record.Record, bool, error) {
	s.note(key)
	return s.Store.GetHint(owner, key)
}

// TestHintDeliveredWithinTimeoutOfItsRead: a page of hints delivered one at a
// time to a slow owner. Each delivery must carry the hint as read at most one
// request timeout before the delivery's deadline, not as the page's scan read it
// many deliveries earlier.
func TestHintDeliveredWithinTimeoutOfItsRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &readLog{Store: memstore.New(16), read: map[string]time.Time{}}
		m := newMembers(t, "a", "b")
		const timeout = time.Second
		var mu sync.Mutex
		var late []string
		w := repair.WriterFunc(func(ctx context.Context, node string, d peer.WriteRequest) error {
			st.mu.Lock()
			read := st.read[string(d.Key)]
			st.mu.Unlock()
			if dl, ok := ctx.Deadline(); !ok || dl.Sub(read) > timeout {
				mu.Lock()
				late = append(late, fmt.Sprintf("%s sent with a deadline %v after its read", d.Key, dl.Sub(read)))
				mu.Unlock()
			}
			time.Sleep(400 * time.Millisecond) // a slow owner
			return nil
		})
		for i := range 5 {
			putHint(t, st.Store, "b", fmt.Sprint("k", i), stringRecord("a:1", "v"))
		}
		h, err := repair.NewHandoff(repair.HandoffConfig{Store: st, Cluster: m, Writer: w, Node: "a",
			Concurrency: 1, RequestTimeout: timeout, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := h.RunOnce(context.Background()); err != nil || n != 5 {
			t.Fatalf("RunOnce = %d, %v", n, err)
		}
		for _, l := range late {
			t.Error(l)
		}
	})
}

// TestAAEPushWithinTimeoutOfItsFetch: anti-entropy fetches a peer's records,
// merges them here and pushes the merge back; the push carries what the fetch
// read and must end within one request timeout of the fetch.
func TestAAEPushWithinTimeoutOfItsFetch(t *testing.T) {
	c := newAAECluster(t, 4, 2, "a", "b")
	const timeout = 10 * time.Second // AAEConfig.RequestTimeout's default
	k := c.keyOwnedBy("a", "b")
	c.write(k, nil, "va", 0, false, "a")
	c.write(k, nil, "vb", 0, false, "b")
	var mu sync.Mutex
	var fetched time.Time
	var late []string
	c.intercept = func(ctx context.Context, node string, typ peer.MsgType) {
		mu.Lock()
		defer mu.Unlock()
		switch typ {
		case peer.MsgFetch:
			fetched = time.Now()
			time.Sleep(50 * time.Millisecond) // a slow fetch
		case peer.MsgPush:
			if dl, ok := ctx.Deadline(); !ok || dl.Sub(fetched) > timeout {
				late = append(late, fmt.Sprintf("push to %s with a deadline %v after the fetch", node, dl.Sub(fetched)))
			}
		}
	}
	c.round()
	c.intercept = nil
	a, _ := c.get("a", k)
	b, _ := c.get("b", k)
	if enc(a) != enc(b) {
		t.Fatal("the round did not repair the key")
	}
	for _, l := range late {
		t.Error(l)
	}
}
