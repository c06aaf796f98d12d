package agent

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/memnet"
	"github.com/kith-project/kith/seed"
)

// lanNet is an in-memory network with one LAN segment, 10.9.0.0/24.
var lanNet = netip.MustParsePrefix("10.9.0.0/24")

// startOnLAN starts an agent on n at addr, on the LAN segment lanNet, and
// returns once its discovery runs: until then the agent drops every
// beacon it is sent (counted Idle), as it must before Run, so a test that
// sends it one sooner would race the agent's start.
func startOnLAN(t *testing.T, n *memnet.Network, addr netip.AddrPort, phrase seed.Phrase, index uint32, name string, setup ...func(*Agent)) (*testAgent, *memnet.Conn) {
	t.Helper()
	pc, err := n.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	cfg := Config{PacketConn: pc, Heartbeat: 200 * time.Millisecond, LAN: []netip.Prefix{lanNet}}
	a := startWith(t, cfg, phrase, index, name, setup...)
	waitDiscovering(t, a)
	return a, pc
}

// waitDiscovering waits until a's discovery runs (discoverer.run has
// begun), after which it takes the beacons it is sent.
func waitDiscovering(t testing.TB, a *testAgent) {
	t.Helper()
	waitFor(t, a.dev.Identity.Name+"'s discovery running", func() bool {
		a.disc.mu.Lock()
		defer a.disc.mu.Unlock()
		return a.disc.running
	})
}

// noRounds stops an agent's beacon rounds (it sends beacons only to
// answer), so that a test counts only the beacons it makes.
func noRounds(a *Agent) { a.disc.ports = []uint16{} }

func foundIDs(fs []foundDevice) []seed.DevicePublic {
	var out []seed.DevicePublic
	for _, f := range fs {
		out = append(out, f.dev)
	}
	return out
}

// discoverUntil runs discover rounds until want's devices are all among
// the answers (each round listens discoverWait), or fails after a
// generous deadline.
func discoverUntil(t *testing.T, a *testAgent, want ...seed.DevicePublic) []foundDevice {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		fs := a.disc.discover(context.Background())
		ids := foundIDs(fs)
		ok := true
		for _, w := range want {
			ok = ok && slices.ContainsFunc(ids, w.Equal)
		}
		if ok {
			return fs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: discover found %v, want %v", a.dev.Identity.Name, ids, want)
		}
	}
}

