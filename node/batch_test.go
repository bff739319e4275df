package node

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Batched RESP pipelines in a cluster (issue 19, S9, S10; resp/batch.go): the
// same pipeline answers the same bytes whether the node runs its runs of plain
// SET, GET and DEL (and MGET's keys) with one DoBatch or every command alone.

// respConn is a raw RESP client: it sends a pipeline in one write and reads
// each reply's bytes as they came.
type respConn struct {
	nc net.Conn
	rd *bufio.Reader
}

func dialRESP(t testing.TB, addr string) *respConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &respConn{nc: nc, rd: bufio.NewReader(nc)}
}

// encode appends a RESP array command.
func encode(b []byte, args ...string) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, "\r\n"...)
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, "\r\n"...)
		b = append(b, a...)
		b = append(b, "\r\n"...)
	}
	return b
}

// pipeline sends cmds in one write and returns their replies, one each.
func (c *respConn) pipeline(t testing.TB, cmds [][]string) []string {
	t.Helper()
	out, err := c.send(cmds)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// send is pipeline for other goroutines than the test's.
func (c *respConn) send(cmds [][]string) ([]string, error) {
	var b []byte
	for _, cmd := range cmds {
		b = encode(b, cmd...)
	}
	_ = c.nc.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		return nil, err
	}
	out := make([]string, len(cmds))
	for i := range cmds {
		var r bytes.Buffer
		if err := readReply(c.rd, &r); err != nil {
			return nil, fmt.Errorf("reply %d of %d (%q): %w", i, len(cmds), cmds[i], err)
		}
		out[i] = r.String()
	}
	return out, nil
}

// readReply copies one RESP2 reply from rd to w.
func readReply(rd *bufio.Reader, w *bytes.Buffer) error {
	line, err := rd.ReadString('\n')
	if err != nil {
		return err
	}
	w.WriteString(line)
	if len(line) < 3 {
		return fmt.Errorf("short line %q", line)
	}
	switch line[0] {
	case '+', '-', ':':
		return nil
	case '$':
		n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
		if err != nil || n < 0 {
			return err
		}
		_, err = io.CopyN(w, rd, int64(n)+2)
		return err
	case '*':
		n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
		if err != nil {
			return err
		}
		for range n {
			if err := readReply(rd, w); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unexpected reply %q", line)
}

// randomPipeline returns a pipeline of 1..40 commands over five keys named
// prefix+"k0".."k4": batchable ones (SET k v, GET k, DEL k, UNLINK k, in any
// case) often in runs, and others (INCR, SET with options, multi-key DEL, MGET,
// unknown commands, arity errors) between them.
func randomPipeline(rng *rand.Rand, prefix string) [][]string {
	key := func() string { return prefix + "k" + strconv.Itoa(rng.IntN(5)) }
	vals := []string{"v", "1", "41", "x y", "", strings.Repeat("z", 300)}
	n := 1 + rng.IntN(40)
	cmds := make([][]string, 0, n)
	for range n {
		var cmd []string
		switch r := rng.IntN(20); {
		case r < 5:
			cmd = []string{"SET", key(), vals[rng.IntN(len(vals))]}
		case r < 9:
			cmd = []string{"GET", key()}
		case r < 11:
			cmd = []string{"DEL", key()}
		case r == 11:
			cmd = []string{"unlink", key()}
		case r == 12:
			cmd = []string{"set", key(), "3"}
		case r == 13:
			cmd = []string{"INCR", key()}
		case r == 14:
			cmd = []string{"MGET", key(), key(), key(), prefix + "missing"}
		case r == 15:
			cmd = []string{"SET", key(), "7", "EX", "1000"}
		case r == 16:
			cmd = []string{"DEL", key(), key()}
		case r == 17:
			cmd = []string{"NOSUCH", "x"} // (its error quotes its arguments)
		case r == 18:
			cmd = []string{"GET"}
		default:
			cmd = []string{"SET", key(), "5", "GET"}
		}
		cmds = append(cmds, cmd)
	}
	return cmds
}

// TestPipelineBatchesReplyAsAlone: random pipelines of SET/GET/DEL/INCR/MGET
// and unknown commands get the same reply bytes from a node that batches
// (n2) as from one that runs every command alone (n1, NoBatch), each over its
// own keys of the same 3-node cluster (N=3: every node coordinates every key).
//
// n2 runs its connections on event loops (each batch handed off), n3 on
// goroutines (serveBatches): both drivers batch.
func TestPipelineBatchesReplyAsAlone(t *testing.T) {
	nodes := startTestClusterWith(t, 3, func(i int, c *Config) {
		c.NoBatch = i == 0
		if i == 2 {
			c.IOModel = "goroutine"
		}
	})
	alone := dialRESP(t, nodes[0].RESPAddr())
	batched := []*respConn{dialRESP(t, nodes[1].RESPAddr()), dialRESP(t, nodes[2].RESPAddr())}
	for seed := range uint64(40) {
		// The same pipeline (same random draws) over each node's own keys.
		want := alone.pipeline(t, randomPipeline(rand.New(rand.NewPCG(seed, 1)), fmt.Sprintf("a%d:", seed)))
		for j, c := range batched {
			cmds := randomPipeline(rand.New(rand.NewPCG(seed, 1)), fmt.Sprintf("%c%d:", 'b'+j, seed))
			got := c.pipeline(t, cmds)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("seed %d, n%d: command %d %.60q: batched %.60q, alone %.60q\npipeline %.60q", seed, j+2, i, cmds[i], got[i], want[i], cmds)
				}
			}
		}
	}
	// The counters moved as they did alone: commands, errors, hits.
	want := counters(t, alone)
	if !strings.Contains(want, "cmdstat_set calls=") || !strings.Contains(want, "keyspace_misses:") {
		t.Fatalf("counters missing from INFO:\n%s", want)
	}
	for j, c := range batched {
		if got := counters(t, c); got != want {
			t.Fatalf("n%d's counters:\n%s\nalone:\n%s", j+2, got, want)
		}
	}
}

