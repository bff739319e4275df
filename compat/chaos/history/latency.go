package history

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Zone-down faults: every member of one zone killed at once, or the zone cut from
// the others. Fault.Nodes are the zone's members.
const (
	FaultZoneKill      = "zone-kill"
	FaultZonePartition = "zone-partition"
)

// Stats are the operations of one class (reads or writes) in one window: how they
// completed, and the latency of the acknowledged ones (Invoke to Complete, as the
// client saw it).
type Stats struct {
	OK      int `json:"ok"`
	Fail    int `json:"fail"`
	Unknown int `json:"unknown"`
	// NoQuorum counts the failures that were NOQUORUM.
	NoQuorum int           `json:"noquorum"`
	P50      time.Duration `json:"p50"`
	P99      time.Duration `json:"p99"`
	Max      time.Duration `json:"max"`
}

// Errors counts the operations that were not acknowledged.
func (s Stats) Errors() int { return s.Fail + s.Unknown }

// Window is the reads and writes of one slice of a run.
type Window struct {
	Name   string `json:"name"`
	Reads  Stats  `json:"reads"`
	Writes Stats  `json:"writes"`
}

// Window names, in report order.
const (
	WindowAll          = "load (all)"
	WindowNoFault      = "no fault"
	WindowZoneKillLive = "zone-kill, via other zones"
	WindowZoneKillDown = "zone-kill, via the zone"
	WindowZoneCutLive  = "zone-partition, via other zones"
	WindowZoneCutDown  = "zone-partition, via the zone"
)

// The latency histograms: microseconds from 1 to a minute, 3 significant digits.
const (
	latencyHistMinMicros = 1
	latencyHistMax       = int64(time.Minute / time.Microsecond)
	latencySigFigures    = 3
)

// windowOf names the windows op o counts in: every operation invoked before
// the faults were healed counts in WindowAll; one whose run overlaps no fault in
// WindowNoFault; one invoked during a zone-down fault in that fault's window, by
// whether its front node was in the zone.
func windowOf(h *History, o *Op) []string {
	if o.Invoke >= h.Healed {
		return nil // the reads after healing
	}
	out := []string{WindowAll}
	overlaps := false
	for _, f := range h.Faults {
		if o.Invoke > f.End || o.Complete < f.Start {
			continue
		}
		overlaps = true
		if o.Invoke < f.Start {
			continue
		}
		in := slices.Contains(f.Nodes, o.Node)
		switch {
		case f.Kind == FaultZoneKill && in:
			out = append(out, WindowZoneKillDown)
		case f.Kind == FaultZoneKill:
			out = append(out, WindowZoneKillLive)
		case f.Kind == FaultZonePartition && in:
			out = append(out, WindowZoneCutDown)
		case f.Kind == FaultZonePartition:
			out = append(out, WindowZoneCutLive)
		}
	}
	if !overlaps {
		out = append(out, WindowNoFault)
	}
	return out
}

// noQuorum reports whether o failed for want of a quorum.
func noQuorum(o *Op) bool {
	return o.Outcome == Fail && strings.Contains(strings.ToLower(o.Err), "noquorum")
}

// Latencies summarises the operations of h by window: the whole load, the time
// outside every fault, and the zone-down faults (windows no operation fell in
// are left out, but for the first two).
func Latencies(h *History) []Window {
	type acc struct {
		stats [2]Stats
		hists [2]*hdrhistogram.Histogram
	}
	names := []string{WindowAll, WindowNoFault, WindowZoneKillLive, WindowZoneKillDown, WindowZoneCutLive, WindowZoneCutDown}
	accs := map[string]*acc{}
	for _, n := range names {
		a := &acc{}
		for i := range a.hists {
			a.hists[i] = hdrhistogram.New(latencyHistMinMicros, latencyHistMax, latencySigFigures)
		}
		accs[n] = a
	}
	for i := range h.Ops {
		o := &h.Ops[i]
		class := 0
		if o.Kind.writes() {
			class = 1
		}
		for _, w := range windowOf(h, o) {
			a := accs[w]
			s := &a.stats[class]
			switch o.Outcome {
			case OK:
				s.OK++
				us := int64((o.Complete - o.Invoke) / time.Microsecond)
				_ = a.hists[class].RecordValue(min(max(us, latencyHistMinMicros), latencyHistMax))
			case Fail:
				s.Fail++
				if noQuorum(o) {
					s.NoQuorum++
				}
			default:
				s.Unknown++
			}
		}
	}
	var out []Window
	for _, n := range names {
		a := accs[n]
		for i := range a.stats {
			if hist := a.hists[i]; hist.TotalCount() > 0 {
				a.stats[i].P50 = time.Duration(hist.ValueAtQuantile(50)) * time.Microsecond
				a.stats[i].P99 = time.Duration(hist.ValueAtQuantile(99)) * time.Microsecond
				a.stats[i].Max = time.Duration(hist.Max()) * time.Microsecond
			}
		}
		empty := a.stats[0] == (Stats{}) && a.stats[1] == (Stats{})
		if empty && n != WindowAll && n != WindowNoFault {
			continue
		}
		out = append(out, Window{Name: n, Reads: a.stats[0], Writes: a.stats[1]})
	}
	return out
}

// latencyTable renders ws for people.
func latencyTable(ws []Window) string {
	var b strings.Builder
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }
	fmt.Fprintf(&b, "latency of acknowledged ops in ms; errs = failed+unknown (of which NOQUORUM):\n")
	fmt.Fprintf(&b, "  %-32s %7s %7s %7s %10s   %7s %7s %7s %10s\n", "window", "reads", "p50", "p99", "errs(nq)", "writes", "p50", "p99", "errs(nq)")
	for _, w := range ws {
		fmt.Fprintf(&b, "  %-32s %7d %7s %7s %10s   %7d %7s %7s %10s\n", w.Name,
			w.Reads.OK, ms(w.Reads.P50), ms(w.Reads.P99), fmt.Sprintf("%d(%d)", w.Reads.Errors(), w.Reads.NoQuorum),
			w.Writes.OK, ms(w.Writes.P50), ms(w.Writes.P99), fmt.Sprintf("%d(%d)", w.Writes.Errors(), w.Writes.NoQuorum))
	}
	return b.String()
}
