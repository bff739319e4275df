// Package num parses the numbers of Redis commands and values the way Redis does:
// integers as string2ll, floats as string2ld. Both protocol front ends' argument
// parsing and proxy's INCR/INCRBYFLOAT (reading a stored value) use these, so a number
// is accepted or refused alike wherever it appears. Callers turn a refusal into their
// own error (proxy.ErrNotInteger, resp's "-ERR value is not an integer or out of
// range").
//
// The package is pure and allocation-free; its functions are safe for concurrent use.
package num

import (
	"math"
	"strconv"
	"unsafe"
)

// ParseInt parses b as Redis's string2ll does: the canonical decimal form only (an
// optional '-', no '+', no spaces, no leading zeros, "-0" refused, at most 20 bytes),
// within int64.
func ParseInt(b []byte) (int64, bool) {
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

// maxFloatLen is Redis's MAX_LONG_DOUBLE_CHARS: string2ld refuses this many bytes or
// more.
const maxFloatLen = 5 * 1024

// ParseFloat parses b as Redis's string2ld does: no leading space, the whole of b
// used, not NaN, not out of range, shorter than 5 KiB. An infinity is accepted:
// INCRBYFLOAT then fails with "would produce NaN or Infinity", as in Redis.
func ParseFloat(b []byte) (float64, bool) {
	if len(b) == 0 || len(b) >= maxFloatLen || IsSpace(b[0]) {
		return 0, false
	}
	// The string does not outlive the call: strconv copies what its errors keep.
	f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(b), len(b)), 64)
	if err != nil || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

// IsSpace reports whether c is white space for C's isspace in the C locale.
func IsSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return false
}
