package enginepanic

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stack string
		exits bool
	}{
		{"ours", "goroutine 7 [running]:\ngithub.com/dynakv/dynakv/resp.(*Server).exec(...)\n", false},
		{"pebble", "goroutine 7 [running]:\npanic({0x1})\ngithub.com/cockroachdb/pebble.(*DB).commitWrite(...)\n\tdb.go:965\n", true},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code := -1
			exit = func(c int) { code = c }
			defer func() { exit = nil }()
			var logs bytes.Buffer
			check(slog.New(slog.NewTextHandler(&logs, nil)), "boom", []byte(tc.stack))
			if got := code == 70; got != tc.exits {
				t.Fatalf("exit code %d, want an exit: %v", code, tc.exits)
			}
			if tc.exits && !strings.Contains(logs.String(), "boom") {
				t.Fatalf("the panic was not logged: %s", logs.String())
			}
		})
	}
}

// TestCheckSeesTheRecoveredPanicsStack: Check, called in the deferred function
// that recovers, sees (and returns) the frames the panic came through.
func TestCheckSeesTheRecoveredPanicsStack(t *testing.T) {
	var stack []byte
	func() {
		defer func() {
			stack = Check(slog.New(slog.DiscardHandler), recover())
		}()
		panicHere()
	}()
	if !bytes.Contains(stack, []byte("enginepanic.panicHere")) {
		t.Fatalf("recovered stack lacks the panicking frame:\n%s", stack)
	}
}

func panicHere() { panic("here") }
