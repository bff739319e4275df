package bench

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"
)

// fakeResult builds the result of a run of name whose requests took lat µs each
// (gets and sets of them), over elapsed.
func fakeResult(t *testing.T, name, proto string, gets, sets int, lat int64, elapsed time.Duration) *Result {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Name, cfg.Target, cfg.Protocol = name, "127.0.0.1:1", proto
	cfg.Workload.Gets, cfg.Workload.Sets = min(gets, 1), min(sets, 1)
	w := &worker{}
	for op := range w.hists {
		w.hists[op] = newHist()
	}
	for i := range gets + sets {
		op := OpGet
		if i >= gets {
			op = OpSet
		}
		if err := w.hists[op].RecordValue(lat + int64(i%100)); err != nil {
			t.Fatal(err)
		}
	}
	w.errs[OpSet] = 1
	return collect(cfg.EnsureDefaults(), []*worker{w}, elapsed)
}

func TestResultSummary(t *testing.T) {
	r := fakeResult(t, "a", ProtoRESP, 1000, 3000, 200, 2*time.Second)
	g, ok := r.Op(OpGet)
	s, ok2 := r.Op(OpSet)
	if !ok || !ok2 || g.Count != 1000 || s.Count != 3000 || s.Errors != 1 || g.OpsPerSec != 500 || r.OpsPerSec != 2000 {
		t.Fatalf("summary %+v", r)
	}
	// 200..299 µs, uniform: p50 about 0.25 ms, max about 0.3 ms.
	if math.Abs(g.P50-0.25) > 0.005 || math.Abs(g.Max-0.299) > 0.005 || g.P90 < g.P50 || g.P99 < g.P90 {
		t.Errorf("percentiles %+v", g)
	}
	if n := len(g.Curve); n != len(curvePercentiles) || g.Curve[0].Percentile != 0 || g.Curve[n-1].Percentile != 100 {
		t.Errorf("curve %+v", g.Curve)
	}
	if err := r.Merge(fakeResult(t, "a", ProtoRESP, 1000, 3000, 400, 2*time.Second)); err != nil {
		t.Fatal(err)
	}
	g, _ = r.Op(OpGet)
	if g.Count != 2000 || g.OpsPerSec != 500 || r.Runs != 2 || g.Max < 0.49 {
		t.Errorf("merged %+v", g)
	}
	if err := r.Merge(fakeResult(t, "b", ProtoRESP, 1, 1, 1, time.Second)); err == nil {
		t.Error("merged another target's result")
	}
}

func TestRatios(t *testing.T) {
	results := []*Result{
		fakeResult(t, NameRedis, ProtoRESP, 1000, 0, 100, time.Second),
		fakeResult(t, NameSingle, ProtoRESP, 800, 0, 100, time.Second),
		fakeResult(t, NameCluster, ProtoRESP, 200, 0, 100, time.Second),
		fakeResult(t, NameSingle, ProtoRESP, 0, 500, 100, time.Second), // no redis SET run to compare with
		fakeResult(t, NameMemcached, ProtoMemcache, 0, 1000, 100, time.Second),
		fakeResult(t, NameSingle, ProtoMemcache, 0, 700, 100, time.Second),
	}
	got := Ratios(results)
	want := []Ratio{
		{Protocol: ProtoRESP, Op: "GET", Mix: "1:0", Target: NameSingle, Reference: NameRedis, Ratio: 0.8, Floor: FloorSingleRedis},
		{Protocol: ProtoRESP, Op: "GET", Mix: "1:0", Target: NameCluster, Reference: NameRedis, Ratio: 0.2, Floor: FloorCluster},
		{Protocol: ProtoMemcache, Op: "SET", Mix: "0:1", Target: NameSingle, Reference: NameMemcached, Ratio: 0.7, Floor: FloorSingleMemcached},
	}
	checkRatios(t, got, want)
	if !got[0].Met() || got[1].Met() || got[2].Met() {
		t.Errorf("Met: %v %v %v", got[0].Met(), got[1].Met(), got[2].Met())
	}
}

