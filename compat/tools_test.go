package compat

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func needTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (make tools installs it)", name)
	}
	return path
}

func hostPort(addr string) (string, string) {
	i := strings.LastIndexByte(addr, ':')
	return addr[:i], addr[i+1:]
}

// redisCLIWorkload runs redis-cli against d: commands with -e (a failed command
// exits non-zero), commands read from stdin as typed in interactive mode, a
// --pipe mass insertion of 100,000 keys, and --scan with --pattern. Writes go
// through the first node, reads through the last.
func redisCLIWorkload(t *testing.T, d deployment) {
	cli := needTool(t, "redis-cli")
	addrs := d.resp()
	last := len(addrs) - 1
	run := func(node int, stdin string, args ...string) (string, error) {
		t.Helper()
		host, port := hostPort(addrs[node])
		c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(c, cli, append([]string{"-h", host, "-p", port}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	do := func(node int, want string, args ...string) {
		t.Helper()
		out, err := run(node, "", append([]string{"-e"}, args...)...)
		if err != nil || out != want {
			t.Fatalf("redis-cli -e %q on node %d = %q, %v; want %q", args, node, out, err, want)
		}
	}
	fails := func(want string, args ...string) {
		t.Helper()
		out, err := run(0, "", append([]string{"-e"}, args...)...)
		if err == nil || !strings.Contains(out, want) {
			t.Fatalf("redis-cli -e %q = %q, exit %v; want a failure with %q", args, out, err, want)
		}
	}
	dbsize := func(want int) {
		t.Helper()
		for i := range addrs {
			deadline := time.Now().Add(30 * time.Second)
			for {
				out, err := run(i, "", "-e", "DBSIZE")
				if err == nil && out == fmt.Sprint(want) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("DBSIZE on node %d = %q, %v; want %d", i, out, err, want)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}

	do(0, "OK", "FLUSHALL")
	dbsize(0)
	do(0, "PONG", "PING")
	do(0, "OK", "SET", "greeting", "hello world")
	do(last, "hello world", "GET", "greeting")
	do(0, "1", "INCR", "counter")
	do(0, "5", "INCRBY", "counter", "4")
	do(last, "5", "GET", "counter")
	do(0, "OK", "MSET", "a", "1", "b", "2")
	do(last, "1\n2", "MGET", "a", "b", "missing")
	do(last, "2", "EXISTS", "a", "b", "missing")
	do(0, "1", "EXPIRE", "a", "100")
	if out, err := run(last, "", "-e", "TTL", "a"); err != nil {
		t.Fatalf("TTL a: %v", err)
	} else if n, err := strconv.Atoi(out); err != nil || n < 90 || n > 100 {
		t.Fatalf("TTL a = %q, want 90 to 100", out)
	}
	do(0, "1", "DEL", "b", "missing")
	do(last, "0", "EXISTS", "b")
	if out, err := run(0, "", "-e", "DPUT", "cart", "", "milk"); err != nil || out == "" {
		t.Fatalf("DPUT = %q, %v", out, err)
	}
	if out, err := run(last, "", "-e", "DPUT", "cart", "", "eggs"); err != nil || out == "" {
		t.Fatalf("DPUT = %q, %v", out, err)
	}
	if out, err := run(last, "", "-e", "DGET", "cart"); err != nil || !strings.Contains(out, "milk") || !strings.Contains(out, "eggs") {
		t.Fatalf("DGET after blind DPUTs through two nodes: %q, %v", out, err)
	}
	fails("ERR value is not an integer or out of range", "INCR", "greeting")
	fails("ERR wrong number of arguments for 'get' command", "GET")
	fails("ERR unknown command 'LPUSH'", "LPUSH", "l", "x")
	fails("ERR MULTI is not supported by dynakv", "MULTI")

	// Commands typed one per line, as in interactive mode; errors do not stop it
	// (redis-cli prints an empty line after an error it read this way).
	out, err := run(last, "SET typed \"a b\"\nAPPEND typed c\nGET typed\nINCR typed\nSTRLEN typed\n")
	if want := "OK\n4\na bc\nERR value is not an integer or out of range\n\n4"; err != nil || out != want {
		t.Fatalf("redis-cli reading commands from stdin = %q, %v; want %q", out, err, want)
	}

	// Mass insertion with --pipe (RESP on stdin), then count, spot-check, --scan.
	do(0, "OK", "FLUSHALL")
	const n = 100000
	var buf bytes.Buffer
	for i := 0; i < n; i++ {
		k, v := fmt.Sprintf("mass:%d", i), fmt.Sprint("value-", i)
		fmt.Fprintf(&buf, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(k), k, len(v), v)
	}
	start := time.Now()
	out, err = run(0, buf.String(), "--pipe")
	if err != nil || !strings.Contains(out, fmt.Sprintf("errors: 0, replies: %d", n)) {
		t.Fatalf("--pipe: %v\n%s", err, out)
	}
	t.Logf("--pipe of %d SETs: %v", n, time.Since(start).Round(time.Millisecond))
	dbsize(n)
	for _, i := range []int{0, 1, 54321, n - 1} {
		do(last, fmt.Sprint("value-", i), "GET", fmt.Sprint("mass:", i))
	}
	for _, tc := range []struct {
		pattern string
		want    int
	}{{"mass:1*", 11111}, {"mass:9999?", 10}, {"mass:*", n}} {
		out, err := run(last, "", "--scan", "--pattern", tc.pattern)
		if err != nil {
			t.Fatalf("--scan --pattern %s: %v\n%s", tc.pattern, err, out)
		}
		seen := map[string]bool{}
		for _, k := range strings.Fields(out) {
			seen[k] = true
		}
		if len(seen) != tc.want {
			t.Fatalf("--scan --pattern %s found %d distinct keys, want %d", tc.pattern, len(seen), tc.want)
		}
	}
}

// TestRedisBenchmark runs a short redis-benchmark against the node: every request
// must succeed (redis-benchmark prints nothing for errors it cannot parse, so the
// check is that both tests report a rate).
func TestRedisBenchmark(t *testing.T) {
	bench := needTool(t, "redis-benchmark")
	p := startNode(t)
	host, port := hostPort(p.RESP)
	out, err := exec.Command(bench, "-h", host, "-p", port, "-t", "set,get", "-n", "20000",
		"-c", "20", "-r", "1000", "-d", "100", "-q").CombinedOutput()
	if err != nil {
		t.Fatalf("redis-benchmark: %v\n%s", err, out)
	}
	for _, test := range []string{"SET", "GET"} {
		if !regexp.MustCompile(test + `: [0-9.]+ requests per second`).Match(out) {
			t.Fatalf("redis-benchmark output lacks %s rate:\n%s", test, out)
		}
	}
	t.Logf("redis-benchmark:\n%s", out)
}

// TestServerFlags checks --help and that bad flags fail at start with a clear message.
func TestServerFlags(t *testing.T) {
	out, err := exec.Command(binary, "server", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	for _, flag := range []string{"--name", "--data-dir", "--storage", "--resp", "--memcache", "--http",
		"--gossip", "--cluster", "--join", "--n", "--r", "--w", "--partitions", "--requirepass",
		"--max-value-bytes", "--max-clients"} {
		if !strings.Contains(string(out), flag+" ") {
			t.Errorf("--help does not document %s", flag)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--no-such-flag"}, "unknown flag: --no-such-flag"},
		{[]string{"--storage", "tape"}, `--storage must be "disk" or "memory"`},
		{[]string{"--partitions", "1000"}, "--partitions must be a power of two"},
		{[]string{"--r", "5"}, "--r must be between 1 and --n"},
		{[]string{"--resp", "nonsense"}, "--resp"},
	} {
		out, err := exec.Command(binary, append([]string{"server"}, tc.args...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("server %v: err=%v output %q, want it to fail mentioning %q", tc.args, err, out, tc.want)
		}
	}
}
