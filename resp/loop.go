package resp

import (
	"errors"
	"io"
	"time"

	"github.com/dynakv/dynakv/internal/evloop"
	"github.com/dynakv/dynakv/internal/loopcommit"
	"github.com/dynakv/dynakv/internal/netserve"
	"github.com/dynakv/dynakv/proxy"
)

// The loop driver (Config.IOModel loop): a plain TCP connection lives on an
// event loop (internal/evloop) and a loopConn is its engine. OnData parses the
// complete commands of the input with the same reqReader as the goroutine
// driver, and dispatch decides for each where it runs.
//
// Fast path (issue 19, S8): a connection with nothing pending runs its
// commands inline, in order, in try mode (command.loop says which may:
// handlers whose proxy calls are reads, or one write before which nothing
// ran), their ops staged in the loop's proxy.WriteSet with Session.Try. The
// first command that would block (Try's reasons, or one that is not inline,
// or a reply past OutputBufferLimit) has its partial reply dropped and, with
// every later command, is handed off: the connection pauses, the commands are
// copied out of the loop's buffer (the framer's spans die with OnData), and
// once the iteration's write set is committed a goroutine of netserve's
// bounded pool runs them through the goroutine driver's code (runBatch,
// serveCommand, the same handlers), flushes the session and posts the reply
// bytes to the loop, which writes them and resumes the connection: the rest of
// the input is parsed then, so a later command never runs before an earlier
// one's reply is queued.
//
// Durability: inline replies are held per connection (loopcommit.Held) until
// the loop's commit point (internal/loopcommit: one per loop, shared with the
// memcached front on the same loops, Config.Commits) has committed the write
// set in its BeforeSleep hook (one Pebble commit with the
// store's sync: inline on the loop in every fsync mode; with --fsync always the
// loop waits for the group commit's fsync, its other connections with it).
// A failed commit replaces the reply of every command whose op depended on it
// (a staged write, or a read of a key the set held: Session.TakeStaged) by
// the error; the other replies stand. So no reply acknowledges a write, or
// shows a value, that is not durable. A full set is committed at once (its
// replies still wait for BeforeSleep) and the command runs again.
//
// Ownership: while a handoff is in flight (busy) the client (its Reply, Session,
// auth and MULTI state, cmds) belongs to the handoff goroutine; the loop touches
// only loopConn's loop fields. The handoff hands it back with its completion
// post. Fields the two sides share are atomics or channels.
//
// Ordering: a connection has at most one pending slot: the handed-off batch.
// Its inline replies of the iteration precede it; nothing after it is parsed
// until it completes.
//
// Output limit: a handoff whose replies pass OutputBufferLimit (between commands,
// or inside one reply: Server.spill) posts what it has and waits for a credit,
// which the loop gives once the connection's output is all written
// (WhenDrained). A client that stops reading is closed by netserve's write
// timeout; the waiting handoff then sees the connection gone. After a batch, a
// connection with more than the limit pending stays paused until it drains.
// Inline commands stop (and hand off) once the output passes the limit.
type loopConn struct {
	s *Server
	c *client
	p reqReader

	// Loop goroutine only.
	lc              *evloop.Conn
	parsed          commands // spans of the loop's buffer: valid during OnData only
	kept            int      // input bytes left unused by the last OnData (counted already)
	busy            bool     // a handoff is in flight
	ending          bool     // the connection closes once its output is written
	spare           []byte   // an output buffer a completed handoff gave back
	grace           *time.Timer
	st              *loopcommit.Loop[*proxy.WriteSet] // the loop's commit point (shared with the loop's other fronts)
	loopcommit.Held                                   // inline replies of this iteration, written after the commit

	out            loopOut
	netserve.Drain // output waits (WhenDrained, Send); closed by OnClose
}

// spareMax bounds the output buffer a connection keeps between handoffs.
const spareMax = 4 << 10

// newLoops starts the event loops of the loop driver, or returns nil (logged)
// when they cannot start: the goroutine driver serves everything then.
func (s *Server) newLoops() *evloop.Group {
	g, err := netserve.NewLoops(s.cfg.IOLoops, s.cfg.PanicPolicy, evloop.Config{OnPanic: func(lc *evloop.Conn, p *evloop.PanicError) {
		addr := ""
		if lc != nil {
			if e, ok := lc.Data.(*loopConn); ok {
				addr = e.c.addr
			}
		}
		s.cfg.Logger.Error("panic serving a client connection", "addr", addr, "panic", p.Value, "stack", string(p.Stack))
	}})
	if err != nil {
		s.cfg.Logger.Warn("event loops unavailable: serving every connection on its own goroutine", "err", err)
		return nil
	}
	return g
}

