package memcache

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestHugeClaimRefusedUnread: a set claiming 2 GiB is refused by the value limit
// before a byte of its block is read or allocated; the block is swallowed as it
// streams in, and other clients are served meanwhile.
func TestHugeClaimRefusedUnread(t *testing.T) {
	ts := startServer(t, serverOptions{})
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	c := dialRaw(t, ts.addr)
	c.roundTrip("set k 0 0 2147483000\r\n", "SERVER_ERROR object too large for cache")
	c2 := dialRaw(t, ts.addr)
	c2.roundTrip("version\r\n", "VERSION dynakv")

	// Stream 8 MiB of the claimed block: the server discards it without buffering.
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	for range 128 {
		c.send(string(chunk))
	}
	c2.roundTrip("set other 0 0 1\r\nv\r\n", "STORED")

	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Fatalf("server allocated %d MiB for a claim", grew>>20)
	}
	if got := stat(t, ts.addr, "store_too_large"); got != "1" {
		t.Fatalf("store_too_large = %s", got)
	}
}

// TestOversizedBlockSwallowed: an over-limit block is swallowed whole and the old
// value deleted (memcached unlinks it); the next command is read after the block.
func TestOversizedBlockSwallowed(t *testing.T) {
	ts := startServer(t, serverOptions{maxValueBytes: 1024})
	c := dialRaw(t, ts.addr)
	c.roundTrip("set k 0 0 1\r\nv\r\n", "STORED")
	block := strings.Repeat("a", 2000)
	c.roundTrip("set k 0 0 2000\r\n"+block+"\r\nget k\r\n",
		"SERVER_ERROR object too large for cache", "END")
	// noreply hides the error; the block is still swallowed.
	c.roundTrip("set k 0 0 2000 noreply\r\n"+block+"\r\nversion\r\n", "VERSION dynakv")
	// A meta set swallows too, and its error is never hidden.
	c.roundTrip("ms k 2000 q\r\n"+block+"\r\nmn\r\n", "SERVER_ERROR object too large for cache", "MN")
	// Exactly at the limit is fine.
	c.roundTrip("set k 0 0 1024\r\n"+strings.Repeat("b", 1024)+"\r\n", "STORED")
	// Appending past the limit is refused by the proxy.
	c.roundTrip("append k 0 0 1\r\nc\r\n", "SERVER_ERROR object too large for cache")
}

// TestLineTooLong: a line that grows past 2048 bytes without "\n" gets "CLIENT_ERROR
// line too long" and the connection is closed; a multi-get may be longer.
func TestLineTooLong(t *testing.T) {
	ts := startServer(t, serverOptions{})
	c := dialRaw(t, ts.addr)
	c.send(strings.Repeat("a", 3000))
	if got := c.expectClosed(); got != "CLIENT_ERROR line too long\r\n" {
		t.Fatalf("got %q", got)
	}

	// A client that never sends "\n" and keeps writing is cut off too.
	c = dialRaw(t, ts.addr)
	done := make(chan struct{})
	go func() {
		defer close(done)
		chunk := []byte(strings.Repeat("z", 1024))
		for range 1 << 14 { // at most 16 MiB
			c.c.SetWriteDeadline(time.Now().Add(ioTimeout))
			if _, err := c.c.Write(chunk); err != nil {
				return
			}
		}
	}()
	if got := c.expectClosed(); got != "CLIENT_ERROR line too long\r\n" {
		t.Fatalf("got %q", got)
	}
	<-done

	// 2 KiB of spaces then "\r\n" is a line without a command: ERROR.
	c = dialRaw(t, ts.addr)
	c.roundTrip(strings.Repeat(" ", 2048)+"\r\n", "ERROR")
	// Without the "\n", more than 100 leading spaces cannot be a multi-get.
	c.send(strings.Repeat(" ", 2100))
	if got := c.expectClosed(); got != "CLIENT_ERROR line too long\r\n" {
		t.Fatalf("got %q", got)
	}

	// A long multi-get is fine: 6000 keys, about 60 KiB, sent in pieces.
	ts2 := startServer(t, serverOptions{})
	c = dialRaw(t, ts2.addr)
	c.roundTrip("set key5999 0 0 1\r\nv\r\n", "STORED")
	var line strings.Builder
	line.WriteString("get")
	for i := range 6000 {
		fmt.Fprintf(&line, " key%d", i)
	}
	s := line.String()
	for len(s) > 0 {
		n := min(len(s), 3000)
		c.send(s[:n])
		s = s[n:]
	}
	c.roundTrip("\r\n", "VALUE key5999 0 1", "v", "END")

	// Other clients were served throughout.
	dialRaw(t, ts.addr).roundTrip("version\r\n", "VERSION dynakv")
}

// TestGarbage feeds random bytes to many connections: the server answers or hangs
// up, never crashes, and serves a well-behaved client afterwards.
func TestGarbage(t *testing.T) {
	ts := startServer(t, serverOptions{maxValueBytes: 4096})
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 50 {
		c := dialRaw(t, ts.addr)
		buf := make([]byte, 1+rng.IntN(8192))
		for j := range buf {
			switch rng.IntN(10) {
			case 0:
				buf[j] = '\n'
			case 1:
				buf[j] = ' '
			default:
				buf[j] = byte(rng.UintN(256))
			}
		}
		if i%2 == 0 {
			// Start like a real command now and then.
			copy(buf, []string{"set k 0 0 10\r\n", "get ", "mg k v ", "ms k 5 ", "gat 1 ", "incr k "}[i%6])
		}
		c.send(string(buf))
		c.c.Close()
	}
	good := dialRaw(t, ts.addr)
	good.roundTrip("set ok 0 0 2\r\nhi\r\nget ok\r\n", "STORED", "VALUE ok 0 2", "hi", "END")
	waitFor(t, "garbage connections to close", func() bool { return ts.Clients() == 1 })
}

