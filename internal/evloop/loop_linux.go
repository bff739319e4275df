//go:build linux

package evloop

import (
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Supported reports whether New can work here (Linux: true).
func Supported() bool { return true }

// Loop is one event loop: a goroutine, an epoll fd (level-triggered), an eventfd
// and a mailbox. See the package doc for what runs on it and in which order.
type Loop struct {
	cfg  Config
	epfd int
	evfd int
	done chan struct{} // closed when the loop goroutine has ended
	n    atomic.Int64  // connections added and not yet closed

	// The mailbox. woken says the eventfd was written since the loop last
	// emptied posts, so only the first post of an iteration writes it. closing
	// refuses new posts; the eventfd is written only under mu and while closing is
	// false, so it is never written after the loop closed it.
	mu      sync.Mutex
	posts   []func()
	woken   bool
	closing bool

	// The rest is the loop goroutine's own.
	buf      []byte // the shared read buffer
	events   []unix.EpollEvent
	conns    map[int]*Conn // by fd: the registered, open connections
	lastID   uint32
	running  []func()  // the posts being run
	hooks    []func()  // BeforeSleep
	ticks    []func()  // OnTick
	dirty    []*Conn   // connections with output to write this iteration
	ready    []*Conn   // resumed connections with input to give again
	free     [][]byte  // output buffers to reuse
	now      time.Time // taken once per iteration, after epoll_wait
	nextTick time.Time // when Tick is due
	fatal    error     // what ended the loop, for the connections' OnClose
}

const (
	outBufSize   = 4 << 10  // a fresh output buffer's capacity
	outBufMax    = 64 << 10 // larger output buffers are not kept for reuse
	freeBufs     = 64       // output buffers kept for reuse
	inTailRead   = 16 << 10 // read straight into conn.in when it has this much room
	connInShrink = 64 << 10
)

// New starts a loop.
func New(cfg Config) (*Loop, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.EnsureDefaults()
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("evloop: epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("evloop: eventfd: %w", err)
	}
	// The eventfd's event carries id 0, which no connection has.
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}); err != nil {
		unix.Close(evfd)
		unix.Close(epfd)
		return nil, fmt.Errorf("evloop: epoll_ctl eventfd: %w", err)
	}
	l := &Loop{
		cfg: cfg, epfd: epfd, evfd: evfd, done: make(chan struct{}),
		buf: make([]byte, cfg.ReadBuffer), events: make([]unix.EpollEvent, cfg.MaxEvents),
		conns: map[int]*Conn{},
	}
	l.now = time.Now()
	l.nextTick = l.now.Add(cfg.TickInterval)
	go l.run()
	return l, nil
}

// Add gives the loop a connected, non-blocking socket (see Dup) and returns its
// Conn. The loop owns fd from then on, also when Add fails (it is closed then).
// The connection is registered on the loop goroutine, after what was posted
// before; an epoll error there closes it (OnClose gets the error).
func (l *Loop) Add(fd int, h Handler) (*Conn, error) {
	if fd < 0 || h == nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, errors.New("evloop: Add needs an fd and a Handler")
	}
	c := &Conn{loop: l, h: h, fd: fd}
	l.n.Add(1)
	if !l.Post(func() { l.register(c) }) {
		l.n.Add(-1)
		unix.Close(fd)
		return nil, ErrClosed
	}
	return c, nil
}

// Post runs f on the loop goroutine, after the events of the current iteration,
// in the order of the posts. It returns false, and f will not run, once the loop
// is closing. A panic in f is reported (Config.OnPanic) and the loop goes on.
func (l *Loop) Post(f func()) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return false
	}
	l.posts = append(l.posts, f)
	if !l.woken {
		l.woken = true
		l.wake()
	}
	return true
}

// wake writes the eventfd; l.mu is held.
func (l *Loop) wake() {
	one := [8]byte{1}
	for {
		// EAGAIN means the counter is already non-zero: the loop will wake.
		if _, err := unix.Write(l.evfd, one[:]); err != unix.EINTR {
			return
		}
	}
}

// BeforeSleep adds f to the hooks that run once per iteration, after the events,
// the posts and Tick, before the output is written (Redis's beforeSleep). It takes
// effect from the loop's next iteration.
func (l *Loop) BeforeSleep(f func()) {
	l.Post(func() { l.hooks = append(l.hooks, f) })
}

// OnTick adds f to what runs on the loop goroutine every Config.TickInterval,
// after Config.Tick (a server sharing the loop closes its stale writers there).
// It takes effect from the loop's next iteration, and makes the loop wake for
// ticks even without Config.Tick.
func (l *Loop) OnTick(f func()) {
	l.Post(func() { l.ticks = append(l.ticks, f) })
}

