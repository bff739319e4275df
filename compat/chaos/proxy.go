package main

import (
	"math/rand"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// linkFaults is what a faultyProxy does to the bytes it forwards. The kernel here
// has no netem, so loss and delay on internode traffic are made at the TCP level:
// every chunk read is held for Delay plus up to Jitter; with probability Stall it is
// held StallFor more (what a lost segment costs TCP: a retransmission timeout); with
// probability Reset the connection is torn down (what sustained loss ends in).
type linkFaults struct {
	Delay, Jitter, StallFor time.Duration
	Stall, Reset            float64
}

// faultyProxy forwards TCP connections from one listener to one target, applying
// the current linkFaults to each chunk in both directions.
type faultyProxy struct {
	ln     net.Listener
	target string
	faults atomic.Pointer[linkFaults]

	mu    sync.Mutex
	rng   *rand.Rand
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup

	stalls, resets atomic.Int64
}

// newFaultyProxy listens on addr (port 0 picks one) and forwards to target.
func newFaultyProxy(addr, target string, seed int64) (*faultyProxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &faultyProxy{ln: ln, target: target, rng: rand.New(rand.NewSource(seed)), conns: map[net.Conn]struct{}{}}
	p.faults.Store(&linkFaults{})
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// port is the port the proxy listens on.
func (p *faultyProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// set replaces the faults; the zero linkFaults forwards untouched.
func (p *faultyProxy) set(f linkFaults) { p.faults.Store(&f) }

func (p *faultyProxy) float() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rng.Float64()
}

func (p *faultyProxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false
	}
	if add {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *faultyProxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			in.Close()
			continue
		}
		if !p.track(in, true) || !p.track(out, true) {
			in.Close()
			out.Close()
			return
		}
		p.wg.Add(2)
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

// pipe copies src to dst chunk by chunk, applying the faults; when either side
// ends it closes both.
func (p *faultyProxy) pipe(src, dst net.Conn) {
	defer p.wg.Done()
	defer func() {
		src.Close()
		dst.Close()
		p.track(src, false)
		p.track(dst, false)
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			f := p.faults.Load()
			hold := f.Delay
			if f.Jitter > 0 {
				hold += time.Duration(p.float() * float64(f.Jitter))
			}
			if f.Stall > 0 && p.float() < f.Stall {
				hold += f.StallFor
				p.stalls.Add(1)
			}
			if f.Reset > 0 && p.float() < f.Reset {
				p.resets.Add(1)
				return
			}
			if hold > 0 {
				time.Sleep(hold)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// close stops accepting, closes every connection and waits for the pipes.
func (p *faultyProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for c := range conns {
		c.Close()
	}
	p.wg.Wait()
}
