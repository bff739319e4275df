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
}
