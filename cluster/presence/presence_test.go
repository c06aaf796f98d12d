package presence

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/pion/stun/v2"
)

func TestNewRefusesBadConfig(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	send := func([]byte, netip.AddrPort) error { return nil }
	for name, cfg := range map[string]Config{
		"no key":        {Book: newMemBook(), Send: send},
		"short key":     {Key: key[:10], Book: newMemBook(), Send: send},
		"no book":       {Key: key, Send: send},
		"no send":       {Key: key, Book: newMemBook()},
		"quiet, no win": {Key: key, Book: newMemBook(), Send: send, Quiet: true},
		"bad stun":      {Key: key, Book: newMemBook(), Send: send, STUNServers: []netip.AddrPort{{}}},
	} {
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: New = %v, want ErrInvalidConfig", name, err)
		}
	}
}

func TestHeartbeatsReachPeers(t *testing.T) {
	const T = 15 * time.Second
	s := newSim(t, simOpts{n: 4, interval: T, seed: 1, latency: 10 * time.Millisecond})
	s.run(8 * T)
	for i := range s.nodes {
		for j := range s.nodes {
			if i == j {
				continue
			}
			st := s.status(i, j)
			if !st.Online || !st.HaveRTT {
				t.Errorf("node %d sees node %d online=%v haveRTT=%v after 8T", i, j, st.Online, st.HaveRTT)
				continue
			}
			if st.RTT != 20*time.Millisecond || st.ClockOffset != 0 {
				t.Errorf("node %d sees node %d with rtt %v offset %v, want 20ms and 0", i, j, st.RTT, st.ClockOffset)
			}
		}
		ps := s.nodes[i].p.Stats()
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
	s := newSim(t, simOpts{n: 2, interval: T, seed: 2})
	var sent []time.Time
	s.tap = func(sp simPkt) {
		if sp.from == s.nodes[0].wire && sp.data[0] == TypeHeartbeat {
			sent = append(sent, s.now)
		}
	}
	s.run(400 * T)
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
	s := newSim(t, simOpts{n: 2, interval: T, seed: 3, skew: []time.Duration{0, 2 * time.Second}, latency: 7 * time.Millisecond})
	s.run(6 * T)
	a, b := s.status(0, 1), s.status(1, 0)
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
	s = newSim(t, simOpts{n: 2, interval: T, seed: 4, skew: []time.Duration{0, 2 * time.Second}})
	s.latency = func(from, _ netip.AddrPort) time.Duration {
		if from == s.nodes[0].wire {
			return 5 * time.Millisecond
		}
		return 45 * time.Millisecond
	}
	s.run(6 * T)
	a = s.status(0, 1)
	if d := a.ClockOffset - 2*time.Second; d < -a.RTT/2 || d > a.RTT/2 {
		t.Errorf("offset %v with rtt %v: error beyond rtt/2", a.ClockOffset, a.RTT)
	}
}

// A clock skewed far beyond MaxClockSkew is still measured (replies are
// proven fresh by their echo), after which its heartbeats are believed.
func TestLargeSkewIsMeasured(t *testing.T) {
	const T = 15 * time.Second
	s := newSim(t, simOpts{n: 2, interval: T, seed: 5, skew: []time.Duration{0, 10 * time.Minute}})
	s.run(10 * T)
	a, b := s.status(0, 1), s.status(1, 0)
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
	s := newSim(tb, simOpts{n: 4, interval: T, seed: seed})
	s.run(4*T + time.Duration(seed%97)*T/97) // settle, then move at a random phase
	to := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 9}), 40000)
	s.move(0, to, noticed)
	return s.runUntil(limit, func() bool { return s.allKnow(0, to) }), T
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
	s := newSim(t, simOpts{n: 3, seed: 99})
	s.run(4 * DefaultInterval)
	to := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 7}), 41000)
	s.move(0, to, false)
	s.run(4 * DefaultInterval)
	if !slices.Contains(s.nodes[0].p.PublicAddrs(), to) {
		t.Errorf("PublicAddrs = %v, want it to contain %v", s.nodes[0].p.PublicAddrs(), to)
	}
	if addr, _ := s.nodes[0].p.OwnRecord(); addr != to {
		t.Errorf("own record advertises %v, want %v", addr, to)
	}
}

