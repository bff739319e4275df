package history

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestLatencies checks which windows an operation counts in, how outcomes are
// counted, and the percentiles of the acknowledged ones.
func TestLatencies(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	h := &History{Healed: 100 * time.Second, Faults: []Fault{
		{Kind: "kill", Nodes: []string{"n3"}, Start: 10 * time.Second, End: 20 * time.Second},
		{Kind: FaultZoneKill, Nodes: []string{"n1", "n4"}, Start: 30 * time.Second, End: 40 * time.Second},
		{Kind: FaultZonePartition, Nodes: []string{"n2", "n5"}, Start: 50 * time.Second, End: 60 * time.Second},
	}}
	add := func(kind Kind, node string, invoke, took time.Duration, out Outcome, err string) {
		h.Ops = append(h.Ops, Op{ID: len(h.Ops) + 1, Kind: kind, Node: node, Invoke: invoke, Complete: invoke + took, Outcome: out, Err: err})
	}
	// Outside faults: 100 reads of 1..100 ms, one write of 5 ms.
	for i := 1; i <= 100; i++ {
		add(Get, "n2", time.Second+ms(i), ms(i), OK, "")
	}
	add(Set, "n2", 2*time.Second, ms(5), OK, "")
	// Straddling the start of the kill: in no window but the load.
	add(DPut, "n2", 9*time.Second, 2*time.Second, OK, "")
	// During the zone kill: through the other zones, one ok write and one
	// NOQUORUM; through the zone, a refused connection.
	add(DPut, "n2", 31*time.Second, ms(80), OK, "")
	add(Incr, "n5", 32*time.Second, ms(900), Fail, "NOQUORUM reached 1 of 2 replicas")
	add(MGet, "n1", 33*time.Second, ms(1), Unknown, "connection refused")
	// During the zone partition: through the zone and through the others.
	add(DGet, "n5", 51*time.Second, ms(40), OK, "")
	add(MSet, "n3", 52*time.Second, ms(60), OK, "")
	// After healing: the final reads count nowhere.
	add(Get, "n1", 101*time.Second, ms(1), OK, "")

	got := map[string]Window{}
	var names []string
	for _, w := range Latencies(h) {
		got[w.Name] = w
		names = append(names, w.Name)
	}
	if want := []string{WindowAll, WindowNoFault, WindowZoneKillLive, WindowZoneKillDown, WindowZoneCutLive, WindowZoneCutDown}; !slices.Equal(names, want) {
		t.Fatalf("windows %q, want %q", names, want)
	}
	cases := []struct {
		window        string
		reads, writes Stats
	}{
		{WindowAll, Stats{OK: 101, Unknown: 1, P50: ms(50), P99: ms(99), Max: ms(100)},
			Stats{OK: 4, Fail: 1, NoQuorum: 1, P50: ms(60), P99: 2 * time.Second, Max: 2 * time.Second}},
		{WindowNoFault, Stats{OK: 100, P50: ms(50), P99: ms(99), Max: ms(100)},
			Stats{OK: 1, P50: ms(5), P99: ms(5), Max: ms(5)}},
		{WindowZoneKillLive, Stats{}, Stats{OK: 1, Fail: 1, NoQuorum: 1, P50: ms(80), P99: ms(80), Max: ms(80)}},
		{WindowZoneKillDown, Stats{Unknown: 1}, Stats{}},
		{WindowZoneCutLive, Stats{}, Stats{OK: 1, P50: ms(60), P99: ms(60), Max: ms(60)}},
		{WindowZoneCutDown, Stats{OK: 1, P50: ms(40), P99: ms(40), Max: ms(40)}, Stats{}},
	}
	// The histogram keeps 3 significant digits.
	near := func(a, b time.Duration) bool { return a-b < b/500+time.Microsecond && b-a < b/500+time.Microsecond }
	same := func(a, b Stats) bool {
		return a.OK == b.OK && a.Fail == b.Fail && a.Unknown == b.Unknown && a.NoQuorum == b.NoQuorum &&
			near(a.P50, b.P50) && near(a.P99, b.P99) && near(a.Max, b.Max)
	}
	for _, tc := range cases {
		w := got[tc.window]
		if !same(w.Reads, tc.reads) || !same(w.Writes, tc.writes) {
			t.Errorf("%s: reads %+v writes %+v, want %+v and %+v", tc.window, w.Reads, w.Writes, tc.reads, tc.writes)
		}
	}
	if table := latencyTable(Latencies(h)); !strings.Contains(table, WindowZoneKillLive) || !strings.Contains(table, "1(1)") {
		t.Errorf("latency table lacks the zone-kill row or its NOQUORUM:\n%s", table)
	}

	// Without zone faults only the load and the fault-free windows are reported.
	if ws := Latencies(&History{Healed: time.Second}); len(ws) != 2 || ws[0].Name != WindowAll || ws[1].Name != WindowNoFault {
		t.Errorf("empty history: %+v", ws)
	}
}
