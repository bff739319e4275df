package netserve

import (
	"net"
	"time"

	"github.com/dynakv/dynakv/internal/deadline"
)

// deadlineConn is a connection on the goroutine driver whose every Write runs
// under Config.WriteTimeout (internal/deadline). Once its user sets a write
// deadline itself (a last error line with its own grace, a handshake), that
// deadline is left alone for the rest of the connection. Like a net.Conn's
// writes, it is used by one goroutine at a time.
type deadlineConn struct {
	net.Conn
	wd  deadline.Writer
	own bool // the user set a write deadline: Write no longer arms one
}

func newDeadlineConn(nc net.Conn, timeout time.Duration) *deadlineConn {
	return &deadlineConn{Conn: nc, wd: deadline.Writer{Timeout: timeout}}
}

func (c *deadlineConn) Write(b []byte) (int, error) {
	if !c.own {
		if err := c.wd.Arm(c.Conn); err != nil {
			return 0, err
		}
	}
	return c.Conn.Write(b)
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	c.own = true
	return c.Conn.SetWriteDeadline(t)
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.own = true
	return c.Conn.SetDeadline(t)
}
