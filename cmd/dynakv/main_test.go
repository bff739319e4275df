package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dynakv/dynakv/internal/launch"
	"github.com/dynakv/dynakv/storage"
)

func TestExitCode(t *testing.T) {
	if got := exitCode(fmt.Errorf("node n1: %w", storage.ErrEngineFailed)); got != 70 {
		t.Errorf("exit code for a failed engine = %d, want 70", got)
	}
	if got := exitCode(errors.New("bad flag")); got != 2 {
		t.Errorf("exit code for another error = %d, want 2", got)
	}
}

// TestEngineFailureEndsTheProcess runs `dynakv server` on disk (this test binary
// as main), takes its data directory away under it, and writes until Pebble needs
// a new WAL file there: the storage engine fails, no write is acknowledged after
// the first that failed, and the process ends with status 70 after logging why.
func TestEngineFailureEndsTheProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server process")
	}
	t.Setenv(asMain, "1")
	data := filepath.Join(t.TempDir(), "data")
	n, err := launch.Node{Name: "n1", DataDir: data, Memcache: "off", Secret: "s",
		Extra: []string{"--aae-interval", "-1s"}}.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuf
	p, err := launch.Start(n.Spec(os.Args[0], &logs))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	if err := p.Ready(context.Background(), launch.Healthy(n.HTTP), 30*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}

	conn, err := net.Dial("tcp", n.RESP)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	set := func(i int, v string) (string, error) {
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := fmt.Fprintf(conn, "*3\r\n$3\r\nSET\r\n$%d\r\nk%d\r\n$%d\r\n%s\r\n", len(fmt.Sprint(i))+1, i, len(v), v); err != nil {
			return "", err
		}
		line, err := r.ReadString('\n')
		return strings.TrimSpace(line), err
	}
	if got, err := set(0, "before"); got != "+OK" {
		t.Fatalf("SET on a healthy node: %q, %v\n%s", got, err, logs.String())
	}
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	// Pebble's first memtable holds 256 KiB: the WAL rotates within a few MiB.
	value := strings.Repeat("x", 64<<10)
	failed := false
	for i := 1; i <= 200; i++ {
		got, err := set(i, value)
		if got == "+OK" && failed {
			t.Fatalf("SET %d acknowledged after a write failed", i)
		}
		if got != "+OK" {
			failed = true
		}
		if err != nil {
			break // the process ended
		}
	}
	if !failed {
		t.Fatalf("200 SETs of 64 KiB succeeded without a data directory\n%s", logs.String())
	}
	err = p.Wait(30 * time.Second)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 70 {
		t.Fatalf("dynakv ended with %v, want exit status 70\n%s", err, logs.String())
	}
	if out := logs.String(); !strings.Contains(out, "storage engine failed; the node stops") || !strings.Contains(out, storage.ErrEngineFailed.Error()) {
		t.Errorf("the failure was not logged:\n%s", out)
	}
}
