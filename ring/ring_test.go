package ring

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
)

// names returns prefix1..prefixN.
func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i+1)
	}
	return out
}

func equalMembers(ns ...string) []Member {
	ms := make([]Member, len(ns))
	for i, n := range ns {
		ms[i] = Member{Name: n}
	}
	return ms
}

// randomNames returns n distinct names of 4 to 12 lowercase letters.
func randomNames(rng *rand.Rand, n int) []string {
	seen := map[string]bool{}
	var out []string
	for len(out) < n {
		b := make([]byte, 4+rng.IntN(9))
		for i := range b {
			b[i] = byte('a' + rng.IntN(26))
		}
		if s := string(b); !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func mustNew(t testing.TB, q int, ms []Member) *Ring {
	t.Helper()
	r, err := New(q, ms)
	if err != nil {
		t.Fatalf("New(%d, %v): %v", q, ms, err)
	}
	return r
}

// namedSets are the fixed five-member sets the 1.15 balance bound is asserted for.
var namedSets = map[string][]string{
	"node1..node5": names("node", 5),
	"a..e":         {"a", "b", "c", "d", "e"},
}

// otherSets are further realistic five-member sets. Their balance is logged and held
// only to the statistical bound used for random names (see TestBalance).
var otherSets = map[string][]string{
	"dynakv-0..4": {"dynakv-0", "dynakv-1", "dynakv-2", "dynakv-3", "dynakv-4"},
	"ip:port": {"10.0.0.1:7947", "10.0.0.2:7947", "10.0.0.3:7947", "10.0.0.4:7947",
		"10.0.0.5:7947"},
}

// allSets is namedSets and otherSets together.
func allSets() map[string][]string {
	m := map[string][]string{}
	for k, v := range namedSets {
		m[k] = v
	}
	for k, v := range otherSets {
		m[k] = v
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// maxShareRatio returns max over members of primaries / fair share.
func maxShareRatio(r *Ring) float64 {
	fair := float64(r.Partitions()) / float64(r.Len())
	worst := 0.0
	for _, c := range r.PrimaryCounts() {
		worst = max(worst, float64(c)/fair)
	}
	return worst
}

func TestNewErrors(t *testing.T) {
	ok := equalMembers("a", "b")
	for _, tc := range []struct {
		name    string
		q       int
		members []Member
		want    error
	}{
		{"q=0", 0, ok, ErrPartitions},
		{"q=-1", -1, ok, ErrPartitions},
		{"q=-1024", -1024, ok, ErrPartitions},
		{"q=3", 3, ok, ErrPartitions},
		{"q=1000", 1000, ok, ErrPartitions},
		{"q=1<<17", 1 << 17, ok, ErrPartitions},
		{"empty name", 8, equalMembers("a", ""), ErrEmptyName},
		{"duplicate", 8, equalMembers("a", "b", "a"), ErrDuplicateName},
		{"duplicate different weights", 8, []Member{{Name: "x", Weight: 1}, {Name: "x", Weight: 2}}, ErrDuplicateName},
		{"NaN weight", 8, []Member{{Name: "a", Weight: math.NaN()}}, ErrWeight},
		{"+Inf weight", 8, []Member{{Name: "a", Weight: math.Inf(1)}}, ErrWeight},
		{"-Inf weight", 8, []Member{{Name: "a", Weight: math.Inf(-1)}}, ErrWeight},
		{"q=1", 1, ok, nil},
		{"q=2", 2, ok, nil},
		{"q=max", MaxPartitions, ok, nil},
		{"no members", 8, nil, nil},
		{"zero and negative weights", 8, []Member{{Name: "a"}, {Name: "b", Weight: -3}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(tc.q, tc.members)
			if !errors.Is(err, tc.want) {
				t.Fatalf("New(%d, %v) error = %v, want %v", tc.q, tc.members, err, tc.want)
			}
			if err != nil {
				if r != nil {
					t.Errorf("New returned a ring with error %v", err)
				}
				if !strings.HasPrefix(err.Error(), "ring: ") {
					t.Errorf("error %q lacks the ring: prefix", err)
				}
			}
		})
	}
}

func TestNewDoesNotKeepOrMutateInput(t *testing.T) {
	in := []Member{{Name: "b"}, {Name: "a", Weight: 2}}
	r := mustNew(t, 16, in)
	if in[0] != (Member{Name: "b"}) || in[1] != (Member{Name: "a", Weight: 2}) {
		t.Fatalf("New mutated its input: %v", in)
	}
	in[1].Name = "zzz"
	want := []Member{{Name: "a", Weight: 2}, {Name: "b", Weight: 1}}
	if got := r.Members(); !slices.Equal(got, want) {
		t.Fatalf("Members() = %v, want %v", got, want)
	}
	got := r.Members()
	got[0].Name = "mutated"
	if r.Members()[0].Name != "a" {
		t.Fatal("Members() returned the ring's own slice")
	}
}

func TestEmptyRing(t *testing.T) {
	r := mustNew(t, 8, nil)
	if r.Len() != 0 || r.Partitions() != 8 {
		t.Fatalf("Len=%d Partitions=%d", r.Len(), r.Partitions())
	}
	for p := range 8 {
		if l := r.PreferenceList(p); len(l) != 0 {
			t.Errorf("PreferenceList(%d) = %v", p, l)
		}
		if r.Owns("a", p, 3) {
			t.Errorf("Owns on empty ring")
		}
	}
	if len(r.PrimaryCounts()) != 0 {
		t.Errorf("PrimaryCounts() = %v", r.PrimaryCounts())
	}
}

// TestOrderIndependent: the same member set in any order gives identical lists.
func TestOrderIndependent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 50 {
		n := 1 + rng.IntN(20)
		ms := make([]Member, n)
		for i, name := range randomNames(rng, n) {
			ms[i] = Member{Name: name, Weight: float64(rng.IntN(4))} // 0 means 1
		}
		q := 1 << rng.IntN(11)
		ref := mustNew(t, q, ms)
		for range 5 {
			shuffled := slices.Clone(ms)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			r := mustNew(t, q, shuffled)
			for p := range q {
				if !slices.Equal(r.PreferenceList(p), ref.PreferenceList(p)) {
					t.Fatalf("trial %d, p=%d: order changed placement:\n%v\n%v",
						trial, p, r.PreferenceList(p), ref.PreferenceList(p))
				}
			}
			if !maps(r.PrimaryCounts(), ref.PrimaryCounts()) {
				t.Fatalf("trial %d: PrimaryCounts differ", trial)
			}
		}
	}
}

func maps(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestPreferenceListIsPermutation: every list holds every member exactly once, and
// PrimaryCounts agrees with the lists.
func TestPreferenceListIsPermutation(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		ns := randomNames(rng, 1+rng.IntN(30))
		r := mustNew(t, 256, equalMembers(ns...))
		want := slices.Sorted(slices.Values(ns))
		counts := map[string]int{}
		for p := range r.Partitions() {
			l := r.PreferenceList(p)
			got := slices.Sorted(slices.Values(l))
			if !slices.Equal(got, want) {
				t.Fatalf("p=%d: list %v is not a permutation of %v", p, l, want)
			}
			counts[l[0]]++
		}
		for _, n := range ns {
			if counts[n] != r.PrimaryCounts()[n] {
				t.Fatalf("PrimaryCounts()[%s] = %d, lists say %d", n, r.PrimaryCounts()[n], counts[n])
			}
		}
	}
}

// naiveList is the simple thing to check the fast thing against: the scores
// straight from the formula with math.Log, sorted with a stable sort by score then
// name.
func naiveList(ms []Member, p int) []string {
	type sc struct {
		name  string
		score float64
	}
	var s []sc
	for _, m := range ms {
		w := m.Weight
		if w <= 0 {
			w = 1
		}
		h := pointHash(nameHash(m.Name), p)
		u := (float64(h>>12) + 0.5) / (1 << 52)
		s = append(s, sc{m.Name, -w / math.Log(u)})
	}
	sort.Slice(s, func(i, j int) bool {
		if s[i].score != s[j].score {
			return s[i].score > s[j].score
		}
		return s[i].name < s[j].name
	})
	out := make([]string, len(s))
	for i := range s {
		out[i] = s[i].name
	}
	return out
}

func TestMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 20 {
		ns := randomNames(rng, 1+rng.IntN(12))
		ms := make([]Member, len(ns))
		for i, n := range ns {
			ms[i] = Member{Name: n, Weight: 0.5 + 3*rng.Float64()}
		}
		r := mustNew(t, 512, ms)
		for p := range r.Partitions() {
			if want := naiveList(ms, p); !slices.Equal(r.PreferenceList(p), want) {
				t.Fatalf("p=%d: got %v, naive %v", p, r.PreferenceList(p), want)
			}
		}
	}
}

// TestLnMatchesMathLog: the portable ln agrees with math.Log to within one ulp
// (in practice exactly) over the whole range unit produces.
func TestLnMatchesMathLog(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	checked, differ := 0, 0
	check := func(x float64) {
		got, want := ln(x), math.Log(x)
		checked++
		if got != want {
			differ++
			if math.Nextafter(got, want) != want {
				t.Fatalf("ln(%v) = %v, math.Log = %v", x, got, want)
			}
		}
	}
	defer func() { t.Logf("%d of %d differ from math.Log by 1 ulp", differ, checked) }()
	for _, h := range []uint64{0, 1, 1 << 12, 1<<63 - 1, 1 << 63, math.MaxUint64, 0x5555555555555555} {
		check(unit(h))
	}
	for range 200000 {
		check(unit(rng.Uint64()))
		// also small u, which the top bits rarely reach
		check(unit(rng.Uint64() >> rng.UintN(64)))
	}
	if u := unit(0); u != 0x1p-53 {
		t.Errorf("unit(0) = %v", u)
	}
	if u := unit(math.MaxUint64); u != 1-0x1p-53 {
		t.Errorf("unit(max) = %v", u)
	}
}

// TestGoldenPlacement pins placement, so a change to the hashing or the float math,
// which would silently move data between nodes, fails here.
func TestGoldenPlacement(t *testing.T) {
	r := mustNew(t, DefaultPartitions, equalMembers(names("node", 5)...))
	for _, tc := range []struct {
		p    int
		want string
	}{
		{0, "node2 node3 node5 node4 node1"},
		{1, "node2 node1 node5 node4 node3"},
		{2, "node2 node3 node4 node1 node5"},
		{511, "node3 node2 node5 node4 node1"},
		{1023, "node5 node2 node3 node1 node4"},
	} {
		if got := strings.Join(r.PreferenceList(tc.p), " "); got != tc.want {
			t.Errorf("PreferenceList(%d) = %q, want %q", tc.p, got, tc.want)
		}
	}
	wantCounts := map[string]int{"node1": 205, "node2": 218, "node3": 191, "node4": 197, "node5": 213}
	if got := r.PrimaryCounts(); !maps(got, wantCounts) {
		t.Errorf("PrimaryCounts() = %v, want %v", got, wantCounts)
	}
	for _, tc := range []struct {
		w    float64
		h    uint64
		want uint64 // math.Float64bits of the score
	}{
		{1, 0, 0x3f9bdfbba5a3a303},
		{1, math.MaxUint64, 0x4340000000000000},
		{1, 0x9e3779b97f4a7c15, 0x40009fec09279921},
		{2.5, 0x0123456789abcdef, 0x3fdd8aa302bb9cad},
	} {
		if got := math.Float64bits(score(tc.w, tc.h)); got != tc.want {
			t.Errorf("score(%v, %#x) bits = %#x, want %#x", tc.w, tc.h, got, tc.want)
		}
	}
}

// TestPartitionOfGolden pins key -> partition: it decides where data lives on disk.
func TestPartitionOfGolden(t *testing.T) {
	for _, tc := range []struct {
		key  string
		q    int
		want int
	}{
		{"", 1024, 409}, // xxhash64("") = 0xef46db3751d8e999
		{"a", 1024, 603},
		{"hello", 1024, 419},
		{"user:1000", 1024, 10},
		{"user:1000", 65536, 20490},
		{"user:1000", 1, 0},
		{"foo", 1000, 719},
	} {
		if got := PartitionOf([]byte(tc.key), tc.q); got != tc.want {
			t.Errorf("PartitionOf(%q, %d) = %d, want %d", tc.key, tc.q, got, tc.want)
		}
	}
}

func TestPartitionInRange(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, q := range []int{1, 2, 8, 1024, 1 << 16} {
		r := mustNew(t, q, equalMembers("a"))
		seen := make([]bool, q)
		for range 200000 {
			key := make([]byte, rng.IntN(40))
			for i := range key {
				key[i] = byte(rng.Uint32())
			}
			p := r.Partition(key)
			if p < 0 || p >= q {
				t.Fatalf("Partition(%x) = %d, not in [0, %d)", key, p, q)
			}
			if pp := PartitionOf(key, q); pp != p {
				t.Fatalf("PartitionOf(%x, %d) = %d, Ring.Partition = %d", key, q, pp, p)
			}
			if p2 := r.Partition(key); p2 != p {
				t.Fatalf("Partition not stable for %x", key)
			}
			seen[p] = true
		}
		if q <= 1024 && slices.Contains(seen, false) {
			t.Errorf("q=%d: 200000 random keys missed a partition", q)
		}
	}
	for _, q := range []int{-5, 0, 3, 1000, 12345} {
		for _, k := range []string{"", "x", "hello world"} {
			p := PartitionOf([]byte(k), q)
			if q < 1 && p != 0 || q >= 1 && (p < 0 || p >= q) {
				t.Errorf("PartitionOf(%q, %d) = %d", k, q, p)
			}
		}
	}
}

// TestBalance: five equal members each get at most 1.15x their fair share of
// primaries at Q=1024, for the named sets. For other name sets the bound is only
// statistical: a member's primaries are Binomial(1024, 1/5), sd 12.8 = 6.25% of the
// fair share, so +15% is 2.4 sd and the largest of five exceeds it for about 4% of
// name sets. Those are logged and held to 1.25 (4 sd; about 1 set in 6000 exceeds it).
func TestBalance(t *testing.T) {
	const loose = 1.25
	for _, name := range sortedKeys(namedSets) {
		r := mustNew(t, DefaultPartitions, equalMembers(namedSets[name]...))
		ratio := maxShareRatio(r)
		t.Logf("%-14s max share ratio %.3f counts %v", name, ratio, r.PrimaryCounts())
		if ratio > 1.15 {
			t.Errorf("%s: max primary share %.3f x fair share > 1.15: %v", name, ratio, r.PrimaryCounts())
		}
	}
	for _, name := range sortedKeys(otherSets) {
		r := mustNew(t, DefaultPartitions, equalMembers(otherSets[name]...))
		ratio := maxShareRatio(r)
		t.Logf("%-14s max share ratio %.3f counts %v (not asserted at 1.15)", name, ratio, r.PrimaryCounts())
		if ratio > loose {
			t.Errorf("%s: max primary share %.3f x fair share > %v: %v", name, ratio, loose, r.PrimaryCounts())
		}
	}

	rng := rand.New(rand.NewPCG(11, 12))
	const trials = 50
	worst, over, sum := 0.0, 0, 0.0
	for range trials {
		r := mustNew(t, DefaultPartitions, equalMembers(randomNames(rng, 5)...))
		ratio := maxShareRatio(r)
		worst = max(worst, ratio)
		sum += ratio
		if ratio > 1.15 {
			over++
		}
	}
	t.Logf("random 5-name sets: %d trials, max ratio %.3f, mean max ratio %.3f, %d over 1.15",
		trials, worst, sum/trials, over)
	if worst > loose {
		t.Errorf("random sets: max primary share %.3f x fair share > %v", worst, loose)
	}
}

// TestBalanceIsBinomial checks the hash quality rather than one outcome: over many
// random five-name sets, the variance of a member's primary count must match the
// Binomial(1024, 1/5) variance of 163.84 that independent uniform scores give. A
// poorly mixed hash (correlated partitions or names) inflates it.
func TestBalanceIsBinomial(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	const trials = 400
	var sum, sumsq float64
	for range trials {
		r := mustNew(t, DefaultPartitions, equalMembers(randomNames(rng, 5)...))
		for _, c := range r.PrimaryCounts() {
			sum += float64(c)
			sumsq += float64(c) * float64(c)
		}
	}
	n := float64(trials * 5)
	mean := sum / n
	variance := sumsq/n - mean*mean
	t.Logf("%d sets: primary count mean %.2f variance %.1f (binomial 163.84)", trials, mean, variance)
	// The sample variance of 2000 (weakly dependent) counts has a relative sd of about
	// 3%; allow 15%.
	if variance < 0.85*163.84 || variance > 1.15*163.84 {
		t.Errorf("primary count variance %.1f, want about 163.84", variance)
	}
}

// TestBalanceLargeQ: with many partitions the shares converge to the weights, which
// checks the score formula itself rather than luck.
func TestBalanceLargeQ(t *testing.T) {
	ms := []Member{{Name: "w1", Weight: 1}, {Name: "w2", Weight: 2}, {Name: "w3", Weight: 3}, {Name: "w4", Weight: 4}}
	r := mustNew(t, MaxPartitions, ms)
	counts := r.PrimaryCounts()
	for _, m := range ms {
		want := float64(MaxPartitions) * m.Weight / 10
		if got := float64(counts[m.Name]); math.Abs(got-want)/want > 0.03 {
			t.Errorf("%s: %v primaries, want %v +-3%%", m.Name, got, want)
		}
	}
	t.Logf("Q=%d weights 1..4: %v", MaxPartitions, counts)
}

// TestWeights: a weight-2 member gets about twice the share of a weight-1 member.
func TestWeights(t *testing.T) {
	sets := allSets()
	for _, name := range sortedKeys(sets) {
		ns := sets[name]
		ms := equalMembers(ns...)
		ms[2].Weight = 2
		r := mustNew(t, DefaultPartitions, ms)
		counts := r.PrimaryCounts()
		others := 0
		for _, m := range ms {
			if m.Name != ms[2].Name {
				others += counts[m.Name]
			}
		}
		ratio := float64(counts[ms[2].Name]) / (float64(others) / 4)
		share := float64(counts[ms[2].Name]) / DefaultPartitions
		t.Logf("%-14s weight-2 member %s: %d primaries (share %.3f, want 0.333), %.2fx a weight-1 member",
			name, ms[2].Name, counts[ms[2].Name], share, ratio)
		if ratio < 1.6 || ratio > 2.4 {
			t.Errorf("%s: weight-2 member has %.2fx the primaries of a weight-1 member: %v", name, ratio, counts)
		}
	}
}

// checkInsert checks the rendezvous property: the larger ring's list with the extra
// member deleted is exactly the smaller ring's list.
func checkInsert(t *testing.T, small, big *Ring, extra string) {
	t.Helper()
	for p := range small.Partitions() {
		got := slices.DeleteFunc(slices.Clone(big.PreferenceList(p)), func(s string) bool { return s == extra })
		if !slices.Equal(got, small.PreferenceList(p)) {
			t.Fatalf("p=%d: %v with %s removed != %v", p, big.PreferenceList(p), extra, small.PreferenceList(p))
		}
	}
}

// moved counts partitions whose primary differs, checking each moved to (or from)
// the member that changed.
func moved(t *testing.T, before, after *Ring, changed string, adding bool) int {
	t.Helper()
	n := 0
	for p := range before.Partitions() {
		a, b := before.PreferenceList(p)[0], after.PreferenceList(p)[0]
		if a == b {
			continue
		}
		n++
		if adding && b != changed {
			t.Errorf("p=%d: primary moved %s -> %s, not to the new member %s", p, a, b, changed)
		}
		if !adding && a != changed {
			t.Errorf("p=%d: primary moved %s -> %s, but only %s's should", p, a, b, changed)
		}
	}
	return n
}

// TestAddMember: adding a sixth member moves at most 1.3/6 of the primaries, all to
// the new member, and changes nothing else.
func TestAddMember(t *testing.T) {
	limit := 1.3 / 6 * DefaultPartitions
	try := func(label string, ns []string, extra string) float64 {
		before := mustNew(t, DefaultPartitions, equalMembers(ns...))
		after := mustNew(t, DefaultPartitions, equalMembers(append(slices.Clone(ns), extra)...))
		checkInsert(t, before, after, extra)
		n := moved(t, before, after, extra, true)
		if float64(n) > limit {
			t.Errorf("%s + %s: %d primaries moved, more than 1.3/6 of %d (%.0f)", label, extra, n, DefaultPartitions, limit)
		}
		return float64(n) / DefaultPartitions
	}
	sets := allSets()
	for _, name := range sortedKeys(sets) {
		ns := sets[name]
		extra := map[string]string{"node1..node5": "node6", "a..e": "f", "dynakv-0..4": "dynakv-5",
			"ip:port": "10.0.0.6:7947"}[name]
		t.Logf("%-14s + %-14s moved %.3f of primaries (1/6 = %.3f)", name, extra, try(name, ns, extra), 1.0/6)
	}
	rng := rand.New(rand.NewPCG(13, 14))
	worst, sum := 0.0, 0.0
	const trials = 50
	for range trials {
		ns := randomNames(rng, 6)
		f := try("random", ns[:5], ns[5])
		worst, sum = max(worst, f), sum+f
	}
	t.Logf("random: %d trials, moved fraction mean %.3f max %.3f (limit %.3f)", trials, sum/trials, worst, 1.3/6)
}

// TestReplicaSetChurn: adding a member changes the replica set (N=3) of about N/S of
// the partitions, and only by bringing in the new member.
func TestReplicaSetChurn(t *testing.T) {
	const n = 3
	before := mustNew(t, DefaultPartitions, equalMembers(names("node", 5)...))
	after := mustNew(t, DefaultPartitions, equalMembers(names("node", 6)...))
	changed := 0
	for p := range DefaultPartitions {
		if !slices.Equal(before.Replicas(p, n), after.Replicas(p, n)) {
			changed++
			if !after.Owns("node6", p, n) {
				t.Fatalf("p=%d: replicas changed without node6: %v -> %v", p, before.Replicas(p, n), after.Replicas(p, n))
			}
		}
	}
	frac := float64(changed) / DefaultPartitions
	t.Logf("N=3, 5 -> 6 members: replica sets changed for %.3f of partitions (expected %.3f)", frac, 0.5)
	if frac > 0.6 {
		t.Errorf("replica sets changed for %.3f of partitions", frac)
	}
}

// TestRemoveMember: removing a member only moves the partitions it was primary for,
// and only deletes it from every list.
func TestRemoveMember(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	for trial := range 30 {
		ns := randomNames(rng, 2+rng.IntN(10))
		ms := equalMembers(ns...)
		for i := range ms {
			ms[i].Weight = float64(1 + rng.IntN(3))
		}
		k := rng.IntN(len(ms))
		gone := ms[k].Name
		before := mustNew(t, 512, ms)
		after := mustNew(t, 512, slices.Delete(slices.Clone(ms), k, k+1))
		checkInsert(t, after, before, gone)
		if n := moved(t, before, after, gone, false); n != before.PrimaryCounts()[gone] {
			t.Errorf("trial %d: %d primaries moved, %s owned %d", trial, n, gone, before.PrimaryCounts()[gone])
		}
	}
}

// TestWeightChange: raising one member's weight only moves partitions to it.
func TestWeightChange(t *testing.T) {
	ms := equalMembers(names("node", 5)...)
	before := mustNew(t, DefaultPartitions, ms)
	ms[0].Weight = 2
	after := mustNew(t, DefaultPartitions, ms)
	n := moved(t, before, after, "node1", true)
	t.Logf("node1 weight 1 -> 2 moved %d primaries", n)
}

func TestReplicas(t *testing.T) {
	r := mustNew(t, 64, equalMembers(names("n", 7)...))
	for p := range r.Partitions() {
		for _, tc := range []struct{ n, want int }{
			{-1, 0}, {0, 0}, {1, 1}, {3, 3}, {7, 7}, {8, 7}, {100, 7},
		} {
			got := r.Replicas(p, tc.n)
			if len(got) != tc.want {
				t.Fatalf("Replicas(%d, %d) has %d names, want %d", p, tc.n, len(got), tc.want)
			}
			if !slices.Equal(got, r.PreferenceList(p)[:tc.want]) {
				t.Fatalf("Replicas(%d, %d) = %v is not a prefix of %v", p, tc.n, got, r.PreferenceList(p))
			}
			if len(slices.Compact(slices.Sorted(slices.Values(got)))) != len(got) {
				t.Fatalf("Replicas(%d, %d) = %v has duplicates", p, tc.n, got)
			}
			for i, name := range r.PreferenceList(p) {
				if want := i < tc.n; r.Owns(name, p, tc.n) != want {
					t.Fatalf("Owns(%s, %d, %d) = %v, want %v", name, p, tc.n, !want, want)
				}
			}
		}
		if r.Owns("stranger", p, 7) {
			t.Fatal("Owns a non-member")
		}
	}
	for _, p := range []int{-1, 64, 1 << 20} {
		if r.PreferenceList(p) != nil || r.Replicas(p, 3) != nil || r.Owns("n1", p, 7) {
			t.Errorf("p=%d out of range did not give nil/false", p)
		}
	}
}

// TestSharedSlicesAreCapped: appending to a returned list must not overwrite the
// next partition's list.
func TestSharedSlicesAreCapped(t *testing.T) {
	r := mustNew(t, 4, equalMembers("a", "b", "c"))
	next := slices.Clone(r.PreferenceList(1))
	_ = append(r.PreferenceList(0), "x")
	_ = append(r.Replicas(0, 2), "y")
	if !slices.Equal(r.PreferenceList(1), next) {
		t.Fatalf("append clobbered partition 1: %v, was %v", r.PreferenceList(1), next)
	}
	if r.PreferenceList(0)[2] == "y" {
		t.Fatal("append to Replicas clobbered the preference list")
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	r := mustNew(t, DefaultPartitions, equalMembers(names("node", 5)...))
	key := []byte("user:1000")
	var sink int
	allocs := testing.AllocsPerRun(100, func() {
		p := r.Partition(key)
		sink += len(r.PreferenceList(p)) + len(r.Replicas(p, 3)) + PartitionOf(key, 1024)
		if r.Owns("node3", p, 3) {
			sink++
		}
	})
	if allocs != 0 {
		t.Fatalf("hot path allocates %v times per run", allocs)
	}
	_ = sink
}

func TestConcurrentReads(t *testing.T) {
	r := mustNew(t, 256, equalMembers(names("node", 5)...))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				p := r.Partition([]byte(fmt.Sprint(g, i)))
				_ = r.Replicas(p, 3)
				_ = r.PrimaryCounts()
				_ = r.Members()
			}
		})
	}
	wg.Wait()
}

func BenchmarkPartition(b *testing.B) {
	r := mustNew(b, DefaultPartitions, equalMembers(names("node", 5)...))
	key := []byte("user:0000001234")
	b.ReportAllocs()
	var sink int
	for b.Loop() {
		sink += r.Partition(key)
	}
	_ = sink
}

func BenchmarkPreferenceList(b *testing.B) {
	r := mustNew(b, DefaultPartitions, equalMembers(names("node", 5)...))
	b.ReportAllocs()
	var sink, p int
	for b.Loop() {
		sink += len(r.PreferenceList(p))
		p = (p + 1) & (DefaultPartitions - 1)
	}
	_ = sink
}

func BenchmarkNew(b *testing.B) {
	for _, tc := range []struct{ s, zones int }{{5, 1}, {32, 1}, {9, 3}, {32, 4}} {
		ms := equalMembers(names("node", tc.s)...)
		for i := range ms {
			ms[i].Zone = fmt.Sprint("z", i%tc.zones)
		}
		b.Run(fmt.Sprintf("Q=1024/S=%d/zones=%d", tc.s, tc.zones), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := New(DefaultPartitions, ms); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
