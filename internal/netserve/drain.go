package netserve

import (
	"errors"
	"sync/atomic"

	"github.com/dynakv/dynakv/internal/evloop"
)

// ErrGone is Drain.Send's error when the connection closed before its output
// was written: a handoff's replies to a client that went away.
var ErrGone = errors.New("netserve: connection closed")

// Drain is the part of a loop connection's engine (a protocol's evloop.Handler)
// that waits for the connection's output to leave, shared by the RESP and
// memcached engines. An engine embeds it, calls Init when it is built, SetConn
// at the connection's first event (before any handoff), and Close from its
// OnClose; its OnDrain (an evloop.Drainer method) is Drain's.
//
// Two sides use it. On the loop goroutine, WhenDrained runs a func once the
// output is all written (resume a paused connection, close it after its last
// reply). On a handoff goroutine, Send posts reply bytes to the loop and waits
// until they are all written or the connection closed: the goroutine driver's
// blocking write, without blocking the loop, so a client that does not read
// holds back only its own handoff (and netserve's write timeout closes it).
type Drain struct {
	lc      *evloop.Conn
	drained func()        // loop goroutine only: runs when the output is all written
	credit  chan struct{} // the loop's go-ahead after a Send (one outstanding at most)
	gone    chan struct{} // closed by Close
	closed  atomic.Bool
}

// Init readies d; call it when the engine is built, before the loop can call
// its OnClose.
func (d *Drain) Init() {
	d.credit = make(chan struct{}, 1)
	d.gone = make(chan struct{})
}

// SetConn gives d its connection, on the loop goroutine at the connection's
// first event, before any Send.
func (d *Drain) SetConn(lc *evloop.Conn) { d.lc = lc }

// WhenDrained runs f on the loop once the connection's output is all written
// (evloop's WantDrain: at this iteration's writes, or after EPOLLOUT); it
// replaces a func set before and not run yet. Loop goroutine only.
func (d *Drain) WhenDrained(f func()) {
	d.drained = f
	d.lc.WantDrain()
}

// OnDrain implements evloop.Drainer: it runs what waits for the output.
func (d *Drain) OnDrain(*evloop.Conn) {
	if f := d.drained; f != nil {
		d.drained = nil
		f()
	}
}

// Close marks the connection closed: a Send waiting returns ErrGone, and no
// WhenDrained func runs. Call it once, from the engine's OnClose.
func (d *Drain) Close() {
	d.closed.Store(true)
	close(d.gone)
	d.drained = nil
}

// Closed reports whether Close ran; safe from any goroutine.
func (d *Drain) Closed() bool { return d.closed.Load() }

// Send posts b to the loop, where write queues it on the connection, and waits
// until the connection's output is all written (nil) or the connection closed
// (ErrGone). It is called by a handoff goroutine, never the loop's.
func (d *Drain) Send(b []byte, write func([]byte)) error {
	d.lc.Post(func() {
		write(b)
		d.WhenDrained(func() {
			select { // never blocks the loop: one credit is outstanding at most
			case d.credit <- struct{}{}:
			default:
			}
		})
	})
	select {
	case <-d.credit:
		return nil
	case <-d.gone:
		return ErrGone
	}
}