// onLoop builds the engine of a connection the loop driver runs.
func (s *Server) onLoop(c *client) evloop.Handler {
	e := &loopConn{s: s, c: c, p: s.newReqReader()}
	e.Drain.Init()
	e.out.e = e
	c.out = &e.out
	return e
}

// OnData parses the complete commands of in and dispatches them.
func (e *loopConn) OnData(lc *evloop.Conn, in []byte) int {
	if e.lc == nil {
		e.lc, lc.Data = lc, e
		e.SetConn(lc)
		e.st = e.s.commits.Loop(lc.Loop())
	}
	e.s.stats.netIn.Add(int64(len(in) - e.kept))
	used := 0
	if !e.busy && !e.ending {
		used = e.parse(in)
	}
	e.kept = len(in) - used
	if poison {
		for i := range in[:used] {
			in[i] = 'X'
		}
	}
	return used
}

// parse parses and dispatches the commands of in; it returns the bytes used.
func (e *loopConn) parse(in []byte) int {
	used := 0
	for {
		e.parsed.reset()
		n, frames := e.p.parse(in[used:], &e.parsed, !e.c.authed)
		used += n
		if frames > 0 {
			e.dispatch()
		}
		if e.busy || e.ending {
			return used
		}
		if e.p.ended() {
			e.end()
			return used
		}
		if frames == 0 || used == len(in) {
			return used // before AUTH one command at a time: the next, if complete
		}
	}
}

// dispatch runs the parsed commands, in order: inline those it can, then the
// first that would block and every later one on a handoff.
func (e *loopConn) dispatch() {
	n := e.parsed.len()
	i, reason := 0, proxy.ReasonQuorum
	if ws, ok := e.st.Set(); ok {
		for ; i < n; i++ {
			if reason = e.inline(e.parsed.get(i), ws); reason != "" {
				break
			}
			if e.ending {
				e.parsed.reset()
				return
			}
		}
	}
	if i == n {
		e.parsed.reset()
		return
	}
	copyCommands(&e.c.cmds, &e.parsed, i)
	e.parsed.reset()
	e.s.stats.handoffs.Add(reason)
	e.busy = true
	e.lc.Pause()
	// After the commit: a handed-off command must see what the inline
	// ones staged, and must not wait for their locks.
	e.st.After(e)
}

// inline runs one command in try mode; it returns "" when it ran (its reply
// held until the commit), else why it must be handed off, with nothing done.
func (e *loopConn) inline(args [][]byte, ws *proxy.WriteSet) (reason string) {
	s, c := e.s, e.c
	if len(args) == 0 || c.closing {
		return ""
	}
	out := e.lc.OutPending() + e.HeldLen()
	if out > s.cfg.OutputBufferLimit {
		return reasonOutput
	}
	for retried := false; ; retried = true {
		c.try, c.ws, c.blocked, c.inlineOut = true, ws, "", out
		start := time.Now()
		name := s.safeExec(c, args)
		c.try, c.ws = false, nil
		if c.blocked == "" {
			e.ran(name, start)
			return ""
		}
		reason, c.blocked = c.blocked, ""
		c.w.reset()
		c.sess.TakeStaged() // a would-block staged nothing; an earlier op of the handler may have read the set
		if reason != proxy.ReasonSetFull || retried || ws.Len() == 0 {
			return reason
		}
		e.st.Commit() // the set is full: commit it (its replies still wait) and try again
	}
}

// ran holds an inline command's reply, counts it, and ends the connection if
// the command panicked.
func (e *loopConn) ran(name string, start time.Time) {
	s, c := e.s, e.c
	failed := c.w.failed
	if len(c.w.b) > 0 {
		e.st.Hold(e, c.w.b, c.sess.TakeStaged())
		s.noteOutput(e.lc.OutPending() + e.HeldLen())
	}
	c.w.reset()
	s.stats.commands.Add(1)
	s.stats.inline.Add(1)
	if failed {
		s.stats.errorReplies.Add(1)
	}
	c.lastAt.Store(start.UnixNano())
	s.cfg.Observer.Command("resp", name, time.Since(start), failed)
	if c.closing { // a panic, or a security warning: the replies so far, then the end
		if c.dropReplies {
			// Redis frees the client at once: replies not yet written are lost.
			e.DropHeld()
		}
		e.ending = true
		e.lc.Pause()
		e.WhenDrained(e.lc.Close)
	}
}

