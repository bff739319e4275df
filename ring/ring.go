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
	// Zone is the failure domain the member is in: a rack, availability zone or
	// data center, any string. Members with equal zones are in the same zone, and
	// members with no zone ("") are in one zone together. A partition's replicas
	// are spread over the zones (see the package documentation); with a single zone,
	// empty or not, placement is that of plain rendezvous hashing.
	Zone string
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
	members []Member       // sorted by name, weights normalized
	byName  map[string]int // member name -> index in members
	zones   []string       // the distinct zones of members, sorted
	zoneOf  []int          // zoneOf[i]: index in zones of members[i]'s zone
	prefs   []string       // Q rows of len(members) names; row p is p's preference list
	primary []int          // primary[i]: partitions whose first choice is members[i]
}

// New returns the ring of members over partitions partitions. partitions must be a
// power of two in [1, MaxPartitions]; member names must be unique and non-empty. The
// result depends only on the set of (name, weight, zone) triples, not on their order.
// An empty member set is allowed: every preference list is then empty. New does not
// keep members.
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
		byName:  make(map[string]int, len(ms)),
		zoneOf:  make([]int, len(ms)),
		prefs:   make([]string, partitions*len(ms)),
		primary: make([]int, len(ms)),
	}
	if len(ms) == 0 {
		return r, nil
	}
	for _, m := range ms {
		r.zones = append(r.zones, m.Zone)
	}
	slices.Sort(r.zones)
	r.zones = slices.Clip(slices.Compact(r.zones))
	for i, m := range ms {
		r.byName[m.Name] = i
		r.zoneOf[i], _ = slices.BinarySearch(r.zones, m.Zone)
	}
	hashes := make([]uint64, len(ms))
	for i, m := range ms {
		hashes[i] = nameHash(m.Name)
	}
	type cand struct {
		score float64
		idx   int // index into ms, so ties break by name
		round int // how many members of its zone rank before it
	}
	cands := make([]cand, len(ms))
	taken := make([]int, len(r.zones)) // per zone, members ranked so far
	for p := range partitions {
		for i, m := range ms {
			cands[i] = cand{score(m.Weight, pointHash(hashes[i], p)), i, 0}
		}
		slices.SortFunc(cands, func(a, b cand) int {
			if c := cmp.Compare(b.score, a.score); c != 0 {
				return c // higher score first
			}
			return cmp.Compare(a.idx, b.idx)
		})
		if len(r.zones) > 1 {
			// Deal the ranking out over the zones, round by round: each zone's best
			// member in score order, then each zone's second best, and so on. With
			// one zone this is the identity, so a ring without zones places exactly
			// as plain rendezvous hashing.
			clear(taken)
			for i := range cands {
				z := r.zoneOf[cands[i].idx]
				cands[i].round = taken[z]
				taken[z]++
			}
			slices.SortStableFunc(cands, func(a, b cand) int { return cmp.Compare(a.round, b.round) })
		}
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

// Zones returns the distinct zones of the members, sorted: [""] when no member has
// a zone, nil for an empty ring. The slice is the caller's.
func (r *Ring) Zones() []string { return slices.Clone(r.zones) }

// Zone returns the zone of member name, and false if name is not a member. It does
// not allocate.
func (r *Ring) Zone(name string) (string, bool) {
	i, ok := r.index(name)
	if !ok {
		return "", false
	}
	return r.members[i].Zone, true
}

// NumZones returns how many distinct zones the members are in: 1 when no member
// has a zone, 0 for an empty ring. It does not allocate.
func (r *Ring) NumZones() int { return len(r.zones) }

// ZoneIndex returns the index in Zones() of member name's zone, and false if name
// is not a member. It does not allocate.
func (r *Ring) ZoneIndex(name string) (int, bool) {
	i, ok := r.index(name)
	if !ok {
		return -1, false
	}
	return r.zoneOf[i], true
}

// SameZone reports whether a and b are in the same zone: always when the ring has
// at most one zone; otherwise only for two members of one zone. It does not
// allocate.
func (r *Ring) SameZone(a, b string) bool {
	if len(r.zones) < 2 {
		return true
	}
	za, oka := r.ZoneIndex(a)
	zb, okb := r.ZoneIndex(b)
	return oka && okb && za == zb
}

// index returns the index of member name in r.members.
func (r *Ring) index(name string) (int, bool) {
	i, ok := r.byName[name]
	return i, ok
}

// Partition returns the partition of key: PartitionOf(key, Q). It does not allocate.
func (r *Ring) Partition(key []byte) int { return PartitionOf(key, r.q) }

// PreferenceList returns every member's name in p's preference order: by weighted
// rendezvous score, highest first, dealt out over the zones when there are several
// (see the package documentation). The first N are p's replicas, the rest its
// fallbacks, in order. It returns nil if p is not in [0, Q).
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

// Fallback returns the member that stands in for owner, one of p's replicas for
// replication factor n, when owner cannot take a write (sloppy quorum): the first of
// p's fallbacks (its preference list after the first n), in order, that is in
// owner's zone and that usable accepts, so the copy stays in owner's zone; else the
// first fallback usable accepts in another zone, which is the next zone in p's
// preference order that has one. It returns "" when usable accepts no fallback, or
// when p is out of range. usable is called at most once per fallback, and only for
// fallbacks; it is typically "alive, and not already standing in for another
// owner". An owner that is not a member, or a ring with one zone, has no zone to
// prefer: the result is then the first usable fallback, the Dynamo paper's rule.
//
// Fallback is pure: liveness is all in usable. It does not allocate.
func (r *Ring) Fallback(p, n int, owner string, usable func(name string) bool) string {
	l := r.PreferenceList(p)
	n = max(0, min(n, len(l)))
	zone := -1
	if i, ok := r.index(owner); ok && len(r.zones) > 1 {
		zone = r.zoneOf[i]
	}
	other := "" // the first usable fallback outside owner's zone
	for _, name := range l[n:] {
		inZone := true
		if zone >= 0 {
			i, _ := r.index(name)
			inZone = r.zoneOf[i] == zone
		}
		if !inZone && other != "" {
			continue // one outside the zone is already found; look only inside
		}
		if !usable(name) {
			continue
		}
		if inZone {
			return name
		}
		other = name
	}
	return other
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
