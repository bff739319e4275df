package main

import (
	"math/rand"
	"net"
	"slices"
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
// the current linkFaults to each chunk in both directions, after the link's WAN
// latency when it has one.
//
// The WAN latency models the propagation delay between two data centers: each
// connection draws a one-way delay uniformly from [wanMin, wanMax] when it is
// accepted and every chunk, in both directions, is delivered that long after it
// was read. Delivery is pipelined (a chunk read while an earlier one is in flight
// does not wait for it), so the link keeps its bandwidth and only adds latency, as
// a long fibre does; linkFaults' Delay and Stall are serial on top of it (a stalled
// segment holds back the ones behind it, as TCP's in-order delivery does).
type faultyProxy struct {
	ln             net.Listener
	target         string
	faults         atomic.Pointer[linkFaults]
	wanMin, wanMax time.Duration

	mu    sync.Mutex
	rng   *rand.Rand
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup

	stalls, resets atomic.Int64
}

// newFaultyProxy listens on addr (port 0 picks one) and forwards to target, each
// connection with a one-way WAN delay drawn from [wanMin, wanMax] (0, 0: a LAN).
func newFaultyProxy(addr, target string, seed int64, wanMin, wanMax time.Duration) (*faultyProxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &faultyProxy{ln: ln, target: target, rng: rand.New(rand.NewSource(seed)), conns: map[net.Conn]struct{}{},
		wanMin: wanMin, wanMax: max(wanMin, wanMax)}
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
		wan := p.wanMin + time.Duration(p.float()*float64(p.wanMax-p.wanMin))
		p.wg.Add(2)
		go p.pipe(in, out, wan)
		go p.pipe(out, in, wan)
	}
}

// chunk is bytes read from one side, to be written to the other at due.
type chunk struct {
	b   []byte
	due time.Time
}

// pipe copies src to dst chunk by chunk, applying the faults and, when wan > 0,
// delivering each chunk wan after it was read; when either side ends it closes
// both (after delivering what is in flight, unless the link was reset).
func (p *faultyProxy) pipe(src, dst net.Conn, wan time.Duration) {
	defer p.wg.Done()
	defer func() {
		src.Close()
		dst.Close()
		p.track(src, false)
		p.track(dst, false)
	}()
	write := func(b []byte) bool {
		_, err := dst.Write(b)
		return err == nil
	}
	if wan > 0 {
		// The deliverer is owned by this pipe, which waits for it before returning.
		inFlight := make(chan chunk, 256)
		delivered := make(chan struct{})
		go func() {
			defer close(delivered)
			for c := range inFlight {
				time.Sleep(time.Until(c.due))
				if _, err := dst.Write(c.b); err != nil {
					return
				}
			}
		}()
		write = func(b []byte) bool {
			select {
			case inFlight <- chunk{b: slices.Clone(b), due: time.Now().Add(wan)}:
				return true
			case <-delivered:
				return false
			}
		}
		defer func() {
			close(inFlight)
			<-delivered
		}()
	}
	p.copyChunks(src, dst, write)
}

// copyChunks reads src until it ends, applies the faults to each chunk and hands
// it to write; a reset closes both sides at once, dropping what is in flight.
func (p *faultyProxy) copyChunks(src, dst net.Conn, write func([]byte) bool) {
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
				src.Close()
				dst.Close()
				return
			}
			if hold > 0 {
				time.Sleep(hold)
			}
			if !write(buf[:n]) {
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
