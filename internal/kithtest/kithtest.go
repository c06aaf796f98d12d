// Package kithtest is the end-to-end harness: it builds the real kith
// binary once per test process and runs it as separate processes, each
// device with its own home folder and, for agents, its own 127.0.0.x
// address.
//
// Tests drive devices only through the command line (mostly with --json),
// exactly as a user or a script would, and every process a test starts is
// stopped when the test ends.
package kithtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary returns the path of a kith binary built from this source tree,
// building it on first use. The binary lives in a temporary folder removed
// by Cleanup (call it from TestMain).
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		// A binary built with -race sleeps a second at every exit
		// (GORACE's atexit_sleep_ms), which across the hundreds of short
		// commands the tests run is minutes. Every kith process the tests
		// start inherits this; a race still fails its command (exit 66).
		if _, set := os.LookupEnv("GORACE"); !set && raceEnabled {
			os.Setenv("GORACE", "atexit_sleep_ms=10")
		}
		dir, err := os.MkdirTemp("", "kith-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "kith")
		args := []string{"build", "-o", buildPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "github.com/kith-project/kith/cmd/kith")
		cmd := exec.Command("go", args...)
		cmd.Dir = moduleRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building kith: %v", buildErr)
	}
	return buildPath
}

// Cleanup removes the built binary; call it at the end of TestMain.
func Cleanup() {
	if buildPath != "" {
		os.RemoveAll(filepath.Dir(buildPath))
	}
}

func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Device is one kith home folder used from the command line.
type Device struct {
	T    testing.TB
	Home string
	// Env is added to every command's environment (KEY=value).
	Env []string
	// Prefix, if set, is a command that Start puts in front of the kith
	// binary to run the agent, such as ["ip", "netns", "exec", "ns"] to
	// run it in a network namespace. It must exec kith in place, so that
	// the agent's signals and exit status are kith's own. Commands run by
	// Run and JSON do not use it.
	Prefix []string
}

// NewDevice makes an empty home folder for one device.
func NewDevice(t testing.TB) *Device {
	t.Helper()
	return &Device{T: t, Home: filepath.Join(t.TempDir(), "home")}
}

// Result is what one command did.
type Result struct {
	Stdout, Stderr string
	Code           int
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
}

// Run runs kith with args against this device's home, stdin as standard
// input, and returns what it printed and its exit status.
func (d *Device) Run(stdin string, args ...string) Result {
	d.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, Binary(d.T), append([]string{"--home", d.Home}, args...)...)
	cmd.Env = append(baseEnv(), d.Env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := Result{Stdout: out.String(), Stderr: errb.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			d.T.Fatalf("running kith %s: %v", strings.Join(args, " "), err)
		}
		res.Code = ee.ExitCode()
	}
	return res
}

// JSON runs kith --json with args, requires exit status 0, and decodes
// its standard output into v.
func (d *Device) JSON(v any, stdin string, args ...string) {
	d.T.Helper()
	res := d.Run(stdin, append([]string{"--json"}, args...)...)
	if res.Code != 0 {
		d.T.Fatalf("kith %s: %s", strings.Join(args, " "), res)
	}
	if err := json.Unmarshal([]byte(res.Stdout), v); err != nil {
		d.T.Fatalf("kith %s: decoding JSON: %v\n%s", strings.Join(args, " "), err, res)
	}
}

// baseEnv is the environment every kith process gets: the test's own,
// less anything kith reads, so that the developer's setup never leaks in.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "KITH_") || strings.HasPrefix(kv, "XDG_DATA_HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}
