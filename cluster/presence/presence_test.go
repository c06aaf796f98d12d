package presence_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/kith-project/kith/cluster/presence"
	"github.com/kith-project/kith/cluster/presence/presencetest"
	"github.com/pion/stun/v2"
)

func TestNewRefusesBadConfig(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	send := func([]byte, netip.AddrPort) error { return nil }
	for name, cfg := range map[string]presence.Config{
		"no key":        {Book: presencetest.NewBook(), Send: send},
		"short key":     {Key: key[:10], Book: presencetest.NewBook(), Send: send},
		"no book":       {Key: key, Send: send},
		"no send":       {Key: key, Book: presencetest.NewBook()},
		"quiet, no win": {Key: key, Book: presencetest.NewBook(), Send: send, Quiet: true},
		"bad stun":      {Key: key, Book: presencetest.NewBook(), Send: send, STUNServers: []netip.AddrPort{{}}},
	} {
		if _, err := presence.New(cfg); !errors.Is(err, presence.ErrInvalidConfig) {
			t.Errorf("%s: presence.New = %v, want presence.ErrInvalidConfig", name, err)
		}
	}
}

func TestHeartbeatsReachPeers(t *testing.T) {
	const T = 15 * time.Second
	s := presencetest.New(t, presencetest.Options{N: 4, Interval: T, Seed: 1, Latency: 10 * time.Millisecond})
	s.Run(8 * T)
	for i := range s.Nodes {
		for j := range s.Nodes {
			if i == j {
				continue
			}
			st := s.Status(i, j)
			if !st.Online || !st.HaveRTT {
				t.Errorf("node %d sees node %d online=%v haveRTT=%v after 8T", i, j, st.Online, st.HaveRTT)
				continue
			}
			if st.RTT != 20*time.Millisecond || st.ClockOffset != 0 {
				t.Errorf("node %d sees node %d with rtt %v offset %v, want 20ms and 0", i, j, st.RTT, st.ClockOffset)
			}
		}
		ps := s.Nodes[i].P.Stats()
		if ps.Replayed+ps.Stale+ps.BadSignature+ps.Unsolicited+ps.Unknown+ps.Malformed != 0 {
			t.Errorf("node %d refused honest traffic: %+v", i, ps)
		}
		// The greeting goes to every peer, then about one heartbeat per
		// interval on average: 3 + 8 = 11 expected, allow for chance.
		if ps.HeartbeatsSent < 3+4 || ps.HeartbeatsSent > 3+16 {
			t.Errorf("node %d sent %d heartbeats in 8T", i, ps.HeartbeatsSent)
		}
	}
}

// Heartbeat intervals must stay within [T/2, 3T/2] and average T.
func TestHeartbeatIntervals(t *testing.T) {
	const T = 10 * time.Second
	s := presencetest.New(t, presencetest.Options{N: 2, Interval: T, Seed: 2})
	var sent []time.Time
	s.Tap = func(sp presencetest.Packet) {
		if sp.From == s.Nodes[0].Wire && sp.Data[0] == presence.TypeHeartbeat {
			sent = append(sent, s.Now())
		}
	}
	s.Run(400 * T)
	var sum time.Duration
	for i := 2; i < len(sent); i++ { // skip the greeting
		d := sent[i].Sub(sent[i-1])
		if d < T/2 || d > 3*T/2 {
			t.Fatalf("interval %v outside [T/2, 3T/2]", d)
		}
		sum += d
	}
	mean := sum / time.Duration(len(sent)-2)
	if mean < 95*T/100 || mean > 105*T/100 {
		t.Errorf("mean interval %v, want about %v", mean, T)
	}
}

