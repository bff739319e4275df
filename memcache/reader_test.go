package memcache

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/dynakv/dynakv/internal/fuzzcheck"
)

// FuzzReader is a differential test of the byte-slice reader against the bufio
// read path it replaced (bufioReader, the oracle), both deciding data blocks with
// the server's own blockFor (for a value limit and an authentication state the
// fuzzer picks). The input arrives in pieces whose sizes the fuzzer picks too,
// from 1 byte to 56 KiB, fed to the reader as they are and to the oracle through
// a bufio.Reader. For any input and any split it checks that both give the same
// commands (line, data block and its "\r\n" check, or a swallowed block) ending at
// the same input offsets, then end the same way (line too long, or the input ran
// out), and that the reader gives the same for a second, byte-at-a-time split.
//
// The one allowed difference is the verdict on a line longer than maxLine that is
// not a multi-get: memcached accepts it when its "\n" has arrived with the
// first bytes that pass maxLine, so both paths' verdicts depend on how much
// arrived at once, and their buffers differ (a bufio.Reader's window vs the
// reader's pieces). The comparison stops at such a line when the paths disagree
// on it.
func FuzzReader(f *testing.F) {
	long := strings.Repeat("x", 3000)
	for _, s := range []struct {
		name  string
		in    string
		cuts  string
		limit uint8 // MaxValueBytes in units of 64
		auth  bool
	}{
		{"set-get", "set k 0 0 5\r\nhello\r\nget k\r\ngets k\r\n", "\x03\x10", 255, false},
		{"bad-chunk", "set k 0 0 3\r\nabcdef\r\nset k 0 0 10\r\nabc\r\n", "", 255, false},
		{"bad-line-block-as-commands", "set k 0 0 x\r\nget a\r\nset " + strings.Repeat("k", 300) + " 0 0 1\r\nv\r\n", "\x00", 255, false},
		{"too-large-swallowed", "set k 0 0 200\r\n" + strings.Repeat("a", 200) + "\r\nget k\r\nms k 100 q\r\n" + strings.Repeat("b", 100) + "\r\nmn\r\n", "\x07\x30\xc8", 1, false},
		{"ms-bad-flags-swallowed", "ms k 2 v v\r\nhi\r\nms k 2 MX\r\nhi\r\nms k 2 O" + strings.Repeat("1", 40) + "\r\nhi\r\nmn\r\n", "\x01", 255, false},
		{"ms-no-length", "ms k\r\nms k x\r\nhi\r\n", "", 255, false},
		{"cas", "cas k 0 0 1 7\r\nx\r\ncas k 0 0 1 noreply\r\nx\r\n", "\x02", 255, false},
		{"claims-2GB", "set k 0 0 2147483000\r\nxxxx", "\x01", 255, false},
		{"block-claims-64K", "set k 0 0 70000\r\n" + strings.Repeat("v", 70000) + "\r\nget k\r\n", "\xe0\x05", 255, false},
		{"auth", "set a 0 0 16\r\ndefault password\r\nset k 0 0 2000\r\nx\r\nget k\r\n", "\x04", 255, true},
		{"bare-lf-cr-nul", "get a\nget b\r\r\nget c\x00d\r\nversion\r", "\x00", 255, false},
		{"long-line", long + "\r\nget k\r\n", "\xff", 255, false},
		{"long-line-split", long + "\r\nget k\r\n", "\x10", 255, false},
		{"long-multiget", "get " + strings.Repeat("k ", 5000) + "\r\nversion\r\n", "\xc9\x40", 255, false},
		{"multiget-too-long", "gets " + strings.Repeat("k", maxGetLine), "\xff", 255, false},
		{"spaces", strings.Repeat(" ", 2100) + "get k\r\n", "\x00", 255, false},
	} {
		fuzzcheck.Seed(f, s.name, []byte(s.in), []byte(s.cuts), s.limit, s.auth)
	}
	f.Fuzz(func(t *testing.T, in, cuts []byte, limit uint8, auth bool) {
		c := &conn{
			s:      &Server{cfg: Config{MaxKeyBytes: 250, MaxValueBytes: int(limit) * 64}},
			toks:   make([][]byte, 0, maxTokens),
			authed: !auth,
		}
		pieces := cutInput(in, cuts)
		want := oracleRead(c.blockFor, pieces)
		got := sliceRead(c.blockFor, pieces)
		compareReads(t, in, "oracle", want, "reader", got)
		small := []byte{0} // a byte at a time; pieces of 3 and 200 bytes for a big input
		if len(in) > 64<<10 {
			small = []byte{2, 199}
		}
		other := sliceRead(c.blockFor, cutInput(in, small))
		compareReads(t, in, "reader", got, fmt.Sprintf("reader in pieces of %v", small), other)
	})
}

