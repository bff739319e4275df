package coordinator

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/vclock"
)

// Tombstone purge (repair/purge.go) rests on a bound: no request carrying a
// record runs more than RequestTimeout plus the shared-deadline slack
// (RequestTimeout/64) after the request that read the data began, and no hint of
// one is stored more than RequestTimeout + RequestTimeout/32 after it. These
// tests record every replica write's deadline and every hint's store time
// against those bounds.

// carrier records when the coordinator sends records to replicas (carrierPeers)
// or keeps them as hints (carrierStore).
type carrier struct {
	mu     sync.Mutex
	writes []string      // nodes written to, in order
	late   []string      // what ran or could run past the bound
	bound  time.Time     // the bound of the request under test's replica calls
	hbound time.Time     // and of its hints
	stall  time.Duration // how long storing a hint waits for its lock
	hints  []time.Time   // when hints were stored
}

type carrierPeers struct {
	Peers
	*carrier
}

type carrierStore struct {
	Store
	*carrier
}

func (c carrierPeers) Write(ctx context.Context, node string, req peer.WriteRequest) error {
	c.mu.Lock()
	c.writes = append(c.writes, node)
	if d, ok := ctx.Deadline(); !ok || d.After(c.bound) {
		c.late = append(c.late, "write to "+node+" with deadline "+d.Sub(c.bound).String()+" past the bound")
	}
	c.mu.Unlock()
	return c.Peers.Write(ctx, node, req)
}

func (c carrierStore) UpdateHint(owner string, key []byte, fn storage.UpdateFunc) (record.Record, error) {
	time.Sleep(c.stall)
	return c.Store.UpdateHint(owner, key, func(cur record.Record, found bool) (record.Record, error) {
		next, err := fn(cur, found)
		if err == nil {
			c.mu.Lock()
			if !time.Now().Before(c.hbound) {
				c.late = append(c.late, "hint for "+owner+" stored "+time.Since(c.hbound).String()+" past the bound")
			}
			c.hints = append(c.hints, time.Now())
			c.mu.Unlock()
		}
		return next, err
	})
}

func TestRecordsCarriedWithinTheRequestDeadline(t *testing.T) {
	const timeout = time.Second
	for _, tc := range []struct {
		name  string
		stall time.Duration
		hints bool // the scenario stores a hint
		run   func(co *Coordinator, cl *testCluster, prefs []string) error
	}{
		{
			// Read repair: a stale replica answers late; the repair written back
			// to it must not outlive the read's own deadline.
			name: "read repair after a slow stale reply",
			run: func(co *Coordinator, cl *testCluster, prefs []string) error {
				cl.net.Slow(prefs[1], 900*time.Millisecond)
				_, err := co.Get(context.Background(), []byte("k"), ReadOptions{})
				return err
			},
		},
		{
			// A read-modify-write whose read is slow: the replica writes that
			// carry what it read end by the request's deadline, not one
			// RequestTimeout after the read.
			name: "replica writes after a slow quorum read",
			run: func(co *Coordinator, cl *testCluster, prefs []string) error {
				cl.net.Slow(prefs[1], 500*time.Millisecond)
				cl.net.Slow(prefs[2], 500*time.Millisecond)
				_, err := co.Put(context.Background(), []byte("k"), nil, value("w"), WriteOptions{ReadFirst: true})
				return err
			},
		},
		{
			// A replica that never answers: its write times out at the deadline,
			// and its hint is kept in time.
			name:  "hint of a stalled replica",
			hints: true,
			run: func(co *Coordinator, cl *testCluster, prefs []string) error {
				cl.net.Slow(prefs[2], -1)
				_, err := co.Put(context.Background(), []byte("k"), nil, value("w"), WriteOptions{})
				return err
			},
		},
		{
			// The same, on a node whose hint store stalls (a paused process, a
			// long lock wait): the hint would carry the record past the bound.
			name:  "hint of a stalled replica on a stalled node",
			stall: 100 * time.Millisecond,
			run: func(co *Coordinator, cl *testCluster, prefs []string) error {
				cl.net.Slow(prefs[2], -1)
				_, err := co.Put(context.Background(), []byte("k"), nil, value("w"), WriteOptions{})
				return err
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cl := newTestCluster(t, 3, func(c *Config) { c.RequestTimeout = timeout })
				defer cl.Close()
				prefs := cl.prefs("k")
				self := prefs[0]
				// self and prefs[2] hold the new value, prefs[1] the old one.
				old := vclock.Update(vclock.Set{}, nil, "x:1", value("old"), 1, 1)
				cur := vclock.Update(old, old.Join(), "x:1", value("new"), 2, 1)
				for i, name := range prefs {
					r := cur
					if i == 1 {
						r = old
					}
					if _, err := cl.stores[name].Update([]byte("k"), func(record.Record, bool) (record.Record, error) { return record.String(r), nil }); err != nil {
						t.Fatal(err)
					}
				}
				cr := &carrier{stall: tc.stall}
				co, err := New(Config{Actor: self + ":9", Node: self, Cluster: cl.net.View(self),
					Peers:          carrierPeers{RemotePeers(cl.net.Caller(self)), cr},
					RequestTimeout: timeout, Logger: slog.New(slog.DiscardHandler)}, carrierStore{cl.stores[self], cr})
				if err != nil {
					t.Fatal(err)
				}
				defer co.Close()
				cr.bound = time.Now().Add(timeout + timeout/64)
				cr.hbound = time.Now().Add(timeout + timeout/32)
				if err := tc.run(co, cl, prefs); err != nil {
					t.Fatal(err)
				}
				time.Sleep(5 * timeout) // every background call is over
				synctest.Wait()
				cr.mu.Lock()
				defer cr.mu.Unlock()
				if len(cr.writes) == 0 {
					t.Fatal("no replica write: the scenario did not happen")
				}
				for _, l := range cr.late {
					t.Errorf("record carried past the request's deadline: %s", l)
				}
				if tc.hints && len(cr.hints) == 0 {
					t.Error("no hint kept for the stalled replica")
				}
			})
		})
	}
}