func TestClockOffset(t *testing.T) {
	const T = 15 * time.Second
	s := presencetest.New(t, presencetest.Options{N: 2, Interval: T, Seed: 3, Skew: []time.Duration{0, 2 * time.Second}, Latency: 7 * time.Millisecond})
	s.Run(6 * T)
	a, b := s.Status(0, 1), s.Status(1, 0)
	if !a.HaveRTT || !b.HaveRTT {
		t.Fatal("no RTT measured")
	}
	if a.ClockOffset != 2*time.Second || b.ClockOffset != -2*time.Second {
		t.Errorf("offsets %v and %v, want +2s and -2s", a.ClockOffset, b.ClockOffset)
	}
	if a.RTT != 14*time.Millisecond {
		t.Errorf("rtt %v, want 14ms", a.RTT)
	}

	// With asymmetric paths the error is half the asymmetry, never more
	// than half the RTT.
	s = presencetest.New(t, presencetest.Options{N: 2, Interval: T, Seed: 4, Skew: []time.Duration{0, 2 * time.Second}})
	s.Latency = func(from, _ netip.AddrPort) time.Duration {
		if from == s.Nodes[0].Wire {
			return 5 * time.Millisecond
		}
		return 45 * time.Millisecond
	}
	s.Run(6 * T)
	a = s.Status(0, 1)
	if d := a.ClockOffset - 2*time.Second; d < -a.RTT/2 || d > a.RTT/2 {
		t.Errorf("offset %v with rtt %v: error beyond rtt/2", a.ClockOffset, a.RTT)
	}
}

// A clock skewed far beyond presence.MaxClockSkew is still measured (replies are
// proven fresh by their echo), after which its heartbeats are believed.
func TestLargeSkewIsMeasured(t *testing.T) {
	const T = 15 * time.Second
	s := presencetest.New(t, presencetest.Options{N: 2, Interval: T, Seed: 5, Skew: []time.Duration{0, 10 * time.Minute}})
	s.Run(10 * T)
	a, b := s.Status(0, 1), s.Status(1, 0)
	if a.ClockOffset != 10*time.Minute || b.ClockOffset != -10*time.Minute {
		t.Errorf("offsets %v, %v, want ±10m", a.ClockOffset, b.ClockOffset)
	}
	if !a.Online || !b.Online {
		t.Errorf("online %v %v", a.Online, b.Online)
	}
}

// moveOnce settles a cluster, moves node 0, and returns how long until
// every peer's book has its new address (-1: never within limit).
func moveOnce(tb testing.TB, seed uint64, noticed bool, limit time.Duration) (took, T time.Duration) {
	T = 15 * time.Second
	s := presencetest.New(tb, presencetest.Options{N: 4, Interval: T, Seed: seed})
	s.Run(4*T + time.Duration(seed%97)*T/97) // settle, then move at a random phase
	to := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 9}), 40000)
	s.Move(0, to, noticed)
	return s.RunUntil(limit, func() bool { return s.AllKnow(0, to) }), T
}

func TestMoveFollowedWithin2T(t *testing.T) {
	for seed := range uint64(30) {
		took, T := moveOnce(t, seed, true, 10*time.Minute)
		if took < 0 || took > 2*T {
			t.Errorf("seed %d: peers followed the move after %v, want within 2T = %v", seed, took, 2*T)
		}
	}
}

// Behind a NAT that rebinds the device does not notice; its peers do, on
// its next packet, and tell it; then it tells everyone.
func TestRebindNoticedByPeers(t *testing.T) {
	for seed := range uint64(30) {
		took, T := moveOnce(t, seed, false, 10*time.Minute)
		if took < 0 || took > 3*T {
			t.Errorf("seed %d: peers followed the rebinding after %v, want within 3T = %v", seed, took, 3*T)
		}
	}
	// And the device learned its new public address from its peers.
	s := presencetest.New(t, presencetest.Options{N: 3, Seed: 99})
	s.Run(4 * presence.DefaultInterval)
	to := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 7}), 41000)
	s.Move(0, to, false)
	s.Run(4 * presence.DefaultInterval)
	if !slices.Contains(s.Nodes[0].P.PublicAddrs(), to) {
		t.Errorf("PublicAddrs = %v, want it to contain %v", s.Nodes[0].P.PublicAddrs(), to)
	}
	if addr, _ := s.Nodes[0].P.OwnRecord(); addr != to {
		t.Errorf("own record advertises %v, want %v", addr, to)
	}
}

