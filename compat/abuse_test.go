package compat

import (
	"bufio"
	"bytes"
	crand "crypto/rand"
	bin "encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Abuse tests (issue 6, item 4): real processes, hostile clients. Each checks that
// the hostile client gets the documented answer, that other clients keep being
// served, and, where memory is at stake, the node's RSS.

// rssBytes returns the resident set size of the node's process.
func (p *proc) rssBytes(t *testing.T) int64 { return p.procStatus(t, "VmRSS") }

// procStatus returns a size field of the node's /proc/PID/status (VmRSS, VmHWM)
// in bytes.
func (p *proc) procStatus(t *testing.T, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.p.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + field + `:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no %s in /proc/%d/status", field, p.p.Pid())
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// metric returns the value of a counter or gauge (name with its labels) from p's
// /metrics; 0 when it is not there (a labelled one appears with its first use).
func (p *proc) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.HTTP + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return f
		}
	}
	return 0
}

// eventually polls cond every 50ms until it holds, or fails after within.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// flood opens n connections to addr and returns, for each, the first line the
// server sent within a second ("" when it sent nothing: the connection was
// accepted, or its refusal is late), with the connections still open.
func flood(t *testing.T, addr string, n int) ([]net.Conn, []string) {
	t.Helper()
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	lines := make([]string, n)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			l, _ := bufio.NewReader(c).ReadString('\n')
			lines[i] = l
			_ = c.SetReadDeadline(time.Time{})
		})
	}
	wg.Wait()
	return conns, lines
}

// TestAbuseConnectionFlood: 200 connections against --max-clients 50 on both
// protocols. Those past the limit get the server's error line (Redis's and
// memcached 1.6's) and are closed; the clients already connected, and the accepted
// part of the flood, keep working; once the flood leaves, new clients get in.
func TestAbuseConnectionFlood(t *testing.T) {
	p := startNode(t, "--max-clients", "50", "--storage", "memory")
	for _, proto := range []struct {
		name, addr, ping, pong, refused string
	}{
		{"resp", p.RESP, "PING\r\n", "+PONG\r\n", "-ERR max number of clients reached\r\n"},
		{"memcache", p.Memcache, "version\r\n", "VERSION ", "ERROR Too many open connections\r\n"},
	} {
		t.Run(proto.name, func(t *testing.T) {
			old := dialRaw(t, proto.addr)
			old.send(proto.ping)
			if got := old.line(); !strings.HasPrefix(got, proto.pong) {
				t.Fatalf("existing client: %q", got)
			}
			conns, lines := flood(t, proto.addr, 200)
			refused := 0
			for i, l := range lines {
				switch l {
				case proto.refused:
					refused++
					if !(&rawConn{t: t, c: conns[i], r: bufio.NewReader(conns[i])}).closed() {
						t.Fatalf("refused connection %d left open", i)
					}
				case "":
					// Accepted (or refused after the read above gave up: then
					// the refusal is what comes).
					r := &rawConn{t: t, c: conns[i], r: bufio.NewReader(conns[i])}
					_ = r.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
					_, _ = io.WriteString(r.c, proto.ping)
					switch got := r.line(); {
					case got == proto.refused:
						refused++
					case !strings.HasPrefix(got, proto.pong):
						t.Fatalf("accepted connection %d: %q", i, got)
					}
				default:
					t.Fatalf("connection %d got %q", i, l)
				}
			}
			if refused != 151 {
				t.Fatalf("%d connections refused, want 151 (200 + 1 against 50)", refused)
			}
			old.send(proto.ping)
			if got := old.line(); !strings.HasPrefix(got, proto.pong) {
				t.Fatalf("existing client after the flood: %q", got)
			}
			for _, c := range conns {
				c.Close()
			}
			eventually(t, 10*time.Second, "a new client to get in after the flood", func() bool {
				c, err := net.DialTimeout("tcp", proto.addr, time.Second)
				if err != nil {
					return false
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(2 * time.Second))
				if _, err := io.WriteString(c, proto.ping); err != nil {
					return false
				}
				l, _ := bufio.NewReader(c).ReadString('\n')
				return strings.HasPrefix(l, proto.pong)
			})
			old.c.Close()
		})
	}
}

// TestAbuseSlowClient: a client pipelines reads of a 256 KiB value (1000 of
// them: 256 MiB of replies), or sends one MGET of it 1000 times (one 256 MiB
// reply), and never reads. The node writes at most --client-output-buffer-limit
// ahead, so its RSS barely moves, drops the client after --client-write-timeout,
// and serves others meanwhile. Both protocols.
func TestAbuseSlowClient(t *testing.T) {
	p := startNode(t, "--storage", "memory", "--client-write-timeout", "2s")
	good := newRedis(p.RESP, 2)
	defer good.Close()
	big := strings.Repeat("x", 256<<10)
	if err := good.Set(ctx(t), "big", big, 0).Err(); err != nil {
		t.Fatal(err)
	}
	clients := func(proto string) int {
		s, err := good.Info(ctx(t), "clients").Result()
		if err != nil {
			t.Fatal(err)
		}
		if proto == "resp" {
			m := regexp.MustCompile(`connected_clients:(\d+)`).FindStringSubmatch(s)
			n, _ := strconv.Atoi(m[1])
			return n
		}
		return int(p.metric(t, `dynakv_connections{protocol="memcache"}`))
	}
	mget := "MGET" + strings.Repeat(" big", 1000) + "\r\n"
	for _, proto := range []struct{ name, kind, addr, get string }{
		{"resp", "resp", p.RESP, "GET big\r\n"},
		{"resp-one-mget", "resp", p.RESP, mget},
		{"memcache", "memcache", p.Memcache, "get big\r\n"},
	} {
		t.Run(proto.name, func(t *testing.T) {
			before := clients(proto.kind)
			base := p.rssBytes(t)
			slow, err := net.Dial("tcp", proto.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer slow.Close()
			if tc, ok := slow.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(64 << 10) // keep the kernel's share small
			}
			send := proto.get
			if send != mget {
				send = strings.Repeat(send, 1000)
			}
			if _, err := io.WriteString(slow, send); err != nil {
				t.Fatal(err)
			}
			peak := base
			start := time.Now()
			eventually(t, 20*time.Second, "the node to drop the client that does not read", func() bool {
				peak = max(peak, p.rssBytes(t))
				if err := good.Ping(ctx(t)).Err(); err != nil {
					t.Fatalf("another client while one does not read: %v", err)
				}
				return time.Since(start) > 500*time.Millisecond && clients(proto.kind) <= before
			})
			t.Logf("%s: dropped after %v; RSS %d MiB before, peak %d MiB", proto.name,
				time.Since(start).Round(100*time.Millisecond), base>>20, peak>>20)
			if grew := peak - base; grew > 64<<20 {
				t.Fatalf("RSS grew by %d MiB for one client that does not read (256 MiB of replies pending)", grew>>20)
			}
		})
	}
}

// TestAbusePipeline100k: 100,000 pipelined commands on one connection (SET and
// GET alternating, written while the replies are read) get 100,000 correct replies
// in order, on both protocols.
func TestAbusePipeline100k(t *testing.T) {
	p := startNode(t, "--storage", "memory")
	const pairs = 50_000
	t.Run("resp", func(t *testing.T) {
		pipeline(t, p.RESP, func(w *bufio.Writer, i int) {
			k, v := "p:"+strconv.Itoa(i), "v"+strconv.Itoa(i)
			fmt.Fprintf(w, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n",
				len(k), k, len(v), v, len(k), k)
		}, func(r *bufio.Reader, i int) error {
			v := "v" + strconv.Itoa(i)
			return expectLines(r, "+OK", "$"+strconv.Itoa(len(v)), v)
		}, pairs)
	})
	t.Run("memcache", func(t *testing.T) {
		pipeline(t, p.Memcache, func(w *bufio.Writer, i int) {
			k, v := "m:"+strconv.Itoa(i), "v"+strconv.Itoa(i)
			fmt.Fprintf(w, "set %s 0 0 %d\r\n%s\r\nget %s\r\n", k, len(v), v, k)
		}, func(r *bufio.Reader, i int) error {
			k, v := "m:"+strconv.Itoa(i), "v"+strconv.Itoa(i)
			return expectLines(r, "STORED", fmt.Sprintf("VALUE %s 0 %d", k, len(v)), v, "END")
		}, pairs)
	})
}

// pipeline writes n request pairs on one connection while it checks their
// replies, and fails on the first wrong one.
func pipeline(t *testing.T, addr string, write func(*bufio.Writer, int), check func(*bufio.Reader, int) error, n int) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	start := time.Now()
	werr := make(chan error, 1)
	go func() {
		w := bufio.NewWriterSize(c, 64<<10)
		for i := range n {
			write(w, i)
		}
		werr <- w.Flush()
	}()
	r := bufio.NewReaderSize(c, 64<<10)
	for i := range n {
		if err := check(r, i); err != nil {
			t.Fatalf("reply to request pair %d: %v", i, err)
		}
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d commands pipelined on one connection in %v", 2*n, time.Since(start).Round(time.Millisecond))
}

// expectLines reads one line per want and compares it (without "\r\n").
func expectLines(r *bufio.Reader, want ...string) error {
	for _, w := range want {
		l, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if l != w+"\r\n" {
			return fmt.Errorf("got %q, want %q", l, w+"\r\n")
		}
	}
	return nil
}

// TestAbuseValueLimits: values at --max-value-bytes are stored, one byte more is
// refused with Redis's and memcached's errors, and the connection stays usable.
func TestAbuseValueLimits(t *testing.T) {
	p := startNode(t, "--storage", "memory", "--max-value-bytes", "4096")
	at, over := strings.Repeat("a", 4096), strings.Repeat("b", 4097)
	t.Run("resp", func(t *testing.T) {
		c := newRedis(p.RESP, 2)
		defer c.Close()
		if err := c.Set(ctx(t), "k", at, 0).Err(); err != nil {
			t.Fatalf("SET at the limit: %v", err)
		}
		const tooBig = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
		if err := c.Set(ctx(t), "k", over, 0).Err(); err == nil || err.Error() != tooBig {
			t.Fatalf("SET over the limit: %v, want %q", err, tooBig)
		}
		if err := c.Append(ctx(t), "k", "!").Err(); err == nil || err.Error() != tooBig {
			t.Fatalf("APPEND past the limit: %v, want %q", err, tooBig)
		}
		if v, err := c.Get(ctx(t), "k").Result(); err != nil || v != at {
			t.Fatalf("GET after the refusals: %d bytes, %v", len(v), err)
		}
		// The same connection: a raw one, to see that nothing closed it.
		r := dialRaw(t, p.RESP)
		r.send(fmt.Sprintf("*3\r\n$3\r\nSET\r\n$1\r\nr\r\n$%d\r\n%s\r\nPING\r\n", len(over), over))
		if got := r.line(); got != "-"+tooBig+"\r\n" {
			t.Fatalf("raw SET over the limit: %q", got)
		}
		if got := r.line(); got != "+PONG\r\n" {
			t.Fatalf("same connection after the refusal: %q", got)
		}
	})
	t.Run("memcache", func(t *testing.T) {
		r := dialRaw(t, p.Memcache)
		r.send("set m 0 0 4096\r\n" + at + "\r\n")
		if got := r.line(); got != "STORED\r\n" {
			t.Fatalf("set at the limit: %q", got)
		}
		r.send("set m 0 0 4097\r\n" + over + "\r\n")
		if got := r.line(); got != "SERVER_ERROR object too large for cache\r\n" {
			t.Fatalf("set over the limit: %q", got)
		}
		// memcached drops the old value of a set that was too large.
		r.send("get m\r\nversion\r\n")
		if got := r.line(); got != "END\r\n" {
			t.Fatalf("get after the refused set: %q", got)
		}
		if got := r.line(); !strings.HasPrefix(got, "VERSION ") {
			t.Fatalf("same connection after the refusal: %q", got)
		}
	})
}

// TestAbuseMaliciousClusterPeer: connections to the cluster port that do not
// prove the secret (random bytes, a well-formed request frame without the
// handshake, a 2 GiB length prefix, silence) are refused and closed, each
// counted; the node keeps serving and its memory does not follow what the bytes
// claim.
func TestAbuseMaliciousClusterPeer(t *testing.T) {
	clusterAddr := freeAddr(t)
	p := startNode(t, "--storage", "memory", "--secret", "s3cret", "--cluster", clusterAddr)
	c := newRedis(p.RESP, 2)
	defer c.Close()
	base := p.rssBytes(t)
	random := make([]byte, 256<<10)
	_, _ = crand.Read(random)
	// A request frame as the transport writes it: length, kind 1, id 1, typ 16
	// (a forwarded op), timeout 1000ms, payload.
	body := append([]byte{1, 1, 16}, bin.AppendUvarint(nil, 1000)...)
	body = append(body, "SET k v"...)
	frame := bin.BigEndian.AppendUint32(nil, uint32(len(body)))
	frame = append(frame, body...)
	huge := bin.BigEndian.AppendUint32(nil, 0x7fffffff)
	huge = append(huge, bytes.Repeat([]byte{1}, 64)...)
	cases := []struct {
		name string
		send []byte
	}{
		{"random bytes", random},
		{"frame without handshake", frame},
		{"huge length prefix", huge},
		{"silence", nil},
	}
	refusedBefore := p.metric(t, "dynakv_transport_refused_handshakes_total")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", clusterAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			go func() { _, _ = conn.Write(tc.send) }() // the server may close before reading it all
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := io.ReadAll(conn)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the node kept the connection open for 10s (read %d bytes)", len(got))
			}
			// All the node ever sends is its handshake hello (and maybe a refusal).
			if len(got) > 0 && !bytes.HasPrefix(got, []byte("DKVC")) {
				t.Fatalf("node sent %q", got)
			}
			if len(got) > 4+1+32+1 {
				t.Fatalf("node sent %d bytes to an unauthenticated peer", len(got))
			}
			if err := c.Set(ctx(t), "still", tc.name, 0).Err(); err != nil {
				t.Fatalf("RESP after %s: %v", tc.name, err)
			}
		})
	}
	eventually(t, 5*time.Second, "every refusal to be counted", func() bool {
		return p.metric(t, "dynakv_transport_refused_handshakes_total")-refusedBefore == float64(len(cases))
	})
	if grew := p.rssBytes(t) - base; grew > 32<<20 {
		t.Fatalf("RSS grew by %d MiB after hostile cluster connections", grew>>20)
	}
	if v, err := c.Get(ctx(t), "still").Result(); err != nil || v != "silence" {
		t.Fatalf("GET = %q, %v", v, err)
	}
}
