package bench

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what `dynakv bench` writes: the results of one or more targets, and for
// a comparison the ratios to the reference servers.
type Report struct {
	// Date is when the run started; Command the command line that produced it.
	Date    time.Time `json:"date"`
	Command string    `json:"command"`
	// Host describes the machine, e.g. "linux/amd64, 2 CPUs".
	Host    string    `json:"host"`
	Results []*Result `json:"results"`
	Ratios  []Ratio   `json:"ratios,omitempty"`
	// Memory is the peak memory of every server process of a comparison.
	Memory []Memory `json:"memory,omitempty"`
	// Notes say what a comparison could not do as asked, e.g. a dynakv without
	// --maxmemory.
	Notes []string `json:"notes,omitempty"`
}

// MeasureHitRatio is the Ratio.Measure of a ratio of GET hit ratios.
const MeasureHitRatio = "hit ratio"

// Ratio is a target's throughput (or, by Measure, its GET hit ratio) for one
// operation over a reference server's, with the floor it is held to (0: none).
type Ratio struct {
	Protocol  string  `json:"protocol"`
	Op        string  `json:"op"`
	Mix       string  `json:"mix"` // the get:set ratio of the runs compared, after their pattern if not mix
	Target    string  `json:"target"`
	Reference string  `json:"reference"`
	Ratio     float64 `json:"ratio"`
	Floor     float64 `json:"floor,omitempty"`
	// Measure is what is compared: "" for ops/s, MeasureHitRatio for hit ratios.
	Measure string `json:"measure,omitempty"`
}

// Met reports whether the ratio reaches its floor.
func (r Ratio) Met() bool { return r.Ratio >= r.Floor }

// Memory is the peak resident set of one server process over a whole comparison
// (VmHWM of /proc/<pid>/status, read just before it is stopped), with the budget
// it was given and, for a dynakv node with a budget, the bound the issue holds it
// to (RSSBound).
type Memory struct {
	Server  string `json:"server"`
	Process string `json:"process"`
	// PeakRSS is in bytes; 0 when it could not be read (not Linux, process gone).
	PeakRSS int64 `json:"peak_rss_bytes"`
	// MaxMemory is the budget in bytes the process was started with; 0: none.
	MaxMemory int64 `json:"maxmemory,omitempty"`
	// Bound is the most PeakRSS may be; 0: not held to one.
	Bound int64 `json:"rss_bound,omitempty"`
}

// Met reports whether the peak is within the bound (always, without one).
func (m Memory) Met() bool { return m.Bound == 0 || m.PeakRSS <= m.Bound }

