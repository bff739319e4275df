//go:build !linux

package evloop

import (
	"syscall"
	"time"
)

// Supported reports whether New can work here (not Linux: false).
func Supported() bool { return false }

// Loop is not available here: New returns ErrUnsupported.
type Loop struct{}

// New returns ErrUnsupported.
func New(Config) (*Loop, error) { return nil, ErrUnsupported }

// Add returns ErrUnsupported.
func (l *Loop) Add(fd int, h Handler) (*Conn, error) { return nil, ErrUnsupported }

// Post returns false.
func (l *Loop) Post(func()) bool { return false }

// BeforeSleep does nothing.
func (l *Loop) BeforeSleep(func()) {}

// OnTick does nothing.
func (l *Loop) OnTick(func()) {}

// Len returns 0.
func (l *Loop) Len() int { return 0 }

// Close does nothing.
func (l *Loop) Close() {}

func (l *Loop) beginClose() {}

// Conn is not available here.
type Conn struct {
	Data any
}

func (c *Conn) Loop() *Loop                { return nil }
func (c *Conn) Fd() int                    { return -1 }
func (c *Conn) Write([]byte)               {}
func (c *Conn) WriteString(string)         {}
func (c *Conn) OutPending() int            { return 0 }
func (c *Conn) OutPendingSince() time.Time { return time.Time{} }
func (c *Conn) Pause()                     {}
func (c *Conn) WantDrain()                 {}
func (c *Conn) Resume()                    {}
func (c *Conn) Paused() bool               { return false }
func (c *Conn) Close()                     {}
func (c *Conn) Closed() bool               { return true }
func (c *Conn) Post(func()) bool           { return false }
func Dup(sc syscall.Conn) (int, error)     { return -1, ErrUnsupported }
