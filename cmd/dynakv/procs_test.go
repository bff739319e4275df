package main

import (
	"log/slog"
	"runtime"
	"testing"
)

func TestSetProcs(t *testing.T) {
	base := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(base) })
	auto := max(1, base-1)
	for _, tc := range []struct {
		name    string
		procs   int
		given   bool
		env     string
		want    int
		wantErr bool
	}{
		{name: "default leaves a CPU", want: auto},
		{name: "explicit count", procs: 3, given: true, want: 3},
		{name: "GOMAXPROCS set decides", env: "7", want: base},
		{name: "explicit 0 overrides GOMAXPROCS", given: true, env: "7", want: auto},
		{name: "negative refused", procs: -1, given: true, want: base, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runtime.GOMAXPROCS(base)
			t.Setenv("GOMAXPROCS", tc.env)
			err := setProcs(tc.procs, tc.given, slog.New(slog.DiscardHandler))
			if (err != nil) != tc.wantErr {
				t.Fatalf("setProcs: err = %v, want error %v", err, tc.wantErr)
			}
			if got := runtime.GOMAXPROCS(0); got != tc.want {
				t.Fatalf("GOMAXPROCS = %d, want %d", got, tc.want)
			}
		})
	}
}
