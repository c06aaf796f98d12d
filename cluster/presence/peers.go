package presence

import (
	"bytes"
	"slices"
	"time"

	"github.com/kith-project/kith/seed"
)

// peerState is what presence keeps in memory about one peer. Guarded by
// Presence.mu.
type peerState struct {
	replay   replayWindow
	lastSeen time.Time
	version  uint64 // newest record version held
	record   []byte // that record's signed bytes, for gossip
	own      bool   // the record's device is one of ours, for gossip
	pending  []pendingBeat
	// challengedAt is when we last sent a heartbeat to answer an unsynced
	// one (a sender that restarted, or a replay): its reply resyncs.
	challengedAt time.Time
	knownBudget  bucket // verifications of datagrams from the book's address
	otherBudget  bucket // and from anywhere else (see budget.go)
	samples      []sample
	rtt          time.Duration // smoothed
	offset       time.Duration // from the sample with the lowest RTT
	haveRTT      bool
	observed     learned   // our address as this peer last reported it
	windowAt     time.Time // start of the peer's last window we aimed at
	online       bool      // as last reported to subscribers
}

type pendingBeat struct {
	seq uint64
	t1  int64
	at  time.Time // t1 as our clock read it, monotonic reading included
	// probe, if set, is told of the reply (Probe).
	probe chan<- ProbeResult
}

type sample struct {
	rtt, offset time.Duration
}

// peer returns the state for device, making it if needed. Call with mu
// held, with a 32-byte key.
func (p *Presence) peer(device seed.DevicePublic) *peerState {
	ps, ok := p.peers[device]
	if !ok {
		ps = &peerState{}
		p.peers[device] = ps
	}
	return ps
}

// onlineLocked reports whether ps is online among n peers: its last
// authenticated packet is at most OnlineIntervals·T·n old (each peer hears
// from us at least once every 2n−1 heartbeats, see nextPeerLocked), and
// the heartbeats we sent it since have not gone unanswered twice.
func (p *Presence) onlineLocked(ps *peerState, now time.Time, n int) bool {
	if ps.lastSeen.IsZero() || now.Sub(ps.lastSeen) > OnlineIntervals*p.cfg.Interval*time.Duration(max(n, 1)) {
		return false
	}
	grace := max(p.cfg.Interval/2, 2*time.Second)
	missed := 0
	for _, b := range ps.pending {
		sent := b.at
		if sent.After(ps.lastSeen) && now.Sub(sent) > grace {
			missed++
		}
	}
	return missed < 2
}

// nextPeerLocked picks the peer for the next heartbeat, uniformly at
// random among those not yet picked in this round: the rounds are random
// permutations of the peers, so that every peer hears from us at least
// once every 2n−1 heartbeats and none is left out by chance.
func (p *Presence) nextPeerLocked(peers []PeerInfo) PeerInfo {
	byKey := make(map[seed.DevicePublic]PeerInfo, len(peers))
	for _, pi := range peers {
		byKey[pi.Device] = pi
	}
	if len(byKey) == 0 {
		return PeerInfo{}
	}
	for {
		for len(p.round) > 0 {
			k := p.round[0]
			p.round = p.round[1:]
			if pi, ok := byKey[k]; ok {
				return pi
			}
		}
		for k := range byKey {
			p.round = append(p.round, k)
		}
		slices.SortFunc(p.round, func(a, b seed.DevicePublic) int { return bytes.Compare(a[:], b[:]) })
		p.rnd.Shuffle(len(p.round), func(i, j int) { p.round[i], p.round[j] = p.round[j], p.round[i] })
	}
}

// reachable keeps the peers we can send to.
func reachable(peers []PeerInfo) []PeerInfo {
	out := peers[:0:0]
	for _, pi := range peers {
		if !isZero(pi.Device) && validAddr(pi.Addr) {
			out = append(out, pi)
		}
	}
	return out
}

// measureLocked takes a clock sample from a reply received at t4.
func (p *Presence) measureLocked(ps *peerState, pk packet, t4 time.Time) {
	t1, t2, t3, t4n := pk.t1, pk.t2, pk.t3, t4.UnixNano()
	rtt := time.Duration((t4n - t1) - (t3 - t2))
	if rtt < 0 || t3 < t2 {
		return // impossible times: nothing to learn
	}
	s := sample{rtt: rtt, offset: time.Duration(((t2 - t1) + (t3 - t4n)) / 2)}
	if ps.haveRTT && (s.offset-ps.offset > clockStep+s.rtt || ps.offset-s.offset > clockStep+s.rtt) {
		// One of the two clocks was stepped: the older samples measured
		// another clock. Keeping the best of them would leave us refusing
		// the peer's heartbeats as stale for eight more samples.
		ps.samples = ps.samples[:0]
	}
	ps.samples = append(ps.samples, s)
	if len(ps.samples) > maxSamples {
		ps.samples = ps.samples[1:]
	}
	// As NTP's clock filter does, trust the offset of the sample that
	// spent the least time on the way: its error is at most half its RTT.
	best := ps.samples[0]
	for _, x := range ps.samples[1:] {
		if x.rtt < best.rtt {
			best = x
		}
	}
	ps.offset = best.offset
	if !ps.haveRTT {
		ps.rtt = rtt
	} else {
		ps.rtt += (rtt - ps.rtt) / 8 // as TCP's SRTT
	}
	ps.haveRTT = true
}
