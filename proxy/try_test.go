package proxy_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dynakv/dynakv/proxy"
)

// checkMemory is a Memory whose Check answers what the test sets.
type checkMemory struct {
	ok  bool
	err error
}

func (m *checkMemory) Admit(context.Context) error { return m.err }
func (m *checkMemory) Check() (bool, error)        { return m.ok, m.err }

// TestTry: Try stages a write that a GET in the same set sees, that other
// readers see only after Commit; each would-block condition returns its reason
// having done nothing (the store and the hit counters unchanged).
func TestTry(t *testing.T) {
	ctx := context.Background()
	mem := &checkMemory{ok: true}
	e := newDirectEnv(t, proxy.Config{Memory: mem})
	ws := e.p.NewWriteSet()
	if ws == nil {
		t.Fatal("NewWriteSet on a single node: nil")
	}
	s := e.p.NewSession(nil)
	k := []byte("k")
	if _, err := s.Try(ctx, proxy.Op{Kind: proxy.OpSet, Key: k, Value: []byte("v1")}, ws); err != nil {
		t.Fatal(err)
	}
	if !s.TakeStaged() || s.TakeStaged() {
		t.Fatal("TakeStaged after a staged write: want true once")
	}
	if res, err := s.Try(ctx, proxy.Op{Kind: proxy.OpGet, Key: k}, ws); err != nil || string(res.Item.Value) != "v1" || !s.TakeStaged() {
		t.Fatalf("GET in the set: %q %v", res.Item.Value, err)
	}
	if _, err := s.Try(ctx, proxy.Op{Kind: proxy.OpGet, Key: []byte("other")}, ws); err != nil || s.TakeStaged() {
		t.Fatalf("GET of a key outside the set: staged or %v", err)
	}

	before := e.p.Stats()
	for _, tc := range []struct {
		name, reason string
		op           proxy.Op
		setup, undo  func()
	}{
		{"oom-wait", proxy.ReasonOOMWait, proxy.Op{Kind: proxy.OpSet, Key: []byte("x"), Value: []byte("v")}, func() { mem.ok = false }, func() { mem.ok = true }},
		{"vivify", proxy.ReasonSteps, proxy.Op{Kind: proxy.OpGet, Key: []byte("x"), Vivify: true}, nil, nil},
		{"dput", proxy.ReasonSteps, proxy.Op{Kind: proxy.OpDPut, Key: []byte("x"), Value: []byte("v")}, nil, nil},
		{"flush", proxy.ReasonFlush, proxy.Op{Kind: proxy.OpGet, Key: []byte("x")}, func() {
			if err := e.p.FlushAll(ctx, time.Second); err != nil {
				t.Fatal(err)
			}
			e.clk.Advance(time.Second)
		}, nil},
	} {
		if tc.setup != nil {
			tc.setup()
		}
		_, err := s.Try(ctx, tc.op, ws)
		if !errors.Is(err, proxy.ErrWouldBlock) || proxy.BlockReason(err) != tc.reason {
			t.Errorf("%s: Try = %v, want would-block %s", tc.name, err, tc.reason)
		}
		if s.TakeStaged() {
			t.Errorf("%s: a would-block counts as staged", tc.name)
		}
		if tc.undo != nil {
			tc.undo()
		}
	}
	if e.p.Stats() != before {
		t.Errorf("would-blocks moved the counters: %+v -> %+v", before, e.p.Stats())
	}
	if ws.Len() != 1 {
		t.Errorf("set holds %d writes, want 1", ws.Len())
	}
	if err := ws.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestTryNoevictionOOM: under noeviction a full node refuses a growing op in
// try mode at once, as Do does.
func TestTryNoevictionOOM(t *testing.T) {
	mem := &checkMemory{err: proxy.ErrOOM}
	e := newDirectEnv(t, proxy.Config{Memory: mem})
	_, err := e.p.NewSession(nil).Try(context.Background(), proxy.Op{Kind: proxy.OpSet, Key: []byte("k"), Value: []byte("v")}, e.p.NewWriteSet())
	if !errors.Is(err, proxy.ErrOOM) {
		t.Fatalf("Try = %v, want ErrOOM", err)
	}
}

// TestTryCommitVisible: a staged write is not visible to Do's readers before
// Commit, and is after.
func TestTryCommitVisible(t *testing.T) {
	ctx := context.Background()
	e := newDirectEnv(t, proxy.Config{})
	ws := e.p.NewWriteSet()
	s := e.p.NewSession(nil)
	if _, err := s.Try(ctx, proxy.Op{Kind: proxy.OpIncr, Key: []byte("n"), Delta: 5}, ws); err != nil {
		t.Fatal(err)
	}
	if err := ws.Commit(); err != nil {
		t.Fatal(err)
	}
	if res := e.do(proxy.Op{Kind: proxy.OpGet, Key: []byte("n")}); string(res.Item.Value) != "5" {
		t.Fatalf("after Commit: %q", res.Item.Value)
	}
}

// TestRerunSafe: reads, or one write first, may run again from the start; a
// write after another op, or an op after a write, may not.
func TestRerunSafe(t *testing.T) {
	get, set, del := proxy.Op{Kind: proxy.OpGet}, proxy.Op{Kind: proxy.OpSet}, proxy.Op{Kind: proxy.OpDelete}
	for _, tc := range []struct {
		ops  []proxy.Op
		safe bool
	}{
		{nil, true}, {[]proxy.Op{get}, true}, {[]proxy.Op{get, get, get}, true}, {[]proxy.Op{set}, true},
		{[]proxy.Op{set, set}, false}, {[]proxy.Op{get, del}, false}, {[]proxy.Op{set, get}, false},
	} {
		if got := proxy.RerunSafe(tc.ops) == ""; got != tc.safe {
			t.Errorf("%v: safe %v, want %v", tc.ops, got, tc.safe)
		}
	}
}