// Len is the number of the loop's connections (added and not yet closed).
func (l *Loop) Len() int { return int(l.n.Load()) }

// Close closes every connection (OnClose with ErrClosed), ends the loop goroutine
// and closes the epoll fd and the eventfd; what was posted before runs first. It
// returns once all that is done; it is idempotent, and concurrent callers all
// wait. It must not be called on the loop goroutine.
func (l *Loop) Close() {
	l.beginClose()
	<-l.done
}

func (l *Loop) beginClose() {
	l.mu.Lock()
	if !l.closing {
		l.closing = true
		if !l.woken {
			l.woken = true
			l.wake()
		}
	}
	l.mu.Unlock()
}

// run is the loop goroutine. A panic in the loop's own code (outside any handler)
// fails the loop's connections and starts the loop again, once; a second one, or
// an epoll error, ends the loop as Close does.
func (l *Loop) run() {
	defer close(l.done)
	for restarts := 0; ; restarts++ {
		if !l.iterate() || restarts == 1 {
			break
		}
	}
	l.shutdown()
}

// iterate runs iterations until the loop closes (false) or panics (true).
func (l *Loop) iterate() (panicked bool) {
	if l.cfg.Panic != PanicCrash {
		defer func() {
			if v := recover(); v != nil {
				p := &PanicError{Value: v, Stack: debug.Stack()}
				l.report(nil, p)
				l.closeAll(p)
				panicked = true
			}
		}()
	}
	for {
		timeout := -1
		ticking := l.cfg.Tick != nil || len(l.ticks) > 0
		if ticking {
			timeout = max(0, int((time.Until(l.nextTick)+time.Millisecond-1)/time.Millisecond))
		}
		n, err := unix.EpollWait(l.epfd, l.events, timeout)
		if err != nil && err != unix.EINTR {
			l.fatal = fmt.Errorf("evloop: epoll_wait: %w", err)
			return false
		}
		l.now = time.Now()
		for i := range max(n, 0) {
			ev := &l.events[i]
			if ev.Pad == 0 {
				l.drainEventfd()
				continue
			}
			l.event(ev)
		}
		if l.runPosts() {
			return false
		}
		l.runReady()
		if ticking && !l.now.Before(l.nextTick) {
			l.nextTick = l.now.Add(l.cfg.TickInterval)
			if l.cfg.Tick != nil {
				l.safe(nil, l.cfg.Tick)
			}
			for _, f := range l.ticks {
				l.safe(nil, f)
			}
		}
		for _, h := range l.hooks {
			l.safe(nil, h)
		}
		l.flush()
		if l.cfg.OnIteration != nil {
			l.cfg.OnIteration(time.Since(l.now))
		}
	}
}

func (l *Loop) drainEventfd() {
	var b [8]byte
	for {
		if _, err := unix.Read(l.evfd, b[:]); err != unix.EINTR {
			return
		}
	}
}

// runPosts runs what was posted; it reports whether the loop is closing.
func (l *Loop) runPosts() (closing bool) {
	l.mu.Lock()
	l.running, l.posts = l.posts, l.running[:0]
	l.woken = false
	closing = l.closing
	l.mu.Unlock()
	for i, f := range l.running {
		l.running[i] = nil
		l.safe(nil, f)
	}
	return closing
}

// shutdown closes the loop: no more posts, those already accepted run, every
// connection closes, then the epoll fd and the eventfd.
func (l *Loop) shutdown() {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
	l.runPosts()
	// The hooks once more: an iteration that ended early (closing, or a second
	// panic) may have left work they finish or release (a front's write set
	// holds key locks until its BeforeSleep commit).
	for _, h := range l.hooks {
		l.safe(nil, h)
	}
	err := l.fatal
	if err == nil {
		err = ErrClosed
	}
	l.closeAll(err)
	unix.Close(l.evfd)
	unix.Close(l.epfd)
}

func (l *Loop) closeAll(err error) {
	for _, c := range l.conns {
		l.closeConn(c, err)
	}
	clear(l.ready)
	l.ready = l.ready[:0]
	clear(l.dirty)
	l.dirty = l.dirty[:0]
}

// safe runs f under the panic policy; c is the connection f is for, or nil.
func (l *Loop) safe(c *Conn, f func()) {
	if l.cfg.Panic == PanicCrash {
		f()
		return
	}
	defer func() {
		if v := recover(); v != nil {
			p := &PanicError{Value: v, Stack: debug.Stack()}
			l.report(c, p)
			if c != nil {
				l.closeConn(c, p)
			}
		}
	}()
	f()
}

