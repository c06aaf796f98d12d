package e2e

import (
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
	for _, want := range []string{"(the same)", "paired with friend", `kind "own"`, "follows bob to 127.0.0.9:", "Done."} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("the demo's narration lacks %q:\n%s", want, res.Stdout)
		}
	}
	if strings.Contains(res.Stdout, "(DIFFERENT)") {
		t.Errorf("the demo saw different identities or check codes:\n%s", res.Stdout)
	}
}
