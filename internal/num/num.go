// Package num parses the numbers of Redis commands and values the way Redis does:
// integers as string2ll, floats as string2ld, memory sizes as memtoull. Both protocol front ends' argument
// parsing and proxy's INCR/INCRBYFLOAT (reading a stored value) use these, so a number
// is accepted or refused alike wherever it appears. Callers turn a refusal into their
// own error (proxy.ErrNotInteger, resp's "-ERR value is not an integer or out of
// range").
//
// The package is pure and allocation-free; its functions are safe for concurrent use.
package num

import (
	"bytes"
	"math"
	"strconv"
	"strings"
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
// INCRBYFLOAT then fails with "would produce NaN or Infinity", as in Redis. Go's
// digit separators ("1_0") are refused: strtold stops at the underscore, so Redis
// answers "value is not a valid float".
func ParseFloat(b []byte) (float64, bool) {
	if len(b) == 0 || len(b) >= maxFloatLen || IsSpace(b[0]) || bytes.IndexByte(b, '_') >= 0 {
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

// memoryUnits are the units of a memory size, as Redis's memtoull takes them,
// without case: k, m and g are powers of 1000, kb, mb and gb of 1024.
var memoryUnits = map[string]uint64{"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000 * 1000,
	"mb": 1024 * 1024, "g": 1000 * 1000 * 1000, "gb": 1024 * 1024 * 1024}

// ParseMemory parses a memory size as Redis's CONFIG and configuration file do
// (memtoull): decimal digits, no sign, with an optional unit (b, k, kb, m, mb, g,
// gb, without case), within uint64. "64mb" is 67108864 and "1gb" 1073741824.
func ParseMemory(v string) (uint64, bool) {
	i := 0
	for i < len(v) && v[i] >= '0' && v[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, false
	}
	n, err := strconv.ParseUint(v[:i], 10, 64)
	if err != nil {
		return 0, false
	}
	m, ok := memoryUnits[strings.ToLower(v[i:])]
	if !ok || (m > 1 && n > (1<<64-1)/m) {
		return 0, false
	}
	return n * m, true
}
