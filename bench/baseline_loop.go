package bench

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"

	"github.com/tidwall/redcon"

	"github.com/dynakv/dynakv/internal/evloop"
)

// NameBaselineLoop is the Go baseline on event loops (ServeBaselineLoop), which
// Compare runs beside NameBaseline with CompareConfig.Baseline where there are
// event loops (Linux).
const NameBaselineLoop = "go-baseline-evloop"

// ServeBaselineLoop is ServeBaseline on internal/evloop instead of a goroutine per
// connection: loops event loops (0: one per GOMAXPROCS) serve both protocols, with
// the same map, the same answers and the same RESP parser as redcon's
// (redcon.ReadNextCommand). Beside ServeBaseline it measures what the network
// model alone costs. It returns evloop.ErrUnsupported where there are no event
// loops, and otherwise as ServeBaseline does.
func ServeBaselineLoop(ctx context.Context, resp, mc net.Listener, loops int) error {
	g, err := evloop.NewGroup(loops, evloop.Config{})
	if err != nil {
		for _, ln := range []net.Listener{resp, mc} {
			if ln != nil {
				_ = ln.Close()
			}
		}
		return err
	}
	b := newBaseline()
	// One handler per loop and protocol: their scratch buffers are used on their
	// loop only.
	handlers := map[*evloop.Loop][2]*loopHandler{}
	for _, l := range g.Loops() {
		handlers[l] = [2]*loopHandler{{b: b}, {b: b, mc: true}}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	for i, ln := range []net.Listener{resp, mc} {
		if ln == nil {
			continue
		}
		wg.Go(func() { errs <- acceptLoop(ctx, ln, g, func(l *evloop.Loop) evloop.Handler { return handlers[l][i] }) })
		wg.Go(func() {
			<-ctx.Done()
			_ = ln.Close()
		})
	}
	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	cancel()
	wg.Wait()
	g.Close()
	if ctx.Err() != nil && (err == nil || errors.Is(err, net.ErrClosed)) {
		return nil
	}
	return err
}

// acceptLoop gives every connection ln accepts to g's least loaded loop, until
// ln fails; it returns nil if ctx ended.
func acceptLoop(ctx context.Context, ln net.Listener, g *evloop.Group, handler func(*evloop.Loop) evloop.Handler) error {
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		tc, ok := nc.(*net.TCPConn)
		if !ok {
			_ = nc.Close()
			continue
		}
		fd, err := evloop.Dup(tc)
		_ = nc.Close() // the loop keeps the socket open through fd
		if err != nil {
			continue
		}
		l := g.Pick()
		_, _ = l.Add(fd, handler(l)) // an error closed fd: the loop is closing
	}
}

// loopHandler answers one protocol's connections on one loop. out and args are
// scratch space, reused across its connections (they all run on its loop).
type loopHandler struct {
	b    *baseline
	mc   bool
	out  []byte
	args [][]byte
}

// mcState is a memcached connection's state: the bytes of a refused data block
// still to skip. Most connections never need one.
type mcState struct{ skip int }

func (h *loopHandler) OnData(c *evloop.Conn, in []byte) int {
	var used int
	var quit bool
	if h.mc {
		used, quit = h.memcache(c, in)
	} else {
		used, quit = h.resp(in)
	}
	c.Write(h.out)
	h.out = h.out[:0]
	if quit {
		c.Close()
		return len(in)
	}
	return used
}

func (h *loopHandler) OnClose(*evloop.Conn, error) {}

// resp runs the complete RESP commands at the start of in.
func (h *loopHandler) resp(in []byte) (used int, quit bool) {
	for used < len(in) {
		complete, args, _, left, err := redcon.ReadNextCommand(in[used:], h.args[:0])
		if err != nil {
			// As redcon's server: the error, then the connection ends.
			h.out = redcon.AppendError(h.out, "ERR Protocol error: "+err.Error())
			return used, true
		}
		if !complete {
			break
		}
		h.args = args
		used = len(in) - len(left)
		if len(args) > 0 && h.b.execRESP(h, args) {
			return used, true
		}
	}
	return used, false
}

// WriteBulk and the three below make loopHandler execRESP's respWriter.
func (h *loopHandler) WriteBulk(bulk []byte)  { h.out = redcon.AppendBulk(h.out, bulk) }
func (h *loopHandler) WriteNull()             { h.out = redcon.AppendNull(h.out) }
func (h *loopHandler) WriteString(str string) { h.out = redcon.AppendString(h.out, str) }
func (h *loopHandler) WriteError(msg string)  { h.out = redcon.AppendError(h.out, msg) }

// memcache runs the complete memcached commands at the start of in, as
// serveMemcache does.
func (h *loopHandler) memcache(c *evloop.Conn, in []byte) (used int, quit bool) {
	st, _ := c.Data.(*mcState)
	for used < len(in) {
		if st != nil && st.skip > 0 {
			k := min(st.skip, len(in)-used)
			st.skip -= k
			used += k
			continue
		}
		i := bytes.IndexByte(in[used:], '\n')
		if i < 0 {
			if len(in)-used >= mcMaxLine {
				h.out = append(h.out, "CLIENT_ERROR line too long\r\n"...)
				return used, true
			}
			break
		}
		next := used + i + 1
		toks := bytes.Fields(in[used:next])
		if len(toks) == 0 {
			h.out = append(h.out, "ERROR\r\n"...)
			used = next
			continue
		}
		switch cmd := string(toks[0]); cmd {
		case "get", "gets":
			if len(toks) < 2 {
				h.out = append(h.out, "ERROR\r\n"...)
			} else {
				h.out = h.b.appendValues(h.out, cmd, toks[1:])
			}
		case "set":
			s, reply, skip := parseSet(toks)
			if reply == "" {
				if len(in)-next < s.n+2 {
					return used, false // the data block is not all here yet
				}
				reply = h.b.store(s, bytes.Clone(in[next:next+s.n+2]))
				next += s.n + 2
			} else if skip {
				if st == nil {
					st = &mcState{}
					c.Data = st
				}
				st.skip = s.n + 2
			}
			h.out = append(h.out, reply...)
		case "version":
			h.out = append(h.out, "VERSION dynakv-bench-baseline\r\n"...)
		case "quit":
			return next, true
		default:
			h.out = append(h.out, "ERROR\r\n"...)
		}
		used = next
	}
	return used, false
}
