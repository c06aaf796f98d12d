// Package launch starts "kith run" as a child process, waits until its
// control socket answers, watches its status, and stops it. The demo
// ("kith demo") and the end-to-end harness (internal/kithtest) both start
// their agents with it.
//
// # Lifetime
//
// [Start] starts the process and one goroutine that waits for it; the
// [Process] owns both. [Process.Stop] asks the agent to stop with SIGTERM,
// as Ctrl-C or a service manager would, and kills it if it has not exited
// within [StopTimeout]. Every started process must be stopped or waited
// for.
package launch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"syscall"
	"time"

	"github.com/kith-project/kith/internal/control"
)

// StopTimeout is how long [Process.Stop] waits for a clean exit before it
// kills the process.
const StopTimeout = 20 * time.Second

// pollInterval is how often WaitReady and WaitStatus ask the agent again.
const pollInterval = 25 * time.Millisecond

// ErrExited is the error of [Process.WaitReady] when the process exited
// before it answered.
var ErrExited = errors.New("kith run exited before it was ready")

// Spec says how to run one agent.
type Spec struct {
	// Binary is the kith binary.
	Binary string
	// Prefix, if set, is a command put in front of Binary, such as
	// ["ip", "netns", "exec", "ns"]. It must exec Binary in place, so that
	// signals and the exit status are kith's own.
	Prefix []string
	// Home is the device's home folder (--home).
	Home string
	// Listen is the UDP address to listen on (--listen).
	Listen string
	// Args are further flags of "kith run".
	Args []string
	// Env is the process's whole environment (nil: this process's).
	Env []string
	// Stdout receives what the agent prints on stdout and stderr (nil:
	// discarded).
	Stdout io.Writer
}

// Process is a running "kith run".
type Process struct {
	// Constant after Start.
	spec   Spec
	cmd    *exec.Cmd
	client *control.Client

	done chan struct{} // closed when the process has been waited for
	err  error         // its exit error, written before done closes
}

// Start starts the agent described by s. It returns at once; call
// [Process.WaitReady] to wait until the agent answers. If ctx ends before
// the process exits, the process is stopped as by [Process.Stop].
func Start(ctx context.Context, s Spec) (*Process, error) {
	if s.Binary == "" || s.Home == "" || s.Listen == "" {
		return nil, errors.New("launch: a Spec needs Binary, Home and Listen")
	}
	args := append([]string{"--home", s.Home, "run", "--listen", s.Listen}, s.Args...)
	argv := append(append(slices.Clone(s.Prefix), s.Binary), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = StopTimeout
	cmd.Env = s.Env
	cmd.Stdout, cmd.Stderr = s.Stdout, s.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("launch: starting kith run: %w", err)
	}
	p := &Process{spec: s, cmd: cmd, client: control.NewClient(s.Home), done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Listen is the UDP address the agent was told to listen on.
func (p *Process) Listen() string { return p.spec.Listen }

// Home is the agent's home folder.
func (p *Process) Home() string { return p.spec.Home }

// Client returns a client for the agent's control socket.
func (p *Process) Client() *control.Client { return p.client }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit and returns its exit error (nil for
// a clean exit).
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Running reports whether the process is still running.
func (p *Process) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// WaitReady waits until the agent answers on its control socket. It fails
// with [ErrExited] (wrapping the exit error) if the process exits first,
// and with ctx's error and the last answer's if ctx ends first.
func (p *Process) WaitReady(ctx context.Context) error {
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := p.client.ID(rctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%w: %v", ErrExited, p.err)
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ctx.Err(), err)
		case <-time.After(pollInterval):
		}
	}
}

// Stop sends SIGTERM and waits up to [StopTimeout] for the process to
// exit, then kills it. It returns the exit error (nil for a clean exit).
// Stopping a process that has exited only returns that error.
func (p *Process) Stop() error {
	if !p.Running() {
		return p.err
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(StopTimeout):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("kith run did not stop within %v of SIGTERM; killed", StopTimeout)
	}
}

// Kill sends SIGKILL, as a crash or a power cut would end the agent, and
// waits for the process to exit.
func (p *Process) Kill() {
	if p.Running() {
		p.cmd.Process.Kill()
	}
	<-p.done
}

// WaitStatus asks c for the agent's status until ok accepts it, and
// returns that status. If ctx ends first it returns the last status seen
// with ctx's error (and the last request's, if it failed).
func WaitStatus(ctx context.Context, c *control.Client, ok func(control.Status) bool) (control.Status, error) {
	var last control.Status
	for {
		st, err := c.Status(ctx)
		if err == nil {
			last = st
			if ok(st) {
				return st, nil
			}
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return last, fmt.Errorf("%w: %v", ctx.Err(), err)
			}
			return last, ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}
