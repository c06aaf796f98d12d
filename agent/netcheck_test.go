package agent

import (
	"context"
	"strings"
	"testing"

	"github.com/kith-project/kith/internal/control"
)

// netcheck probes each friend now: one running is reachable with a round
// trip and a path, one stopped is not, and says why.
func TestNetcheckProbesFriends(t *testing.T) {
	a := startAgent(t, newPhrase(t), 0, "alice", "127.0.0.2")
	b := startAgent(t, newPhrase(t), 0, "bob", "127.0.0.3")
	c := startAgent(t, newPhrase(t), 0, "carol", "127.0.0.4")
	pairAgents(t, a, b)
	pairAgents(t, a, c)
	c.stop()
	nc := a.netcheck(context.Background())
	if len(nc.Friends) != 2 {
		t.Fatalf("friends %+v", nc.Friends)
	}
	byName := map[string]control.FriendReach{}
	for _, f := range nc.Friends {
		byName[f.Name] = f
	}
	bob, carol := byName["bob"], byName["carol"]
	if !bob.Reachable || bob.Path != string(PathLAN) || len(bob.Devices) != 1 || bob.Devices[0].RTTMillis == nil || bob.Devices[0].Addr != b.Addr().String() {
		t.Errorf("bob: %+v", bob)
	}
	if carol.Reachable || len(carol.Devices) != 1 || !strings.Contains(carol.Devices[0].Error, "no answer") {
		t.Errorf("carol: %+v", carol)
	}
	if nc.PortMapping.Error == "" || !strings.Contains(nc.PortMapping.Error, "loopback") {
		t.Errorf("port mapping on loopback: %+v", nc.PortMapping)
	}
	if len(nc.Candidates) == 0 || nc.Candidates[0].Kind != control.CandidateLocal || nc.Candidates[0].Addr != a.Addr().String() || nc.Candidates[0].Interface != "lo" {
		t.Errorf("candidates %+v", nc.Candidates)
	}
	if nc.NATType == "" || len(nc.OwnDevices) != 0 {
		t.Errorf("nat %q, own %+v", nc.NATType, nc.OwnDevices)
	}
}
