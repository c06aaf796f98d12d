package home

import (
	"os"
	"path/filepath"
	"testing"
)

func TestResolveOrder(t *testing.T) {
	userHome := t.TempDir()
	t.Setenv("HOME", userHome)

	t.Setenv(EnvHome, "")
	t.Setenv("XDG_DATA_HOME", "")
	got, err := Resolve("")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(userHome, ".local", "share", "kith"); got != want {
		t.Errorf("default: got %q, want %q", got, want)
	}

	t.Setenv("XDG_DATA_HOME", "relative/data") // the XDG spec says to ignore it
	if got, _ := Resolve(""); got != filepath.Join(userHome, ".local", "share", "kith") {
		t.Errorf("relative XDG_DATA_HOME was not ignored: got %q", got)
	}

	xdg := t.TempDir()
	t.Setenv("XDG_DATA_HOME", xdg)
	if got, _ := Resolve(""); got != filepath.Join(xdg, "kith") {
		t.Errorf("XDG_DATA_HOME: got %q, want %q", got, filepath.Join(xdg, "kith"))
	}

	env := t.TempDir()
	t.Setenv(EnvHome, env)
	if got, _ := Resolve(""); got != env {
		t.Errorf("KITH_HOME: got %q, want %q", got, env)
	}

	flag := t.TempDir()
	if got, _ := Resolve(flag); got != flag {
		t.Errorf("flag: got %q, want %q", got, flag)
	}
}

func TestResolveMakesAbsolute(t *testing.T) {
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Resolve("some/./dir/")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(cwd, "some", "dir"); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestEnsureCreatesPrivateFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b", "home")
	if err := Ensure(dir); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !info.IsDir() || info.Mode().Perm() != 0o700 {
		t.Errorf("got mode %v, want a folder with mode 0700", info.Mode())
	}
	if err := Ensure(dir); err != nil {
		t.Errorf("second Ensure: %v", err)
	}
}

func TestEnsureTightensLooseFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // in case of a restrictive umask
		t.Fatal(err)
	}
	if err := Ensure(dir); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o700 {
		t.Errorf("got mode %v, want 0700", info.Mode().Perm())
	}
}

func TestEnsureRefusesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Ensure(path); err == nil {
		t.Fatal("Ensure on a regular file succeeded")
	}
}
