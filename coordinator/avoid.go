package coordinator

import (
	"sync"
	"time"
)

// DefaultAvoidFor is how long a node that failed a request is avoided by default
// (Avoidance): long enough that a crashed node costs one failed call per few
// seconds rather than one per request until gossip declares it dead (5-20s), short
// enough that a node that only hiccupped is back in use soon.
const DefaultAvoidFor = 5 * time.Second

// Avoidance is a node's view of the peers that recently failed a request: refused
// or reset the connection, or did not answer within their deadline. Every request
// of the node consults it (the coordinator's plan, the proxy's router), so a failed
// peer costs one request, not every request, until memberlist makes up its mind:
// while it is avoided, requests go to the next node of the key's preference list.
// An avoided peer is tried again once the avoidance expires (a request that fails
// again renews it), or at once after Forget (memberlist saw it come back).
//
// Avoidance is advice, not liveness: a plan that has nothing better still tries an
// avoided owner. It is safe for concurrent use; the clock is injected.
type Avoidance struct {
	now func() time.Time
	d   time.Duration

	mu    sync.Mutex
	until map[string]time.Time // avoided until then
}

// NewAvoidance returns an Avoidance that avoids a failed node for d
// (DefaultAvoidFor when d <= 0) measured by now (time.Now when nil).
func NewAvoidance(d time.Duration, now func() time.Time) *Avoidance {
	if d <= 0 {
		d = DefaultAvoidFor
	}
	if now == nil {
		now = time.Now
	}
	return &Avoidance{now: now, d: d, until: map[string]time.Time{}}
}

// Failed records that node failed a request: it is avoided for the configured
// time from now. It reports whether node was not avoided before (for logging a
// change once).
func (a *Avoidance) Failed(node string) (fresh bool) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	prev, ok := a.until[node]
	if len(a.until) >= avoidSweepAt {
		for name, until := range a.until {
			if !now.Before(until) {
				delete(a.until, name)
			}
		}
	}
	a.until[node] = now.Add(a.d)
	return !ok || !now.Before(prev)
}

// avoidSweepAt is the map size at which Failed drops expired entries, so that
// names that failed once and were never asked about again do not pile up.
const avoidSweepAt = 64

// Avoided reports whether node failed a request less than the avoidance time ago.
func (a *Avoidance) Avoided(node string) bool {
	if a == nil {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	until, ok := a.until[node]
	if !ok {
		return false
	}
	if !a.now().Before(until) {
		delete(a.until, node) // expired: the map holds only current avoidances
		return false
	}
	return true
}

// Forget stops avoiding node: it came back (memberlist saw it alive again) or left
// the ring.
func (a *Avoidance) Forget(node string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.until, node)
}
