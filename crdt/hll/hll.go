package hll

import (
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"slices"
)

// The format's constants, named as in hyperloglog.c.
const (
	P            = 14                                  // bits of the hash that pick the register (HLL_P)
	Q            = 64 - P                              // bits left for the zero run (HLL_Q)
	NumRegisters = 1 << P                              // 16384 registers (HLL_REGISTERS)
	regBits      = 6                                   // bits per dense register (HLL_BITS)
	regMax       = 1<<regBits - 1                      // 63 (HLL_REGISTER_MAX)
	HeaderSize   = 16                                  // "HYLL", encoding, 3 unused, 8 cache bytes
	DenseSize    = HeaderSize + NumRegisters*regBits/8 // 12304 bytes (HLL_DENSE_SIZE)

	// DefaultSparseMaxBytes is Redis's default hll-sparse-max-bytes: a sparse
	// value that would grow beyond it (header included) becomes dense.
	DefaultSparseMaxBytes = 3000

	encDense  = 0 // HLL_DENSE
	encSparse = 1 // HLL_SPARSE

	seed = 0xadc83b19 // MurmurHash64A seed of hllPatLen

	xzeroBit       = 0x40 // 01xxxxxx
	valBit         = 0x80 // 1vvvvvxx
	sparseValMax   = 32   // largest value a VAL opcode holds
	sparseValLen   = 4    // longest run a VAL opcode covers
	sparseZeroMax  = 64   // longest run a ZERO opcode covers
	sparseXZeroMax = 16384

	alphaInf = 0.721347520444481703680 // 0.5/ln(2), HLL_ALPHA_INF
)

// The errors a command answers with. Their texts are Redis's replies, so the
// RESP layer can send them as they are; compare with errors.Is.
var (
	// ErrWrongType: the value is not an HLL (isHLLObjectOrReply).
	ErrWrongType = errors.New("WRONGTYPE Key is not a valid HyperLogLog string value.")
	// ErrCorrupt: an HLL whose sparse opcodes do not cover exactly 16384
	// registers.
	ErrCorrupt = errors.New("INVALIDOBJ Corrupted HLL object detected")
)

