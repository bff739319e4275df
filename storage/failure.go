package storage

import (
	"errors"
	"fmt"
	"runtime/debug"
)

// ErrEngineFailed is the error of every call to a Store whose storage engine
// failed (see Failed): Pebble panicked in a call, or called its logger's Fatalf,
// or an fsync of the WAL failed. It is wrapped with what failed.
var ErrEngineFailed = errors.New("storage: engine failed")

// Failed is closed once the store's engine failed: from then on every call
// returns Err, the store acknowledges no write, and its owner must stop the
// process (Close does not wait for calls stuck in Pebble). It is closed at most
// once, and never by Close.
func (s *Store) Failed() <-chan struct{} { return s.failed }

// Err returns why the store failed, an error wrapping ErrEngineFailed; nil while
// it has not.
func (s *Store) Err() error {
	if p := s.failErr.Load(); p != nil {
		return *p
	}
	return nil
}

// fail marks the store failed with err (the first failure wins), logs it with
// stack (where it was found, if known) and closes Failed. It returns the store's
// failure.
func (s *Store) fail(err error, stack []byte) error {
	s.failOnce.Do(func() {
		if !errors.Is(err, ErrEngineFailed) {
			err = fmt.Errorf("%w: %w", ErrEngineFailed, err)
		}
		s.failErr.Store(&err)
		args := []any{"err", err}
		if stack != nil {
			args = append(args, "stack", string(stack))
		}
		s.cfg.Logger.Error("storage engine failed; every call to the store fails from now on", args...)
		close(s.failed)
	})
	return s.Err()
}

// engineError is the error of a panic r recovered from the engine.
func engineError(r any) error {
	if err, ok := r.(error); ok {
		return fmt.Errorf("%w: %w", ErrEngineFailed, err)
	}
	return fmt.Errorf("%w: %v", ErrEngineFailed, r)
}

// recovered fails the store for the panic r, just recovered from the engine by a
// deferred function (whose stack still shows where the panic came from), and
// returns the failure. A panic of the caller's own code (guestPanic) is raised
// again instead: it is not the engine's.
func (s *Store) recovered(r any) error {
	if g, ok := r.(*guestPanic); ok {
		panic(g)
	}
	return s.fail(engineError(r), debug.Stack())
}

// guest runs f, code of the store's caller run inside a call (an UpdateFunc, a
// Scan callback, the Observer, a condition), so that a panic in it crosses the
// store's boundary as a panic, wrapped in a guestPanic that keeps its value and
// stack, instead of failing the store: the caller's bug is not the engine's.
func guest(f func()) {
	defer func() {
		if r := recover(); r != nil {
			g, ok := r.(*guestPanic) // from a nested call to the store
			if !ok {
				g = &guestPanic{value: r, stack: debug.Stack()}
			}
			panic(g)
		}
	}()
	f()
}

// guestPanic is what a Store call panics with when the caller's code it ran
// panicked (see guest). Formatted with %v it is the original value; with %+v,
// and as the runtime prints an unrecovered panic, the original stack follows.
type guestPanic struct {
	value any
	stack []byte
}

func (g *guestPanic) String() string { return fmt.Sprintf("%v\n\npanicked at:\n%s", g.value, g.stack) }

// Format implements fmt.Formatter.
func (g *guestPanic) Format(f fmt.State, verb rune) {
	if f.Flag('+') {
		fmt.Fprint(f, g.String())
		return
	}
	fmt.Fprint(f, g.value)
}