// counters returns INFO's per-command calls and failures, error replies and
// keyspace hits and misses, without the times.
func counters(t *testing.T, c *respConn) string {
	info := c.pipeline(t, [][]string{{"INFO", "everything"}})[0]
	var out []string
	for _, line := range strings.Split(info, "\r\n") {
		k, v, _ := strings.Cut(line, ":")
		switch {
		case strings.HasPrefix(k, "cmdstat_"):
			f := strings.Split(v, ",")
			out = append(out, k+" "+f[0]+" "+f[3]+" "+f[4]) // calls, rejected, failed
		case k == "total_commands_processed", k == "total_error_replies", k == "keyspace_hits",
			k == "keyspace_misses", strings.HasPrefix(k, "errorstat_"):
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// TestPipelineBatchKeyWithoutQuorum: in a batched run, the SET of a key whose
// write quorum cannot be met (N=2, W=2, no sloppy quorum, its other replica
// down) answers the error a lone SET of it answers, and the run's other
// commands answer as if it were not there.
func TestPipelineBatchKeyWithoutQuorum(t *testing.T) {
	nodes := startTestClusterWith(t, 3, func(i int, c *Config) {
		c.N, c.R, c.W = 2, 1, 2
		c.DisableHintedHandoff = true
	})
	n1 := nodes[0]
	keyOn := func(other string) string { // a key whose replicas are n1 and other
		for i := range 10000 {
			k := "q" + strconv.Itoa(i)
			if reps := n1.replicas([]byte(k)); len(reps) == 2 && slices.Contains(reps, "n1") && slices.Contains(reps, other) {
				return k
			}
		}
		t.Fatalf("no key on n1 and %s", other)
		return ""
	}
	a, b := keyOn("n2"), keyOn("n3")
	nodes[2].Close()
	c := dialRESP(t, n1.RESPAddr())
	lone := c.pipeline(t, [][]string{{"SET", b, "0"}})[0]
	if !strings.HasPrefix(lone, "-") {
		t.Fatalf("a lone SET of %s (replicas n1, n3; n3 down) answered %q", b, lone)
	}
	got := c.pipeline(t, [][]string{{"SET", a, "1"}, {"SET", b, "1"}, {"SET", a, "2"}, {"GET", a}, {"DEL", a}, {"GET", a}})
	want := []string{"+OK\r\n", lone, "+OK\r\n", "$1\r\n2\r\n", ":1\r\n", "$-1\r\n"}
	if !slices.Equal(got, want) {
		t.Fatalf("replies %q, want %q", got, want)
	}
}

// TestPipelineBatchStopsAtAuthAndQuit: a batching node answers NOAUTH to the
// SETs and GETs sent before AUTH (none of them runs), batches those after it,
// and runs nothing sent after QUIT in the same pipeline.
func TestPipelineBatchStopsAtAuthAndQuit(t *testing.T) {
	nodes := startTestClusterWith(t, 3, func(i int, c *Config) { c.RequirePass = "pw" })
	c := dialRESP(t, nodes[0].RESPAddr())
	cmds := [][]string{
		{"SET", "qc", "0"}, {"SET", "qd", "0"}, {"GET", "qa"}, {"AUTH", "bad"}, {"SET", "qc", "0"}, {"GET", "qa"},
		{"AUTH", "pw"}, {"SET", "qa", "1"}, {"SET", "qb", "1"}, {"GET", "qa"}, {"QUIT"},
	}
	var b []byte
	for _, cmd := range append(cmds, []string{"SET", "qe", "2"}, []string{"SET", "qf", "2"}) {
		b = encode(b, cmd...)
	}
	_ = c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		var r bytes.Buffer
		if err := readReply(c.rd, &r); err != nil {
			break // closed after QUIT's reply
		}
		got = append(got, r.String())
	}
	noauth := "-NOAUTH Authentication required.\r\n"
	want := []string{noauth, noauth, noauth, "", noauth, noauth, "+OK\r\n", "+OK\r\n", "+OK\r\n", "$1\r\n1\r\n", "+OK\r\n"}
	if len(got) == len(want) && strings.HasPrefix(got[3], "-WRONGPASS") {
		want[3] = got[3]
	}
	if !slices.Equal(got, want) {
		t.Fatalf("replies %q, want %q", got, want)
	}
	d := dialRESP(t, nodes[0].RESPAddr())
	got = d.pipeline(t, [][]string{{"AUTH", "pw"}, {"MGET", "qa", "qb", "qc", "qd", "qe", "qf"}})
	if want := []string{"+OK\r\n", "*6\r\n$1\r\n1\r\n$1\r\n1\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n"}; !slices.Equal(got, want) {
		t.Fatalf("afterwards: %q, want %q", got, want)
	}
}

// TestMGetBatchedAsAlone: an MGET of many large values, past the output buffer
// limit (so its reply is written in parts: resp's spill), of keys this node
// coordinates (batched) and keys it forwards (N=2 of 3 nodes: read alone),
// answers the same bytes on a batching node as on a NoBatch one.
func TestMGetBatchedAsAlone(t *testing.T) {
	nodes := startTestClusterWith(t, 3, func(i int, c *Config) {
		c.N = 2
		c.NoBatch = i == 1
		c.ClientOutputBufferLimit = 64 << 10
	})
	batched, alone := dialRESP(t, nodes[0].RESPAddr()), dialRESP(t, nodes[1].RESPAddr())
	mget := []string{"MGET"}
	var set [][]string
	owned, forwarded := 0, 0
	for i := range 150 {
		k := "m" + strconv.Itoa(i)
		mget = append(mget, k)
		if i%7 == 3 {
			continue // missing
		}
		if slices.Contains(nodes[0].replicas([]byte(k)), "n1") {
			owned++
		} else {
			forwarded++
		}
		set = append(set, []string{"SET", k, strings.Repeat(strconv.Itoa(i), 5000)})
	}
	if owned == 0 || forwarded == 0 {
		t.Fatalf("%d keys on n1, %d forwarded: want both", owned, forwarded)
	}
	for _, r := range alone.pipeline(t, set) {
		if r != "+OK\r\n" {
			t.Fatalf("SET: %q", r)
		}
	}
	want := alone.pipeline(t, [][]string{mget, {"GET", "m1"}})
	got := batched.pipeline(t, [][]string{mget, {"GET", "m1"}})
	if len(want[0]) < 1<<20 || !slices.Equal(got, want) {
		t.Fatalf("MGET: batched %d bytes %.80q, alone %d bytes %.80q", len(got[0]), got[0], len(want[0]), want[0])
	}
}

// BenchmarkClusterPipeline: P16 pipelines of SETs (and GETs) of 100-byte
// values over 16 connections to a node of an in-process 3-node cluster (N=3,
// R=2, W=2, memory storage), batched (n2) and every command alone (n1,
// NoBatch); b.N counts commands. Figures on a quiet machine only:
//
//	go test -run '^$' -bench ClusterPipeline -benchtime 20000x ./node
func BenchmarkClusterPipeline(b *testing.B) {
	nodes := startTestClusterWith(b, 3, func(i int, c *Config) { c.NoBatch = i == 0 })
	val := strings.Repeat("v", 100)
	for _, cmd := range []string{"SET", "GET"} {
		for _, mode := range []struct {
			name string
			node *Node
		}{{"alone", nodes[0]}, {"batched", nodes[1]}} {
			b.Run(cmd+"/"+mode.name, func(b *testing.B) {
				var next atomic.Int64
				b.SetParallelism(8) // 16 connections on 2 cores
				b.RunParallel(func(pb *testing.PB) {
					nc, err := net.Dial("tcp", mode.node.RESPAddr())
					if err != nil {
						b.Error(err)
						return
					}
					defer nc.Close()
					c := &respConn{nc: nc, rd: bufio.NewReader(nc)}
					send := func(p [][]string) bool {
						_, err := c.send(p)
						if err != nil {
							b.Error(err)
						}
						return err == nil
					}
					p := make([][]string, 0, 16)
					for pb.Next() {
						k := "bench:" + strconv.FormatInt(next.Add(1)%100000, 10)
						if cmd == "SET" {
							p = append(p, []string{"SET", k, val})
						} else {
							p = append(p, []string{"GET", k})
						}
						if len(p) == cap(p) {
							if !send(p) {
								return
							}
							p = p[:0]
						}
					}
					if len(p) > 0 {
						send(p)
					}
				})
			})
		}
	}
}
