package memcache

import (
	"bufio"
	"io"
	"strings"
	"testing"

	"github.com/dynakv/dynakv/internal/testnode"
)

// benchBatch is a pipelined batch of 100 set/get pairs with 17-byte values.
var benchBatch = []byte(strings.Repeat("set key:000123 0 0 17\r\nvalue-value-value\r\nget key:000123\r\n", 100))

// replayReader returns batch once per Read, n times, then io.EOF: a client sending
// n pipelined batches, each arriving in one read.
type replayReader struct {
	batch []byte
	n     int
}

func (r *replayReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	r.n--
	return copy(p, r.batch), nil
}

// BenchmarkServePipelined measures one connection's whole server path without
// sockets (reading, parsing, dispatch, proxy, replies); an op is one batch of 100
// set/get pairs arriving in one read.
func BenchmarkServePipelined(b *testing.B) {
	clk := newFakeClock()
	px := testnode.Proxy(b, testnode.Options{Now: clk.Now})
	s := New(Config{Now: clk.Now, IOModel: IOGoroutine}, px) // newConn: the goroutine engine
	b.Cleanup(func() { s.Close() })
	pc := &pipeConn{Reader: &replayReader{batch: benchBatch, n: b.N}}
	c := s.newConn(pc)
	b.SetBytes(int64(len(benchBatch)))
	b.ReportAllocs()
	b.ResetTimer()
	c.serve()
	b.StopTimer()
	if pc.out.Len() == 0 {
		b.Fatal("no replies")
	}
}

// BenchmarkParse measures reading alone: an op finds the 300 lines and data blocks
// of one batch as a connection does, nothing executed; "reader" is the byte-slice
// reader fed each read, "bufio" the path it replaced (FuzzReader's oracle).
func BenchmarkParse(b *testing.B) {
	toks := make([][]byte, 0, maxTokens)
	blockFor := func(line []byte) blockSpec {
		toks, _ = tokenize(toks[:0], line)
		if string(toks[0]) != "set" {
			return blockSpec{}
		}
		n, _ := parseInt32(toks[4])
		return blockSpec{size: int(n) + 2}
	}
	b.Run("reader", func(b *testing.B) {
		r := reader{blockFor: blockFor}
		src := &replayReader{batch: benchBatch, n: b.N}
		buf := make([]byte, readBufSize)
		b.SetBytes(int64(len(benchBatch)))
		b.ReportAllocs()
		b.ResetTimer()
		for {
			n, err := src.Read(buf)
			for in := buf[:n]; ; {
				_, used, ok, err := r.next(in)
				if err != nil {
					b.Fatal(err)
				}
				if in = in[used:]; !ok {
					break
				}
			}
			if err != nil {
				break
			}
		}
	})
	b.Run("bufio", func(b *testing.B) {
		c := &bufioReader{r: bufio.NewReaderSize(&replayReader{batch: benchBatch, n: b.N}, readBufSize)}
		b.SetBytes(int64(len(benchBatch)))
		b.ReportAllocs()
		b.ResetTimer()
		for {
			line, err := c.readLine()
			if err != nil {
				break
			}
			if spec := blockFor(line); spec.size > 0 {
				if _, _, err := c.readBlock(spec.size - 2); err != nil {
					break
				}
			}
		}
	})
}
