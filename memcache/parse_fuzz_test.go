package memcache

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dynakv/dynakv/internal/fuzzcheck"
)

// FuzzParse drives the text protocol's parsers directly, without executing
// anything: the byte-slice reader (with memcached's line limits, and the data
// block each storage command's line announces),
// tokenize, the number parsers and the meta flag parser. For arbitrary input split
// into reads of any size it checks that:
//
//   - every line is the input up to a "\n", trimmed as memcached trims it, and a
//     line is refused as too long only when no "\n" comes within maxLine bytes;
//   - every data block is exactly the next n input bytes, and its "\r\n" check is
//     right;
//   - the split into reads changes nothing, as long as no line exceeds maxLine
//     (beyond it, memcached's verdict depends on how much has arrived);
//   - reading allocates at most a small multiple of the input, whatever length a
//     command line claims;
//   - tokens are the space-separated words of the line, numbers parse as C's
//     strtol/strtoull (memcached's safe_strto*) do, and parseMeta never panics and
//     accepts only distinct flags.
func FuzzParse(f *testing.F) {
	for _, s := range []struct {
		name string
		in   string
	}{
		{"get", "get a b c\r\n"},
		{"set-get", "set k 0 0 5\r\nhello\r\nget k\r\ngets k\r\n"},
		{"set-block-too-long", "set k 0 0 3\r\nabcdef\r\n"},
		{"set-block-short", "set k 0 0 10\r\nabc\r\n"},
		{"set-claims-2GB", "set k 0 0 2147483000\r\nxx"},
		{"set-negative-length", "set k 0 0 -1\r\n"},
		{"cas", "cas k 4294967295 -1 1 18446744073709551615\r\nx\r\n"},
		{"incr-max", "incr k 18446744073709551615\r\ndecr k +1\r\nincr k 18446744073709551616\r\n"},
		{"numbers", "touch k -2147483648\r\ntouch k 2147483648\r\nverbosity -0\r\nflush_all \t12\r\n"},
		{"meta-get", "mg k v k c f s t O1 q\r\nmn\r\n"},
		{"meta-set", "ms k 2 T10 F3 MA N30 C1 I q k O2 s c b\r\nhi\r\n"},
		{"meta-base64-key", "ms Zm9v 2 b\r\nhi\r\nmg Zm9v b v k\r\n"},
		{"meta-dup-flag", "mg k v v\r\nma k N0 J5 D3 MD T10 t c v k O4 q\r\n"},
		{"meta-bad-flags", "mg k \x7f \xff E5 MAA\r\nme k\r\n"},
		{"bare-lf-and-cr", "get a\nget b\r\r\nversion\r"},
		{"nul-cuts-line", "get a\x00b c\r\n"},
		{"long-line", strings.Repeat("a", 3000) + "\r\n"},
		{"long-multiget", "get " + strings.Repeat("k ", 5000) + "\r\n"},
		{"many-tokens", strings.Repeat("t ", 30) + "\r\n"},
		{"blank-lines", "\r\n\n   \r\n"},
	} {
		fuzzcheck.Seed(f, s.name, []byte(s.in), uint8(0))
		fuzzcheck.Seed(f, s.name+"-bytewise", []byte(s.in), uint8(1))
	}
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		chunked := func() io.Reader { return &strideReader{data: in, size: int(chunk)%64 + 1} }
		fuzzcheck.CheckAlloc(t, "reading", len(in), 16, func() {
			readEvents(bytes.NewReader(in), func(mcEvent) {})
			readEvents(chunked(), func(mcEvent) {})
		})
		whole, split := recordEvents(bytes.NewReader(in)), recordEvents(chunked())
		checkEvents(t, in, whole)
		checkEvents(t, in, split)
		for i := range min(len(whole), len(split)) {
			w, s := whole[i], split[i]
			if w.end-w.start > maxLine || s.end-s.start > maxLine || w.err != nil || s.err != nil {
				break
			}
			if w.kind != s.kind || w.start != s.start || w.end != s.end || !bytes.Equal(w.data, s.data) || w.ok != s.ok {
				t.Fatalf("event %d read whole %+v, in reads of %d bytes %+v", i, w, int(chunk)%64+1, s)
			}
		}
		for _, ev := range whole {
			if ev.kind == 'l' {
				checkTokens(t, ev.data)
			}
		}
	})
}

// strideReader returns data size bytes per Read, as a slow network would.
type strideReader struct {
	data []byte
	size int
}

