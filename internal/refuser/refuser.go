// Package refuser answers connections a server turns away (too many clients) with
// one error line and closes them, without ever stalling the server's accept loop.
//
// Invariants: on a plain TCP connection the line is written at once (a fresh
// connection's send buffer is empty: the write cannot block); on any other (a TLS
// connection, whose first write needs the client's handshake) it is written by a
// goroutine under a one-second deadline, at most Max at once, and beyond that the
// connection is closed unanswered. Wait returns once every answer has ended. Refuse and Wait are safe for concurrent use,
// but Refuse must not be called once Wait was called (the servers call Wait after
// their accept loop ended).
package refuser

import (
	"net"
	"sync"
	"time"
)

// Max bounds the refused connections being answered at once.
const Max = 64

// Refuser answers refused connections. The zero value is not usable; use New.
type Refuser struct {
	slots chan struct{}
	wg    sync.WaitGroup
}

// New returns a Refuser.
func New() *Refuser { return &Refuser{slots: make(chan struct{}, Max)} }

// Refuse writes line to c (for other than plain TCP in the background, within a
// second) and closes c.
func (r *Refuser) Refuse(c net.Conn, line []byte) {
	if _, plain := c.(*net.TCPConn); plain {
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.Write(line)
		_ = c.Close()
		return
	}
	select {
	case r.slots <- struct{}{}:
	default:
		_ = c.Close()
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer func() { <-r.slots }()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		_, _ = c.Write(line)
		_ = c.Close()
	}()
}

// Wait waits for the answers under way.
func (r *Refuser) Wait() { r.wg.Wait() }
