package presence

import (
	"net/netip"
	"slices"
	"time"

	"github.com/kith-project/kith/seed"
)

// HandleDatagram handles one datagram from the agent's socket: a
// heartbeat, an address update, a reply, or a STUN message. It does not
// keep pkt. Anything malformed, unknown, forged, replayed or stale is
// dropped (and counted in Stats); a stale heartbeat is still answered,
// without being believed, so that its sender can measure our clock.
func (p *Presence) HandleDatagram(pkt []byte, from netip.AddrPort) {
	if len(pkt) == 0 || !from.IsValid() {
		return
	}
	from = normAddr(from)
	if pkt[0] <= 0x03 {
		p.handleSTUN(pkt, from)
		return
	}
	p.handleKith(pkt, from)
}

func (p *Presence) handleKith(pkt []byte, from netip.AddrPort) {
	now := p.cfg.Now()
	pk, err := decodePacket(pkt)
	if err != nil {
		p.n.malformed.Add(1)
		p.log.Debug("presence: dropping datagram", "from", from, "err", err)
		return
	}
	// No work for strangers: look the sender up before any signature.
	info, ok := p.cfg.Book.Lookup(pk.sender)
	if !ok || !info.Device.Equal(pk.sender) || pk.sender.Equal(p.pub) {
		p.n.unknown.Add(1)
		return
	}
	// Nor for replays of what we took, nor beyond the budget that bad
	// signatures are paid from (see budget.go).
	p.mu.Lock()
	seen := p.peer(pk.sender).replay.check(pk.seq) == seqSeen
	p.mu.Unlock()
	if seen {
		p.n.replayed.Add(1)
		return
	}
	ok, fromKnown := p.spend(pk.sender, from, info.Addr, now)
	if !ok {
		p.n.throttled.Add(1)
		p.log.Debug("presence: signature budget spent, dropping unverified", "from", from, "device", pk.sender.Short())
		return
	}
	p.n.sigChecks.Add(1)
	if !verifyPacket(pk, p.pub) {
		p.n.badSig.Add(1)
		p.log.Debug("presence: bad signature", "from", from, "device", pk.sender.Short())
		return
	}
	p.refundSpent(pk.sender, fromKnown)

	p.mu.Lock()
	ps := p.peer(pk.sender)
	verdict := ps.replay.check(pk.seq)
	if verdict == seqSeen {
		p.mu.Unlock()
		p.n.replayed.Add(1)
		return
	}
	var (
		stale    bool
		observed bool // a reply told us how we are seen
		// probe waits for this reply; it is answered once the reply
		// has moved the peer, so that its caller finds the book moved.
		probe  chan<- ProbeResult
		result ProbeResult
	)
	if pk.typ == TypeHeartbeatReply {
		// The echo of a heartbeat we sent, once, proves a reply fresh:
		// no clock is needed, so a skewed peer can still be measured.
		i := slices.IndexFunc(ps.pending, func(b pendingBeat) bool { return b.seq == pk.echoSeq && b.t1 == pk.t1 })
		if i < 0 {
			p.mu.Unlock()
			p.n.unsolicited.Add(1)
			return
		}
		sentAt := ps.pending[i].at
		probe, result = ps.pending[i].probe, ProbeResult{RTT: now.Sub(sentAt), From: from, Seen: pk.seen}
		ps.pending = slices.Delete(ps.pending, i, i+1)
		p.measureLocked(ps, pk, now)
		observed = true
		switch {
		case verdict != seqUnsynced:
			ps.replay.accept(pk.seq)
		case ps.replay.behind(pk.seq):
			// Overtaken on the way by many later packets of the same
			// run: the echo makes it fresh, the window stays where it
			// is (moving it back would let replays of what it holds in).
		default:
			// The echo proves this is the sender's current run: our
			// restart, or its, lost the window.
			ps.replay.reset(pk.seq)
			p.n.resynced.Add(1)
		}
	} else if verdict == seqUnsynced {
		// A sender that restarted, or a replay: answer (it may be a
		// restarted sender that needs our echo), believe nothing, and
		// ask, from where it came, for a reply that echoes us.
		gap := min(p.cfg.Interval/4, maxChallengeGap)
		challenge := ps.challengedAt.IsZero() || now.Sub(ps.challengedAt) >= gap || now.Before(ps.challengedAt)
		if challenge {
			ps.challengedAt = now
		}
		p.mu.Unlock()
		p.n.unsynced.Add(1)
		p.log.Debug("presence: sequence number out of window, asking for an echo", "from", from, "device", pk.sender.Short())
		p.reply(info, pk, now, from)
		if challenge {
			p.sendBeatTo(TypeHeartbeat, info, from)
		}
		return
	} else {
		skew := time.Duration(pk.t1-now.UnixNano()) - ps.offset
		stale = skew > MaxClockSkew || skew < -MaxClockSkew
		ps.replay.accept(pk.seq)
	}
	if stale {
		p.mu.Unlock()
		p.n.stale.Add(1)
		p.log.Debug("presence: stale heartbeat, answering without believing it", "from", from, "device", pk.sender.Short())
		p.reply(info, pk, now, from)
		return
	}
	p.n.accepted.Add(1)
	ps.lastSeen = now
	p.seenLocked(pk.sender, ps, from, now)
	version := max(ps.version, info.Version)
	if observed {
		p.noteObservedLocked(ps, pk.seen, now)
	}
	p.mu.Unlock()

	if from != info.Addr {
		// An authenticated packet from a new address moves the peer at
		// once, as WireGuard roams.
		p.log.Debug("presence: peer moved", "device", pk.sender.Short(), "from", info.Addr, "to", from)
		p.setAddr(info, from, version)
	}
	if probe != nil {
		answered(probe, result)
	}
	p.applyRecords(pk, from)
	if pk.typ != TypeHeartbeatReply {
		p.reply(info, pk, now, from)
	}
	p.saveVersion()
	p.mu.Lock()
	announce := p.announce
	p.mu.Unlock()
	if announce {
		p.wake()
	}
}

