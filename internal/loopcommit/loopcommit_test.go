package loopcommit

import (
	"errors"
	"strings"
	"testing"

	"github.com/dynakv/dynakv/internal/evloop"
)

// fakeSet counts staged writes; Commit fails with err.
type fakeSet struct {
	n        int
	err      error
	commits  int
	discards int
}

func (s *fakeSet) Len() int { return s.n }
func (s *fakeSet) Commit() error {
	s.n = 0
	s.commits++
	return s.err
}
func (s *fakeSet) Discard() { s.n, s.discards = 0, s.discards+1 }

// fakeConn records what its Loop did with it, in order.
type fakeConn struct {
	Held
	name   string
	closed bool
	log    *[]string
}

func (c *fakeConn) Closed() bool { return c.closed }
func (c *fakeConn) FailReply(err error) []byte {
	return []byte("E(" + err.Error() + ")")
}
func (c *fakeConn) Release(b []byte) { *c.log = append(*c.log, c.name+":"+string(b)) }
func (c *fakeConn) StartHandoff()    { *c.log = append(*c.log, c.name+":handoff") }

func newTestLoop(set *fakeSet) *Loop[*fakeSet] {
	return &Loop[*fakeSet]{g: &Group[*fakeSet]{}, set: set, has: true, ready: true}
}

// TestCommitFailsOnlyStaged: a failed commit turns exactly the staged replies
// (an empty staged one included) into the error; the others, the deferred
// handoffs' order and a closed connection's silence stand.
func TestCommitFailsOnlyStaged(t *testing.T) {
	for _, fail := range []bool{false, true} {
		set := &fakeSet{}
		if fail {
			set.err = errors.New("boom")
		}
		l := newTestLoop(set)
		var log []string
		a := &fakeConn{name: "a", log: &log}
		b := &fakeConn{name: "b", log: &log}
		gone := &fakeConn{name: "gone", log: &log}
		set.n = 3
		l.Hold(a, []byte("w1;"), true)
		l.Hold(b, []byte("r;"), false)
		l.Hold(a, []byte("r;"), false)
		l.Hold(a, nil, true) // a quiet write
		l.Hold(gone, []byte("w;"), true)
		l.After(a)
		if !a.AppendHeld([]byte("end;")) || a.HeldLen() == 0 {
			t.Fatal("AppendHeld did not append to held replies")
		}
		gone.closed = true
		l.beforeSleep()
		want := "a:w1;r;end;|b:r;|a:handoff"
		if fail {
			want = "a:E(boom)r;E(boom)end;|b:r;|a:handoff"
		}
		if got := strings.Join(log, "|"); got != want {
			t.Errorf("fail=%v: %s, want %s", fail, got, want)
		}
		if set.commits != 1 {
			t.Errorf("%d commits, want 1", set.commits)
		}
		if commits, writes := l.g.Stats(); commits != 1 || writes != 3 {
			t.Errorf("stats %d commits %d writes, want 1, 3", commits, writes)
		}
		// The next iteration holds nothing of the last.
		log = log[:0]
		l.Hold(b, []byte("x;"), false)
		l.beforeSleep()
		if got := strings.Join(log, "|"); got != "b:x;" {
			t.Errorf("next iteration: %s", got)
		}
		if set.commits != 1 || set.discards != 1 {
			t.Errorf("an empty set: %d commits %d discards, want 1 and 1", set.commits, set.discards)
		}
	}
}

// TestEarlyCommit: a commit in the middle of an iteration (a full set) fails
// the replies staged before it, and a later commit only those after it.
func TestEarlyCommit(t *testing.T) {
	set := &fakeSet{}
	l := newTestLoop(set)
	var log []string
	a := &fakeConn{name: "a", log: &log}
	set.n, set.err = 1, errors.New("first")
	l.Hold(a, []byte("w1;"), true)
	l.Commit()
	set.n, set.err = 1, nil
	l.Hold(a, []byte("w2;"), true)
	l.beforeSleep()
	if got := strings.Join(log, "|"); got != "a:E(first)w2;" {
		t.Errorf("got %s", got)
	}
	if commits, writes := l.g.Stats(); commits != 2 || writes != 2 {
		t.Errorf("stats %d commits %d writes, want 2, 2", commits, writes)
	}
}

// TestNotReady: a nil Loop, or one whose hook is not in place, gives no set
// and starts a handoff at once.
func TestNotReady(t *testing.T) {
	var log []string
	a := &fakeConn{name: "a", log: &log}
	var nilLoop *Loop[*fakeSet]
	if _, ok := nilLoop.Set(); ok {
		t.Error("a nil Loop has a set")
	}
	nilLoop.After(a)
	l := newTestLoop(&fakeSet{})
	l.ready = false
	if _, ok := l.Set(); ok {
		t.Error("a Loop without its hook has a set")
	}
	l.After(a)
	if got := strings.Join(log, "|"); got != "a:handoff|a:handoff" {
		t.Errorf("got %s", got)
	}
}

// TestGroupHooks: New gives each loop of a group its own set and hook, and a
// commit hook replaces Commit.
func TestGroupHooks(t *testing.T) {
	if !evloop.Supported() {
		t.Skip("no event loops here")
	}
	g, err := evloop.NewGroup(2, evloop.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	made := 0
	cg := New(g, func() (*fakeSet, bool) { made++; return &fakeSet{}, true }, nil)
	if made != 2 || cg.Loop(g.Loops()[0]) == cg.Loop(g.Loops()[1]) || cg.Loop(nil) != nil {
		t.Fatalf("%d sets made; loops %p %p", made, cg.Loop(g.Loops()[0]), cg.Loop(g.Loops()[1]))
	}
	hooked := make(chan *fakeSet, 1)
	cg.SetCommitHook(func(s *fakeSet) error { hooked <- s; return nil })
	l := g.Loops()[0]
	lp := cg.Loop(l)
	done := make(chan bool)
	l.Post(func() { // after New's posts: the hook is in place
		_, ok := lp.Set()
		lp.set.n = 1
		done <- ok
	})
	if !<-done {
		t.Fatal("no set after the hook's post")
	}
	if s := <-hooked; s != lp.set {
		t.Fatal("the hook got another set")
	}
}
