package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestAddrInRangeFreeAndNeverTwice(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		a, err := Addr()
		if err != nil {
			t.Fatal(err)
		}
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := strconv.Atoi(port)
		if host != "127.0.0.1" || p < Low || p > High {
			t.Fatalf("%s: want 127.0.0.1 and a port in [%d, %d]", a, Low, High)
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("port handed out is not free: %v", err)
		}
		ln.Close()
	}
}

func TestAddrSkipsBusyPorts(t *testing.T) {
	// Hold the lower half of the range (the ports of it free now): every port
	// handed out must still be bindable.
	var held []net.Listener
	defer func() {
		for _, ln := range held {
			ln.Close()
		}
	}()
	for p := Low; p < (Low+High)/2; p++ {
		if ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err == nil {
			held = append(held, ln)
		}
	}
	for range 20 {
		a, err := Addr()
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("%s is busy: %v", a, err)
		}
		ln.Close()
	}
}