// cutInput splits in into pieces whose sizes cycle through cuts: a byte b below
// 200 is a piece of b+1 bytes, a larger one of (b-199) KiB. No cuts: one piece.
func cutInput(in, cuts []byte) [][]byte {
	if len(cuts) == 0 {
		return [][]byte{in}
	}
	var out [][]byte
	for i := 0; len(in) > 0; i++ {
		n := int(cuts[i%len(cuts)]) + 1
		if b := cuts[i%len(cuts)]; b >= 200 {
			n = int(b-199) << 10
		}
		n = min(n, len(in))
		out = append(out, in[:n])
		in = in[n:]
	}
	return out
}

// readCmd is one command as a read path delivered it, and the input offset where
// it ended (for a swallowed block: where its line ended).
type readCmd struct {
	line                         string
	hasBlock, blockOK, swallowed bool
	block                        string
	swallow                      int // the swallowed block's size
	end                          int
}

func (rc readCmd) String() string {
	return fmt.Sprintf("{line %.80q block %v/%v %.40q swallowed %v (%d) end %d}",
		rc.line, rc.hasBlock, rc.blockOK, rc.block, rc.swallowed, rc.swallow, rc.end)
}

// readResult is what a read path made of a whole input.
type readResult struct {
	cmds    []readCmd
	tooLong bool // it ended with errLineTooLong (otherwise the input ran out)
}

// oracleRead reads pieces as the replaced server did: readLine, then the block
// blockFor gives read with readBlock or discarded with swallow.
func oracleRead(blockFor func([]byte) blockSpec, pieces [][]byte) readResult {
	var res readResult
	src := &chunkReader{chunks: slices.Clone(pieces)} // it consumes its chunks
	total := 0
	for _, p := range pieces {
		total += len(p)
	}
	o := &bufioReader{r: bufio.NewReaderSize(src, readBufSize)}
	consumed := func() int {
		left := o.r.Buffered()
		for _, p := range src.chunks {
			left += len(p)
		}
		return total - left
	}
	for {
		line, err := o.readLine()
		if err != nil {
			res.tooLong = errors.Is(err, errLineTooLong)
			return res
		}
		rc := readCmd{line: string(line)}
		spec := blockFor(line)
		switch {
		case spec.size <= 0:
		case spec.swallow:
			rc.swallowed, rc.swallow = true, spec.size
			rc.end = consumed()
			res.cmds = append(res.cmds, rc)
			if err := o.swallow(spec.size); err != nil {
				return res
			}
			continue
		default:
			data, ok, err := o.readBlock(spec.size - 2)
			if err != nil {
				return res
			}
			rc.hasBlock, rc.blockOK, rc.block = true, ok, string(data)
		}
		rc.end = consumed()
		res.cmds = append(res.cmds, rc)
	}
}

