package resp

import (
	"strconv"
	"unsafe"

	"github.com/dynakv/dynakv/internal/num"
)

// parseCursor parses a SCAN cursor as Redis's string2ull: an unsigned decimal that
// may use the whole uint64 range (a leading '+' or leading spaces, which strtoull
// accepts, are accepted too).
func parseCursor(b []byte) (uint64, bool) {
	if n, ok := num.ParseInt(b); ok {
		return uint64(n), n >= 0
	}
	for len(b) > 0 && num.IsSpace(b[0]) {
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
