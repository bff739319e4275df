package memcache

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dynakv/dynakv/internal/evloop"
)

// transcript is one random client session: its bytes, where the part that may
// be split at any byte ends (the rest, which makes the server close, is sent in
// one write: bytes the server never reads would turn its close into a reset),
// and how the client ends it.
type transcript struct {
	in        string
	splitEnd  int    // cuts fall in in[:splitEnd]
	halfClose bool   // the client closes its sending side after in
	pass      string // the server's password ("" none)
}

// transcriptMaxValue is the servers' value limit in the transcripts: small
// enough for over-limit blocks to be cheap, large enough for a multi-get to pass
// loopOutLimit.
const transcriptMaxValue = 48 << 10

// genTranscript makes a random mixed pipeline: every classic and meta command,
// noreply and q, malformed lines, bad data chunks, over-limit blocks, values
// large enough to pass the loop's output limit, authentication first on a
// server with a password, and at the end quit, an HTTP request line, a line too
// long, or nothing (the client half-closes).
func genTranscript(r *rand.Rand) transcript {
	var b strings.Builder
	var t transcript
	key := func() string { return fmt.Sprintf("k%d", r.IntN(5)) }
	// Before authentication a block over 1 KiB ends the connection: preAuth
	// transcripts have none (the server would close while the client writes).
	preAuth := false
	val := func() string {
		switch r.IntN(12) {
		case 0:
			if preAuth {
				return "small"
			}
			return strings.Repeat("L", 20<<10+r.IntN(20<<10)) // large
		case 1:
			return ""
		case 2, 3, 4:
			return fmt.Sprint(r.IntN(100))
		}
		return strings.Repeat(string(rune('a'+r.IntN(26))), r.IntN(40))
	}
	noreply := func() string {
		if r.IntN(4) == 0 {
			return " noreply"
		}
		return ""
	}
	keys := func() string {
		ks := []string{key()}
		for range r.IntN(4) {
			ks = append(ks, key())
		}
		return strings.Join(ks, " ")
	}
	if r.IntN(4) == 0 {
		t.pass = "pw"
		for range r.IntN(3) {
			b.WriteString([]string{"get k0\r\n", "version\r\n", "set x 0 0 1 2\r\nv\r\n"}[r.IntN(3)])
		}
		if r.IntN(2) == 0 {
			b.WriteString("set a 0 0 9\r\ndefault x\r\n") // authentication failure
		}
		if r.IntN(4) > 0 {
			b.WriteString("set a 0 0 10\r\ndefault pw\r\n")
		} else {
			preAuth = true // the rest is answered unauthenticated (or ends it)
		}
	}
	for range 1 + r.IntN(50) {
		switch r.IntN(24) {
		case 0, 1, 2:
			v := val()
			verb := []string{"set", "add", "replace", "append", "prepend"}[r.IntN(5)]
			fmt.Fprintf(&b, "%s %s %d %d %d%s\r\n%s\r\n", verb, key(), r.IntN(3), r.IntN(2)*1000, len(v), noreply(), v)
		case 3:
			v := val()
			fmt.Fprintf(&b, "cas %s 0 0 %d %d%s\r\n%s\r\n", key(), len(v), r.IntN(3), noreply(), v)
		case 4, 5, 6:
			fmt.Fprintf(&b, "%s %s\r\n", []string{"get", "gets", "bget"}[r.IntN(3)], keys())
		case 7:
			fmt.Fprintf(&b, "%s %d %s\r\n", []string{"gat", "gats"}[r.IntN(2)], r.IntN(2)*500, keys())
		case 8:
			fmt.Fprintf(&b, "%s %s %d%s\r\n", []string{"incr", "decr"}[r.IntN(2)], key(), r.IntN(10), noreply())
		case 9:
			fmt.Fprintf(&b, "delete %s%s\r\n", key(), noreply())
		case 10:
			fmt.Fprintf(&b, "touch %s %d%s\r\n", key(), r.IntN(2)*100, noreply())
		case 11:
			flags := []string{"v", "s", "f", "t", "k", "q", "O12", "T30", "N5"}
			r.Shuffle(len(flags), func(i, j int) { flags[i], flags[j] = flags[j], flags[i] })
			fmt.Fprintf(&b, "mg %s %s\r\n", key(), strings.Join(flags[:r.IntN(len(flags))], " "))
		case 12:
			v := val()
			fmt.Fprintf(&b, "ms %s %d %s\r\n%s\r\n", key(), len(v), []string{"", "q", "T10", "F3 k", "MA", "ME", "I"}[r.IntN(7)], v)
		case 13:
			fmt.Fprintf(&b, "md %s%s\r\n", key(), []string{"", " q", " k O1"}[r.IntN(3)])
		case 14:
			fmt.Fprintf(&b, "ma %s%s\r\n", key(), []string{"", " v", " N0 J7", " MD D2 q", " T5 t"}[r.IntN(5)])
		case 15:
			b.WriteString([]string{"mn\r\n", "me k0\r\n", "mx k0\r\n"}[r.IntN(3)])
		case 16:
			b.WriteString([]string{"version\r\n", "verbosity 1\r\n", "verbosity\r\n", "stats slabs\r\n", "stats nosuch\r\n", "shutdown\r\n"}[r.IntN(6)])
		case 17:
			fmt.Fprintf(&b, "flush_all%s\r\n", noreply())
		case 18: // malformed lines
			b.WriteString([]string{"nosuch a b\r\n", "\r\n", "set k0 0 0\r\n", "incr\r\n", "get " + strings.Repeat("x", 251) + "\r\n", "x\r\n", " \t \r\n", "delete a b c d e\r\n"}[r.IntN(8)])
		case 19: // a bad storage line: its block is read as commands
			fmt.Fprintf(&b, "set %s x 0 1\r\nv\r\n", key())
		case 20: // a bad data chunk: what follows the block is read as commands
			fmt.Fprintf(&b, "set %s 0 0 3%s\r\nabcde\r\n", key(), noreply())
		case 21: // over the limit: swallowed
			if preAuth {
				break
			}
			n := transcriptMaxValue + 1 + r.IntN(4<<10)
			verb := []string{"set", "append", "ms"}[r.IntN(3)]
			if verb == "ms" {
				fmt.Fprintf(&b, "ms %s %d%s\r\n%s\r\n", key(), n, []string{"", " q"}[r.IntN(2)], strings.Repeat("o", n))
			} else {
				fmt.Fprintf(&b, "%s %s 0 0 %d%s\r\n%s\r\n", verb, key(), n, noreply(), strings.Repeat("o", n))
			}
		case 22: // a line with a NUL in it
			fmt.Fprintf(&b, "get %s\x00junk\r\n", key())
		case 23: // a long multi-get
			fmt.Fprintf(&b, "get%s\r\n", strings.Repeat(" "+key(), 100+r.IntN(200)))
		}
	}
	t.splitEnd = b.Len()
	ending := r.IntN(6)
	if preAuth && ending < 2 {
		ending = 3 // quit and the HTTP line are only unauthenticated lines then
	}
	switch ending {
	case 0:
		b.WriteString("quit\r\n")
	case 1:
		b.WriteString("GET / HTTP/1.1\r\n")
	case 2:
		b.WriteString(strings.Repeat("a", maxLine+1)) // line too long
	case 3:
		if preAuth {
			b.WriteString("set a 0 0 2000\r\n") // an authentication block too large
			break
		}
		fallthrough
	default:
		t.halfClose = true
		t.splitEnd = b.Len()
	}
	t.in = b.String()
	return t
}

