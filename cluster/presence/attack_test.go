package presence_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kith-project/kith/cluster/presence"
	"github.com/kith-project/kith/cluster/presence/presencetest"
)

// onlineEverywhere fails the test unless every node sees node i online,
// and node i sees them.
func onlineEverywhere(t *testing.T, s *presencetest.Net, i int, when string) {
	t.Helper()
	for j := range s.Nodes {
		if j == i {
			continue
		}
		if !s.Status(j, i).Online {
			t.Fatalf("%s: node %d sees node %d offline (%+v)", when, j, i, s.Nodes[j].P.Stats())
		}
		if !s.Status(i, j).Online {
			t.Fatalf("%s: node %d sees node %d offline (%+v)", when, i, j, s.Nodes[i].P.Stats())
		}
	}
}

// A device whose clock goes back an hour stays visible to its peers, while
// it runs and after it restarts with that clock; its new records are
// still taken, and they number on from the old ones.
func TestClockBackOneHourStaysVisible(t *testing.T) {
	T := presence.DefaultInterval
	s := presencetest.New(t, presencetest.Options{N: 3, Seed: 61})
	s.Run(3 * T)
	onlineEverywhere(t, s, 0, "settled")
	_, before := s.Nodes[0].P.OwnRecord()

	s.Nodes[0].Skew = -time.Hour
	for k := range 20 {
		s.Run(T / 2)
		onlineEverywhere(t, s, 0, "clock gone back, "+time.Duration(k+1).String()+"·T/2 later")
	}
	s.Restart(0)
	for k := range 20 {
		s.Run(T / 2)
		onlineEverywhere(t, s, 0, "restarted with the clock back, "+time.Duration(k+1).String()+"·T/2 later")
	}
	if st := s.Nodes[1].P.Stats(); st.Resynced == 0 {
		t.Errorf("node 1 never resynced with the restarted node 0: %+v", st)
	}

	// It moves: its new record is newer than the one held, though its
	// clock is an hour behind the one that numbered the old.
	to := netip.MustParseAddrPort("192.0.2.61:7117")
	s.Move(0, to, true)
	if s.RunUntil(4*T, func() bool { return s.AllKnow(0, to) }) < 0 {
		t.Fatal("the move was not followed")
	}
	s.Run(2 * T)
	addr, after := s.Nodes[0].P.OwnRecord()
	if addr != to || after <= before {
		t.Fatalf("own record %v version %d, want %v and a version above %d", addr, after, to, before)
	}
	for j := 1; j < 3; j++ {
		if pi, _ := s.Nodes[j].Book.Lookup(s.Nodes[0].Pub); pi.Version != after {
			t.Errorf("node %d holds version %d for node 0, want its new %d", j, pi.Version, after)
		}
	}
}

// Heartbeats captured before the receiver restarts are refused after it:
// replayed while their sender is down, they move it nowhere and show it
// nowhere, though they are well within the clock window.
func TestCapturedHeartbeatsRefusedAfterReceiverRestart(t *testing.T) {
	T := presence.DefaultInterval
	s := presencetest.New(t, presencetest.Options{N: 2, Seed: 62, Friends: true})
	alice, bob := s.Nodes[0], s.Nodes[1]
	var captured [][]byte
	s.Tap = func(sp presencetest.Packet) {
		if sp.From == bob.Wire && sp.To == alice.Wire && len(sp.Data) > 0 && sp.Data[0] >= 0x04 {
			captured = append(captured, sp.Data)
		}
	}
	s.Run(4 * T)
	s.Tap = nil
	if len(captured) < 5 {
		t.Fatalf("captured only %d datagrams", len(captured))
	}
	bobAt := alice.Book.Addr(bob.Pub)
	s.Kill(1)
	s.Restart(0)
	s.Run(10 * time.Second)

	attacker := netip.MustParseAddrPort("198.51.100.66:9999")
	st := alice.P.Stats()
	for range 3 {
		for _, pkt := range captured {
			alice.P.HandleDatagram(pkt, attacker)
			s.Run(100 * time.Millisecond)
		}
	}
	got := alice.P.Stats()
	if got.Accepted != st.Accepted {
		t.Errorf("%d replayed datagrams accepted: %+v", got.Accepted-st.Accepted, got)
	}
	if a := alice.Book.Addr(bob.Pub); a != bobAt {
		t.Errorf("replays moved bob to %v", a)
	}
	if s.Status(0, 1).Online || !s.Status(0, 1).LastSeen.IsZero() {
		t.Errorf("replays show bob: %+v", s.Status(0, 1))
	}
	if got.Unsynced == st.Unsynced {
		t.Errorf("no replayed heartbeat counted unsynced: %+v", got)
	}

	// Bob himself comes back, and is believed at once.
	s.Restart(1)
	if s.RunUntil(T, func() bool { return s.Status(0, 1).Online && s.Status(1, 0).Online }) < 0 {
		t.Fatalf("bob, back, is not seen: %+v", alice.P.Stats())
	}
	if a := alice.Book.Addr(bob.Pub); a != bobAt {
		t.Errorf("bob is at %v, want %v", a, bobAt)
	}
}