// recordsSetup gives a 3-node cluster that has settled, with node 0 moved
// once so that peers hold its version-2 record, and that record's
// predecessor.
func recordsSetup(t *testing.T) (s *presencetest.Net, old []byte, cur []byte) {
	s = presencetest.New(t, presencetest.Options{N: 3, Seed: 7})
	s.Run(3 * presence.DefaultInterval)
	old = slices.Clone(s.Nodes[0].P.OwnRecordBytes())
	to := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 1}), 5000)
	s.Move(0, to, true)
	if s.RunUntil(4*presence.DefaultInterval, func() bool { return s.AllKnow(0, to) }) < 0 {
		t.Fatal("the move was not followed")
	}
	s.Run(3 * presence.DefaultInterval)
	cur = slices.Clone(s.Nodes[0].P.OwnRecordBytes())
	if slices.Equal(old, cur) {
		t.Fatal("the move made no new record")
	}
	return s, old, cur
}

func TestRecordsForgedReplayedOlderIgnored(t *testing.T) {
	s, old, cur := recordsSetup(t)
	a, b := s.Nodes[0], s.Nodes[1] // node 2 carries the records to node 1
	var rCur struct {
		addr    netip.AddrPort
		version uint64
	}
	var err error
	_, rCur.addr, rCur.version, err = presence.RecordOf(cur)
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, 66}), 6666)

	deliver := func(rec []byte) presence.Stats {
		t.Helper()
		before := b.P.Stats()
		b.P.HandleDatagram(beatFrom(s, 2, 1, s.Nodes[2].Clock(), rec), s.Nodes[2].Wire)
		after := b.P.Stats()
		if after.Accepted != before.Accepted+1 {
			t.Fatalf("the carrying heartbeat itself was refused: %+v", after)
		}
		return after
	}
	check := func(what string, sigChecked bool, before presence.Stats, after presence.Stats) {
		t.Helper()
		if got := b.Book.Addr(a.Pub); got != rCur.addr {
			t.Errorf("%s moved node 0 to %v", what, got)
		}
		if after.RecordsIgnored != before.RecordsIgnored+1 || after.RecordsApplied != before.RecordsApplied {
			t.Errorf("%s: ignored %d→%d applied %d→%d", what, before.RecordsIgnored, after.RecordsIgnored, before.RecordsApplied, after.RecordsApplied)
		}
		if sigChecked != (after.BadSignature == before.BadSignature+1) {
			t.Errorf("%s: bad signatures %d→%d", what, before.BadSignature, after.BadSignature)
		}
	}

	// Signed by the wrong key: node 2 claims node 0 is elsewhere, newer.
	forged := presence.SignRecord(s.Nodes[2].Key, elsewhere, rCur.version+100)
	copy(forged, a.Pub[:]) // the record names node 0, the signature is node 2's
	st := b.P.Stats()
	check("a record signed by the wrong key", true, st, deliver(forged))

	// A replayed record: node 0's own, before it moved.
	st = b.P.Stats()
	check("a replayed record", false, st, deliver(old))

	// Node 0's own signature but an older version than held.
	st = b.P.Stats()
	check("an older version", false, st, deliver(presence.SignRecord(a.Key, elsewhere, rCur.version-1)))

	// And the same version again, with another address.
	st = b.P.Stats()
	check("the same version", false, st, deliver(presence.SignRecord(a.Key, elsewhere, rCur.version)))

	// A record about a device node 1 does not know is ignored too.
	_, stranger, _ := ed25519.GenerateKey(nil)
	st = b.P.Stats()
	deliver(presence.SignRecord(stranger, elsewhere, 1))
	if b.P.Stats().RecordsIgnored != st.RecordsIgnored+1 {
		t.Error("a stranger's record was not ignored")
	}

	// The control: node 0's signature with a newer version moves it.
	b.P.HandleDatagram(beatFrom(s, 2, 1, s.Nodes[2].Clock(), presence.SignRecord(a.Key, elsewhere, rCur.version+1)), s.Nodes[2].Wire)
	if got := b.Book.Addr(a.Pub); got != elsewhere {
		t.Errorf("a genuine newer record did not move node 0: at %v", got)
	}
	if pi, _ := b.Book.Lookup(a.Pub); pi.Version != rCur.version+1 {
		t.Errorf("book holds version %d, want %d", pi.Version, rCur.version+1)
	}
}

