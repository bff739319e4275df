package launch

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestNodeArgs(t *testing.T) {
	n := Node{Name: "a1", DataDir: "/d/a1", Storage: "memory", RESP: "r:1", Memcache: "m:2", HTTP: "h:3",
		Gossip: "g:4", Cluster: "c:5", Secret: "s", Zone: "z1", Join: []string{"j:1", "j:2"}, LogLevel: "warn",
		Extra: []string{"--n", "3", "--secret", ""}}
	want := []string{"server", "--name", "a1", "--data-dir", "/d/a1", "--storage", "memory", "--resp", "r:1",
		"--memcache", "m:2", "--http", "h:3", "--gossip", "g:4", "--cluster", "c:5", "--secret", "s",
		"--zone", "z1", "--join", "j:1,j:2", "--log-level", "warn", "--n", "3", "--secret", ""}
	if got := n.Args(); !slices.Equal(got, want) {
		t.Errorf("Args:\n got %q\nwant %q", got, want)
	}
	// Empty fields pass no flag: the server's defaults (and $DYNAKV_SECRET) apply.
	if got := (Node{Name: "x"}).Args(); !slices.Equal(got, []string{"server", "--name", "x"}) {
		t.Errorf("Args of a bare node = %q", got)
	}
}

func TestNodeFreePorts(t *testing.T) {
	n, err := Node{Name: "x", Gossip: "127.0.0.1:1"}.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	if n.Gossip != "127.0.0.1:1" {
		t.Errorf("a given address was replaced: %q", n.Gossip)
	}
	seen := map[string]bool{}
	for _, a := range []string{n.RESP, n.Memcache, n.HTTP, n.Cluster} {
		if !strings.HasPrefix(a, "127.0.0.1:") || seen[a] {
			t.Errorf("address %q: not a fresh loopback address", a)
		}
		seen[a] = true
	}
}

func TestConfigNodes(t *testing.T) {
	nodes, err := Config{Count: 3, Prefix: "c", Dir: "/d", Secret: "s", Extra: []string{"--n", "3"},
		Gossip: []string{"127.0.0.1:7"}}.Nodes()
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		if want := "c" + string(rune('1'+i)); n.Name != want || n.DataDir != filepath.Join("/d", want) {
			t.Errorf("node %d: name %q, data dir %q", i, n.Name, n.DataDir)
		}
		if n.Secret != "s" || !slices.Equal(n.Extra, []string{"--n", "3"}) {
			t.Errorf("node %d: secret %q, extra %q", i, n.Secret, n.Extra)
		}
		if i == 0 && (n.Gossip != "127.0.0.1:7" || n.Join != nil) || i > 0 && !slices.Equal(n.Join, []string{"127.0.0.1:7"}) {
			t.Errorf("node %d gossips on %s, joins %v; want the first on the given address, the others joining it", i, n.Gossip, n.Join)
		}
	}
	// Joining a running cluster: every node joins it, names go on from First.
	nodes, err = Config{Count: 2, First: 4, Join: []string{"127.0.0.1:9"}}.Nodes()
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		if want := "dynakv" + string(rune('4'+i)); n.Name != want || !slices.Equal(n.Join, []string{"127.0.0.1:9"}) || n.DataDir != "" {
			t.Errorf("node %d: %q joins %v, data dir %q", i, n.Name, n.Join, n.DataDir)
		}
	}
	for _, n := range nodes {
		if n.Zone != "" {
			t.Errorf("%s is in zone %q without Zones", n.Name, n.Zone)
		}
	}
	if c := (Config{Count: 2, Join: []string{"x"}}).EnsureDefaults(); c.Members != 0 {
		t.Errorf("Members defaults to %d when joining a cluster; want no wait", c.Members)
	}
	if c := (Config{Count: 2}).EnsureDefaults(); c.Members != 2 {
		t.Errorf("Members defaults to %d for a new cluster of 2", c.Members)
	}
}

// TestConfigZones: Zones deals the nodes round-robin by their number, also those
// added to a running cluster.
func TestConfigZones(t *testing.T) {
	zones := func(c Config) []string {
		t.Helper()
		nodes, err := c.Nodes()
		if err != nil {
			t.Fatal(err)
		}
		var z []string
		for _, n := range nodes {
			z = append(z, n.Name+"@"+n.Zone)
		}
		return z
	}
	if got, want := zones(Config{Count: 5, Zones: 2}), []string{"dynakv1@zone-1", "dynakv2@zone-2", "dynakv3@zone-1",
		"dynakv4@zone-2", "dynakv5@zone-1"}; !slices.Equal(got, want) {
		t.Errorf("5 nodes in 2 zones: %q, want %q", got, want)
	}
	// Two nodes added to a cluster of 3 in 3 zones, and one more zone than nodes.
	if got, want := zones(Config{Count: 2, First: 4, Zones: 3, Join: []string{"x"}}), []string{"dynakv4@zone-1", "dynakv5@zone-2"}; !slices.Equal(got, want) {
		t.Errorf("nodes 4 and 5 in 3 zones: %q, want %q", got, want)
	}
	for _, c := range []Config{{Count: 2, Zones: 3}, {Count: 2, Zones: -1}, {Count: 2, Zones: -1, Join: []string{"x"}}} {
		if _, err := c.Nodes(); err == nil || !strings.Contains(err.Error(), "zones") {
			t.Errorf("%d nodes, %d zones, join %q: %v", c.Count, c.Zones, c.Join, err)
		}
	}
}

