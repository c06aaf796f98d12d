package agent

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/memnet"
	"github.com/kith-project/kith/seed"
)

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
