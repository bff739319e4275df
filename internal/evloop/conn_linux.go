//go:build linux

package evloop

import (
	"time"

	"golang.org/x/sys/unix"
)

// Conn is one connection of a Loop. Its methods are for the loop goroutine only
// (see the package doc); from elsewhere use Post.
type Conn struct {
	// Data is the handler's own per-connection state.
	Data any

	loop   *Loop
	h      Handler
	fd     int
	id     uint32 // in the epoll event with fd; never 0
	events uint32 // the registered epoll mask

	registered bool
	closed     bool
	paused     bool // Pause: no reading, no OnData
	eof        bool // the peer has stopped sending
	closeAfter bool // close once out is written (after eof)
	wantOut    bool // EPOLLOUT is registered: the kernel refused part of out
	wantDrain  bool // WantDrain: call OnDrain once out is all written
	dirty      bool // in loop.dirty
	queued     bool // in loop.ready

	in    []byte    // input OnData did not use; nil when there is none
	out   []byte    // output; out[sent:] is not yet written
	sent  int       //
	since time.Time // out pending since: last progress, or the first byte
}

// Loop returns the connection's loop.
func (c *Conn) Loop() *Loop { return c.loop }

// Fd returns the connection's descriptor (for getsockopt and the like; it is
// closed when the connection is).
func (c *Conn) Fd() int { return c.fd }

// Write appends b to the output, which is written after this iteration's
// BeforeSleep hooks. Writes to a closed connection are dropped.
func (c *Conn) Write(b []byte) {
	if c.closed || len(b) == 0 {
		return
	}
	c.grow()
	c.out = append(c.out, b...)
}

// WriteString is Write of a string.
func (c *Conn) WriteString(s string) {
	if c.closed || len(s) == 0 {
		return
	}
	c.grow()
	c.out = append(c.out, s...)
}

// grow readies out for an append and marks the connection for the flush.
func (c *Conn) grow() {
	l := c.loop
	switch {
	case c.out == nil:
		c.out = l.getBuf()
		c.since = l.now
	case c.sent > 0 && c.sent >= len(c.out)/2:
		c.out = c.out[:copy(c.out, c.out[c.sent:])]
		c.sent = 0
	}
	if !c.wantOut { // else EPOLLOUT writes it when the kernel has room
		l.markDirty(c)
	}
}

// OutPending is the number of output bytes not yet taken by the kernel.
func (c *Conn) OutPending() int { return len(c.out) - c.sent }

// OutPendingSince is when the output last made progress, or when it became
// non-empty; zero when there is none. A Tick closes a writer stale past its limit.
func (c *Conn) OutPendingSince() time.Time { return c.since }

// WantDrain asks for one Drainer.OnDrain call once the output is all written,
// also when the kernel takes it at once: at this iteration's writes (at once
// there if there is no output), or later, with EPOLLOUT. An engine that waits
// for a slow reader (an output limit, a close after the last reply) uses it.
func (c *Conn) WantDrain() {
	if c.closed {
		return
	}
	c.wantDrain = true
	c.loop.markDirty(c)
}

// Pause stops reading: no OnData until Resume (the input the last OnData left
// unused is kept). TCP pushes back on the peer.
func (c *Conn) Pause() {
	if c.closed || c.paused {
		return
	}
	c.paused = true
	c.loop.setMask(c)
}

// Resume undoes Pause. Kept input is given to OnData again in this iteration,
// before the BeforeSleep hooks.
func (c *Conn) Resume() {
	if c.closed || !c.paused {
		return
	}
	c.paused = false
	c.loop.setMask(c)
	if (len(c.in) > 0 || c.eof) && !c.queued && !c.closed {
		c.queued = true
		c.loop.ready = append(c.loop.ready, c)
	}
}

// Paused reports whether the connection is paused.
func (c *Conn) Paused() bool { return c.paused }

// Close closes the connection: it tries one write of the pending output (what
// the kernel takes at once), closes the descriptor and calls OnClose with a nil
// error. It is idempotent.
func (c *Conn) Close() { c.loop.closeConn(c, nil) }

// Closed reports whether the connection has closed.
func (c *Conn) Closed() bool { return c.closed }

// Post runs f on the loop goroutine if the connection is still open then; a
// panic in f closes the connection. It is safe from any goroutine, and returns
// false if the loop is closing (f will not run).
func (c *Conn) Post(f func()) bool {
	return c.loop.Post(func() {
		if !c.closed {
			c.loop.safe(c, f)
		}
	})
}

func (c *Conn) mask() uint32 {
	var m uint32
	if !c.paused && !c.eof {
		m |= unix.EPOLLIN | unix.EPOLLRDHUP
	}
	if c.wantOut {
		m |= unix.EPOLLOUT
	}
	return m
}
