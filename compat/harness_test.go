package compat

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/dynakv/dynakv/internal/freeport"
	"github.com/dynakv/dynakv/internal/launch"
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

// proc is one dynakv server process of a test, started (and started again) with
// the same command line.
type proc struct {
	t    testing.TB
	name string
	node launch.Node
	p    *launch.Proc
	logs *launch.Buffer // this run's output
	// The node's listen addresses.
	RESP     string
	Memcache string
	HTTP     string
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
	return startProc(t, launch.Node{Name: "compat1", LogLevel: "warn", Extra: extra})
}

// startProc starts n on free ports for each address it leaves empty, with its data
// in a temporary directory, and waits until it is healthy; it is killed when the
// test ends, and its output logged if the test failed.
func startProc(t testing.TB, n launch.Node) *proc {
	t.Helper()
	n.DataDir = filepath.Join(t.TempDir(), "data")
	n, err := n.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: n.Name, node: n, RESP: n.RESP, Memcache: n.Memcache, HTTP: n.HTTP}
	t.Cleanup(func() {
		if p.running() {
			p.signal(syscall.SIGCONT)
			p.signal(syscall.SIGKILL)
			p.wait()
		}
		if t.Failed() && p.logs != nil {
			t.Logf("%s logs:\n%s", p.name, p.logs.String())
		}
	})
	p.start()
	return p
}

// start runs the node's command line and waits (at most 20s) until it is healthy.
func (p *proc) start() {
	p.t.Helper()
	p.logs = &launch.Buffer{}
	lp, err := launch.Start(p.node.Spec(binary, p.logs))
	if err != nil {
		p.t.Fatal(err)
	}
	p.p = lp
	if err := lp.Ready(context.Background(), launch.Healthy(p.HTTP), 20*time.Second); err != nil {
		p.t.Fatalf("%v\n%s", err, p.logs.String())
	}
}

func (p *proc) running() bool { return p.p != nil && !p.p.Exited() }

func (p *proc) signal(sig syscall.Signal) {
	if p.p != nil {
		p.p.Signal(sig)
	}
}

// wait waits for the process to exit (at most 30s) and returns its exit error.
func (p *proc) wait() error {
	err := p.p.Wait(30 * time.Second)
	if errors.Is(err, launch.ErrRunning) {
		p.t.Fatalf("dynakv did not exit within 30s\n%s", p.logs.String())
	}
	return err
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