// confirmedOnLAN waits until x's book holds y at addr and x reaches it
// there on the LAN path, which x's own probe of y records once one of y's
// beacons came. The book moves with the first authenticated packet from
// addr, which may be y's probe of x, before the reply to x's probe comes:
// so both are waited for. Meanwhile y sends a round of beacons every
// discoverWait, so that a probe that went unanswered is sent again. It
// fails after a generous deadline.
func confirmedOnLAN(t *testing.T, x, y *testAgent, addr netip.AddrPort) {
	t.Helper()
	dev := y.dev.Cert.Device
	deadline := time.Now().Add(60 * time.Second)
	next := time.Now().Add(discoverWait)
	for {
		p, known := x.book.peerFor(dev)
		kind, _ := x.paths.of(dev, addr, nil)
		if known && p.Addr == addr.String() && kind == PathLAN {
			return
		}
		now := time.Now()
		if now.After(deadline) {
			t.Fatalf("%s has %s at %q (known %v), reached at %s by %q; want the lan path there",
				x.dev.Identity.Name, y.dev.Identity.Name, p.Addr, known, addr, kind)
		}
		if now.After(next) {
			y.disc.round()
			next = now.Add(discoverWait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Two own devices and a friend's paired elsewhere, then all moved to a LAN
// segment where none knows another's address: a beacon round finds them,
// on both sides, on the LAN path; a stranger's agent on the same segment
// hears the beacons and recognises none.
func TestDiscoverFindsOwnAndFriendsOnLAN(t *testing.T) {
	net := memnet.New(memnet.Options{Seed: 11})
	t.Cleanup(func() { net.Close() })
	if err := net.AddLAN(lanNet); err != nil {
		t.Fatal(err)
	}
	alice := newPhrase(t)
	a1, c1 := startOnLAN(t, net, netip.MustParseAddrPort("127.3.0.1:7117"), alice, 0, "laptop")
	a2, c2 := startOnLAN(t, net, netip.MustParseAddrPort("127.3.0.2:7117"), alice, 1, "phone")
	b, cb := startOnLAN(t, net, netip.MustParseAddrPort("127.3.0.3:7117"), newPhrase(t), 0, "bob")
	pairAgents(t, a1, a2)
	pairAgents(t, a1, b)
	pairAgents(t, a2, b)
	for _, m := range []struct {
		c  *memnet.Conn
		to string
	}{{c1, "10.9.0.11:7117"}, {c2, "10.9.0.12:7117"}, {cb, "10.9.0.13:7117"}} {
		if err := m.c.Rebind(netip.MustParseAddrPort(m.to)); err != nil {
			t.Fatal(err)
		}
	}
	stranger, _ := startOnLAN(t, net, netip.MustParseAddrPort("10.9.0.99:7117"), newPhrase(t), 0, "stranger")

	fs := discoverUntil(t, a1, a2.dev.Cert.Device, b.dev.Cert.Device)
	for _, f := range fs {
		if !f.addr.Addr().IsValid() || !lanNet.Contains(f.addr.Addr()) {
			t.Errorf("found %s at %s, off the LAN", f.dev.Short(), f.addr)
		}
	}
	// The answers confirmed a1 on the other side too, and the book moved.
	for _, x := range []*testAgent{a2, b} {
		confirmedOnLAN(t, x, a1, netip.MustParseAddrPort("10.9.0.11:7117"))
	}
	waitFor(t, "laptop sees phone online", func() bool { return a1.onlineSet()[a2.dev.Cert.Device] })

	st := stranger.disc.Stats()
	if st.Received == 0 || st.Recognised != 0 || st.Confirmed != 0 {
		t.Fatalf("the stranger's discovery: %+v (want beacons received, none recognised)", st)
	}
	if fs := stranger.disc.discover(context.Background()); len(fs) != 0 {
		t.Fatalf("the stranger discovered %v", foundIDs(fs))
	}
	// And nobody answered the stranger's beacons.
	if st := stranger.presence.Stats(); st.Accepted != 0 {
		t.Fatalf("the stranger accepted %d presence datagrams", st.Accepted)
	}
}

// A device that discovery confirmed on the LAN stays on the LAN path
// when a punch toward it (the reach service's, started while the device
// was offline) ends at the same address afterwards: the punch does not
// relabel it. TestDiscoverFindsOwnAndFriendsOnLAN saw this order now and
// then, as "bob reaches laptop by punched".
func TestDiscoverLANPathOutlivesPunch(t *testing.T) {
	net := memnet.New(memnet.Options{Seed: 14})
	t.Cleanup(func() { net.Close() })
	if err := net.AddLAN(lanNet); err != nil {
		t.Fatal(err)
	}
	alice := newPhrase(t)
	longPunch := func(a *Agent) { a.reach.punchFor = time.Minute } // it ends when the peer is seen
	a1, _ := startOnLAN(t, net, netip.MustParseAddrPort("10.9.0.1:7117"), alice, 0, "laptop", noRounds, longPunch)
	a2, _ := startOnLAN(t, net, netip.MustParseAddrPort("10.9.0.2:7117"), alice, 1, "phone", noRounds)
	pairAgents(t, a1, a2)
	phone := a2.dev.Cert.Device
	// Laptop's beacon draws phone's answer, which laptop probes.
	a1.disc.sendBeacon(a2.Addr())
	waitFor(t, "laptop confirms phone on the lan path", func() bool {
		kind, _ := a1.paths.of(phone, a2.Addr(), nil)
		return kind == PathLAN
	})
	addr, ok := a1.punch(context.Background(), punchPlan{peer: phone, addrs: []netip.AddrPort{a2.Addr()}, start: time.Now()})
	if !ok || addr != a2.Addr() {
		t.Fatalf("the punch toward phone: %s, %v; want %s", addr, ok, a2.Addr())
	}
	if kind, _ := a1.paths.of(phone, a2.Addr(), nil); kind != PathLAN {
		t.Fatalf("after the punch, laptop reaches phone by %q, want lan", kind)
	}
}

// A flood of beacons, random and sealed with a wrong secret, from many
// addresses, costs a bounded number of key tries.
func TestBeaconFloodBounded(t *testing.T) {
	net := memnet.New(memnet.Options{Seed: 12})
	t.Cleanup(func() { net.Close() })
	if err := net.AddLAN(lanNet); err != nil {
		t.Fatal(err)
	}
	alice := newPhrase(t)
	a1, _ := startOnLAN(t, net, netip.MustParseAddrPort("10.9.0.1:7117"), alice, 0, "laptop", noRounds)
	a2, _ := startOnLAN(t, net, netip.MustParseAddrPort("10.9.0.2:7117"), alice, 1, "phone", noRounds)
	pairAgents(t, a1, a2)
	users := len(a2.beaconUsers())
	if users != 1 {
		t.Fatalf("%d beacon users, want 1", users)
	}
	start := time.Now()
	const n = 20000
	for i := range n {
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, 0, byte(100 + i%50)}), 7117)
		var pkt []byte
		if i%2 == 0 {
			pkt = mustBeacon(t, make([]byte, 32), a1.dev.Cert.Device, time.Now()) // a wrong secret
		} else {
			pkt = make([]byte, beaconSize)
			pkt[0] = typeBeacon
		}
		a2.disc.handle(pkt, from)
	}
	elapsed := time.Since(start).Seconds()
	st := a2.disc.Stats()
	maxTagged := float64(globalBurst) + float64(globalRate)*elapsed + 1
	if float64(st.Tries) > maxTagged*float64(users*beaconTries) {
		t.Fatalf("%d keys tried for %d beacons in %.1f s; the bound is %.0f beacons", st.Tries, n, elapsed, maxTagged)
	}
	if st.Throttled < n/2 || st.Recognised != 0 {
		t.Fatalf("flood: %+v", st)
	}
	t.Logf("%d beacons in %.2f s: %d throttled, %d keys tried", n, elapsed, st.Throttled, st.Tries)
}

// A beacon taken once is not taken again, from anywhere: its replay is
// dropped before any key is tried, and draws neither an answer nor a probe.
func TestBeaconReplayDrawsNothing(t *testing.T) {
	net := memnet.New(memnet.Options{Seed: 13})
	t.Cleanup(func() { net.Close() })
	if err := net.AddLAN(lanNet); err != nil {
		t.Fatal(err)
	}
	alice := newPhrase(t)
	a1, _ := startOnLAN(t, net, netip.MustParseAddrPort("10.9.0.1:7117"), alice, 0, "laptop", noRounds)
	a2, _ := startOnLAN(t, net, netip.MustParseAddrPort("10.9.0.2:7117"), alice, 1, "phone", noRounds)
	pairAgents(t, a1, a2)
	start := a2.disc.Stats()
	good := mustBeacon(t, a1.dev.Window[:], a1.dev.Cert.Device, time.Now())
	a2.disc.handle(good, netip.MustParseAddrPort("10.9.0.1:7117"))
	// Phone answers with a beacon, which laptop answers once: wait for
	// that answer, after which nothing more comes.
	waitFor(t, "the beacon and laptop's answer recognised", func() bool { return a2.disc.Stats().Recognised == start.Recognised+2 })
	before := a2.disc.Stats()
	for i := range 50 {
		a2.disc.handle(good, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, 0, byte(50 + i)}), 7117))
	}
	after := a2.disc.Stats()
	if after.Replayed != before.Replayed+50 || after.Recognised != before.Recognised || after.Tries != before.Tries || after.Sent != before.Sent {
		t.Fatalf("replays: before %+v, after %+v", before, after)
	}
	// From off the LAN, even a fresh beacon is not looked at.
	a2.disc.handle(mustBeacon(t, a1.dev.Window[:], a1.dev.Cert.Device, time.Now()), netip.MustParseAddrPort("192.0.2.1:7117"))
	if st := a2.disc.Stats(); st.OffLAN != before.OffLAN+1 || st.Tries != before.Tries {
		t.Fatalf("an off-LAN beacon: %+v", st)
	}
}

