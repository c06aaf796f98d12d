package home

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// helperEnv names the home folder that the helper process locks.
const helperEnv = "KITH_HOME_TEST_LOCK_HELPER"

// TestMain turns the test binary into a helper process that holds a home's
// lock until it is killed or its stdin closes, when helperEnv is set.
func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		os.Exit(holdLock(dir))
	}
	os.Exit(m.Run())
}

func holdLock(dir string) int {
	l, err := Lock(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("locked")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until stdin closes
	if err := l.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startHolder runs a helper process that locks dir, and waits until it holds
// the lock.
func startHolder(t *testing.T, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "locked" {
		t.Fatalf("helper did not take the lock: %q, %v", line, err)
	}
	return cmd
}

func TestLockHeldByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	holder := startHolder(t, dir)

	start := time.Now()
	l, err := Lock(dir)
	elapsed := time.Since(start)
	if err == nil {
		l.Close()
		t.Fatal("Lock succeeded while another process holds the home")
	}
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("got %v, want ErrInUse", err)
	}
	if elapsed > time.Second {
		t.Errorf("Lock took %v to fail, want under a second", elapsed)
	}
	var inUse *InUseError
	if !errors.As(err, &inUse) || inUse.PID != holder.Process.Pid {
		t.Errorf("got %#v, want the holder's pid %d", inUse, holder.Process.Pid)
	}
	want := "pid " + strconv.Itoa(holder.Process.Pid)
	if msg := err.Error(); !strings.Contains(msg, want) || !strings.Contains(msg, dir) || strings.Contains(msg, "kith") {
		t.Errorf("message %q does not name the folder and %q, or carries a command-line hint", msg, want)
	}
}

func TestLockOfDeadProcessDoesNotBlock(t *testing.T) {
	dir := t.TempDir()
	holder := startHolder(t, dir)
	if err := holder.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = holder.Wait()

	// The dead holder's pid is still in the file: it must not matter.
	if pid := readPID(filepath.Join(dir, LockName)); pid != holder.Process.Pid {
		t.Fatalf("lock file holds pid %d, want the dead holder's %d", pid, holder.Process.Pid)
	}
	l, err := Lock(dir)
	if err != nil {
		t.Fatalf("a lock left by a dead process blocked: %v", err)
	}
	defer l.Close()
	if pid := readPID(l.Path()); pid != os.Getpid() {
		t.Errorf("lock file holds pid %d, want ours %d", pid, os.Getpid())
	}
}

func TestLockTwiceInOneProcess(t *testing.T) {
	dir := t.TempDir()
	first, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Lock(dir)
	var inUse *InUseError
	if !errors.As(err, &inUse) || inUse.PID != os.Getpid() {
		t.Fatalf("second Lock: got %v, want InUseError naming our pid", err)
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	data, err := os.ReadFile(first.Path())
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != 0 {
		t.Errorf("lock file after Close holds %q, want it empty", data)
	}

	again, err := Lock(dir)
	if err != nil {
		t.Fatalf("Lock after Close: %v", err)
	}
	again.Close()
}

func TestLockFileMode(t *testing.T) {
	dir := t.TempDir()
	l, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	info, err := os.Stat(l.Path())
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("lock file mode %v, want 0600", info.Mode().Perm())
	}
}

func TestLockMissingFolder(t *testing.T) {
	_, err := Lock(filepath.Join(t.TempDir(), "missing"))
	if err == nil || errors.Is(err, ErrInUse) {
		t.Fatalf("got %v, want an error about the missing folder", err)
	}
}

func TestLockHolderWithoutPID(t *testing.T) {
	// A holder that has taken the lock but not (yet) written its pid.
	dir := t.TempDir()
	f, err := os.OpenFile(filepath.Join(dir, LockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := tryLock(f); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = Lock(dir)
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("Lock took %v to fail, want under a second", elapsed)
	}
	var inUse *InUseError
	if !errors.As(err, &inUse) || inUse.PID != 0 {
		t.Fatalf("got %v, want InUseError without a pid", err)
	}
	if !strings.Contains(err.Error(), "in use by another process") {
		t.Errorf("message %q does not say the home is in use", err)
	}
}
