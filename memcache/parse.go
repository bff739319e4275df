package memcache

import (
	"bytes"
	"encoding/base64"
	"math"
	"strconv"
	"time"

	"github.com/dynakv/dynakv/internal/num"
)

// maxTokens is memcached's MAX_TOKENS less its terminal token: a command line is
// split into at most this many tokens, the rest left for multi-get to continue.
const maxTokens = 23

// tokenize splits line on spaces (only ' ', as memcached) into at most maxTokens
// tokens appended to dst. rest is what follows the last token when the limit was
// reached (nil otherwise). Tokens alias line; nothing is allocated when dst has room.
func tokenize(dst [][]byte, line []byte) (toks [][]byte, rest []byte) {
	toks = dst
	i := 0
	for i < len(line) {
		for i < len(line) && line[i] == ' ' {
			i++
		}
		if i == len(line) {
			break
		}
		j := i
		for j < len(line) && line[j] != ' ' {
			j++
		}
		toks = append(toks, line[i:j])
		i = j
		if len(toks) == maxTokens {
			if i < len(line) {
				rest = line[i:]
			}
			break
		}
	}
	return toks, rest
}

// nextToken returns the first space-separated token of b and what follows it; tok is
// empty when b holds no more tokens.
func nextToken(b []byte) (tok, rest []byte) {
	i := 0
	for i < len(b) && b[i] == ' ' {
		i++
	}
	j := i
	for j < len(b) && b[j] != ' ' {
		j++
	}
	return b[i:j], b[j:]
}

// trimLine removes the "\r" of a "\r\n" line end and cuts the line at its first NUL
// byte (memcached handles a command as a C string).
func trimLine(line []byte) []byte {
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if i := bytes.IndexByte(line, 0); i >= 0 {
		line = line[:i]
	}
	return line
}

// isMultiGet reports whether a line still missing its "\n" is a multi-get that may
// grow past maxLine, as memcached's try_read_command_ascii decides: at most 100
// leading spaces, then "get " or "gets ".
func isMultiGet(b []byte) bool {
	i := 0
	for i < len(b) && b[i] == ' ' {
		i++
	}
	if i > 100 {
		return false
	}
	b = b[i:]
	return bytes.HasPrefix(b, []byte("get ")) || bytes.HasPrefix(b, []byte("gets "))
}

// scanNumber parses what C's strtol/strtoull accept in base 10: leading white space,
// an optional sign, digits. It reports the magnitude (ok false on overflow of uint64
// or when no digit was read) and whether the number is followed by the end of b or
// by white space, as memcached's safe_strto* functions require.
func scanNumber(b []byte) (mag uint64, neg, ok bool) {
	i := 0
	for i < len(b) && num.IsSpace(b[i]) {
		i++
	}
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		neg = b[i] == '-'
		i++
	}
	start := i
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		d := uint64(b[i] - '0')
		if mag > (math.MaxUint64-d)/10 {
			return 0, false, false
		}
		mag = mag*10 + d
	}
	if i == start || (i < len(b) && !num.IsSpace(b[i])) {
		return 0, false, false
	}
	return mag, neg, true
}

// parseInt32 is memcached's safe_strtol: a signed decimal that fits in 32 bits.
func parseInt32(b []byte) (int32, bool) {
	mag, neg, ok := scanNumber(b)
	if !ok {
		return 0, false
	}
	if neg {
		if mag > -math.MinInt32 {
			return 0, false
		}
		return int32(-int64(mag)), true
	}
	if mag > math.MaxInt32 {
		return 0, false
	}
	return int32(mag), true
}

// parseUint32 is memcached's safe_strtoul for client flags: an unsigned decimal that
// fits in 32 bits ("-0" is 0; any other negative number is refused).
func parseUint32(b []byte) (uint32, bool) {
	mag, neg, ok := scanNumber(b)
	if !ok || (neg && mag != 0) || mag > math.MaxUint32 {
		return 0, false
	}
	return uint32(mag), true
}

// parseUint64 is memcached's safe_strtoull: an unsigned 64-bit decimal (deltas, cas
// uniques).
func parseUint64(b []byte) (uint64, bool) {
	mag, neg, ok := scanNumber(b)
	if !ok || (neg && mag != 0) {
		return 0, false
	}
	return mag, true
}

// maxRelative is memcached's REALTIME_MAXDELTA: larger exptimes are unix times.
const maxRelative = 60 * 60 * 24 * 30

// expiredLongAgo is the absolute expiry (unix ms) given to items whose exptime asks
// them to expire at once: any time in the past will do.
const expiredLongAgo = 1

// expiry converts a memcached exptime at now into the proxy's absolute expiry in
// unix ms (0: never).
func expiry(exptime int32, now time.Time) int64 {
	switch {
	case exptime == 0:
		return 0
	case exptime < 0:
		return expiredLongAgo
	case exptime <= maxRelative:
		return now.UnixMilli() + int64(exptime)*1000
	default:
		return max(int64(exptime)*1000, expiredLongAgo)
	}
}

// ttlSeconds is the remaining time to live reported by mg/ma t: -1 without expiry,
// otherwise whole seconds rounded up.
func ttlSeconds(exp int64, now time.Time) int64 {
	if exp == 0 {
		return -1
	}
	rem := exp - now.UnixMilli()
	if rem <= 0 {
		return 0
	}
	return (rem + 999) / 1000
}

// decodeKey base64-decodes a meta command's key (the b flag).
func decodeKey(b []byte) ([]byte, bool) {
	out := make([]byte, base64.StdEncoding.DecodedLen(len(b)))
	n, err := base64.StdEncoding.Decode(out, b)
	if err != nil || n == 0 {
		return nil, false
	}
	return out[:n], true
}

// appendKey appends a meta k flag's key: as is, or base64 followed by " b" for a key
// that came base64-encoded.
func appendKey(dst, key []byte, binary bool) []byte {
	dst = append(dst, " k"...)
	if !binary {
		return append(dst, key...)
	}
	dst = base64.StdEncoding.AppendEncode(dst, key)
	return append(dst, " b"...)
}

func appendUint(dst []byte, n uint64) []byte { return strconv.AppendUint(dst, n, 10) }

func appendInt(dst []byte, n int64) []byte { return strconv.AppendInt(dst, n, 10) }