// applyRecords takes the address records of the authenticated packet pk,
// received from from. A record moves a device only if that device signed
// it and its version is newer than the one held.
func (p *Presence) applyRecords(pk packet, from netip.AddrPort) {
	for _, r := range pk.records {
		if r.device.Equal(p.pub) {
			continue // about us: we know better
		}
		info, ok := p.cfg.Book.Lookup(r.device)
		if !ok || !info.Device.Equal(r.device) {
			p.n.recIgnored.Add(1)
			continue
		}
		p.mu.Lock()
		held := max(p.peer(r.device).version, info.Version)
		p.mu.Unlock()
		if r.version <= held {
			p.n.recIgnored.Add(1)
			continue
		}
		p.n.sigChecks.Add(1)
		if !verifyRecord(r) {
			p.n.badSig.Add(1)
			p.n.recIgnored.Add(1)
			p.log.Debug("presence: forged address record", "device", r.device.Short(), "carried by", pk.sender.Short())
			continue
		}
		p.mu.Lock()
		ps := p.peer(r.device)
		if r.version <= ps.version {
			p.mu.Unlock()
			p.n.recIgnored.Add(1)
			continue
		}
		ps.version, ps.record, ps.own = r.version, r.raw, info.Own
		p.mu.Unlock()
		addr := r.addr
		if r.device.Equal(pk.sender) {
			// The sender's own record: where its packet came from is
			// better evidence than where it thinks it is.
			addr = from
		}
		p.n.recApplied.Add(1)
		p.setAddr(info, addr, r.version)
	}
}

// setAddr persists a peer's address through the book; if it is not the
// address the book gave in info, the peer moved.
func (p *Presence) setAddr(info PeerInfo, addr netip.AddrPort, version uint64) {
	if err := p.cfg.Book.SetAddr(info.Device, addr, version); err != nil {
		p.log.Warn("presence: saving a peer's address", "device", info.Device.Short(), "addr", addr, "err", err)
	}
	if addr != info.Addr {
		p.emit(Event{Kind: PeerMoved, Device: info.Device, Addr: addr, At: p.cfg.Now()})
	}
	p.mu.Lock()
	p.knownAt = time.Time{} // the Admit cache is out of date
	p.mu.Unlock()
}

// Observed tells presence that an authenticated connection from the known
// device came from from. If that is a new address, the device moves there
// at once (WireGuard-style roaming). The agent calls it for every
// authenticated QUIC connection.
func (p *Presence) Observed(device seed.DevicePublic, from netip.AddrPort) {
	if !validAddr(normAddr(from)) {
		return
	}
	from = normAddr(from)
	info, ok := p.cfg.Book.Lookup(device)
	if !ok || !info.Device.Equal(device) {
		return
	}
	p.mu.Lock()
	ps := p.peer(info.Device)
	ps.lastSeen = p.cfg.Now()
	p.seenLocked(info.Device, ps, from, ps.lastSeen)
	version := max(ps.version, info.Version)
	p.mu.Unlock()
	if from != info.Addr {
		p.setAddr(info, from, version)
	}
}

// seenLocked takes an authenticated packet from device, from from: a peer
// not online before is now.
func (p *Presence) seenLocked(device seed.DevicePublic, ps *peerState, from netip.AddrPort, now time.Time) {
	if !ps.online {
		ps.online = true
		p.emit(Event{Kind: PeerOnline, Device: device, Addr: from, At: now})
	}
}