// Records travel by gossip: a peer that missed a move learns it from
// another peer's heartbeats.
func TestRecordsGossiped(t *testing.T) {
	const T = presence.DefaultInterval
	s := presencetest.New(t, presencetest.Options{N: 3, Seed: 11})
	s.Run(3 * T)
	// Node 2 cannot hear node 0 directly any more (a partition), so only
	// node 1's gossip can tell it where node 0 went.
	to := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 3}), 7000)
	s.Move(0, to, true)
	lat := s.Latency
	s.Latency = func(from, dst netip.AddrPort) time.Duration {
		if (from == to && dst == s.Nodes[2].Wire) || (from == s.Nodes[2].Wire && (dst == to || dst == presencetest.Addr(0))) {
			return time.Hour // lost
		}
		return lat(from, dst)
	}
	took := s.RunUntil(20*T, func() bool { return s.Nodes[2].Book.Addr(s.Nodes[0].Pub) == to })
	if took < 0 {
		t.Fatal("node 2 never learned node 0's new address through gossip")
	}
	if s.Nodes[2].P.Stats().RecordsApplied == 0 {
		t.Error("node 2 applied no record")
	}
}

// Friends learn our own devices' records from us, but not each other's.
func TestGossipToFriendsOnlyOwnDevices(t *testing.T) {
	s := presencetest.New(t, presencetest.Options{N: 3, Seed: 12})
	me := s.Nodes[0]
	// Node 0 holds records for node 1 (own) and node 2 (a friend).
	s.Run(3 * presence.DefaultInterval)
	have1 := me.P.SetPeerOwn(s.Nodes[1].Pub, true)
	have2 := me.P.SetPeerOwn(s.Nodes[2].Pub, false)
	toFriend := me.P.Gossip(presence.PeerInfo{Device: s.Nodes[2].Pub, Own: false})
	toOwn := me.P.Gossip(presence.PeerInfo{Device: s.Nodes[1].Pub, Own: true})
	if !have1 || !have2 {
		t.Fatal("node 0 holds no records to gossip")
	}
	names := func(recs [][]byte) (out []string) {
		for _, r := range recs {
			for i, n := range s.Nodes {
				if bytes.Equal(r[:presence.KeySize], n.Pub[:]) {
					out = append(out, string(rune('0'+i)))
				}
			}
		}
		return out
	}
	if got := names(toFriend); !slices.Equal(got, []string{"0", "1"}) && !slices.Equal(got, []string{"0"}) {
		t.Errorf("records for a friend (node 2): %v", got)
	}
	if got := names(toFriend); slices.Contains(got, "2") {
		t.Errorf("node 2 was sent its own record: %v", got)
	}
	if got := names(toOwn); !slices.Contains(got, "0") || slices.Contains(got, "1") {
		t.Errorf("records for an own device (node 1): %v", got)
	}
}

