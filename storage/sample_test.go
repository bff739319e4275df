package storage

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/vclock"
)

// sample returns the keys SampleRecords yields.
func sample(t testing.TB, s *Store, p int, from uint64, n int) []Candidate {
	t.Helper()
	var out []Candidate
	if err := s.SampleRecords(p, from, n, collect(&out)); err != nil {
		t.Fatalf("SampleRecords(%d, %d, %d): %v", p, from, n, err)
	}
	return out
}

// collect returns a sampling callback that appends to out.
func collect(out *[]Candidate) func(Candidate) bool {
	return func(c Candidate) bool {
		*out = append(*out, c)
		return true
	}
}

func candidateKeys(cs []Candidate) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = string(c.Key)
	}
	return out
}

// TestSampleRecordsReachesEveryKey: every record of a partition is the first
// sample from its own hash, a sample of the partition's size from any hash
// holds every record once (in hash order, wrapping), and a hash past the last
// record wraps to the first.
func TestSampleRecordsReachesEveryKey(t *testing.T) {
	const q = 4
	s := openMem(t, Config{Partitions: q})
	for i := range 300 {
		put(t, s, fmt.Sprintf("key-%d", i), rec(val("v", 0)))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for p := range q {
		all := scanAll(t, s, p, 0)
		if len(all) == 0 {
			t.Fatalf("partition %d empty", p)
		}
		keys := make([]string, len(all))
		for i, a := range all {
			keys[i] = a.key
		}
		for i, a := range all {
			got := sample(t, s, p, a.h, 1)
			if len(got) != 1 || string(got[0].Key) != a.key || got[0].H != a.h || got[0].P != p {
				t.Fatalf("partition %d: sample from %q's hash = %v", p, a.key, candidateKeys(got))
			}
			// The whole partition from there: in hash order, wrapping, each once.
			want := append(slices.Clone(keys[i:]), keys[:i]...)
			if got := candidateKeys(sample(t, s, p, a.h, len(all)+5)); !slices.Equal(got, want) {
				t.Fatalf("partition %d from record %d: %v, want %v", p, i, got, want)
			}
		}
		// From a random hash: the first record at or after it, or the first of all.
		for range 50 {
			from := r.Uint64()
			want := keys[0]
			if i := slices.IndexFunc(all, func(a scanned) bool { return a.h >= from }); i >= 0 {
				want = all[i].key
			}
			if got := sample(t, s, p, from, 1); len(got) != 1 || string(got[0].Key) != want {
				t.Fatalf("from %d: %v, want %s", from, candidateKeys(got), want)
			}
		}
		if got := sample(t, s, p, math.MaxUint64, 2); len(got) != 2 || string(got[0].Key) != keys[0] {
			t.Errorf("partition %d: from the top, %v does not wrap to %s", p, candidateKeys(got), keys[0])
		}
	}
}

func TestSampleRecordsStopsAndBounds(t *testing.T) {
	s := openMem(t, Config{Partitions: 1})
	for i := range 20 {
		put(t, s, fmt.Sprintf("k%d", i), rec(val("v", 0)))
	}
	if got := sample(t, s, 0, 0, 7); len(got) != 7 {
		t.Errorf("n = 7 gave %d", len(got))
	}
	calls := 0
	if err := s.SampleRecords(0, 0, 10, func(Candidate) bool { calls++; return calls < 3 }); err != nil || calls != 3 {
		t.Errorf("fn false at the third: %d calls, %v", calls, err)
	}
	if got := sample(t, s, 0, 0, 0); len(got) != 0 {
		t.Errorf("n = 0 gave %d", len(got))
	}
	if err := s.SampleRecords(1, 0, 1, func(Candidate) bool { return true }); err == nil {
		t.Error("a partition out of range sampled")
	}
	empty := openMem(t, Config{Partitions: 2})
	if got := sample(t, empty, 1, 12345, 5); len(got) != 0 {
		t.Errorf("an empty partition yields %v", candidateKeys(got))
	}
}

func TestSampleCandidate(t *testing.T) {
	s := openMem(t, Config{Partitions: 1})
	older := vclock.Value{Data: []byte("old"), Timestamp: 100, Expiry: 5000}
	winner := vclock.Value{Data: []byte("new"), Timestamp: 200, Expiry: 9000}
	put(t, s, "live", rec(older, winner))
	put(t, s, "grave", rec(vclock.Value{Tombstone: true, Timestamp: 300, Expiry: 700}))
	put(t, s, "plain", rec(vclock.Value{Data: []byte("x"), Timestamp: 400}))
	got := map[string]Candidate{}
	for _, c := range sample(t, s, 0, 0, 10) {
		got[string(c.Key)] = c
	}
	if len(got) != 3 {
		t.Fatalf("sampled %d records, want 3", len(got))
	}
	for key, want := range map[string]Candidate{
		"live":  {Written: 200, Expiry: 9000, ReapAt: 5000, Live: true},
		"grave": {Written: 300, Live: false}, // a tombstone's Expiry is no expiry
		"plain": {Written: 400, Live: true},
	} {
		c := got[key]
		enc, err := s.GetEncoded([]byte(key))
		if err != nil {
			t.Fatal(err)
		}
		if c.Written != want.Written || c.Expiry != want.Expiry || c.ReapAt != want.ReapAt || c.Live != want.Live ||
			!bytes.Equal(c.Enc, enc) || c.Bytes != recordSize(dataHeader+len(key), len(enc), c.ReapAt, GraveTime(dec(t, enc))) || c.P != 0 {
			t.Errorf("%s: %+v", key, c)
		}
	}
	// What the candidates say they weigh is what the accounting counts.
	var live, graves int64
	for _, c := range got {
		if c.Live {
			live += c.Bytes
		} else {
			graves += c.Bytes
		}
	}
	if m := s.PartitionMemory(0); m.Live != live || m.Graves != graves {
		t.Errorf("candidates weigh %d live, %d graves; Memory says %+v", live, graves, m)
	}
	// The candidate's slices are the caller's: a later write does not change them.
	c := got["plain"]
	put(t, s, "plain", rec(vclock.Value{Data: []byte("yyyyyyyy"), Timestamp: 500}))
	if string(c.Key) != "plain" || c.Written != 400 {
		t.Error("candidate changed")
	}
	if dec, err := record.Decode(c.Enc); err != nil || !sameRecord(dec, rec(vclock.Value{Data: []byte("x"), Timestamp: 400})) {
		t.Errorf("candidate encoding changed: %v", err)
	}
}

func dec(t testing.TB, enc []byte) record.Record {
	t.Helper()
	r, err := record.Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// sampleExp returns the keys SampleExpiring yields.
func sampleExp(t testing.TB, s *Store, from int64, n int, keep func(int) bool) []Candidate {
	t.Helper()
	var out []Candidate
	if err := s.SampleExpiring(from, n, keep, collect(&out)); err != nil {
		t.Fatalf("SampleExpiring(%d, %d): %v", from, n, err)
	}
	return out
}

func TestSampleExpiring(t *testing.T) {
	const q = 8
	s := openMem(t, Config{Partitions: q})
	if _, _, ok, err := s.ExpiryBounds(); ok || err != nil {
		t.Fatalf("ExpiryBounds of an empty store: %v %v", ok, err)
	}
	// Keys e0..e19 expire at 1000, 1010, ...; p0..p19 never do.
	var expiring []string
	for i := range 20 {
		k := fmt.Sprintf("e%d", i)
		expiring = append(expiring, k)
		put(t, s, k, rec(val("v", 1000+int64(i)*10)))
		put(t, s, fmt.Sprintf("p%d", i), rec(val("v", 0)))
	}
	first, last, ok, err := s.ExpiryBounds()
	if err != nil || !ok || first != 1000 || last != 1190 {
		t.Fatalf("ExpiryBounds = %d %d %v %v", first, last, ok, err)
	}
	// From the first time: every expiring key, soonest first; no persistent key.
	got := sampleExp(t, s, first, 100, nil)
	if !slices.Equal(candidateKeys(got), expiring) {
		t.Fatalf("from the head: %v, want %v", candidateKeys(got), expiring)
	}
	for i, c := range got {
		if c.ReapAt != 1000+int64(i)*10 || !c.Live {
			t.Errorf("%s: %+v", c.Key, c)
		}
	}
	// volatile-ttl's pick: the head.
	if got := sampleExp(t, s, first, 1, nil); len(got) != 1 || string(got[0].Key) != "e0" {
		t.Errorf("head: %v", candidateKeys(got))
	}
	// From the middle: wraps around, each once.
	want := append(slices.Clone(expiring[5:]), expiring[:5]...)
	if got := candidateKeys(sampleExp(t, s, 1045, 100, nil)); !slices.Equal(got, want) {
		t.Errorf("from 1045: %v, want %v", got, want)
	}
	// Every key is reachable: the first from its own expiry.
	for i, k := range expiring {
		if got := sampleExp(t, s, 1000+int64(i)*10, 1, nil); len(got) != 1 || string(got[0].Key) != k {
			t.Errorf("from %s's expiry: %v", k, candidateKeys(got))
		}
	}
	// keep: only the partitions it accepts, read or not.
	odd := func(p int) bool { return p%2 == 1 }
	for _, c := range sampleExp(t, s, 0, 100, odd) {
		if c.P%2 != 1 {
			t.Errorf("%s of partition %d sampled against keep", c.Key, c.P)
		}
	}
	if got := sampleExp(t, s, 0, 100, func(int) bool { return false }); len(got) != 0 {
		t.Errorf("keep refusing all: %v", candidateKeys(got))
	}
}

// TestSampleExpiringSkipsDangling: the entries of a dropped partition, and of
// a record rewritten since without its entry, are not candidates.
func TestSampleExpiringSkipsDangling(t *testing.T) {
	const q = 4
	s := openMem(t, Config{Partitions: q})
	var keys []string
	for i := range 40 {
		k := fmt.Sprintf("k%d", i)
		keys = append(keys, k)
		put(t, s, k, rec(val("v", 2000+int64(i))))
	}
	drop := s.PartitionOf([]byte(keys[0]))
	if err := s.DropPartition(drop); err != nil {
		t.Fatal(err)
	}
	if n := countExpiryEntries(t, s); n != 40 {
		t.Fatalf("%d entries, want 40 (the dropped partition's dangle)", n)
	}
	// Write keys[0] again with another expiry: its old entry dangles, the new one counts.
	put(t, s, keys[0], rec(val("v", 5000)))
	var want []string
	for _, k := range keys {
		if s.PartitionOf([]byte(k)) != drop {
			want = append(want, k)
		}
	}
	want = append(want, keys[0])
	if got := candidateKeys(sampleExp(t, s, 0, 100, nil)); !slices.Equal(got, want) {
		t.Errorf("sampled %v, want %v", got, want)
	}
	// Dangling entries do not count towards n.
	if got := sampleExp(t, s, 0, 3, nil); len(got) != 3 {
		t.Errorf("n = 3 gave %v", candidateKeys(got))
	}
}

// TestSampleExpiringVisitsBounded: a call over many refused entries returns.
func TestSampleExpiringVisitsBounded(t *testing.T) {
	s := openMem(t, Config{Partitions: 2})
	for i := range sampleVisitMin + 100 {
		put(t, s, fmt.Sprintf("k%d", i), rec(val("v", 1000+int64(i))))
	}
	visited := 0
	keep := func(int) bool { visited++; return false }
	if got := sampleExp(t, s, 0, 1, keep); len(got) != 0 || visited != sampleVisitMin {
		t.Errorf("visited %d entries (yielded %d), want the bound %d", visited, len(got), sampleVisitMin)
	}
}

func BenchmarkSampleRecords(b *testing.B) {
	s := openMem(b, Config{Partitions: 16})
	for i := range 20_000 {
		put(b, s, fmt.Sprintf("key:%08d", i), rec(val("0123456789012345678901234567890123456789", 0)))
	}
	r := rand.New(rand.NewPCG(1, 1))
	b.ReportAllocs()
	for b.Loop() {
		if err := s.SampleRecords(r.IntN(16), r.Uint64(), 5, func(Candidate) bool { return true }); err != nil {
			b.Fatal(err)
		}
	}
}
