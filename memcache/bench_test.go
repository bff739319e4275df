package memcache

import (
	"bufio"
	"io"
	"strings"
	"sync/atomic"
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
	s := New(Config{Now: clk.Now}, px)
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
// of one batch as a connection does, nothing executed.
func BenchmarkParse(b *testing.B) {
	var read atomic.Uint64
	c := &conn{r: bufio.NewReaderSize(countingReader{&replayReader{batch: benchBatch, n: b.N}, &read}, readBufSize)}
	b.SetBytes(int64(len(benchBatch)))
	b.ReportAllocs()
	toks := make([][]byte, 0, maxTokens)
	b.ResetTimer()
	for {
		line, err := c.readLine()
		if err != nil {
			break
		}
		toks, _ = tokenize(toks[:0], line)
		if string(toks[0]) == "set" {
			n, _ := parseInt32(toks[4])
			if _, _, err := c.readBlock(int(n)); err != nil {
				break
			}
		}
	}
}
