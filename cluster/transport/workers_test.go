package transport

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lni/goutils/leaktest"
)

// deepStack uses about depth KiB of stack, as a handler reaching Pebble does.
//
//go:noinline
func deepStack(depth int) byte {
	var pad [1024]byte
	pad[depth%len(pad)] = byte(depth)
	if depth == 0 {
		return pad[0]
	}
	return deepStack(depth-1) + pad[depth%len(pad)]
}

// BenchmarkCallDeepHandler is BenchmarkCall with a handler that
// needs 32 KiB of stack: a goroutine per call would grow its stack every time.
func BenchmarkCallDeepHandler(b *testing.B) {
	benchCall(b, func(_ context.Context, _ string, _ uint8, req []byte) ([]byte, error) {
		deepStack(32)
		return req, nil
	})
}

// TestWorkersReuse: calls run one after another reuse one worker; concurrent calls
// get their own; idle workers exit on stop, leaving no goroutine behind.
func TestWorkersReuse(t *testing.T) {
	defer leaktest.AfterTest(t)()
	w := newWorkers()
	var ran atomic.Int64
	for range 100 {
		done := make(chan struct{})
		w.run(func() { ran.Add(1); close(done) })
		<-done
	}
	// A worker reaches its receive shortly after its call returns: wait until the
	// next call is taken by an idle worker rather than counting goroutines.
	release := make(chan struct{})
	started := make(chan struct{}, 8)
	for range 8 {
		w.run(func() { started <- struct{}{}; <-release; ran.Add(1) })
	}
	for range 8 {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("concurrent calls did not all start: a call waited for a busy worker")
		}
	}
	close(release)
	w.stop()
	if got := ran.Load(); got != 108 {
		t.Fatalf("ran %d calls, want 108", got)
	}
}