func TestReplayedHeartbeatIgnored(t *testing.T) {
	s := presencetest.New(t, presencetest.Options{N: 2, Seed: 13})
	s.Run(2 * presence.DefaultInterval)
	a, b := s.Nodes[0], s.Nodes[1]
	attacker := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, 1}), 1234)
	hb := beatFrom(s, 0, 1, a.Clock())
	b.P.HandleDatagram(hb, a.Wire)
	seen := s.Status(1, 0).LastSeen
	sets := b.Book.SetCount()

	st := b.P.Stats()
	b.P.HandleDatagram(hb, attacker)
	if got := b.P.Stats(); got.Replayed != st.Replayed+1 || got.RepliesSent != st.RepliesSent {
		t.Errorf("replayed heartbeat: replayed %d→%d, replies %d→%d", st.Replayed, got.Replayed, st.RepliesSent, got.RepliesSent)
	}
	if b.Book.Addr(a.Pub) != a.Wire || b.Book.SetCount() != sets {
		t.Errorf("a replayed heartbeat moved node 0 to %v", b.Book.Addr(a.Pub))
	}
	if got := s.Status(1, 0).LastSeen; !got.Equal(seen) {
		t.Errorf("a replayed heartbeat changed last-seen from %v to %v", seen, got)
	}

	// A heartbeat made for another device does not verify here, even
	// with a fresh sequence number: the recipient is signed.
	_, other, _ := ed25519.GenerateKey(nil)
	forOther := presence.EncodeBeat(presence.TypeHeartbeat, a.Key, pubOf(other), a.P.NextSeq(), a.Clock().UnixNano(), nil)
	st = b.P.Stats()
	b.P.HandleDatagram(forOther, attacker)
	if got := b.P.Stats(); got.BadSignature != st.BadSignature+1 || b.Book.Addr(a.Pub) != a.Wire {
		t.Errorf("a heartbeat addressed to another device was taken: %+v", got)
	}

	// A stale one, signed now with a fresh sequence number but sent three
	// minutes ago, is refused: it is answered (so that a skewed sender can
	// measure us) but changes nothing.
	stale := beatFrom(s, 0, 1, a.Clock().Add(-3*time.Minute))
	st = b.P.Stats()
	b.P.HandleDatagram(stale, attacker)
	got := b.P.Stats()
	if got.Stale != st.Stale+1 || got.Accepted != st.Accepted {
		t.Errorf("stale heartbeat: stale %d→%d accepted %d→%d", st.Stale, got.Stale, st.Accepted, got.Accepted)
	}
	if b.Book.Addr(a.Pub) != a.Wire || !s.Status(1, 0).LastSeen.Equal(seen) {
		t.Error("a stale heartbeat moved node 0 or refreshed it")
	}

	// A reply to no heartbeat of ours is refused.
	rep := presence.EncodeReplyTo(a.Key, b.Pub, a.P.NextSeq(), 42, b.Clock().UnixNano(), 1, 2, b.Wire, nil)
	st = b.P.Stats()
	b.P.HandleDatagram(rep, attacker)
	if got := b.P.Stats(); got.Unsolicited != st.Unsolicited+1 || b.Book.Addr(a.Pub) != a.Wire {
		t.Errorf("an unsolicited reply was taken: %+v", got)
	}
}

// Strangers cost no signature check and get no answer.
func TestUnknownSenderDroppedWithoutVerifying(t *testing.T) {
	s := presencetest.New(t, presencetest.Options{N: 2, Seed: 14})
	s.Run(2 * presence.DefaultInterval)
	b := s.Nodes[1]
	_, stranger, _ := ed25519.GenerateKey(nil)
	from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, 2}), 999)
	rec := presence.SignRecord(stranger, from, 1)
	hb := presence.EncodeBeat(presence.TypeHeartbeat, stranger, b.Pub, 1, b.Clock().UnixNano(), [][]byte{rec})
	st := b.P.Stats()
	sets := b.Book.SetCount()
	for range 100 {
		b.P.HandleDatagram(hb, from)
	}
	got := b.P.Stats()
	if got.SignatureChecks != st.SignatureChecks {
		t.Errorf("%d signature checks for strangers", got.SignatureChecks-st.SignatureChecks)
	}
	if got.Unknown != st.Unknown+100 || got.RepliesSent != st.RepliesSent || b.Book.SetCount() != sets {
		t.Errorf("a stranger's heartbeat was not dropped: %+v", got)
	}
	// Our own key is no peer either.
	b.P.HandleDatagram(presence.EncodeBeat(presence.TypeHeartbeat, b.Key, b.Pub, 2, b.Clock().UnixNano(), nil), from)
	if got := b.P.Stats(); got.Unknown != st.Unknown+101 || got.SignatureChecks != st.SignatureChecks {
		t.Errorf("our own key was treated as a peer: %+v", got)
	}
}

// quietTimes returns a time inside and one outside the windows of secret.
func quietTimes(secret []byte) (in, out time.Time) {
	start, end := presence.NextWindow(secret, presencetest.Epoch)
	in = start.Add(time.Second)
	out = end.Add(2 * time.Second)
	for presence.WindowOpen(secret, out) {
		out = out.Add(time.Second)
	}
	return in, out
}

