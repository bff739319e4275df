package resp

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/redcon"
)

var fuzzSeeds = []string{
	"*1\r\n$4\r\nPING\r\n",
	"PING\r\n",
	"SET a \"b c\" EX 10\r\nGET a\r\n",
	"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
	"*0\r\n*-1\r\n*1\r\n$4\r\nPINGxx",
	"*2147483647\r\n",
	"*1\r\n$536870912\r\n",
	"*1\r\n$-1\r\n",
	"SET a 'b\r\n",
	"ECHO \"\\x41\\n\"\r\n",
	"\x00\x01\xff\r\n",
	"HELLO 3\r\nCONFIG GET *\r\nINFO\r\nCOMMAND\r\nCLIENT LIST\r\n",
	"SET n 1\r\nINCRBYFLOAT n 1e308\r\nINCRBYFLOAT n 1e308\r\nGETRANGE n -100 100\r\nSETRANGE n 1 x\r\n",
	"DPUT k \"\" v\r\nDGET k\r\nDDEL k garbage\r\n",
	"EXPIRE k 10 NX\r\nSCAN 0 MATCH [a-\r\nKEYS *\r\nTTL k\r\n",
	"POST / HTTP/1.1\r\n",
}

// FuzzServer feeds arbitrary bytes to the request path: the framer, redcon's
// reader on the framer's output, and command execution. Nothing may panic, and
// redcon must parse whatever the framer emits.
func FuzzServer(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	h := newHarness(f, Config{})
	f.Fuzz(func(t *testing.T, in []byte) {
		h.c.closing = false
		fr := framer{maxBulk: 1 << 20}
		var out []byte
		r := fr.feed(in, &out, false, false)
		if r.used > len(in) {
			t.Fatalf("used %d of %d bytes", r.used, len(in))
		}
		rd := redcon.NewReader(bytes.NewReader(out))
		for n := 0; ; n++ {
			cmd, err := rd.ReadCommand()
			if errors.Is(err, io.EOF) {
				if n != r.frames && n != r.frames+0 {
					t.Fatalf("redcon read %d commands, framer emitted %d", n, r.frames)
				}
				break
			}
			if err != nil {
				t.Fatalf("redcon rejected the framer's output %q: %v", out, err)
			}
			if n >= r.frames {
				t.Fatalf("more commands than frames")
			}
			h.c.w.reset()
			h.s.exec(h.c, cmd.Args)
			if len(h.c.w.b) == 0 && !h.c.closing {
				t.Fatalf("no reply to %q", cmd.Args)
			}
		}
	})
}

// FuzzFramer checks that the framer's output does not depend on how the input is
// split into reads.
func FuzzFramer(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), uint8(1))
		f.Add([]byte(s), uint8(7))
	}
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		whole := framer{maxBulk: 1 << 20}
		var want []byte
		wr := whole.feed(in, &want, false, false)

		split := framer{maxBulk: 1 << 20}
		var got, buf []byte
		frames := 0
		var err string
		size := int(chunk%16) + 1
		for i := 0; i < len(in) && err == ""; i += size {
			buf = append(buf, in[i:min(i+size, len(in))]...)
			r := split.feed(buf, &got, false, false)
			buf = buf[r.used:]
			frames += r.frames
			err = r.err
		}
		if err == "" && wr.err == "" {
			if !bytes.Equal(got, want) || frames != wr.frames {
				t.Fatalf("split by %d: %q (%d frames), whole: %q (%d frames)", size, got, frames, want, wr.frames)
			}
		}
		// An error found in pieces is found whole, and the other way round,
		// except "too big" errors, which depend on how much is buffered.
		if (err == "") != (wr.err == "") && !bytes.Contains([]byte(err+wr.err), []byte("too big")) {
			t.Fatalf("split by %d: error %q, whole: %q", size, err, wr.err)
		}
	})
}

// chunkConn is a net.Conn whose reads return at most size bytes of data.
type chunkConn struct {
	net.Conn // nil: only Read, Write and SetWriteDeadline are used
	data     []byte
	size     int
	wrote    bytes.Buffer
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.size)], c.data)
	c.data = c.data[n:]
	return n, nil
}

func (c *chunkConn) Write(p []byte) (int, error)      { return c.wrote.Write(p) }
func (c *chunkConn) SetWriteDeadline(time.Time) error { return nil }
func (c *chunkConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }

// FuzzGuardConn checks that guardConn.Read delivers exactly the framer's output
// whatever the sizes of the socket's reads and of the reader's buffer, and then
// the protocol error, if any.
func FuzzGuardConn(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), uint8(3), uint8(5))
		f.Add([]byte(s), uint8(200), uint8(64))
	}
	f.Add([]byte(encode("SET", "k", strings.Repeat("v", 3000))+encode("GET", "k")), uint8(100), uint8(7))
	s := New(Config{}, nil)
	f.Fuzz(func(t *testing.T, in []byte, readSize, pSize uint8) {
		whole := framer{maxBulk: s.cfg.ProtoMaxBulkLen}
		var want []byte
		wr := whole.feed(in, &want, false, false)

		cc := &chunkConn{data: in, size: int(readSize) + 1}
		g := newGuardConn(cc, s)
		var got []byte
		p := make([]byte, int(pSize)+1)
		var err error
		for i := 0; i < 1e6; i++ {
			var n int
			n, err = g.Read(p)
			got = append(got, p[:n]...)
			if err != nil {
				break
			}
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("read %q, framer %q", got, want)
		}
		switch {
		case wr.err != "":
			if !errors.Is(err, errProtocol) || cc.wrote.String() != "-ERR "+wr.err+"\r\n" {
				t.Fatalf("error %v, wrote %q; want %q", err, cc.wrote.String(), wr.err)
			}
		case !errors.Is(err, io.EOF):
			t.Fatalf("error %v, want EOF", err)
		}
	})
}
