package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dynakv/dynakv/bench"
	"github.com/dynakv/dynakv/internal/testnode"
	"github.com/dynakv/dynakv/resp"
)

// TestBenchCommand runs `dynakv bench` against an in-process RESP server: it prints
// the table and writes the JSON and HTML reports.
func TestBenchCommand(t *testing.T) {
	srv := resp.New(resp.Config{}, testnode.Proxy(t, testnode.Options{}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	defer func() { srv.Close(); <-done }()

	dir := t.TempDir()
	jsonFile, htmlFile := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.html")
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"bench", "--target", ln.Addr().String(), "--requests", "500", "--conns", "3",
		"--pipeline", "4", "--keys", "20", "--ratio", "9:1", "--dist", "zipfian", "--warmup", "-q",
		"--json", jsonFile, "--html", htmlFile})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"OPS/S", "GET", "SET", "9:1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	b, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	var rep bench.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 || rep.Results[0].Dist != "zipfian" || rep.Results[0].Conns != 3 ||
		rep.Results[0].Ops[0].Count+rep.Results[0].Ops[1].Count != 500 {
		t.Errorf("report %+v", rep.Results)
	}
	page, err := os.ReadFile(htmlFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(page, []byte("<svg")) || !bytes.Contains(page, []byte("<polyline")) {
		t.Error("the HTML report has no chart")
	}

	root = newRoot()
	root.SetOut(&out)
	root.SetArgs([]string{"bench", "--target", ln.Addr().String(), "--ratio", "1-1"})
	if err := root.Execute(); err == nil {
		t.Error("a bad --ratio was accepted")
	}

	// The cache pattern: the ratio defaults to 1:0, SETs only fill misses, and the
	// report has the hit ratio.
	out.Reset()
	root = newRoot()
	root.SetOut(&out)
	root.SetArgs([]string{"bench", "--target", ln.Addr().String(), "--requests", "300", "--conns", "2", "--keys", "1000000",
		"--pattern", "cache", "--dist", "zipfian", "--warmup", "-q", "--json", jsonFile})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "HIT RATIO") || !strings.Contains(out.String(), "cache 1:0") {
		t.Errorf("output:\n%s", out.String())
	}
	if b, err = os.ReadFile(jsonFile); err != nil {
		t.Fatal(err)
	}
	rep = bench.Report{}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if r := rep.Results[0]; r.Pattern != bench.PatternCache || r.Ratio != "1:0" || r.Misses == 0 || r.Hits == 0 {
		t.Errorf("cache result %+v", r)
	}

	for _, args := range [][]string{
		{"--maxmemory", "64mb"},                  // without --compare
		{"--compare", "--maxmemory", "64 mb"},    // not a size
		{"--pattern", "lru"},                     // no such pattern
		{"--pattern", "cache", "--ratio", "0:1"}, // a cache needs GETs
	} {
		root = newRoot()
		root.SetOut(&out)
		root.SetArgs(append([]string{"bench", "--target", ln.Addr().String(), "--requests", "10", "-q"}, args...))
		if err := root.Execute(); err == nil {
			t.Errorf("%q was accepted", args)
		}
	}
}

func TestBenchMaxMemoryFlag(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{{"0", 0}, {"1000", 1000}, {"64mb", 64 << 20}, {"64MB", 64 << 20}, {"1gb", 1 << 30}, {"2k", 2000}, {"10b", 10}} {
		var n int64
		if err := (memoryValue{&n}).Set(tc.in); err != nil || n != tc.want {
			t.Errorf("--maxmemory %q = %d, %v; want %d", tc.in, n, err, tc.want)
		}
	}
	for _, bad := range []string{"", "mb", "-1mb", "+1", "1 mb", "1tb", "1.5gb", "99999999999gb", "x"} {
		var n int64
		if err := (memoryValue{&n}).Set(bad); err == nil {
			t.Errorf("--maxmemory %q = %d; want an error", bad, n)
		}
	}
}