func sh(t *testing.T, script string, out *Buffer) *Proc {
	t.Helper()
	p, err := Start(Spec{Name: "sh", Path: "/bin/sh", Args: []string{"-c", script}, Output: out})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Kill() })
	return p
}

func TestProc(t *testing.T) {
	var out Buffer
	p := sh(t, "echo hello; exit 3", &out)
	var exit *exec.ExitError
	if err := p.Wait(10 * time.Second); !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("Wait = %v, want exit status 3", err)
	}
	if !p.Exited() || out.String() != "hello\n" || p.Err() == nil {
		t.Fatalf("exited %v, output %q, Err %v", p.Exited(), out.String(), p.Err())
	}
	p.Signal(syscall.SIGKILL) // after the exit: a no-op

	p = sh(t, "exec sleep 30", nil)
	if err := p.Wait(50 * time.Millisecond); !errors.Is(err, ErrRunning) || !errors.Is(p.Err(), ErrRunning) {
		t.Fatalf("Wait on a sleeping process = %v, Err %v; want ErrRunning", err, p.Err())
	}
	if err := p.Stop(10 * time.Second); err != nil {
		t.Fatalf("Stop of a process that exits on SIGTERM: %v", err)
	}
	if !p.Exited() {
		t.Fatal("not exited after Stop")
	}

	// A process that ignores SIGTERM is killed after the grace.
	out = Buffer{}
	p = sh(t, `trap "" TERM; echo ready; while :; do sleep 0.05; done`, &out)
	if err := p.Ready(context.Background(), func() error {
		if out.String() == "" {
			return errors.New("no output yet")
		}
		return nil
	}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(100 * time.Millisecond); !errors.Is(err, ErrKilled) {
		t.Fatalf("Stop of a process ignoring SIGTERM = %v, want ErrKilled", err)
	}
}

func TestProcReady(t *testing.T) {
	never := func() error { return errors.New("not yet") }
	p := sh(t, "exit 0", nil)
	if err := p.Ready(context.Background(), never, 10*time.Second); err == nil || !strings.Contains(err.Error(), "exited during start") {
		t.Fatalf("Ready of an exited process = %v", err)
	}
	p = sh(t, "exec sleep 30", nil)
	if err := p.Ready(context.Background(), never, 50*time.Millisecond); err == nil || !strings.Contains(err.Error(), "not ready after") {
		t.Fatalf("Ready past its timeout = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Ready(ctx, never, 10*time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("Ready with a cancelled context = %v", err)
	}
}

func TestBuffer(t *testing.T) {
	b := Buffer{Max: 4}
	b.Write([]byte("abc"))
	b.Write([]byte("def"))
	if b.String() != "cdef" {
		t.Fatalf("tail = %q", b.String())
	}
}

// TestWriteEnv sources the file in bash and reads the arrays back.
func TestWriteEnv(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	p := sh(t, "exec sleep 30", nil)
	cl := &Cluster{
		Nodes: []Node{{Name: "a1", RESP: "127.0.0.1:1", Secret: "it's"}, {Name: "a2", RESP: "127.0.0.1:2", Zone: "z2"}},
		Procs: []*Proc{p, p}, logs: []string{"/l/a1.log", "/l/a2.log"}, tails: make([]*Buffer, 2),
	}
	env := filepath.Join(t.TempDir(), "env")
	f, err := os.Create(env)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.WriteEnv(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, err := exec.Command(bash, "-c", `. "$1"; echo "${#DYNAKV_NAME[@]} ${DYNAKV_NAME[1]} ${DYNAKV_RESP[1]} ${DYNAKV_LOG[0]} $DYNAKV_SECRET ${DYNAKV_PID[0]} [${DYNAKV_ZONE[0]}] ${DYNAKV_ZONE[1]}"`, "bash", env).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if want := "2 a2 127.0.0.1:2 /l/a1.log it's " + strconv.Itoa(p.Pid()) + " [] z2\n"; string(out) != want {
		t.Fatalf("sourced env: %q, want %q", out, want)
	}
}
