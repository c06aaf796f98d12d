package kithtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Terminal is a shell command running in a real pseudo-terminal of a
// private tmux server, of a fixed size, that a test types into and reads
// the screen of, as a person at a terminal would.
type Terminal struct {
	t    testing.TB
	sock string
}

// NewTerminal starts script (a sh script) in a new tmux session of cols ×
// rows cells, with env added to the test's environment (less KITH_*). It
// skips the test if tmux is missing. The session is killed when the test
// ends; a script should end by waiting (exec cat) so that its screen stays.
func NewTerminal(t testing.TB, cols, rows int, script string, env ...string) *Terminal {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed: the terminal tests need it (apt-get install tmux)")
	}
	dir, err := os.MkdirTemp("", "kith-tmux-")
	if err != nil {
		t.Fatal(err)
	}
	tm := &Terminal{t: t, sock: filepath.Join(dir, "s")}
	t.Cleanup(func() {
		tm.tmux("kill-server")
		os.RemoveAll(dir)
	})
	var assign []string
	for _, kv := range append(baseEnv(), env...) {
		if k, _, ok := strings.Cut(kv, "="); ok && k != "" && !strings.ContainsAny(kv, "'\n") && !strings.HasPrefix(k, "TMUX") {
			assign = append(assign, "'"+kv+"'")
		}
	}
	cmdline := "exec env -i " + strings.Join(assign, " ") + " TERM=xterm-256color sh -c '" + strings.ReplaceAll(script, "'", `'\''`) + "'"
	if out, err := tm.tmux("new-session", "-d", "-s", "kith", "-x", fmt.Sprint(cols), "-y", fmt.Sprint(rows), cmdline); err != nil {
		t.Fatalf("tmux new-session: %v: %s", err, out)
	}
	return tm
}

func (tm *Terminal) tmux(args ...string) (string, error) {
	cmd := exec.Command("tmux", append([]string{"-f", "/dev/null", "-S", tm.sock}, args...)...)
	cmd.Env = append(os.Environ(), "TMUX=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Type types each line and Enter after it, all in one go, as a paste.
func (tm *Terminal) Type(lines ...string) {
	tm.t.Helper()
	var args []string
	for i, l := range lines {
		if i > 0 {
			args = append(args, ";")
		}
		if l != "" {
			args = append(args, "send-keys", "-t", "kith", "-l", l, ";")
		}
		args = append(args, "send-keys", "-t", "kith", "Enter")
	}
	if out, err := tm.tmux(args...); err != nil {
		tm.t.Fatalf("tmux send-keys: %v: %s", err, out)
	}
}

// Screen returns what the terminal shows, with the lines scrolled off.
func (tm *Terminal) Screen() string {
	tm.t.Helper()
	out, err := tm.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "kith")
	if err != nil {
		tm.t.Fatalf("tmux capture-pane: %v: %s", err, out)
	}
	return out
}

// WaitFor waits until the screen shows s, and returns the screen. The
// bound only ends a test that would otherwise hang.
func (tm *Terminal) WaitFor(s string) string {
	tm.t.Helper()
	return tm.WaitForN(s, 1)
}

// WaitForN waits until the screen shows s n times, and returns the screen.
func (tm *Terminal) WaitForN(s string, n int) string {
	tm.t.Helper()
	var screen string
	Eventually(tm.t, 2*time.Minute, fmt.Sprintf("the terminal showing %q %d times", s, n), func() error {
		screen = tm.Screen()
		if strings.Count(screen, s) < n {
			return fmt.Errorf("the screen is:\n%s", screen)
		}
		return nil
	})
	return screen
}
