package bench

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Op is one kind of request.
type Op uint8

// The operations a workload mixes.
const (
	OpGet Op = iota
	OpSet
	numOps
)

// String returns "GET" or "SET".
func (o Op) String() string {
	switch o {
	case OpGet:
		return "GET"
	case OpSet:
		return "SET"
	}
	return "Op(" + strconv.Itoa(int(o)) + ")"
}

// Key distributions.
const (
	DistUniform = "uniform"
	DistZipfian = "zipfian"
)

// Workload patterns.
const (
	// PatternMix draws GETs and SETs by the get:set ratio, each on its own.
	PatternMix = "mix"
	// PatternCache uses the server as a cache is used (read-through): the
	// operations are drawn as in PatternMix, and a GET that finds nothing (a miss)
	// is followed by a SET of that key in the connection's next batch, as an
	// application fills its cache after reading the source of truth. With the ratio
	// 1:0 every SET is such a fill. GET hits and misses are counted in every
	// pattern; this one makes the hit ratio that of a cache under that budget.
	PatternCache = "cache"
)

// ZipfS is the exponent of the zipfian distribution (math/rand/v2 needs s > 1):
// with 100,000 keys the hottest 1% of them get about 60% of the requests.
const ZipfS = 1.01

// ErrConfig is wrapped by every error about an invalid configuration.
var ErrConfig = errors.New("bench: invalid configuration")

// Workload is what a run asks for: which operations on which keys. The zero value is
// not valid; start from DefaultWorkload.
type Workload struct {
	// Keys is the size of the keyspace: keys are KeyPrefix followed by a 12-digit
	// index in [0, Keys). Default 100,000.
	Keys int
	// Dist is how key indexes are drawn: DistUniform (default) or DistZipfian (index
	// 0 the hottest).
	Dist string
	// Gets and Sets are the ratio of GETs to SETs, e.g. 1 and 1 (default), or 9 and 1.
	// One of them may be 0.
	Gets, Sets int
	// ValueSize is the size of every SET value in bytes; default 100.
	ValueSize int
	// KeyPrefix starts every key; default "key:".
	KeyPrefix string
	// Pattern is PatternMix (default, also for "") or PatternCache.
	Pattern string
}

// DefaultWorkload returns a 1:1 get/set mix of 100-byte values over 100,000 uniform keys.
func DefaultWorkload() Workload {
	return Workload{Keys: 100_000, Dist: DistUniform, Gets: 1, Sets: 1, ValueSize: 100, KeyPrefix: "key:", Pattern: PatternMix}
}

// Validate reports what is wrong with w, if anything.
func (w Workload) Validate() error {
	switch {
	case w.Keys < 1:
		return fmt.Errorf("%w: keys must be at least 1, not %d", ErrConfig, w.Keys)
	case w.Dist != DistUniform && w.Dist != DistZipfian:
		return fmt.Errorf("%w: distribution must be %s or %s, not %q", ErrConfig, DistUniform, DistZipfian, w.Dist)
	case w.Gets < 0 || w.Sets < 0 || w.Gets+w.Sets == 0:
		return fmt.Errorf("%w: ratio %d:%d needs non-negative parts, not both 0", ErrConfig, w.Gets, w.Sets)
	case w.ValueSize < 0 || w.ValueSize > 64<<20:
		return fmt.Errorf("%w: value size must be 0..64 MiB, not %d", ErrConfig, w.ValueSize)
	case w.Pattern != "" && w.Pattern != PatternMix && w.Pattern != PatternCache:
		return fmt.Errorf("%w: pattern must be %s or %s, not %q", ErrConfig, PatternMix, PatternCache, w.Pattern)
	case w.Pattern == PatternCache && w.Gets == 0:
		return fmt.Errorf("%w: the %s pattern needs GETs, not the ratio %s", ErrConfig, PatternCache, w.Ratio())
	case strings.ContainsAny(w.KeyPrefix, " \r\n\t"):
		return fmt.Errorf("%w: key prefix %q has whitespace (memcached keys cannot)", ErrConfig, w.KeyPrefix)
	}
	return nil
}

// Ratio returns the get:set ratio as text, e.g. "9:1".
func (w Workload) Ratio() string { return strconv.Itoa(w.Gets) + ":" + strconv.Itoa(w.Sets) }

// cache reports whether w fills its misses (PatternCache).
func (w Workload) cache() bool { return w.Pattern == PatternCache }

// Mix labels the workload's operations in reports: the ratio, e.g. "9:1", with
// the pattern before it when it is not PatternMix, e.g. "cache 1:0".
func (w Workload) Mix() string { return mixLabel(w.Pattern, w.Ratio()) }

func mixLabel(pattern, ratio string) string {
	if pattern == "" || pattern == PatternMix {
		return ratio
	}
	return pattern + " " + ratio
}

// ParseRatio parses "get:set", e.g. "1:1" or "9:1".
func ParseRatio(s string) (gets, sets int, err error) {
	a, b, ok := strings.Cut(s, ":")
	if ok {
		gets, err = strconv.Atoi(strings.TrimSpace(a))
		if err == nil {
			sets, err = strconv.Atoi(strings.TrimSpace(b))
		}
	}
	if !ok || err != nil || gets < 0 || sets < 0 || gets+sets == 0 {
		return 0, 0, fmt.Errorf("%w: ratio %q: want get:set such as 1:1 or 9:1", ErrConfig, s)
	}
	return gets, sets, nil
}

// AppendKey appends the name of key index i to b.
func (w Workload) AppendKey(b []byte, i int) []byte {
	b = append(b, w.KeyPrefix...)
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], int64(i), 10)
	for n := len(d); n < 12; n++ {
		b = append(b, '0')
	}
	return append(b, d...)
}

// Generator draws a workload's operations and key indexes from a seeded source. It is
// deterministic for a (workload, seed, stream) triple and not safe for concurrent use:
// each connection has its own, on its own stream.
type Generator struct {
	w    Workload
	rng  *rand.Rand
	zipf *rand.Zipf
}

// NewGenerator returns a generator of w (which must be valid) for seed and stream.
func NewGenerator(w Workload, seed, stream uint64) *Generator {
	g := &Generator{w: w, rng: rand.New(rand.NewPCG(seed, stream))}
	if w.Dist == DistZipfian && w.Keys > 1 {
		g.zipf = rand.NewZipf(g.rng, ZipfS, 1, uint64(w.Keys-1))
	}
	return g
}

// Next returns the next operation and key index, in [0, Keys).
func (g *Generator) Next() (Op, int) {
	op := OpGet
	if g.w.Sets > 0 && (g.w.Gets == 0 || g.rng.IntN(g.w.Gets+g.w.Sets) >= g.w.Gets) {
		op = OpSet
	}
	if g.zipf != nil {
		return op, int(g.zipf.Uint64())
	}
	return op, g.rng.IntN(g.w.Keys)
}