// recordsSetup gives a 3-node cluster that has settled, with node 0 moved
// once so that peers hold its version-2 record, and that record's
// predecessor.
func recordsSetup(t *testing.T) (s *simNet, old []byte, cur []byte) {
	s = newSim(t, simOpts{n: 3, seed: 7})
	s.run(3 * DefaultInterval)
	old = slices.Clone(s.nodes[0].p.self.record)
	to := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 1}), 5000)
	s.move(0, to, true)
	if s.runUntil(4*DefaultInterval, func() bool { return s.allKnow(0, to) }) < 0 {
		t.Fatal("the move was not followed")
	}
	s.run(3 * DefaultInterval)
	cur = slices.Clone(s.nodes[0].p.self.record)
	if slices.Equal(old, cur) {
		t.Fatal("the move made no new record")
	}
	return s, old, cur
}

func TestRecordsForgedReplayedOlderIgnored(t *testing.T) {
	s, old, cur := recordsSetup(t)
	a, b := s.nodes[0], s.nodes[1] // node 2 carries the records to node 1
	rCur, err := decodeRecord(cur)
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, 66}), 6666)

	deliver := func(rec []byte) Stats {
		t.Helper()
		before := b.p.Stats()
		b.p.HandleDatagram(s.beatFrom(2, 1, s.nodes[2].clock(), rec), s.nodes[2].wire)
		after := b.p.Stats()
		if after.Accepted != before.Accepted+1 {
			t.Fatalf("the carrying heartbeat itself was refused: %+v", after)
		}
		return after
	}
	check := func(what string, sigChecked bool, before Stats, after Stats) {
		t.Helper()
		if got := b.book.addrOf(a.pub); got != rCur.addr {
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
	forged := signRecord(s.nodes[2].key, elsewhere, rCur.version+100)
	copy(forged, a.pub[:]) // the record names node 0, the signature is node 2's
	st := b.p.Stats()
	check("a record signed by the wrong key", true, st, deliver(forged))

	// A replayed record: node 0's own, before it moved.
	st = b.p.Stats()
	check("a replayed record", false, st, deliver(old))

	// Node 0's own signature but an older version than held.
	st = b.p.Stats()
	check("an older version", false, st, deliver(signRecord(a.key, elsewhere, rCur.version-1)))

	// And the same version again, with another address.
	st = b.p.Stats()
	check("the same version", false, st, deliver(signRecord(a.key, elsewhere, rCur.version)))

	// A record about a device node 1 does not know is ignored too.
	_, stranger, _ := ed25519.GenerateKey(nil)
	st = b.p.Stats()
	deliver(signRecord(stranger, elsewhere, 1))
	if b.p.Stats().RecordsIgnored != st.RecordsIgnored+1 {
		t.Error("a stranger's record was not ignored")
	}

	// The control: node 0's signature with a newer version moves it.
	b.p.HandleDatagram(s.beatFrom(2, 1, s.nodes[2].clock(), signRecord(a.key, elsewhere, rCur.version+1)), s.nodes[2].wire)
	if got := b.book.addrOf(a.pub); got != elsewhere {
		t.Errorf("a genuine newer record did not move node 0: at %v", got)
	}
	if pi, _ := b.book.Lookup(a.pub); pi.Version != rCur.version+1 {
		t.Errorf("book holds version %d, want %d", pi.Version, rCur.version+1)
	}
}

// Records travel by gossip: a peer that missed a move learns it from
// another peer's heartbeats.
func TestRecordsGossiped(t *testing.T) {
	const T = DefaultInterval
	s := newSim(t, simOpts{n: 3, seed: 11})
	s.run(3 * T)
	// Node 2 cannot hear node 0 directly any more (a partition), so only
	// node 1's gossip can tell it where node 0 went.
	to := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 3}), 7000)
	s.move(0, to, true)
	lat := s.latency
	s.latency = func(from, dst netip.AddrPort) time.Duration {
		if (from == to && dst == s.nodes[2].wire) || (from == s.nodes[2].wire && (dst == to || dst == simAddr(0))) {
			return time.Hour // lost
		}
		return lat(from, dst)
	}
	took := s.runUntil(20*T, func() bool { return s.nodes[2].book.addrOf(s.nodes[0].pub) == to })
	if took < 0 {
		t.Fatal("node 2 never learned node 0's new address through gossip")
	}
	if s.nodes[2].p.Stats().RecordsApplied == 0 {
		t.Error("node 2 applied no record")
	}
}

