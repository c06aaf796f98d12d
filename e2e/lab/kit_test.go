package lab

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/kithtest"
	"github.com/kith-project/kith/seed"
)

// Helpers shared with package e2e (copied from its test files, which are
// not importable): people with an agent, pairing, status polling.

type identity struct {
	UserID           string `json:"user_id"`
	DeviceID         string `json:"device_id"`
	DeviceIndex      uint32 `json:"device_index"`
	Name             string `json:"name"`
	Mnemonic         string `json:"mnemonic"`
	ArchiveRecipient string `json:"archive_recipient"`
}

type showResult struct {
	Code      string    `json:"code"`
	ExpiresAt time.Time `json:"expires_at"`
}

type scanResult struct {
	UserID string `json:"user_id"`
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	SAS    string `json:"sas"`
	Status string `json:"status"`
}

type friendView struct {
	UserID  string `json:"user_id"`
	Name    string `json:"name"`
	Status  string `json:"status"`
	SAS     string `json:"sas"`
	Devices []struct {
		DeviceID string `json:"device_id"`
		Addr     string `json:"addr"`
		Online   bool   `json:"online"`
	} `json:"devices"`
}

// person is one user with one device running an agent.
// person is one user with one device running an agent.
type person struct {
	*kithtest.Device
	id    identity
	agent *kithtest.Agent
}

func (p *person) show(t testing.TB, args ...string) (showResult, string) {
	t.Helper()
	png := filepath.Join(t.TempDir(), "invite.png")
	var s showResult
	p.JSON(&s, "", append([]string{"pair", "show", "--png", png}, args...)...)
	if !strings.HasPrefix(s.Code, "KITH2:") {
		t.Fatalf("pair show gave code %q", s.Code)
	}
	return s, png
}

func (p *person) friends(t *testing.T) []friendView {
	t.Helper()
	var fs []friendView
	p.JSON(&fs, "", "friends")
	return fs
}

func findFriend(fs []friendView, user string) (friendView, bool) {
	for _, f := range fs {
		if f.UserID == user {
			return f, true
		}
	}
	return friendView{}, false
}

// pair makes a and b friends through PNG files and returns the SAS. The
// first scan does not wait (--no-wait), as a script that drives both
// sides must do.
// pair makes a and b friends through PNG files and returns the SAS. The
// first scan does not wait (--no-wait), as a script that drives both
// sides must do.
func pair(t testing.TB, a, b *person) string {
	t.Helper()
	_, aPNG := a.show(t)
	_, bPNG := b.show(t)
	var first, second scanResult
	a.JSON(&first, "", "pair", "scan", "--no-wait", bPNG)
	if first.Status != "waiting" || first.UserID != b.id.UserID || first.SAS == "" {
		t.Fatalf("first scan: %+v, want waiting for %s with a SAS", first, b.id.UserID)
	}
	b.JSON(&second, "", "pair", "scan", aPNG)
	if second.Status != "paired" || second.Kind != "friend" || second.UserID != a.id.UserID {
		t.Fatalf("second scan: %+v, want paired friend %s", second, a.id.UserID)
	}
	if second.SAS != first.SAS {
		t.Fatalf("the two screens show different check codes: %q and %q", first.SAS, second.SAS)
	}
	return second.SAS
}

// syncBuffer is a bytes.Buffer that a process writes while the test reads.
// syncBuffer is a bytes.Buffer that a process writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

// background is a kith command running while the test goes on.
// background is a kith command running while the test goes on.
type background struct {
	stdout, stderr syncBuffer
	done           chan struct{}
	code           int
	err            error
}

// startKith runs kith with args against p's home in the background, with
// its output in text form (as a person sees it).
// startKith runs kith with args against p's home in the background, with
// its output in text form (as a person sees it).
func startKith(t *testing.T, p *person, args ...string) *background {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	cmd := exec.CommandContext(ctx, kithtest.Binary(t), append([]string{"--home", p.Home}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KITH_") && !strings.HasPrefix(kv, "XDG_DATA_HOME=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	b := &background{done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &b.stdout, &b.stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		defer close(b.done)
		defer cancel()
		if err := cmd.Wait(); err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				b.code = ee.ExitCode()
			} else {
				b.code, b.err = -1, err
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-b.done
	})
	return b
}

// wait waits for the command to end, at most timeout.
// wait waits for the command to end, at most timeout.
func (b *background) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(timeout):
		t.Fatalf("the command did not end within %v\nstdout: %s\nstderr: %s", timeout, b.stdout.String(), b.stderr.String())
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

// quickStatus asks an agent for its status over the control socket, without
// starting a process, so that polling is fine-grained.
// quickStatus asks an agent for its status over the control socket, without
// starting a process, so that polling is fine-grained.
func quickStatus(t testing.TB, p *person) control.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := control.NewClient(p.Home).Status(ctx)
	if err != nil {
		t.Fatalf("status of %s: %v", p.id.Name, err)
	}
	return st
}

func peerIn(st control.Status, device string) (control.PeerStatus, bool) {
	d, err := seed.ParseDevicePublic(device)
	if err != nil {
		return control.PeerStatus{}, false
	}
	return st.Peer(d)
}

// waitPeer polls p's status until cond holds for device, and returns how
// long that took.
// waitPeer polls p's status until cond holds for device, and returns how
// long that took.
func waitPeer(t *testing.T, p *person, device string, limit time.Duration, what string, cond func(control.PeerStatus) bool) time.Duration {
	t.Helper()
	start := time.Now()
	var last control.PeerStatus
	for {
		if ps, ok := peerIn(quickStatus(t, p), device); ok {
			last = ps
			if cond(ps) {
				return time.Since(start)
			}
		}
		if time.Since(start) > limit {
			t.Fatalf("%s: %s did not see it within %v; last %+v", what, p.id.Name, limit, last)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const testT = 200 * time.Millisecond

type statusView struct {
	UserID      string   `json:"user_id"`
	DeviceID    string   `json:"device_id"`
	Listen      string   `json:"listen"`
	PublicAddrs []string `json:"public_addrs"`
	Peers       []struct {
		DeviceID      string   `json:"device_id"`
		UserID        string   `json:"user_id"`
		Kind          string   `json:"kind"`
		Addr          string   `json:"addr"`
		LastSeen      *string  `json:"last_seen"`
		Online        bool     `json:"online"`
		RTTMillis     *float64 `json:"rtt_ms"`
		ClockOffsetMs *float64 `json:"clock_offset_ms"`
	} `json:"peers"`
	Cluster struct {
		State     string   `json:"state"`
		Leader    string   `json:"leader"`
		Voters    []string `json:"voters"`
		Nonvoters []string `json:"nonvoters"`
	} `json:"cluster"`
}
