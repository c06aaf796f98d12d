package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/kithtest"
)

// unitLines returns the values of a systemd unit's Environment= lines and
// its ExecStart= command line split into words, as systemd would for the
// double-quoted words kith writes.
func unitLines(t *testing.T, unit string) (env, argv []string) {
	t.Helper()
	for _, line := range strings.Split(unit, "\n") {
		switch {
		case strings.HasPrefix(line, "Environment="):
			v, err := strconv.Unquote(strings.TrimPrefix(line, "Environment="))
			if err != nil {
				t.Fatalf("unit line %q: %v", line, err)
			}
			env = append(env, v)
		case strings.HasPrefix(line, "ExecStart="):
			rest := strings.TrimPrefix(line, "ExecStart=")
			for rest = strings.TrimSpace(rest); rest != ""; rest = strings.TrimSpace(rest) {
				if rest[0] == '"' {
					end := strings.Index(rest[1:], `"`) + 1
					if end == 0 {
						t.Fatalf("unterminated quote in %q", line)
					}
					w, err := strconv.Unquote(rest[:end+1])
					if err != nil {
						t.Fatalf("unit line %q: %v", line, err)
					}
					argv, rest = append(argv, w), rest[end+1:]
					continue
				}
				w, r, _ := strings.Cut(rest, " ")
				argv, rest = append(argv, w), r
			}
		}
	}
	return env, argv
}

// The unit "kith service install" writes runs this kith binary's agent for
// the home, with the run flags given at install time: the test runs the
// unit's ExecStart with its Environment, as systemd would, and asks the
// agent what it listens on and how often it beats. Status and uninstall
// follow; systemd-analyze checks the unit where it is installed.
func TestServiceUnitRunsTheAgent(t *testing.T) {
	d := kithtest.NewDevice(t)
	if res := d.Run("", "init", "--name", "laptop"); res.Code != 0 {
		t.Fatal(res)
	}
	units := t.TempDir()
	listen := kithtest.FreeAddr(t, "127.0.0.2")
	var inst struct {
		Unit   string `json:"unit"`
		Active bool   `json:"active"`
	}
	d.JSON(&inst, "", "service", "install", "--unit-dir", units, "--listen", listen, "--heartbeat", "250ms")
	if inst.Unit != filepath.Join(units, "kith.service") || inst.Active {
		t.Fatalf("install answered %+v", inst)
	}
	b, err := os.ReadFile(inst.Unit)
	if err != nil {
		t.Fatal(err)
	}
	env, argv := unitLines(t, string(b))
	if len(argv) == 0 || argv[0] != kithtest.Binary(t) {
		t.Fatalf("ExecStart %q does not run this kith (%s)", argv, kithtest.Binary(t))
	}
	if strings.Join(argv[1:], " ") != "--home "+d.Home+" run" {
		t.Fatalf("ExecStart %q does not run the agent of %s", argv, d.Home)
	}

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := <-exited; err != nil {
			t.Errorf("the unit's agent exited with %v:\n%s", err, logs.String())
		}
	}()
	var st control.Status
	kithtest.Eventually(t, 60*time.Second, "the unit's agent answers", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("the agent exited: %v\n%s", err, logs.String())
		default:
		}
		st, err = control.NewClient(d.Home).Status(ctx)
		return err
	})
	if st.Listen != listen || st.Heartbeat != "250ms" {
		t.Fatalf("the unit's agent listens on %s every %s, want %s every 250ms (KITH_LISTEN, KITH_HEARTBEAT)", st.Listen, st.Heartbeat, listen)
	}

	var status struct {
		Unit   string `json:"unit"`
		Active bool   `json:"active"`
	}
	d.JSON(&status, "", "service", "status", "--unit-dir", units)
	if status.Unit != inst.Unit {
		t.Errorf("status names %q, want %q", status.Unit, inst.Unit)
	}
	if analyze, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Log("systemd-analyze is not installed: the unit is not verified")
	} else if out, _ := exec.Command(analyze, "verify", inst.Unit).CombinedOutput(); strings.Contains(string(out), "kith.service") {
		t.Errorf("systemd-analyze verify: %s", out)
	}
	if res := d.Run("", "service", "uninstall", "--unit-dir", units); res.Code != 0 {
		t.Fatal(res)
	}
	if _, err := os.Stat(inst.Unit); !os.IsNotExist(err) {
		t.Errorf("uninstall left the unit: %v", err)
	}
}

// "kith keys export -o FILE" writes the age identity to a new file of mode
// 0600, the same key as on stdout, and refuses to overwrite a file.
func TestKeysExportToAFile(t *testing.T) {
	var created struct {
		Mnemonic string `json:"mnemonic"`
	}
	kithtest.NewDevice(t).JSON(&created, "", "init", "--name", "laptop")
	var exp struct {
		AgeIdentity string `json:"age_identity"`
	}
	d := kithtest.NewDevice(t)
	d.JSON(&exp, created.Mnemonic, "keys", "export", "--device", "0")
	file := filepath.Join(t.TempDir(), "device0.agekey")
	res := d.Run(created.Mnemonic, "keys", "export", "--device", "0", "-o", file)
	if res.Code != 0 || strings.Contains(res.Stdout, "AGE-SECRET-KEY") {
		t.Fatalf("export -o: %s", res)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the key file: %v, %v; want mode 0600", fi, err)
	}
	b, _ := os.ReadFile(file)
	if !strings.Contains(string(b), exp.AgeIdentity) {
		t.Fatal("the key file does not hold the key the export prints")
	}
	res = d.Run(created.Mnemonic, "keys", "export", "--device", "0", "-o", file)
	if res.Code != 2 || !strings.Contains(res.Stderr, "already exists") || !strings.Contains(res.Stderr, "kith: hint:") {
		t.Fatalf("export over an existing file: %s", res)
	}
	if after, _ := os.ReadFile(file); string(after) != string(b) {
		t.Fatal("a refused export changed the file")
	}
}
