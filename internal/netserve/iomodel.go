package netserve

import (
	"errors"
	"fmt"

	"github.com/dynakv/dynakv/internal/evloop"
)

// IO models: how a front drives its client connections (the fronts' Config.IOModel,
// node's --io-model).
const (
	// IOAuto is IOLoop where the system has event loops (Linux), else IOGoroutine.
	IOAuto = "auto"
	// IOLoop runs plain TCP connections on event loops (the loop driver).
	IOLoop = "loop"
	// IOGoroutine runs every connection on a goroutine of its own.
	IOGoroutine = "goroutine"
)

// CheckIOModel reports an IO model that is unknown, or loop where the system has
// no event loops. The empty model is IOAuto.
func CheckIOModel(m string) error {
	switch m {
	case "", IOAuto, IOGoroutine:
		return nil
	case IOLoop:
		if !evloop.Supported() {
			return errors.New("IO model loop needs event loops (Linux)")
		}
		return nil
	}
	return fmt.Errorf("unknown IO model %q (auto, loop or goroutine)", m)
}

// UseLoops reports whether a front with IO model m (which passed CheckIOModel)
// runs its plain TCP connections on event loops.
func UseLoops(m string) bool { return m != IOGoroutine && evloop.Supported() }

// NewLoops starts n event loops (0: one per GOMAXPROCS) for a front's loop
// driver under panic policy p, with cfg's other settings (its OnPanic is told
// of every panic a loop recovered; OnIteration of every iteration's length).
func NewLoops(n int, p PanicPolicy, cfg evloop.Config) (*evloop.Group, error) {
	if p == Crash {
		cfg.Panic = evloop.PanicCrash
	}
	return evloop.NewGroup(n, cfg)
}