// Friends learn our own devices' records from us, but not each other's.
func TestGossipToFriendsOnlyOwnDevices(t *testing.T) {
	s := newSim(t, simOpts{n: 3, seed: 12})
	me := s.nodes[0]
	// Node 0 holds records for node 1 (own) and node 2 (a friend).
	s.run(3 * DefaultInterval)
	me.p.mu.Lock()
	me.p.peer(s.nodes[1].pub).own = true
	me.p.peer(s.nodes[2].pub).own = false
	have1, have2 := me.p.peer(s.nodes[1].pub).record != nil, me.p.peer(s.nodes[2].pub).record != nil
	toFriend := me.p.gossipLocked(PeerInfo{Device: s.nodes[2].pub, Own: false})
	toOwn := me.p.gossipLocked(PeerInfo{Device: s.nodes[1].pub, Own: true})
	me.p.mu.Unlock()
	if !have1 || !have2 {
		t.Fatal("node 0 holds no records to gossip")
	}
	names := func(recs [][]byte) (out []string) {
		for _, r := range recs {
			for i, n := range s.nodes {
				if bytes.Equal(r[:keySize], n.pub[:]) {
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
	s := newSim(t, simOpts{n: 2, seed: 13})
	s.run(2 * DefaultInterval)
	a, b := s.nodes[0], s.nodes[1]
	attacker := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, 1}), 1234)
	hb := s.beatFrom(0, 1, a.clock())
	b.p.HandleDatagram(hb, a.wire)
	seen := s.status(1, 0).LastSeen
	sets := b.book.setCount()

	st := b.p.Stats()
	b.p.HandleDatagram(hb, attacker)
	if got := b.p.Stats(); got.Replayed != st.Replayed+1 || got.RepliesSent != st.RepliesSent {
		t.Errorf("replayed heartbeat: replayed %d→%d, replies %d→%d", st.Replayed, got.Replayed, st.RepliesSent, got.RepliesSent)
	}
	if b.book.addrOf(a.pub) != a.wire || b.book.setCount() != sets {
		t.Errorf("a replayed heartbeat moved node 0 to %v", b.book.addrOf(a.pub))
	}
	if got := s.status(1, 0).LastSeen; !got.Equal(seen) {
		t.Errorf("a replayed heartbeat changed last-seen from %v to %v", seen, got)
	}

	// A heartbeat made for another device does not verify here, even
	// with a fresh sequence number: the recipient is signed.
	_, other, _ := ed25519.GenerateKey(nil)
	forOther := encodeBeat(TypeHeartbeat, a.key, pubOf(other), a.p.nextSeq(), a.clock().UnixNano(), nil)
	st = b.p.Stats()
	b.p.HandleDatagram(forOther, attacker)
	if got := b.p.Stats(); got.BadSignature != st.BadSignature+1 || b.book.addrOf(a.pub) != a.wire {
		t.Errorf("a heartbeat addressed to another device was taken: %+v", got)
	}

	// A stale one, signed now with a fresh sequence number but sent three
	// minutes ago, is refused: it is answered (so that a skewed sender can
	// measure us) but changes nothing.
	stale := s.beatFrom(0, 1, a.clock().Add(-3*time.Minute))
	st = b.p.Stats()
	b.p.HandleDatagram(stale, attacker)
	got := b.p.Stats()
	if got.Stale != st.Stale+1 || got.Accepted != st.Accepted {
		t.Errorf("stale heartbeat: stale %d→%d accepted %d→%d", st.Stale, got.Stale, st.Accepted, got.Accepted)
	}
	if b.book.addrOf(a.pub) != a.wire || !s.status(1, 0).LastSeen.Equal(seen) {
		t.Error("a stale heartbeat moved node 0 or refreshed it")
	}

	// A reply to no heartbeat of ours is refused.
	hbB := packet{seq: 42, t1: b.clock().UnixNano()}
	rep := encodeReply(a.key, b.pub, a.p.nextSeq(), hbB, 1, 2, b.wire, nil)
	st = b.p.Stats()
	b.p.HandleDatagram(rep, attacker)
	if got := b.p.Stats(); got.Unsolicited != st.Unsolicited+1 || b.book.addrOf(a.pub) != a.wire {
		t.Errorf("an unsolicited reply was taken: %+v", got)
	}
}

// Strangers cost no signature check and get no answer.
func TestUnknownSenderDroppedWithoutVerifying(t *testing.T) {
	s := newSim(t, simOpts{n: 2, seed: 14})
	s.run(2 * DefaultInterval)
	b := s.nodes[1]
	_, stranger, _ := ed25519.GenerateKey(nil)
	from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, 2}), 999)
	rec := signRecord(stranger, from, 1)
	hb := encodeBeat(TypeHeartbeat, stranger, b.pub, 1, b.clock().UnixNano(), [][]byte{rec})
	st := b.p.Stats()
	sets := b.book.setCount()
	for range 100 {
		b.p.HandleDatagram(hb, from)
	}
	got := b.p.Stats()
	if got.SignatureChecks != st.SignatureChecks {
		t.Errorf("%d signature checks for strangers", got.SignatureChecks-st.SignatureChecks)
	}
	if got.Unknown != st.Unknown+100 || got.RepliesSent != st.RepliesSent || b.book.setCount() != sets {
		t.Errorf("a stranger's heartbeat was not dropped: %+v", got)
	}
	// Our own key is no peer either.
	b.p.HandleDatagram(encodeBeat(TypeHeartbeat, b.key, b.pub, 2, b.clock().UnixNano(), nil), from)
	if got := b.p.Stats(); got.Unknown != st.Unknown+101 || got.SignatureChecks != st.SignatureChecks {
		t.Errorf("our own key was treated as a peer: %+v", got)
	}
}

