package memcache

import (
	"errors"
	"io"

	"github.com/dynakv/dynakv/internal/evloop"
	"github.com/dynakv/dynakv/internal/loopcommit"
	"github.com/dynakv/dynakv/internal/netserve"
	"github.com/dynakv/dynakv/proxy"
)

// The loop driver (Config.IOModel loop): a plain TCP connection lives on an
// event loop (internal/evloop) and a loopConn is its engine. OnData feeds the
// input to the connection's reader (reader.go, the goroutine driver's), which
// finds the whole commands (a line and its data block) and keeps an incomplete
// one's bytes.
//
// Fast path (issue 19, S8): an authenticated connection with nothing pending
// runs its commands inline, in order, in try mode (inlineCommand says which
// may: get/gets/bget with any number of keys, gat/gats with one, the storage
// commands, incr/decr, delete, touch, mg/ms/md/ma/me, mn and version: handlers
// whose proxy calls are reads, or one write before which nothing ran), their
// ops staged in the loop's proxy.WriteSet with Session.Try. The first command
// that would block (Try's reasons, one that is not inline, or output past
// loopOutLimit before it or inlineMax within it) has its partial reply dropped
// and, with every later command, is handed off: the commands are copied out of
// the loop's buffer (a line aliases it; a block is a copy already), the
// connection pauses, and once the iteration's write set is committed a
// goroutine of netserve's bounded pool runs them with the goroutine driver's
// code (conn.run: the same handlers, in order), flushes the session and posts
// the reply bytes to the loop, which writes them and resumes the connection.
// Nothing of a connection is parsed while a batch of it is in flight, so a
// later command never runs before an earlier one's reply is queued. Before
// authentication everything is handed off, and the reader gives one command per
// batch: whether a line announces a data block depends on whether the command
// before it authenticated (blockFor).
//
// Durability: inline replies are held (loopcommit.Held) until the loop's
// commit point (internal/loopcommit: one per loop, shared with the RESP front
// on the same loops, Config.Commits) has committed the write set in its
// BeforeSleep hook, so no reply acknowledges a write, or shows a value, that is
// not durable. A failed commit replaces the reply of every command whose op
// depended on it (a staged write, or a read of a key the set held:
// Session.TakeStaged) by "SERVER_ERROR <the commit's error>", also where a meta
// q flag hid the nominal reply; a classic noreply hides it, as it hides every
// error. The other replies stand. A full set is committed at once (its replies
// still wait) and the command runs again. A handler that would block has
// changed no counter: those counted before its op are counted after it.
//
// Ownership: while a handoff is in flight (busy) the conn (its reader, session,
// tokens, auth state) belongs to the handoff goroutine; the loop touches only
// loopConn's loop fields. The handoff hands it back with its completion post.
// Fields the two sides share are atomics or channels.
//
// Ending: quit, an HTTP request line and the errors that end a connection
// (line too long, a refused authentication block, a failed session flush) stop
// the batch there: the replies so far are written, then the connection closes
// (what was parsed after is dropped), as on the goroutine driver.
//
// Output limit: a handoff's replies are buffered up to loopOutLimit; past it
// (and at mn) they are posted and the handoff waits until the loop has written
// them all (the goroutine driver's blocking write of its full buffer). A client
// that stops reading is closed by netserve's write timeout; the waiting handoff
// then sees the connection gone. After a batch, a connection with more than the
// limit pending stays paused until it drains.

// loopOutLimit bounds the replies a handoff buffers before it waits for them to
// be written, the output after which a connection stays paused, and the
// output (written or held) past which commands are no longer run inline.
const loopOutLimit = 64 << 10

// inlineMax bounds the replies one inline command makes (a multi-get): past it
// the command runs on a handoff, which writes in loopOutLimit chunks.
const inlineMax = 1 << 20

// keepIdle bounds the buffers a loop connection keeps between batches.
const keepIdle = 4 << 10

// loopConn is the loop driver's engine of one connection.
type loopConn struct {
	s *Server
	c *conn

	// Loop goroutine only.
	lc              *evloop.Conn
	batch           batch                             // the commands of the next handoff (the handoff's while busy)
	kept            int                               // input bytes left unused by the last OnData (counted already)
	busy            bool                              // a handoff is in flight
	ending          bool                              // the connection closes once its output is written
	spare           []byte                            // an output buffer a completed handoff gave back
	st              *loopcommit.Loop[*proxy.WriteSet] // the loop's commit point (shared with the loop's other fronts)
	loopcommit.Held                                   // inline replies of this iteration, written after the commit

	out            loopOut
	netserve.Drain // output waits (WhenDrained, Send); closed by OnClose
}

