package resp

import (
	"errors"
	"io"
	"sync/atomic"
	"time"

	"github.com/dynakv/dynakv/internal/evloop"
	"github.com/dynakv/dynakv/internal/netserve"
)

// The loop driver (Config.IOModel loop): a plain TCP connection lives on an
// event loop (internal/evloop) and a loopConn is its engine. OnData parses the
// complete commands of the input with the same reqReader as the goroutine
// driver, and decides for each where it runs. Today every command is handed off
// (the place is dispatch): the connection pauses, the commands are copied out of
// the loop's buffer (the framer's spans die with OnData), and a goroutine of
// netserve's bounded pool runs them through the goroutine driver's code
// (runBatch, serveCommand, the same handlers), flushes the session and posts the
// reply bytes to the loop, which writes them and resumes the connection: the
// rest of the input is parsed then, so a later command never runs before an
// earlier one's reply is queued.
//
// Ownership: while a handoff is in flight (busy) the client (its Reply, Session,
// auth and MULTI state, cmds) belongs to the handoff goroutine; the loop touches
// only loopConn's loop fields. The handoff hands it back with its completion
// post. Fields the two sides share are atomics or channels.
//
// Ordering: a connection has at most one pending slot: the handed-off batch.
// Output written by the loop in this iteration (a future inline reply) precedes
// it; nothing after it is parsed until it completes. The fast path (S8) adds
// inline commands in dispatch, before the first handed-off one.
//
// Output limit: a handoff whose replies pass OutputBufferLimit (between commands,
// or inside one reply: Server.spill) posts what it has and waits for a credit,
// which the loop gives once the connection's output is all written
// (whenDrained). A client that stops reading is closed by netserve's write
// timeout; the waiting handoff then sees the connection gone. After a batch, a
// connection with more than the limit pending stays paused until it drains.
type loopConn struct {
	s *Server
	c *client
	p reqReader

	// Loop goroutine only.
	lc      *evloop.Conn
	parsed  commands // spans of the loop's buffer: valid during OnData only
	kept    int      // input bytes left unused by the last OnData (counted already)
	busy    bool     // a handoff is in flight
	ending  bool     // the connection closes once its output is written
	drained func()   // runs when the output is all written (whenDrained)
	spare   []byte   // an output buffer a completed handoff gave back
	grace   *time.Timer

	out    loopOut
	credit chan struct{} // the loop's go-ahead after a flush (capacity 1)
	gone   chan struct{} // closed by OnClose
	closed atomic.Bool
}

// spareMax bounds the output buffer a connection keeps between handoffs.
const spareMax = 4 << 10

// errGone is a handoff's flush to a connection that closed meanwhile.
var errGone = errors.New("resp: connection closed")

// newLoops starts the event loops of the loop driver, or returns nil (logged)
// when they cannot start: the goroutine driver serves everything then.
func (s *Server) newLoops() *evloop.Group {
	cfg := evloop.Config{
		OnPanic: func(lc *evloop.Conn, p *evloop.PanicError) {
			addr := ""
			if lc != nil {
				if e, ok := lc.Data.(*loopConn); ok {
					addr = e.c.addr
				}
			}
			s.cfg.Logger.Error("panic serving a client connection", "addr", addr, "panic", p.Value, "stack", string(p.Stack))
		},
	}
	if s.cfg.PanicPolicy == netserve.Crash {
		cfg.Panic = evloop.PanicCrash
	}
	g, err := evloop.NewGroup(s.cfg.IOLoops, cfg)
	if err != nil {
		s.cfg.Logger.Warn("event loops unavailable: serving every connection on its own goroutine", "err", err)
		return nil
	}
	return g
}

// onLoop builds the engine of a connection the loop driver runs.
func (s *Server) onLoop(c *client) evloop.Handler {
	e := &loopConn{s: s, c: c, p: s.newReqReader(), credit: make(chan struct{}, 1), gone: make(chan struct{})}
	e.out.e = e
	c.out = &e.out
	return e
}

// OnData parses the complete commands of in and dispatches them.
func (e *loopConn) OnData(lc *evloop.Conn, in []byte) int {
	if e.lc == nil {
		e.lc, lc.Data = lc, e
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
	e.parsed.reset()
	used, frames := e.p.parse(in, &e.parsed, !e.c.authed)
	if frames > 0 {
		e.dispatch()
	} else if e.p.ended() {
		e.end()
	}
	return used
}

// dispatch runs the parsed commands, in order. Every command is handed off
// today; the fast path will run here, inline, the commands before the first one
// that has to be handed off.
func (e *loopConn) dispatch() {
	e.c.cmds.copyFrom(&e.parsed)
	e.parsed.reset()
	e.handoff()
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
	if e.closed.Load() {
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
		e.whenDrained(e.lc.Resume)
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
	e.whenDrained(e.lc.Close)
}

// write queues reply bytes on the connection.
func (e *loopConn) write(b []byte) {
	e.lc.Write(b)
	e.s.stats.netOut.Add(int64(len(b)))
}

// whenDrained runs f on the loop once the connection's output is all written
// (evloop's WantDrain: at this iteration's writes, or after EPOLLOUT).
func (e *loopConn) whenDrained(f func()) {
	e.drained = f
	e.lc.WantDrain()
}

// OnDrain runs what waits for the output to be written.
func (e *loopConn) OnDrain(*evloop.Conn) {
	if f := e.drained; f != nil {
		e.drained = nil
		f()
	}
}

// OnClose ends the connection's engine: a handoff in flight finishes, and its
// completion is dropped.
func (e *loopConn) OnClose(_ *evloop.Conn, err error) {
	e.closed.Store(true)
	close(e.gone)
	if e.grace != nil {
		e.grace.Stop()
	}
	e.drained = nil
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
	e := o.e
	e.lc.Post(func() {
		e.write(b)
		e.whenDrained(func() {
			select { // never blocks the loop: one credit is outstanding at most
			case e.credit <- struct{}{}:
			default:
			}
		})
	})
	select {
	case <-e.credit:
		return nil
	case <-e.gone:
		o.err = errGone
		return o.err
	}
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
