// Package drivertest runs a front's tests once per connection driver (the event
// loops and a goroutine per connection), so that a regression in either shows.
// It is for tests only: a package's TestMain calls Run.
//
// Invariants: the loop driver runs first where the system has event loops, and
// not at all where it has none; DYNAKV_TEST_IO_MODEL=loop or goroutine runs one
// driver only; a fuzzing run (-test.fuzz) runs once, on the first driver.
package drivertest

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/dynakv/dynakv/internal/evloop"
	"github.com/dynakv/dynakv/internal/netserve"
)

// Run runs m's tests once per driver, calling set with the IO model
// (netserve.IOLoop, netserve.IOGoroutine) before each run, and returns the exit
// code for TestMain to exit with: the last failing run's, or 0. (TestMain must
// exit with it itself: returning would report only the last run's result.) pkg names the package in the
// line that announces each run.
func Run(m *testing.M, pkg string, set func(model string)) int {
	flag.Parse()
	models := []string{netserve.IOGoroutine}
	if evloop.Supported() {
		models = []string{netserve.IOLoop, netserve.IOGoroutine}
	}
	if only := os.Getenv("DYNAKV_TEST_IO_MODEL"); only != "" {
		models = []string{only}
	}
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		models = models[:1] // fuzzing runs once
	}
	code := 0
	for _, model := range models {
		set(model)
		if len(models) > 1 {
			fmt.Fprintf(os.Stderr, "%s: the tests on the %s driver\n", pkg, model)
		}
		if c := m.Run(); c != 0 {
			code = c
		}
	}
	return code
}
