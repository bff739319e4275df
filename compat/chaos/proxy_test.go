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

func TestFaultyProxy(t *testing.T) {
	p, err := newFaultyProxy("127.0.0.1:0", echoServer(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	c, err := net.Dial("tcp", p.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
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
