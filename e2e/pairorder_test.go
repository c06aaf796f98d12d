package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/kithtest"
)

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
type background struct {
	stdout, stderr syncBuffer
	done           chan struct{}
	code           int
	err            error
}

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
func (b *background) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(timeout):
		t.Fatalf("the command did not end within %v\nstdout: %s\nstderr: %s", timeout, b.stdout.String(), b.stderr.String())
	}
}

// Pairing completes on both sides, with exit status 0 and "Paired", in
// either order: the first scanner's "kith pair scan" waits, showing that it
// waits, and ends when the second scanner's scan completes the pairing.
func TestPairingEitherOrder(t *testing.T) {
	alice := newPerson(t, "alice", "127.0.0.2")
	bob := newPerson(t, "bob", "127.0.0.3")
	for _, tc := range []struct {
		name          string
		first, second *person
	}{
		{"alice scans first", alice, bob},
		{"bob scans first", bob, alice},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Each round is a new pairing of the same two users.
			for _, p := range []*person{alice, bob} {
				for _, f := range p.friends(t) {
					p.JSON(new(struct{}), "", "friends", "remove", f.UserID)
				}
			}
			_, firstPNG := tc.first.show(t)
			_, secondPNG := tc.second.show(t)
			first := startKith(t, tc.first, "pair", "scan", secondPNG)
			kithtest.Eventually(t, time.Minute, "the first scanner says that it waits", func() error {
				select {
				case <-first.done:
					t.Fatalf("the first scan ended before the second: exit %d\nstdout: %s\nstderr: %s", first.code, first.stdout.String(), first.stderr.String())
				default:
				}
				if out := first.stdout.String(); !strings.Contains(out, "Waiting for the other person to scan your code… (Ctrl-C to stop)") {
					return errorString("stdout so far: " + out)
				}
				return nil
			})
			second := tc.second.Run("", "pair", "scan", firstPNG)
			if second.Code != 0 || !strings.Contains(second.Stdout, "Paired with friend \""+tc.first.id.Name+"\"") {
				t.Fatalf("second scan: %s", second)
			}
			first.wait(t, 2*time.Minute)
			if first.code != 0 || !strings.Contains(first.stdout.String(), "Paired with friend \""+tc.second.id.Name+"\"") {
				t.Fatalf("first scan: exit %d (%v)\nstdout: %s\nstderr: %s", first.code, first.err, first.stdout.String(), first.stderr.String())
			}
			// Both sides stored the pairing, with the same check code.
			fa, okA := findFriend(tc.first.friends(t), tc.second.id.UserID)
			fb, okB := findFriend(tc.second.friends(t), tc.first.id.UserID)
			if !okA || !okB || fa.SAS == "" || fa.SAS != fb.SAS {
				t.Fatalf("stored pairings: %+v (%v), %+v (%v)", fa, okA, fb, okB)
			}
			if !strings.Contains(first.stdout.String(), fa.SAS) || !strings.Contains(second.Stdout, fa.SAS) {
				t.Fatalf("the check code %s is not on both screens:\n%s\n%s", fa.SAS, first.stdout.String(), second.Stdout)
			}
		})
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }
