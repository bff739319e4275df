package bench

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/dynakv/dynakv/internal/fuzzcheck"
)

// FuzzReadReply feeds arbitrary server bytes to the benchmark client's reply
// parsers (RESP2/RESP3 and memcached, after a GET or a SET). Nothing may panic;
// failures are ErrProtocol or a short read; and a parser reads exactly its reply:
// with more bytes after it (the next pipelined reply) it gives the same verdict
// and consumes the same bytes.
func FuzzReadReply(f *testing.F) {
	for _, s := range []struct {
		name  string
		in    string
		proto uint8 // 0 RESP, 1 memcached GET, 2 memcached SET
	}{
		{"resp-simple", "+OK\r\n", 0},
		{"resp-bulk", "$5\r\nhello\r\n", 0},
		{"resp-nil", "$-1\r\n", 0},
		{"resp-error", "-ERR no\r\n", 0},
		{"resp3-nested", "*2\r\n%1\r\n+k\r\n~1\r\n=7\r\ntxt:abc\r\n|1\r\n+a\r\n:1\r\n", 0},
		{"resp3-blob-error", "!3\r\nERR\r\n", 0},
		{"resp-deep", "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", 0},
		{"resp-huge-count", "*999999999999999999\r\n", 0},
		{"resp-bulk-no-crlf", "$1\r\nab", 0},
		{"mc-get-hit", "VALUE k 0 5\r\nhello\r\nEND\r\n", 1},
		{"mc-get-two", "VALUE a 0 1 7\r\nx\r\nVALUE b 3 0\r\n\r\nEND\r\n", 1},
		{"mc-get-miss", "END\r\n", 1},
		{"mc-get-bad-length", "VALUE k 0 -5\r\n", 1},
		{"mc-set-stored", "STORED\r\n", 2},
		{"mc-set-error", "SERVER_ERROR out of memory\r\n", 2},
		{"mc-bare-lf", "STORED\n", 2},
	} {
		fuzzcheck.Seed(f, s.name, []byte(s.in), s.proto)
	}
	f.Fuzz(func(t *testing.T, in []byte, proto uint8) {
		reply, used, err := readOneReply(in, proto)
		if err != nil {
			if !errors.Is(err, ErrProtocol) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("error %v is neither ErrProtocol nor a short read", err)
			}
			return
		}
		if used > len(in) {
			t.Fatalf("consumed %d of %d bytes", used, len(in))
		}
		more := append(bytes.Clone(in), "+NEXT\r\nVALUE x 0 1\r\n"...)
		reply2, used2, err := readOneReply(more, proto)
		if err != nil || reply2 != reply || used2 != used {
			t.Fatalf("with a reply after it: reply %v, used %d, %v; alone: reply %v, used %d", reply2, used2, err, reply, used)
		}
	})
}

// readOneReply parses one reply from in as proto says and returns how many bytes
// it consumed.
func readOneReply(in []byte, proto uint8) (reply Reply, used int, err error) {
	src := bytes.NewReader(in)
	r := bufio.NewReaderSize(src, 512)
	switch proto % 3 {
	case 0:
		reply, err = respCodec{}.readReply(r, OpGet)
	case 1:
		reply, err = mcCodec{}.readReply(r, OpGet)
	default:
		reply, err = mcCodec{}.readReply(r, OpSet)
	}
	return reply, len(in) - src.Len() - r.Buffered(), err
}