// copyCommands makes dst a copy of src's commands from the from-th on, in one
// new allocation (see commands.copyFrom).
func copyCommands(dst, src *commands, from int) {
	if from == 0 {
		dst.copyFrom(src)
		return
	}
	var tail commands
	start := src.ends[from-1]
	tail.args = src.args[start:]
	for _, end := range src.ends[from:] {
		tail.ends = append(tail.ends, end-start)
	}
	dst.copyFrom(&tail)
}

// notInline, in try mode, makes the command's handler stop and the command run
// on a handoff (it is not inline, or not in this state); it returns the name
// exec reports, which nobody sees.
func (c *client) notInline() string {
	c.blocked = reasonNotLoop
	return "unknown"
}

// handoff gives the client and its copied commands (c.cmds) to a goroutine of
// the pool; the connection is paused until the completion.
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
				e.s.cfg.Logger.Error("panic serving a client connection", "addr", e.c.addr, "panic", v)
				e.lc.Post(e.lc.Close)
			}
		}()
	}
	c := e.c
	e.s.runBatch(c)
	c.cmds.reset() // the copy of the batch: an idle connection keeps no input
	c.ran = 0
	if c.closed {
		return // the outlet posted the close
	}
	b, err := e.out.take()
	if err != nil {
		e.lc.Post(e.lc.Close)
		return
	}
	e.lc.Post(func() {
		e.write(b)
		if cap(b) <= spareMax {
			e.spare = b
		}
		e.complete()
	})
}

// complete is the loop's side of a finished handoff: the client is the loop's
// again; the connection resumes, or ends if the input broke the protocol.
func (e *loopConn) complete() {
	e.busy = false
	switch {
	case e.p.ended():
		e.end()
	case e.lc.OutPending() > e.s.cfg.OutputBufferLimit:
		e.WhenDrained(e.lc.Resume)
	default:
		e.lc.Resume()
	}
}

// end closes a connection whose input broke the protocol, once the replies so
// far and the error line are out (the line gets protocolGrace).
func (e *loopConn) end() {
	e.ending = true
	e.lc.Pause()
	line, _ := e.s.protocolEnd(&e.p, e.c.addr)
	if line != nil {
		e.write(line)
		lc := e.lc
		e.grace = time.AfterFunc(protocolGrace, func() { lc.Post(lc.Close) })
	}
	e.WhenDrained(e.lc.Close)
}

// write queues reply bytes on the connection, after the replies held for the
// commit.
func (e *loopConn) write(b []byte) {
	if e.AppendHeld(b) {
		return
	}
	e.lc.Write(b)
	e.s.stats.netOut.Add(int64(len(b)))
}

// OnClose ends the connection's engine: a handoff in flight finishes, and its
// completion is dropped.
func (e *loopConn) OnClose(_ *evloop.Conn, err error) {
	e.Drain.Close()
	if e.grace != nil {
		e.grace.Stop()
	}
	e.s.cfg.Observer.Connection("resp", -1)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, evloop.ErrClosed) {
		e.s.cfg.Logger.Debug("client connection ended", "addr", e.c.addr, "err", err)
	}
}

// loopOut is the loop driver's outlet: the replies of a handoff, buffered, then
// posted to the loop. It is used by the handoff goroutine only.
type loopOut struct {
	e   *loopConn
	b   []byte
	err error // the connection failed: nothing more leaves
}

func (o *loopOut) WriteRaw(b []byte) { o.b = append(o.b, b...) }

func (o *loopOut) Discard() { o.b = o.b[:0] }

// Flush posts the replies so far and waits until the client took them all (the
// goroutine driver's blocking write), or the connection closed.
func (o *loopOut) Flush() error {
	b, err := o.take()
	if err != nil {
		return err
	}
	if err := o.e.Send(b, o.e.write); err != nil {
		o.err = err
		return err
	}
	return nil
}

// take flushes the session and returns the buffered replies, handing the buffer
// over to the loop.
func (o *loopOut) take() ([]byte, error) {
	if o.err != nil {
		return nil, o.err
	}
	if err := o.e.s.flushSession(o.e.c); err != nil {
		o.err, o.b = err, nil
		return nil, err
	}
	b := o.b
	o.b = nil
	return b, nil
}

// Close ends the connection once what was flushed is written (Flush waited for
// that already).
func (o *loopOut) Close() {
	lc := o.e.lc
	lc.Post(lc.Close)
}
