package web

import (
	"strings"
	"testing"

	"github.com/kith-project/kith/internal/kithtest"
)

// --web off serves no console, and kith web says so; an address beyond
// loopback is served, with a warning, and kith web still gives a loopback
// URL. Needs no browser.
func TestWebFlag(t *testing.T) {
	t.Parallel()
	off := kithtest.NewDevice(t)
	off.JSON(new(map[string]any), "", "init", "--name", "off")
	offAgent := off.Start(kithtest.FreeAddr(t, "127.0.0.5"), "--web", "off")
	res := off.Run("", "web")
	if res.Code != 1 || !strings.Contains(res.Stderr, "--web off") {
		t.Fatalf("kith web with --web off: %s", res)
	}

	wide := kithtest.NewDevice(t)
	wide.JSON(new(map[string]any), "", "init", "--name", "wide")
	a := wide.Start(kithtest.FreeAddr(t, "127.0.0.6"), "--web", "0.0.0.0:0")
	if !a.Contains("kith: warning: --web 0.0.0.0:0") || !a.Contains("exposes the web console") {
		t.Fatalf("no warning for a console beyond loopback:\n%s", a.Log())
	}
	var out struct {
		URL       string `json:"url"`
		ExpiresIn int    `json:"expires_in"`
	}
	wide.JSON(&out, "", "web", "--no-open")
	if !strings.HasPrefix(out.URL, "http://127.0.0.1:") || out.ExpiresIn != 120 {
		t.Fatalf("kith web: %+v", out)
	}
	if offAgent.Contains("exposes the web console") {
		t.Fatalf("a warning without a console:\n%s", offAgent.Log())
	}
}
