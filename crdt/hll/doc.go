// Package hll is a pure Go port of Redis 7.0's HyperLogLog (src/hyperloglog.c,
// redis 7.0.15 with Debian's CVE-2025-32023 fix), byte-compatible with it: the
// strings this package produces and accepts are exactly the values GET returns
// for a Redis HLL key, and counts equal PFCOUNT's.
//
// The format: a 16-byte header ("HYLL", an encoding byte, 3 unused bytes, the
// cached cardinality as 8 little-endian bytes whose most significant bit set
// means "stale"), then the registers: dense (16384 6-bit registers packed
// LSB first, 12288 bytes) or sparse (ZERO 00xxxxxx, XZERO 01xxxxxx yyyyyyyy,
// VAL 1vvvvvxx opcodes that cover all 16384 registers). An element is hashed
// with MurmurHash64A (seed 0xadc83b19); its low 14 bits (P) pick the register,
// and the run of zero bits above them, plus one, capped at Q+1 = 51, is the
// candidate register value. Counts use Ertl's improved estimator (register
// histogram, sigma and tau), as Redis 7 does.
//
// There are two levels:
//
//   - Commands on byte strings, which behave as Redis's commands do on a key's
//     value (nil means the key is missing): Add (PFADD), Count (single-key
//     PFCOUNT, which may refresh the cached cardinality), CountUnion
//     (multi-key PFCOUNT) and Merge (PFMERGE). They never modify their inputs
//     and return fresh slices. Sparse values are edited exactly as Redis edits
//     them, so the same command sequence gives the same bytes.
//   - Registers, the decoded 16384 values, whose register-wise maximum (Max)
//     is the CRDT join: commutative, associative and idempotent. Encode renders
//     registers the way PFMERGE into a missing key does, so a rendering depends
//     only on the registers and on whether a dense form was asked for.
//
// Validation follows Redis: a value that is too short, lacks the magic, has an
// unknown encoding, or is dense with the wrong length is ErrWrongType ("Key is
// not a valid HyperLogLog string value."); sparse opcodes that do not cover
// exactly 16384 registers are ErrCorrupt ("Corrupted HLL object detected").
// The one departure: Add and Merge check the whole sparse value before editing
// it, where Redis finds some corruptions only when an edit reaches them; so a
// corrupt value is refused whole instead of being partly edited.
//
// Everything here is pure: no I/O, no goroutines, no clocks, no global state;
// the sparse size limit (Redis's hll-sparse-max-bytes) is a parameter.
package hll
