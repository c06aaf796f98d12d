package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/kithtest"
)

// "kith netcheck" over the real binary: bob's friends are probed now; the
// running one answers with a round trip and the LAN path, the stopped one
// is unreachable and says why. Candidates, NAT type and the port mapping
// (off on loopback) are reported, and the text fits in 80 columns.
func TestNetcheckReportsFriends(t *testing.T) {
	alice, bob, carol := bobAndFriends(t, "--heartbeat", "200ms")
	waitPeer(t, bob, alice.id.DeviceID, time.Minute, "alice online", func(ps control.PeerStatus) bool { return ps.Online })
	if err := carol.agent.Stop(); err != nil {
		t.Fatal(err)
	}
	var nc control.Netcheck
	bob.JSON(&nc, "", "netcheck")
	if len(nc.Friends) != 2 {
		t.Fatalf("friends %+v", nc.Friends)
	}
	by := map[string]control.FriendReach{}
	for _, f := range nc.Friends {
		by[f.Name] = f
	}
	a, c := by["alice"], by["carol"]
	if !a.Reachable || a.Path != "lan" || a.UserID.String() != alice.id.UserID || len(a.Devices) != 1 || a.Devices[0].RTTMillis == nil || a.Devices[0].Addr != alice.agent.Addr {
		t.Errorf("alice: %+v", a)
	}
	if c.Reachable || c.Path != "" || len(c.Devices) != 1 || c.Devices[0].Error == "" {
		t.Errorf("carol, stopped: %+v", c)
	}
	if len(nc.Candidates) == 0 || nc.Candidates[0].Kind != "local" || nc.Candidates[0].Addr != bob.agent.Addr {
		t.Errorf("candidates %+v", nc.Candidates)
	}
	switch nc.NATType {
	case "none", "easy", "hard", "unknown":
	default:
		t.Errorf("nat_type %q", nc.NATType)
	}
	if nc.PortMapping.Protocol != "" || !strings.Contains(nc.PortMapping.Error, "loopback") {
		t.Errorf("port mapping %+v", nc.PortMapping)
	}
	st := quickStatus(t, bob)
	if st.NAT == "" {
		t.Errorf("status nat %q", st.NAT)
	}
	res := bob.Run("", "netcheck")
	if res.Code != 0 || !strings.Contains(res.Stdout, "NAT type: ") || !strings.Contains(res.Stdout, "Port mapping: none: off: listening on loopback") ||
		!strings.Contains(res.Stdout, "alice") || !strings.Contains(res.Stdout, "carol") {
		t.Fatalf("netcheck as text: %s", res)
	}
	for _, line := range strings.Split(res.Stdout, "\n") {
		if len([]rune(line)) > 80 {
			t.Errorf("%d columns: %q", len([]rune(line)), line)
		}
	}
	t.Logf("\n%s", res.Stdout)
	if res := bob.Run("", "status"); res.Code != 0 || !strings.Contains(res.Stdout, "\nnat     ") {
		t.Errorf("status shows no NAT line: %s", res)
	}
}

func TestNetcheckWithoutAgent(t *testing.T) {
	d := kithtest.NewDevice(t)
	d.JSON(&identity{}, "", "init", "--name", "lonely")
	if res := d.Run("", "netcheck"); res.Code != 1 || !strings.Contains(res.Stderr, "agent") {
		t.Fatalf("netcheck with no agent: %s", res)
	}
}