// quietTimes returns a time inside and one outside the windows of secret.
func quietTimes(secret []byte) (in, out time.Time) {
	start, end := NextWindow(secret, simEpoch)
	in = start.Add(time.Second)
	out = end.Add(2 * time.Second)
	for WindowOpen(secret, out) {
		out = out.Add(time.Second)
	}
	return in, out
}

func TestQuietMode(t *testing.T) {
	s := newSim(t, simOpts{n: 2, seed: 15, quiet: []bool{false, true}})
	q := s.nodes[1]
	in, out := quietTimes(q.window)
	stranger := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, 3}), 3478)
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint).Raw

	// Settle outside any window: known peers always get through.
	s.now = out.Add(-2 * DefaultInterval)
	for WindowOpen(q.window, s.now) {
		s.now = s.now.Add(-time.Second)
	}
	s.run(time.Second)
	s.now = out
	if !q.p.Admit(s.nodes[0].wire, false) || !q.p.Admit(s.nodes[0].wire, true) {
		t.Error("a known peer was not admitted outside a window")
	}
	if q.p.Admit(stranger, false) || q.p.Admit(stranger, true) {
		t.Error("an unknown address was admitted outside a window")
	}
	answered := q.p.Stats().STUNAnswered
	s.deliver(simPkt{from: stranger, to: q.wire, data: req})
	if q.p.Stats().STUNAnswered != answered {
		t.Error("a stranger's STUN request was answered outside a window")
	}
	// Even if the transport let it through, the request gets no answer.
	q.p.HandleDatagram(req, stranger)
	if q.p.Stats().STUNAnswered != answered {
		t.Error("HandleDatagram answered a stranger's STUN request outside a window")
	}
	// A known peer's heartbeat is answered outside windows.
	rs := q.p.Stats().RepliesSent
	s.deliver(simPkt{from: s.nodes[0].wire, to: q.wire, data: s.beatFrom(0, 1, s.nodes[0].clock())})
	if q.p.Stats().RepliesSent != rs+1 {
		t.Error("a known peer got no reply outside a window")
	}

	s.now = in
	if !q.p.Admit(stranger, false) {
		t.Error("an unknown address was not admitted inside a window")
	}
	s.deliver(simPkt{from: stranger, to: q.wire, data: req})
	if q.p.Stats().STUNAnswered != answered+1 {
		t.Error("a stranger's STUN request was not answered inside a window")
	}

	// Answering it opened nothing: after the window it is a stranger again.
	s.now = out
	if q.p.Admit(stranger, false) {
		t.Error("a stranger answered inside a window stays admitted after it")
	}

	// The node that is not quiet admits everyone.
	if !s.nodes[0].p.Admit(stranger, false) {
		t.Error("a node not in quiet mode dropped a packet")
	}
}

