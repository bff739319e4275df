package resp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/tidwall/redcon"

	"github.com/dynakv/dynakv/internal/fuzzcheck"
)

// FuzzRequestRoundTrip builds a command from fuzzed arguments, encodes it the two
// ways a client may send it, and checks that the request path (framer, then
// redcon's reader on its output) returns exactly those arguments:
//
//   - as RESP multibulk: the framer passes the canonical encoding through unchanged
//     as one frame, and refuses it before AUTH exactly when it breaks the
//     unauthenticated limits;
//   - as an inline command, each argument bare, in double quotes (with \xHH, \n,
//     \", \\ escapes) or in single quotes (with \'), as redis-cli would type it:
//     splitArgs undoes the quoting.
//
// lens cuts data into arguments: each byte's low 6 bits give a length (modulo what
// is left), its top 2 bits the inline quoting style of that argument.
func FuzzRequestRoundTrip(f *testing.F) {
	seed := func(name string, data string, lens ...byte) { fuzzcheck.Seed(f, name, []byte(data), lens) }
	seed("set", "SETkeyvalue", 3, 3, 5)
	seed("get-double-quoted", "GETa b", 3|1<<6, 3|1<<6)
	seed("single-quoted-quote", "ECHOit's", 4, 4|2<<6)
	seed("hex-escaped-binary", "SET\x00\xff\r\n\"\\", 3, 6|3<<6)
	seed("empty-argument", "ECHO", 4, 0)
	seed("trailing-backslash", "ECHOab\\", 4, 3|2<<6)
	seed("star-first", "*1\r\n", 4|1<<6)
	seed("eleven-args", "abcdefghijk", 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
	seed("no-args", "", 0)
	f.Fuzz(func(t *testing.T, data, lens []byte) {
		var args [][]byte
		var styles []byte
		for _, l := range lens[:min(len(lens), 64)] {
			n := int(l&63) % (len(data) + 1)
			args = append(args, data[:n])
			styles = append(styles, l>>6)
			data = data[n:]
		}
		frames := 0
		if len(args) > 0 {
			frames = 1
		}

		enc := appendCommand(nil, args)
		fr := framer{maxBulk: 1 << 20}
		var out []byte
		r := fr.feed(enc, &out, false, false)
		if r.err != "" || r.kill || r.used != len(enc) || r.frames != frames || !bytes.Equal(out, enc) && frames == 1 {
			t.Fatalf("multibulk %q: %+v, out %q", enc, r, out)
		}
		checkRedcon(t, out, args)

		unauth := framer{maxBulk: 1 << 20}
		r = unauth.feed(enc, new([]byte), true, false)
		tooMany := len(args) > unauthMaxArgs
		tooBig := slices.ContainsFunc(args, func(a []byte) bool { return len(a) > unauthMaxBulk })
		switch {
		case tooMany && r.err != perrUnauthMbulk, !tooMany && tooBig && r.err != perrUnauthBulk, !tooMany && !tooBig && r.err != "":
			t.Fatalf("before AUTH, %d arguments: error %q", len(args), r.err)
		}

		line := quoteInline(args, styles)
		fr = framer{maxBulk: 1 << 20}
		out = out[:0]
		r = fr.feed(line, &out, false, false)
		if r.err != "" || r.used != len(line) || r.frames != frames {
			t.Fatalf("inline %q: %+v", line, r)
		}
		checkRedcon(t, out, args)
	})
}

// checkRedcon reads out with redcon's reader, as the server does, and checks that it
// holds one command with args (none when args is empty).
func checkRedcon(t *testing.T, out []byte, args [][]byte) {
	t.Helper()
	cmds, err := readAll(out)
	if err != nil {
		t.Fatalf("redcon rejected %q: %v", out, err)
	}
	if len(args) == 0 {
		if len(cmds) != 0 {
			t.Fatalf("no arguments gave %d commands", len(cmds))
		}
		return
	}
	if len(cmds) != 1 || !slices.EqualFunc(cmds[0].Args, args, bytes.Equal) {
		t.Fatalf("redcon read %d commands from %q, want %q", len(cmds), out, args)
	}
}

func readAll(b []byte) ([]redcon.Command, error) {
	rd := redcon.NewReader(bytes.NewReader(b))
	var cmds []redcon.Command
	for {
		cmd, err := rd.ReadCommand()
		if errors.Is(err, io.EOF) {
			return cmds, nil
		}
		if err != nil {
			return cmds, err
		}
		cmds = append(cmds, cmd)
	}
}

// quoteInline writes args as an inline command line ending in "\r\n", each in its
// style: 0 bare where it can be, 1 double quotes with readable escapes, 2 single
// quotes where it can be, 3 double quotes with every byte \xHH.
func quoteInline(args [][]byte, styles []byte) []byte {
	var b []byte
	for i, a := range args {
		if i > 0 {
			b = append(b, ' ')
		}
		// A line starting with '*' is multibulk, so a first bare argument must not.
		bare := len(a) > 0 && (i > 0 || a[0] != '*') && !bytes.ContainsAny(a, " \t\n\r\v\f\"'\\\x00")
		single := !bytes.ContainsAny(a, "\n\r\x00") && !bytes.HasSuffix(a, []byte{'\\'})
		switch {
		case styles[i] == 0 && bare:
			b = append(b, a...)
		case styles[i] == 2 && single:
			b = append(b, '\'')
			b = append(b, bytes.ReplaceAll(a, []byte("'"), []byte(`\'`))...)
			b = append(b, '\'')
		default:
			b = append(b, '"')
			for _, c := range a {
				switch {
				case styles[i] == 3:
					b = fmt.Appendf(b, `\x%02x`, c)
				case c == '"' || c == '\\':
					b = append(b, '\\', c)
				case c == '\n':
					b = append(b, `\n`...)
				case c == '\r':
					b = append(b, `\r`...)
				case c >= 0x20 && c < 0x7f:
					b = append(b, c)
				default:
					b = fmt.Appendf(b, `\x%02X`, c)
				}
			}
			b = append(b, '"')
		}
	}
	return append(b, '\r', '\n')
}
