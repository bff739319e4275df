// Package fuzzcheck holds the two helpers dynakv's fuzz targets share: a measure of
// how many heap bytes a decoder allocates (so a target can check that a header
// claiming a huge count costs nothing), and named seeds that are both added to a
// target and, on request, written as files of its committed corpus.
//
// Only tests import it. Allocated counts every goroutine's allocations, so a target
// compares it with a generous bound, not an exact figure; Seed writes files only
// when the environment variable WriteSeedsEnv is set.
package fuzzcheck

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strings"
	"testing"
)

// WriteSeedsEnv names the environment variable that makes Seed write corpus files:
// `DYNAKV_WRITE_SEEDS=1 go test -run '^Fuzz' ./pkg/` regenerates a package's named
// seeds under testdata/fuzz/<Target>/.
const WriteSeedsEnv = "DYNAKV_WRITE_SEEDS"

func heapAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// Allocated returns about how many heap bytes fn allocated. The runtime counts
// small objects per span, so the figure may be off by tens of kilobytes; a large
// allocation (what a lying length prefix would cause) is counted exactly.
func Allocated(fn func()) uint64 {
	before := heapAllocs()
	fn()
	return heapAllocs() - before
}

// AllocSlack is what Allocated may report beyond a decoder's real allocations:
// span granularity and the testing framework's own work while fn runs.
const AllocSlack = 1 << 20

// CheckAlloc runs fn and fails t when it allocated more than perByte bytes per
// input byte (plus AllocSlack) for an input of n bytes. Over the limit, fn runs a
// second time and t fails only if that run is over it too: a decoder allocates the
// same each time, the noise does not. fn must therefore be repeatable.
func CheckAlloc(t testing.TB, what string, n, perByte int, fn func()) {
	t.Helper()
	limit := uint64(n*perByte + AllocSlack)
	if got := Allocated(fn); got <= limit {
		return
	}
	if got := Allocated(fn); got > limit {
		t.Fatalf("%s allocated %d bytes for %d input bytes (limit %d)", what, got, n, limit)
	}
}

// Seed adds args to f's seed corpus and, when WriteSeedsEnv is set, also writes
// them as testdata/fuzz/<target>/<name> in the `go test fuzz v1` format, so the
// committed corpus holds every named seed. Supported argument types are those dynakv's
// targets take: []byte, string, uint8, bool, int, int64, uint64.
func Seed(f *testing.F, name string, args ...any) {
	f.Helper()
	f.Add(args...)
	if os.Getenv(WriteSeedsEnv) == "" {
		return
	}
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case string:
			fmt.Fprintf(&b, "string(%q)\n", v)
		case uint8:
			fmt.Fprintf(&b, "byte(%q)\n", v)
		case bool, int, int64, uint64:
			fmt.Fprintf(&b, "%T(%v)\n", v, v)
		default:
			f.Fatalf("fuzzcheck.Seed: unsupported argument type %T", a)
		}
	}
	dir := filepath.Join("testdata", "fuzz", f.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
		f.Fatal(err)
	}
}