// A quiet device drops a peer that moved to an address it does not know,
// until the peer, missing it, heartbeats it inside one of its windows.
func TestQuietPeerFoundInWindow(t *testing.T) {
	const T = DefaultInterval
	s := newSim(t, simOpts{n: 2, seed: 16, quiet: []bool{true, false}, users: []int{0, 1}})
	q, m := s.nodes[0], s.nodes[1]
	_, out := quietTimes(q.window)
	s.now = out.Add(-3 * T)
	s.run(3 * T)
	to := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 44}), 9000)
	s.move(1, to, true)
	var admittedAt time.Time
	took := s.runUntil(3*T+3*WindowSlot, func() bool {
		if q.book.addrOf(m.pub) == to {
			admittedAt = s.now
			return true
		}
		return false
	})
	if took < 0 {
		t.Fatalf("the quiet node never found its moved peer (dropped %d packets)", s.dropped)
	}
	if s.dropped == 0 {
		t.Error("nothing was dropped: the quiet node admitted an unknown address")
	}
	// The packet that got through arrived inside a window (by the quiet
	// node's clock), one latency before the book changed.
	if !WindowOpen(q.window, admittedAt.Add(-10*time.Millisecond)) {
		t.Errorf("the moved peer got through at %v, outside the quiet node's windows", admittedAt)
	}
}

// An authenticated QUIC connection from a new address moves the peer.
func TestObservedMovesPeer(t *testing.T) {
	s := newSim(t, simOpts{n: 2, seed: 17})
	a, b := s.nodes[0], s.nodes[1]
	to := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 5}), 5555)
	b.p.Observed(a.pub, to)
	if b.book.addrOf(a.pub) != to || !s.status(1, 0).Online {
		t.Error("Observed did not move the peer or mark it seen")
	}
	_, stranger, _ := ed25519.GenerateKey(nil)
	sets := b.book.setCount()
	b.p.Observed(pubOf(stranger), to)
	if b.book.setCount() != sets {
		t.Error("Observed took an unknown device")
	}
}

// STUN answers from peers and servers give our public addresses; a
// changed mapping makes us tell every peer at once.
func TestSTUNMappingChangeAnnounced(t *testing.T) {
	server := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 100}), 3478)
	s := newSim(t, simOpts{n: 3, seed: 18, config: func(c *Config) { c.STUNServers = []netip.AddrPort{server} }})
	// The STUN server maps node 0 to a public address that changes.
	mapped := netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, 10}), 20000)
	stunSrv := &simNode{net: s, wire: server}
	answer := func(req []byte, from netip.AddrPort) {
		var m stun.Message
		if stun.Decode(req, &m) != nil || m.Type != stun.BindingRequest {
			return
		}
		addr := from
		if from == s.nodes[0].wire {
			addr = mapped
		}
		resp := stun.MustBuild(stun.NewTransactionIDSetter(m.TransactionID), stun.BindingSuccess,
			&stun.XORMappedAddress{IP: addr.Addr().AsSlice(), Port: int(addr.Port())}, stun.Fingerprint)
		stunSrv.send(resp.Raw, from)
	}
	// The fake server answers as soon as a request is sent to it.
	s.tap = func(sp simPkt) {
		if sp.to == server {
			answer(sp.data, sp.from)
		}
	}
	s.run(time.Second)
	if !slices.Contains(s.nodes[0].p.PublicAddrs(), mapped) {
		t.Fatalf("PublicAddrs = %v, want %v", s.nodes[0].p.PublicAddrs(), mapped)
	}
	if addr, _ := s.nodes[0].p.OwnRecord(); addr != mapped {
		t.Errorf("own record advertises %v, want the STUN-mapped %v", addr, mapped)
	}
	s.run(12 * DefaultInterval)
	updates := s.nodes[0].p.Stats().UpdatesSent
	mapped = netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, 10}), 20001)
	s.run(11 * DefaultInterval) // the next STUN round sees the new mapping
	if got := s.nodes[0].p.Stats().UpdatesSent; got != updates+2 {
		t.Errorf("address updates %d→%d, want one to each of 2 peers", updates, got)
	}
	if addr, _ := s.nodes[0].p.OwnRecord(); addr != mapped {
		t.Errorf("own record advertises %v, want %v", addr, mapped)
	}
}

