package transport

// Bounding a peer's clock: how a server tells, in its own clock, when a request's
// caller gives up, without trusting the two nodes' wall clocks to agree (the chaos
// harness runs nodes minutes apart). Pure: no I/O, no clock of its own.
//
// Let θ be the peer's clock minus ours. Every time the peer reads its clock as p
// and sends it, and we receive it when our clock reads s, the peer read p before
// we read s, so θ ≥ p - s: each message gives a lower bound of θ (the client's
// handshake hello, then every request frame). peerClock keeps the best one. A
// lower bound of θ gives the LATEST time, in our clock, at which the peer's clock
// can reach a given reading: ours = peer - θ ≤ peer - bound. The server uses it
// for the caller's deadline, so it never refuses a request its caller may still
// be waiting for (see "Deadlines" in doc.go for why that side).
//
// The bound is as tight as the fastest message seen: its one-way delay. A request
// that sat in TCP's retransmission queue or in a stopped process's socket buffer
// carries a reading far below what its arrival time implies, so it does not weaken
// the bound that faster messages before it set, and its deadline comes out as
// late as its caller's really was, not "arrival plus the time left".
//
// Clocks drift apart, so a bound ages: an observation made d ago bounds θ only to
// within clockDrift·d. Both sides measure elapsed time with the monotonic clock
// (time.Time's monotonic reading), so stepping a wall clock does not move them.

import "time"

const (
	// clockDriftPPM bounds how fast two nodes' clocks drift apart, in parts per
	// million: twice the 500 ppm an NTP daemon may slew a clock by.
	clockDriftPPM = 1000
	// clockMaxMs bounds a clock reading on the wire (unix ms, about the year
	// 2248), so that differences of readings fit a time.Duration.
	clockMaxMs = 1<<43 - 1
	// clockRoundMs covers the rounding of a request's readings: the caller sends
	// its clock rounded down to the millisecond and its time left rounded up.
	clockRoundMs = 1
)

// peerClock is the best lower bound of a peer's clock offset: the peer read its
// clock as peerMs no later than ours read at. The zero value knows nothing. A
// peerClock belongs to one connection's read loop.
type peerClock struct {
	peerMs int64
	at     time.Time
	ok     bool
}

// clockDrift is how far two clocks may drift apart over d.
func clockDrift(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/(1e6/clockDriftPPM) + 1
}

// observe records that the peer read its clock as peerMs (rounded down to the
// millisecond) before our clock read at. It keeps the observation that bounds the
// offset best as of at.
func (c *peerClock) observe(peerMs int64, at time.Time) {
	if !c.ok {
		c.peerMs, c.at, c.ok = peerMs, at, true
		return
	}
	// Both bounds as of at: the new one is peerMs - at; the old one, aged by the
	// drift since it was made, c.peerMs - c.at - drift(at - c.at).
	el := max(at.Sub(c.at), 0)
	if gain := time.Duration(peerMs-c.peerMs)*time.Millisecond - el + clockDrift(el); gain > 0 {
		c.peerMs, c.at = peerMs, at
	}
}

// latest returns the latest time, in our clock, at which the peer's clock can
// read peerMs, judged at our time now. It needs an observation first.
func (c *peerClock) latest(peerMs int64, now time.Time) time.Time {
	ahead := time.Duration(peerMs-c.peerMs) * time.Millisecond
	el := max(now.Sub(c.at), ahead, 0) // the bound ages until the reading is due
	return c.at.Add(ahead + clockDrift(el))
}

// connClock is a client connection's clock for its peer: the wall clock read at
// the handshake, advanced by the monotonic clock since, so that stepping the wall
// clock during the connection does not make its readings jump.
type connClock struct {
	anchor   time.Time
	anchorMs int64
}

func newConnClock(at time.Time) connClock {
	return connClock{anchor: at, anchorMs: min(max(at.UnixMilli(), 0), clockMaxMs)}
}

// ms returns the connection clock at t, unix ms rounded down, within [0, clockMaxMs].
func (c connClock) ms(t time.Time) int64 {
	return min(max(c.anchorMs+max(t.Sub(c.anchor), 0).Milliseconds(), 0), clockMaxMs)
}