var _ = fmt.Sprint

// On real UDP, two agents bound to 0.0.0.0 hear each other's broadcast
// beacons (to 127.255.255.255 and every other IPv4 network's broadcast
// address) and confirm each other on the LAN path. Each listens on its
// own port, so their beacons go to both ports.
func TestDiscoverOverUDPBroadcast(t *testing.T) {
	alice := newPhrase(t)
	a1 := startWith(t, Config{Listen: "0.0.0.0:0", Heartbeat: 200 * time.Millisecond, PortMap: PortMapOff}, alice, 0, "laptop")
	a2 := startWith(t, Config{Listen: "0.0.0.0:0", Heartbeat: 200 * time.Millisecond, PortMap: PortMapOff}, alice, 1, "phone")
	ports := []uint16{a1.Addr().Port(), a2.Addr().Port()}
	for _, a := range []*testAgent{a1, a2} {
		a.disc.mu.Lock()
		a.disc.ports = ports
		a.disc.mu.Unlock()
	}
	pairAgents(t, a1, a2)
	fs := discoverUntil(t, a1, a2.dev.Cert.Device)
	if fs[0].addr.Port() != a2.Addr().Port() {
		t.Fatalf("found phone at %s, it listens on %s", fs[0].addr, a2.Addr())
	}
	if st := a2.disc.Stats(); st.Recognised == 0 || st.Confirmed == 0 {
		t.Fatalf("phone's discovery: %+v", st)
	}
}