func TestQuietMode(t *testing.T) {
	s := presencetest.New(t, presencetest.Options{N: 2, Seed: 15, Quiet: []bool{false, true}})
	q := s.Nodes[1]
	in, out := quietTimes(q.Window)
	stranger := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, 3}), 3478)
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint).Raw

	// Settle outside any window: known peers always get through.
	s.Clock.Set(out.Add(-2 * presence.DefaultInterval))
	for presence.WindowOpen(q.Window, s.Now()) {
		s.Clock.Set(s.Now().Add(-time.Second))
	}
	s.Run(time.Second)
	s.Clock.Set(out)
	if !q.P.Admit(s.Nodes[0].Wire, false) || !q.P.Admit(s.Nodes[0].Wire, true) {
		t.Error("a known peer was not admitted outside a window")
	}
	if q.P.Admit(stranger, false) || q.P.Admit(stranger, true) {
		t.Error("an unknown address was admitted outside a window")
	}
	answered := q.P.Stats().STUNAnswered
	s.Deliver(presencetest.Packet{From: stranger, To: q.Wire, Data: req})
	if q.P.Stats().STUNAnswered != answered {
		t.Error("a stranger's STUN request was answered outside a window")
	}
	// Even if the transport let it through, the request gets no answer.
	q.P.HandleDatagram(req, stranger)
	if q.P.Stats().STUNAnswered != answered {
		t.Error("HandleDatagram answered a stranger's STUN request outside a window")
	}
	// A known peer's heartbeat is answered outside windows.
	rs := q.P.Stats().RepliesSent
	s.Deliver(presencetest.Packet{From: s.Nodes[0].Wire, To: q.Wire, Data: beatFrom(s, 0, 1, s.Nodes[0].Clock())})
	if q.P.Stats().RepliesSent != rs+1 {
		t.Error("a known peer got no reply outside a window")
	}

	s.Clock.Set(in)
	if !q.P.Admit(stranger, false) {
		t.Error("an unknown address was not admitted inside a window")
	}
	s.Deliver(presencetest.Packet{From: stranger, To: q.Wire, Data: req})
	if q.P.Stats().STUNAnswered != answered+1 {
		t.Error("a stranger's STUN request was not answered inside a window")
	}

	// Answering it opened nothing: after the window it is a stranger again.
	s.Clock.Set(out)
	if q.P.Admit(stranger, false) {
		t.Error("a stranger answered inside a window stays admitted after it")
	}

	// The node that is not quiet admits everyone.
	if !s.Nodes[0].P.Admit(stranger, false) {
		t.Error("a node not in quiet mode dropped a packet")
	}
}

// A quiet device drops a peer that moved to an address it does not know,
// until the peer, missing it, heartbeats it inside one of its windows.
func TestQuietPeerFoundInWindow(t *testing.T) {
	const T = presence.DefaultInterval
	s := presencetest.New(t, presencetest.Options{N: 2, Seed: 16, Quiet: []bool{true, false}, Users: []int{0, 1}})
	q, m := s.Nodes[0], s.Nodes[1]
	_, out := quietTimes(q.Window)
	s.Clock.Set(out.Add(-3 * T))
	s.Run(3 * T)
	to := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 44}), 9000)
	s.Move(1, to, true)
	var admittedAt time.Time
	took := s.RunUntil(3*T+3*presence.WindowSlot, func() bool {
		if q.Book.Addr(m.Pub) == to {
			admittedAt = s.Now()
			return true
		}
		return false
	})
	if took < 0 {
		t.Fatalf("the quiet node never found its moved peer (dropped %d packets)", s.Dropped)
	}
	if s.Dropped == 0 {
		t.Error("nothing was dropped: the quiet node admitted an unknown address")
	}
	// The packet that got through arrived inside a window (by the quiet
	// node's clock), one latency before the book changed.
	if !presence.WindowOpen(q.Window, admittedAt.Add(-10*time.Millisecond)) {
		t.Errorf("the moved peer got through at %v, outside the quiet node's windows", admittedAt)
	}
}

// An authenticated QUIC connection from a new address moves the peer.
func TestObservedMovesPeer(t *testing.T) {
	s := presencetest.New(t, presencetest.Options{N: 2, Seed: 17})
	a, b := s.Nodes[0], s.Nodes[1]
	to := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 5}), 5555)
	b.P.Observed(a.Pub, to)
	if b.Book.Addr(a.Pub) != to || !s.Status(1, 0).Online {
		t.Error("Observed did not move the peer or mark it seen")
	}
	_, stranger, _ := ed25519.GenerateKey(nil)
	sets := b.Book.SetCount()
	b.P.Observed(pubOf(stranger), to)
	if b.Book.SetCount() != sets {
		t.Error("Observed took an unknown device")
	}
}

