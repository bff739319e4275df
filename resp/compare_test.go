package resp

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCompareWithRedis sends the same bytes to dynakv and to a real redis-server
// and compares the replies byte for byte, and whether the connection was closed.
// It runs when RESP_COMPARE_REDIS=1 and redis-server is installed:
//
//	RESP_COMPARE_REDIS=1 go test ./resp -run TestCompareWithRedis
//
// Cases whose answers differ between Redis versions, or where dynakv deliberately
// differs (see doc.go), are not here.
func TestCompareWithRedis(t *testing.T) {
	if os.Getenv("RESP_COMPARE_REDIS") != "1" {
		t.Skip("set RESP_COMPARE_REDIS=1 to compare with redis-server")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed")
	}
	redisAddr := startRedis(t, bin, "")
	redisPwAddr := startRedis(t, bin, "pw")
	ts := startServer(t)
	tsPw := startServer(t, withPass("pw"))

	long := strings.Repeat("x", 200)
	cases := [][]string{
		// Each case is one connection; each string is written, then replies read.
		{encode("PING"), encode("PING", "x"), encode("PING", "a", "b"), "PING\r\n", "ping hello\r\n"},
		{encode("foo"), encode("foo", "a", "b c"), encode("lpushx2", long, "x"), encode("x", long[:100], long), encode("x", "a\r\nb", "c\x00d"), encode("MULTIX")},
		{encode("GET"), encode("GET", "a", "b"), encode("SET", "a"), encode("CONFIG"), encode("CONFIG", "FOO"), encode("config", "get"), encode("client", "kill2"), encode("CLIENT", "SETNAME")},
		{encode("SET", "k", "v"), encode("SET", "k", "v", "NX", "XX"), encode("SET", "k", "v", "EX"), encode("SET", "k", "v", "EX", "0"), encode("SET", "k", "v", "PX", "-5"), encode("SET", "k", "v", "EX", "9223372036854775807"), encode("SET", "k", "v", "PX", "9223372036854775807"), encode("SET", "k", "v", "EX", "1.5"), encode("SET", "k", "v", "KEEPTTL", "EX", "1"), encode("SET", "k", "v2", "GET"), encode("SET", "k", "v3", "NX", "GET"), encode("SET", "k", "v", "nx\x00junk"), encode("SET", "k", "v", "PERSIST")},
		{encode("SETEX", "k", "0", "v"), encode("PSETEX", "k", "-1", "v"), encode("SETEX", "k", "x", "v"), encode("GETEX", "k", "PERSIST", "EX", "1"), encode("GETEX", "missing", "EX", "0"), encode("SET", "k", "v"), encode("GETEX", "k", "EX", "0"), encode("GETEX", "k", "EX", "x"), encode("GETEX", "k", "NX")},
		{encode("SET", "n", "abc"), encode("INCR", "n"), encode("SET", "n", "9223372036854775807"), encode("INCR", "n"), encode("DECRBY", "n", "-9223372036854775808"), encode("INCRBY", "n", "1.5"), encode("INCRBYFLOAT", "f", "10.5"), encode("INCRBYFLOAT", "f", "0.1"), encode("INCRBYFLOAT", "f", "abc"), encode("INCRBYFLOAT", "f", "inf"), encode("INCRBYFLOAT", "f", " 1")},
		{encode("SET", "ap", "hello world"), encode("GETRANGE", "ap", "0", "4"), encode("GETRANGE", "ap", "-5", "-1"), encode("GETRANGE", "ap", "-100", "100"), encode("GETRANGE", "ap", "5", "3"), encode("GETRANGE", "ap", "-1", "-5"), encode("GETRANGE", "nokey", "0", "-1"), encode("GETRANGE", "ap", "a", "1"), encode("SETRANGE", "ap", "-1", "x"), encode("SETRANGE", "ap", "x", "x"), encode("SETRANGE", "sr", "5", "abc"), encode("GET", "sr"), encode("SETRANGE", "sr2", "5", ""), encode("SETRANGE", "sr", "100", ""), encode("SUBSTR", "ap", "0", "1")},
		{encode("MSET", "a"), encode("MSET", "a", "1", "b"), encode("MSET", "a", "1", "b", "2"), encode("MGET", "a", "x", "b"), encode("MSETNX", "a", "1", "c", "3"), encode("MSETNX", "c", "1", "d", "3"), encode("EXISTS", "a", "a", "x"), encode("DEL", "a", "a", "b", "x"), encode("TYPE", "c"), encode("TYPE", "a"), encode("STRLEN", "c"), encode("STRLEN", "zz")},
		{encode("SET", "e", "v"), encode("EXPIRE", "e", "10", "NX", "XX"), encode("EXPIRE", "e", "10", "GT", "NX"), encode("EXPIRE", "e", "10", "GT", "LT"), encode("EXPIRE", "e", "10", "FOO"), encode("EXPIRE", "e", "x", "FOO"), encode("EXPIRE", "e", "x"), encode("EXPIRE", "e", "9223372036854775807"), encode("PEXPIRE", "e", "9223372036854775807"), encode("EXPIREAT", "e", "-9223372036854775808"), encode("EXPIRE", "e", "10", "XX"), encode("EXPIRE", "e", "10", "GT"), encode("EXPIRE", "e", "10", "XX", "LT"), encode("EXPIRE", "e", "100", "LT"), encode("EXPIRE", "e", "200", "LT"), encode("EXPIRE", "e", "50", "XX", "LT"), encode("EXPIRE", "e", "80", "XX", "GT"), encode("TTL", "e"), encode("PERSIST", "e"), encode("PERSIST", "e"), encode("TTL", "e"), encode("TTL", "nokey"), encode("EXPIRE", "e", "-1"), encode("EXISTS", "e")},
		{encode("SELECT", "0"), encode("SELECT", "x"), encode("SELECT", "99999999999"), encode("FLUSHALL", "FOO"), encode("FLUSHDB", "ASYNC", "X"), encode("SCAN", "x"), encode("SCAN", "0", "COUNT", "0"), encode("SCAN", "0", "COUNT", "x"), encode("SCAN", "0", "FOO", "x"), encode("SCAN", "0", "MATCH"), encode("RANDOMKEY", "x"), encode("TIME", "x"), encode("DBSIZE", "x")},
		{encode("CONFIG", "GET", "save"), encode("CONFIG", "GET", "appendonly"), encode("CONFIG", "SET", "foo", "bar"), encode("CONFIG", "SET", "save", "", "hz"), encode("CONFIG", "SET", "save"), encode("CONFIG", "SET", "maxmemory-policy", "bogus"), encode("CONFIG", "SET", "hz", "x"), encode("CONFIG", "SET", "appendonly", "maybe"), encode("CONFIG", "SET", "save", "", "SAVE", "1 1"), encode("CONFIG", "REWRITE", "x")},
		{encode("CLIENT", "GETNAME"), encode("CLIENT", "SETNAME", "a b"), encode("CLIENT", "SETNAME", "caf\xc3\xa9"), encode("CLIENT", "SETNAME", "me"), encode("CLIENT", "GETNAME"), encode("CLIENT", "SETNAME", ""), encode("CLIENT", "GETNAME"), encode("CLIENT", "LIST", "TYPE", "foo"), encode("CLIENT", "LIST", "ID", "x"), encode("CLIENT", "LIST", "foo")},
		{encode("HELLO", "4"), encode("HELLO", "x"), encode("HELLO", "3", "FOO"), encode("HELLO", "3", "AUTH", "default"), encode("HELLO", "3", "AUTH", "bob", "x"), encode("HELLO", "3", "SETNAME", "a b"), encode("AUTH", "x"), encode("AUTH", "a", "b", "c"), encode("AUTH", "bob", "x"), encode("AUTH", "default", "x")},
		{encode("HELLO", "3"), encode("GET", "nokey"), encode("SET", "k", "v", "XX"), encode("MGET", "nokey", "k"), encode("CONFIG", "GET", "save"), encode("CLIENT", "GETNAME"), encode("COMMAND", "INFO", "nosuch"), encode("TTL", "nokey"), encode("HELLO", "2")[:0] + encode("PING")},
		{encode("COMMAND", "INFO", "nosuch"), encode("COMMAND", "GETKEYS", "GET", "k"), encode("COMMAND", "GETKEYS", "MSET", "a", "b", "c", "d"), encode("COMMAND", "GETKEYS", "PING"), encode("COMMAND", "GETKEYS", "PING", "x"), encode("COMMAND", "GETKEYS", "nosuch", "x"), encode("COMMAND", "GETKEYS", "GET", "a", "b")},
		// Protocol.
		{"*0\r\n*-1\r\n*-100\r\nPING\r\n", "\r\n\n   \r\nPING\r\n", "*1\r\n$4\r\nPINGxy", "*2\r\r$4\rxECHO\r\n$3\r\na b\r\n", "ECHO hello\n", "ECHO \"a b\"\r\n", "ECHO \"a\\x41\\n\\t\\x01\\\"\"\r\n", "ECHO 'it\\'s'\r\n", "ECHO 'a\\nb'\r\n", "ECHO a\"b\"\r\n", "ECHO \"\"\r\n", "\xff\xfe \x01\r\n", "  ECHO  \t \r\n", "ECHO a\vb\r\n"},
		{"*abc\r\n"}, {"*+1\r\n"}, {"*01\r\n"}, {"*\r\n"}, {"*2147483648\r\n"}, {"*99999999999999999999\r\n"},
		{"*1\r\n$-1\r\n"}, {"*1\r\n$x\r\n"}, {"*1\r\n$\r\n"}, {"*1\r\n$2147483648\r\n"}, {"*1\r\n$536870913\r\n"}, {"*1\r\n$9223372036854775807\r\n"},
		{"*1\r\nPING\r\n"}, {"*2\r\n$4\r\nECHO\r\n\r\n"}, {"*1\r\n\xff\r\n"}, {"*1\r\n\n\r\n"},
		{"SET a \"b\r\n"}, {"SET a 'b\r\n"}, {"SET a \"b\"c\r\n"}, {"SET a 'b'c\r\n"},
		{strings.Repeat("A", 64*1024+1)}, {"*" + strings.Repeat("1", 64*1024+1)}, {"*1\r\n$" + strings.Repeat("1", 64*1024+1)},
		{"PING\x00\r\n" + strings.Repeat("B", 64*1024)},
		{strings.Repeat(encode("PING"), 3) + "SET k v\r\n*1\r\n$-5\r\nPING\r\n"},
		{encode("SET", "q", "1") + encode("QUIT") + encode("SET", "q", "2")},
		{"POST / HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"},
	}
	pwCases := [][]string{
		{encode("PING"), encode("GET"), encode("nosuch", "x"), encode("HELLO", "3"), encode("AUTH", "wrong"), encode("AUTH", "bob", "pw"), encode("HELLO", "3", "AUTH", "default", "nope"), encode("AUTH", "pw"), encode("PING"), encode("AUTH", "wrong"), encode("PING")},
		{"*11\r\n"}, {"*1\r\n$16385\r\n"}, {"*1\r\n$100000000\r\n"},
		{encode("MGET", "1", "2", "3", "4", "5", "6", "7", "8", "9")},
		{encode("AUTH", "nope") + "*11\r\n"},
		{encode("QUIT")},
	}
	// What differs between Redis 7.0 (often installed) and 7.2 (what dynakv
	// speaks), or between connections.
	norm := strings.NewReplacer(
		"$6\r\n7.0.15\r\n", "$5\r\n7.2.0\r\n",
		"HELLO AUTH <user> <pass>", "HELLO <proto> AUTH <user> <pass>",
	)
	idLine := regexp.MustCompile(`\$2\r\nid\r\n:\d+\r\n`)
	compare := func(t *testing.T, ours, theirs string, cases [][]string) {
		for i, steps := range cases {
			a, b := exchange(t, ours, steps), exchange(t, theirs, steps)
			a, b = idLine.ReplaceAllString(a, "id"), idLine.ReplaceAllString(norm.Replace(b), "id")
			if a != b {
				t.Errorf("case %d %q:\n dynakv %q\n redis  %q", i, trunc(strings.Join(steps, "")), a, b)
			}
		}
	}
	compare(t, ts.addr, redisAddr, cases)
	compare(t, tsPw.addr, redisPwAddr, pwCases)
}

func trunc(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// exchange writes each step on one connection and collects what comes back until
// the server stops answering for a moment or closes the connection.
func exchange(t *testing.T, addr string, steps []string) string {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out bytes.Buffer
	buf := make([]byte, 64<<10)
	closed := false
	for _, s := range steps {
		if _, err := c.Write([]byte(s)); err != nil {
			closed = true
			break
		}
		for {
			_ = c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
			n, err := c.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
					closed = true
				}
				break
			}
		}
		if closed {
			break
		}
	}
	return fmt.Sprintf("%s closed=%v", out.String(), closed)
}

func startRedis(t *testing.T, bin, pass string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir()}
	if pass != "" {
		args = append(args, "--requirepass", pass)
	}
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		if i > 200 {
			t.Fatal("redis-server did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
