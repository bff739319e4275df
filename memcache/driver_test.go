package memcache

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/dynakv/dynakv/internal/evloop"
)

// testIOModel is the driver the tests' servers run on (startServer, ioConfig).
// TestMain runs the package's tests once per driver, so a regression in either
// shows; DYNAKV_TEST_IO_MODEL=loop or goroutine runs one only.
var testIOModel = IOGoroutine

func TestMain(m *testing.M) {
	flag.Parse()
	models := []string{IOGoroutine}
	if evloop.Supported() {
		models = []string{IOLoop, IOGoroutine}
	}
	if only := os.Getenv("DYNAKV_TEST_IO_MODEL"); only != "" {
		models = []string{only}
	}
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		models = models[:1] // fuzzing runs once
	}
	code := 0
	for _, model := range models {
		testIOModel = model
		if len(models) > 1 {
			fmt.Fprintf(os.Stderr, "memcache: the tests on the %s driver\n", model)
		}
		if c := m.Run(); c != 0 {
			code = c
		}
	}
	os.Exit(code)
}

// ioConfig returns cfg set to run on the tests' driver.
func ioConfig(cfg Config) Config {
	cfg.IOModel = testIOModel
	return cfg
}