// batch is the whole commands of one OnData, copied out of the loop's buffer.
type batch struct {
	cmds    []command
	lines   []byte // the bytes of every cmds[i].line
	tooLong bool   // the reader refused the line after cmds: the connection ends
}

// add copies cmd in (its block is the reader's fresh copy already).
func (b *batch) add(cmd command) {
	b.lines = append(b.lines, cmd.line...)
	b.cmds = append(b.cmds, cmd)
}

// seal points the commands' lines at the batch's copies; lines must not grow
// after.
func (b *batch) seal() {
	off := 0
	for i := range b.cmds {
		n := len(b.cmds[i].line)
		b.cmds[i].line = b.lines[off : off+n : off+n]
		off += n
	}
}

// reset empties the batch for the next OnData, dropping large buffers (an idle
// connection keeps little).
func (b *batch) reset() {
	clear(b.cmds) // the blocks
	b.cmds, b.lines, b.tooLong = b.cmds[:0], b.lines[:0], false
	if cap(b.lines) > keepIdle || cap(b.cmds) > keepIdle/64 {
		b.cmds, b.lines = nil, nil
	}
}

// scribble overwrites b (the poison build's check for aliases of input).
func scribble(b []byte) {
	for i := range b {
		b[i] = 'X'
	}
}

// newLoops starts the event loops of the loop driver, or returns nil (logged)
// when they cannot start: the goroutine driver serves everything then.
func (s *Server) newLoops() *evloop.Group {
	g, err := netserve.NewLoops(s.cfg.IOLoops, s.cfg.PanicPolicy, evloop.Config{OnPanic: func(_ *evloop.Conn, p *evloop.PanicError) {
		s.cfg.Logger.Error("memcache: panic serving a connection", "panic", p.Value, "stack", string(p.Stack))
	}})
	if err != nil {
		s.cfg.Logger.Warn("memcache: event loops unavailable: serving every connection on its own goroutine", "err", err)
		return nil
	}
	return g
}

// newCommits gives the server's loops their commit point (internal/loopcommit),
// when the caller gave none (Config.Commits).
func (s *Server) newCommits() *loopcommit.Group[*proxy.WriteSet] {
	return loopcommit.New(s.loop, s.px.LoopWriteSet, func(writes int, err error) {
		s.cfg.Logger.Error("memcache: commit of a loop's writes failed: their commands fail", "writes", writes, "err", err)
	})
}

// onLoop builds the engine of a connection the loop driver runs.
func (s *Server) onLoop(c *conn) evloop.Handler {
	e := &loopConn{s: s, c: c}
	e.Drain.Init()
	e.out.e = e
	c.w = &e.out
	return e
}

// OnData finds the whole commands of in and hands them off.
func (e *loopConn) OnData(lc *evloop.Conn, in []byte) int {
	if e.lc == nil {
		e.lc = lc
		e.SetConn(lc)
		e.st = e.s.commits.Loop(lc.Loop())
	}
	e.s.stats.bytesRead.Add(uint64(len(in) - e.kept))
	used := 0
	if !e.busy && !e.ending {
		used = e.parse(in)
	}
	e.kept = len(in) - used
	if poison {
		scribble(in[:used])
	}
	return used
}

// parse runs the whole commands of in inline while it can, copies the first
// that would block and every later one into the batch and hands it off after
// the commit; it returns the bytes used (all of in, but for the commands after
// the first before authentication: those wait for the next OnData).
func (e *loopConn) parse(in []byte) int {
	c, b := e.c, &e.batch
	b.reset()
	used := 0
	ws, inline := e.st.Set()
	inline = inline && c.authed
	reason := reasonNotLoop
	for c.authed || len(b.cmds) == 0 {
		cmd, n, ok, err := c.in.next(in[used:])
		used += n
		if err != nil {
			b.tooLong, used = true, len(in)
			break
		}
		if !ok {
			break
		}
		if inline {
			if reason = e.inline(cmd, ws); reason == "" {
				continue
			}
			inline = false
		}
		b.add(cmd)
	}
	if len(b.cmds) > 0 || b.tooLong {
		b.seal()
		e.s.stats.handoffs.Add(reason)
		e.busy = true
		e.lc.Pause()
		// After the commit: a handed-off command must see what the inline
		// ones staged, and must not wait for their locks.
		e.st.After(e)
	}
	return used
}

