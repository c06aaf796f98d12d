package agent

import (
	"net/netip"
	"testing"

	"github.com/kith-project/kith/cluster/presence"
	"github.com/kith-project/kith/seed"
)

func TestNATType(t *testing.T) {
	local := netip.MustParseAddrPort("192.168.1.5:7117")
	locals := []netip.AddrPort{local, netip.MustParseAddrPort("127.0.0.1:7117")}
	pub := netip.MustParseAddrPort("203.0.113.9:7117")
	other := netip.MustParseAddrPort("203.0.113.9:40001")
	peer := func(b byte, a netip.AddrPort) presence.Reflexive {
		return presence.Reflexive{Device: seed.DevicePublic{b}, Addr: a}
	}
	stun := presence.Reflexive{Server: netip.MustParseAddrPort("198.51.100.1:3478"), Addr: pub}
	for _, c := range []struct {
		name string
		refl []presence.Reflexive
		want string
	}{
		{"nobody", nil, NATUnknown},
		{"one source", []presence.Reflexive{peer(1, pub)}, NATUnknown},
		{"two see our interface", []presence.Reflexive{peer(1, local), peer(2, local)}, NATNone},
		{"one outside, one on the LAN", []presence.Reflexive{peer(1, local), peer(2, pub)}, NATUnknown},
		{"two see one mapping", []presence.Reflexive{peer(1, pub), peer(2, pub)}, NATEasy},
		{"a peer and STUN agree", []presence.Reflexive{peer(1, pub), stun}, NATEasy},
		{"a port per destination", []presence.Reflexive{peer(1, pub), peer(2, other)}, NATHard},
		{"three, one differs", []presence.Reflexive{peer(1, pub), peer(2, pub), stun, peer(3, other)}, NATHard},
	} {
		if got := natType(c.refl, locals); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}
