package repair_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dynakv/dynakv/internal/fakeclock"
	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/peer/peertest"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/repair"
	"github.com/dynakv/dynakv/ring"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/tictac"
	"github.com/dynakv/dynakv/vclock"
)

// aaeNode is one replica: a store, its trees and its anti-entropy, answering
// its peers through mux.
type aaeNode struct {
	name  string
	st    *storage.Store
	trees *tictac.Trees
	aae   *repair.AAE
	mux   *peer.Mux
}

// aaeCluster is nodes wired to each other in one process, over a
// peertest.Network (without faults).
type aaeCluster struct {
	t     testing.TB
	q, n  int
	clock *fakeclock.Clock
	ms    *members
	net   *peertest.Network
	nodes map[string]*aaeNode
	bytes atomic.Int64 // bytes of the requests and replies served
	grace time.Duration
	// maxKeysPerSec is the nodes' AAEConfig.MaxKeysPerSec.
	maxKeysPerSec int
	// slept is the fake time the nodes' purges slept (see sleep); between, when
	// set, runs once at the next such sleep: between a purge's two checks.
	slept   atomic.Int64
	between atomic.Pointer[func()]
	// intercept, when set, sees every call before it is served.
	intercept func(ctx context.Context, node string, typ peer.MsgType)
	// sealed names the nodes whose AAEConfig.Sealed reports true.
	sealed sync.Map
}

// sleep is the nodes' AAEConfig.Sleep: it advances the shared fake clock.
func (c *aaeCluster) sleep(ctx context.Context, d time.Duration) error {
	c.clock.Advance(d)
	c.slept.Add(int64(d))
	if f := c.between.Swap(nil); f != nil {
		(*f)()
	}
	return ctx.Err()
}

func newAAECluster(t testing.TB, q, n int, names ...string) *aaeCluster {
	t.Helper()
	return newAAEClusterLimited(t, q, n, 1<<30, names...)
}

// newAAEClusterLimited is newAAECluster with the nodes' anti-entropy throttled to
// maxKeysPerSec (in real time).
func newAAEClusterLimited(t testing.TB, q, n, maxKeysPerSec int, names ...string) *aaeCluster {
	t.Helper()
	c := &aaeCluster{t: t, q: q, n: n, clock: fakeclock.New(time.UnixMilli(1_700_000_000_000)),
		nodes: map[string]*aaeNode{}, grace: time.Hour, maxKeysPerSec: maxKeysPerSec}
	c.ms = &members{dead: map[string]bool{}}
	c.setMembers(names...)
	net, err := peertest.NewNetwork(1, q, 0, names...)
	if err != nil {
		t.Fatal(err)
	}
	c.net = net
	for _, name := range names {
		c.addNode(name)
	}
	return c
}

func (c *aaeCluster) setMembers(names ...string) {
	ms := make([]ring.Member, len(names))
	for i, name := range names {
		ms[i] = ring.Member{Name: name}
	}
	rg, err := ring.New(c.q, ms)
	if err != nil {
		c.t.Fatal(err)
	}
	c.ms.setRing(rg)
}

func (c *aaeCluster) addNode(name string) *aaeNode {
	c.t.Helper()
	trees := tictac.NewTrees(c.q)
	// A memtable (it grows as needed) that holds every record a test writes, so
	// that reads never reach an sstable: in a -race build Pebble records a stack
	// trace for every sstable iterator it opens (its leak check), which took half
	// of TestAAEExchangeIsProportionalToTheDifference's 45 s. What is tested here
	// is the exchange, not Pebble's levels (storage's own tests flush and compact).
	st, err := storage.Open(storage.Config{InMemory: true, Partitions: c.q, Observer: trees, MemTableBytes: 256 << 20,
		Logger: slog.New(slog.DiscardHandler), ReapInterval: time.Hour, Now: c.clock.Now})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { st.Close() })
	a, err := repair.NewAAE(repair.AAEConfig{
		Node: name, Store: st, Trees: trees, Cluster: c.ms, N: c.n,
		Caller: c.net.Caller(name), MaxKeysPerSec: c.maxKeysPerSec, TombstoneGrace: c.grace,
		Now: c.clock.Now, Sleep: c.sleep, Logger: slog.New(slog.DiscardHandler),
		Sealed: func() bool { _, ok := c.sealed.Load(name); return ok },
	})
	if err != nil {
		c.t.Fatal(err)
	}
	nd := &aaeNode{name: name, st: st, trees: trees, aae: a, mux: peer.NewMux()}
	a.Register(nd.mux)
	c.nodes[name] = nd
	c.net.Start(name, aaeServer{c, nd})
	return nd
}

