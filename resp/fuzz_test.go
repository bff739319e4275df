package resp

import (
	"bytes"
	"errors"
	"io"
	"net"
	"slices"
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

// FuzzServer feeds arbitrary bytes to the request path: the framer's spans, and
// command execution. Nothing may panic. (FuzzFramerSpans checks the spans against
// the framer's canonical frames parsed by redcon's reader.)
func FuzzServer(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	h := newHarness(f, Config{})
	f.Fuzz(func(t *testing.T, in []byte) {
		h.c.closing = false
		fr := framer{maxBulk: 1 << 20}
		var cmds commands
		r := fr.spans(in, &cmds, false, false)
		if r.used > len(in) || r.frames != cmds.len() {
			t.Fatalf("used %d of %d bytes, %d frames, %d commands", r.used, len(in), r.frames, cmds.len())
		}
		for i := range cmds.len() {
			args := cmds.get(i)
			h.c.w.reset()
			h.s.exec(h.c, args)
			if len(h.c.w.b) == 0 && !h.c.closing {
				t.Fatalf("no reply to %q", args)
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
	reads    []int // the size of each read that returned data
	wrote    bytes.Buffer
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.size)], c.data)
	c.data = c.data[n:]
	c.reads = append(c.reads, n)
	return n, nil
}

func (c *chunkConn) Write(p []byte) (int, error)      { return c.wrote.Write(p) }
func (c *chunkConn) SetWriteDeadline(time.Time) error { return nil }
func (c *chunkConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }

// FuzzFramerSpans checks the server's parse path (a wire: reads into its own
// buffer, the framer's spans over it) against the old one (the framer's canonical
// frames, parsed again by redcon's reader), for any input split into any reads:
// the same commands with the same arguments, then the same protocol error
// answered the same way, or EOF. Before AUTH (unauth) commands are parsed one at
// a time, with the lower limits.
func FuzzFramerSpans(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), uint8(3), false)
		f.Add([]byte(s), uint8(200), true)
	}
	f.Add([]byte(encode("SET", "k", strings.Repeat("v", 3000))+encode("GET", "k")), uint8(100), false)
	f.Add([]byte(encode("SET", "k", strings.Repeat("v", 20000))+"PING\r\n"), uint8(255), true)
	f.Add([]byte("PING\r\n"+strings.Repeat("x", 70000)+"\r\n"), uint8(255), false)
	s := New(Config{IOModel: IOGoroutine}, nil)
	f.Fuzz(func(t *testing.T, in []byte, readSize uint8, unauth bool) {
		cc := &chunkConn{data: in, size: int(readSize) + 1}
		w := newWire(cc, s)
		if unauth {
			w.cl = &client{} // not authenticated; no session to flush
		}
		var got [][][]byte
		var cmds commands
		var err error
		for i := 0; i < 1e6; i++ {
			if err = w.next(&cmds); err != nil {
				break
			}
			if unauth && cmds.len() != 1 {
				t.Fatalf("before AUTH, a batch of %d commands", cmds.len())
			}
			for j := range cmds.len() {
				got = append(got, slices.Clone(cmds.get(j)))
				for k := range got[len(got)-1] {
					got[len(got)-1][k] = bytes.Clone(got[len(got)-1][k])
				}
			}
		}

		// The old path, over the same reads.
		old := framer{maxBulk: s.cfg.ProtoMaxBulkLen}
		var out, buf []byte
		var r feedResult
		frames, rest := 0, in
		for _, n := range cc.reads {
			buf = append(buf, rest[:n]...)
			rest = rest[n:]
			r = old.feed(buf, &out, unauth, false)
			buf = buf[r.used:]
			frames += r.frames
			if r.err != "" || r.kill {
				break
			}
		}
		rd := redcon.NewReader(bytes.NewReader(out))
		var want [][][]byte
		for range frames {
			cmd, err := rd.ReadCommand()
			if err != nil {
				t.Fatalf("redcon rejected the framer's output %q: %v", out, err)
			}
			want = append(want, cmd.Args)
		}
		if !slices.EqualFunc(got, want, func(a, b [][]byte) bool { return slices.EqualFunc(a, b, bytes.Equal) }) {
			t.Fatalf("reads %v: spans gave %q, the old path %q", cc.reads, got, want)
		}
		switch {
		case r.err != "":
			if !errors.Is(err, errProtocol) || cc.wrote.String() != "-ERR "+r.err+"\r\n" {
				t.Fatalf("reads %v: error %v, wrote %q; want %q", cc.reads, err, cc.wrote.String(), r.err)
			}
		case r.kill:
			if !errors.Is(err, errQueryBuf) || cc.wrote.Len() > 0 {
				t.Fatalf("reads %v: error %v, wrote %q; want a kill", cc.reads, err, cc.wrote.String())
			}
		case !errors.Is(err, io.EOF) || cc.wrote.Len() > 0:
			t.Fatalf("reads %v: error %v, wrote %q; want EOF", cc.reads, err, cc.wrote.String())
		}
	})
}
