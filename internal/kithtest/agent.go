package kithtest

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/launch"
)

// Agent is a "kith run" process of one device.
type Agent struct {
	*Device
	// Addr is the UDP address the agent listens on.
	Addr string

	p   *launch.Process
	log *lockedBuffer
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
	a := &Agent{Device: d, Addr: addr, log: &lockedBuffer{}}
	p, err := launch.Start(context.Background(), launch.Spec{
		Binary: Binary(d.T),
		Prefix: d.Prefix,
		Home:   d.Home,
		Listen: addr,
		Args:   append([]string{"--log-level", "debug"}, extra...),
		Env:    append(baseEnv(), d.Env...),
		Stdout: a.log,
	})
	if err != nil {
		d.T.Fatal(err)
	}
	a.p = p
	d.T.Cleanup(func() {
		a.Stop()
		if d.T.Failed() {
			d.T.Logf("log of the agent on %s (%s):\n%s", a.Addr, d.Home, a.Log())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.WaitReady(ctx); errors.Is(err, launch.ErrExited) {
		d.T.Fatalf("%v\n%s", err, a.Log())
	} else if err != nil {
		d.T.Fatalf("kith run did not answer on its control socket within a minute: %v\n%s", err, a.Log())
	}
	return a
}

// Log returns what the agent printed so far.
func (a *Agent) Log() string { return a.log.String() }

// Client returns a client for the agent's control socket.
func (a *Agent) Client() *control.Client { return a.p.Client() }

// Running reports whether the process is still running.
func (a *Agent) Running() bool { return a.p.Running() }

// Stop sends SIGTERM, waits up to 20 seconds for a clean exit, then kills
// the process. It returns the process's exit error (nil for a clean exit).
func (a *Agent) Stop() error { return a.p.Stop() }

// Kill ends the process with SIGKILL and waits for it.
func (a *Agent) Kill() { a.p.Kill() }

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