// aaeServer serves a node's requests with its mux, after the cluster's
// intercept, counting the bytes.
type aaeServer struct {
	c  *aaeCluster
	nd *aaeNode
}

func (s aaeServer) ServeCluster(ctx context.Context, from string, typ uint8, req []byte) ([]byte, error) {
	if s.c.intercept != nil {
		s.c.intercept(ctx, s.nd.name, peer.MsgType(typ))
	}
	rep, err := s.nd.mux.ServeCluster(ctx, from, typ, req)
	s.c.bytes.Add(int64(len(req) + len(rep)))
	return rep, err
}

// setDown takes a node off the network (calls to and from it fail) and makes
// it look dead, or brings it back.
func (c *aaeCluster) setDown(name string, down bool) {
	if down {
		c.net.Crash(name)
	} else {
		c.net.Start(name, aaeServer{c, c.nodes[name]})
	}
	c.ms.setDead(name, down)
}

// round runs one anti-entropy round on every node that is up, in name order.
func (c *aaeCluster) round() {
	c.t.Helper()
	for _, name := range slices.Sorted(maps.Keys(c.nodes)) {
		if !c.net.Up(name) {
			continue
		}
		if err := c.nodes[name].aae.RunOnce(context.Background()); err != nil {
			c.t.Fatalf("%s: round: %v", name, err)
		}
	}
}

// write applies a client write of data at coordinator actor to the given nodes'
// replicas directly (a write that reached only those replicas), returning the record.
// rounds runs n rounds a minute apart: enough for a tombstone purge, whose two
// checks are at least a request timeout apart.
func (c *aaeCluster) rounds(n int) {
	c.t.Helper()
	for range n {
		c.round()
		c.clock.Advance(time.Minute)
	}
}