// TestRatiosBaseline: with the Go baseline measured, it is compared with the
// reference server and dynakv with it, all without floors.
func TestRatiosBaseline(t *testing.T) {
	results := []*Result{
		fakeResult(t, NameRedis, ProtoRESP, 0, 1000, 100, time.Second),
		fakeResult(t, NameBaseline, ProtoRESP, 0, 900, 100, time.Second),
		fakeResult(t, NameSingle, ProtoRESP, 0, 600, 100, time.Second),
		fakeResult(t, NameBaseline, ProtoMemcache, 0, 800, 100, time.Second), // no memcached run
	}
	got := Ratios(results)
	want := []Ratio{
		{Protocol: ProtoRESP, Op: "SET", Mix: "0:1", Target: NameBaseline, Reference: NameRedis, Ratio: 0.9},
		{Protocol: ProtoRESP, Op: "SET", Mix: "0:1", Target: NameSingle, Reference: NameRedis, Ratio: 0.6, Floor: FloorSingleRedis},
		{Protocol: ProtoRESP, Op: "SET", Mix: "0:1", Target: NameSingle, Reference: NameBaseline, Ratio: 0.67},
	}
	checkRatios(t, got, want)
}

// checkRatios compares ratios rounded to two places.
func checkRatios(t *testing.T, got, want []Ratio) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("ratios %+v", got)
	}
	for i := range want {
		g := got[i]
		g.Ratio = math.Round(g.Ratio*100) / 100
		if g != want[i] {
			t.Errorf("ratio %d: %+v; want %+v", i, g, want[i])
		}
	}
}

func testReport(t *testing.T) *Report {
	results := []*Result{
		fakeResult(t, NameRedis, ProtoRESP, 1000, 1000, 100, time.Second),
		fakeResult(t, NameSingle, ProtoRESP, 500, 500, 300, time.Second),
		fakeResult(t, NameMemcached, ProtoMemcache, 1000, 1000, 80, time.Second),
	}
	return &Report{Date: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Command: `dynakv bench --html "<&>"`, Host: "test",
		Results: results, Ratios: Ratios(results)}
}

func TestJSONRoundTrip(t *testing.T) {
	rep := testReport(t)
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if !back.Date.Equal(rep.Date) || back.Command != rep.Command || len(back.Results) != 3 {
		t.Fatalf("round trip: %+v", back)
	}
	r := back.Results[1]
	if r.Name != rep.Results[1].Name || len(r.Ops) != 2 || r.Ops[0].Op != "GET" || r.Ops[0].Count != 500 ||
		r.Ops[0].P99 != rep.Results[1].Ops[0].P99 || len(r.Ops[0].Curve) != len(curvePercentiles) {
		t.Errorf("result %+v", r)
	}
	for _, key := range []string{`"ops_per_sec"`, `"p50_ms"`, `"p999_ms"`, `"curve"`, `"value_size"`} {
		if !strings.Contains(buf.String(), key) {
			t.Errorf("JSON lacks %s", key)
		}
	}
}

// TestHTML checks the page is self-contained and each SVG chart is well-formed XML
// with one bar and one curve per target.
func TestHTML(t *testing.T) {
	var buf bytes.Buffer
	if err := testReport(t).WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	if !strings.HasPrefix(page, "<!DOCTYPE html>") || !strings.HasSuffix(page, "</html>\n") {
		t.Error("not a whole HTML page")
	}
	for _, bad := range []string{"<script", "<link", "src=", `"<&>"`} {
		if strings.Contains(page, bad) {
			t.Errorf("the page has %q", bad)
		}
	}
	svgs := regexp.MustCompile(`(?s)<svg .*?</svg>`).FindAllString(page, -1)
	// RESP: GET and SET, a bar chart and a curve chart each; memcached the same.
	if len(svgs) != 8 {
		t.Fatalf("%d SVG charts; want 8", len(svgs))
	}
	for i, svg := range svgs {
		counts := map[string]int{}
		dec := xml.NewDecoder(strings.NewReader(svg))
		for {
			tok, err := dec.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("chart %d is not well-formed: %v\n%s", i, err, svg)
			}
			if se, ok := tok.(xml.StartElement); ok {
				counts[se.Name.Local]++
			}
		}
		targets := 2 // RESP charts: redis-server and dynakv-1
		if i >= 4 {
			targets = 1
		}
		bar := strings.Contains(svg, "throughput")
		if bar && counts["rect"] != targets || !bar && (counts["polyline"] != targets || counts["rect"] != targets) {
			t.Errorf("chart %d has %v; want %d bars or curves", i, counts, targets)
		}
	}
}

