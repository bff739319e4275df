package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
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
	args    []string // everything but --clock-offset

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error
	paused  bool
	offset  time.Duration
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
	args := append([]string{"netns", "exec", n.h.ns, n.bin}, n.args...)
	if n.offset != 0 {
		args = append(args, "--clock-offset", n.offset.String())
	}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.mu.Unlock()
		return err
	}
	fmt.Fprintf(logf, "=== %s start %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	// `ip netns exec` execs the binary in place: the pid is dynakv's.
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		n.mu.Unlock()
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	done := make(chan struct{})
	n.cmd, n.done, n.paused = cmd, done, false
	n.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		n.mu.Lock()
		n.exitErr = err
		n.mu.Unlock()
		close(done)
	}()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(fmt.Sprintf("http://%s:%d/healthz", n.h.ip, httpPort))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited during start: %v (log %s)", n.name, n.exitErr, n.logPath)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not healthy after 30s (log %s)", n.name, n.logPath)
		}
	}
}

// running reports whether the process is alive (paused counts as alive).
func (n *node) running() bool {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// signal sends sig to the process this harness started, if it is running.
func (n *node) signal(sig syscall.Signal) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	select {
	case <-n.done:
		return
	default:
	}
	_ = n.cmd.Process.Signal(sig)
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

func (n *node) wait(d time.Duration) error {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-time.After(d):
		return fmt.Errorf("%s did not exit within %v", n.name, d)
	}
}

// exitStatus describes how the process ended, for the log.
func (n *node) exitStatus() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.exitErr == nil {
		return "exit 0"
	}
	return n.exitErr.Error()
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