func (r *strideReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.size)], r.data)
	r.data = r.data[n:]
	return n, nil
}

// mcEvent is a line or data block the reader returned, and the input bytes
// [start, end) it consumed.
type mcEvent struct {
	kind       byte // 'l' line, 'b' data block, 'e' the error that ended reading
	data       []byte
	ok         bool  // a block's "\r\n" check
	n          int   // a block's length
	err        error // 'e' only
	start, end int
}

// readEvents reads src as a connection does, in reads of at most readBufSize
// bytes fed to the reader: lines and the data blocks of storage commands, until
// an error, passing each event to emit. An event's data is valid only during emit.
func readEvents(src io.Reader, emit func(mcEvent)) {
	r := reader{blockFor: func(line []byte) blockSpec {
		if n, ok := blockLen(line); ok {
			return blockSpec{size: n + 2}
		}
		return blockSpec{}
	}}
	buf := make([]byte, readBufSize)
	pos := 0   // input consumed
	start := 0 // where the next command starts
	for {
		n, rerr := src.Read(buf)
		for in := buf[:n]; ; {
			cmd, used, ok, err := r.next(in)
			in = in[used:]
			pos += used
			if err != nil {
				emit(mcEvent{kind: 'e', err: err, start: start, end: start})
				return
			}
			if !ok {
				break
			}
			lineEnd := pos
			if cmd.hasBlock {
				lineEnd -= len(cmd.block) + 2
			}
			emit(mcEvent{kind: 'l', data: cmd.line, start: start, end: lineEnd})
			if cmd.hasBlock {
				emit(mcEvent{kind: 'b', data: cmd.block, ok: cmd.blockOK, n: len(cmd.block), start: lineEnd, end: pos})
			}
			start = pos
		}
		if rerr == nil {
			continue
		}
		if r.lineDone { // the input ends inside a data block
			lineEnd := pos - len(r.block)
			emit(mcEvent{kind: 'l', data: r.line, start: start, end: lineEnd})
			emit(mcEvent{kind: 'e', n: r.need - 2, err: io.ErrUnexpectedEOF, start: lineEnd, end: pos})
			return
		}
		emit(mcEvent{kind: 'e', err: rerr, start: start, end: pos})
		return
	}
}

// recordEvents returns the events of readEvents.
func recordEvents(src io.Reader) []mcEvent {
	var evs []mcEvent
	readEvents(src, func(ev mcEvent) {
		ev.data = bytes.Clone(ev.data)
		evs = append(evs, ev)
	})
	return evs
}

// blockLen is the data block length a storage command line announces, as the
// server reads it (classic commands: the fifth token; ms: the third).
func blockLen(line []byte) (int, bool) {
	toks, _ := tokenize(nil, line)
	var v []byte
	switch {
	case len(toks) >= 5 && slices.Contains([]string{"set", "add", "replace", "append", "prepend", "cas"}, string(toks[0])):
		v = toks[4]
	case len(toks) >= 3 && string(toks[0]) == "ms":
		v = toks[2]
	default:
		return 0, false
	}
	n, ok := parseInt32(v)
	return int(n), ok && n >= 0
}

func checkEvents(t *testing.T, in []byte, evs []mcEvent) {
	t.Helper()
	pos := 0
	for i, ev := range evs {
		if ev.start != pos || ev.end < ev.start || ev.end > len(in) {
			t.Fatalf("event %d consumed [%d, %d) after %d of %d bytes", i, ev.start, ev.end, pos, len(in))
		}
		seg := in[ev.start:ev.end]
		rest := in[ev.start:]
		switch ev.kind {
		case 'l':
			if bytes.IndexByte(seg, '\n') != len(seg)-1 {
				t.Fatalf("line %d consumed %q, not up to the first newline", i, seg)
			}
			if want := trimLine(seg[:len(seg)-1]); !bytes.Equal(ev.data, want) {
				t.Fatalf("line %d is %q, want %q", i, ev.data, want)
			}
			if len(seg) > maxGetLine+1 || (len(seg) > readBufSize && !isMultiGet(seg)) {
				t.Fatalf("line %d of %d bytes accepted", i, len(seg))
			}
		case 'b':
			if len(seg) != ev.n+2 || !bytes.Equal(ev.data, seg[:ev.n]) || ev.ok != bytes.Equal(seg[ev.n:], []byte("\r\n")) {
				t.Fatalf("block %d of %d bytes: %q ok=%v from %q", i, ev.n, ev.data, ev.ok, seg)
			}
		case 'e':
			nl := bytes.IndexByte(rest, '\n')
			switch {
			case errors.Is(ev.err, errLineTooLong):
				if nl >= 0 && nl <= maxLine {
					t.Fatalf("line of %d bytes refused as too long", nl)
				}
			case ev.n > 0 || i > 0 && evs[i-1].kind == 'l' && ev.err == io.ErrUnexpectedEOF:
				if len(rest) >= ev.n+2 {
					t.Fatalf("block of %d refused with %d bytes left: %v", ev.n, len(rest), ev.err)
				}
			case ev.err == io.EOF:
				if nl >= 0 {
					t.Fatalf("EOF with a whole line left: %q", rest)
				}
			default:
				if !errors.Is(ev.err, io.ErrUnexpectedEOF) {
					t.Fatalf("reading ended with %v", ev.err)
				}
			}
			if i != len(evs)-1 {
				t.Fatalf("events after an error")
			}
		}
		pos = ev.end
	}
}

