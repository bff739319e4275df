package evloop

import (
	"runtime"
	"sync/atomic"
)

// Group is a set of loops that share the connections of a server: Add places a
// connection on the loop with the fewest. Its methods are safe from any goroutine.
type Group struct {
	loops []*Loop
	next  atomic.Uint32 // where the search for the fewest starts, so ties rotate
}

// NewGroup starts n loops with cfg (n <= 0: one per GOMAXPROCS).
func NewGroup(n int, cfg Config) (*Group, error) {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	g := &Group{}
	for range n {
		l, err := New(cfg)
		if err != nil {
			g.Close()
			return nil, err
		}
		g.loops = append(g.loops, l)
	}
	return g, nil
}

// Loops returns the group's loops; the slice must not be changed.
func (g *Group) Loops() []*Loop { return g.loops }

// Pick returns the loop with the fewest connections.
func (g *Group) Pick() *Loop {
	start := int(g.next.Add(1))
	best := g.loops[start%len(g.loops)]
	for i := 1; i < len(g.loops); i++ {
		if l := g.loops[(start+i)%len(g.loops)]; l.Len() < best.Len() {
			best = l
		}
	}
	return best
}

// Add gives fd to the loop with the fewest connections (see Loop.Add).
func (g *Group) Add(fd int, h Handler) (*Conn, error) { return g.Pick().Add(fd, h) }

// Len is the number of connections on all loops.
func (g *Group) Len() int {
	n := 0
	for _, l := range g.loops {
		n += l.Len()
	}
	return n
}

// Close closes every loop, all at once, and waits for them (see Loop.Close).
func (g *Group) Close() {
	for _, l := range g.loops {
		l.beginClose()
	}
	for _, l := range g.loops {
		l.Close()
	}
}
