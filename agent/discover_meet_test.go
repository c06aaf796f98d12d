package agent

import (
	"net/netip"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/memnet"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// lanPeerStatus is d as a's status shows it.
func lanPeerStatus(a *testAgent, d seed.DevicePublic) (control.PeerStatus, bool) {
	for _, p := range a.status().Peers {
		if p.DeviceID == d {
			return p, true
		}
	}
	return control.PeerStatus{}, false
}

// Two own devices of one phrase (indices 0 and 1) that never met, on one
// LAN segment, neither knowing the other's address: a beacon round finds
// them, both books list each other as own devices, and each shows the
// other online on the lan path. On the same segment, a device of a friend
// that alice never met is ignored by alice (but found by its own user's
// other device), and a stranger recognises nothing and is added by
// nobody.
func TestDiscoverMeetsOwnDevices(t *testing.T) {
	net := memnet.New(memnet.Options{Seed: 21})
	t.Cleanup(func() { net.Close() })
	if err := net.AddLAN(lanNet); err != nil {
		t.Fatal(err)
	}
	alice, bob := newPhrase(t), newPhrase(t)
	laptop, _ := startOnLAN(t, net, netip.MustParseAddrPort("10.9.0.1:7117"), alice, 0, "laptop")
	phone, _ := startOnLAN(t, net, netip.MustParseAddrPort("10.9.0.2:7117"), alice, 1, "phone")
	bob1, _ := startOnLAN(t, net, netip.MustParseAddrPort("10.9.0.3:7117"), bob, 0, "bob-laptop")
	bob2, _ := startOnLAN(t, net, netip.MustParseAddrPort("10.9.0.4:7117"), bob, 1, "bob-phone")
	stranger, _ := startOnLAN(t, net, netip.MustParseAddrPort("10.9.0.99:7117"), newPhrase(t), 0, "stranger")
	pairAgents(t, laptop, bob1) // and no other pairing: no own devices met

	discoverUntil(t, laptop, phone.dev.Cert.Device)
	discoverUntil(t, bob2, bob1.dev.Cert.Device)
	for _, pair := range [][2]*testAgent{{laptop, phone}, {phone, laptop}, {bob1, bob2}, {bob2, bob1}} {
		x, y := pair[0], pair[1]
		what := x.dev.Identity.Name + " knows " + y.dev.Identity.Name + " as an own device, online on the lan path"
		waitFor(t, what, func() bool {
			p, ok := x.book.peerFor(y.dev.Cert.Device)
			if !ok || p.Kind != roster.KindOwn || p.UserID != y.dev.Cert.User {
				return false
			}
			ps, ok := lanPeerStatus(x, y.dev.Cert.Device)
			return ok && ps.Online && ps.Path == string(PathLAN) && ps.Addr == y.Addr().String()
		})
	}
	if st := laptop.disc.Stats(); st.Met == 0 && phone.disc.Stats().Met == 0 {
		t.Fatalf("neither of alice's devices met the other: %+v", st)
	}

	// Bob's phone is a friend's device alice never met: its beacons are
	// recognised as bob's and left alone. Alice learns it only from bob's
	// signed roster (rosters.go), which bob's laptop passes on once it met
	// bob's phone, and which may come before any beacon: then the phone is
	// a friend's known device, with bob's certificate of it.
	waitFor(t, "laptop recognises bob's phone's beacons as a friend's unknown device, or has it from bob's roster", func() bool {
		_, known := laptop.book.peerFor(bob2.dev.Cert.Device)
		return laptop.disc.Stats().Foreign > 0 || known
	})
	if p, ok := laptop.book.peerFor(bob2.dev.Cert.Device); ok {
		cert, err := seed.ParseDeviceCert(p.Cert)
		if p.Kind != roster.KindFriend || !p.UserID.Equal(bob2.dev.Cert.User) || err != nil || cert.Index != 1 {
			t.Fatalf("laptop has bob's phone as %+v (%v), not as a friend's device certified by bob", p, err)
		}
	}

	// The stranger recognised nothing, and nobody added it or was added
	// by it.
	if st := stranger.disc.Stats(); st.Received == 0 || st.Recognised != 0 || st.Dials != 0 {
		t.Fatalf("the stranger's discovery: %+v", st)
	}
	if _, ps := stranger.book.snapshot(); len(ps) != 0 {
		t.Fatalf("the stranger's book: %+v", ps)
	}
	for _, x := range []*testAgent{laptop, phone, bob1, bob2} {
		if _, ok := x.book.peerFor(stranger.dev.Cert.Device); ok {
			t.Fatalf("%s added the stranger", x.dev.Identity.Name)
		}
	}
}

// A revoked own device's beacons are recognised and ignored: it is never
// dialed and never added to the book again, even when it dials us.
func TestDiscoverRevokedOwnDeviceNotReadded(t *testing.T) {
	net := memnet.New(memnet.Options{Seed: 22})
	t.Cleanup(func() { net.Close() })
	if err := net.AddLAN(lanNet); err != nil {
		t.Fatal(err)
	}
	alice := newPhrase(t)
	laptop, _ := startOnLAN(t, net, netip.MustParseAddrPort("10.9.0.1:7117"), alice, 0, "laptop", noRounds)
	tablet, _ := startOnLAN(t, net, netip.MustParseAddrPort("10.9.0.5:7117"), alice, 5, "tablet", noRounds)
	user, err := seed.DeriveUser(alice.Seed(""))
	if err != nil {
		t.Fatal(err)
	}
	rev, err := user.Revoke(seed.Revocation{Device: tablet.dev.Cert.Device, Index: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := laptop.book.change(roster.Change{Op: roster.OpRevoke, Revocation: rev.Marshal()}, nil, nil); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		laptop.disc.handle(mustBeacon(t, tablet.dev.Window[:], tablet.dev.Cert.Device, time.Now()), tablet.Addr())
	}
	// The laptop's own beacon makes the tablet, which does not know the
	// laptop, dial it: refused.
	laptop.disc.sendBeacon(tablet.Addr())
	waitFor(t, "the tablet dials the laptop", func() bool { return tablet.disc.Stats().Dials > 0 })
	waitFor(t, "the tablet's dial over", func() bool { return meetsInFlight(tablet) == 0 })
	st := laptop.disc.Stats()
	if st.Revoked < 3 || st.Dials != 0 || st.Met != 0 {
		t.Fatalf("laptop's discovery: %+v (want at least 3 beacons of a revoked device, no dial)", st)
	}
	if _, ok := laptop.book.peerFor(tablet.dev.Cert.Device); ok || !laptop.book.revoked(tablet.dev.Cert.Device) {
		t.Fatal("the revoked tablet is reachable again in the laptop's book")
	}
	if st := tablet.disc.Stats(); st.Met != 0 {
		t.Fatalf("the tablet got through to the laptop: %+v", st)
	}
}

// Beacons sealed with our own user's secret for device keys nobody holds
// (what a friend, who holds that secret, could send) lead to a bounded
// number of dials: one per source address and per device every meetGap,
// meetBurst at once and meetRate after, however many come.
func TestMeetingDialsBounded(t *testing.T) {
	net := memnet.New(memnet.Options{Seed: 23})
	t.Cleanup(func() { net.Close() })
	if err := net.AddLAN(lanNet); err != nil {
		t.Fatal(err)
	}
	alice := newPhrase(t)
	laptop, _ := startOnLAN(t, net, netip.MustParseAddrPort("10.9.0.1:7117"), alice, 0, "laptop", noRounds)
	// From one address, fresh beacons of ever new devices: one dial.
	one := netip.MustParseAddrPort("10.9.0.200:7117")
	for range sourceBurst - 2 {
		dev, _ := randomKey(t)
		laptop.disc.handle(mustBeacon(t, laptop.dev.Window[:], dev, time.Now()), one)
	}
	if st := laptop.disc.Stats(); st.Recognised != sourceBurst-2 || st.Dials != 1 {
		t.Fatalf("%d beacons of new own devices from one address: %+v (want one dial)", sourceBurst-2, st)
	}
	// From many addresses: at most meetBurst more, plus meetRate a
	// second, and never more than maxMeets in flight.
	start := time.Now()
	for i := range 80 {
		dev, _ := randomKey(t)
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, 0, byte(100 + i)}), 7117)
		laptop.disc.handle(mustBeacon(t, laptop.dev.Window[:], dev, time.Now()), from)
		if inflight := meetsInFlight(laptop); inflight > maxMeets {
			t.Fatalf("%d dials in flight", inflight)
		}
	}
	elapsed := time.Since(start).Seconds()
	st := laptop.disc.Stats()
	if bound := 1 + meetBurst + float64(meetRate)*elapsed + 1; float64(st.Dials) > bound {
		t.Fatalf("%d dials in %.2f s, the bound is %.0f: %+v", st.Dials, elapsed, bound, st)
	}
	if st.Met != 0 || st.Dials < 2 {
		t.Fatalf("a device nobody holds was met, or no other source was dialed: %+v", st)
	}
	t.Logf("%d beacons of unknown own devices from 81 addresses: %d dials", st.Recognised, st.Dials)
}

func meetsInFlight(a *testAgent) int {
	a.disc.mu.Lock()
	defer a.disc.mu.Unlock()
	return a.disc.meet.inflight
}
