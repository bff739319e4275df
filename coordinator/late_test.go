package coordinator

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dynakv/dynakv/internal/memstore"
	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/vclock"
)

// pausingStore stalls before every Update of the local replica for pause (fake
// time in a synctest bubble): a coordinator that is stopped (SIGSTOP), or waits
// long for a key's lock, between accepting a write and applying it.
type pausingStore struct {
	Store
	pause time.Duration
}

func (s *pausingStore) Update(key []byte, fn storage.UpdateFunc) (record.Record, error) {
	time.Sleep(s.pause)
	return s.Store.Update(key, fn)
}

func (s *pausingStore) UpdateNoSync(key []byte, fn storage.UpdateFunc) (record.Record, error) {
	time.Sleep(s.pause)
	return s.Store.UpdateNoSync(key, fn)
}

// TestModifyNotAppliedLate (finding 7): a write whose request deadline has passed
// when it is about to be applied is refused with ErrLate (which reads as a
// deadline) and leaves nothing on any replica; one in time is applied.
func TestModifyNotAppliedLate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		nodes   int           // 0: a single node without Cluster
		timeout time.Duration // the request context's; 0: none (a front end's)
		pause   time.Duration
		late    bool
	}{
		{"single node, in time", 0, time.Second, 100 * time.Millisecond, false},
		{"single node, paused past the context's deadline", 0, time.Second, 2 * time.Second, true},
		{"single node without a deadline is never late", 0, 0, time.Minute, false},
		{"cluster, in time", 3, 0, 100 * time.Millisecond, false},
		{"cluster, paused past RequestTimeout", 3, 0, 2 * time.Second, true},
		{"cluster, paused past the context's deadline", 3, 500 * time.Millisecond, 700 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var co *Coordinator
				var stores []*memstore.Store
				if tc.nodes == 0 {
					st := memstore.New(64)
					stores = append(stores, st)
					var err error
					if co, err = New(Config{Actor: "n1"}, &pausingStore{Store: st, pause: tc.pause}); err != nil {
						t.Fatal(err)
					}
				} else {
					cl := newTestCluster(t, tc.nodes, func(c *Config) { c.RequestTimeout = time.Second })
					defer cl.Close()
					for _, name := range cl.names {
						stores = append(stores, cl.stores[name])
					}
					// The coordinator is the key's first replica; its local
					// replica store pauses.
					self := cl.prefs("k")[0]
					c := Config{Actor: self + ":1", Node: self, Cluster: cl.net.View(self),
						Peers: RemotePeers(cl.net.Caller(self)), RequestTimeout: time.Second,
						Logger: slog.New(slog.DiscardHandler)}
					var err error
					if co, err = New(c, &pausingStore{Store: cl.stores[self], pause: tc.pause}); err != nil {
						t.Fatal(err)
					}
					defer co.Close()
				}
				ctx := context.Background()
				if tc.timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tc.timeout)
					defer cancel()
				}
				_, err := co.Put(ctx, []byte("k"), nil, value("v"), WriteOptions{})
				synctest.Wait()
				if !tc.late {
					if err != nil {
						t.Fatalf("Put in time: %v", err)
					}
					if got := data(localRecord(t, stores[0], "k")); len(got) != 1 || got[0] != "v" {
						t.Fatalf("record after Put in time: %v", got)
					}
					return
				}
				if !errors.Is(err, ErrLate) || !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("late Put = %v, want ErrLate (a deadline)", err)
				}
				for i, st := range stores {
					if rec := localRecord(t, st, "k"); !rec.Empty() {
						t.Fatalf("store %d holds %v after a late Put", i, data(rec))
					}
				}
			})
		})
	}
}

func localRecord(t *testing.T, st *memstore.Store, key string) record.Record {
	t.Helper()
	rec, _, err := st.Get([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// TestServeLateReplicaWrite: a replica write whose caller's deadline has passed
// (the transport hands the handler a context that says so) is not applied.
func TestServeLateReplicaWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memstore.New(64)
		co, err := New(Config{Actor: "n1"}, st)
		if err != nil {
			t.Fatal(err)
		}
		rec := vclock.Update(vclock.Set{}, nil, "n2:1", value("v"), 1, 1)
		one := peer.WriteRequest{Key: []byte("one"), Record: record.String(rec)}.AppendBinary(nil)
		batch := peer.AppendWriteBatch(nil, [][]byte{peer.WriteRequest{Key: []byte("batched"), Record: record.String(rec)}.AppendBinary(nil)})

		expired, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		time.Sleep(2 * time.Second)
		for _, m := range []struct {
			typ peer.MsgType
			req []byte
		}{{peer.MsgWrite, one}, {peer.MsgWriteBatch, batch}} {
			if _, err := serve(expired, co, m.typ, m.req); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Serve(%d) past the deadline: %v", m.typ, err)
			}
		}
		for _, k := range []string{"one", "batched"} {
			if r := localRecord(t, st, k); !r.Empty() {
				t.Fatalf("%s applied late: %v", k, data(r))
			}
		}
		inTime, cancel2 := context.WithTimeout(context.Background(), time.Second)
		defer cancel2()
		if _, err := serve(inTime, co, peer.MsgWrite, one); err != nil {
			t.Fatal(err)
		}
		if r := localRecord(t, st, "one"); r.Empty() {
			t.Fatal("a replica write in time was not applied")
		}
	})
}
