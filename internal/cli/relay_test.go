package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
)

func TestFmtBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 3 << 19: "1.5 MiB", 1 << 30: "1.0 GiB"} {
		if got := fmtBytes(n); got != want {
			t.Errorf("fmtBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestStatusShowsTheRelay(t *testing.T) {
	var b bytes.Buffer
	printStatus(&b, control.Status{Relay: control.RelayStatus{Policy: "friends", Sessions: 2, QuotaUsed: 3 << 20, QuotaBytes: 1 << 30}}, time.Now())
	if !strings.Contains(b.String(), "relay   friends: 2 sessions, 3.0 MiB of 1.0 GiB today") {
		t.Fatalf("status:\n%s", b.String())
	}
}
