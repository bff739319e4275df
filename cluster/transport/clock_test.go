package transport

import (
	"math/rand/v2"
	"testing"
	"time"
)

// clockTestBase is the server's clock at the start of the clock tests.
var clockTestBase = time.UnixMilli(1_700_000_000_000)

// TestPeerClockProperty: whatever the peers' offset (minutes apart either way) and
// the messages' delays, the converted deadline is never earlier than the caller's
// real one (no request its caller still waits for is refused), and it is later by
// at most the fastest message's delay, the rounding and the drift allowance.
func TestPeerClockProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		offset := time.Duration(rng.Int64N(int64(6*time.Minute))) - 3*time.Minute // peer minus us
		var c peerClock
		now := clockTestBase
		first := now
		fastest := time.Duration(1 << 62)
		for range 1 + rng.IntN(20) {
			now = now.Add(time.Duration(rng.Int64N(int64(time.Second))))
			delay := time.Duration(rng.Int64N(int64(3 * time.Millisecond)))
			if rng.IntN(4) == 0 {
				delay += time.Duration(rng.Int64N(int64(10 * time.Second))) // stuck in a queue
			}
			peerReading := now.Add(offset).UnixMilli() // floor, as the client sends it
			c.observe(peerReading, now.Add(delay))
			fastest = min(fastest, delay)
			now = now.Add(delay)
		}
		// The caller's deadline, in its clock and in ours.
		timeLeft := time.Duration(rng.Int64N(int64(2 * time.Second)))
		peerDeadline := now.Add(offset).Add(timeLeft)
		trueDeadline := now.Add(timeLeft)
		got := c.latest(peerDeadline.UnixMilli()+clockRoundMs, now)
		if got.Before(trueDeadline) {
			t.Fatalf("case %d: converted deadline %v before the caller's %v (offset %v)", i, got.Sub(clockTestBase), trueDeadline.Sub(clockTestBase), offset)
		}
		// Slack: the fastest delay, a millisecond of rounding each way, and
		// the drift allowance over the span the bound was carried.
		if slack := got.Sub(trueDeadline); slack > fastest+2*time.Millisecond+clockDrift(trueDeadline.Sub(first)) {
			t.Fatalf("case %d: converted deadline %v late (fastest message %v)", i, slack, fastest)
		}
	}
}

// TestPeerClockDelayedMessage: a request that sat in a queue for ten seconds does
// not loosen the bound a prompt one set, so its deadline comes out as its caller's,
// long past, not as arrival plus the time left.
func TestPeerClockDelayedMessage(t *testing.T) {
	const offset = 150 * time.Second // the peer's clock is ahead
	var c peerClock
	c.observe(clockTestBase.Add(offset).UnixMilli(), clockTestBase.Add(time.Millisecond)) // the handshake
	sent := clockTestBase.Add(time.Second)                                                // the caller writes a request, 1s left
	arrived := sent.Add(10 * time.Second)
	c.observe(sent.Add(offset).UnixMilli(), arrived)
	d := c.latest(sent.Add(offset).Add(time.Second).UnixMilli()+clockRoundMs, arrived)
	if !d.Before(arrived) {
		t.Fatalf("deadline %v after arrival %v: a late request would run", d.Sub(clockTestBase), arrived.Sub(clockTestBase))
	}
	if want := sent.Add(time.Second); d.Before(want) || d.Sub(want) > 3*time.Millisecond+clockDrift(arrived.Sub(clockTestBase)) {
		t.Fatalf("deadline %v, want about %v", d.Sub(clockTestBase), want.Sub(clockTestBase))
	}
}

// TestPeerClockDrift: a bound ages by the drift allowance, so a peer whose clock
// runs slower than ours (as much as the allowance) still gets its full time.
func TestPeerClockDrift(t *testing.T) {
	var c peerClock
	c.observe(clockTestBase.UnixMilli(), clockTestBase) // same clocks, no delay
	// An hour later the peer's clock lags ours by 3.6s (1000 ppm): its request's
	// deadline, 1s after it sent it, is an hour + 1s - 3.6s from the start in our
	// clock, plus its delay of 1ms.
	later := clockTestBase.Add(time.Hour)
	peerNow := later.Add(-3600 * time.Millisecond)
	arrived := later.Add(time.Millisecond)
	c.observe(peerNow.UnixMilli(), arrived)
	d := c.latest(peerNow.Add(time.Second).UnixMilli()+clockRoundMs, arrived)
	if want := later.Add(time.Second); d.Before(want) {
		t.Fatalf("deadline %v before the caller's %v", d.Sub(clockTestBase), want.Sub(clockTestBase))
	}
	// A peer's clock that moves ahead is followed at once.
	ahead := arrived.Add(time.Minute)
	c.observe(ahead.UnixMilli(), arrived.Add(time.Millisecond))
	if d := c.latest(ahead.UnixMilli(), arrived.Add(time.Millisecond)); d.After(arrived.Add(5 * time.Millisecond)) {
		t.Fatalf("after the peer's clock jumped a minute ahead, its reading maps to %v, want about %v",
			d.Sub(clockTestBase), arrived.Sub(clockTestBase))
	}
}

// TestConnClockMonotonic: the client's connection clock follows the monotonic
// clock, so a step of the wall clock after the handshake does not move it.
func TestConnClockMonotonic(t *testing.T) {
	start := time.Now()
	c := newConnClock(start)
	if got := c.ms(start); got != start.UnixMilli() {
		t.Fatalf("ms at the anchor = %d, want %d", got, start.UnixMilli())
	}
	// Elapsed time comes from the readings' difference (their monotonic clock
	// when both have one), not from the later reading's wall clock.
	later := start.Add(1500 * time.Millisecond)
	if got, want := c.ms(later), start.UnixMilli()+1500; got != want {
		t.Fatalf("ms 1.5s later = %d, want %d", got, want)
	}
	if got := c.ms(start.Add(-time.Second)); got != start.UnixMilli() {
		t.Fatalf("ms before the anchor = %d, want the anchor's %d", got, start.UnixMilli())
	}
	if got := newConnClock(time.UnixMilli(-5)).ms(time.UnixMilli(10)); got != 15 {
		t.Fatalf("a clock before 1970 reads %d, want 15 (clamped anchor 0 + 15ms)", got)
	}
}
