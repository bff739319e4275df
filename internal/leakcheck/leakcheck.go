// Package leakcheck is the tests' check that a test leaves no goroutine and no
// open descriptor behind (goroutines through lni/goutils/leaktest, descriptors
// by counting /proc/self/fd, where there is one). It is for tests only; it has no
// state of its own.
package leakcheck

import (
	"net"
	"os"
	"testing"
	"time"

	"github.com/lni/goutils/leaktest"
)

// Check records the open descriptors now and, when t ends, checks that no
// goroutine started since is left and that the descriptor count is back to what
// it was, waiting up to 10 s for both. Call it first in the test, so its
// cleanups run after the test's own.
func Check(t testing.TB) {
	t.Helper()
	// Start Go's own netpoller (an epoll fd and an eventfd) before counting.
	if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
	}
	start, ok := FDs()
	t.Cleanup(leaktest.AfterTest(t))
	if !ok {
		return
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for n, _ := FDs(); n > start; n, _ = FDs() {
			if time.Now().After(deadline) {
				t.Errorf("%d descriptors open at the end; %d at the start", n, start)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// FDs returns the number of the process's open descriptors, and false where
// /proc/self/fd cannot be read.
func FDs() (int, bool) {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, false
	}
	return len(es), true
}