func (l *Loop) report(c *Conn, p *PanicError) {
	if l.cfg.OnPanic != nil {
		func() {
			defer func() { _ = recover() }()
			l.cfg.OnPanic(c, p)
		}()
	}
}

// register adds c to the epoll set, on the loop goroutine.
func (l *Loop) register(c *Conn) {
	if c.closed {
		return
	}
	if l.lastID++; l.lastID == 0 {
		l.lastID = 1
	}
	c.id = l.lastID
	c.events = c.mask()
	ev := unix.EpollEvent{Events: c.events, Fd: int32(c.fd), Pad: int32(c.id)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		l.closeConn(c, fmt.Errorf("evloop: epoll_ctl add: %w", err))
		return
	}
	c.registered = true
	l.conns[c.fd] = c
	if len(c.out) > 0 {
		l.markDirty(c)
	}
}

// event handles one epoll event of a connection.
func (l *Loop) event(ev *unix.EpollEvent) {
	c := l.conns[int(ev.Fd)]
	if c == nil || c.id != uint32(ev.Pad) {
		return // closed meanwhile: the fd may already be someone else's
	}
	e := ev.Events
	if e&unix.EPOLLERR != 0 {
		err := error(io.ErrUnexpectedEOF)
		if v, gerr := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR); gerr == nil && v != 0 {
			err = syscall.Errno(v)
		}
		l.closeConn(c, fmt.Errorf("evloop: socket: %w", err))
		return
	}
	if e&unix.EPOLLOUT != 0 {
		l.markDirty(c)
	}
	if e&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP) != 0 && !c.paused && !c.eof {
		l.read(c)
	}
	if e&unix.EPOLLHUP != 0 && !c.closed && (c.paused || c.eof) {
		// Both directions are shut: nothing more can be read or written, and level
		// triggering would report it again on every iteration.
		l.closeConn(c, io.EOF)
	}
}

// read does one read(2) of c and gives the input to OnData.
func (l *Loop) read(c *Conn) {
	buf := l.buf
	inTail := len(c.in) > 0 && cap(c.in)-len(c.in) >= inTailRead
	if inTail {
		buf = c.in[len(c.in):cap(c.in)]
	}
	n, err := readFd(c.fd, buf)
	switch {
	case err == unix.EAGAIN:
		return
	case err != nil:
		l.closeConn(c, fmt.Errorf("evloop: read: %w", err))
		return
	case n == 0:
		c.eof = true
		l.setMask(c)
		l.afterEOF(c)
		return
	}
	switch {
	case inTail:
		c.in = c.in[:len(c.in)+n]
		l.deliver(c, c.in, true)
	case len(c.in) > 0:
		c.in = append(c.in, buf[:n]...)
		l.deliver(c, c.in, true)
	default:
		l.deliver(c, buf[:n], false)
	}
}

// deliver gives data to OnData and keeps what it did not use in c.in; fromIn
// says data is c.in.
func (l *Loop) deliver(c *Conn, data []byte, fromIn bool) {
	used, ok := l.onData(c, data)
	if !ok || c.closed {
		return
	}
	if used < 0 || used > len(data) {
		l.closeConn(c, ErrBadUsed)
		return
	}
	rest := data[used:]
	switch {
	case len(rest) == 0:
		c.in = nil
	case !fromIn:
		c.in = append([]byte(nil), rest...)
	case cap(c.in) > connInShrink && len(rest) < cap(c.in)/4:
		c.in = append([]byte(nil), rest...)
	case used > 0:
		c.in = c.in[:copy(c.in, rest)]
	}
}

func (l *Loop) onData(c *Conn, in []byte) (used int, ok bool) {
	if l.cfg.Panic == PanicCrash {
		return c.h.OnData(c, in), true
	}
	defer func() {
		if v := recover(); v != nil {
			p := &PanicError{Value: v, Stack: debug.Stack()}
			l.report(c, p)
			l.closeConn(c, p)
			ok = false
		}
	}()
	return c.h.OnData(c, in), true
}

// afterEOF: once the peer has stopped sending and the handler is not holding the
// connection paused, its leftover input can never complete; the connection
// closes once its output is written.
func (l *Loop) afterEOF(c *Conn) {
	if c.closed || c.paused {
		return
	}
	c.in = nil
	c.closeAfter = true
	l.markDirty(c)
}

