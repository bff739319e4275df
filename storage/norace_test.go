//go:build !race

package storage

// raceEnabled is set when the tests run with the race detector, which slows
// Pebble down several times: heavy tests shrink.
const raceEnabled = false
