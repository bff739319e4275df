package bench

import (
	"cmp"
	"fmt"
	"math"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Result is what one target measured: per operation, the count, the errors and the
// latency distribution. Results of several runs of one target merge into one (Merge).
type Result struct {
	// Name labels the target; Target is its address; Protocol what it spoke.
	Name     string `json:"name"`
	Target   string `json:"target"`
	Protocol string `json:"protocol"`
	// Conns, Pipeline, Keys, Dist, Ratio, ValueSize and Pattern describe the workload.
	Conns     int    `json:"conns"`
	Pipeline  int    `json:"pipeline"`
	Keys      int    `json:"keys"`
	Dist      string `json:"dist"`
	Ratio     string `json:"ratio"`
	ValueSize int    `json:"value_size"`
	Pattern   string `json:"pattern"`
	// MaxMemory is the memory budget the server was given, in bytes (0: none or
	// not known); Compare sets it.
	MaxMemory int64 `json:"maxmemory,omitempty"`
	// Runs is how many runs were merged; Elapsed their total time in seconds.
	Runs    int     `json:"runs"`
	Elapsed float64 `json:"elapsed_s"`
	// OpsPerSec is every completed request over Elapsed.
	OpsPerSec float64 `json:"ops_per_sec"`
	// Ops has one entry per operation the workload used, GET first.
	Ops []OpStats `json:"ops"`
	// Hits and Misses count the GETs answered with a value and with nothing (errors
	// are neither); HitRatio is Hits / (Hits + Misses), 0 without either.
	Hits     int64   `json:"hits"`
	Misses   int64   `json:"misses"`
	HitRatio float64 `json:"hit_ratio"`

	hists [numOps]*hdrhistogram.Histogram
	errs  [numOps]int64
}

// Mix labels the result's workload: its get:set ratio, after its pattern when that
// is not PatternMix (Workload.Mix).
func (r *Result) Mix() string { return mixLabel(r.Pattern, r.Ratio) }

// OpStats is one operation's figures; latencies are in milliseconds.
type OpStats struct {
	Op        string  `json:"op"`
	Count     int64   `json:"count"`
	Errors    int64   `json:"errors"`
	OpsPerSec float64 `json:"ops_per_sec"`
	P50       float64 `json:"p50_ms"`
	P90       float64 `json:"p90_ms"`
	P99       float64 `json:"p99_ms"`
	P999      float64 `json:"p999_ms"`
	Max       float64 `json:"max_ms"`
	Mean      float64 `json:"mean_ms"`
	// Curve is the latency at percentiles from 0 to 99.999 and 100, for charts.
	Curve []CurvePoint `json:"curve"`
}

// CurvePoint is the latency (ms) at or under which Percentile percent of requests completed.
type CurvePoint struct {
	Percentile float64 `json:"percentile"`
	Ms         float64 `json:"ms"`
}

// curvePercentiles are the points of a latency curve: four per decade of 1/(1-p).
var curvePercentiles = func() []float64 {
	var ps []float64
	for k := 0; k <= 20; k++ {
		ps = append(ps, 100*(1-math.Pow(10, -float64(k)/4)))
	}
	return append(ps, 100)
}()

func collect(cfg Config, workers []*worker, elapsed time.Duration) *Result {
	r := &Result{Name: cfg.Name, Target: cfg.Target, Protocol: cfg.Protocol, Conns: cfg.Conns,
		Pipeline: cfg.Pipeline, Keys: cfg.Workload.Keys, Dist: cfg.Workload.Dist, Ratio: cfg.Workload.Ratio(),
		ValueSize: cfg.Workload.ValueSize, Pattern: cmp.Or(cfg.Workload.Pattern, PatternMix), Runs: 1, Elapsed: elapsed.Seconds()}
	for op := range r.hists {
		r.hists[op] = newHist()
		for _, w := range workers {
			r.hists[op].Merge(w.hists[op])
			r.errs[op] += w.errs[op]
		}
	}
	for _, w := range workers {
		r.Hits += w.hits
		r.Misses += w.misses
	}
	r.summarize()
	return r
}

// Merge adds o's requests and time to r; both must be of the same target and workload.
func (r *Result) Merge(o *Result) error {
	if r.Name != o.Name || r.Protocol != o.Protocol || r.Ratio != o.Ratio || r.Pattern != o.Pattern {
		return fmt.Errorf("bench: cannot merge %s/%s into %s/%s", o.Name, o.Protocol, r.Name, r.Protocol)
	}
	for op := range r.hists {
		r.hists[op].Merge(o.hists[op])
		r.errs[op] += o.errs[op]
	}
	r.Hits += o.Hits
	r.Misses += o.Misses
	r.Runs += o.Runs
	r.Elapsed += o.Elapsed
	r.summarize()
	return nil
}

// Op returns the figures of op, and false when the workload had none of it.
func (r *Result) Op(op Op) (OpStats, bool) { return r.opStats(op.String()) }

func (r *Result) opStats(name string) (OpStats, bool) {
	for _, s := range r.Ops {
		if s.Op == name {
			return s, true
		}
	}
	return OpStats{}, false
}

func (r *Result) summarize() {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	r.Ops = r.Ops[:0]
	var total int64
	for op := range numOps {
		h := r.hists[op]
		n := h.TotalCount()
		if n == 0 && r.errs[op] == 0 {
			continue
		}
		total += n
		s := OpStats{Op: op.String(), Count: n, Errors: r.errs[op],
			P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P99: ms(h.ValueAtQuantile(99)),
			P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max()), Mean: h.Mean() / 1000}
		if r.Elapsed > 0 {
			s.OpsPerSec = float64(n) / r.Elapsed
		}
		for _, p := range curvePercentiles {
			v := h.ValueAtQuantile(p)
			if p == 100 {
				v = h.Max()
			}
			s.Curve = append(s.Curve, CurvePoint{Percentile: p, Ms: ms(v)})
		}
		r.Ops = append(r.Ops, s)
	}
	if r.Elapsed > 0 {
		r.OpsPerSec = float64(total) / r.Elapsed
	}
	r.HitRatio = 0
	if n := r.Hits + r.Misses; n > 0 {
		r.HitRatio = float64(r.Hits) / float64(n)
	}
}
