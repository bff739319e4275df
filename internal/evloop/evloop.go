// Package evloop is dynakv's epoll event loop: a few goroutines, each with one
// epoll instance, serve many non-blocking sockets, the way Redis's ae does. It has
// no dynakv imports (golang.org/x/sys/unix only) and runs on Linux only; elsewhere
// New returns ErrUnsupported and callers use a goroutine per connection.
//
// One iteration of a Loop: epoll_wait (level-triggered; its timeout is the next
// tick), then for every ready socket one read(2) into the loop's shared read
// buffer and Handler.OnData, then the mailbox (funcs that other goroutines gave to
// Post, in order), then the input of resumed connections, then Config.Tick when
// due, then the BeforeSleep hooks, then one write(2) per connection with output.
// A write the kernel does not take in full waits for EPOLLOUT.
//
// Invariants:
//   - A Loop owns its connections outright: a Conn's methods, its Data field and
//     everything the Handler keeps for it are used on the loop goroutine only
//     (inside OnData, OnClose, a posted func, a hook or Tick). Other goroutines
//     reach a connection through Conn.Post or Loop.Post. Loop.Post, Loop.Add,
//     Loop.BeforeSleep, Loop.Len and Loop.Close are safe from any goroutine.
//   - Idle connections hold no buffers: input that OnData did not use (an
//     incomplete command) is copied into the connection's own buffer, which is
//     dropped once used up; output buffers go back to the loop's free list once
//     written.
//   - The in slice given to OnData aliases the loop's read buffer and is valid
//     only until OnData returns.
//   - No reply is written before the iteration's BeforeSleep hooks ran, so a hook
//     that commits the iteration's writes makes every reply wait for the commit.
//   - A descriptor is never acted on after its Conn closed: the epoll event
//     carries the fd and the connection's id, and both must match.
//   - OnData, OnClose, posted funcs, hooks and Tick run under recover. With
//     PanicCloseConn a panic in OnData or in a Conn.Post func closes that
//     connection (OnClose gets a *PanicError); any other panic is reported and the
//     loop goes on. With PanicCrash the panic goes on up and ends the process.
//   - Close closes every connection (OnClose with ErrClosed), the epoll fd and the
//     eventfd, and returns once the loop goroutine has ended; it is idempotent and
//     concurrent callers all wait. It must not be called from the loop goroutine.
package evloop

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrUnsupported is New's error where there is no epoll (not Linux).
	ErrUnsupported = errors.New("evloop: not supported on this system")
	// ErrClosed is the error of Add on a closed Loop, and OnClose's error for the
	// connections that Loop.Close closed.
	ErrClosed = errors.New("evloop: loop closed")
	// ErrBadUsed is OnClose's error when OnData returned a count outside [0, len(in)].
	ErrBadUsed = errors.New("evloop: OnData returned a bad count")
)

// Handler is what a Loop calls for a connection, always on the loop goroutine.
type Handler interface {
	// OnData is given the connection's input: its unused bytes from before, then
	// what arrived. It returns how many bytes it used; the rest (an incomplete
	// command) is kept and given again, in front of the next input. in is valid
	// only until OnData returns. OnData may call c.Write, c.Pause, c.Resume and
	// c.Close.
	OnData(c *Conn, in []byte) (used int)
	// OnClose is called once, when the connection has closed: err is io.EOF when
	// the peer ended it, nil when Conn.Close did, ErrClosed when Loop.Close did, or
	// the error that ended it.
	OnClose(c *Conn, err error)
}

// Drainer is an optional Handler method: OnDrain is called when a connection's
// output, which the kernel had refused in part (EAGAIN), has all been written,
// and once after Conn.WantDrain when it has. An engine that pauses a connection
// above an output limit resumes it there.
type Drainer interface {
	OnDrain(c *Conn)
}

// HandlerFuncs adapts two funcs to a Handler; a nil func does nothing (a nil Data
// uses all input).
type HandlerFuncs struct {
	Data  func(c *Conn, in []byte) int
	Close func(c *Conn, err error)
}

// OnData calls h.Data.
func (h HandlerFuncs) OnData(c *Conn, in []byte) int {
	if h.Data == nil {
		return len(in)
	}
	return h.Data(c, in)
}

// OnClose calls h.Close.
func (h HandlerFuncs) OnClose(c *Conn, err error) {
	if h.Close != nil {
		h.Close(c, err)
	}
}

// PanicPolicy says what a panic in a handler does.
type PanicPolicy int

const (
	// PanicCloseConn closes the connection whose OnData (or Conn.Post func)
	// panicked and keeps the loop running (the default).
	PanicCloseConn PanicPolicy = iota
	// PanicCrash lets the panic go on, which ends the process (tests).
	PanicCrash
)

// PanicError is OnClose's error for a connection closed by a panic.
type PanicError struct {
	Value any    // what was given to panic
	Stack []byte // the panicking goroutine's stack
}

func (e *PanicError) Error() string { return fmt.Sprintf("evloop: panic: %v", e.Value) }

// Config is a Loop's configuration. The zero value is usable: DefaultConfig's
// values fill its zero fields.
type Config struct {
	// ReadBuffer is the size of the loop's shared read buffer, in bytes: the most
	// one read(2) takes; default 64 KiB.
	ReadBuffer int
	// MaxEvents is the most events one epoll_wait returns; default 256.
	MaxEvents int
	// Tick, when set, is called on the loop goroutine every TickInterval (a
	// caller closes stale writers there: see Conn.OutPendingSince).
	Tick func()
	// TickInterval is Tick's period; default 100 ms.
	TickInterval time.Duration
	// Panic is the panic policy; default PanicCloseConn.
	Panic PanicPolicy
	// OnPanic, when set, is told of every recovered panic, on the loop goroutine: c
	// is the connection it closed, or nil for a panic outside any connection.
	OnPanic func(c *Conn, p *PanicError)
	// OnIteration, when set, is told on the loop goroutine how long each
	// iteration kept the loop busy: from epoll_wait's return to the end of its
	// writes, hooks included. A long one is a loop some work blocked (a cold
	// disk read, a lock), which every connection of the loop waited for.
	OnIteration func(busy time.Duration)
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{ReadBuffer: 64 << 10, MaxEvents: 256, TickInterval: 100 * time.Millisecond}
}

// EnsureDefaults returns cfg with its zero fields set to the defaults.
func (cfg Config) EnsureDefaults() Config {
	d := DefaultConfig()
	if cfg.ReadBuffer <= 0 {
		cfg.ReadBuffer = d.ReadBuffer
	}
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = d.MaxEvents
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = d.TickInterval
	}
	return cfg
}

// Validate reports a config that cannot work.
func (cfg Config) Validate() error {
	if cfg.ReadBuffer < 0 || cfg.MaxEvents < 0 || cfg.TickInterval < 0 {
		return errors.New("evloop: negative ReadBuffer, MaxEvents or TickInterval")
	}
	if cfg.Panic != PanicCloseConn && cfg.Panic != PanicCrash {
		return fmt.Errorf("evloop: unknown panic policy %d", cfg.Panic)
	}
	return nil
}