func TestTable(t *testing.T) {
	var buf bytes.Buffer
	if err := testReport(t).WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"OPS/S", "P99.9 ms", "redis-server", "memcached", "dynakv-1 / redis-server", ">= 0.70 NOT MET"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// TestReportCache: a cache comparison under a budget shows the hit ratios, their
// ratio with its floor, every process's peak RSS with dynakv's bound, and notes.
func TestReportCache(t *testing.T) {
	mk := func(name, proto string, hits, misses, maxmemory int64) *Result {
		r := fakeResult(t, name, proto, 1000, 100, 100, time.Second)
		r.Pattern, r.Ratio, r.Hits, r.Misses, r.MaxMemory = PatternCache, "1:0", hits, misses, maxmemory
		r.summarize()
		return r
	}
	results := []*Result{
		mk(NameRedis, ProtoRESP, 800, 200, 64<<20),
		mk(NameSingle, ProtoRESP, 700, 300, 64<<20), // 0.7 / 0.8 = 0.875: under 0.9
		mk(NameMemcached, ProtoMemcache, 500, 500, 64<<20),
		mk(NameSingle, ProtoMemcache, 990, 10, 0), // no budget: no floor
	}
	got := Ratios(results)
	if len(got) != 4 { // per dynakv result: GET ops/s and GET hit ratio, no SET (fills follow misses)
		t.Errorf("ratios %+v", got)
	}
	var hit []Ratio
	for _, r := range got {
		if r.Measure == MeasureHitRatio {
			r.Ratio = math.Round(r.Ratio*1000) / 1000
			hit = append(hit, r)
		}
	}
	want := []Ratio{
		{Protocol: ProtoRESP, Op: "GET", Mix: "cache 1:0", Target: NameSingle, Reference: NameRedis, Ratio: 0.875, Floor: FloorHitRatio, Measure: MeasureHitRatio},
		{Protocol: ProtoMemcache, Op: "GET", Mix: "cache 1:0", Target: NameSingle, Reference: NameMemcached, Ratio: 1.98, Measure: MeasureHitRatio},
	}
	if len(hit) != len(want) || hit[0] != want[0] || hit[1] != want[1] {
		t.Fatalf("hit ratios %+v; want %+v", hit, want)
	}
	rep := &Report{Results: results, Ratios: got, Notes: []string{"dynakv: no --maxmemory"}, Memory: []Memory{
		{Server: NameRedis, Process: NameRedis, PeakRSS: 70 << 20, MaxMemory: 64 << 20},
		{Server: NameSingle, Process: "dynakv-1-1", PeakRSS: 900 << 20, MaxMemory: 64 << 20, Bound: RSSBound(64 << 20)},
	}}
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"HIT RATIO", "0.8000", "0.7000", "cache 1:0", "GET hit ratio", ">= 0.90 NOT MET",
		"PEAK RSS", "70.0 MiB", "900.0 MiB", "<= 212.0 MiB NOT MET", "note: dynakv: no --maxmemory"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	buf.Reset()
	if err := rep.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<th>hit ratio</th>", "<td>0.8000</td>", "peak RSS", "900.0 MiB", "note: dynakv: no --maxmemory"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
}