// STUN answers from peers and servers give our public addresses; a
// changed mapping makes us tell every peer at once.
func TestSTUNMappingChangeAnnounced(t *testing.T) {
	server := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 100}), 3478)
	s := presencetest.New(t, presencetest.Options{N: 3, Seed: 18, Config: func(_ int, c *presence.Config) { c.STUNServers = []netip.AddrPort{server} }})
	// The STUN server maps node 0 to a public address that changes.
	mapped := netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, 10}), 20000)
	answer := func(req []byte, from netip.AddrPort) {
		var m stun.Message
		if stun.Decode(req, &m) != nil || m.Type != stun.BindingRequest {
			return
		}
		addr := from
		if from == s.Nodes[0].Wire {
			addr = mapped
		}
		resp := stun.MustBuild(stun.NewTransactionIDSetter(m.TransactionID), stun.BindingSuccess,
			&stun.XORMappedAddress{IP: addr.Addr().AsSlice(), Port: int(addr.Port())}, stun.Fingerprint)
		s.Send(server, from, resp.Raw)
	}
	// The fake server answers as soon as a request is sent to it.
	s.Tap = func(sp presencetest.Packet) {
		if sp.To == server {
			answer(sp.Data, sp.From)
		}
	}
	s.Run(time.Second)
	if !slices.Contains(s.Nodes[0].P.PublicAddrs(), mapped) {
		t.Fatalf("PublicAddrs = %v, want %v", s.Nodes[0].P.PublicAddrs(), mapped)
	}
	if addr, _ := s.Nodes[0].P.OwnRecord(); addr != mapped {
		t.Errorf("own record advertises %v, want the STUN-mapped %v", addr, mapped)
	}
	s.Run(12 * presence.DefaultInterval)
	updates := s.Nodes[0].P.Stats().UpdatesSent
	mapped = netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, 10}), 20001)
	s.Run(11 * presence.DefaultInterval) // the next STUN round sees the new mapping
	if got := s.Nodes[0].P.Stats().UpdatesSent; got != updates+2 {
		t.Errorf("address updates %d→%d, want one to each of 2 peers", updates, got)
	}
	if addr, _ := s.Nodes[0].P.OwnRecord(); addr != mapped {
		t.Errorf("own record advertises %v, want %v", addr, mapped)
	}
}

func TestSTUNAnswerIgnoredUnlessAsked(t *testing.T) {
	s := presencetest.New(t, presencetest.Options{N: 2, Seed: 19})
	p := s.Nodes[0].P
	resp := stun.MustBuild(stun.TransactionID, stun.BindingSuccess,
		&stun.XORMappedAddress{IP: []byte{203, 0, 113, 1}, Port: 1}, stun.Fingerprint)
	p.HandleDatagram(resp.Raw, s.Nodes[1].Wire)
	if len(p.PublicAddrs()) != 0 || p.Stats().Unsolicited != 1 {
		t.Errorf("an unasked STUN answer was taken: %v", p.PublicAddrs())
	}
}

// The Admit cache follows the book.
func TestQuietAdmitFollowsBook(t *testing.T) {
	s := presencetest.New(t, presencetest.Options{N: 2, Seed: 20, Quiet: []bool{true, false}})
	q := s.Nodes[0]
	_, out := quietTimes(q.Window)
	s.Clock.Set(out)
	to := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 8}), 8)
	if q.P.Admit(to, false) {
		t.Fatal("admitted before the book knew the address")
	}
	q.P.Observed(s.Nodes[1].Pub, to)
	if !q.P.Admit(to, false) {
		t.Error("not admitted after the book moved the peer there")
	}
}

func TestStatusBeforeAnyPacket(t *testing.T) {
	s := presencetest.New(t, presencetest.Options{N: 5, Seed: 21})
	st := s.Nodes[0].P.Status()
	if len(st) != 4 {
		t.Fatalf("%d peers", len(st))
	}
	if !slices.IsSortedFunc(st, func(a, b presence.PeerStatus) int { return bytes.Compare(a.Device[:], b.Device[:]) }) {
		t.Error("Status is not sorted")
	}
	for _, x := range st {
		if x.Online || x.HaveRTT {
			t.Error("a peer is online before anything was heard")
		}
	}
}