func TestSTUNAnswerIgnoredUnlessAsked(t *testing.T) {
	s := newSim(t, simOpts{n: 2, seed: 19})
	p := s.nodes[0].p
	resp := stun.MustBuild(stun.TransactionID, stun.BindingSuccess,
		&stun.XORMappedAddress{IP: []byte{203, 0, 113, 1}, Port: 1}, stun.Fingerprint)
	p.HandleDatagram(resp.Raw, s.nodes[1].wire)
	if len(p.PublicAddrs()) != 0 || p.Stats().Unsolicited != 1 {
		t.Errorf("an unasked STUN answer was taken: %v", p.PublicAddrs())
	}
}

// The Admit cache follows the book.
func TestQuietAdmitFollowsBook(t *testing.T) {
	s := newSim(t, simOpts{n: 2, seed: 20, quiet: []bool{true, false}})
	q := s.nodes[0]
	_, out := quietTimes(q.window)
	s.now = out
	to := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 8}), 8)
	if q.p.Admit(to, false) {
		t.Fatal("admitted before the book knew the address")
	}
	q.p.Observed(s.nodes[1].pub, to)
	if !q.p.Admit(to, false) {
		t.Error("not admitted after the book moved the peer there")
	}
}

func TestStatusBeforeAnyPacket(t *testing.T) {
	s := newSim(t, simOpts{n: 5, seed: 21})
	st := s.nodes[0].p.Status()
	if len(st) != 4 {
		t.Fatalf("%d peers", len(st))
	}
	if !slices.IsSortedFunc(st, func(a, b PeerStatus) int { return bytes.Compare(a.Device[:], b.Device[:]) }) {
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
		s := newSim(t, simOpts{n: 2, interval: T, seed: 22, users: []int{0, 1}, skew: []time.Duration{0, skew}})
		m, gone := s.nodes[0], s.nodes[1]
		// Measure the clocks first, then the peer disappears.
		s.run(time.Second)
		if st := s.status(0, 1); st.ClockOffset != skew {
			t.Fatalf("offset %v, want %v", st.ClockOffset, skew)
		}
		m.p.mu.Lock()
		m.p.peer(gone.pub).lastSeen = time.Time{} // seems gone
		m.p.mu.Unlock()
		s.kill(1)
		start := s.now
		var sent []time.Time
		s.tap = func(sp simPkt) {
			if sp.from == m.wire && sp.data[0] == TypeHeartbeat {
				sent = append(sent, s.now)
			}
		}
		s.run(5 * time.Minute)
		var want []time.Time
		for t0 := start.Add(skew); ; {
			ws, we := NextWindow(gone.window, t0)
			aim := ws.Add(WindowLength / 2)
			if aim.Add(-skew).After(s.now) {
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
	s := newSim(t, simOpts{n: n + 1, seed: 23})
	s.run(time.Second) // the greeting
	count := map[netip.AddrPort]int{}
	var order []netip.AddrPort
	s.tap = func(sp simPkt) {
		if sp.from == s.nodes[0].wire && sp.data[0] == TypeHeartbeat {
			count[sp.to]++
			order = append(order, sp.to)
		}
	}
	for len(order) < 10*n {
		s.run(DefaultInterval)
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
		if !s.status(0, j).Online {
			t.Errorf("peer %d shown offline", j)
		}
	}
}

// A peer that stops answering goes offline after two unanswered
// heartbeats, long before its last-seen time runs out.
func TestOfflineAfterUnansweredHeartbeats(t *testing.T) {
	const T = DefaultInterval
	s := newSim(t, simOpts{n: 2, seed: 24})
	s.run(3 * T)
	if !s.status(0, 1).Online {
		t.Fatal("not online to begin with")
	}
	s.kill(1)
	took := s.runUntil(10*T, func() bool { return !s.status(0, 1).Online })
	if took < 0 || took > 3*T+T/2 {
		t.Errorf("offline after %v, want within two heartbeats and a grace (≤ 3.5T)", took)
	}
	if took >= 0 && took < T {
		t.Errorf("offline after only %v", took)
	}
}
