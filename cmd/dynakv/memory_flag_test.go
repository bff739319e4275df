package main

import (
	"strings"
	"testing"
)

// TestMaxMemoryFlag: --maxmemory takes Redis's memory units and refuses what
// Redis's memtoull refuses; --maxmemory-policy defaults by storage (empty: the
// node resolves it), its help does not say "only noeviction" (the bench reads
// that as a dynakv that cannot evict), and --maxmemory-samples defaults to 5.
func TestMaxMemoryFlag(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"100", 100, true}, {"64mb", 64 << 20, true}, {"1GB", 1 << 30, true},
		{"1k", 1000, true}, {"2kb", 2048, true}, {"-1", 0, false}, {"12x", 0, false},
		{"", 0, false}, {"9223372036854775808", 0, false},
	} {
		var v int64
		err := memoryValue{&v}.Set(tc.in)
		if (err == nil) != tc.ok || tc.ok && v != tc.want {
			t.Errorf("--maxmemory %q: %d, %v; want %d, ok %v", tc.in, v, err, tc.want, tc.ok)
		}
	}
	f := newServerCmd().Flags()
	if err := f.Parse([]string{"--maxmemory", "64mb"}); err != nil {
		t.Fatal(err)
	}
	if got := f.Lookup("maxmemory").Value.String(); got != "67108864" {
		t.Errorf("--maxmemory 64mb reads back %s", got)
	}
	if got := f.Lookup("maxmemory-policy").DefValue; got != "" {
		t.Errorf("--maxmemory-policy default %q", got)
	}
	if u := f.Lookup("maxmemory-policy").Usage; strings.Contains(u, "only noeviction") || !strings.Contains(u, "allkeys-lru") {
		t.Errorf("--maxmemory-policy help %q", u)
	}
	if got := f.Lookup("maxmemory-samples").DefValue; got != "5" {
		t.Errorf("--maxmemory-samples default %q", got)
	}
	err := newServerCmd().Flags().Parse([]string{"--maxmemory", "lots"})
	if err == nil || !strings.Contains(err.Error(), "not a memory size") {
		t.Errorf("--maxmemory lots: %v", err)
	}
}
