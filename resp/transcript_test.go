package resp

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/dynakv/dynakv/internal/evloop"
	"github.com/dynakv/dynakv/internal/testnode"
)

func withIOModel(m string) serverOpt {
	return func(c *Config, _ *testnode.Options) { c.IOModel = m }
}

// transcript is one random client session: its bytes, and how the client ends
// it (closing its sending side, or not: the server closes after QUIT or a
// protocol error).
type transcript struct {
	in        string
	halfClose bool
	pass      string // the server's requirepass ("" none)
}

// genTranscript makes a random mixed pipeline: SET/GET/INCR/DEL/MGET/PING/ECHO,
// unknown commands, wrong arity, inline commands, pre-AUTH commands on a server
// with a password, and at the end QUIT, a protocol error or nothing.
func genTranscript(r *rand.Rand) transcript {
	var b strings.Builder
	var t transcript
	key := func() string { return fmt.Sprintf("k%d", r.IntN(4)) }
	val := func() string {
		if r.IntN(2) == 0 {
			return fmt.Sprint(r.IntN(100))
		}
		return strings.Repeat(string(rune('a'+r.IntN(26))), r.IntN(40))
	}
	if r.IntN(4) == 0 {
		t.pass = "pw"
		for range r.IntN(3) {
			b.WriteString(encode("GET", key())) // NOAUTH
		}
		if r.IntN(2) == 0 {
			b.WriteString(encode("AUTH", "wrong"))
		}
		b.WriteString(encode("AUTH", "pw"))
	}
	for range 1 + r.IntN(60) {
		switch r.IntN(12) {
		case 0:
			b.WriteString(encode("SET", key(), val()))
		case 1:
			b.WriteString(encode("GET", key()))
		case 2:
			b.WriteString(encode("INCR", key()))
		case 3:
			b.WriteString(encode("DEL", key()))
		case 4:
			b.WriteString(encode("MGET", key(), key(), key()))
		case 5:
			b.WriteString(encode("PING"))
		case 6:
			b.WriteString(encode("ECHO", val()))
		case 7:
			b.WriteString(encode("NOSUCH", key()))
		case 8:
			b.WriteString(encode("GET")) // wrong arity
		case 9:
			fmt.Fprintf(&b, "SET %s %s\r\n", key(), val()) // inline
		case 10:
			b.WriteString("PING\r\n")
		case 11:
			b.WriteString(encode("SET", key(), val(), "NX"))
		}
	}
	switch r.IntN(4) {
	case 0:
		b.WriteString(encode("QUIT"))
	case 1:
		b.WriteString("*1\r\n$x\r\n") // Protocol error: invalid bulk length
	case 2:
		b.WriteString("SET \"unbalanced\r\n")
	default:
		t.halfClose = true
	}
	t.in = b.String()
	return t
}

// play sends t's bytes to addr split at random points (with short pauses), and
// returns everything the server sent until it closed.
func play(t *testing.T, addr string, tr transcript, r *rand.Rand) string {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	cuts := []int{0}
	for range r.IntN(8) {
		cuts = append(cuts, r.IntN(len(tr.in)+1))
	}
	cuts = append(cuts, len(tr.in))
	sorted := append([]int(nil), cuts...)
	for i := 1; i < len(sorted); i++ { // insertion sort: a handful
		for j := i; j > 0 && sorted[j] < sorted[j-1]; j-- {
			sorted[j], sorted[j-1] = sorted[j-1], sorted[j]
		}
	}
	pauses := make([]time.Duration, len(sorted))
	for i := range pauses {
		if r.IntN(3) == 0 {
			pauses[i] = time.Duration(r.IntN(2000)) * time.Microsecond
		}
	}
	wrote := make(chan error, 1)
	go func() {
		for i := 1; i < len(sorted); i++ {
			if _, err := nc.Write([]byte(tr.in[sorted[i-1]:sorted[i]])); err != nil {
				wrote <- err
				return
			}
			time.Sleep(pauses[i])
		}
		if tr.halfClose {
			wrote <- nc.(*net.TCPConn).CloseWrite()
			return
		}
		wrote <- nil
	}()
	out, err := io.ReadAll(nc)
	if err != nil {
		t.Fatalf("read: %v (got %q)", err, out)
	}
	if err := <-wrote; err != nil && !errors.Is(err, net.ErrClosed) {
		t.Logf("write: %v", err)
	}
	return string(out)
}

// TestTranscriptsBothDrivers: random mixed pipelines, split at random byte
// points into writes, get the same bytes back from a server on the loop driver
// as from one on the goroutine driver (each over its own fresh store): order,
// pause/resume, pre-AUTH one-at-a-time, QUIT and protocol errors at the end.
func TestTranscriptsBothDrivers(t *testing.T) {
	if !evloop.Supported() {
		t.Skip("no event loops here")
	}
	if testIOModel != IOLoop {
		t.Skip("compares both drivers itself: once is enough")
	}
	const seeds = 40
	var inline int64 // commands the loop driver ran inline (the fast path)
	for seed := range uint64(seeds) {
		gen := rand.New(rand.NewPCG(seed, 19))
		tr := genTranscript(gen)
		outs := map[string]string{}
		for _, model := range []string{IOLoop, IOGoroutine} {
			ts := startServer(t, withIOModel(model), withPass(tr.pass))
			// The same split for both: a generator seeded per transcript.
			outs[model] = play(t, ts.addr, tr, rand.New(rand.NewPCG(seed, 6)))
			ts.Close()
			if model == IOLoop {
				inline += ts.stats.inline.Load()
			}
		}
		if outs[IOLoop] != outs[IOGoroutine] {
			t.Fatalf("seed %d: input %q\nloop:      %q\ngoroutine: %q", seed, tr.in, outs[IOLoop], outs[IOGoroutine])
		}
		if outs[IOLoop] == "" {
			t.Fatalf("seed %d: no output", seed)
		}
	}
	if inline == 0 {
		t.Error("no command ran inline on the loop driver: the transcripts miss the fast path")
	}
	t.Logf("%d commands ran inline", inline)
}
