package presence_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/kith-project/kith/cluster/presence"
	"github.com/kith-project/kith/cluster/presence/presencetest"
)

// Two devices that each hold the other at a dead address find each other
// through the other addresses node 0's book holds for node 1 (its invite's,
// say): node 0's heartbeats go to all of them at once, node 1 answers the
// one that reaches it, and both end up online at the live addresses. The
// dead first address costs nothing: no wait on it before the others.
func TestOfflinePeerOtherAddrsTried(t *testing.T) {
	const T = 10 * time.Second
	s := presencetest.New(t, presencetest.Options{N: 2, Interval: T, Seed: 11})
	n0, n1 := s.Nodes[0], s.Nodes[1]
	dead0 := netip.MustParseAddrPort("192.0.2.1:7117")
	dead1 := netip.MustParseAddrPort("192.0.2.2:7117")
	elsewhere := netip.MustParseAddrPort("192.0.2.3:7117")
	var others []netip.AddrPort
	for range presence.MaxOthers - 2 {
		others = append(others, elsewhere)
	}
	others = append(others, dead1, n1.Wire) // dead1 (= Addr) is skipped and not counted
	n0.Book.Add(presence.PeerInfo{Device: n1.Pub, Own: true, Addr: dead1, Others: others, Window: n1.Window})
	n1.Book.Add(presence.PeerInfo{Device: n0.Pub, Own: true, Addr: dead0, Window: n0.Window})
	took := s.RunUntil(4*T, func() bool {
		return n0.Book.Addr(n1.Pub) == n1.Wire && n1.Book.Addr(n0.Pub) == n0.Wire
	})
	if took < 0 {
		t.Fatalf("within 4T node 0 holds node 1 at %s and node 1 holds node 0 at %s, want %s and %s",
			n0.Book.Addr(n1.Pub), n1.Book.Addr(n0.Pub), n1.Wire, n0.Wire)
	}
	// The greeting at start already went to every address.
	if took > time.Second {
		t.Errorf("the peers found each other after %v, want at the greeting", took)
	}
	s.Run(3 * T)
	if a, b := s.Status(0, 1), s.Status(1, 0); !a.Online || !b.Online || !a.HaveRTT {
		t.Fatalf("after finding each other: node 0 sees %+v, node 1 sees %+v", a, b)
	}
}

// Other addresses are tried only while the peer is offline, and at most
// presence.MaxOthers of them per heartbeat.
func TestOtherAddrsOnlyWhileOffline(t *testing.T) {
	const T = 10 * time.Second
	s := presencetest.New(t, presencetest.Options{N: 2, Interval: T, Seed: 12})
	n0, n1 := s.Nodes[0], s.Nodes[1]
	var others []netip.AddrPort
	for i := range presence.MaxOthers + 3 {
		others = append(others, netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)}), 7117))
	}
	n0.Book.Add(presence.PeerInfo{Device: n1.Pub, Own: true, Addr: n1.Wire, Others: others, Window: n1.Window})
	tried := map[netip.AddrPort]int{}
	s.Tap = func(sp presencetest.Packet) {
		if sp.From == n0.Wire && sp.Data[0] == presence.TypeHeartbeat && sp.To != n1.Wire {
			tried[sp.To]++
		}
	}
	s.Run(T)
	if !s.Status(0, 1).Online {
		t.Fatal("node 1 is not online for node 0 after T")
	}
	// Only the greeting, sent before node 1 was online, went elsewhere.
	if len(tried) != presence.MaxOthers {
		t.Fatalf("the greeting went to %d other addresses (%v), want %d", len(tried), tried, presence.MaxOthers)
	}
	for i, a := range others[:presence.MaxOthers] {
		if tried[a] != 1 {
			t.Fatalf("other address %d (%s) got %d heartbeats, want 1", i, a, tried[a])
		}
	}
	clear(tried)
	s.Run(10 * T)
	if len(tried) != 0 {
		t.Fatalf("heartbeats to an online peer went to its other addresses too: %v", tried)
	}
}
