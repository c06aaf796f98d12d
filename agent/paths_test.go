package agent

import (
	"net/netip"
	"testing"
	"time"

	"github.com/kith-project/kith/seed"
)

func TestPathsOf(t *testing.T) {
	p := newPaths()
	var a, b seed.DevicePublic
	a[0], b[0] = 1, 2
	lans := []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")}
	pub := netip.MustParseAddrPort("203.0.113.7:7117")
	lan := netip.MustParseAddrPort("192.168.1.9:7117")
	if k, _ := p.of(a, pub, lans); k != PathDirect {
		t.Errorf("unmarked public address: %q, want direct", k)
	}
	if k, _ := p.of(a, lan, lans); k != PathLAN {
		t.Errorf("address on our network: %q, want lan", k)
	}
	if k, _ := p.of(a, netip.AddrPort{}, lans); k != "" {
		t.Errorf("no address: %q, want none", k)
	}
	p.set(a, pub, PathPunched, "", time.Now())
	if k, _ := p.of(a, pub, lans); k != PathPunched {
		t.Errorf("punched address: %q, want punched", k)
	}
	if k, _ := p.of(b, pub, lans); k != PathDirect {
		t.Errorf("another device at the same address: %q, want direct", k)
	}
	other := netip.MustParseAddrPort("198.51.100.1:7117")
	if k, _ := p.of(a, other, lans); k != PathDirect {
		t.Errorf("after moving off the punched address: %q, want direct", k)
	}
	p.set(a, other, PathRelay, "pub", time.Now())
	if k, via := p.of(a, other, lans); k != PathRelay || via != "pub" {
		t.Errorf("relayed: %q via %q, want relay via pub", k, via)
	}
	p.forget(a)
	if k, _ := p.of(a, other, lans); k != PathDirect {
		t.Errorf("forgotten: %q, want direct", k)
	}
}

// A punch that ends at the address a LAN beacon's probe confirmed leaves
// the LAN path; anywhere else it records the punched path.
func TestPathsPunchedKeepsLAN(t *testing.T) {
	p := newPaths()
	var a seed.DevicePublic
	a[0] = 1
	lan := netip.MustParseAddrPort("192.168.1.9:7117")
	pub := netip.MustParseAddrPort("203.0.113.7:7117")
	if k := p.punched(a, lan, time.Now()); k != PathPunched {
		t.Fatalf("a punch with no path known: %q, want punched", k)
	}
	p.set(a, lan, PathLAN, "", time.Now()) // the probe after a beacon
	if k := p.punched(a, lan, time.Now()); k != PathLAN {
		t.Fatalf("a punch at the LAN path's address: %q, want lan", k)
	}
	if k, _ := p.of(a, lan, nil); k != PathLAN {
		t.Fatalf("after a punch at the LAN path's address: %q, want lan", k)
	}
	if k := p.punched(a, pub, time.Now()); k != PathPunched {
		t.Fatalf("a punch at another address: %q, want punched", k)
	}
	if k, _ := p.of(a, pub, nil); k != PathPunched {
		t.Fatalf("after a punch at another address: %q, want punched", k)
	}
}
