package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kith-project/kith/internal/kithtest"
)

// A link planted in a home folder, where kith keeps its lock, its keys or
// its database, makes every command that would open it through the link
// fail and say why; the file the link points to is untouched.
func TestHomeLinksAreRefused(t *testing.T) {
	cases := []struct {
		file string
		args []string
	}{
		{"lock", []string{"init", "--name", "x"}},
		{"lock", []string{"id"}},
		{"lock", []string{"run", "--listen", "127.0.0.2:0"}},
		{"keys", []string{"run", "--listen", "127.0.0.2:0"}},
		{"keys", []string{"keys", "lock", "--remove"}},
		{"kith.db", []string{"id"}},
		{"kith.db", []string{"init", "--force", "--name", "x"}},
		{"kith.db", []string{"run", "--listen", "127.0.0.2:0"}},
	}
	for _, c := range cases {
		t.Run(c.file+" "+strings.Join(c.args, " "), func(t *testing.T) {
			d := kithtest.NewDevice(t)
			if res := d.Run("", "init", "--name", "victim"); res.Code != 0 {
				t.Fatal(res)
			}
			os.Remove(filepath.Join(d.Home, c.file))
			target := filepath.Join(t.TempDir(), "precious")
			const content = "do not touch\n"
			if err := os.WriteFile(target, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, filepath.Join(d.Home, c.file)); err != nil {
				t.Fatal(err)
			}
			res := d.Run("", c.args...)
			if res.Code == 0 || !strings.Contains(res.Stderr, "link") {
				t.Errorf("with %s a link: want a failure that names the link, got %s", c.file, res)
			}
			if !strings.Contains(res.Stderr, "kith: hint: someone may have planted it") {
				t.Errorf("with %s a link: no hint says what to do: %s", c.file, res.Stderr)
			}
			got, err := os.ReadFile(target)
			if err != nil || string(got) != content {
				t.Fatalf("the link's target changed: %q, %v", got, err)
			}
			if fi, err := os.Stat(target); err != nil || fi.Mode().Perm() != 0o644 {
				t.Fatalf("the mode of the link's target changed: %v", fi.Mode())
			}
		})
	}
}

// A home folder that belongs to another user, or that anyone may write
// to, is refused with a clear message, and nothing in it is changed.
func TestForeignHomeIsRefused(t *testing.T) {
	d := kithtest.NewDevice(t)
	if err := os.MkdirAll(d.Home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d.Home, 0o777); err != nil {
		t.Fatal(err)
	}
	res := d.Run("", "init", "--name", "x")
	if res.Code == 0 || !strings.Contains(res.Stderr, "may be written by any user") {
		t.Fatalf("a world-writable home: %s", res)
	}
	if !strings.Contains(res.Stderr, "kith: hint: use a home folder of your own") {
		t.Errorf("a world-writable home: no hint says what to do: %s", res.Stderr)
	}
	if es, _ := os.ReadDir(d.Home); len(es) != 0 {
		t.Fatalf("kith wrote into a world-writable home: %v", es)
	}
	if os.Geteuid() != 0 {
		t.Skip("giving the home folder to another user needs root")
	}
	if err := os.Chmod(d.Home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(d.Home, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	res = d.Run("", "init", "--name", "x")
	if res.Code == 0 || !strings.Contains(res.Stderr, "belongs to user 65534, not to you") {
		t.Fatalf("a home of another user: %s", res)
	}
	if es, _ := os.ReadDir(d.Home); len(es) != 0 {
		t.Fatalf("kith wrote into another user's home: %v", es)
	}
}