// runReady gives resumed connections their kept input.
func (l *Loop) runReady() {
	for i := 0; i < len(l.ready); i++ {
		c := l.ready[i]
		l.ready[i] = nil
		c.queued = false
		if c.closed || c.paused {
			continue
		}
		if len(c.in) > 0 {
			l.deliver(c, c.in, true)
		}
		if c.eof {
			l.afterEOF(c)
		}
	}
	l.ready = l.ready[:0]
}

func (l *Loop) markDirty(c *Conn) {
	if !c.dirty {
		c.dirty = true
		l.dirty = append(l.dirty, c)
	}
}

// flush writes the output of every dirty connection, one write(2) each.
func (l *Loop) flush() {
	for i := 0; i < len(l.dirty); i++ {
		c := l.dirty[i]
		l.dirty[i] = nil
		c.dirty = false
		if c.closed {
			continue
		}
		l.write(c)
		if !c.closed && c.closeAfter && c.OutPending() == 0 {
			l.closeConn(c, io.EOF)
		}
	}
	l.dirty = l.dirty[:0]
}

func (l *Loop) write(c *Conn) {
	p := c.out[c.sent:]
	n := 0
	if len(p) > 0 {
		var err error
		n, err = writeFd(c.fd, p)
		if err != nil && err != unix.EAGAIN {
			l.closeConn(c, fmt.Errorf("evloop: write: %w", err))
			return
		}
	}
	c.sent += n
	if c.sent == len(c.out) {
		l.putBuf(c.out)
		c.out, c.sent, c.since = nil, 0, time.Time{}
		drain := c.wantDrain
		if c.wantOut {
			c.wantOut = false
			l.setMask(c)
			drain = true
		}
		if drain {
			c.wantDrain = false
			if d, ok := c.h.(Drainer); ok && !c.closed {
				l.safe(c, func() { d.OnDrain(c) })
			}
		}
		return
	}
	if n > 0 {
		c.since = l.now
	}
	if !c.wantOut {
		c.wantOut = true
		l.setMask(c)
	}
}

func (l *Loop) getBuf() []byte {
	if k := len(l.free); k > 0 {
		b := l.free[k-1]
		l.free[k-1] = nil
		l.free = l.free[:k-1]
		return b
	}
	return make([]byte, 0, outBufSize)
}

func (l *Loop) putBuf(b []byte) {
	if cap(b) > 0 && cap(b) <= outBufMax && len(l.free) < freeBufs {
		l.free = append(l.free, b[:0])
	}
}

// setMask brings c's epoll registration in line with its state.
func (l *Loop) setMask(c *Conn) {
	if !c.registered || c.closed {
		return
	}
	m := c.mask()
	if m == c.events {
		return
	}
	ev := unix.EpollEvent{Events: m, Fd: int32(c.fd), Pad: int32(c.id)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, c.fd, &ev); err != nil {
		l.closeConn(c, fmt.Errorf("evloop: epoll_ctl mod: %w", err))
		return
	}
	c.events = m
}

// closeConn closes c once: after a clean close (err nil or ErrClosed) it first
// tries one write of the pending output, as far as the kernel takes it at once.
func (l *Loop) closeConn(c *Conn, err error) {
	if c.closed {
		return
	}
	c.closed = true
	if (err == nil || err == ErrClosed) && c.OutPending() > 0 {
		_, _ = writeFd(c.fd, c.out[c.sent:])
	}
	if c.registered {
		_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
		if l.conns[c.fd] == c {
			delete(l.conns, c.fd)
		}
	}
	unix.Close(c.fd)
	l.n.Add(-1)
	l.putBuf(c.out)
	c.out, c.in, c.sent = nil, nil, 0
	l.safe(nil, func() { c.h.OnClose(c, err) })
}

func readFd(fd int, p []byte) (int, error) {
	for {
		n, err := unix.Read(fd, p)
		if err != unix.EINTR {
			return max(n, 0), err
		}
	}
}

func writeFd(fd int, p []byte) (int, error) {
	for {
		n, err := unix.Write(fd, p)
		if err != unix.EINTR {
			return max(n, 0), err
		}
	}
}

// Dup returns a non-blocking, close-on-exec duplicate of a socket's descriptor
// (a *net.TCPConn, *net.UnixConn), for Add. The caller then closes the original,
// which leaves the socket open through the duplicate.
func Dup(sc syscall.Conn) (int, error) {
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("evloop: dup: %w", err)
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, fmt.Errorf("evloop: dup: %w", err)
	}
	if derr != nil {
		return -1, fmt.Errorf("evloop: dup: %w", derr)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("evloop: dup: %w", err)
	}
	return fd, nil
}
