// Package deadline keeps a connection's write deadline armed for every write to a
// client without a runtime timer update per write, which a server answering one
// request per write would otherwise pay on its hot path.
//
// Invariant: when Arm returns nil, the connection's write deadline is at least
// 0.9 × timeout after now (the deadline is moved forward only when the one set
// last is older than timeout/10, at most a second), so a client that takes no
// bytes is cut off between 0.9 × timeout and timeout after the write started. A
// Writer belongs to one connection and is used by one goroutine at a time.
package deadline

import "time"

// maxRefresh caps how stale the armed deadline may get: with the 30 s default a
// stalled write is cut after 29 to 30 seconds.
const maxRefresh = time.Second

// Conn is the part of a net.Conn a Writer arms.
type Conn interface{ SetWriteDeadline(time.Time) error }

// Writer arms one connection's write deadline. The zero value is ready: with a
// zero or negative Timeout, Arm does nothing.
type Writer struct {
	Timeout time.Duration
	set     time.Time // when the deadline was last moved
}

// Arm makes sure c's write deadline lies at least 0.9 × Timeout ahead.
func (w *Writer) Arm(c Conn) error {
	if w.Timeout <= 0 {
		return nil
	}
	now := time.Now()
	if !w.set.IsZero() && now.Sub(w.set) < min(w.Timeout/10, maxRefresh) {
		return nil
	}
	if err := c.SetWriteDeadline(now.Add(w.Timeout)); err != nil {
		return err
	}
	w.set = now
	return nil
}

// Reset forgets the armed deadline, for a caller that set another one on c
// itself: the next Arm sets it again.
func (w *Writer) Reset() { w.set = time.Time{} }
