package memcache

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/dynakv/dynakv/internal/testnode"
)

// pipeConn is a connection whose client sent in and has left: reads end with EOF.
type pipeConn struct {
	io.Reader
	out     bytes.Buffer
	dropped bool
}

func (p *pipeConn) Write(b []byte) (int, error) {
	if p.dropped || p.out.Len()+len(b) > 1<<20 {
		p.dropped = true // keep memory bounded; such replies are not checked
		return len(b), nil
	}
	return p.out.Write(b)
}

func (p *pipeConn) Close() error { return nil }

// FuzzServer feeds arbitrary bytes through one connection's handler: it must neither
// panic nor hang (the connection loop runs without the recover of serveConn), and
// every reply it writes must be whole lines.
func FuzzServer(f *testing.F) {
	for _, seed := range []string{
		"get a b c\r\n",
		"set k 0 0 5\r\nhello\r\nget k\r\ngets k\r\n",
		"set k 0 0 3\r\nabcdef\r\n",
		"set k 0 0 10\r\nabc\r\n",
		"set k 0 0 2147483000\r\nxx",
		"set k 0 0 -1\r\n",
		"cas k 0 0 1 0\r\nx\r\n",
		"incr k 18446744073709551615\r\ndecr k 1\r\n",
		"touch k -1\r\ngat 10 k\r\ngats 0 k\r\n",
		"delete k 0 noreply\r\nflush_all 10\r\nflush_all\r\n",
		"stats\r\nstats reset\r\nstats settings\r\nversion\r\nverbosity 1\r\n",
		"mg k v k c f s t O1 q\r\nmn\r\n",
		"ms k 2 T10 F3 MA N30 C1 I q k O2 s c b\r\nhi\r\n",
		"ms Zm9v 2 b\r\nhi\r\nmg Zm9v b v k\r\n",
		"md k q C0 I T30 O3 k\r\n",
		"ma k N0 J5 D3 MD T10 t c v k O4 q\r\n",
		"mg k N30 T10 t s c v\r\nme k\r\nme Zm9v b\r\n",
		strings.Repeat("a", 3000),
		"get " + strings.Repeat("k ", 2000),
		strings.Repeat(" ", 2048) + "\r\n",
		"\x80\x00\x00\x05\x00\x00\x00\x00\r\n",
		"quit\r\nget k\r\n",
	} {
		f.Add([]byte(seed))
	}
	clk := newFakeClock()
	px := testnode.Proxy(f, testnode.Options{Now: clk.Now, MaxValueBytes: 1 << 16})
	s := New(Config{Now: clk.Now, IOModel: IOGoroutine}, px) // newConn: the goroutine engine
	f.Cleanup(func() { s.Close() })
	f.Fuzz(func(t *testing.T, in []byte) {
		var r io.Reader = bytes.NewReader(in)
		if len(in)%2 == 1 {
			r = iotest.OneByteReader(r) // a slow client: every read returns one byte
		}
		pc := &pipeConn{Reader: r}
		c := s.newConn(pc)
		c.serve()
		out := pc.out.Bytes()
		if len(out) > 0 && !pc.dropped && !bytes.HasSuffix(out, []byte("\r\n")) {
			t.Fatalf("reply does not end a line: %q", out[max(len(out)-64, 0):])
		}
	})
}

// chunkReader returns its chunks one Read at a time, as a slow network would.
type chunkReader struct{ chunks [][]byte }

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	if r.chunks[0] = r.chunks[0][n:]; len(r.chunks[0]) == 0 {
		r.chunks = r.chunks[1:]
	}
	return n, nil
}

// TestLineOutlivesBlockRead: a meta set whose data block arrives after its line
// echoes the line's flags intact, although reading the block reuses the buffer.
func TestLineOutlivesBlockRead(t *testing.T) {
	clk := newFakeClock()
	px := testnode.Proxy(t, testnode.Options{Now: clk.Now})
	s := New(Config{Now: clk.Now, IOModel: IOGoroutine}, px) // newConn: the goroutine engine
	defer s.Close()
	pc := &pipeConn{Reader: &chunkReader{chunks: [][]byte{
		[]byte("ms somekey 5 k O123456 T10 F7\r\n"),
		[]byte("hello\r\n"),
		[]byte("set other 9 0 3 \r\n"),
		[]byte("abc\r\nget other somekey\r\n"),
	}}}
	c := s.newConn(pc)
	c.serve()
	want := "HD ksomekey O123456\r\nSTORED\r\nVALUE other 9 3\r\nabc\r\nVALUE somekey 7 5\r\nhello\r\nEND\r\n"
	if got := pc.out.String(); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
