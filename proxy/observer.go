package proxy

import "time"

// Observer receives the front ends' events, so node/ can turn them into metrics
// without the front ends knowing Prometheus. Methods must be fast and safe for
// concurrent use.
type Observer interface {
	// Command reports one executed command: protocol ("resp" or "memcache"), the
	// lower-case command name, how long it took, and whether it answered an error.
	Command(protocol, name string, took time.Duration, failed bool)
	// Connection reports a client connection opened (+1) or closed (-1).
	Connection(protocol string, delta int)
}

// NopObserver ignores every event.
type NopObserver struct{}

// Command implements Observer.
func (NopObserver) Command(string, string, time.Duration, bool) {}

// Connection implements Observer.
func (NopObserver) Connection(string, int) {}

var _ Observer = NopObserver{}
