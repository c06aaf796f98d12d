package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/kith-project/kith/cluster"
	"github.com/kith-project/kith/internal/memnet"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// startClustered starts device index of phrase on the in-memory network at
// addr, with the test profile's raft timeouts.
func startClustered(t *testing.T, n *memnet.Network, addr netip.AddrPort, phrase seed.Phrase, index uint32) *testAgent {
	t.Helper()
	pc, err := n.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	prof := cluster.ProfileTest
	cfg := Config{PacketConn: pc, Heartbeat: 200 * time.Millisecond, raftProfile: &prof}
	if os.Getenv("KITH_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("dev", index, "at", addr.String())
	}
	return startWith(t, cfg, phrase, index, fmt.Sprintf("dev%d", index))
}

// clusterOf is a's cluster status, the zero Status before it runs.
func clusterOf(a *testAgent) cluster.Status {
	if st := a.clusterStatus(); st != nil {
		return *st
	}
	return cluster.Status{}
}

// agreed reports whether every agent sees the same leader and n voters,
// with nothing pending.
func agreed(as []*testAgent, voters int) bool {
	first := clusterOf(as[0])
	if first.Leader == "" || len(first.Voters) != voters {
		return false
	}
	for _, a := range as {
		st := clusterOf(a)
		if st.Leader != first.Leader || !slices.Equal(st.Voters, first.Voters) || st.Pending != 0 {
			return false
		}
	}
	return true
}

func TestClusterThreeOwnDevices(t *testing.T) {
	n := memnet.New(memnet.Options{})
	phrase := newPhrase(t)
	var as []*testAgent
	for i := range 3 {
		as = append(as, startClustered(t, n, netip.MustParseAddrPort(fmt.Sprintf("10.0.0.%d:7117", i+1)), phrase, uint32(i)))
	}
	// A lone device is a one-voter cluster that leads itself.
	waitCluster(t, "device 0 leads its own cluster", func() bool {
		st := clusterOf(as[0])
		return st.State == "leader" && len(st.Voters) == 1
	})
	pairAgents(t, as[0], as[1])
	waitCluster(t, "two devices: one voter and one non-voter", func() bool {
		st := clusterOf(as[0])
		return agreed(as[:2], 1) && len(st.Nonvoters) == 1
	})
	pairAgents(t, as[0], as[2])
	waitCluster(t, "three devices, three voters, one leader", func() bool { return agreed(as, 3) })

	// A friend paired on device 1 is a friend on all three.
	friend := startClustered(t, n, netip.MustParseAddrPort("10.0.1.1:7117"), newPhrase(t), 0)
	pairAgents(t, as[1], friend)
	fu := friend.dev.Cert.User
	waitCluster(t, "the friend on every device", func() bool {
		for _, a := range as {
			if f, ok := a.book.rosterNow().Friend(fu); !ok || f.Status != roster.StatusFriend {
				return false
			}
		}
		return true
	})
	// A block on device 2 applies on all three.
	if _, err := as[2].friendAction("block", fu.ID()); err != nil {
		t.Fatal(err)
	}
	waitCluster(t, "the friend blocked on every device", func() bool {
		for _, a := range as {
			if !a.book.rosterNow().Blocked(fu) {
				return false
			}
		}
		return true
	})
}

// waitCluster waits for cond with the generous deadline raft's elections
// need on a loaded machine.
func waitCluster(t testing.TB, what string, cond func() bool) {
	t.Helper()
	waitLong(t, what, 60*time.Second, cond)
}

// revocationOf signs the revocation of device index with phrase's user key.
func revocationOf(t *testing.T, phrase seed.Phrase, index uint32) []byte {
	t.Helper()
	s := phrase.Seed("")
	user, err := seed.DeriveUser(s)
	if err != nil {
		t.Fatal(err)
	}
	dk, _, err := seed.DeriveDevice(s, index)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := user.Revoke(seed.Revocation{Device: dk.Public(), Index: index})
	if err != nil {
		t.Fatal(err)
	}
	return rev.Marshal()
}

func TestClusterRevokeRemovesVoter(t *testing.T) {
	n := memnet.New(memnet.Options{})
	phrase := newPhrase(t)
	var as []*testAgent
	for i := range 3 {
		as = append(as, startClustered(t, n, netip.MustParseAddrPort(fmt.Sprintf("10.0.2.%d:7117", i+1)), phrase, uint32(i)))
	}
	pairAgents(t, as[0], as[1])
	pairAgents(t, as[0], as[2])
	waitCluster(t, "three voters", func() bool { return agreed(as, 3) })
	// Another user's phrase is refused, and so is revoking oneself.
	if _, err := as[0].revoke(context.Background(), revocationOf(t, newPhrase(t), 2)); err == nil {
		t.Fatal("a revocation signed by another user was taken")
	}
	if _, err := as[0].revoke(context.Background(), revocationOf(t, phrase, 0)); err == nil {
		t.Fatal("a device revoked itself")
	}
	res, err := as[0].revoke(context.Background(), revocationOf(t, phrase, 2))
	if err != nil || !res.Revoked || len(res.Recovered) != 0 {
		t.Fatalf("revoke 2 with quorum: %+v, %v", res, err)
	}
	gone := as[2].dev.Cert.Device
	waitCluster(t, "device 2 revoked on both others, and out of the configuration", func() bool {
		for _, a := range as[:2] {
			if !a.book.rosterNow().Revoked(gone) || slices.Contains(append(clusterOf(a).Voters, clusterOf(a).Nonvoters...), gone.ID()) {
				return false
			}
		}
		return agreed(as[:2], 1)
	})
	// The revoked device learns it on its next contact.
	waitCluster(t, "device 2 told it is revoked", func() bool { return as[2].revokedSelf() })
	// A stale roster naming it, merged or paired again, does not bring it
	// back.
	d, ok := as[0].book.rosterNow().Device(gone)
	if !ok {
		t.Fatal("the revoked device is not listed")
	}
	stale, err := json.Marshal(rosterDoc{Devices: []roster.Device{d}})
	if err != nil {
		t.Fatal(err)
	}
	if err := (clusterState{as[0].Agent}).Restore(stale); err != nil {
		t.Fatal(err)
	}
	as[0].applyReplicated(roster.Change{Op: roster.OpPair, Device: &d}, nil)
	if err := as[1].book.change(roster.Change{Op: roster.OpPair, Device: &d}, nil, nil); err == nil {
		t.Fatal("pairing the revoked device again was taken")
	}
	if _, ok := as[0].book.peerFor(gone); ok {
		t.Fatal("a stale roster brought the revoked device back")
	}
}