// murmurHash64A is Redis's endian-neutral MurmurHash2, 64-bit version.
func murmurHash64A(key []byte, seed uint32) uint64 {
	const m = 0xc6a4a7935bd1e995
	const r = 47
	h := uint64(seed) ^ uint64(len(key))*m
	n := len(key) &^ 7
	for i := 0; i < n; i += 8 {
		k := binary.LittleEndian.Uint64(key[i:])
		k *= m
		k ^= k >> r
		k *= m
		h ^= k
		h *= m
	}
	tail := key[n:]
	switch len(tail) {
	case 7:
		h ^= uint64(tail[6]) << 48
		fallthrough
	case 6:
		h ^= uint64(tail[5]) << 40
		fallthrough
	case 5:
		h ^= uint64(tail[4]) << 32
		fallthrough
	case 4:
		h ^= uint64(tail[3]) << 24
		fallthrough
	case 3:
		h ^= uint64(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint64(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint64(tail[0])
		h *= m
	}
	h ^= h >> r
	h *= m
	h ^= h >> r
	return h
}

// patLen returns the register an element hashes to and the length of its
// 00..1 pattern (1..Q+1), as hllPatLen.
func patLen(elem []byte) (index int, count uint8) {
	hash := murmurHash64A(elem, seed)
	index = int(hash & (NumRegisters - 1))
	hash >>= P
	hash |= 1 << Q // the loop in Redis stops here: count <= Q+1
	return index, uint8(bits.TrailingZeros64(hash) + 1)
}

// denseGet reads dense register i from regs (the bytes after the header).
func denseGet(regs []byte, i int) uint8 {
	byt, fb := i*regBits/8, uint(i*regBits&7)
	v := uint(regs[byt]) >> fb
	if byt+1 < len(regs) { // Redis reads the sds terminator (0) past the last byte
		v |= uint(regs[byt+1]) << (8 - fb)
	}
	return uint8(v & regMax)
}

// denseSetReg writes dense register i.
func denseSetReg(regs []byte, i int, val uint8) {
	byt, fb := i*regBits/8, uint(i*regBits&7)
	v := uint(val)
	regs[byt] &^= byte(regMax << fb)
	regs[byt] |= byte(v << fb)
	if byt+1 < len(regs) {
		regs[byt+1] &^= byte(regMax >> (8 - fb))
		regs[byt+1] |= byte(v >> (8 - fb))
	}
}

// denseSet raises dense register i to count and reports whether it changed
// (hllDenseSet).
func denseSet(regs []byte, i int, count uint8) bool {
	if count > denseGet(regs, i) {
		denseSetReg(regs, i, count)
		return true
	}
	return false
}

// Sparse opcodes.
func isZero(op byte) bool  { return op&0xc0 == 0 }
func isXZero(op byte) bool { return op&0xc0 == xzeroBit }
func isVal(op byte) bool   { return op&valBit != 0 }
func zeroLen(op byte) int  { return int(op&0x3f) + 1 }
func valValue(op byte) int { return int(op>>2&0x1f) + 1 }
func valLen(op byte) int   { return int(op&0x3) + 1 }

// xzeroLen reads the XZERO opcode at b[p]; like Redis (which reads the sds
// terminator) it takes a missing second byte as 0.
func xzeroLen(b []byte, p int) int {
	lo := 0
	if p+1 < len(b) {
		lo = int(b[p+1])
	}
	return (int(b[p]&0x3f)<<8 | lo) + 1
}

func valOp(val, n int) byte { return byte((val-1)<<2|(n-1)) | valBit }
func zeroOp(n int) byte     { return byte(n - 1) }
func xzeroOp(n int) [2]byte {
	return [2]byte{byte((n-1)>>8) | xzeroBit, byte((n - 1) & 0xff)}
}

// walkSparse calls fn(index, runlen, value) for every opcode of the sparse
// registers ops (value 0 for ZERO and XZERO) and reports whether they cover
// exactly NumRegisters registers without overflowing (the validity rule of
// hllSparseToDense, hllSparseRegHisto and hllMerge). It stops at the first
// opcode that would overflow, before calling fn for it.
func walkSparse(ops []byte, fn func(idx, runlen, val int)) bool {
	idx := 0
	for p := 0; p < len(ops); {
		var runlen, val int
		switch op := ops[p]; {
		case isZero(op):
			runlen = zeroLen(op)
			p++
		case isXZero(op):
			runlen = xzeroLen(ops, p)
			p += 2
		default:
			runlen, val = valLen(op), valValue(op)
			p++
		}
		if runlen+idx > NumRegisters {
			return false
		}
		if fn != nil {
			fn(idx, runlen, val)
		}
		idx += runlen
	}
	return idx == NumRegisters
}

// newSparse returns an empty HLL as createHLLObject makes it: sparse, one
// XZERO opcode covering every register, cached cardinality 0 and valid.
func newSparse() []byte {
	b := make([]byte, HeaderSize, HeaderSize+2)
	copy(b, "HYLL")
	b[4] = encSparse
	x := xzeroOp(sparseXZeroMax)
	return append(b, x[:]...)
}

// toDense converts a sparse value to a new dense one, header (and so the
// cached cardinality) copied, as hllSparseToDense. A dense value is returned
// as it is.
func toDense(b []byte) ([]byte, error) {
	if b[4] == encDense {
		return b, nil
	}
	d := make([]byte, DenseSize)
	copy(d, b[:HeaderSize])
	d[4] = encDense
	regs := d[HeaderSize:]
	ok := walkSparse(b[HeaderSize:], func(idx, runlen, val int) {
		if val == 0 {
			return
		}
		for i := idx; i < idx+runlen; i++ {
			denseSetReg(regs, i, uint8(val))
		}
	})
	if !ok {
		return nil, ErrCorrupt
	}
	return d, nil
}

// sparseSet raises register index of the sparse value b to count, editing the
// opcodes exactly as hllSparseSet does, and returns the new value and 1 when
// the register changed, 0 when it did not, -1 when b is corrupt. Like Redis,
// it promotes b to dense when count does not fit a VAL opcode or the edit
// would make b longer than sparseMax bytes.
func sparseSet(b []byte, index int, count uint8, sparseMax int) ([]byte, int) {
	if count > sparseValMax {
		return promote(b, index, count)
	}
	// Step 1: find the opcode that covers index.
	end := len(b)
	p, first, span, prev := HeaderSize, 0, 0, -1
	for p < end {
		oplen := 1
		switch op := b[p]; {
		case isZero(op):
			span = zeroLen(op)
		case isVal(op):
			span = valLen(op)
		default:
			span = xzeroLen(b, p)
			oplen = 2
		}
		if index <= first+span-1 {
			break
		}
		prev = p
		p += oplen
		first += span
	}
	if span == 0 || p >= end {
		return b, -1
	}
	op := b[p]
	var runlen int
	switch {
	case isZero(op):
		runlen = zeroLen(op)
	case isXZero(op):
		runlen = xzeroLen(b, p)
	default:
		runlen = valLen(op)
	}

	// Step 2: the trivial cases.
	switch {
	case isVal(op) && valValue(op) >= int(count): // A: nothing to do
		return b, 0
	case isVal(op) && runlen == 1, isZero(op) && runlen == 1: // B, C
		b[p] = valOp(int(count), 1)
		return mergeAdjacent(b, prev), 1
	}

	// D: split the opcode into up to three (at most 5 bytes).
	seq := make([]byte, 0, 5)
	last := first + span - 1
	if !isVal(op) {
		zeros := func(n int) {
			if n > sparseZeroMax {
				x := xzeroOp(n)
				seq = append(seq, x[:]...)
			} else {
				seq = append(seq, zeroOp(n))
			}
		}
		if index != first {
			zeros(index - first)
		}
		seq = append(seq, valOp(int(count), 1))
		if index != last {
			zeros(last - index)
		}
	} else {
		cur := valValue(op)
		if index != first {
			seq = append(seq, valOp(cur, index-first))
		}
		seq = append(seq, valOp(int(count), 1))
		if index != last {
			seq = append(seq, valOp(cur, last-index))
		}
	}

	// Step 3: put the new sequence in place of the old opcode.
	oldlen := 1
	if isXZero(op) {
		oldlen = 2
	}
	if delta := len(seq) - oldlen; delta > 0 && len(b)+delta > sparseMax {
		return promote(b, index, count)
	}
	b = slices.Replace(b, p, p+oldlen, seq...)
	return mergeAdjacent(b, prev), 1
}

// mergeAdjacent is step 4 of hllSparseSet: from the opcode before the edited
// one (prev, or the first opcode if -1), scanning at most 5 opcodes, it joins
// adjacent VAL opcodes of equal value whose runs fit one opcode; then it marks
// the cached cardinality stale.
func mergeAdjacent(b []byte, prev int) []byte {
	p := HeaderSize
	if prev >= 0 {
		p = prev
	}
	for scan := 5; p < len(b) && scan > 0; {
		scan--
		switch {
		case isXZero(b[p]):
			p += 2
			continue
		case isZero(b[p]):
			p++
			continue
		}
		if p+1 < len(b) && isVal(b[p+1]) {
			v1, v2 := valValue(b[p]), valValue(b[p+1])
			if n := valLen(b[p]) + valLen(b[p+1]); v1 == v2 && n <= sparseValLen {
				b[p+1] = valOp(v1, n)
				b = slices.Delete(b, p, p+1)
				continue // try to merge the joined opcode with the next one
			}
		}
		p++
	}
	invalidate(b)
	return b
}

// promote converts b to dense and raises register index to count there, the
// promote: label of hllSparseSet.
func promote(b []byte, index int, count uint8) ([]byte, int) {
	d, err := toDense(b)
	if err != nil {
		return b, -1
	}
	// Promotion happens only when a register must change, so this is true.
	denseSet(d[HeaderSize:], index, count)
	return d, 1
}

// invalidate marks the cached cardinality stale (HLL_INVALIDATE_CACHE).
func invalidate(b []byte) { b[15] |= 0x80 }

// validCache reports whether the cached cardinality is valid (HLL_VALID_CACHE).
func validCache(b []byte) bool { return b[15]&0x80 == 0 }

// histogram is the register histogram hllCount estimates from: h[v] is the
// number of registers holding v. Dense registers hold at most 63.
type histogram [64]int

// histogram computes the histogram of a value whose header checkHeader
// accepted; for a sparse value it reports false if the opcodes are corrupt.
func histogramOf(b []byte) (h histogram, ok bool) {
	regs := b[HeaderSize:]
	if b[4] == encDense {
		for i := range NumRegisters {
			h[denseGet(regs, i)]++
		}
		return h, true
	}
	ok = walkSparse(regs, func(_, runlen, val int) { h[val] += runlen })
	return h, ok
}

// sigma is Ertl's sigma function (hllSigma). The float64 conversions keep
// each product rounded on its own, as the C code compiles without fused
// multiply-add, so results match Redis bit for bit on every GOARCH.
func sigma(x float64) float64 {
	if x == 1 {
		return math.Inf(1)
	}
	y, z := 1.0, x
	for {
		x = float64(x * x)
		zPrime := z
		z += float64(x * y)
		y += y
		if zPrime == z {
			return z
		}
	}
}

// tau is Ertl's tau function (hllTau).
func tau(x float64) float64 {
	if x == 0 || x == 1 {
		return 0
	}
	y, z := 1.0, 1-x
	for {
		x = math.Sqrt(x)
		zPrime := z
		y *= 0.5
		d := 1 - x
		z -= float64(float64(d*d) * y)
		if zPrime == z {
			return z / 3
		}
	}
}

// estimate is hllCount's estimator over a register histogram.
func (h *histogram) estimate() uint64 {
	const m = float64(NumRegisters)
	z := m * tau((m-float64(h[Q+1]))/m)
	for j := Q; j >= 1; j-- {
		z += float64(h[j])
		z = float64(z * 0.5)
	}
	z += float64(m * sigma(float64(h[0])/m))
	return uint64(math.Round(float64(alphaInf*m*m) / z))
}
