package e2e

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kith-project/kith/internal/kithtest"
)

// The README's main command: kith demo runs the user stories end to end.
func TestDemo(t *testing.T) {
	d := kithtest.NewDevice(t)
	res := d.Run("", "demo", "--dir", t.TempDir())
	if res.Code != 0 {
		t.Fatalf("kith demo failed: %s", res)
	}
	for _, want := range []string{"(the same)", "paired with friend", `kind "own"`, "follows bob to 127.0.0.9:",
		"Starting a debate conversation with a quorum rule", "outcome: yes (yes 2)", "message set everywhere: (the same)", "carol's vote after the outcome is refused", "Done."} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("the demo's narration lacks %q:\n%s", want, res.Stdout)
		}
	}
	if strings.Contains(res.Stdout, "(DIFFERENT)") {
		t.Errorf("the demo saw different identities or check codes:\n%s", res.Stdout)
	}
}

// startDemo starts kith demo over the real binary with its stdout on a
// pipe, and returns the command, the pipe and the demo's folder once the
// folder holds a home.
func startDemo(t *testing.T) (*exec.Cmd, *bufio.Reader, io.Closer, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "demo")
	cmd := exec.Command(kithtest.Binary(t), "demo", "--dir", dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	r := bufio.NewReader(out)
	// The narration of the first story comes after alice's home is made.
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("the demo ended before its first story: %v\n%s", err, stderr.String())
		}
		if strings.Contains(line, "She also restores her phone") || strings.Contains(line, "writes them down") {
			break
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "alice-laptop")); err != nil {
		t.Fatalf("the demo has no home yet: %v", err)
	}
	return cmd, r, out, dir
}

// The demo's folder holds private keys: an interrupted demo removes it.
func TestDemoInterruptedLeavesNothing(t *testing.T) {
	t.Run("SIGINT", func(t *testing.T) {
		cmd, r, _, dir := startDemo(t)
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, r)
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Errorf("kith demo after SIGINT: %v; want exit status 1", err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("the demo left %s behind: %v", dir, err)
		}
	})
	t.Run("closed pipe", func(t *testing.T) {
		cmd, _, out, dir := startDemo(t)
		out.Close() // as "kith demo | head" does when head exits
		cmd.Wait()
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("the demo left %s behind: %v", dir, err)
		}
	})
}
