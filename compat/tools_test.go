package compat

import (
	"bytes"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
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

// TestRedisCLI runs redis-cli commands, a --pipe mass insertion and --scan.
func TestRedisCLI(t *testing.T) {
	cli := needTool(t, "redis-cli")
	p := startNode(t)
	host, port := hostPort(p.RESP)
	run := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(cli, append([]string{"-h", host, "-p", port}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := run("", "PING"); got != "PONG" {
		t.Fatalf("PING: %q", got)
	}
	if got := run("", "SET", "greeting", "hello world"); got != "OK" {
		t.Fatalf("SET: %q", got)
	}
	if got := run("", "GET", "greeting"); got != "hello world" {
		t.Fatalf("GET: %q", got)
	}
	if got := run("", "DPUT", "cart", "", "milk"); got == "" {
		t.Fatal("DPUT returned no context")
	}
	run("", "DPUT", "cart", "", "eggs")
	if got := run("", "DGET", "cart"); !strings.Contains(got, "milk") || !strings.Contains(got, "eggs") {
		t.Fatalf("DGET after two blind DPUTs: %q", got)
	}

	// Mass insertion with --pipe (RESP on stdin).
	const n = 20000
	var buf bytes.Buffer
	for i := 0; i < n; i++ {
		k, v := fmt.Sprintf("mass:%d", i), fmt.Sprint(i)
		fmt.Fprintf(&buf, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(k), k, len(v), v)
	}
	out := run(buf.String(), "--pipe")
	if !regexp.MustCompile(fmt.Sprintf(`errors: 0, replies: %d`, n)).MatchString(out) {
		t.Fatalf("--pipe: %s", out)
	}
	if got := run("", "DBSIZE"); got != fmt.Sprint(n+2) {
		t.Fatalf("DBSIZE after --pipe: %s, want %d", got, n+2)
	}
	keys := strings.Fields(run("", "--scan", "--pattern", "mass:1*"))
	want := 0
	for i := 0; i < n; i++ {
		if strings.HasPrefix(fmt.Sprint(i), "1") {
			want++
		}
	}
	seen := map[string]bool{}
	for _, k := range keys {
		seen[k] = true
	}
	if len(seen) != want {
		t.Fatalf("--scan mass:1* found %d distinct keys, want %d", len(seen), want)
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
