package resp

import (
	"math"
	"strconv"
	"unsafe"
)

// parseInt parses b as Redis's string2ll does: the canonical decimal form only (an
// optional '-', no '+', no spaces, no leading zeros, "-0" rejected, at most 20 bytes).
// It never allocates.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) >= 21 {
		return 0, false
	}
	if len(b) == 1 && b[0] == '0' {
		return 0, true
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	if b[0] < '1' || b[0] > '9' {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if v > math.MaxUint64/10 {
			return 0, false
		}
		v *= 10
		if v > math.MaxUint64-uint64(c-'0') {
			return 0, false
		}
		v += uint64(c - '0')
	}
	if neg {
		if v > 1<<63 {
			return 0, false
		}
		return -int64(v), true
	}
	if v > math.MaxInt64 {
		return 0, false
	}
	return int64(v), true
}

// parseCursor parses a SCAN cursor as Redis's string2ull: an unsigned decimal that
// may use the whole uint64 range (a leading '+' or leading spaces, which strtoull
// accepts, are accepted too).
func parseCursor(b []byte) (uint64, bool) {
	if n, ok := parseInt(b); ok {
		return uint64(n), n >= 0
	}
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	if len(b) > 0 && b[0] == '+' {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(bstr(b), 10, 64)
	return n, err == nil
}

// parseFloat parses an INCRBYFLOAT increment as Redis's string2ld: no leading space,
// the whole argument used, not NaN, not out of range. An infinity is accepted (the
// increment then fails with "would produce NaN or Infinity", as in Redis).
func parseFloat(b []byte) (float64, bool) {
	if len(b) == 0 || len(b) >= 5*1024 || isSpace(b[0]) {
		return 0, false
	}
	f, err := strconv.ParseFloat(bstr(b), 64)
	if err != nil || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return false
}

// bstr views b as a string without copying. Only for immediate use (parsing,
// comparisons, map lookups); the string must not be retained.
func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// eqFold reports whether b equals lower, ignoring ASCII case. lower must be
// lower-case ASCII.
func eqFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// lowerASCII returns b lower-cased into buf when it fits, without allocating.
func lowerASCII(buf []byte, b []byte) ([]byte, bool) {
	if len(b) > len(buf) {
		return nil, false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return buf[:len(b)], true
}

// cstr returns b up to its first NUL byte: what C's "%s" prints of an sds, so that
// error messages echoing arguments match Redis's byte for byte.
func cstr(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}
