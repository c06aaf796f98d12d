package agent

import (
	"context"
	"errors"
	"math"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/memnet"
	"github.com/kith-project/kith/internal/transport"
	"github.com/kith-project/kith/seed"
)

// The NAT lab on the in-memory network: two homes behind routers, and a
// public friend of both that may introduce them.
var (
	labPubA   = netip.MustParseAddr("198.51.100.1")
	labPubB   = netip.MustParseAddr("198.51.100.2")
	labHomeA  = netip.MustParsePrefix("10.201.1.0/24")
	labHomeB  = netip.MustParsePrefix("10.201.2.0/24")
	labInA    = netip.MustParseAddrPort("10.201.1.2:7117")
	labInB    = netip.MustParseAddrPort("10.201.2.2:7117")
	labServer = netip.MustParseAddrPort("203.0.113.10:7117")
)

// protoEcho is a test protocol that echoes one frame.
const protoEcho byte = 0x7e

type natLab struct {
	net          *memnet.Network
	natA, natB   *memnet.NAT
	pub, hA, hB  *testAgent
	connA, connB *memnet.Conn
}

// fastReach makes the reach service quick enough for tests, and adds the
// echo protocol.
func fastReach(a *Agent) {
	a.reach.backoff = []time.Duration{300 * time.Millisecond, 600 * time.Millisecond, time.Second}
	a.reach.punchFor = 2 * time.Second
	a.streams.register(Protocol{ID: protoEcho, Name: "echo", Openers: OpenOwn | OpenFriend, Deadline: 10 * time.Second,
		Handle: func(_ context.Context, s *transport.Stream) {
			if b, err := transport.ReadFrame(s, 64); err == nil {
				transport.WriteFrame(s, b)
			}
		}})
}

func labAgent(t testing.TB, n *memnet.Network, addr netip.AddrPort, name, introduce string) (*testAgent, *memnet.Conn) {
	t.Helper()
	return labAgentWith(t, n, addr, name, introduce, labOptions{})
}

// labOptions changes the lab's defaults: 200 ms heartbeats, 30 s NAT
// timeouts, 20 s keepalives.
type labOptions struct {
	heartbeat, natTimeout, keepEvery time.Duration
}

func labAgentWith(t testing.TB, n *memnet.Network, addr netip.AddrPort, name, introduce string, o labOptions) (*testAgent, *memnet.Conn) {
	t.Helper()
	hb := o.heartbeat
	if hb == 0 {
		hb = 200 * time.Millisecond
	}
	pc, err := n.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	cfg := Config{PacketConn: pc, Heartbeat: hb, Introduce: introduce}
	return startWith(t, cfg, newPhrase(t), 0, name, fastReach, func(a *Agent) { a.keepEvery = o.keepEvery }), pc
}

// newNATLab pairs hA, hB and pub (three users, all friends) on an open
// network, then moves hA and hB behind their NATs: from then on the two
// can meet only through pub.
func newNATLab(t testing.TB, mappingB memnet.Mapping, pubPolicy string) *natLab {
	t.Helper()
	return newNATLabWith(t, mappingB, pubPolicy, labOptions{})
}

func newNATLabWith(t testing.TB, mappingB memnet.Mapping, pubPolicy string, o labOptions) *natLab {
	t.Helper()
	l := &natLab{net: memnet.New(memnet.Options{Seed: 3})}
	t.Cleanup(func() { l.net.Close() })
	var err error
	if l.natA, err = l.net.AddNAT(memnet.NATConfig{Public: labPubA, Inside: labHomeA, Timeout: o.natTimeout}); err != nil {
		t.Fatal(err)
	}
	if l.natB, err = l.net.AddNAT(memnet.NATConfig{Public: labPubB, Inside: labHomeB, Mapping: mappingB, Timeout: o.natTimeout}); err != nil {
		t.Fatal(err)
	}
	l.pub, _ = labAgentWith(t, l.net, labServer, "pub", pubPolicy, o)
	l.hA, l.connA = labAgentWith(t, l.net, netip.MustParseAddrPort("203.0.113.1:7117"), "hA", "", o)
	l.hB, l.connB = labAgentWith(t, l.net, netip.MustParseAddrPort("203.0.113.2:7117"), "hB", "", o)
	pairAgents(t, l.hA, l.hB)
	pairAgents(t, l.hA, l.pub)
	pairAgents(t, l.hB, l.pub)
	if err := l.connA.Rebind(labInA); err != nil {
		t.Fatal(err)
	}
	if err := l.connB.Rebind(labInB); err != nil {
		t.Fatal(err)
	}
	return l
}

