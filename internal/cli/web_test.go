package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// kith web opens the login through a file in the home, so the token is in
// no other process's arguments, and the file is the owner's alone.
func TestOpenInBrowserKeepsTheTokenOutOfArgv(t *testing.T) {
	bin, home := t.TempDir(), t.TempDir()
	record := filepath.Join(t.TempDir(), "args")
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + record + ".tmp && mv " + record + ".tmp " + record + "\n"
	if err := os.WriteFile(filepath.Join(bin, "xdg-open"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+"/usr/bin:/bin")
	const url = "http://127.0.0.1:7118/login?token=SECRETTOKEN"
	if got := openInBrowser(home, url); got != "xdg-open" {
		t.Fatalf("openInBrowser = %q", got)
	}
	var args []byte
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var err error
		if args, err = os.ReadFile(record); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("xdg-open was not run")
		}
	}
	if strings.Contains(string(args), "SECRETTOKEN") {
		t.Fatalf("the token is in xdg-open's arguments: %q", args)
	}
	file := strings.TrimSpace(string(args))
	if file != filepath.Join(home, webOpenFile) {
		t.Fatalf("xdg-open got %q", file)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("the login page is mode %v", fi.Mode().Perm())
	}
	page, _ := os.ReadFile(file)
	if !strings.Contains(string(page), `url=http://127.0.0.1:7118/login?token=SECRETTOKEN"`) {
		t.Fatalf("the page does not go on to the URL:\n%s", page)
	}
}
