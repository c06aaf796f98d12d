package agent

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/memnet"
	"github.com/kith-project/kith/seed"
)

// One punch per peer at a time; a second plan gets the first's result;
// past the burst, new punches are refused.
func TestPunchGateBounds(t *testing.T) {
	var g punchGate
	d := seed.DevicePublic{1}
	r, leader := g.join(d)
	if r == nil || !leader {
		t.Fatal("first punch not started")
	}
	r2, leader2 := g.join(d)
	if r2 != r || leader2 {
		t.Fatal("a second punch toward the same peer ran beside the first")
	}
	want := netip.MustParseAddrPort("198.51.100.1:7117")
	g.finish(d, r, want, true)
	<-r2.done
	if r2.addr != want || !r2.ok {
		t.Fatalf("the waiting plan got %v %v", r2.addr, r2.ok)
	}
	for i := 1; i < punchBurst; i++ {
		r, leader := g.join(d)
		if r == nil || !leader {
			t.Fatalf("punch %d of the burst refused", i+1)
		}
		g.finish(d, r, netip.AddrPort{}, false)
	}
	if r, _ := g.join(d); r != nil {
		t.Fatal("a punch past the burst was started")
	}
	if r, leader := g.join(seed.DevicePublic{2}); r == nil || !leader {
		t.Fatal("another peer's punch was refused")
	}
}

// A plan never aims at our own loopback or the LAN broadcast address for
// a peer we see elsewhere, and holds at most the introducer's view plus
// maxCandidates.
func TestPlanDropsLoopbackAndBroadcast(t *testing.T) {
	n := memnet.New(memnet.Options{})
	t.Cleanup(func() { n.Close() })
	a, _ := labAgent(t, n, netip.MustParseAddrPort("203.0.113.1:7117"), "a", "")
	seen := netip.MustParseAddrPort("198.51.100.7:4000")
	cands := []netip.AddrPort{
		netip.MustParseAddrPort("127.0.0.1:22"), netip.MustParseAddrPort("255.255.255.255:7117"),
		netip.MustParseAddrPort("[::1]:7117"), netip.MustParseAddrPort("192.168.1.5:7117"), seen,
	}
	p := a.planFrom(seed.DevicePublic{9}, seed.DevicePublic{8}, cands, seen, time.Now().UnixNano())
	want := []netip.AddrPort{seen, netip.MustParseAddrPort("192.168.1.5:7117")}
	if !slices.Equal(p.addrs, want) {
		t.Fatalf("plan %v, want %v", p.addrs, want)
	}
	var many []netip.AddrPort
	for i := range 20 {
		many = append(many, netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 10)}), 7117))
	}
	if p := a.planFrom(seed.DevicePublic{9}, seed.DevicePublic{8}, many, seen, 1); len(p.addrs) != maxCandidates+1 {
		t.Fatalf("plan of %d addresses, want %d", len(p.addrs), maxCandidates+1)
	}
}
