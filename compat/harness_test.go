package compat

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dynakv/dynakv/internal/freeport"
)

// binary is the dynakv binary built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dynakv-compat-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "dynakv")
	build := exec.Command("go", "build", "-o", binary, "../cmd/dynakv")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building dynakv:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one running dynakv server process.
type proc struct {
	t        testing.TB
	name     string
	dataDir  string
	args     []string
	cmd      *exec.Cmd
	done     chan struct{}
	exitErr  error
	logs     *syncBuffer
	RESP     string
	Memcache string
	HTTP     string
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freeAddr returns a loopback address whose port was free a moment ago, from
// outside the ephemeral range and never handed out twice (see internal/freeport).
func freeAddr(t testing.TB) string {
	t.Helper()
	a, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// startNode starts a dynakv server on fresh loopback ports with its data in a
// temporary directory. Extra flags are appended. The process is killed when the test
// ends if it is still running.
func startNode(t testing.TB, extra ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: "compat1", dataDir: filepath.Join(t.TempDir(), "data")}
	p.RESP, p.Memcache, p.HTTP = freeAddr(t), freeAddr(t), freeAddr(t)
	p.args = append([]string{"server", "--name", p.name, "--data-dir", p.dataDir,
		"--resp", p.RESP, "--memcache", p.Memcache, "--http", p.HTTP,
		"--gossip", freeAddr(t), "--cluster", freeAddr(t), "--log-level", "warn"}, extra...)
	p.start()
	t.Cleanup(func() {
		if p.running() {
			p.signal(syscall.SIGKILL)
			p.wait()
		}
		if t.Failed() {
			t.Logf("node logs:\n%s", p.logs.String())
		}
	})
	return p
}

func (p *proc) start() {
	p.t.Helper()
	p.logs = &syncBuffer{}
	p.cmd = exec.Command(binary, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + p.HTTP + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if !p.running() {
			p.t.Fatalf("dynakv exited during start: %v\n%s", p.exitErr, p.logs.String())
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("dynakv not healthy after 20s\n%s", p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) signal(sig syscall.Signal) {
	if p.running() {
		_ = p.cmd.Process.Signal(sig)
	}
}

// wait waits for the process to exit (at most 30s) and returns its exit error.
func (p *proc) wait() error {
	select {
	case <-p.done:
		return p.exitErr
	case <-time.After(30 * time.Second):
		p.t.Fatalf("dynakv did not exit within 30s\n%s", p.logs.String())
		return nil
	}
}

// restart starts the same node again on the same data directory and ports.
func (p *proc) restart() {
	p.t.Helper()
	if p.running() {
		p.t.Fatal("restart of a running node")
	}
	p.start()
}

// rawConn is a line-oriented raw TCP client for exact-byte checks.
type rawConn struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawConn) line() string {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	l, err := r.r.ReadString('\n')
	if err != nil {
		r.t.Fatalf("read: %v (got %q)", err, l)
	}
	return l
}

// closed reports whether the server closed the connection (within 5s).
func (r *rawConn) closed() bool {
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := r.r.ReadByte()
	return err == io.EOF
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}
