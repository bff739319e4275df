package resp

import (
	"github.com/dynakv/dynakv/internal/loopcommit"
	"github.com/dynakv/dynakv/proxy"
)

// The front's own handoff reasons (stats.handoffs, INFO's loop_handoffs_*),
// after proxy's would-block reasons.
const (
	reasonNotLoop = "not-loop" // the command does not run inline (command.loop), or not now (MULTI)
	reasonOutput  = "output"   // the connection's output is past OutputBufferLimit
)

// newHandoffs returns the handoff counters: proxy's reasons, then the front's.
func newHandoffs() *loopcommit.Handoffs {
	return loopcommit.NewHandoffs(append(proxy.Reasons(), reasonNotLoop, reasonOutput))
}

// newCommits gives the server's loops their commit point (internal/loopcommit),
// when the caller gave none (Config.Commits): one per loop group, shared by
// every front on it.
func (s *Server) newCommits() *loopcommit.Group[*proxy.WriteSet] {
	return loopcommit.New(s.loop, s.px.LoopWriteSet, func(writes int, err error) {
		s.cfg.Logger.Error("commit of a loop's writes failed: their commands fail", "writes", writes, "err", err)
	})
}

// FailReply implements loopcommit.Conn: a reply that depended on a failed
// commit becomes the error.
func (e *loopConn) FailReply(err error) []byte {
	line, _ := errorReply(err)
	e.s.stats.errorReplies.Add(1)
	return line
}

// Release implements loopcommit.Conn: the held replies go out.
func (e *loopConn) Release(b []byte) {
	e.lc.Write(b) // a copy into the connection's output
	e.s.stats.netOut.Add(int64(len(b)))
}

// StartHandoff implements loopcommit.Conn.
func (e *loopConn) StartHandoff() { e.handoff() }

// loopInfo adds the fast path's counters to INFO's stats section: commands
// run inline, handoffs by reason (one per handed-off batch, named for its
// first command's reason), and the write set commits with the writes they
// applied (loop_commit_writes / loop_commits is the mean commit size).
func (s *Server) loopInfo(b *infoBuilder) {
	if s.commits == nil {
		return
	}
	b.int("loop_inline_commands", s.stats.inline.Load())
	s.stats.handoffs.Each(func(name string, n int64) { b.int("loop_handoffs_"+name, n) })
	commits, writes := s.commits.Stats()
	b.int("loop_commits", commits)
	b.int("loop_commit_writes", writes)
}

// LoopStats reports the fast path's counters (INFO's loop_*): commands run
// inline, and through handoff each reason (in INFO's spelling) with its handed-
// off batches. Both are zero when the server has no loops.
func (s *Server) LoopStats(handoff func(reason string, n int64)) (inline int64) {
	s.stats.handoffs.Each(handoff)
	return s.stats.inline.Load()
}