// mib formats bytes as MiB, "-" for 0.
func mib(b int64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

// hitRatio formats a result's GET hit ratio, "-" without GETs answered.
func (r *Result) hitRatio(op string) string {
	if op != OpGet.String() || r.Hits+r.Misses == 0 {
		return "-"
	}
	return fmt.Sprintf("%.4f", r.HitRatio)
}

// label names a ratio's operation and, when it is not throughput, its measure.
func (r Ratio) label() string {
	if r.Measure == "" {
		return r.Op
	}
	return r.Op + " " + r.Measure
}

// WriteTable writes the results as an aligned text table, then the ratios.
func (rep *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "TARGET\tPROTO\tMIX\tOP\tOPS/S\tP50 ms\tP90 ms\tP99 ms\tP99.9 ms\tMAX ms\tERRORS\tHIT RATIO\t")
	for _, r := range rep.Results {
		for _, s := range r.Ops {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.0f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%d\t%s\t\n", r.Name, r.Protocol, r.Mix(), s.Op,
				s.OpsPerSec, s.P50, s.P90, s.P99, s.P999, s.Max, s.Errors, r.hitRatio(s.Op))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rep.Ratios) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RATIO\tPROTO\tOP\tMIX\tTARGET / REFERENCE\tFLOOR\t")
		for _, r := range rep.Ratios {
			floor := verdict(r.Floor > 0, fmt.Sprintf(">= %.2f", r.Floor), r.Met())
			fmt.Fprintf(tw, "%.2f\t%s\t%s\t%s\t%s / %s\t%s\t\n", r.Ratio, r.Protocol, r.label(), r.Mix, r.Target, r.Reference, floor)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(rep.Memory) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVER\tPROCESS\tPEAK RSS\tMAXMEMORY\tBOUND\t")
		for _, m := range rep.Memory {
			bound := verdict(m.Bound > 0, "<= "+mib(m.Bound), m.Met())
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", m.Server, m.Process, mib(m.PeakRSS), mib(m.MaxMemory), bound)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(rep.Notes) > 0 {
		fmt.Fprintln(w)
	}
	for _, n := range rep.Notes {
		if _, err := fmt.Fprintln(w, "note: "+n); err != nil {
			return err
		}
	}
	return nil
}

// verdict is a limit as the text table shows it: "-" when there is none, else
// limit, followed by " NOT MET" when it is not met.
func verdict(has bool, limit string, met bool) string {
	switch {
	case !has:
		return "-"
	case !met:
		return limit + " NOT MET"
	}
	return limit
}

// WriteJSON writes the report as indented JSON.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// palette colours the targets of a chart, in order.
var palette = []string{"#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"}

// WriteHTML writes a self-contained HTML page: a summary table and, per protocol and
// operation, a throughput bar per target and a latency-percentile curve per target,
// as inline SVG (no script, no external style).
func (rep *Report) WriteHTML(w io.Writer) error {
	var b strings.Builder
	esc := html.EscapeString
	b.WriteString(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>dynakv bench</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
svg{margin:.5em 1em .5em 0;background:#fff;border:1px solid #ddd}
.no{color:#b00;font-weight:bold}.ok{color:#070}code{background:#f4f4f4;padding:.1em .3em}
</style></head><body>
<h1>dynakv bench</h1>
`)
	fmt.Fprintf(&b, "<p>%s on %s<br><code>%s</code></p>\n", esc(rep.Date.Format(time.RFC1123)), esc(rep.Host), esc(rep.Command))
	b.WriteString("<table><tr><th>target</th><th>protocol</th><th>get:set</th><th>op</th><th>ops/s</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th><th>errors</th><th>hit ratio</th></tr>\n")
	for _, r := range rep.Results {
		for _, s := range r.Ops {
			fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%.0f</td><td>%.3f</td><td>%.3f</td><td>%.3f</td><td>%.3f</td><td>%.3f</td><td>%d</td><td>%s</td></tr>\n",
				esc(r.Name), esc(r.Protocol), esc(r.Mix()), esc(s.Op), s.OpsPerSec, s.P50, s.P90, s.P99, s.P999, s.Max, s.Errors, r.hitRatio(s.Op))
		}
	}
	b.WriteString("</table>\n")
	if len(rep.Ratios) > 0 {
		b.WriteString("<table><tr><th>target / reference</th><th>protocol</th><th>get:set</th><th>op</th><th>ratio</th><th>floor</th></tr>\n")
		for _, r := range rep.Ratios {
			floor := ""
			if r.Floor > 0 {
				class := "ok"
				if !r.Met() {
					class = "no"
				}
				floor = fmt.Sprintf(`<span class="%s">%.2f</span>`, class, r.Floor)
			}
			fmt.Fprintf(&b, "<tr><td>%s / %s</td><td>%s</td><td>%s</td><td>%s</td><td>%.2f</td><td>%s</td></tr>\n",
				esc(r.Target), esc(r.Reference), esc(r.Protocol), esc(r.Mix), esc(r.label()), r.Ratio, floor)
		}
		b.WriteString("</table>\n")
	}
	if len(rep.Memory) > 0 {
		b.WriteString("<table><tr><th>server</th><th>process</th><th>peak RSS</th><th>maxmemory</th><th>bound</th></tr>\n")
		for _, m := range rep.Memory {
			bound := ""
			if m.Bound > 0 {
				class := "ok"
				if !m.Met() {
					class = "no"
				}
				bound = fmt.Sprintf(`<span class="%s">%s</span>`, class, esc(mib(m.Bound)))
			}
			fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
				esc(m.Server), esc(m.Process), esc(mib(m.PeakRSS)), esc(mib(m.MaxMemory)), bound)
		}
		b.WriteString("</table>\n")
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(&b, "<p>note: %s</p>\n", esc(n))
	}
	mixes := map[string]bool{}
	for _, r := range rep.Results {
		mixes[r.Mix()] = true
	}
	label := func(r *Result) string {
		if len(mixes) > 1 {
			return r.Name + " " + r.Mix()
		}
		return r.Name
	}
	for _, proto := range []string{ProtoRESP, ProtoMemcache} {
		for op := range numOps {
			var names []string
			var ss []OpStats
			for _, r := range rep.Results {
				if s, ok := r.Op(op); ok && r.Protocol == proto && s.Count > 0 {
					names, ss = append(names, label(r)), append(ss, s)
				}
			}
			if len(ss) == 0 {
				continue
			}
			fmt.Fprintf(&b, "<h2>%s %s</h2>\n<div>\n", esc(proto), op)
			barChart(&b, fmt.Sprintf("%s %s throughput (ops/s)", proto, op), names, ss)
			curveChart(&b, fmt.Sprintf("%s %s latency by percentile (ms)", proto, op), names, ss)
			b.WriteString("</div>\n")
		}
	}
	b.WriteString("</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// Chart geometry, in SVG user units.
const (
	chartW, chartH = 560, 300
	padL, padR     = 70, 20
	padT, padB     = 30, 60
)

// barChart draws one bar per named result with its ops/s.
func barChart(b *strings.Builder, title string, names []string, ss []OpStats) {
	esc := html.EscapeString
	top := 0.0
	for _, s := range ss {
		top = max(top, s.OpsPerSec)
	}
	top = niceCeil(top)
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img">`+"\n", chartW, chartH, chartW, chartH)
	fmt.Fprintf(b, `<title>%s</title><text x="%d" y="18" font-size="14">%s</text>`+"\n", esc(title), padL, esc(title))
	plotH := float64(chartH - padT - padB)
	for i := 0; i <= 4; i++ {
		v := top * float64(i) / 4
		y := float64(chartH-padB) - plotH*float64(i)/4
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/><text x="%d" y="%.1f" font-size="11" text-anchor="end">%s</text>`+"\n",
			padL, y, chartW-padR, y, padL-6, y+4, human(v))
	}
	slot := float64(chartW-padL-padR) / float64(len(ss))
	for i, s := range ss {
		h := 0.0
		if top > 0 {
			h = plotH * s.OpsPerSec / top
		}
		x := float64(padL) + slot*float64(i) + slot*0.15
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %.0f ops/s</title></rect>`+"\n",
			x, float64(chartH-padB)-h, slot*0.7, h, palette[i%len(palette)], esc(names[i]), s.OpsPerSec)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="middle">%s</text>`+"\n",
			x+slot*0.35, float64(chartH-padB)-h-4, human(s.OpsPerSec))
		fmt.Fprintf(b, `<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%s</text>`+"\n",
			x+slot*0.35, chartH-padB+16, esc(names[i]))
	}
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/></svg>`+"\n", padL, chartH-padB, chartW-padR, chartH-padB)
}

// curveChart draws each result's latency against percentile, the x axis in
// "nines" (log of 1/(1-p)) as HdrHistogram's plots do, the y axis linear.
func curveChart(b *strings.Builder, title string, names []string, ss []OpStats) {
	esc := html.EscapeString
	const maxNines = 5.0 // 99.999%
	top := 0.0
	for _, s := range ss {
		for _, p := range s.Curve {
			if p.Percentile < 100 {
				top = max(top, p.Ms)
			}
		}
	}
	top = niceCeil(top)
	plotW, plotH := float64(chartW-padL-padR), float64(chartH-padT-padB)
	xOf := func(p float64) float64 {
		nines := maxNines
		if p < 100 {
			nines = min(-math.Log10(1-p/100), maxNines)
		}
		return float64(padL) + plotW*nines/maxNines
	}
	yOf := func(ms float64) float64 {
		if top == 0 {
			return float64(chartH - padB)
		}
		return float64(chartH-padB) - plotH*min(ms, top)/top
	}
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img">`+"\n", chartW, chartH, chartW, chartH)
	fmt.Fprintf(b, `<title>%s</title><text x="%d" y="18" font-size="14">%s</text>`+"\n", esc(title), padL, esc(title))
	for i := 0; i <= 4; i++ {
		y := float64(chartH-padB) - plotH*float64(i)/4
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/><text x="%d" y="%.1f" font-size="11" text-anchor="end">%s</text>`+"\n",
			padL, y, chartW-padR, y, padL-6, y+4, trimFloat(top*float64(i)/4))
	}
	for i, label := range []string{"0%", "90%", "99%", "99.9%", "99.99%", "99.999%"} {
		x := float64(padL) + plotW*float64(i)/maxNines
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/><text x="%.1f" y="%d" font-size="11" text-anchor="middle">%s</text>`+"\n",
			x, padT, x, chartH-padB, x, chartH-padB+16, label)
	}
	for i, s := range ss {
		var pts []string
		for _, p := range s.Curve {
			if p.Percentile < 100 {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", xOf(p.Percentile), yOf(p.Ms)))
			}
		}
		color := palette[i%len(palette)]
		fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"><title>%s</title></polyline>`+"\n",
			color, strings.Join(pts, " "), esc(names[i]))
		ly := chartH - padB + 32 + 14*(i/3)
		lx := padL + (i%3)*160
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d" font-size="11">%s</text>`+"\n",
			lx, ly-9, color, lx+14, ly, esc(names[i]))
	}
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/></svg>`+"\n", padL, chartH-padB, chartW-padR, chartH-padB)
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// human formats a count: 950, 12.5k, 1.2M.
func human(v float64) string {
	switch {
	case v >= 1e6:
		return trimFloat(v/1e6) + "M"
	case v >= 1e3:
		return trimFloat(v/1e3) + "k"
	}
	return trimFloat(v)
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