func (c *aaeCluster) write(key string, ctx vclock.Clock, data string, expiry int64, tomb bool, nodes ...string) record.Record {
	c.t.Helper()
	v := vclock.Value{Data: []byte(data), Timestamp: c.clock.Millis(), Expiry: expiry, Tombstone: tomb}
	var out record.Record
	first := c.nodes[nodes[0]]
	rec, err := first.st.Update([]byte(key), func(cur record.Record, _ bool) (record.Record, error) {
		return record.String(vclock.Update(cur.Str, ctx, first.name, v, c.clock.Millis(), 1)), nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
	out = rec
	for _, name := range nodes[1:] {
		if _, err := c.nodes[name].st.Update([]byte(key), func(cur record.Record, _ bool) (record.Record, error) {
			return record.String(vclock.Sync(cur.Str, rec.Str)), nil
		}); err != nil {
			c.t.Fatal(err)
		}
	}
	return out
}

func (c *aaeCluster) get(node, key string) (record.Record, bool) {
	c.t.Helper()
	rec, found, err := c.nodes[node].st.Get([]byte(key))
	if err != nil {
		c.t.Fatal(err)
	}
	return rec, found
}

func enc(r record.Record) string { return string(r.AppendBinary(nil)) }

// owners returns key's N owners under the current ring.
func (c *aaeCluster) owners(key string) []string {
	rg := c.ms.Ring()
	return rg.Replicas(rg.Partition([]byte(key)), c.n)
}

// checkPlacement fails unless every key is held by exactly its owners, with equal
// records, and holds want's value.
func (c *aaeCluster) checkPlacement(keys []string) {
	c.t.Helper()
	for _, k := range keys {
		owners := c.owners(k)
		var ref string
		for name := range c.nodes {
			if !c.net.Up(name) {
				continue
			}
			rec, found := c.get(name, k)
			if slices.Contains(owners, name) != found {
				c.t.Fatalf("key %s: on %s = %v, owners %v", k, name, found, owners)
			}
			if !found {
				continue
			}
			if ref == "" {
				ref = enc(rec)
			} else if enc(rec) != ref {
				c.t.Fatalf("key %s: replicas differ", k)
			}
		}
	}
}

func TestAAEConvergesReplicasThatMissedWrites(t *testing.T) {
	c := newAAECluster(t, 16, 3, "a", "b", "c")
	var keys []string
	for i := range 500 {
		k := fmt.Sprintf("k%03d", i)
		keys = append(keys, k)
		owners := c.owners(k)
		// Each key reaches only some of its owners: the first two, or only the last.
		if i%3 == 0 {
			c.write(k, nil, "v"+k, 0, false, owners[2])
		} else {
			c.write(k, nil, "v"+k, 0, false, owners[:2]...)
		}
	}
	// A conflicting pair: written concurrently on two replicas, it must end as
	// siblings everywhere.
	owners := c.owners("conflict")
	c.write("conflict", nil, "x", 0, false, owners[0])
	c.write("conflict", nil, "y", 0, false, owners[1])
	c.round()
	c.checkPlacement(append(keys, "conflict"))
	rec, _ := c.get(owners[2], "conflict")
	if rec.Str.Len() != 2 {
		t.Fatalf("conflict has %d siblings on the third owner, want 2", rec.Str.Len())
	}
	for _, k := range keys {
		rec, _ := c.get(c.owners(k)[0], k)
		if sibs := rec.Str.Siblings(); len(sibs) != 1 || string(sibs[0].Value.Data) != "v"+k {
			t.Fatalf("%s: %v", k, sibs)
		}
	}
	m := c.nodes["a"].aae.Metrics()
	if m.Exchanges == 0 || m.KeysRepaired == 0 {
		t.Fatalf("metrics = %+v", m)
	}
	// A second round finds everything equal and moves nothing.
	before := c.totalRecordsMoved()
	c.round()
	if after := c.totalRecordsMoved(); after != before {
		t.Fatalf("a round over equal replicas moved %d records", after-before)
	}
}

func (c *aaeCluster) totalRecordsMoved() int64 {
	var n int64
	for _, nd := range c.nodes {
		m := nd.aae.Metrics()
		n += m.RecordsSent + m.RecordsFetched
	}
	return n
}

// TestAAEExchangeIsProportionalToTheDifference: 1 differing key among 100,000
// moves one record, and lists only that key's segment.
func TestAAEExchangeIsProportionalToTheDifference(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 200,000 records")
	}
	c := newAAECluster(t, 1, 2, "a", "b")
	const total = 100_000
	for i := range total {
		k := []byte(fmt.Sprintf("key-%06d", i))
		rec := vclock.Update(vclock.Set{}, nil, "a", vclock.Value{Data: k, Timestamp: 1}, 1, 1)
		for _, nd := range c.nodes {
			if _, err := nd.st.UpdateNoSync(k, func(record.Record, bool) (record.Record, error) { return record.String(rec), nil }); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.write("key-000042", nil, "changed", 0, false, "a")
	c.bytes.Store(0)
	c.round()
	m := c.nodes["a"].aae.Metrics()
	t.Logf("1 differing key of %d: records fetched %d, sent %d, keys listed %d, bytes %d",
		total, m.RecordsFetched, m.RecordsSent, m.KeysListed, c.bytes.Load())
	if m.RecordsFetched+m.RecordsSent != 2 || m.KeysRepaired != 1 {
		t.Fatalf("moved %d+%d records, repaired %d; want one fetched and one sent",
			m.RecordsFetched, m.RecordsSent, m.KeysRepaired)
	}
	// One segment of 1024 holds about 100 of the keys, on each side.
	if m.KeysListed > 2*total/tictac.Segments*2 {
		t.Fatalf("listed %d keys for one differing key", m.KeysListed)
	}
	if a, b := c.get("a", "key-000042"); !b {
		t.Fatal("lost the key")
	} else if rb, _ := c.get("b", "key-000042"); enc(a) != enc(rb) {
		t.Fatal("replicas still differ")
	}
}

// TestAAEDoesNotResurrectExpiredValues: an expired value reads as absent on every
// replica whether it was reaped there (a tombstone) or not yet (an expired value);
// anti-entropy moves such records like any other, and replicas converge on the
// reaped form.
func TestAAEDoesNotResurrectExpiredValues(t *testing.T) {
	c := newAAECluster(t, 4, 2, "a", "b")
	exp := c.clock.Millis() + 1000
	c.write("short", nil, "v", exp, false, "a", "b")
	c.write("other", nil, "w", exp, false, "b") // only b has it, and it expires
	c.clock.Advance(2 * time.Second)
	// a reaps; b has not yet.
	if n, err := c.nodes["a"].st.Reap(100); err != nil || n != 1 {
		t.Fatalf("reap = %d, %v", n, err)
	}
	c.round()
	now := c.clock.Millis()
	for _, k := range []string{"short", "other"} {
		ra, _ := c.get("a", k)
		rb, _ := c.get("b", k)
		if enc(ra) != enc(rb) {
			t.Fatalf("%s: replicas differ after a round: %v vs %v", k, ra.Str.Siblings(), rb.Str.Siblings())
		}
		for v := range ra.Str.Values() {
			if v.Live(now) {
				t.Fatalf("%s: a live value came back: %v", k, ra.Str.Siblings())
			}
		}
	}
	if r, _ := c.get("b", "short"); !allTombstones(r) {
		t.Fatalf("b did not take a's reaped form of short: %v", r.Str.Siblings())
	}
	// Both reap what is left; the next round moves nothing.
	for _, n := range []string{"a", "b"} {
		if _, err := c.nodes[n].st.Reap(100); err != nil {
			t.Fatal(err)
		}
	}
	before := c.totalRecordsMoved()
	c.round()
	if moved := c.totalRecordsMoved() - before; moved != 0 {
		t.Fatalf("replicas that reaped alike still moved %d records", moved)
	}
}

// TestAAEExpiredOverwriteStaysHistory is finding 1 of issue 15: SET k old reaches
// all three owners, SET k new EX 1 reaches two; once new expires those two reap it.
// Anti-entropy must then supersede the third owner's old, never spread it.
func TestAAEExpiredOverwriteStaysHistory(t *testing.T) {
	c := newAAECluster(t, 4, 3, "a", "b", "c")
	owners := c.owners("k")
	old := c.write("k", nil, "old", 0, false, owners...)
	c.clock.Advance(time.Millisecond)
	c.write("k", old.Str.Join(), "new", c.clock.Millis()+1000, false, owners[:2]...)
	c.clock.Advance(2 * time.Second)
	for _, o := range owners[:2] {
		if n, err := c.nodes[o].st.Reap(100); err != nil || n != 1 {
			t.Fatalf("%s: reap = %d, %v", o, n, err)
		}
	}
	c.round()
	c.round()
	for _, o := range owners {
		rec, found := c.get(o, "k")
		if !found {
			t.Fatalf("%s lost the record", o)
		}
		if w, ok := vclock.Winner(rec.Str.Siblings()); !ok || !w.Tombstone {
			t.Fatalf("%s: plain GET would answer %v: %v", o, w, rec.Str.Siblings())
		}
		for _, sib := range rec.Str.Siblings() {
			if string(sib.Data) == "old" {
				t.Fatalf("%s holds the overwritten value again: %v", o, rec.Str.Siblings())
			}
		}
	}
}

// allTombstones reports whether every value of r is a tombstone.
func allTombstones(r record.Record) bool {
	for v := range r.Str.Values() {
		if !v.Tombstone {
			return false
		}
	}
	return r.Str.Len() > 0
}

func TestTombstonePurge(t *testing.T) {
	c := newAAECluster(t, 4, 3, "a", "b", "c")
	owners := c.owners("k")
	live := c.write("k", nil, "old", 0, false, owners...)
	// The delete misses the last owner, which is down.
	c.setDown(owners[2], true)
	tomb := c.write("k", live.Str.Join(), "", 0, true, owners[:2]...)
	c.clock.Advance(2 * c.grace)
	c.round()
	for _, o := range owners[:2] {
		if rec, found := c.get(o, "k"); !found || enc(rec) != enc(tomb) {
			t.Fatalf("%s purged a tombstone an owner does not hold", o)
		}
	}
	// The stale owner comes back, long after the grace period: anti-entropy gives it
	// the tombstone first (its old value is superseded), then the purge goes ahead.
	c.setDown(owners[2], false)
	c.round()
	if rec, found := c.get(owners[2], "k"); found {
		for v := range rec.Str.Values() {
			if !v.Tombstone {
				t.Fatalf("%s kept the deleted value", owners[2])
			}
		}
	}
	c.rounds(3) // a purge checks twice, a request timeout apart
	for _, o := range owners {
		if rec, found := c.get(o, "k"); found {
			t.Fatalf("%s still holds %v after the purge", o, rec)
		}
	}
	var purged int64
	for _, nd := range c.nodes {
		purged += nd.aae.Metrics().TombstonesPurged
	}
	if purged != 3 {
		t.Fatalf("purged %d tombstones, want 3 (one per owner)", purged)
	}
	// Young tombstones stay.
	live = c.write("young", nil, "v", 0, false, owners...)
	c.write("young", live.Str.Join(), "", 0, true, owners...)
	c.rounds(3)
	if _, found := c.get(owners[0], "young"); !found {
		t.Fatal("a tombstone younger than the grace was purged")
	}
}

// TestTombstoneWithExpiredSiblingIsPurged is finding 6 of issue 15: a DEL and a
// concurrent SET EX leave a tombstone and an expiring value as siblings on every
// owner. Once the value expired and the grace passed, the record must be collected
// like any other dead record.
func TestTombstoneWithExpiredSiblingIsPurged(t *testing.T) {
	c := newAAECluster(t, 4, 3, "a", "b", "c")
	owners := c.owners("k")
	live := c.write("k", nil, "old", 0, false, owners...)
	c.write("k", live.Str.Join(), "", 0, true, owners[0])                       // DEL via the first owner
	c.write("k", live.Str.Join(), "v", c.clock.Millis()+1000, false, owners[1]) // concurrent SET EX 1
	c.round()
	c.clock.Advance(2 * time.Second)
	for _, o := range owners {
		if _, err := c.nodes[o].st.Reap(100); err != nil {
			t.Fatal(err)
		}
	}
	c.clock.Advance(2 * c.grace)
	c.rounds(4)
	for _, o := range owners {
		if rec, found := c.get(o, "k"); found {
			t.Fatalf("%s still holds %v long after the grace", o, rec.Str.Siblings())
		}
		if n := c.nodes[o].st.Count(); n != 0 {
			t.Fatalf("%s: DBSIZE %d", o, n)
		}
	}
}

// keyOwnedBy returns a key whose owners under the cluster's current ring are
// exactly owners (in any order).
func (c *aaeCluster) keyOwnedBy(owners ...string) string {
	c.t.Helper()
	for i := range 10_000 {
		k := fmt.Sprintf("key%d", i)
		if got := c.owners(k); len(got) == len(owners) && !slices.ContainsFunc(owners, func(o string) bool { return !slices.Contains(got, o) }) {
			return k
		}
	}
	c.t.Fatalf("no key owned by %v", owners)
	return ""
}

// checkNoLiveValue fails if any node holds a value of key that plain GET would
// answer.
func (c *aaeCluster) checkNoLiveValue(key string) {
	c.t.Helper()
	for name := range c.nodes {
		rec, found := c.get(name, key)
		if !found {
			continue
		}
		if w, ok := vclock.Winner(rec.Str.Siblings()); ok && !w.Tombstone {
			c.t.Fatalf("%s answers %q for the deleted %s: %v", name, w.Data, key, rec.Str.Siblings())
		}
	}
}

// TestPurgeWaitsForADownFormerOwner is finding 3 of issue 15: k=v0 on a, b, x; x
// goes down (still a member); d joins and takes x's place; DEL k reaches a, b, d.
// After the grace the tombstone must not be purged while x, which may still hold
// v0, is down; once x is back it hands v0 off (superseded by the tombstone) and
// only then does the purge go ahead. v0 never comes back.
func TestPurgeWaitsForADownFormerOwner(t *testing.T) {
	c := newAAECluster(t, 8, 3, "a", "b", "x")
	c.addNode("d")
	c.setMembers("a", "b", "x", "d")
	k := c.keyOwnedBy("a", "b", "d")
	c.setMembers("a", "b", "x")
	v0 := c.write(k, nil, "v0", 0, false, "a", "b", "x")
	c.setDown("x", true)
	c.setMembers("a", "b", "x", "d") // d joins; x is still a member
	c.write(k, v0.Str.Join(), "", 0, true, "a", "b", "d")
	c.clock.Advance(2 * c.grace)
	c.rounds(4)
	for _, o := range []string{"a", "b", "d"} {
		if _, found := c.get(o, k); !found {
			t.Fatalf("%s purged the tombstone while x, which holds v0, is down", o)
		}
	}
	c.setDown("x", false)
	c.rounds(4)
	c.checkNoLiveValue(k)
	for name := range c.nodes {
		if rec, found := c.get(name, k); found {
			t.Fatalf("%s still holds %v once every holder was back", name, rec.Str.Siblings())
		}
	}
}

// TestPurgeWaitsForAStrayCopy is finding 9 of issue 15: four nodes, a key owned by
// d, b and c. d is down; a SET through a (not an owner) ran on a itself, so a
// keeps the value besides b and c; a DEL through b reaches b and c; a goes down;
// d comes back; long past the grace, a comes back and hands its copy off. The
// tombstone must outlive a's copy, so the value never comes back.
func TestPurgeWaitsForAStrayCopy(t *testing.T) {
	c := newAAECluster(t, 8, 3, "a", "b", "c", "d")
	k := c.keyOwnedBy("b", "c", "d")
	c.setDown("d", true)
	v := c.write(k, nil, "v", 0, false, "a", "b", "c")
	c.write(k, v.Str.Join(), "", 0, true, "b", "c")
	c.setDown("a", true)
	c.setDown("d", false)
	c.clock.Advance(2 * c.grace)
	c.rounds(4)
	for _, o := range []string{"b", "c", "d"} {
		if _, found := c.get(o, k); !found {
			t.Fatalf("%s purged the tombstone while a, which holds the value, is down", o)
		}
	}
	c.setDown("a", false)
	c.rounds(4)
	c.checkNoLiveValue(k)
	for name := range c.nodes {
		if rec, found := c.get(name, k); found {
			t.Fatalf("%s still holds %v once the stray copy was handed off", name, rec.Str.Siblings())
		}
	}
}

// TestPurgeWaitsForAHint: a hint for the key on any node blocks the purge (its
// delivery after the purge would bring the value back), and so does one that
// appears between the purge's two checks.
func TestPurgeWaitsForAHint(t *testing.T) {
	c := newAAECluster(t, 8, 2, "a", "b", "c")
	k := c.keyOwnedBy("a", "b")
	first := c.owners(k)[0]
	v := c.write(k, nil, "v", 0, false, "a", "b")
	c.write(k, v.Str.Join(), "", 0, true, "a", "b")
	hint := func(on bool) {
		t.Helper()
		if !on {
			if ok, err := c.nodes["c"].st.DeleteHint("b", []byte(k), v); !ok || err != nil {
				t.Fatalf("DeleteHint = %v, %v", ok, err)
			}
			return
		}
		if _, err := c.nodes["c"].st.UpdateHint("b", []byte(k), func(record.Record, bool) (record.Record, error) { return v, nil }); err != nil {
			t.Fatal(err)
		}
	}
	hint(true)
	c.clock.Advance(2 * c.grace)
	c.rounds(4)
	if _, found := c.get(first, k); !found {
		t.Fatal("purged the tombstone while c holds a hint of the value")
	}
	hint(false)
	between := func() { hint(true) }
	c.between.Store(&between)
	c.round() // the first check passes, the second, in the same round, does not
	if c.between.Load() != nil {
		t.Fatal("the purge did not wait between its checks")
	}
	if _, found := c.get(first, k); !found {
		t.Fatal("purged although a hint appeared between the two checks")
	}
	hint(false)
	c.rounds(3)
	for _, o := range []string{"a", "b"} {
		if rec, found := c.get(o, k); found {
			t.Fatalf("%s still holds %v", o, rec.Str.Siblings())
		}
	}
}

func TestHandoffMovesPartitionsToNewOwners(t *testing.T) {
	c := newAAECluster(t, 16, 2, "a", "b", "c")
	var keys []string
	for i := range 300 {
		k := fmt.Sprintf("k%03d", i)
		keys = append(keys, k)
		c.write(k, nil, "v"+k, 0, false, c.owners(k)...)
	}
	// d joins: partitions it now owns come from their previous owners, which drop
	// them once the new owners hold them.
	c.addNode("d")
	c.setMembers("a", "b", "c", "d")
	c.round()
	c.round()
	c.checkPlacement(keys)
	var handed int64
	for _, nd := range c.nodes {
		m := nd.aae.Metrics()
		handed += m.PartitionsHanded
		if m.HandoffPending != 0 {
			t.Fatalf("%s: %d partitions still pending", nd.name, m.HandoffPending)
		}
	}
	if handed == 0 {
		t.Fatal("no partition was handed off")
	}
	// c leaves: it owns nothing any more and hands everything off.
	c.setMembers("a", "b", "d")
	c.round()
	if n := c.nodes["c"].st.Count(); n != 0 {
		t.Fatalf("c still holds %d records after leaving", n)
	}
	delete(c.nodes, "c")
	c.checkPlacement(keys)
}

func TestHandoffWaitsForDownOwners(t *testing.T) {
	c := newAAECluster(t, 4, 2, "a", "b")
	for i := range 50 {
		c.write(fmt.Sprintf("k%d", i), nil, "v", 0, false, "a", "b")
	}
	c.addNode("c")
	c.setMembers("b", "c") // a no longer owns anything
	c.setDown("c", true)
	c.round()
	if n := c.nodes["a"].st.Count(); n != 50 {
		t.Fatalf("a dropped data while an owner was down: %d left", n)
	}
	if m := c.nodes["a"].aae.Metrics(); m.HandoffPending == 0 {
		t.Fatal("handoff not counted as pending")
	}
	c.setDown("c", false)
	c.round()
	if n := c.nodes["a"].st.Count(); n != 0 {
		t.Fatalf("a kept %d records after handing off", n)
	}
	for i := range 50 {
		if _, found := c.get("c", fmt.Sprintf("k%d", i)); !found {
			t.Fatalf("k%d missing on the new owner", i)
		}
	}
}

func TestServeRejectsBadMessages(t *testing.T) {
	c := newAAECluster(t, 4, 2, "a", "b")
	mux := c.nodes["a"].mux
	for typ := peer.MsgRoots; typ <= peer.MsgHolds+1; typ++ {
		for _, req := range [][]byte{nil, {0}, {1}, {1, 0xff}, bytes.Repeat([]byte{0xff}, 20)} {
			if _, err := mux.ServeCluster(context.Background(), "b", uint8(typ), req); err == nil && len(req) < 2 {
				t.Fatalf("type %d accepted %x", typ, req)
			}
		}
	}
}

// BenchmarkHandoffPartition100k: the time and transport bytes to hand one partition
// of 100,000 records (100-byte values) to a new owner and drop it here.
func BenchmarkHandoffPartition100k(b *testing.B) {
	const total = 100_000
	val := bytes.Repeat([]byte("v"), 100)
	for b.Loop() {
		b.StopTimer()
		c := newAAECluster(b, 1, 1, "a")
		for i := range total {
			k := []byte(fmt.Sprintf("key-%06d", i))
			rec := vclock.Update(vclock.Set{}, nil, "a", vclock.Value{Data: val, Timestamp: 1}, 1, 1)
			if _, err := c.nodes["a"].st.UpdateNoSync(k, func(record.Record, bool) (record.Record, error) { return record.String(rec), nil }); err != nil {
				b.Fatal(err)
			}
		}
		c.addNode("b")
		c.setMembers("b")
		c.bytes.Store(0)
		b.StartTimer()
		if err := c.nodes["a"].aae.RunOnce(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if n := c.nodes["b"].st.Count(); n != total || c.nodes["a"].st.Count() != 0 {
			b.Fatalf("b holds %d, a %d", n, c.nodes["a"].st.Count())
		}
		b.ReportMetric(float64(c.bytes.Load()), "bytes/handoff")
		b.StartTimer()
	}
}

// TestAAEMembershipChangesUnderWritesSeeds: over many seeds, writes keep landing on
// some of their keys' current owners (as a sloppy or failed quorum leaves them)
// while nodes join, leave and are removed, with anti-entropy rounds in between.
// Once writes stop and rounds run, no acknowledged write is lost (each key holds
// its last write) and every key is on exactly its N owners.
func TestAAEMembershipChangesUnderWritesSeeds(t *testing.T) {
	seeds := 60
	if testing.Short() {
		seeds = 10
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			pool := []string{"a", "b", "c", "d", "e"}
			members := []string{"a", "b", "c"}
			c := newAAECluster(t, 8, 2, members...)
			last := map[string]string{}
			for step := range 120 {
				switch r := rng.IntN(20); {
				case r == 0 && len(members) < len(pool): // join
					for _, name := range pool {
						if !slices.Contains(members, name) && c.nodes[name] == nil {
							c.addNode(name)
							members = append(members, name)
							break
						}
					}
					c.setMembers(members...)
				case r == 1 && len(members) > 2: // leave or remove: the node owns nothing
					i := rng.IntN(len(members))
					members = slices.Delete(slices.Clone(members), i, i+1)
					c.setMembers(members...)
				case r < 6:
					if err := c.nodes[members[rng.IntN(len(members))]].aae.RunOnce(context.Background()); err != nil {
						t.Fatal(err)
					}
				default:
					k := fmt.Sprintf("k%d", rng.IntN(40))
					owners := c.owners(k)
					// Read the merged current record from the owners, write on top of it
					// (a coordinator's read-modify-write), reaching a random non-empty
					// subset of the owners.
					var cur record.Record
					for _, o := range owners {
						rec, _ := c.get(o, k)
						cur = record.String(vclock.Sync(cur.Str, rec.Str))
					}
					reach := owners[:1+rng.IntN(len(owners))]
					v := fmt.Sprintf("%s@%d", k, step)
					c.clock.Advance(time.Millisecond)
					c.write(k, cur.Str.Join(), v, 0, false, reach...)
					last[k] = v
				}
			}
			// Retired nodes still hand off what they hold; then everything settles.
			for range 4 {
				c.round()
			}
			for name := range c.nodes {
				if !slices.Contains(members, name) {
					if n := c.nodes[name].st.Count(); n != 0 {
						t.Fatalf("retired %s still holds %d records", name, n)
					}
					delete(c.nodes, name)
				}
			}
			keys := slices.Sorted(maps.Keys(last))
			c.checkPlacement(keys)
			for _, k := range keys {
				rec, _ := c.get(c.owners(k)[0], k)
				w, ok := vclock.Winner(rec.Str.Siblings())
				if !ok || string(w.Value.Data) != last[k] {
					t.Fatalf("%s = %v, want its last write %s", k, rec.Str.Siblings(), last[k])
				}
			}
		})
	}
}

// TestRemovedDeadNodeIsReReplicated: a dead node removed from the ring never hands
// anything off; the surviving replicas restore N copies of its partitions through
// anti-entropy alone.
func TestRemovedDeadNodeIsReReplicated(t *testing.T) {
	c := newAAECluster(t, 8, 2, "a", "b", "c")
	var keys []string
	for i := range 200 {
		k := fmt.Sprintf("k%03d", i)
		keys = append(keys, k)
		c.write(k, nil, "v"+k, 0, false, c.owners(k)...)
	}
	c.setDown("c", true)
	c.setMembers("a", "b") // dynakv admin remove c
	delete(c.nodes, "c")
	c.round()
	c.checkPlacement(keys) // every key on both a and b: N=2 copies again
	for _, k := range keys {
		for _, o := range c.owners(k) {
			if rec, _ := c.get(o, k); rec.Str.Len() != 1 {
				t.Fatalf("%s on %s: %v", k, o, rec.Str.Siblings())
			}
		}
	}
}

// TestSealedTakesNoData: a node sealed for the end of its leave refuses a
// peer's push (ErrSealed, nothing merged), and its own rounds only push: a
// record it lacks stays away from it, and the peer keeps its copy.
func TestSealedTakesNoData(t *testing.T) {
	c := newAAECluster(t, 4, 2, "a", "b")
	c.write("k", nil, "v", 0, false, "a")
	c.sealed.Store("b", true)
	if err := c.nodes["a"].aae.RunOnce(context.Background()); !errors.Is(err, repair.ErrSealed) {
		t.Errorf("a's round pushing to sealed b: %v, want ErrSealed", err)
	}
	if err := c.nodes["b"].aae.RunOnce(context.Background()); err != nil {
		t.Fatalf("sealed b's round: %v", err)
	}
	if rec, ok := c.get("b", "k"); ok {
		t.Errorf("sealed b took k: %v", rec)
	}
	if _, ok := c.get("a", "k"); !ok {
		t.Error("a lost k")
	}
	c.sealed.Delete("b")
	c.round()
	if _, ok := c.get("b", "k"); !ok {
		t.Error("unsealed b did not get k")
	}
}