// play sends tr's bytes to addr, split at random points of in[:splitEnd] (with
// short pauses), and returns everything the server sent until it closed.
func play(t *testing.T, addr string, tr transcript, r *rand.Rand) string {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	cuts := []int{0, tr.splitEnd, len(tr.in)}
	for range r.IntN(10) {
		cuts = append(cuts, r.IntN(tr.splitEnd+1))
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	wrote := make(chan error, 1)
	go func() {
		for i := 1; i < len(cuts); i++ {
			if _, err := io.WriteString(nc, tr.in[cuts[i-1]:cuts[i]]); err != nil {
				wrote <- err
				return
			}
			if r.IntN(3) == 0 {
				time.Sleep(time.Duration(r.IntN(2000)) * time.Microsecond)
			}
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
// pause/resume, noreply, errors, swallowed blocks, the output limit,
// authentication one command at a time, and the ways a connection ends.
func TestTranscriptsBothDrivers(t *testing.T) {
	if !evloop.Supported() {
		t.Skip("no event loops here")
	}
	if testIOModel != IOLoop {
		t.Skip("compares both drivers itself: once is enough")
	}
	const seeds = 60
	for seed := range uint64(seeds) {
		tr := genTranscript(rand.New(rand.NewPCG(seed, 19)))
		t.Logf("seed %d: %d bytes", seed, len(tr.in))
		outs := map[string]string{}
		for _, model := range []string{IOLoop, IOGoroutine} {
			ts := startServer(t, serverOptions{maxValueBytes: transcriptMaxValue, cfg: Config{IOModel: model, Password: tr.pass}})
			// The same split for both: a generator seeded per transcript.
			outs[model] = play(t, ts.addr, tr, rand.New(rand.NewPCG(seed, 6)))
			ts.Close()
		}
		if outs[IOLoop] != outs[IOGoroutine] {
			t.Fatalf("seed %d: input %q\nloop:      %q\ngoroutine: %q", seed, clip(tr.in), clip(outs[IOLoop]), clip(outs[IOGoroutine]))
		}
		if outs[IOLoop] == "" && !strings.HasSuffix(tr.in, "\r\n") {
			t.Fatalf("seed %d: no output", seed)
		}
	}
}

// clip shortens long runs of one byte in s, for failure messages.
func clip(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] == s[i] {
			j++
		}
		if j-i > 16 {
			fmt.Fprintf(&b, "%c{%d}", s[i], j-i)
		} else {
			b.WriteString(s[i:j])
		}
		i = j
	}
	return b.String()
}
