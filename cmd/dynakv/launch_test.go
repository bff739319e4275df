package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dynakv/dynakv/internal/launch"
	"github.com/dynakv/dynakv/node"
)

// TestMain makes the test binary act as dynakv when asMain is set, so that
// `dynakv launch` (which runs its own executable as the servers) can be tested.
func TestMain(m *testing.M) {
	if os.Getenv(asMain) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const asMain = "DYNAKV_TEST_AS_MAIN"

// TestLaunch starts two nodes in two zones with `dynakv launch`, checks they
// formed a cluster and that the env file describes them, adds a third with --join
// and --first (in the first zone again), and stops them all.
func TestLaunch(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	t.Setenv(asMain, "1")
	dir := t.TempDir()
	run := func(ctx context.Context, out *syncBuf, lf launchFlags) chan error {
		done := make(chan error, 1)
		go func() { done <- runLaunch(ctx, out, lf, []string{"--storage", "memory"}) }()
		return done
	}
	wait := func(out *syncBuf, done chan error) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !strings.Contains(out.String(), "Stop with Ctrl-C") {
			select {
			case err := <-done:
				t.Fatalf("launch ended: %v\n%s", err, out.String())
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("launch not up after 60s:\n%s", out.String())
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuf
	env := filepath.Join(dir, "env")
	first := run(ctx, &out, launchFlags{cfg: launch.Config{Count: 2, Prefix: "t", LogLevel: "warn", StartTimeout: 30 * time.Second, Zones: 2},
		dataDir: dir, env: env, secret: "s"})
	wait(&out, first)
	src, err := exec.Command(bash, "-c", `. "$1"; echo "${DYNAKV_NAME[*]}|${DYNAKV_GOSSIP[0]}|${DYNAKV_HTTP[1]}|$DYNAKV_SECRET|${DYNAKV_ZONE[*]}"`, "bash", env).Output()
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Split(strings.TrimSpace(string(src)), "|")
	if len(f) != 5 || f[0] != "t1 t2" || f[3] != "s" || f[4] != "zone-1 zone-2" {
		t.Fatalf("env file: %q", src)
	}
	if !strings.Contains(out.String(), "t2    zone-2  ") {
		t.Errorf("launch output lacks t2's zone:\n%s", out.String())
	}
	if err := launch.MembersAlive(f[2], 2)(); err != nil {
		t.Fatalf("t2: %v", err)
	}

	// A third node joins the running cluster under the next name.
	ctx3, cancel3 := context.WithCancel(context.Background())
	defer cancel3()
	var out3 syncBuf
	third := run(ctx3, &out3, launchFlags{cfg: launch.Config{Count: 1, Prefix: "t", First: 3, Join: []string{f[1]},
		Members: 3, LogLevel: "warn", StartTimeout: 30 * time.Second, Zones: 2}, dataDir: dir, secret: "s"})
	wait(&out3, third)
	if !strings.Contains(out3.String(), "t3 ") {
		t.Errorf("third launch output:\n%s", out3.String())
	}
	// The new node waited to see three; the others learn of it through gossip.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		err := launch.MembersAlive(f[2], 3)()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("t2 after t3 joined: %v", err)
		}
	}
	// t2 sees t1 and t3 in zone-1, itself in zone-2.
	var st node.Status
	if err := getJSON("http://"+f[2]+"/cluster/status", &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Zones) != 2 || st.Zones[0].Zone != "zone-1" || st.Zones[0].Members != 2 || st.Zones[1].Members != 1 || st.PartitionsNotSpread != 0 {
		t.Errorf("t2's status: zones %+v, %d partitions not spread", st.Zones, st.PartitionsNotSpread)
	}
	cancel3()
	if err := <-third; err != nil {
		t.Fatalf("stopping the third: %v", err)
	}
	cancel()
	if err := <-first; err != nil {
		t.Fatalf("stopping the cluster: %v", err)
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "t*.log"))
	if len(logs) != 3 {
		t.Errorf("logs %v, want one per node", logs)
	}
	if err := launch.Healthy(f[2])(); err == nil {
		t.Error("t2 still answers after the launcher stopped")
	}
}

// getJSON decodes the JSON body of a GET of url into v.
func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// TestFreePortCommand prints distinct ports.
func TestFreePortCommand(t *testing.T) {
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"freeport", "3"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	ports := strings.Fields(out.String())
	if len(ports) != 3 || ports[0] == ports[1] || ports[1] == ports[2] || ports[0] == ports[2] {
		t.Fatalf("freeport 3 printed %q", out.String())
	}
}