// A flood of forged heartbeats that claim a friend's key costs at most the
// budget in signature checks, from any number of source addresses, and
// the friend stays online throughout.
func TestForgedFloodCostsOnlyTheBudget(t *testing.T) {
	T := presence.DefaultInterval
	s := presencetest.New(t, presencetest.Options{N: 2, Seed: 63, Friends: true})
	s.Run(3 * T)
	me, friend := s.Nodes[0], s.Nodes[1]
	_, forger, _ := ed25519.GenerateKey(nil)
	pkt := presence.EncodeBeat(presence.TypeHeartbeat, forger, me.Pub, 1, me.Clock().UnixNano(), nil)
	copy(pkt[2:], friend.Pub[:]) // the friend's key as the sender; the signature is the forger's
	forged := func(k int) []byte {
		binary.BigEndian.PutUint64(pkt[34:], uint64(1e12)+uint64(k)) // a fresh sequence number each
		return pkt
	}
	st := me.P.Stats()
	const perStep, step = 20, 10 * time.Millisecond // 2,000 packets a second
	dur := 10 * T
	sent := 0
	for elapsed := time.Duration(0); elapsed < dur; elapsed += step {
		for range perStep {
			from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, byte(sent >> 8), byte(sent)}), 4000)
			me.P.HandleDatagram(forged(sent), from)
			sent++
		}
		s.Run(step)
		if elapsed%(T/2) == 0 {
			onlineEverywhere(t, s, 1, "during the flood")
		}
	}
	got := me.P.Stats()
	bad := got.BadSignature - st.BadSignature
	budget := uint64(presence.OtherBurst + presence.OtherRate*dur.Seconds() + 1)
	if bad > budget {
		t.Errorf("%d forged packets cost %d signature checks, want at most %d", sent, bad, budget)
	}
	if got.Throttled-st.Throttled+bad != uint64(sent) {
		t.Errorf("%d forged: %d verified, %d throttled", sent, bad, got.Throttled-st.Throttled)
	}
	if got.Accepted == st.Accepted {
		t.Error("the friend's real heartbeats were not taken during the flood")
	}
	t.Logf("%d forged packets in %v: %d signature checks (budget %d), %d dropped unverified", sent, dur, bad, budget, got.Throttled-st.Throttled)
}

// One lying friend does not decide the address we advertise: its false
// report of where it sees us changes neither our record nor PublicAddrs.
// Two sources that agree do.
func TestOneLyingPeerDoesNotDecideOurAddress(t *testing.T) {
	T := presence.DefaultInterval
	s := presencetest.New(t, presencetest.Options{N: 4, Seed: 64, Friends: true})
	me := s.Nodes[0]
	lie := netip.MustParseAddrPort("203.0.113.99:9999") // routable, so that it would be advertised
	liars := map[netip.AddrPort]*presencetest.Node{}
	// Liars are played by the test: their presences are down, and the
	// test answers the heartbeats sent to them with replies that say
	// they saw us at lie.
	s.Tap = func(sp presencetest.Packet) {
		liar := liars[sp.To]
		if liar == nil || sp.From != me.Wire || len(sp.Data) < 50 ||
			(sp.Data[0] != presence.TypeHeartbeat && sp.Data[0] != presence.TypeAddrUpdate) {
			return
		}
		seq, t1 := binary.BigEndian.Uint64(sp.Data[34:]), int64(binary.BigEndian.Uint64(sp.Data[42:]))
		now := liar.Clock().UnixNano()
		rep := presence.EncodeReplyTo(liar.Key, me.Pub, liar.P.NextSeq(), seq, t1, now, now, lie, nil)
		s.Send(liar.Wire, me.Wire, rep)
	}
	s.Kill(1)
	s.Kill(2)
	liars[s.Nodes[1].Wire] = s.Nodes[1]
	s.Run(10 * T)
	if st := me.P.Stats(); st.Accepted == 0 || s.Status(0, 1).LastSeen.IsZero() {
		t.Fatalf("the liar's replies were not taken: %+v", st)
	}
	if got := me.P.PublicAddrs(); slices.Contains(got, lie) {
		t.Errorf("one liar put %v in PublicAddrs %v", lie, got)
	}
	if addr, _ := me.P.OwnRecord(); addr != me.Wire {
		t.Errorf("one liar made us advertise %v", addr)
	}
	if got := s.Nodes[3].Book.Addr(me.Pub); got != me.Wire {
		t.Errorf("the honest peer holds %v for us", got)
	}

	// A second source that agrees confirms it.
	liars[s.Nodes[2].Wire] = s.Nodes[2]
	if s.RunUntil(10*T, func() bool { a, _ := me.P.OwnRecord(); return a == lie }) < 0 {
		addr, _ := me.P.OwnRecord()
		t.Fatalf("two agreeing sources: own record %v, want %v", addr, lie)
	}
	if got := me.P.PublicAddrs(); !slices.Contains(got, lie) {
		t.Errorf("two agreeing sources: PublicAddrs %v, want %v in it", got, lie)
	}
}

// A flood of bad packets writes a few debug lines, not one each, and the
// next line that passes counts those suppressed.
func TestDebugLinesRateLimited(t *testing.T) {
	var buf bytes.Buffer
	clock := presencetest.NewClock(presencetest.Epoch)
	p, err := presence.New(presence.Config{
		Key: testKey("me"), Book: presencetest.NewBook(), Now: clock.Now,
		Send:   func([]byte, netip.AddrPort) error { return nil },
		Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	from := netip.MustParseAddrPort("198.51.100.9:9")
	junk := []byte{presence.TypeHeartbeat, presence.WireVersion, 1, 2, 3}
	for range 10000 {
		p.HandleDatagram(junk, from)
	}
	if n := strings.Count(buf.String(), "\n"); n > 10 {
		t.Fatalf("10,000 malformed datagrams wrote %d debug lines", n)
	}
	clock.Advance(time.Minute)
	buf.Reset()
	p.HandleDatagram(junk, from)
	if !strings.Contains(buf.String(), "suppressed=") {
		t.Errorf("the next line does not count the suppressed ones: %q", buf.String())
	}
	if got := p.Stats().Malformed; got != 10001 {
		t.Errorf("counted %d malformed, want every one", got)
	}
}
