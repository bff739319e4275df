// Package loopcommit is the commit point of the fronts' fast path on an event
// loop (issue 19, S8), shared by every front that serves on the loop (resp and
// memcache). One Group covers a group of evloop loops; each loop gets one write
// set, one BeforeSleep hook that commits it, and the list of connections whose
// inline replies wait for that commit or whose handoff starts after it. So the
// writes of all connections of one loop iteration, whatever their protocol,
// go to storage as one commit.
//
// A front runs a command inline in try mode, staged in the loop's set (Set),
// and holds its reply (Hold) instead of writing it; a command that would block
// is handed off after the commit (After). In BeforeSleep the Loop commits the
// set, tells every held connection of a failed commit (the replies that
// depended on it become the front's error: Conn.FailReply), writes the held
// replies (Conn.Release), then starts the deferred handoffs (Conn.StartHandoff).
//
// Invariants:
//   - A Loop is used on its loop goroutine only (inside OnData, a posted func,
//     a hook); Group.Stats and SetCommitHook are safe from any goroutine.
//   - No held reply is released before the commit of every write staged before
//     it returned, and a reply marked staged is released as the commit's error
//     when that commit failed; other replies stand.
//   - A connection's deferred handoff starts after its held replies were given
//     to Release, so replies keep their order.
//   - Set reports ok only once the loop's hook is in place: before that (and
//     with no write set) a front hands every command off.
//
// It imports evloop only; the write set is a type parameter (proxy.WriteSet in
// the fronts), so this package knows nothing above internal/.
package loopcommit

import (
	"strings"
	"sync/atomic"

	"github.com/dynakv/dynakv/internal/evloop"
)

// Set is a loop's write set: what the fronts' inline commands stage, committed
// once per iteration. proxy.WriteSet implements it.
type Set interface {
	// Len is the number of writes staged since the last Commit or Discard.
	Len() int
	// Commit applies and syncs the staged writes; the set is empty after,
	// whatever the outcome. An error fails every staged write.
	Commit() error
	// Discard ends the set without applying anything.
	Discard()
}

// Conn is a front's loop connection as its Loop sees it. It embeds Held (which
// gives it the unexported method), and its other methods run on the loop
// goroutine.
type Conn interface {
	held() *Held
	// Closed reports whether the connection has closed: nothing is released to
	// it, and its handoff does not start.
	Closed() bool
	// FailReply returns the reply that replaces a held reply that depended on
	// a commit that failed with err; it is called once per such reply.
	FailReply(err error) []byte
	// Release writes b, the replies held for the commit, to the connection's
	// output itself, not through AppendHeld (b is reused after: copy it).
	Release(b []byte)
	// StartHandoff starts the handoff that After deferred.
	StartHandoff()
}

// Held is the replies a connection's inline commands made in this iteration,
// kept until the commit. A front's loop connection embeds it; the zero value is
// empty. Loop goroutine only.
type Held struct {
	b      []byte
	slots  []span // the replies in b that depend on the next commit
	queued bool   // in the Loop's held list
}

type span struct{ from, to int }

func (h *Held) held() *Held { return h }

// HeldLen returns the bytes held.
func (h *Held) HeldLen() int { return len(h.b) }

// AppendHeld adds b after the held replies when there are any and reports
// whether it did; when it did not, the caller writes b itself (nothing is
// held, so nothing must precede it).
func (h *Held) AppendHeld(b []byte) bool {
	if len(h.b) == 0 {
		return false
	}
	h.b = append(h.b, b...)
	return true
}

// DropHeld forgets the held replies (a connection that closes without them).
func (h *Held) DropHeld() {
	h.b, h.slots = h.b[:0], h.slots[:0]
}

// fail replaces every reply in slots by what reply returns.
func (h *Held) fail(reply func() []byte) {
	if len(h.slots) == 0 {
		return
	}
	b := make([]byte, 0, len(h.b))
	prev := 0
	for _, sl := range h.slots {
		b = append(b, h.b[prev:sl.from]...)
		b = append(b, reply()...)
		prev = sl.to
	}
	h.b = append(b, h.b[prev:]...)
}

// heldMax bounds a held buffer kept for reuse.
const heldMax = 64 << 10

// Group is the commit points of a group of loops.
type Group[S Set] struct {
	loops map[*evloop.Loop]*Loop[S]
	onErr func(writes int, err error)
	hook  atomic.Pointer[func(S) error]

	commits, writes atomic.Int64
}

// New gives every loop of g its write set (newSet; ok false: none, and every
// command of that loop is handed off) and its BeforeSleep hook. onErr, when
// set, is told of every failed commit, on the loop goroutine (the caller logs
// it). A group is meant to be made once per loop group and given to every
// front on it: two Groups on one loop would make two commits per iteration.
func New[S Set](g *evloop.Group, newSet func() (S, bool), onErr func(writes int, err error)) *Group[S] {
	cg := &Group[S]{loops: make(map[*evloop.Loop]*Loop[S]), onErr: onErr}
	for _, l := range g.Loops() {
		lp := &Loop[S]{g: cg}
		lp.set, lp.has = newSet()
		cg.loops[l] = lp
		l.BeforeSleep(lp.beforeSleep)
		l.Post(func() { lp.ready = true }) // after the hook's own post
	}
	return cg
}

