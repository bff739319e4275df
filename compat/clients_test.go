package compat

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// deployment is what a client is tested against: one node, or a 3-node cluster
// (N=3, R=2, W=2). Workloads write through the first node and read through the
// last, so on the cluster every read crosses nodes.
type deployment struct {
	name  string
	procs []*proc
}

func (d deployment) resp() []string {
	out := make([]string, len(d.procs))
	for i, p := range d.procs {
		out[i] = p.RESP
	}
	return out
}

func (d deployment) memcache() []string {
	out := make([]string, len(d.procs))
	for i, p := range d.procs {
		out[i] = p.Memcache
	}
	return out
}

// TestClients is the client matrix: every client library or tool runs its
// workload against a single node and against a 3-node cluster of real
// processes. Clients that are not installed are skipped with the command that
// installs them.
func TestClients(t *testing.T) {
	deps := []deployment{{"single", []*proc{startNode(t)}}, {"cluster", startCluster(t, 3)}}
	clients := []struct {
		name string
		run  func(t *testing.T, d deployment)
	}{
		{"go-redis/RESP2", func(t *testing.T, d deployment) { goRedisWorkload(t, d, 2) }},
		{"go-redis/RESP3", func(t *testing.T, d deployment) { goRedisWorkload(t, d, 3) }},
		{"gomemcache", gomemcacheWorkload},
		{"redis-cli", redisCLIWorkload},
		{"python/redis", func(t *testing.T, d deployment) { runPython(t, "redis_client.py", d.resp()) }},
		{"python/pymemcache", func(t *testing.T, d deployment) { runPython(t, "memcache_client.py", d.memcache()) }},
		{"node/ioredis", func(t *testing.T, d deployment) { runNode(t, "ioredis_client.js", d.resp()) }},
		{"node/redis", func(t *testing.T, d deployment) { runNode(t, "node_redis_client.js", d.resp()) }},
	}
	for _, cl := range clients {
		t.Run(cl.name, func(t *testing.T) {
			for _, d := range deps {
				t.Run(d.name, func(t *testing.T) {
					start := time.Now()
					cl.run(t, d)
					t.Logf("%s against %s: %v", cl.name, d.name, time.Since(start).Round(time.Millisecond))
				})
			}
		})
	}
}

// systemPython is Debian's interpreter: Debian's python3-redis and
// python3-pymemcache import only there, not in a python3 earlier on PATH.
const systemPython = "/usr/bin/python3"

// runPython runs compat/clients/python/script against addrs.
func runPython(t *testing.T, script string, addrs []string) {
	t.Helper()
	if _, err := os.Stat(systemPython); err != nil {
		t.Skipf("%s not found (make tools installs python3-redis and python3-pymemcache)", systemPython)
	}
	if out, err := exec.Command(systemPython, "-c", "import redis, pymemcache").CombinedOutput(); err != nil {
		t.Skipf("%s cannot import redis and pymemcache (make tools installs python3-redis and python3-pymemcache): %s",
			systemPython, strings.TrimSpace(string(out)))
	}
	runScript(t, systemPython, filepath.Join("clients", "python", script), addrs)
}

// runNode runs compat/clients/node/script against addrs with the npm packages
// that scripts/install-node-clients.sh installs.
func runNode(t *testing.T, script string, addrs []string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed (make tools installs nodejs, npm and the npm clients)")
	}
	if _, err := os.Stat(filepath.Join("clients", "node", "node_modules", ".package-lock.json")); err != nil {
		t.Skip("npm clients not installed (scripts/install-node-clients.sh runs npm ci in compat/clients/node)")
	}
	runScript(t, node, filepath.Join("clients", "node", script), addrs)
}

// runScript runs interpreter script with the comma-separated addresses as its
// argument, at most 2 minutes; the script exits non-zero on any failed check.
func runScript(t *testing.T, interpreter, script string, addrs []string) {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(c, interpreter, script, strings.Join(addrs, ","))
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(interpreter), script, err, out)
	}
	t.Logf("%s: %s", script, strings.TrimSpace(string(out)))
}