// TestPipelining sends 10,000 requests in one stream and reads 10,000 replies in
// order.
func TestPipelining(t *testing.T) {
	ts := startServer(t, serverOptions{})
	c := dialRaw(t, ts.addr)
	const n = 10000
	errc := make(chan error, 1)
	go func() {
		w := bufio.NewWriterSize(c.c, 64<<10)
		for i := range n {
			if i%2 == 0 {
				fmt.Fprintf(w, "set k%d 0 0 %d\r\n%d\r\n", i, len(fmt.Sprint(i)), i)
			} else {
				fmt.Fprintf(w, "get k%d\r\n", i-1)
			}
		}
		errc <- w.Flush()
	}()
	for i := range n {
		if i%2 == 0 {
			c.expect("STORED")
		} else {
			c.expect(fmt.Sprintf("VALUE k%d 0 %d", i-1, len(fmt.Sprint(i-1))), fmt.Sprint(i-1), "END")
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if got := stat(t, ts.addr, "cmd_get"); got != fmt.Sprint(n/2) {
		t.Fatalf("cmd_get = %s", got)
	}
}

// TestManyClients: concurrent clients each see their own consistent conversation.
func TestManyClients(t *testing.T) {
	ts := startServer(t, serverOptions{realClock: true})
	const clients, ops = 20, 200
	errc := make(chan error, clients)
	for i := range clients {
		go func() { errc <- client(ts.addr, i, ops) }()
	}
	for range clients {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

// client runs one TestManyClients conversation.
func client(addr string, i, ops int) error {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(ioTimeout))
	r := bufio.NewReader(nc)
	expect := func(want string) error {
		l, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if want != "" && l != want {
			return fmt.Errorf("client %d: got %q, want %q", i, l, want)
		}
		return nil
	}
	for j := range ops {
		v := fmt.Sprintf("%d-%d", i, j)
		if _, err := fmt.Fprintf(nc, "set c%d 0 0 %d\r\n%s\r\nincr ctr 1\r\nget c%d\r\n", i, len(v), v, i); err != nil {
			return err
		}
		for _, want := range []string{"STORED\r\n", "", fmt.Sprintf("VALUE c%d 0 %d\r\n", i, len(v)), v + "\r\n", "END\r\n"} {
			if err := expect(want); err != nil {
				return err
			}
		}
	}
	return nil
}

// TestMaxClients: beyond MaxClients a connection gets memcached's error and is
// closed; a slot frees when a client leaves.
func TestMaxClients(t *testing.T) {
	ts := startServer(t, serverOptions{cfg: Config{MaxClients: 2}})
	a := dialRaw(t, ts.addr)
	a.roundTrip("version\r\n", "VERSION dynakv")
	b := dialRaw(t, ts.addr)
	b.roundTrip("version\r\n", "VERSION dynakv")
	c := dialRaw(t, ts.addr)
	if got := c.expectClosed(); got != "ERROR Too many open connections\r\n" {
		t.Fatalf("got %q", got)
	}
	a.c.Close()
	waitFor(t, "a slot", func() bool { return ts.Clients() == 1 })
	dialRaw(t, ts.addr).roundTrip("version\r\n", "VERSION dynakv")
	if got := ts.stats.rejectedConns.Load(); got != 1 {
		t.Fatalf("rejected_connections = %d", got)
	}
}

// TestBlockReadError: a client that leaves in the middle of a data block does not
// store a partial value.
func TestBlockReadError(t *testing.T) {
	ts := startServer(t, serverOptions{})
	c := dialRaw(t, ts.addr)
	c.send("set k 0 0 100000\r\n" + strings.Repeat("x", 70000))
	c.c.Close()
	waitFor(t, "the client to go", func() bool { return ts.Clients() == 0 })
	dialRaw(t, ts.addr).roundTrip("get k\r\n", "END")
}

// TestLargeValue: a value near the limit makes the round trip intact.
func TestLargeValue(t *testing.T) {
	ts := startServer(t, serverOptions{})
	c := dialRaw(t, ts.addr)
	v := make([]byte, ts.px.MaxValueBytes())
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range v {
		v[i] = byte(rng.UintN(256))
	}
	c.roundTrip(fmt.Sprintf("set big 0 0 %d\r\n%s\r\n", len(v), v), "STORED")
	c.send("get big\r\n")
	c.expect(fmt.Sprintf("VALUE big 0 %d", len(v)))
	got := make([]byte, len(v)+2)
	if _, err := io.ReadFull(c.r, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:len(v)], v) || string(got[len(v):]) != "\r\n" {
		t.Fatal("large value changed")
	}
	c.expect("END")
}

// TestFlushBeforeWaiting: replies to complete commands are sent even when the batch
// ends inside the next command line or data block.
func TestFlushBeforeWaiting(t *testing.T) {
	ts := startServer(t, serverOptions{})
	c := dialRaw(t, ts.addr)
	c.roundTrip("version\r\nget a\r\nver", "VERSION dynakv", "END")
	c.roundTrip("sion\r\nset k 0 0 5\r\nhe", "VERSION dynakv")
	c.roundTrip("llo\r\nget k\r\nmg k v\r\nmn\r\nset", "STORED", "VALUE k 0 5", "hello", "END", "VA 5", "hello", "MN")
}
