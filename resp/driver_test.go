package resp

import (
	"os"
	"testing"

	"github.com/dynakv/dynakv/internal/drivertest"
)

// testIOModel is the driver the tests' servers run on (startServer, ioConfig).
// TestMain runs the package's tests once per driver (internal/drivertest), so a
// regression in either shows; DYNAKV_TEST_IO_MODEL=loop or goroutine runs one only.
var testIOModel = IOGoroutine

func TestMain(m *testing.M) {
	os.Exit(drivertest.Run(m, "resp", func(model string) { testIOModel = model }))
}

// ioConfig returns cfg set to run on the tests' driver.
func ioConfig(cfg Config) Config {
	cfg.IOModel = testIOModel
	return cfg
}
