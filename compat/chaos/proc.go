package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dynakv/dynakv/internal/launch"
)

// Ports every node listens on, each at its own namespace's address.
const (
	respPort    = 6379
	mcPort      = 11211
	httpPort    = 9121
	gossipPort  = 7946
	clusterPort = 7947
)

// node is one dynakv server process in its namespace, on its own tmpfs.
type node struct {
	h       *host
	name    string
	bin     string
	dataDir string // on its host's tmpfs
	logPath string
	cmdline launch.Node // everything but --clock-offset

	mu     sync.Mutex
	proc   *launch.Proc // nil until started
	paused bool
	offset time.Duration
}

func (n *node) resp() string     { return fmt.Sprintf("%s:%d", n.h.ip, respPort) }
func (n *node) memcache() string { return fmt.Sprintf("%s:%d", n.h.ip, mcPort) }
func (n *node) http() string     { return fmt.Sprintf("%s:%d", n.h.ip, httpPort) }

// mountDisk puts h's data disk, a tmpfs of size bytes, at dir, so a disk-full
// fault can fill it without touching the machine's disks. Every node that runs on
// h keeps its data directory in it.
func (h *host) mountDisk(dir string, size int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := run("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir); err != nil {
		return err
	}
	h.mnt = dir
	return nil
}

func (h *host) unmountDisk() {
	if h.mnt == "" {
		return
	}
	if err := run("umount", h.mnt); err != nil {
		_ = run("umount", "-l", h.mnt)
	}
	h.mnt = ""
}

// start runs the server and waits until /healthz answers.
func (n *node) start() error {
	n.mu.Lock()
	cl := n.cmdline
	if n.offset != 0 {
		cl.Extra = append(slices.Clone(cl.Extra), "--clock-offset", n.offset.String())
	}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.mu.Unlock()
		return err
	}
	// `ip netns exec` execs the binary in place: the pid is dynakv's.
	spec := cl.Spec(n.bin, logf)
	spec.Path, spec.Args = "ip", append([]string{"netns", "exec", n.h.ns, spec.Path}, spec.Args...)
	fmt.Fprintf(logf, "=== %s start %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(spec.Args, " "))
	p, err := launch.Start(spec)
	logf.Close() // the process has its own copy
	if err != nil {
		n.mu.Unlock()
		return err
	}
	n.proc, n.paused = p, false
	n.mu.Unlock()
	if err := p.Ready(context.Background(), launch.Healthy(cl.HTTP), 30*time.Second); err != nil {
		return fmt.Errorf("%w (log %s)", err, n.logPath)
	}
	return nil
}

// process returns the process last started, or nil.
func (n *node) process() *launch.Proc {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc
}

// running reports whether the process is alive (paused counts as alive).
func (n *node) running() bool {
	p := n.process()
	return p != nil && !p.Exited()
}

// signal sends sig to the process this harness started, if it is running.
func (n *node) signal(sig syscall.Signal) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil || n.proc.Exited() {
		return
	}
	n.proc.Signal(sig)
	switch sig {
	case syscall.SIGSTOP:
		n.paused = true
	case syscall.SIGCONT:
		n.paused = false
	}
}

// kill sends SIGKILL (after SIGCONT, so a paused process dies too) and waits.
func (n *node) kill() error {
	n.signal(syscall.SIGCONT)
	n.signal(syscall.SIGKILL)
	return n.wait(15 * time.Second)
}

// stop sends SIGTERM and waits for a clean exit.
func (n *node) stop() error {
	n.signal(syscall.SIGCONT)
	n.signal(syscall.SIGTERM)
	if err := n.wait(20 * time.Second); err != nil {
		return n.kill()
	}
	return nil
}

// wait waits at most d for the process to exit, whatever its status.
func (n *node) wait(d time.Duration) error {
	p := n.process()
	if p == nil {
		return nil
	}
	if err := p.Wait(d); errors.Is(err, launch.ErrRunning) {
		return err
	}
	return nil
}

// exitStatus describes how the process ended, for the log.
func (n *node) exitStatus() string {
	p := n.process()
	if p == nil {
		return "not started"
	}
	if err := p.Err(); err != nil {
		return err.Error()
	}
	return "exit 0"
}

// tailLog returns the last lines of the node's log.
func (n *node) tailLog(lines int) string {
	data, err := os.ReadFile(n.logPath)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

// fillerPath is the file a disk-full fault grows to fill the node's tmpfs.
func (n *node) fillerPath() string { return filepath.Join(n.h.mnt, "chaos-filler") }

// fillDisk leaves at most slack bytes free on the node's tmpfs.
func (n *node) fillDisk(slack int64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(n.dataDir, &st); err != nil {
		return err
	}
	free := int64(st.Bavail) * st.Bsize
	f, err := os.OpenFile(n.fillerPath(), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if free <= slack {
		return nil
	}
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, free-slack); err != nil {
		return fmt.Errorf("fallocate %d bytes: %w", free-slack, err)
	}
	return nil
}

func (n *node) freeDisk() error {
	if err := os.Remove(n.fillerPath()); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}
