package launch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"syscall"
	"time"
)

// Errors of Proc's waits, checked with errors.Is.
var (
	// ErrRunning: the process had not exited when the wait ended.
	ErrRunning = errors.New("launch: still running")
	// ErrKilled: Stop had to kill the process after SIGTERM's grace.
	ErrKilled = errors.New("launch: did not stop on SIGTERM: killed")
)

// killWait is how long Stop and Kill wait for a process to die of SIGKILL.
const killWait = 15 * time.Second

// Spec is a process to start.
type Spec struct {
	Name string // in messages
	Path string
	Args []string
	// Output receives the process's standard output and error; nil discards them.
	// An *os.File is handed to the process itself: the caller may close its own
	// copy once Start returns.
	Output io.Writer
}

// Proc is one process Start started.
type Proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // the exit status; written before done is closed
}

// Start starts s. It does not wait for the process to be ready: see Proc.Ready.
func Start(s Spec) (*Proc, error) {
	cmd := exec.Command(s.Path, s.Args...)
	if s.Output != nil {
		cmd.Stdout, cmd.Stderr = s.Output, s.Output
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("launch: start %s: %w", s.Name, err)
	}
	p := &Proc{name: s.Name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Name returns the Spec's name.
func (p *Proc) Name() string { return p.name }

// Pid returns the process's id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err returns the exit status (nil for exit 0) once the process has exited, and
// ErrRunning before.
func (p *Proc) Err() error {
	if !p.Exited() {
		return ErrRunning
	}
	return p.err
}

// Signal sends sig to the process unless it has exited.
func (p *Proc) Signal(sig syscall.Signal) {
	if !p.Exited() {
		_ = p.cmd.Process.Signal(sig)
	}
}

// Wait waits at most d for the process to exit and returns its exit status, or
// an error wrapping ErrRunning.
func (p *Proc) Wait(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return p.err
	case <-t.C:
		return fmt.Errorf("%w: %s did not exit within %v", ErrRunning, p.name, d)
	}
}

// Stop ends the process: SIGCONT (a paused process gets the signal too) and
// SIGTERM, then SIGKILL if it has not exited within grace. It returns nil once
// the process exited on SIGTERM (whatever its status), an error wrapping ErrKilled
// if it had to be killed, or one wrapping ErrRunning if it survived SIGKILL.
func (p *Proc) Stop(grace time.Duration) error {
	if p.Exited() {
		return nil
	}
	p.Signal(syscall.SIGCONT)
	p.Signal(syscall.SIGTERM)
	if err := p.Wait(grace); !errors.Is(err, ErrRunning) {
		return nil
	}
	if err := p.Kill(); err != nil {
		return err
	}
	return fmt.Errorf("%w (%s, after %v)", ErrKilled, p.name, grace)
}

// Kill sends SIGCONT and SIGKILL and waits for the process to exit; the error
// wraps ErrRunning if it has not within 15 s.
func (p *Proc) Kill() error {
	p.Signal(syscall.SIGCONT)
	p.Signal(syscall.SIGKILL)
	if err := p.Wait(killWait); errors.Is(err, ErrRunning) {
		return fmt.Errorf("%s (pid %d) survived SIGKILL: %w", p.name, p.Pid(), err)
	}
	return nil
}

// Ready polls probe every 20 ms until it returns nil, and returns an error when the
// process exits first, timeout passes or ctx ends. It leaves the process running.
func (p *Proc) Ready(ctx context.Context, probe func() error, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := probe()
		if err == nil {
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("launch: %s exited during start: %v", p.name, p.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("launch: %s not ready after %v: %w", p.name, timeout, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("launch: %s: %w", p.name, ctx.Err())
		case <-p.done:
		case <-time.After(20 * time.Millisecond):
		}
	}
}
