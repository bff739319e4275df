package ring

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/cespare/xxhash/v2"
)

const (
	// DefaultPartitions is the default Q, the fixed number of partitions.
	DefaultPartitions = 1024
	// MaxPartitions is the largest Q New accepts.
	MaxPartitions = 1 << 16
)

// Errors returned by New, wrapped with the offending value; test with errors.Is.
var (
	ErrPartitions    = errors.New("ring: partitions must be a power of two in [1, 65536]")
	ErrEmptyName     = errors.New("ring: empty member name")
	ErrDuplicateName = errors.New("ring: duplicate member name")
	ErrWeight        = errors.New("ring: member weight is NaN or infinite")
)

// Member is one ring member.
type Member struct {
	// Name identifies the member; it must be unique and non-empty. It is the only
	// input to placement besides Weight, so renaming a node moves its partitions.
	Name string
	// Weight is the member's relative share of partitions. Weight <= 0 means 1.
	// NaN and infinities are rejected. Only ratios matter: {1, 2} and {10, 20} place
	// the same way up to rounding.
	Weight float64
}

// Ring is an immutable snapshot of the member set with Q partitions. It is safe for
// concurrent use by any number of goroutines.
//
// New precomputes the preference list of every partition: Q * S strings of 16 bytes
// each (the names themselves are shared), so Q*S*16 bytes, for example 80 KiB for
// Q=1024 and 5 members, 512 KiB for 32 members and 16 MiB for Q=65536 and 16 members.
// Building costs Q*S hashes and logarithms and Q sorts of S elements: about 0.12 ms
// for Q=1024, S=5 and 1.5 ms for S=32 on one server core (BenchmarkNew); it scales
// with Q, so Q=65536 costs 64 times that.
type Ring struct {
	q       int
	members []Member // sorted by name, weights normalized
	prefs   []string // Q rows of len(members) names; row p is p's preference list
	primary []int    // primary[i]: partitions whose first choice is members[i]
}

// New returns the ring of members over partitions partitions. partitions must be a
// power of two in [1, MaxPartitions]; member names must be unique and non-empty. The
// result depends only on the set of (name, weight) pairs, not on their order. An empty
// member set is allowed: every preference list is then empty. New does not keep
// members.
func New(partitions int, members []Member) (*Ring, error) {
	if partitions < 1 || partitions > MaxPartitions || partitions&(partitions-1) != 0 {
		return nil, fmt.Errorf("%w: %d", ErrPartitions, partitions)
	}
	ms := slices.Clone(members)
	for i := range ms {
		switch w := ms[i].Weight; {
		case ms[i].Name == "":
			return nil, ErrEmptyName
		case math.IsNaN(w) || math.IsInf(w, 0):
			return nil, fmt.Errorf("%w: %q has %v", ErrWeight, ms[i].Name, w)
		case w <= 0:
			ms[i].Weight = 1
		}
	}
	slices.SortFunc(ms, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	for i := 1; i < len(ms); i++ {
		if ms[i].Name == ms[i-1].Name {
			return nil, fmt.Errorf("%w: %q", ErrDuplicateName, ms[i].Name)
		}
	}

	r := &Ring{
		q:       partitions,
		members: ms,
		prefs:   make([]string, partitions*len(ms)),
		primary: make([]int, len(ms)),
	}
	if len(ms) == 0 {
		return r, nil
	}
	hashes := make([]uint64, len(ms))
	for i, m := range ms {
		hashes[i] = nameHash(m.Name)
	}
	type cand struct {
		score float64
		idx   int // index into ms, so ties break by name
	}
	cands := make([]cand, len(ms))
	for p := range partitions {
		for i, m := range ms {
			cands[i] = cand{score(m.Weight, pointHash(hashes[i], p)), i}
		}
		slices.SortFunc(cands, func(a, b cand) int {
			if c := cmp.Compare(b.score, a.score); c != 0 {
				return c // higher score first
			}
			return cmp.Compare(a.idx, b.idx)
		})
		row := r.prefs[p*len(ms) : (p+1)*len(ms)]
		for i, c := range cands {
			row[i] = ms[c.idx].Name
		}
		r.primary[cands[0].idx]++
	}
	return r, nil
}

// KeyHash returns the 64-bit hash that places key: xxhash64 with seed 0. A key's
// partition is its hash mod Q (PartitionOfHash), and storage orders a partition's
// records by it. It never changes: it decides where data lives on disk.
func KeyHash(key []byte) uint64 { return xxhash.Sum64(key) }

// PartitionOf returns the partition of key among q partitions: KeyHash(key) mod q
// (PartitionOfHash).
func PartitionOf(key []byte, q int) int { return PartitionOfHash(KeyHash(key), q) }

// PartitionOfHash returns the partition among q partitions of a key whose KeyHash is
// h: h mod q. q should be a power of two (the mod is then a mask); any q >= 1 gives a
// result in [0, q), and q < 1 gives 0. The result for a given key and q never
// changes: it decides where data lives on disk.
func PartitionOfHash(h uint64, q int) int {
	switch {
	case q <= 1:
		return 0
	case q&(q-1) == 0:
		return int(h & uint64(q-1))
	default:
		return int(h % uint64(q))
	}
}

// Partitions returns Q.
func (r *Ring) Partitions() int { return r.q }

// Len returns the number of members.
func (r *Ring) Len() int { return len(r.members) }

// Members returns a copy of the members sorted by name, with weights normalized
// (a Weight <= 0 given to New reads back as 1).
func (r *Ring) Members() []Member { return slices.Clone(r.members) }

// Partition returns the partition of key: PartitionOf(key, Q). It does not allocate.
func (r *Ring) Partition(key []byte) int { return PartitionOf(key, r.q) }

// PreferenceList returns every member's name ordered by weighted rendezvous score for
// partition p, highest first: the first N are p's replicas, the rest its fallbacks, in
// order. It returns nil if p is not in [0, Q).
//
// The slice is shared by all callers and must not be modified; it does not allocate.
// Its capacity equals its length, so append copies rather than overwriting the next
// partition's list.
func (r *Ring) PreferenceList(p int) []string {
	if p < 0 || p >= r.q {
		return nil
	}
	s := len(r.members)
	return r.prefs[p*s : (p+1)*s : (p+1)*s]
}

// Replicas returns the first min(n, S) names of p's preference list: its replicas for
// replication factor n. n <= 0 gives an empty list; p out of range gives nil. Like
// PreferenceList, the result is shared and read-only.
func (r *Ring) Replicas(p, n int) []string {
	l := r.PreferenceList(p)
	n = max(0, min(n, len(l)))
	return l[:n:n]
}

// Owns reports whether name is one of the first n members of p's preference list.
func (r *Ring) Owns(name string, p, n int) bool {
	return slices.Contains(r.Replicas(p, n), name)
}

// PrimaryCounts returns, for every member, how many partitions it is first choice for.
// Members that are first for none map to 0. The map is the caller's.
func (r *Ring) PrimaryCounts() map[string]int {
	m := make(map[string]int, len(r.members))
	for i, mb := range r.members {
		m[mb.Name] = r.primary[i]
	}
	return m
}
