package kithtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
)

// Agent is a "kith run" process of one device.
type Agent struct {
	*Device
	// Addr is the UDP address the agent listens on.
	Addr string

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // its exit error, valid after done
	log  *lockedBuffer
}

// lockedBuffer is a bytes.Buffer safe for the process's writes and the
// test's reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// FreeAddr returns host:port with a UDP port free on host right now.
func FreeAddr(t testing.TB, host string) string {
	t.Helper()
	c, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("finding a free UDP port on %s: %v", host, err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// Start runs "kith run --listen addr" for this device with extra flags, and
// returns once its control socket answers. The agent is stopped when the
// test ends.
func (d *Device) Start(addr string, extra ...string) *Agent {
	d.T.Helper()
	a := &Agent{Device: d, Addr: addr, done: make(chan struct{}), log: &lockedBuffer{}}
	args := append([]string{"--home", d.Home, "run", "--listen", addr, "--log-level", "debug"}, extra...)
	argv := append(append(slices.Clone(d.Prefix), Binary(d.T)), args...)
	a.cmd = exec.Command(argv[0], argv[1:]...)
	a.cmd.Env = append(baseEnv(), d.Env...)
	a.cmd.Stdout = a.log
	a.cmd.Stderr = a.log
	if err := a.cmd.Start(); err != nil {
		d.T.Fatalf("starting kith run: %v", err)
	}
	go func() {
		a.err = a.cmd.Wait()
		close(a.done)
	}()
	d.T.Cleanup(func() {
		a.Stop()
		if d.T.Failed() {
			d.T.Logf("log of the agent on %s (%s):\n%s", a.Addr, d.Home, a.Log())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := control.NewClient(d.Home).Do(ctx, "GET", "/v1/id", nil, nil)
		cancel()
		if err == nil {
			return a
		}
		select {
		case <-a.done:
			d.T.Fatalf("kith run exited before it was ready: %v\n%s", a.err, a.Log())
		default:
		}
		if time.Now().After(deadline) {
			d.T.Fatalf("kith run did not answer on its control socket within a minute: %v\n%s", err, a.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Log returns what the agent printed so far.
func (a *Agent) Log() string { return a.log.String() }

// Running reports whether the process is still running.
func (a *Agent) Running() bool {
	select {
	case <-a.done:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM, waits up to 20 seconds for a clean exit, then kills
// the process. It returns the process's exit error (nil for a clean exit).
func (a *Agent) Stop() error {
	if !a.Running() {
		return a.err
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
		return a.err
	case <-time.After(20 * time.Second):
		a.cmd.Process.Kill()
		<-a.done
		return fmt.Errorf("kith run did not stop within 20 s of SIGTERM; killed")
	}
}

// Eventually calls f until it returns nil or timeout passes, and then fails
// the test with f's last error.
func Eventually(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// WriteFile writes a file under the test's temporary folder and returns its
// path.
func WriteFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Contains reports whether the agent's log contains s.
func (a *Agent) Contains(s string) bool { return strings.Contains(a.Log(), s) }
