// Package enginepanic tells the front ends' panic handlers when a recovered panic
// must end the process after all.
//
// The RESP and memcached servers and the cluster transport recover from a panic
// in one command so that a bug costs one connection, not the node. That is wrong
// for a panic raised inside the storage engine: Pebble panics on a failed WAL
// write or fsync, and on corruption, while it holds its commit locks, so a node
// that recovered would live on with every later write hanging (and could not even
// stop on SIGTERM). Invariant: a panic whose stack passes through Pebble ends the
// process with status 70 (EX_SOFTWARE), after it is logged; any other panic is
// left to the caller.
package enginepanic

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
)

// enginePackage prefixes every function of the storage engine in a stack trace.
var enginePackage = []byte("github.com/cockroachdb/pebble")

// Raised reports whether stack (debug.Stack, taken in the deferred function that
// recovered) shows the panic passing through the storage engine.
func Raised(stack []byte) bool { return bytes.Contains(stack, enginePackage) }

// exit ends the process; tests replace it.
var exit = os.Exit

// Check is called by the deferred function that recovered the panic r: it ends
// the process if the panic came through the storage engine, and returns the
// panic's stack for the caller to log otherwise.
func Check(log *slog.Logger, r any) (stack []byte) {
	stack = debug.Stack()
	check(log, r, stack)
	return stack
}

func check(log *slog.Logger, r any, stack []byte) {
	if Raised(stack) {
		log.Error("storage engine panicked; the node stops", "panic", fmt.Sprint(r), "stack", string(stack))
		exit(70)
	}
}
