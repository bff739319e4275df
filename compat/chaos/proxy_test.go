package main

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// echoServer answers every line with itself until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// roundTrip sends a line through addr and returns the answer and how long it took.
func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader) (string, time.Duration, error) {
	t.Helper()
	start := time.Now()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return "", 0, err
	}
	line, err := r.ReadString('\n')
	return line, time.Since(start), err
}

// dialEcho starts a proxy with a WAN latency of wan in front of an echo server,
// and dials it; the test's cleanup closes both.
func dialEcho(t *testing.T, wan time.Duration) (*faultyProxy, net.Conn, *bufio.Reader) {
	t.Helper()
	p, err := newFaultyProxy("127.0.0.1:0", echoServer(t), 1, wan, wan)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	c, err := net.Dial("tcp", p.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return p, c, bufio.NewReader(c)
}

func TestFaultyProxy(t *testing.T) {
	p, c, r := dialEcho(t, 0)
	if line, _, err := roundTrip(t, c, r); err != nil || line != "ping\n" {
		t.Fatalf("clean link: %q, %v", line, err)
	}
	// Delay applies in both directions.
	p.set(linkFaults{Delay: 100 * time.Millisecond})
	if line, took, err := roundTrip(t, c, r); err != nil || line != "ping\n" || took < 200*time.Millisecond {
		t.Fatalf("delayed link: %q in %v, %v; want the echo after at least 200ms", line, took, err)
	}
	// A certain stall holds each chunk StallFor more, and is counted.
	p.set(linkFaults{Stall: 1, StallFor: 150 * time.Millisecond})
	if _, took, err := roundTrip(t, c, r); err != nil || took < 300*time.Millisecond || p.stalls.Load() < 2 {
		t.Fatalf("stalled link: %v, %v, %d stalls", took, err, p.stalls.Load())
	}
	// A certain reset tears the connection down.
	p.set(linkFaults{Reset: 1})
	if _, _, err := roundTrip(t, c, r); err == nil {
		t.Fatal("reset link still answered")
	}
	if p.resets.Load() != 1 {
		t.Fatalf("%d resets counted, want 1", p.resets.Load())
	}
	// Healed, a new connection works again.
	p.set(linkFaults{})
	c2, err := net.Dial("tcp", p.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if line, _, err := roundTrip(t, c2, bufio.NewReader(c2)); err != nil || line != "ping\n" {
		t.Fatalf("healed link: %q, %v", line, err)
	}
}

// TestFaultyProxyWAN: a WAN link delays every chunk by the connection's latency,
// both ways, and a chunk read while an earlier one is in flight is not held
// behind it: it arrives one latency after it was sent, not up to two.
func TestFaultyProxyWAN(t *testing.T) {
	const wan = 300 * time.Millisecond
	_, c, r := dialEcho(t, wan)
	if line, took, err := roundTrip(t, c, r); err != nil || line != "ping\n" || took < 2*wan {
		t.Fatalf("WAN link: %q in %v, %v; want the echo after at least %v", line, took, err, 2*wan)
	}
	// Ten lines sent 20 ms apart. Pipelined, each echo takes a round trip (2*wan);
	// held one chunk after another, the second line would wait for the first
	// chunk's delay on the way out and again on the way back: about 3*wan.
	const lines = 10
	c.SetDeadline(time.Now().Add(10 * time.Second))
	sent := make(chan time.Time, lines)
	go func() {
		for range lines {
			sent <- time.Now()
			if _, err := c.Write([]byte("ping\n")); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var slowest time.Duration
	for i := range lines {
		line, err := r.ReadString('\n')
		if err != nil || line != "ping\n" {
			t.Fatalf("line %d: %q, %v", i, line, err)
		}
		slowest = max(slowest, time.Since(<-sent))
	}
	if slowest < 2*wan || slowest > 5*wan/2 {
		t.Fatalf("slowest echo of %d pipelined lines took %v; want a round trip, %v, not %v", lines, slowest, 2*wan, 3*wan)
	}
}