// inline runs one command in try mode; it returns "" when it ran (its reply
// held until the commit), else why it must be handed off, with nothing done.
func (e *loopConn) inline(cmd command, ws *proxy.WriteSet) (reason string) {
	c := e.c
	out := e.lc.OutPending() + e.HeldLen()
	if out > loopOutLimit {
		return reasonOutput
	}
	for retried := false; ; retried = true {
		c.try, c.ws, c.blocked, c.inlineOut = true, ws, "", out
		c.w = &c.tryBuf
		c.dispatch(cmd) // never quit: quit is not inline
		c.try, c.ws, c.w = false, nil, &e.out
		if c.blocked == "" {
			e.ran()
			return ""
		}
		reason, c.blocked = c.blocked, ""
		c.tryBuf.b = c.tryBuf.b[:0]
		c.sess.TakeStaged() // a would-block staged nothing; an earlier op of the handler may have read the set
		if reason != proxy.ReasonSetFull || retried || ws.Len() == 0 {
			return reason
		}
		e.st.Commit() // the set is full: commit it (its replies still wait) and try again
	}
}

// ran holds an inline command's reply (or, for a quiet write, the place of its
// error should the commit fail) and counts it.
func (e *loopConn) ran() {
	c := e.c
	staged := c.sess.TakeStaged() && !c.hideErrors
	if len(c.tryBuf.b) > 0 || staged {
		e.st.Hold(e, c.tryBuf.b, staged)
	}
	c.tryBuf.b = c.tryBuf.b[:0]
	if cap(c.tryBuf.b) > keepIdle {
		c.tryBuf.b = nil
	}
	e.s.stats.inline.Add(1)
}

// FailReply implements loopcommit.Conn: a reply that depended on a failed
// commit becomes the error.
func (e *loopConn) FailReply(err error) []byte { return []byte(errorLine(err) + "\r\n") }

// Release implements loopcommit.Conn: the held replies go out.
func (e *loopConn) Release(b []byte) {
	e.lc.Write(b) // a copy into the connection's output
	e.s.stats.bytesWritten.Add(uint64(len(b)))
}

// StartHandoff implements loopcommit.Conn.
func (e *loopConn) StartHandoff() { e.handoff() }

// handoff gives the conn and the batch to a goroutine of the pool; the
// connection is paused until the completion.
func (e *loopConn) handoff() {
	e.busy = true
	e.lc.Pause()
	e.out.b = e.spare[:0]
	e.spare = nil
	if !e.s.ns.Handoff(e.run) {
		e.lc.Close() // the server is closing
	}
}

// run is a handoff: the goroutine driver's code over the copied batch, then the
// session's flush and the completion post. It runs on a pool goroutine.
func (e *loopConn) run() {
	if e.Closed() {
		return // closed while it waited in the pool's queue
	}
	if e.s.cfg.PanicPolicy != netserve.Crash {
		defer func() {
			if v := recover(); v != nil {
				e.s.cfg.Logger.Error("memcache: panic serving a connection", "panic", v)
				e.lc.Post(e.lc.Close)
			}
		}()
	}
	c, b := e.c, &e.batch
	open := true
	for i := range b.cmds {
		c.more = i < len(b.cmds)-1
		if open = c.run(b.cmds[i]); !open {
			break
		}
	}
	c.more = false
	if open && b.tooLong {
		c.tooLong()
		open = false
	}
	out, err := e.out.take()
	if err != nil {
		e.lc.Post(e.lc.Close)
		return
	}
	e.lc.Post(func() {
		e.write(out)
		if cap(out) <= keepIdle {
			e.spare = out
		}
		e.complete(open)
	})
}

// complete is the loop's side of a finished handoff: the conn is the loop's
// again; the connection resumes, or ends once its replies are written.
func (e *loopConn) complete(open bool) {
	e.busy = false
	e.batch.reset()
	switch {
	case !open:
		e.ending = true
		e.WhenDrained(e.lc.Close)
	case e.lc.OutPending() > loopOutLimit:
		e.WhenDrained(e.lc.Resume)
	default:
		e.lc.Resume()
	}
}

// write queues reply bytes on the connection, after the replies held for the
// commit.
func (e *loopConn) write(b []byte) {
	if e.AppendHeld(b) {
		return
	}
	e.lc.Write(b)
	e.s.stats.bytesWritten.Add(uint64(len(b)))
}

// OnClose ends the connection's engine: a handoff in flight finishes, and its
// completion is dropped.
func (e *loopConn) OnClose(_ *evloop.Conn, err error) {
	e.Drain.Close()
	e.s.cfg.Observer.Connection(protocolName, -1)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, evloop.ErrClosed) {
		e.s.cfg.Logger.Debug("memcache: client connection ended", "addr", e.c.nc.RemoteAddr().String(), "err", err)
	}
}

