package ring

import (
	"encoding/binary"
	"math"

	"github.com/cespare/xxhash/v2"
)

// Placement is part of the cluster's shared state: every node must compute exactly the
// same preference lists from the same member set, whatever its CPU architecture or Go
// version. So everything below is integer hashing plus IEEE-754 float64 arithmetic in a
// fixed order, with no call into math.Log (it is assembly on amd64 and s390x and pure Go
// elsewhere, and not guaranteed to agree to the last bit) and explicit conversions
// around every product so the compiler may not fuse a multiply-add (Go spec,
// "Arithmetic operators": an explicit conversion rounds and prevents fusion).
// TestGoldenScores pins the results; changing any of this moves data between nodes.

// nameHash is the per-member half of the placement hash: xxhash64 of the name.
func nameHash(name string) uint64 { return xxhash.Sum64String(name) }

// pointHash mixes a member's name hash with a partition number: xxhash64 of the 16
// bytes nameHash (little endian) || partition (little endian, uint64). xxhash64 has
// full avalanche on this input, so neighbouring partitions and similar names give
// independent values.
func pointHash(nh uint64, p int) uint64 {
	var buf [16]byte
	binary.LittleEndian.PutUint64(buf[0:8], nh)
	binary.LittleEndian.PutUint64(buf[8:16], uint64(p))
	return xxhash.Sum64(buf[:])
}

// unit maps a hash to u in the open interval (0, 1): the top 52 bits plus one half,
// scaled by 2^-52. Both steps are exact in float64, so u is in [2^-53, 1-2^-53].
func unit(h uint64) float64 {
	return (float64(h>>12) + 0.5) * 0x1p-52
}

// score is the weighted rendezvous score of a member with weight w (> 0) and point
// hash h: -w / ln(u), the "logarithmic method" of weighted rendezvous hashing
// (https://en.wikipedia.org/wiki/Rendezvous_hashing#Weighted_rendezvous_hash). For
// independent uniform u, a member with weight w ranks first with probability
// w / sum(weights), and adding or removing a member never reorders the others.
func score(w float64, h uint64) float64 {
	return w / -ln(unit(h))
}

// ln is the natural logarithm of x for x in (0, 1], a port of Go's pure-Go math.log
// (itself from FreeBSD's e_log.c) with every product wrapped in float64() so it gives
// bit-identical results on every platform. Its error is below 1 ulp. x must be a
// positive normal number; unit guarantees that.
func ln(x float64) float64 {
	const (
		ln2Hi = 6.93147180369123816490e-01 /* 3fe62e42 fee00000 */
		ln2Lo = 1.90821492927058770002e-10 /* 3dea39ef 35793c76 */
		l1    = 6.666666666666735130e-01   /* 3FE55555 55555593 */
		l2    = 3.999999999940941908e-01   /* 3FD99999 9997FA04 */
		l3    = 2.857142874366239149e-01   /* 3FD24924 94229359 */
		l4    = 2.222219843214978396e-01   /* 3FCC71C5 1D8E78AF */
		l5    = 1.818357216161805012e-01   /* 3FC74664 96CB03DE */
		l6    = 1.531383769920937332e-01   /* 3FC39A09 D078C69F */
		l7    = 1.479819860511658591e-01   /* 3FC2F112 DF3E5244 */
	)

	// reduce: x = f1 * 2^ki with f1 in [0.5, 1), by bit manipulation (x is normal).
	bits := math.Float64bits(x)
	ki := int((bits>>52)&0x7ff) - 1022
	f1 := math.Float64frombits(bits&^(0x7ff<<52) | 1022<<52)
	if f1 < math.Sqrt2/2 {
		f1 *= 2 // exact
		ki--
	}
	f := f1 - 1
	k := float64(ki)

	// compute
	s := f / (2 + f)
	s2 := float64(s * s)
	s4 := float64(s2 * s2)
	t1 := float64(s2 * (l1 + float64(s4*(l3+float64(s4*(l5+float64(s4*l7)))))))
	t2 := float64(s4 * (l2 + float64(s4*(l4+float64(s4*l6)))))
	r := t1 + t2
	hfsq := float64(float64(0.5*f) * f)
	return float64(k*ln2Hi) - ((hfsq - (float64(s*(hfsq+r)) + float64(k*ln2Lo))) - f)
}