func dev(a *testAgent) seed.DevicePublic { return a.dev.Cert.Device }

// pathTo is a's path to b now, and whether b is online.
func pathTo(a, b *testAgent) (PathKind, bool) {
	for _, ps := range a.presence.Status() {
		if ps.Device.Equal(dev(b)) {
			kind, _ := a.paths.of(ps.Device, ps.Addr, a.lanPrefixes())
			return kind, ps.Online
		}
	}
	return "", false
}

func punched(a, b *testAgent) bool {
	k, on := pathTo(a, b)
	return on && k == PathPunched
}

// echo opens a stream from a to b at the address a's book holds and
// checks that one frame comes back.
func echo(t *testing.T, a, b *testAgent) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	s, err := a.tr.OpenStream(ctx, a.bookAddr(dev(b)), dev(b).Ed25519(), protoEcho)
	if err != nil {
		return err
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(15 * time.Second))
	if err := transport.WriteFrame(s, []byte("ping")); err != nil {
		return err
	}
	got, err := transport.ReadFrame(s, 64)
	if err != nil {
		return err
	}
	if string(got) != "ping" {
		return errors.New("echo came back wrong")
	}
	return nil
}

func waitLong(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two homes behind port-preserving NATs, a public friend that introduces
// friends: a punched path, streams over it, and it outlives the
// introducer; a renumbered home is found again and punched again.
func TestPunchThroughPortPreservingNATs(t *testing.T) {
	l := newNATLab(t, memnet.EndpointIndependent, IntroduceFriends)
	at := time.Now()
	waitLong(t, "hA and hB on a punched path both ways", 60*time.Second, func() bool {
		return punched(l.hA, l.hB) && punched(l.hB, l.hA)
	})
	t.Logf("punched %v after both moved behind their NATs", time.Since(at).Round(time.Millisecond))
	if got := l.hA.bookAddr(dev(l.hB)); got != netip.AddrPortFrom(labPubB, 7117) {
		t.Errorf("hA keeps hB at %s, want its NAT's mapping %s:7117", got, labPubB)
	}
	if err := echo(t, l.hA, l.hB); err != nil {
		t.Fatalf("stream hA → hB over the punched path: %v", err)
	}
	if err := echo(t, l.hB, l.hA); err != nil {
		t.Fatalf("stream hB → hA over the punched path: %v", err)
	}

	// The introducer goes away; the path stays.
	l.pub.stop()
	since := time.Now()
	waitLong(t, "three seconds with pub stopped", 10*time.Second, func() bool { return time.Since(since) > 3*time.Second })
	if !punched(l.hA, l.hB) || !punched(l.hB, l.hA) {
		t.Fatal("the punched path was lost when the introducer stopped")
	}
	if err := echo(t, l.hA, l.hB); err != nil {
		t.Fatalf("stream with pub stopped: %v", err)
	}
}

func TestPunchedPathComesBackAfterRenumbering(t *testing.T) {
	l := newNATLab(t, memnet.EndpointIndependent, IntroduceFriends)
	waitLong(t, "first punched path", 60*time.Second, func() bool { return punched(l.hA, l.hB) && punched(l.hB, l.hA) })
	renumbered := netip.MustParseAddr("198.51.100.11")
	l.natA.Renumber(renumbered)
	at := time.Now()
	waitLong(t, "hB follows hA to its new address on a punched path", 60*time.Second, func() bool {
		return punched(l.hB, l.hA) && punched(l.hA, l.hB) && l.hB.bookAddr(dev(l.hA)).Addr() == renumbered
	})
	t.Logf("punched again %v after renumbering; hB's NAT filtered %d packets", time.Since(at).Round(time.Millisecond), l.natB.Stats().Filtered)
	if err := echo(t, l.hB, l.hA); err != nil {
		t.Fatalf("stream after renumbering: %v", err)
	}
	if got := l.pub.bookAddr(dev(l.hA)); got.Addr() != renumbered {
		t.Errorf("pub keeps hA at %s, want %s", got, renumbered)
	}
}

// One side symmetric: each try fails, and after three the fallback is
// called; no punched path is claimed.
func TestPunchFailsCleanlyThroughSymmetricNAT(t *testing.T) {
	l := newNATLab(t, memnet.EndpointDependent, IntroduceFriends)
	waitLong(t, "fallback called after three tries", 90*time.Second, func() bool {
		return l.hA.reachStats().Fallbacks >= 1 && l.hB.reachStats().Fallbacks >= 1
	})
	if k, on := pathTo(l.hA, l.hB); on || k == PathPunched {
		t.Fatalf("hA reports hB %s online=%v through a symmetric NAT", k, on)
	}
	if l.hA.reachStats().PunchesSent == 0 {
		t.Fatal("no punch packet was sent")
	}
	if l.natB.Stats().Filtered == 0 {
		t.Fatal("the symmetric NAT filtered nothing: the test did not punch")
	}
}

// askIntroduction has from ask via to introduce it to target.
func askIntroduction(t *testing.T, from, via, target *testAgent) error {
	t.Helper()
	p, ok := from.book.peerFor(dev(via))
	if !ok {
		p = Peer{Addr: via.Addr().String()}
		p.DeviceID = dev(via)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := from.introduce(ctx, p, dev(target))
	return err
}

// Introducer policies, on an open network: own refuses two friends, off
// refuses all, friends introduces; strangers, blocked friends and
// unknown targets are refused.
func TestIntroducerPolicy(t *testing.T) {
	n := memnet.New(memnet.Options{})
	t.Cleanup(func() { n.Close() })
	own, _ := labAgent(t, n, netip.MustParseAddrPort("203.0.113.20:7117"), "own", IntroduceOwn)
	off, _ := labAgent(t, n, netip.MustParseAddrPort("203.0.113.21:7117"), "off", IntroduceOff)
	fr, _ := labAgent(t, n, netip.MustParseAddrPort("203.0.113.22:7117"), "friends", IntroduceFriends)
	a, _ := labAgent(t, n, netip.MustParseAddrPort("203.0.113.1:7117"), "a", "")
	b, _ := labAgent(t, n, netip.MustParseAddrPort("203.0.113.2:7117"), "b", "")
	stranger, _ := labAgent(t, n, netip.MustParseAddrPort("203.0.113.3:7117"), "stranger", "")
	for _, via := range []*testAgent{own, off, fr} {
		pairAgents(t, a, via)
		pairAgents(t, b, via)
	}
	pairAgents(t, a, b)
	pairAgents(t, stranger, b)
	waitLong(t, "everyone online at the introducers", 30*time.Second, func() bool {
		for _, via := range []*testAgent{own, off, fr} {
			on := via.onlineSet()
			if !on[dev(a)] || !on[dev(b)] {
				return false
			}
		}
		return true
	})
	cases := []struct {
		via  *testAgent
		from *testAgent
		want string // in the error; "" for success
	}{
		{own, a, "--introduce own"},
		{off, a, "--introduce off"},
		{fr, a, ""},
		{fr, stranger, "stranger"}, // never paired with fr: no connection at all
	}
	for _, c := range cases {
		err := askIntroduction(t, c.from, c.via, b)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s through %s: %v", c.from.dev.Identity.Name, c.via.dev.Identity.Name, err)
		case c.want == "stranger" && err == nil:
			t.Errorf("a stranger was introduced by %s", c.via.dev.Identity.Name)
		case c.want != "" && c.want != "stranger" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s through %s: err %v, want a refusal naming %q", c.from.dev.Identity.Name, c.via.dev.Identity.Name, err, c.want)
		}
	}
	// A target the introducer does not know.
	if err := askIntroduction(t, b, fr, stranger); err == nil || !strings.Contains(err.Error(), "does not know") {
		t.Errorf("introduction to a device the introducer does not know: %v", err)
	}
	// A blocked friend cannot use the introducer.
	if _, err := fr.friendAction("block", a.dev.Identity.UserID.ID()); err != nil {
		t.Fatal(err)
	}
	if err := askIntroduction(t, a, fr, b); err == nil {
		t.Error("a blocked friend was introduced")
	}
}

func TestCandidateSetsForgedOrReplayedAreRefused(t *testing.T) {
	_, _, da := newDevice(t, newPhrase(t), 0, "a")
	_, _, db := newDevice(t, newPhrase(t), 0, "b")
	_, _, dc := newDevice(t, newPhrase(t), 0, "c")
	now := time.Now()
	addrs := []netip.AddrPort{netip.MustParseAddrPort("198.51.100.1:7117"), netip.MustParseAddrPort("[2001:db8::1]:7117")}
	keyA, pa, pb, pc := da.Device.Ed25519(), da.Cert.Device, db.Cert.Device, dc.Cert.Device
	set := signCandidates(keyA, pb, now, addrs)
	var g candidateGuard
	c, err := g.accept(set, pa, pb, now)
	if err != nil || !slices.Equal(c.Addrs, addrs) {
		t.Fatalf("a good set: %+v %v", c, err)
	}
	if _, err := g.accept(set, pa, pb, now); err == nil || !strings.Contains(err.Error(), "replayed") {
		t.Errorf("the same set again: %v", err)
	}
	// An older set never taken is no replay: two introductions may cross.
	older := signCandidates(keyA, pb, now.Add(-time.Second), addrs)
	if _, err := g.accept(older, pa, pb, now); err != nil {
		t.Errorf("an older set not taken before: %v", err)
	}
	if _, err := g.accept(older, pa, pb, now); err == nil {
		t.Error("the older set was taken twice")
	}
	forged := slices.Clone(signCandidates(keyA, pb, now.Add(time.Second), addrs))
	forged[candHeader] ^= 1 // another address
	if _, err := g.accept(forged, pa, pb, now); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Errorf("a changed address: %v", err)
	}
	if _, err := g.accept(signCandidates(keyA, pc, now.Add(2*time.Second), addrs), pa, pb, now); err == nil {
		t.Error("a set made for another device was taken")
	}
	if _, err := g.accept(signCandidates(keyA, pb, now.Add(3*time.Second), addrs), pc, pb, now); err == nil {
		t.Error("a set signed by another device than the one introduced was taken")
	}
	if _, err := g.accept(signCandidates(keyA, pb, now.Add(-time.Hour), addrs), pa, pb, now); err == nil {
		t.Error("an hour-old set was taken")
	}
	if _, err := g.accept(signCandidates(keyA, pb, now.Add(4*time.Second), addrs), pa, pb, now); err != nil {
		t.Errorf("a newer good set: %v", err)
	}
}