// Loop returns l's commit point, or nil when l is not one of the group's.
func (g *Group[S]) Loop(l *evloop.Loop) *Loop[S] { return g.loops[l] }

// Stats returns the commits of the group's write sets that had writes, and the
// writes they applied (or failed): writes/commits is the mean commit size.
func (g *Group[S]) Stats() (commits, writes int64) { return g.commits.Load(), g.writes.Load() }

// SetCommitHook makes every commit call f(set) instead of set.Commit (tests
// inject failures; nil restores Commit). Safe from any goroutine.
func (g *Group[S]) SetCommitHook(f func(S) error) {
	if f == nil {
		g.hook.Store(nil)
		return
	}
	g.hook.Store(&f)
}

// Loop is one loop's commit point. Loop goroutine only.
type Loop[S Set] struct {
	g     *Group[S]
	set   S
	has   bool // set is a write set
	ready bool // the BeforeSleep hook is in place
	held  []Conn
	start []Conn
	free  [][]byte // held buffers to reuse: an idle connection keeps none
}

// Set returns the loop's write set, and whether commands may run inline in it
// (there is one, and its commit is in place). A nil Loop has none.
func (l *Loop[S]) Set() (S, bool) {
	if l == nil {
		var none S
		return none, false
	}
	return l.set, l.has && l.ready
}

// Hold keeps reply (copied) after c's held replies until the iteration's
// commit; staged says the reply depends on the commit (Session.TakeStaged): it
// becomes c.FailReply's if the commit fails. An empty staged reply (a quiet
// command) holds a place for that error.
func (l *Loop[S]) Hold(c Conn, reply []byte, staged bool) {
	h := c.held()
	if !h.queued {
		h.queued = true
		l.held = append(l.held, c)
		if h.b == nil {
			h.b = l.buffer()
		}
	}
	if staged {
		h.slots = append(h.slots, span{len(h.b), len(h.b) + len(reply)})
	}
	h.b = append(h.b, reply...)
}

// After starts c's handoff after the iteration's commit and the release of the
// held replies (at once if the loop's hook is not in place yet: nothing was
// held then), or at once on a nil Loop.
func (l *Loop[S]) After(c Conn) {
	if l == nil || !l.ready {
		c.StartHandoff()
		return
	}
	l.start = append(l.start, c)
}

// buffer returns an empty held buffer.
func (l *Loop[S]) buffer() []byte {
	if n := len(l.free); n > 0 {
		b := l.free[n-1]
		l.free = l.free[:n-1]
		return b
	}
	return make([]byte, 0, 512)
}

// Commit commits the write set now (a full set, before its command runs
// again; BeforeSleep commits the rest). When it fails, every held reply that
// depended on it becomes its connection's FailReply; the replies stay held.
func (l *Loop[S]) Commit() {
	if !l.has {
		return
	}
	n := l.set.Len()
	if n == 0 {
		// Nothing staged, but an op that failed before staging (a failed
		// store) may have left its admission with the set: end it.
		l.set.Discard()
		return
	}
	var err error
	if h := l.g.hook.Load(); h != nil {
		err = (*h)(l.set)
	} else {
		err = l.set.Commit()
	}
	l.g.commits.Add(1)
	l.g.writes.Add(int64(n))
	if err != nil && l.g.onErr != nil {
		l.g.onErr(n, err)
	}
	for _, c := range l.held {
		h := c.held()
		if err != nil {
			h.fail(func() []byte { return c.FailReply(err) })
		}
		h.slots = h.slots[:0]
	}
}

// beforeSleep commits the iteration's write set, then releases the held
// replies (the loop writes them after its hooks), then starts the handoffs
// that waited for the commit.
func (l *Loop[S]) beforeSleep() {
	l.Commit()
	for i, c := range l.held {
		h := c.held()
		h.queued = false
		if !c.Closed() && len(h.b) > 0 {
			c.Release(h.b)
		}
		if cap(h.b) <= heldMax && len(l.free) < cap(l.held) {
			l.free = append(l.free, h.b[:0])
		}
		h.b = nil
		if cap(h.slots) > 16 {
			h.slots = nil
		}
		l.held[i] = nil
	}
	l.held = l.held[:0]
	for i, c := range l.start {
		if !c.Closed() {
			c.StartHandoff()
		}
		l.start[i] = nil
	}
	l.start = l.start[:0]
}

// Handoffs counts a front's handed-off batches by the reason of their first
// command. Safe from any goroutine.
type Handoffs struct {
	reasons []string
	n       []atomic.Int64
}

// NewHandoffs returns counters for reasons; a reason not among them counts
// under the last.
func NewHandoffs(reasons []string) *Handoffs {
	return &Handoffs{reasons: reasons, n: make([]atomic.Int64, len(reasons))}
}

// Add counts one handoff for reason.
func (h *Handoffs) Add(reason string) {
	for i, r := range h.reasons {
		if r == reason {
			h.n[i].Add(1)
			return
		}
	}
	h.n[len(h.n)-1].Add(1)
}

// Each calls f for every reason, in order, with its name as a stat name ('-'
// made '_') and its count.
func (h *Handoffs) Each(f func(name string, n int64)) {
	for i, r := range h.reasons {
		f(strings.ReplaceAll(r, "-", "_"), h.n[i].Load())
	}
}

// Reset zeroes the counts.
func (h *Handoffs) Reset() {
	for i := range h.n {
		h.n[i].Store(0)
	}
}