// sliceRead feeds pieces to a reader as a connection's reads would.
func sliceRead(blockFor func([]byte) blockSpec, pieces [][]byte) readResult {
	var res readResult
	r := reader{blockFor: blockFor}
	pos := 0
	buf := make([]byte, 0, readBufSize)
	for _, piece := range pieces {
		// Each piece arrives in the same buffer, overwritten once consumed: the
		// reader must keep no reference into it.
		scribble(buf) // as the next read into the buffer would
		buf = append(buf[:0], piece...)
		in := buf
		for {
			cmd, used, ok, err := r.next(in)
			if used < 0 || used > len(in) || (!ok && err == nil && used != len(in)) {
				panic(fmt.Sprintf("next used %d of %d bytes, ok %v", used, len(in), ok))
			}
			in = in[used:]
			pos += used
			if err != nil {
				res.tooLong = true
				return res
			}
			if !ok {
				break
			}
			rc := readCmd{line: string(cmd.line), hasBlock: cmd.hasBlock, blockOK: cmd.blockOK, block: string(cmd.block), swallowed: cmd.swallowed, end: pos}
			if cmd.swallowed {
				rc.swallow = r.skip
			}
			res.cmds = append(res.cmds, rc)
		}
	}
	return res
}

// compareReads fails t unless a and b are the same reads of in, up to a line the
// paths may judge differently (see FuzzReader).
func compareReads(t *testing.T, in []byte, aName string, a readResult, bName string, b readResult) {
	t.Helper()
	pos := 0 // where the first command not yet compared starts
	for i := 0; ; i++ {
		if i == len(a.cmds) && i == len(b.cmds) {
			if a.tooLong != b.tooLong {
				if longLine(in[pos:]) {
					return
				}
				t.Fatalf("after %d commands: %s ends too long %v, %s %v", i, aName, a.tooLong, bName, b.tooLong)
			}
			return
		}
		if i < len(a.cmds) && i < len(b.cmds) && a.cmds[i] == b.cmds[i] {
			pos = a.cmds[i].end + a.cmds[i].swallow
			continue
		}
		if longLine(in[pos:]) {
			return
		}
		var ac, bc any = "none (too long)", "none (too long)"
		if !a.tooLong {
			ac = "none (input ran out)"
		}
		if !b.tooLong {
			bc = "none (input ran out)"
		}
		if i < len(a.cmds) {
			ac = a.cmds[i]
		}
		if i < len(b.cmds) {
			bc = b.cmds[i]
		}
		t.Fatalf("command %d at offset %d: %s read %v, %s read %v", i, pos, aName, ac, bName, bc)
	}
}

// longLine reports whether rest starts with a line (up to its "\n", or the end)
// longer than maxLine that is not a multi-get: the verdict on it depends on how
// much of it arrived at once.
func longLine(rest []byte) bool {
	n := bytes.IndexByte(rest, '\n')
	if n < 0 {
		n = len(rest)
	}
	return n > maxLine && !isMultiGet(rest[:n])
}

// TestReaderPieces: commands come whole and the same for every piece size; what
// an incomplete command needs is kept in the reader (sliceRead overwrites each
// piece once it is consumed); a refused block is swallowed.
func TestReaderPieces(t *testing.T) {
	c := &conn{s: &Server{cfg: Config{MaxKeyBytes: 250, MaxValueBytes: 100}}, toks: make([][]byte, 0, maxTokens), authed: true}
	in := []byte("get a\r\nms key 5 T10 O7\r\nhello\r\nset big 0 0 200\r\n" + strings.Repeat("z", 200) + "\r\nmn\r\n")
	want := []readCmd{
		{line: "get a", end: 7},
		{line: "ms key 5 T10 O7", hasBlock: true, blockOK: true, block: "hello", end: 31},
		{line: "set big 0 0 200", swallowed: true, swallow: 202, end: 48},
		{line: "mn", end: 254},
	}
	for size := 1; size <= len(in); size++ {
		var pieces [][]byte
		for s := in; len(s) > 0; s = s[min(size, len(s)):] {
			pieces = append(pieces, s[:min(size, len(s))])
		}
		got := sliceRead(c.blockFor, pieces)
		if len(got.cmds) != len(want) || got.tooLong {
			t.Fatalf("pieces of %d: %v", size, got)
		}
		for i := range want {
			if got.cmds[i] != want[i] {
				t.Fatalf("pieces of %d: command %d is %v, want %v", size, i, got.cmds[i], want[i])
			}
		}
	}
}