// loopOut is the loop driver's replyWriter: a handoff's replies, buffered, then
// posted to the loop. It is used by the handoff goroutine only.
type loopOut struct {
	e   *loopConn
	b   []byte
	err error // the connection failed: nothing more leaves
}

func (o *loopOut) Write(b []byte) (int, error) {
	o.b = append(o.b, b...)
	return len(b), o.spill()
}

func (o *loopOut) WriteString(s string) (int, error) {
	o.b = append(o.b, s...)
	return len(s), o.spill()
}

func (o *loopOut) WriteByte(c byte) error {
	o.b = append(o.b, c)
	return o.spill()
}

// spill flushes the replies once they pass loopOutLimit.
func (o *loopOut) spill() error {
	if len(o.b) > loopOutLimit {
		return o.Flush()
	}
	return o.err
}

// Flush posts the replies so far and waits until the client took them all (the
// goroutine driver's blocking write), or the connection closed.
func (o *loopOut) Flush() error {
	b, err := o.take()
	if err != nil || len(b) == 0 {
		return err
	}
	if err := o.e.Send(b, o.e.write); err != nil {
		o.err = err
		return err
	}
	return nil
}

// take flushes the session (durability before any reply leaves; when it fails
// nothing leaves) and returns the buffered replies, handing the buffer over to
// the loop. With nothing buffered it does neither, as a bufio.Writer's Flush.
func (o *loopOut) take() ([]byte, error) {
	if o.err != nil {
		o.b = nil
		return nil, o.err
	}
	if len(o.b) == 0 {
		return nil, nil
	}
	if err := o.e.c.sess.Flush(o.e.c.ctx); err != nil {
		o.err, o.b = err, nil
		return nil, err
	}
	b := o.b
	o.b = nil
	return b, nil
}

// bufOut is the replyWriter of an inline command (conn.tryBuf): its replies,
// buffered until they are held for the commit. Flush does nothing: held
// replies leave after the commit, mn's included.
type bufOut struct{ b []byte }

func (o *bufOut) Write(b []byte) (int, error) {
	o.b = append(o.b, b...)
	return len(b), nil
}

func (o *bufOut) WriteString(s string) (int, error) {
	o.b = append(o.b, s...)
	return len(s), nil
}

func (o *bufOut) WriteByte(c byte) error {
	o.b = append(o.b, c)
	return nil
}

func (o *bufOut) Flush() error { return nil }

// The front's own handoff reasons (counters.handoffs, stats'
// loop_handoffs_*), after proxy's would-block reasons.
const (
	reasonNotLoop = "not-loop" // the command is not inline (inlineCommand), or not now (before authentication)
	reasonOutput  = "output"   // the connection's output is past loopOutLimit, or the reply past inlineMax
)

// newHandoffs returns the handoff counters: proxy's reasons, then the front's.
func newHandoffs() *loopcommit.Handoffs {
	return loopcommit.NewHandoffs(append(proxy.Reasons(), reasonNotLoop, reasonOutput))
}

// inlineCommand reports whether a command line (its tokens, and the keys past
// the tokenizer's limit) may run inline: its handler's proxy calls are reads,
// or one write before which nothing ran, so that a would-block can run it
// again from the start on a handoff with nothing visible done
// (TestLoopHandlers). gat and gats write once per key: inline with one key.
func inlineCommand(toks [][]byte, rest []byte) bool {
	if len(toks) == 0 {
		return false
	}
	switch inlineVerbs[string(toks[0])] {
	case inlineAlways:
		return true
	case inlineOneKey:
		return len(toks) <= 3 && len(rest) == 0
	}
	return false
}

// inlineVerbs are the commands that may run inline (inlineCommand).
var inlineVerbs = map[string]inlineMode{
	"get": inlineAlways, "bget": inlineAlways, "gets": inlineAlways, "gat": inlineOneKey, "gats": inlineOneKey,
	"set": inlineAlways, "add": inlineAlways, "replace": inlineAlways, "append": inlineAlways, "prepend": inlineAlways,
	"cas": inlineAlways, "incr": inlineAlways, "decr": inlineAlways, "delete": inlineAlways, "touch": inlineAlways,
	"mg": inlineAlways, "ms": inlineAlways, "md": inlineAlways, "ma": inlineAlways, "me": inlineAlways,
	"mn": inlineAlways, "version": inlineAlways,
}

type inlineMode uint8

const (
	inlineNever  inlineMode = iota
	inlineAlways            // any arguments
	inlineOneKey            // gat, gats: one key (each key is a write)
)
