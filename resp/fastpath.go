package resp

import (
	"strings"

	"github.com/dynakv/dynakv/internal/evloop"
	"github.com/dynakv/dynakv/proxy"
)

// loopState is one event loop's fast path (loop.go): its write set, the
// connections whose inline replies of this iteration wait for the set's
// commit, and those whose handoff starts after it. It is used on its loop's
// goroutine only.
type loopState struct {
	s     *Server
	ws    *proxy.WriteSet // nil without a store of write sets: every command is handed off
	ready bool            // the BeforeSleep hook is in place
	held  []*loopConn
	start []*loopConn
	free  [][]byte // held buffers to reuse: an idle connection keeps none
}

// heldMax bounds a held buffer kept for reuse.
const heldMax = 64 << 10

// buffer returns an empty held buffer.
func (st *loopState) buffer() []byte {
	if n := len(st.free); n > 0 {
		b := st.free[n-1]
		st.free = st.free[:n-1]
		return b
	}
	return make([]byte, 0, 512)
}

// heldSlot is a reply in loopConn.held, [from, to), that depends on the write
// set's next commit.
type heldSlot struct{ from, to int }

// Handoff reasons (stats.handoffs, INFO's loop_handoffs_*): proxy's would-block
// reasons, and the front's own.
const (
	reasonNotLoop = "not-loop" // the command does not run inline (command.loop), or not now (MULTI)
	reasonOutput  = "output"   // the connection's output is past OutputBufferLimit
)

var handoffReasons = [...]string{proxy.ReasonForward, proxy.ReasonQuorum, proxy.ReasonOOMWait, proxy.ReasonLockBusy,
	proxy.ReasonSetFull, proxy.ReasonFlush, proxy.ReasonSteps, reasonNotLoop, reasonOutput}

func reasonIndex(r string) int {
	for i, h := range handoffReasons {
		if h == r {
			return i
		}
	}
	return len(handoffReasons) - 1
}

// newLoopStates gives each loop its fast path, its hook installed on the
// loop (a connection's commands run inline once ready is set).
func (s *Server) newLoopStates() map[*evloop.Loop]*loopState {
	m := make(map[*evloop.Loop]*loopState)
	for _, l := range s.loop.Loops() {
		st := &loopState{s: s, ws: s.px.NewWriteSet()}
		m[l] = st
		l.BeforeSleep(st.beforeSleep)
		l.Post(func() { st.ready = true }) // after the hook's own post
	}
	return m
}

// beforeSleep commits the iteration's write set, then queues the held
// replies (the loop writes them after its hooks), then starts the handoffs
// that waited for the commit.
func (st *loopState) beforeSleep() {
	st.commit()
	for _, e := range st.held {
		e.queued = false
		if !e.Closed() && len(e.held) > 0 {
			e.lc.Write(e.held) // a copy into the connection's output
			e.s.stats.netOut.Add(int64(len(e.held)))
		}
		if cap(e.held) <= heldMax && len(st.free) < cap(st.held) {
			st.free = append(st.free, e.held[:0])
		}
		e.held = nil
		if cap(e.slots) > 16 {
			e.slots = nil
		}
	}
	clear(st.held)
	st.held = st.held[:0]
	for _, e := range st.start {
		if !e.Closed() {
			e.handoff()
		}
	}
	clear(st.start)
	st.start = st.start[:0]
}

// commit commits the write set; when it fails, every held reply that
// depended on it becomes the error.
func (st *loopState) commit() {
	if st.ws == nil {
		return
	}
	if st.ws.Len() == 0 {
		// Nothing staged, but an Update that failed before staging (a failed
		// store) may have left its admission with the set: end it.
		st.ws.Discard()
		return
	}
	n := st.ws.Len()
	var err error
	if h := st.s.testHookCommit.Load(); h != nil {
		err = (*h)(st.ws)
	} else {
		err = st.ws.Commit()
	}
	st.s.stats.commits.Add(1)
	st.s.stats.committed.Add(int64(n))
	if err != nil {
		st.s.cfg.Logger.Error("commit of a loop's writes failed: their commands fail", "writes", n, "err", err)
	}
	for _, e := range st.held {
		if err != nil {
			e.failStaged(err)
		}
		e.slots = e.slots[:0]
	}
}

// failStaged replaces the held replies that depended on a failed commit by
// its error.
func (e *loopConn) failStaged(err error) {
	if len(e.slots) == 0 {
		return
	}
	line, _ := errorReply(err)
	b := make([]byte, 0, len(e.held))
	prev := 0
	for _, sl := range e.slots {
		b = append(b, e.held[prev:sl.from]...)
		b = append(b, line...)
		prev = sl.to
		e.s.stats.errorReplies.Add(1)
	}
	e.held = append(b, e.held[prev:]...)
}

// loopInfo adds the fast path's counters to INFO's stats section: commands
// run inline, handoffs by reason (one per handed-off batch, named for its
// first command's reason), and the write set commits with the writes they
// applied (loop_commit_writes / loop_commits is the mean commit size).
func (s *Server) loopInfo(b *infoBuilder) {
	if s.loopStates == nil {
		return
	}
	b.int("loop_inline_commands", s.stats.inline.Load())
	for i, r := range handoffReasons {
		b.int("loop_handoffs_"+strings.ReplaceAll(r, "-", "_"), s.stats.handoffs[i].Load())
	}
	b.int("loop_commits", s.stats.commits.Load())
	b.int("loop_commit_writes", s.stats.committed.Load())
}
