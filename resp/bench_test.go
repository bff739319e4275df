package resp

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"

	"github.com/dynakv/dynakv/internal/testnode"
	"github.com/dynakv/dynakv/proxy"
)

// BenchmarkExecGet measures the dispatch path of GET without sockets; compare
// with BenchmarkProxyGet for what resp adds.
func BenchmarkExecGet(b *testing.B) {
	h := newHarness(b, Config{})
	h.run("SET", "key", "value")
	args := [][]byte{[]byte("GET"), []byte("key")}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.c.w.reset()
		h.s.exec(h.c, args)
	}
}

func BenchmarkProxyGet(b *testing.B) {
	px := testnode.Proxy(b, testnode.Options{})
	ctx := context.Background()
	if _, err := px.Do(ctx, proxy.Op{Kind: proxy.OpSet, Key: []byte("key"), Value: []byte("value")}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := px.Do(ctx, proxy.Op{Kind: proxy.OpGet, Key: []byte("key")}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFramer measures request parsing alone.
func BenchmarkFramer(b *testing.B) {
	in := []byte(strings.Repeat(encode("SET", "key:000123", "value-value-value"), 100))
	var out []byte
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var f framer
		f.maxBulk = DefaultProtoMaxBulkLen
		out = out[:0]
		f.feed(in, &out, false, false)
	}
}

// BenchmarkPipelinedPing measures the whole server path (sockets, framer, redcon,
// dispatch) with batches of 100 PINGs.
func BenchmarkPipelinedPing(b *testing.B) {
	benchPipelined(b, encode("PING"), "+PONG\r\n")
}

func BenchmarkPipelinedGet(b *testing.B) {
	benchPipelined(b, encode("GET", "key"), "$5\r\nvalue\r\n")
}

func benchPipelined(b *testing.B, req, reply string) {
	ts := startServer(b)
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReaderSize(c, 64<<10)
	if _, err := c.Write([]byte(encode("SET", "key", "value"))); err != nil {
		b.Fatal(err)
	}
	if _, err := r.ReadString('\n'); err != nil {
		b.Fatal(err)
	}
	const batch = 100
	msg := []byte(strings.Repeat(req, batch))
	buf := make([]byte, len(reply)*batch)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := readFull(r, buf); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if string(buf[:len(reply)]) != reply {
		b.Fatalf("reply %q", buf[:len(reply)])
	}
}

func readFull(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// BenchmarkBigSet writes 512 KiB values.
func BenchmarkBigSet(b *testing.B) {
	ts := startServer(b)
	c := dialRaw(b, ts.addr)
	msg := encode("SET", "big", strings.Repeat("v", 512<<10))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.send(msg)
		if got := c.read(); got != ok {
			b.Fatal(got)
		}
	}
}
