package repair_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lni/goutils/leaktest"

	"github.com/dynakv/dynakv/internal/memstore"
	"github.com/dynakv/dynakv/peer"
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/repair"
	"github.com/dynakv/dynakv/ring"
	"github.com/dynakv/dynakv/storage"
	"github.com/dynakv/dynakv/vclock"
)

// hintStore is what the tests need of a store: hints plus records (for the
// writer that applies deliveries).
type hintStore interface {
	repair.HintStore
	UpdateHint(owner string, key []byte, fn storage.UpdateFunc) (record.Record, error)
	GetHint(owner string, key []byte) (record.Record, bool, error)
}

// stores runs a test over the fake store and over the real one.
func stores(t *testing.T, test func(t *testing.T, st hintStore)) {
	t.Run("memstore", func(t *testing.T) { test(t, memstore.New(16)) })
	t.Run("storage", func(t *testing.T) {
		st, err := storage.Open(storage.Config{InMemory: true, Partitions: 16,
			Logger: slog.New(slog.DiscardHandler), ReapInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		test(t, st)
	})
}

// members is a Membership with a fixed ring and settable liveness.
type members struct {
	rg   *ring.Ring
	mu   sync.Mutex
	dead map[string]bool
}

func newMembers(t testing.TB, names ...string) *members {
	t.Helper()
	ms := make([]ring.Member, len(names))
	for i, n := range names {
		ms[i] = ring.Member{Name: n}
	}
	rg, err := ring.New(16, ms)
	if err != nil {
		t.Fatal(err)
	}
	return &members{rg: rg, dead: map[string]bool{}}
}

func (m *members) Ring() *ring.Ring {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rg
}

func (m *members) setRing(rg *ring.Ring) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rg = rg
}

func (m *members) Alive(node string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.dead[node]
}

func (m *members) setDead(node string, dead bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dead[node] = dead
}

// delivery is one write the handoff made.
type delivery struct {
	node, key, hintFor string
}

// writer records deliveries; fail, when set, decides which ones fail.
type writer struct {
	mu     sync.Mutex
	got    []delivery
	recs   map[string]record.Record // node/key -> merged record delivered
	fail   func(node, key string) bool
	during func(node, key string) // runs inside the delivery, before it succeeds
}

func (w *writer) Write(_ context.Context, node string, req peer.WriteRequest) error {
	if w.during != nil {
		w.during(node, string(req.Key))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail != nil && w.fail(node, string(req.Key)) {
		return errors.New("write failed")
	}
	w.got = append(w.got, delivery{node, string(req.Key), req.HintFor})
	if w.recs == nil {
		w.recs = map[string]record.Record{}
	}
	w.recs[node+"/"+string(req.Key)] = record.String(vclock.Sync((w.recs[node+"/"+string(req.Key)]).Str, req.Record.Str))
	return nil
}

func (w *writer) deliveries() []delivery {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := slices.Clone(w.got)
	slices.SortFunc(out, func(a, b delivery) int {
		if c := cmpString(a.node, b.node); c != 0 {
			return c
		}
		return cmpString(a.key, b.key)
	})
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func stringRecord(actor, data string) record.Record {
	return record.String(vclock.Update(vclock.Set{}, nil, actor, vclock.Value{Data: []byte(data), Timestamp: 1}, 1, 1))
}

func putHint(t testing.TB, st hintStore, owner, key string, rec record.Record) {
	t.Helper()
	if _, err := st.UpdateHint(owner, []byte(key), func(cur record.Record, _ bool) (record.Record, error) {
		return record.String(vclock.Sync(cur.Str, rec.Str)), nil
	}); err != nil {
		t.Fatal(err)
	}
}

func newHandoff(t testing.TB, st hintStore, m *members, w repair.Writer, self string) *repair.Handoff {
	t.Helper()
	h, err := repair.NewHandoff(repair.HandoffConfig{Store: st, Cluster: m, Writer: w, Node: self,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHandoffConfig(t *testing.T) {
	st, m, w := memstore.New(4), newMembers(t, "a"), &writer{}
	for name, cfg := range map[string]repair.HandoffConfig{
		"no store":             {Cluster: m, Writer: w, Node: "a"},
		"no cluster":           {Store: st, Writer: w, Node: "a"},
		"no writer":            {Store: st, Cluster: m, Node: "a"},
		"no node":              {Store: st, Cluster: m, Writer: w},
		"negative interval":    {Store: st, Cluster: m, Writer: w, Node: "a", Interval: -1},
		"negative N":           {Store: st, Cluster: m, Writer: w, Node: "a", N: -1},
		"negative concurrency": {Store: st, Cluster: m, Writer: w, Node: "a", Concurrency: -2},
	} {
		if _, err := repair.NewHandoff(cfg); err == nil {
			t.Errorf("%s: NewHandoff accepted %+v", name, cfg)
		}
	}
	cfg := repair.HandoffConfig{Store: st, Cluster: m, Writer: w, Node: "a"}
	d := cfg.EnsureDefaults()
	if cfg.N != 0 || d.N != 3 || d.Interval != time.Second || d.Concurrency != 16 || d.RequestTimeout != time.Second {
		t.Fatalf("EnsureDefaults: %+v (receiver %+v)", d, cfg)
	}
}

func TestHandoffDeliversToLiveOwners(t *testing.T) {
	stores(t, func(t *testing.T, st hintStore) {
		m := newMembers(t, "a", "b", "c")
		m.setDead("c", true)
		w := &writer{}
		for i := range 3 {
			putHint(t, st, "b", fmt.Sprint("k", i), stringRecord("a:1", "v"))
		}
		putHint(t, st, "c", "k0", stringRecord("a:1", "v"))
		h := newHandoff(t, st, m, w, "a")
		n, err := h.RunOnce(context.Background())
		if err != nil || n != 3 {
			t.Fatalf("RunOnce: %d, %v; want 3 delivered", n, err)
		}
		want := []delivery{{"b", "k0", "b"}, {"b", "k1", "b"}, {"b", "k2", "b"}}
		if got := w.deliveries(); !slices.Equal(got, want) {
			t.Fatalf("deliveries %v, want %v", got, want)
		}
		if st.HintCount() != 1 {
			t.Fatalf("%d hints left, want c's one", st.HintCount())
		}
		if owners, _ := st.HintOwners(); !slices.Equal(owners, []string{"c"}) {
			t.Fatalf("owners with hints: %v", owners)
		}
		// c comes back.
		m.setDead("c", false)
		if n, err := h.RunOnce(context.Background()); err != nil || n != 1 || st.HintCount() != 0 {
			t.Fatalf("after c came back: %d, %v, %d hints left", n, err, st.HintCount())
		}
		if got := h.Metrics(); got.Delivered != 4 || got.Failed != 0 {
			t.Fatalf("metrics %+v", got)
		}
	})
}

func TestHandoffRetriesFailures(t *testing.T) {
	stores(t, func(t *testing.T, st hintStore) {
		m := newMembers(t, "a", "b")
		failing := true
		w := &writer{fail: func(_, key string) bool { return failing && key == "bad" }}
		putHint(t, st, "b", "bad", stringRecord("a:1", "v"))
		putHint(t, st, "b", "good", stringRecord("a:1", "v"))
		h := newHandoff(t, st, m, w, "a")
		n, err := h.RunOnce(context.Background())
		if err == nil || n != 1 {
			t.Fatalf("RunOnce with a failing delivery: %d, %v", n, err)
		}
		if _, ok, _ := st.GetHint("b", []byte("bad")); !ok {
			t.Fatal("a hint whose delivery failed was deleted")
		}
		if h.Metrics().Failed != 1 {
			t.Fatalf("metrics %+v", h.Metrics())
		}
		w.mu.Lock()
		failing = false
		w.mu.Unlock()
		if n, err := h.RunOnce(context.Background()); err != nil || n != 1 || st.HintCount() != 0 {
			t.Fatalf("retry: %d, %v, %d hints left", n, err, st.HintCount())
		}
	})
}

// TestHandoffKeepsHintChangedDuringDelivery: a hint merged further while it was in
// flight is not deleted, and the next pass delivers the merged one.
func TestHandoffKeepsHintChangedDuringDelivery(t *testing.T) {
	stores(t, func(t *testing.T, st hintStore) {
		m := newMembers(t, "a", "b")
		first := stringRecord("a:1", "v1")
		second := vclock.Update(first.Str, first.Str.Join(), "a:1", vclock.Value{Data: []byte("v2"), Timestamp: 2}, 2, 1)
		putHint(t, st, "b", "k", first)
		once := sync.Once{}
		w := &writer{during: func(_, _ string) { once.Do(func() { putHint(t, st, "b", "k", record.String(second)) }) }}
		h := newHandoff(t, st, m, w, "a")
		if n, err := h.RunOnce(context.Background()); err != nil || n != 1 {
			t.Fatalf("RunOnce: %d, %v", n, err)
		}
		got, ok, _ := st.GetHint("b", []byte("k"))
		if !ok || !slices.Equal(got.AppendBinary(nil), second.AppendBinary(nil)) {
			t.Fatalf("hint after a delivery raced with a merge: %v, %v; want the merged one kept", got, ok)
		}
		if h.Metrics().Delivered != 0 {
			t.Fatalf("a hint that was kept counts as delivered: %+v", h.Metrics())
		}
		if n, err := h.RunOnce(context.Background()); err != nil || n != 1 || st.HintCount() != 0 {
			t.Fatalf("second pass: %d, %v, %d hints left", n, err, st.HintCount())
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if rec := w.recs["b/k"]; !slices.Equal(rec.AppendBinary(nil), second.AppendBinary(nil)) {
			t.Fatalf("owner got %v, want the merged hint", rec)
		}
	})
}

// TestHandoffPages: more hints than a page (256) for one owner are all delivered in
// one pass, on both sides of the page boundary.
func TestHandoffPages(t *testing.T) {
	for _, count := range []int{255, 256, 257, 512, 600} {
		t.Run(fmt.Sprint(count), func(t *testing.T) {
			stores(t, func(t *testing.T, st hintStore) {
				m := newMembers(t, "a", "b")
				w := &writer{}
				for i := range count {
					putHint(t, st, "b", fmt.Sprintf("key-%04d", i), stringRecord("a:1", "v"))
				}
				h := newHandoff(t, st, m, w, "a")
				n, err := h.RunOnce(context.Background())
				if err != nil || n != count || st.HintCount() != 0 {
					t.Fatalf("RunOnce: %d, %v, %d hints left; want %d delivered", n, err, st.HintCount(), count)
				}
				got := w.deliveries()
				if len(got) != count {
					t.Fatalf("%d deliveries, want %d", len(got), count)
				}
				for i, d := range got {
					if d.key != fmt.Sprintf("key-%04d", i) {
						t.Fatalf("delivery %d is %v: a key was skipped or sent twice", i, d)
					}
				}
			})
		})
	}
}

// TestHandoffRemovedMember: hints for a node no longer in the ring go to every one
// of the key's current replicas (this node's own through the Writer too), and stay
// while one of them is down.
func TestHandoffRemovedMember(t *testing.T) {
	stores(t, func(t *testing.T, st hintStore) {
		m := newMembers(t, "a", "b", "c", "d")
		key := "k"
		reps := m.rg.Replicas(m.rg.Partition([]byte(key)), 3)
		self := reps[0]
		m.setDead(reps[2], true)
		putHint(t, st, "gone", key, stringRecord("x:1", "v"))
		w := &writer{}
		h := newHandoff(t, st, m, w, self)
		// A replica down: the hint stays, so it never ends up on fewer than N.
		if n, err := h.RunOnce(context.Background()); err == nil || n != 0 || st.HintCount() != 1 {
			t.Fatalf("RunOnce with a replica down: %d, %v, %d hints left; want the hint kept", n, err, st.HintCount())
		}
		m.setDead(reps[2], false)
		w = &writer{}
		h = newHandoff(t, st, m, w, self)
		if n, err := h.RunOnce(context.Background()); err != nil || n != 1 || st.HintCount() != 0 {
			t.Fatalf("RunOnce: %d, %v, %d hints left", n, err, st.HintCount())
		}
		want := []delivery{{reps[0], key, ""}, {reps[1], key, ""}, {reps[2], key, ""}}
		slices.SortFunc(want, func(a, b delivery) int { return cmpString(a.node, b.node) })
		if got := w.deliveries(); !slices.Equal(got, want) {
			t.Fatalf("deliveries %v, want %v (every replica, without a hint tag)", got, want)
		}

		// No live replica and this node none of them: the hint stays.
		putHint(t, st, "gone", key, stringRecord("x:1", "v"))
		for _, r := range reps {
			m.setDead(r, true)
		}
		other := ""
		for _, n := range []string{"a", "b", "c", "d"} {
			if !slices.Contains(reps, n) {
				other = n
			}
		}
		h2 := newHandoff(t, st, m, &writer{}, other)
		if n, err := h2.RunOnce(context.Background()); err == nil || n != 0 || st.HintCount() != 1 {
			t.Fatalf("no live replica: %d, %v, %d hints left", n, err, st.HintCount())
		}
	})
}

// TestHandoffLoop runs the loop under fake time: nothing is delivered to a dead
// owner; once it is alive a tick (or a Kick, at once) delivers; Close stops it.
func TestHandoffLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memstore.New(16)
		m := newMembers(t, "a", "b")
		m.setDead("b", true)
		w := &writer{}
		h, err := repair.NewHandoff(repair.HandoffConfig{Store: st, Cluster: m, Writer: w, Node: "a",
			Interval: 10 * time.Second, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		h.Start()
		defer h.Close()
		putHint(t, st, "b", "k1", stringRecord("a:1", "v"))
		time.Sleep(25 * time.Second)
		if st.HintCount() != 1 || len(w.deliveries()) != 0 {
			t.Fatal("delivered to a dead owner")
		}
		m.setDead("b", false)
		time.Sleep(10 * time.Second) // the next tick
		synctest.Wait()
		if st.HintCount() != 0 {
			t.Fatal("a tick did not deliver to the owner back alive")
		}
		putHint(t, st, "b", "k2", stringRecord("a:1", "v"))
		h.Kick()
		h.Kick() // never blocks
		synctest.Wait()
		if st.HintCount() != 0 {
			t.Fatal("Kick did not start a pass at once")
		}
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
		h.Close() // idempotent
		putHint(t, st, "b", "k3", stringRecord("a:1", "v"))
		time.Sleep(time.Minute)
		if st.HintCount() != 1 {
			t.Fatal("the loop delivered after Close")
		}
	})
}

// TestHandoffNoLeaks: the loop and its deliveries are gone after Close, in real
// time.
func TestHandoffNoLeaks(t *testing.T) {
	defer leaktest.AfterTest(t)()
	st := memstore.New(16)
	m := newMembers(t, "a", "b")
	slow := make(chan struct{})
	w := repair.WriterFunc(func(ctx context.Context, node string, req peer.WriteRequest) error {
		select {
		case <-slow:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	for i := range 40 {
		putHint(t, st, "b", fmt.Sprint("k", i), stringRecord("a:1", "v"))
	}
	h, err := repair.NewHandoff(repair.HandoffConfig{Store: st, Cluster: m, Writer: w, Node: "a",
		Interval: time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	time.Sleep(20 * time.Millisecond) // a pass is blocked in deliveries
	h.Close()
	close(slow)
	if st.HintCount() != 40 {
		t.Fatalf("%d hints left, want all 40 (every delivery was cancelled)", st.HintCount())
	}
}

// TestHandoffUnknownMemberKeepsHints: a member missing from this node's ring but not
// known to be removed (it joined and went down before gossip reached here) keeps its
// hints; once Removed says so, they go to the key's replicas.
func TestHandoffUnknownMemberKeepsHints(t *testing.T) {
	st := memstore.New(4)
	m := newMembers(t, "a", "b", "c")
	putHint(t, st, "newcomer", "k", stringRecord("x:1", "v"))
	removed := false
	h, err := repair.NewHandoff(repair.HandoffConfig{Store: st, Cluster: m, Writer: &writer{}, Node: "a",
		Removed: func(string) bool { return removed }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := h.RunOnce(context.Background()); err != nil || n != 0 || st.HintCount() != 1 {
		t.Fatalf("RunOnce for an unknown member: %d, %v, %d hints; want the hint kept", n, err, st.HintCount())
	}
	removed = true
	if n, err := h.RunOnce(context.Background()); err != nil || n != 1 || st.HintCount() != 0 {
		t.Fatalf("RunOnce for a removed member: %d, %v, %d hints; want it delivered", n, err, st.HintCount())
	}
}

// TestHandoffDropsHintsOlderThanMaxHintAge: a hint older than the tombstone grace
// could bring back a purged key, so it is dropped instead of replayed.
func TestHandoffDropsHintsOlderThanMaxHintAge(t *testing.T) {
	stores(t, func(t *testing.T, st hintStore) {
		m := newMembers(t, "a", "b")
		w := &writer{}
		now := time.UnixMilli(10_000)
		old := vclock.Update(vclock.Set{}, nil, "a", vclock.Value{Data: []byte("old"), Timestamp: 1_000}, 1, 1)
		fresh := vclock.Update(vclock.Set{}, nil, "a", vclock.Value{Data: []byte("new"), Timestamp: 9_500}, 1, 1)
		putHint(t, st, "b", "old", record.String(old))
		putHint(t, st, "b", "fresh", record.String(fresh))
		h, err := repair.NewHandoff(repair.HandoffConfig{Store: st, Cluster: m, Writer: w, Node: "a",
			MaxHintAge: time.Second, Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := w.deliveries(); !slices.Equal(got, []delivery{{"b", "fresh", "b"}}) {
			t.Fatalf("deliveries %v, want only the fresh hint", got)
		}
		if got := h.Metrics(); got.Expired != 1 || got.Delivered != 1 || st.HintCount() != 0 {
			t.Fatalf("metrics %+v, %d hints left", got, st.HintCount())
		}
	})
}

// TestHandoffLeavingNodeReroutesHintsOfADownOwner: a node that is leaving does not
// wait for a down owner to take its hints (its leave completes only once it holds
// none, and purge no longer asks it once it left): it hands them to the key's live
// current replicas instead, without a hint tag. A node that is not leaving keeps
// them for the owner, and with no live replica even a leaving node keeps them.
func TestHandoffLeavingNodeReroutesHintsOfADownOwner(t *testing.T) {
	stores(t, func(t *testing.T, st hintStore) {
		m := newMembers(t, "a", "b", "c", "d", "e")
		key := "k"
		reps := m.rg.Replicas(m.rg.Partition([]byte(key)), 3)
		var self string
		for _, n := range []string{"a", "b", "c", "d", "e"} {
			if !slices.Contains(reps, n) {
				self = n
				break
			}
		}
		owner := reps[0]
		m.setDead(owner, true)
		putHint(t, st, owner, key, stringRecord("x:1", "v"))
		leaving := false
		newLeaving := func(w repair.Writer) *repair.Handoff {
			h, err := repair.NewHandoff(repair.HandoffConfig{Store: st, Cluster: m, Writer: w, Node: self,
				Leaving: func() bool { return leaving }, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			return h
		}
		w := &writer{}
		if n, err := newLeaving(w).RunOnce(context.Background()); err != nil || n != 0 || st.HintCount() != 1 {
			t.Fatalf("not leaving: %d, %v, %d hints left; want the hint kept for %s", n, err, st.HintCount(), owner)
		}
		leaving = true
		if n, err := newLeaving(w).RunOnce(context.Background()); err != nil || n != 1 || st.HintCount() != 0 {
			t.Fatalf("leaving: %d, %v, %d hints left; want it handed to the live replicas", n, err, st.HintCount())
		}
		want := []delivery{{reps[1], key, ""}, {reps[2], key, ""}}
		slices.SortFunc(want, func(a, b delivery) int { return cmpString(a.node, b.node) })
		if got := w.deliveries(); !slices.Equal(got, want) {
			t.Fatalf("deliveries %v, want %v (the live replicas, without a hint tag)", got, want)
		}

		putHint(t, st, owner, key, stringRecord("x:1", "v"))
		for _, r := range reps {
			m.setDead(r, true)
		}
		if n, err := newLeaving(&writer{}).RunOnce(context.Background()); err == nil || n != 0 || st.HintCount() != 1 {
			t.Fatalf("leaving, no live replica: %d, %v, %d hints left; want the hint kept", n, err, st.HintCount())
		}
	})
}

// TestHandoffLeavingNodeKeepsADownOwnersZone: with zones, a leaving node that
// hands a down owner's hint to the key's live replicas (all in other zones) also
// hands it, as a hint for the owner, to a live fallback in the owner's zone, so
// that the zone keeps a copy after the node left; with none alive there, only
// the replicas take it.
func TestHandoffLeavingNodeKeepsADownOwnersZone(t *testing.T) {
	stores(t, func(t *testing.T, st hintStore) {
		var ms []ring.Member
		for _, z := range []string{"a", "b", "c"} {
			for i := range 2 {
				ms = append(ms, ring.Member{Name: fmt.Sprint(z, i+1), Zone: z})
			}
		}
		rg, err := ring.New(16, ms)
		if err != nil {
			t.Fatal(err)
		}
		m := &members{rg: rg, dead: map[string]bool{}}
		key := "k"
		p := rg.Partition([]byte(key))
		pl := rg.PreferenceList(p)
		owner := pl[0]
		zone, _ := rg.Zone(owner)
		var self, inZone string // self: a fallback in another zone; inZone: owner's zone's fallback
		for _, n := range pl[3:] {
			switch z, _ := rg.Zone(n); {
			case z == zone:
				inZone = n
			case self == "":
				self = n
			}
		}
		m.setDead(owner, true)
		run := func() []delivery {
			t.Helper()
			putHint(t, st, owner, key, stringRecord("x:1", "v"))
			w := &writer{}
			h, err := repair.NewHandoff(repair.HandoffConfig{Store: st, Cluster: m, Writer: w, Node: self,
				Leaving: func() bool { return true }, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			if n, err := h.RunOnce(context.Background()); err != nil || n != 1 || st.HintCount() != 0 {
				t.Fatalf("leaving: %d, %v, %d hints left; want it handed on", n, err, st.HintCount())
			}
			return w.deliveries()
		}
		sorted := func(ds ...delivery) []delivery {
			slices.SortFunc(ds, func(a, b delivery) int { return cmpString(a.node, b.node) })
			return ds
		}
		if got, want := run(), sorted(delivery{pl[1], key, ""}, delivery{pl[2], key, ""}, delivery{inZone, key, owner}); !slices.Equal(got, want) {
			t.Fatalf("deliveries %v, want %v (the live replicas, and a hint for %s in its zone %s)", got, want, owner, zone)
		}
		m.setDead(inZone, true)
		if got, want := run(), sorted(delivery{pl[1], key, ""}, delivery{pl[2], key, ""}); !slices.Equal(got, want) {
			t.Fatalf("owner's zone down: deliveries %v, want %v (the live replicas only)", got, want)
		}
	})
}