// A peer that seems gone is heartbeated in the middle of each of its
// windows (by its clock as measured), once per window, besides the
// regular heartbeats.
func TestAimsAtWindowsOfMissingPeer(t *testing.T) {
	const T = time.Hour // no regular heartbeat in the way
	for _, skew := range []time.Duration{0, 1500 * time.Millisecond} {
		s := presencetest.New(t, presencetest.Options{N: 2, Interval: T, Seed: 22, Users: []int{0, 1}, Skew: []time.Duration{0, skew}})
		m, gone := s.Nodes[0], s.Nodes[1]
		// Measure the clocks first, then the peer disappears.
		s.Run(time.Second)
		if st := s.Status(0, 1); st.ClockOffset != skew {
			t.Fatalf("offset %v, want %v", st.ClockOffset, skew)
		}
		m.P.ForgetLastSeen(gone.Pub) // seems gone
		s.Kill(1)
		start := s.Now()
		var sent []time.Time
		s.Tap = func(sp presencetest.Packet) {
			if sp.From == m.Wire && sp.Data[0] == presence.TypeHeartbeat {
				sent = append(sent, s.Now())
			}
		}
		s.Run(5 * time.Minute)
		var want []time.Time
		for t0 := start.Add(skew); ; {
			ws, we := presence.NextWindow(gone.Window, t0)
			aim := ws.Add(presence.WindowLength / 2)
			if aim.Add(-skew).After(s.Now()) {
				break
			}
			if !aim.Before(start.Add(skew)) {
				want = append(want, aim.Add(-skew))
			}
			t0 = we
		}
		if len(want) < 4 || !slices.EqualFunc(sent, want, time.Time.Equal) {
			t.Errorf("skew %v: heartbeats at %v, want at window middles %v", skew, sent, want)
		}
	}
}

// Heartbeats go round random permutations of the peers: in each round of
// n heartbeats every peer gets one.
func TestHeartbeatRounds(t *testing.T) {
	const n = 6
	s := presencetest.New(t, presencetest.Options{N: n + 1, Seed: 23})
	s.Run(time.Second) // the greeting
	count := map[netip.AddrPort]int{}
	var order []netip.AddrPort
	s.Tap = func(sp presencetest.Packet) {
		if sp.From == s.Nodes[0].Wire && sp.Data[0] == presence.TypeHeartbeat {
			count[sp.To]++
			order = append(order, sp.To)
		}
	}
	for len(order) < 10*n {
		s.Run(presence.DefaultInterval)
	}
	for r := 0; r+n <= len(order); r += n {
		round := slices.Clone(order[r : r+n])
		slices.SortFunc(round, netip.AddrPort.Compare)
		if len(slices.Compact(round)) != n {
			t.Fatalf("round %d heartbeats %v: not every peer once", r/n, order[r:r+n])
		}
	}
	if slices.Equal(order[:n], order[n:2*n]) && slices.Equal(order[n:2*n], order[2*n:3*n]) {
		t.Error("every round has the same order")
	}
	// With this many peers each pair talks rarely, and yet all stay online.
	for j := 1; j <= n; j++ {
		if !s.Status(0, j).Online {
			t.Errorf("peer %d shown offline", j)
		}
	}
}

// A peer that stops answering goes offline after two unanswered
// heartbeats, long before its last-seen time runs out.
func TestOfflineAfterUnansweredHeartbeats(t *testing.T) {
	const T = presence.DefaultInterval
	s := presencetest.New(t, presencetest.Options{N: 2, Seed: 24})
	s.Run(3 * T)
	if !s.Status(0, 1).Online {
		t.Fatal("not online to begin with")
	}
	s.Kill(1)
	took := s.RunUntil(10*T, func() bool { return !s.Status(0, 1).Online })
	if took < 0 || took > 3*T+T/2 {
		t.Errorf("offline after %v, want within two heartbeats and a grace (≤ 3.5T)", took)
	}
	if took >= 0 && took < T {
		t.Errorf("offline after only %v", took)
	}
}