// checkTokens checks tokenize, the number parsers and parseMeta on one line.
func checkTokens(t *testing.T, line []byte) {
	t.Helper()
	toks, rest := tokenize(make([][]byte, 0, maxTokens), line)
	var words [][]byte
	for _, w := range bytes.Split(line, []byte(" ")) {
		if len(w) > 0 {
			words = append(words, w)
		}
	}
	if len(toks) > maxTokens || (rest != nil && len(toks) != maxTokens) {
		t.Fatalf("tokenize(%.100q): %d tokens, rest %.100q", line, len(toks), rest)
	}
	all := slices.Clone(toks)
	for more := rest; more != nil; { // as multi-get continues
		var next [][]byte
		next, more = tokenize(nil, more)
		all = append(all, next...)
	}
	if !slices.EqualFunc(all, words, bytes.Equal) {
		t.Fatalf("tokenize(%.100q) gives %d words, want %d", line, len(all), len(words))
	}
	for _, tok := range toks {
		checkNumber(t, tok)
	}
	if len(toks) < 2 {
		return
	}
	m, errLine := parseMeta(toks[1], toks[2:])
	if errLine != "" {
		return
	}
	var seen [256]bool
	for _, fl := range toks[2:] {
		if fl[0] >= metaMaxFlagChar || seen[fl[0]] {
			t.Fatalf("parseMeta accepted flags %q", toks[2:])
		}
		seen[fl[0]] = true
	}
	if m.binary {
		enc := appendKey(nil, m.key, true)
		got, ok := decodeKey(bytes.TrimSuffix(bytes.TrimPrefix(enc, []byte(" k")), []byte(" b")))
		if !ok || !bytes.Equal(got, m.key) {
			t.Fatalf("base64 key %q does not round trip: %q", m.key, got)
		}
	}
}

// checkNumber compares the number parsers with strconv on C's terms: leading white
// space, an optional sign, decimal digits, then the end or white space.
func checkNumber(t *testing.T, tok []byte) {
	t.Helper()
	s := strings.TrimLeft(string(tok), " \t\n\v\f\r")
	if i := strings.IndexAny(s, " \t\n\v\f\r"); i >= 0 {
		s = s[:i]
	}
	i32, ok := parseInt32(tok)
	want, err := strconv.ParseInt(s, 10, 32)
	if ok != (err == nil) || ok && int64(i32) != want {
		t.Fatalf("parseInt32(%q) = %d, %v; strconv: %d, %v", tok, i32, ok, want, err)
	}
	neg := strings.HasPrefix(s, "-")
	digits := s
	if neg || strings.HasPrefix(s, "+") {
		digits = s[1:] // one sign only: ParseUint refuses another
	}
	u, err := strconv.ParseUint(digits, 10, 64)
	u64, ok := parseUint64(tok)
	if wantOK := err == nil && (!neg || u == 0); ok != wantOK || ok && u64 != u {
		t.Fatalf("parseUint64(%q) = %d, %v; strconv: %d, %v", tok, u64, ok, u, err)
	}
	u32, ok := parseUint32(tok)
	if wantOK := err == nil && (!neg || u == 0) && u <= 1<<32-1; ok != wantOK || ok && uint64(u32) != u {
		t.Fatalf("parseUint32(%q) = %d, %v; strconv: %d, %v", tok, u32, ok, u, err)
	}
}
