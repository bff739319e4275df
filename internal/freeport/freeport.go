// Package freeport hands out loopback TCP ports for servers that a test or a
// benchmark starts as child processes.
//
// Invariants: a port comes from 22000-31999, below the kernel's ephemeral range
// (32768-60999 by Linux's default net.ipv4.ip_local_port_range), so no outgoing connection of another process takes it
// between the pick and the child's bind, as can happen to a port learnt from
// bind(0); and a process is never handed one port twice (bind(0) may give
// successive calls the same one). Shell scripts get theirs from `dynakv freeport`
// (scripts/lib.sh's free_ports), and their dynakv nodes from `dynakv launch`.
package freeport

import (
	"errors"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
)

// Range of the ports handed out: [Low, High].
const (
	Low  = 22000
	High = 31999
)

var (
	mu   sync.Mutex
	used = map[int]bool{}
)

// ErrNone is returned when no port of the range could be bound.
var ErrNone = errors.New("freeport: no free loopback port in the range")

// Addr returns "127.0.0.1:port" for a port of the range that was free a moment ago
// and that this process has not been handed before.
func Addr() (string, error) { return pick(Low, High) }

// pick is Addr over the ports [low, high].
func pick(low, high int) (string, error) {
	mu.Lock()
	defer mu.Unlock()
	for range 10000 {
		p := low + rand.IntN(high-low+1)
		if used[p] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		_ = ln.Close()
		used[p] = true
		return ln.Addr().String(), nil
	}
	return "", ErrNone
}
