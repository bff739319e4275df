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

func TestPickSkipsBusyPorts(t *testing.T) {
	// A small range of its own, away from Addr's (where holding ports could
	// fail a server another test package was just handed one of them): hold all
	// its free ports but a few; only those are handed out, each once.
	const low, high = 40100, 40149
	mu.Lock()
	for p := low; p <= high; p++ {
		delete(used, p) // handed out by an earlier run of this test (-count)
	}
	mu.Unlock()
	var held []net.Listener
	defer func() {
		for _, ln := range held {
			ln.Close()
		}
	}()
	free := map[string]bool{}
	for p := low; p <= high; p++ {
		a := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		ln, err := net.Listen("tcp", a)
		if err != nil {
			continue // busy already
		}
		if len(free) < 5 {
			ln.Close()
			free[a] = true
			continue
		}
		held = append(held, ln)
	}
	if len(free) < 5 {
		t.Skipf("fewer than 5 free ports in %d-%d", low, high)
	}
	for range len(free) {
		a, err := pick(low, high)
		if err != nil {
			t.Fatal(err)
		}
		if !free[a] {
			t.Fatalf("handed out %s, which is busy or was handed out before", a)
		}
		delete(free, a)
	}
	if a, err := pick(low, high); err == nil {
		t.Fatalf("handed out %s with every port of the range busy or handed out", a)
	}
}
