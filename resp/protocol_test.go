package resp

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestProtocolErrors sends malformed requests and checks Redis 7.2's reply, that
// the connection is then closed, and that the server keeps serving others.
func TestProtocolErrors(t *testing.T) {
	ts := startServer(t)
	cases := []struct {
		name, send, want string
	}{
		{"mbulk not a number", "*abc\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"mbulk plus sign", "*+1\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"mbulk leading zero", "*01\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"mbulk empty", "*\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"mbulk over INT_MAX", "*2147483648\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"mbulk 2^31-1", "*2147483647\r\n", "-ERR Protocol error: invalid multibulk length\r\n"}, // Redis 7.2 waits; see maxMultibulk
		{"mbulk over 1M", "*1048577\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"mbulk int64 overflow", "*99999999999999999999\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"bulk negative", "*1\r\n$-1\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"bulk not a number", "*1\r\n$x\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"bulk empty", "*1\r\n$\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"bulk 2^31", "*1\r\n$2147483648\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"bulk 2^31-1", "*1\r\n$2147483647\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"bulk over proto-max-bulk-len", "*1\r\n$536870913\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"bulk int64 max", "*1\r\n$9223372036854775807\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"expected $", "*1\r\nPING\r\n", "-ERR Protocol error: expected '$', got 'P'\r\n"},
		{"expected $ got CR", "*2\r\n$4\r\nECHO\r\n\r\n", "-ERR Protocol error: expected '$', got ' '\r\n"},
		{"expected $ got a high byte", "*1\r\n\xff\r\n", "-ERR Protocol error: expected '$', got '\xff'\r\n"},
		{"unbalanced double quote", "SET a \"b\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
		{"unbalanced single quote", "SET a 'b\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
		{"closing quote not followed by space", "SET a \"b\"c\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
		{"too big inline", strings.Repeat("A", 64*1024+1), "-ERR Protocol error: too big inline request\r\n"},
		{"too big mbulk count", "*" + strings.Repeat("1", 64*1024+1), "-ERR Protocol error: too big mbulk count string\r\n"},
		{"too big bulk count", "*1\r\n$" + strings.Repeat("1", 64*1024+1), "-ERR Protocol error: too big bulk count string\r\n"},
		{"NUL hides the line end", "PING\x00\r\n" + strings.Repeat("B", 64*1024), "-ERR Protocol error: too big inline request\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, ts.addr)
			c.send(tc.send)
			if got := c.read(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			c.expectClosed()
			other := dialRaw(t, ts.addr)
			if got := other.do("PING"); got != "+PONG\r\n" {
				t.Errorf("other client: %q", got)
			}
		})
	}
}

// TestProtocolOrder checks that the commands before a protocol error are answered
// first, as Redis does, even when they arrive in the same packet.
func TestProtocolOrder(t *testing.T) {
	ts := startServer(t)
	c := dialRaw(t, ts.addr)
	c.send(strings.Repeat(encode("PING"), 100) + "SET k v\r\n*1\r\n$-5\r\nPING\r\n")
	for i := 0; i < 100; i++ {
		if got := c.read(); got != "+PONG\r\n" {
			t.Fatalf("reply %d = %q", i, got)
		}
	}
	if got := c.read(); got != ok {
		t.Fatalf("inline SET = %q", got)
	}
	if got := c.read(); got != "-ERR Protocol error: invalid bulk length\r\n" {
		t.Fatalf("got %q", got)
	}
	c.expectClosed()
	if got := dialRaw(t, ts.addr).do("GET", "k"); got != bulk("v") {
		t.Errorf("GET = %q", got)
	}
}

// TestProtocolAccepted checks what Redis accepts that a stricter parser would not.
func TestProtocolAccepted(t *testing.T) {
	ts := startServer(t)
	c := dialRaw(t, ts.addr)
	runSteps(t, c, []step{
		raw("+PONG\r\n", "*0\r\n*-1\r\n*-100\r\nPING\r\n"),              // empty multibulks are skipped
		raw("+PONG\r\n", "\r\n\n   \r\nPING\r\n"),                       // so are empty inline lines
		raw("+PONG\r\n", "*1\r\n$4\r\nPINGxy"),                          // the two bytes after an argument are not checked
		raw(bulk("a b"), "*2\r\r$4\rxECHO\r\n$3\r\na b\r\n"),            // nor the byte after a header's CR
		raw(bulk("hello"), "ECHO hello\n"),                              // inline, LF only
		raw(bulk("a b"), "ECHO \"a b\"\r\n"),                            // quotes
		raw(bulk("aA\n\t\x01\""), "ECHO \"a\\x41\\n\\t\\x01\\\"\"\r\n"), // escapes
		raw(bulk("it's"), "ECHO 'it\\'s'\r\n"),
		raw(bulk("a\\nb"), "ECHO 'a\\nb'\r\n"), // no escapes in single quotes
		raw(bulk("ab"), "ECHO a\"b\"\r\n"),     // a quote inside a word opens a quoted part
		raw(bulk(""), "ECHO \"\"\r\n"),
		raw("-ERR unknown command '\xff\xfe', with args beginning with: '\x01' \r\n", "\xff\xfe \x01\r\n"), // binary garbage with a line end
		raw(arity("echo"), "  ECHO  \t \r\n"),
		raw("+PONG\r\n", "*1\r\n$4\r\nPING\r\n"),
	})
	// Split at every byte: the same replies.
	msg := encode("SET", "split", "value with spaces") + "GET split\r\n" + encode("ECHO", "")
	for i := 0; i < len(msg); i++ {
		c.send(msg[i : i+1])
	}
	for _, want := range []string{ok, bulk("value with spaces"), bulk("")} {
		if got := c.read(); got != want {
			t.Errorf("byte by byte: got %q, want %q", got, want)
		}
	}
	// Binary garbage without a line end (or with a NUL before it) waits, as in
	// Redis, without blocking anyone.
	g := dialRaw(t, ts.addr)
	g.send("\x00\x01\x02\xff\xfe garbage \r\n")
	if got := dialRaw(t, ts.addr).do("PING"); got != "+PONG\r\n" {
		t.Errorf("PING = %q", got)
	}
	_ = g.c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if b, err := g.r.ReadByte(); err == nil {
		t.Errorf("garbage with a NUL got a reply: %q", b)
	}
}

// TestHugeClaims checks that headers claiming huge sizes allocate nothing up front
// and block no one.
func TestHugeClaims(t *testing.T) {
	ts := startServer(t)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	// 2^20 arguments: a valid header, so the connection waits for them.
	a := dialRaw(t, ts.addr)
	a.send("*1048576\r\n")
	// A 512 MB argument (the maximum), of which 1 MB arrives.
	b := dialRaw(t, ts.addr)
	b.send("*2\r\n$3\r\nSET\r\n$536870912\r\n")
	b.send(strings.Repeat("x", 1<<20))
	// Many arguments: elements of 2^20, a few thousand of them.
	d := dialRaw(t, ts.addr)
	d.send("*1048576\r\n" + strings.Repeat("$1\r\na\r\n", 5000))
	start := time.Now()
	e := dialRaw(t, ts.addr)
	for i := 0; i < 100; i++ {
		if got := e.do("PING"); got != "+PONG\r\n" {
			t.Fatalf("PING = %q", got)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("other clients slowed down: %v", d)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Errorf("allocated %d MB for claimed sizes", grew>>20)
	}
	for _, c := range []*rawConn{a, b, d} {
		_ = c.c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if x, err := c.r.ReadByte(); err == nil {
			t.Errorf("incomplete request got a reply: %q", x)
		}
		c.c.Close()
	}
	// The server forgets them promptly.
	start = time.Now()
	waitFor(t, func() bool { return ts.Clients() == 1 })
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("closing took %v", d)
	}
}

// TestTruncatedFrames closes connections in the middle of requests.
func TestTruncatedFrames(t *testing.T) {
	ts := startServer(t)
	for _, part := range []string{"*", "*2", "*2\r", "*2\r\n", "*2\r\n$3", "*2\r\n$3\r\nGET", "*2\r\n$3\r\nGET\r\n$1\r\na", "PING", "SET a \"b"} {
		c := dialRaw(t, ts.addr)
		c.send(part)
		c.c.Close()
	}
	c := dialRaw(t, ts.addr)
	if got := c.do("PING"); got != "+PONG\r\n" {
		t.Fatalf("PING = %q", got)
	}
	waitFor(t, func() bool { return ts.Clients() == 1 })
}

// TestUnauthenticatedLimits checks Redis 7.2's limits before AUTH.
func TestUnauthenticatedLimits(t *testing.T) {
	ts := startServer(t, withPass("pw"))
	for _, tc := range []struct{ send, want string }{
		{"*11\r\n", "-ERR Protocol error: unauthenticated multibulk length\r\n"},
		{"*1\r\n$16385\r\n", "-ERR Protocol error: unauthenticated bulk length\r\n"},
		{"*1\r\n$100000000\r\n", "-ERR Protocol error: unauthenticated bulk length\r\n"},
	} {
		c := dialRaw(t, ts.addr)
		c.send(tc.send)
		if got := c.read(); got != tc.want {
			t.Errorf("%q: got %q", tc.send, got)
		}
		c.expectClosed()
	}
	// At the limits: parsed, then NOAUTH.
	c := dialRaw(t, ts.addr)
	args := []string{"MGET"}
	for i := 0; i < 9; i++ {
		args = append(args, "k")
	}
	if got := c.do(args...); got != "-NOAUTH Authentication required.\r\n" {
		t.Errorf("10 args: %q", got)
	}
	if got := c.do("ECHO", strings.Repeat("x", 16384)); got != "-NOAUTH Authentication required.\r\n" {
		t.Errorf("16384 bytes: %q", got)
	}
	// AUTH lifts the limits for the very next command of the same pipeline.
	big := []string{"MSET"}
	for i := 0; i < 20; i++ {
		big = append(big, "k", strings.Repeat("v", 20000))
	}
	c.send(encode("AUTH", "pw") + encode(big...) + encode("STRLEN", "k"))
	for _, want := range []string{ok, ok, ":20000\r\n"} {
		if got := c.read(); got != want {
			t.Errorf("after AUTH: got %q, want %q", got, want)
		}
	}
	// A wrong AUTH keeps the limits.
	c = dialRaw(t, ts.addr)
	c.send(encode("AUTH", "nope") + "*11\r\n")
	if got := c.read(); got != "-WRONGPASS invalid username-password pair or user is disabled.\r\n" {
		t.Errorf("got %q", got)
	}
	if got := c.read(); got != "-ERR Protocol error: unauthenticated multibulk length\r\n" {
		t.Errorf("got %q", got)
	}
	c.expectClosed()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