func FuzzCandidates(f *testing.F) {
	key := seed.DevicePublic{}
	_, _, d := newDevice(f, newPhrase(f), 0, "f")
	f.Add(signCandidates(d.Device.Ed25519(), key, time.Unix(1e9, 0), []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:1")}))
	f.Add([]byte{1})
	f.Add(make([]byte, candHeader+candAddrLen+candSigLen))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCandidates(b)
		if err != nil {
			return
		}
		if len(c.Addrs) == 0 || len(c.Addrs) > maxCandidates {
			t.Fatalf("decoded %d addresses", len(c.Addrs))
		}
		c.verify()
	})
}

func FuzzIntroFrame(f *testing.F) {
	f.Add([]byte(`{"op":"request","peer":"` + strings.Repeat("ab", 32) + `","cands":"AQI="}`))
	f.Add([]byte(`{"op":"reply","cands":"AQI=","seen":"198.51.100.1:7117","at":1}`))
	f.Add([]byte(`{"op":"answer","code":"policy","error":"no"}`))
	f.Add([]byte(`{"op":"offer"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := decodeIntroFrame(b)
		if err != nil {
			return
		}
		if len(fr.Error) > maxIntroError {
			t.Fatal("long error accepted")
		}
		if fr.Op == "offer" {
			if _, err := netip.ParseAddrPort(fr.Seen); err != nil {
				t.Fatal("offer without an address accepted")
			}
		}
	})
}

// Keepalives hold a punched path open through NATs that forget a mapping
// after 2 s without a packet out, while heartbeats come only every 2.5 to
// 7.5 s, each to one of two peers: the mappings never expire, and streams
// keep working. (With keepalives off the same test fails.) The cost per
// path is logged (docs/networks.md has the figure).
func TestKeepaliveHoldsPunchedPath(t *testing.T) {
	o := labOptions{heartbeat: 5 * time.Second, natTimeout: 2 * time.Second, keepEvery: 250 * time.Millisecond}
	l := newNATLabWith(t, memnet.EndpointIndependent, IntroduceFriends, o)
	waitLong(t, "a punched path both ways", 90*time.Second, func() bool { return punched(l.hA, l.hB) && punched(l.hB, l.hA) })
	expA, expB := l.natA.Stats().Expired, l.natB.Stats().Expired
	sentA := l.hA.keep.sent.Load()
	start := time.Now()
	time.Sleep(8 * time.Second)
	el := time.Since(start)
	if !punched(l.hA, l.hB) || !punched(l.hB, l.hA) {
		t.Fatal("the punched path was lost")
	}
	if err := echo(t, l.hA, l.hB); err != nil {
		t.Fatalf("stream after 8 s of 2 s NAT timeouts: %v", err)
	}
	if ea, eb := l.natA.Stats().Expired-expA, l.natB.Stats().Expired-expB; ea != 0 || eb != 0 {
		t.Fatalf("mappings expired despite keepalives: %d at A, %d at B", ea, eb)
	}
	sent := l.hA.keep.sent.Load() - sentA
	if sent == 0 {
		t.Fatal("no keepalive sent")
	}
	// hA is behind a NAT with two online peers (pub, hB): two paths.
	const paths = 2
	perPath := float64(sent) / paths / el.Seconds()
	t.Logf("keepalives: %d in %v over %d paths = %.2f a second per path at a %v interval; at the default %v that is %.3f packets/s, %.2f B/s per path with IPv4+UDP headers (1+28 bytes)",
		sent, el.Round(time.Millisecond), paths, perPath, o.keepEvery, keepaliveEvery, perPath*o.keepEvery.Seconds()/keepaliveEvery.Seconds(), 29*perPath*o.keepEvery.Seconds()/keepaliveEvery.Seconds())
}

// No keepalive leaves a device that is not behind a NAT and has no
// punched path.
func TestNoKeepaliveWithoutNAT(t *testing.T) {
	n := memnet.New(memnet.Options{})
	t.Cleanup(func() { n.Close() })
	o := labOptions{keepEvery: 100 * time.Millisecond}
	a, _ := labAgentWith(t, n, netip.MustParseAddrPort("203.0.113.1:7117"), "a", "", o)
	b, _ := labAgentWith(t, n, netip.MustParseAddrPort("203.0.113.2:7117"), "b", "", o)
	pairAgents(t, a, b)
	waitLong(t, "online", 30*time.Second, func() bool { return a.onlineSet()[dev(b)] })
	time.Sleep(time.Second)
	if got := a.keep.sent.Load() + b.keep.sent.Load(); got != 0 {
		t.Fatalf("%d keepalives between two public devices", got)
	}
}

// BenchmarkPunchedPath measures the time from both agents (re)starting
// behind their NATs, both renumbered (so that neither's stored address of
// the other is any use and they must meet through pub), to a punched path
// both ways, with the default heartbeat (15 s) and reach settings. Run it
// as
//
//	go test -run '^$' -bench BenchmarkPunchedPath -benchtime 20x ./agent
func BenchmarkPunchedPath(b *testing.B) {
	l := newNATLab(b, memnet.EndpointIndependent, IntroduceFriends)
	waitLong(b, "first punched path", 60*time.Second, func() bool { return punched(l.hA, l.hB) && punched(l.hB, l.hA) })
	var took []time.Duration
	i := 0
	for b.Loop() {
		i++
		l.hA.stop()
		l.hB.stop()
		l.connA.Close()
		l.connB.Close()
		l.natA.Renumber(netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + i%100)}))
		l.natB.Renumber(netip.AddrFrom4([4]byte{198, 51, 100, byte(120 + i%100)}))
		var err error
		if l.connA, err = l.net.Listen(labInA); err != nil {
			b.Fatal(err)
		}
		if l.connB, err = l.net.Listen(labInB); err != nil {
			b.Fatal(err)
		}
		// Within the introducer's rate limit (1 a second per asker, a
		// burst of 6), as two real devices restarting would be.
		b.StopTimer()
		time.Sleep(time.Second)
		b.StartTimer()
		start := time.Now()
		l.hA = restart(b, l.hA, Config{PacketConn: l.connA})
		l.hB = restart(b, l.hB, Config{PacketConn: l.connB})
		waitLong(b, "punched path after restart", 60*time.Second, func() bool { return punched(l.hA, l.hB) && punched(l.hB, l.hA) })
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	// Nearest rank: the smallest time at least p of the runs took.
	q := func(p float64) float64 {
		k := int(math.Ceil(p*float64(len(took)))) - 1
		return float64(took[max(k, 0)].Microseconds()) / 1000
	}
	slow := 0
	for _, d := range took {
		if d > 2*time.Second {
			slow++
		}
	}
	b.ReportMetric(float64(slow), "runs>2s")
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "max-ms")
}

// labAgentOf starts an agent of the user of phrase, device index.
func labAgentOf(t *testing.T, n *memnet.Network, addr string, phrase seed.Phrase, index uint32, name, introduce string) (*testAgent, *memnet.Conn) {
	t.Helper()
	pc, err := n.Listen(netip.MustParseAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return startWith(t, Config{PacketConn: pc, Heartbeat: 200 * time.Millisecond, Introduce: introduce}, phrase, index, name, fastReach), pc
}

// The default policy introduces two of the introducer's own devices to
// each other, behind NATs, to a punched path.
func TestOwnDevicesIntroducedByDefault(t *testing.T) {
	n := memnet.New(memnet.Options{})
	t.Cleanup(func() { n.Close() })
	if _, err := n.AddNAT(memnet.NATConfig{Public: labPubA, Inside: labHomeA}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.AddNAT(memnet.NATConfig{Public: labPubB, Inside: labHomeB}); err != nil {
		t.Fatal(err)
	}
	phrase := newPhrase(t)
	home, _ := labAgentOf(t, n, labServer.String(), phrase, 0, "home", "")
	laptop, cl := labAgentOf(t, n, "203.0.113.1:7117", phrase, 1, "laptop", "")
	phone, cp := labAgentOf(t, n, "203.0.113.2:7117", phrase, 2, "phone", "")
	// All three pair on an open network, then the laptop and the phone go
	// home, behind their NATs.
	pairAgents(t, laptop, home)
	pairAgents(t, phone, home)
	pairAgents(t, laptop, phone)
	if err := cl.Rebind(labInA); err != nil {
		t.Fatal(err)
	}
	if err := cp.Rebind(labInB); err != nil {
		t.Fatal(err)
	}
	waitLong(t, "laptop and phone punched through the home device", 60*time.Second, func() bool {
		return punched(laptop, phone) && punched(phone, laptop)
	})
	if err := echo(t, laptop, phone); err != nil {
		t.Fatalf("stream between own devices: %v", err)
	}
	if got := laptop.bookAddr(dev(phone)); got.Addr() != labPubB {
		t.Errorf("the laptop reaches the phone at %s, want its NAT's address %s", got, labPubB)
	}
}

// offerRaw has via send b an introduction offer for from's set as is,
// and returns b's answer.
func offerRaw(t *testing.T, via, b *testAgent, from seed.DevicePublic, set []byte) introFrame {
	t.Helper()
	s := openRaw(t, via, b, []byte{protoIntroduce})
	off := introFrame{Op: "offer", Peer: from, Cands: set, Seen: "198.51.100.9:7117", At: time.Now().UnixNano()}
	if err := writeJSON(s, off); err != nil {
		t.Fatal(err)
	}
	s.SetDeadline(time.Now().Add(15 * time.Second))
	ans, err := readIntroFrame(s)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return ans
}

// A lying introducer can neither forge a set nor replay one: the device
// to meet refuses both, and says why.
func TestForgedOrReplayedOfferRefused(t *testing.T) {
	n := memnet.New(memnet.Options{})
	t.Cleanup(func() { n.Close() })
	via, _ := labAgent(t, n, labServer, "via", IntroduceFriends)
	a, _ := labAgent(t, n, netip.MustParseAddrPort("203.0.113.1:7117"), "a", "")
	b, _ := labAgent(t, n, netip.MustParseAddrPort("203.0.113.2:7117"), "b", "")
	pairAgents(t, a, b)
	pairAgents(t, via, a)
	pairAgents(t, via, b)
	addrs := []netip.AddrPort{netip.MustParseAddrPort("198.51.100.9:7117")}
	// The introducer signs a set for a with its own key.
	forged := signCandidates(via.dev.Device.Ed25519(), dev(b), time.Now(), addrs)
	if ans := offerRaw(t, via, b, dev(a), forged); ans.Code != introBad || !strings.Contains(ans.Error, "another device") {
		t.Errorf("a set signed by the introducer: %+v", ans)
	}
	// a's real set, altered.
	real := signCandidates(a.dev.Device.Ed25519(), dev(b), time.Now(), addrs)
	altered := slices.Clone(real)
	altered[candHeader+15] ^= 1
	if ans := offerRaw(t, via, b, dev(a), altered); ans.Code != introBad || !strings.Contains(ans.Error, "signature") {
		t.Errorf("an altered set: %+v", ans)
	}
	// a's real set, once, then again.
	if ans := offerRaw(t, via, b, dev(a), real); ans.Code != "" || len(ans.Cands) == 0 {
		t.Fatalf("a's real set: %+v", ans)
	}
	if ans := offerRaw(t, via, b, dev(a), real); ans.Code != introBad || !strings.Contains(ans.Error, "replayed") {
		t.Errorf("a's set replayed: %+v", ans)
	}
	// An introducer cannot introduce a device that b does not know.
	stranger, _ := labAgent(t, n, netip.MustParseAddrPort("203.0.113.3:7117"), "stranger", "")
	set := signCandidates(stranger.dev.Device.Ed25519(), dev(b), time.Now(), addrs)
	if ans := offerRaw(t, via, b, dev(stranger), set); ans.Code != introUnknown {
		t.Errorf("an offer for a device b does not know: %+v", ans)
	}
}

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
