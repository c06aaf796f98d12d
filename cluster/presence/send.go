package presence

import (
	"net/netip"
	"time"
)

// MaxOthers bounds how many of a peer's other addresses
// (PeerInfo.Others) each heartbeat to an offline peer also goes to.
const MaxOthers = 4

// sendBeat sends a heartbeat or address update to pi. A heartbeat to a
// peer that is offline goes at once to its other addresses too (the first
// MaxOthers of PeerInfo.Others): whichever answers first moves the peer
// there.
func (p *Presence) sendBeat(typ byte, pi PeerInfo) {
	p.sendBeatTo(typ, pi, pi.Addr)
	if typ != TypeHeartbeat || len(pi.Others) == 0 {
		return
	}
	p.mu.Lock()
	online := p.peer(pi.Device).online
	p.mu.Unlock()
	if online {
		return
	}
	tried := 0
	for _, to := range pi.Others {
		if tried == MaxOthers {
			break
		}
		if to = normAddr(to); !validAddr(to) || to == pi.Addr {
			continue
		}
		tried++
		p.sendBeatTo(typ, pi, to)
	}
}

// sendBeatTo sends a heartbeat or address update for pi to the address to.
func (p *Presence) sendBeatTo(typ byte, pi PeerInfo, to netip.AddrPort) {
	p.sendProbeTo(typ, pi, to, nil)
}

// sendProbeTo is sendBeatTo whose reply, if one comes, is also handed to
// probe (which must have room: it is never waited on; see probe.go).
func (p *Presence) sendProbeTo(typ byte, pi PeerInfo, to netip.AddrPort, probe chan<- ProbeResult) {
	p.saveVersion() // before the record it numbers leaves
	seq := p.nextSeq()
	now := p.cfg.Now()
	t1 := now.UnixNano()
	p.mu.Lock()
	recs := p.gossipLocked(pi)
	ps := p.peer(pi.Device)
	ps.pending = append(ps.pending, pendingBeat{seq: seq, t1: t1, at: now, probe: probe})
	if len(ps.pending) > maxPending {
		ps.pending = ps.pending[len(ps.pending)-maxPending:]
	}
	p.mu.Unlock()
	pkt := encodeBeat(typ, p.cfg.Key, pi.Device, seq, t1, recs)
	if typ == TypeAddrUpdate {
		p.n.updSent.Add(1)
	} else {
		p.n.hbSent.Add(1)
	}
	p.send(pkt, to, true)
}

// gossipLocked picks the records to send to pi: our own, then up to two
// we hold for other devices. A friend is told only about our own devices,
// so that friends do not learn each other's addresses through us.
func (p *Presence) gossipLocked(to PeerInfo) [][]byte {
	var out [][]byte
	if p.self.record != nil {
		out = append(out, p.self.record)
	}
	var cand [][]byte
	for k, ps := range p.peers {
		if ps.record == nil || k.Equal(to.Device) {
			continue
		}
		if !to.Own && !ps.own {
			continue
		}
		cand = append(cand, ps.record)
	}
	p.rnd.Shuffle(len(cand), func(i, j int) { cand[i], cand[j] = cand[j], cand[i] })
	for _, r := range cand {
		if len(out) == maxRecords {
			break
		}
		out = append(out, r)
	}
	return out
}

// reply answers the heartbeat hb from pi, received at t2 from from.
func (p *Presence) reply(pi PeerInfo, hb packet, t2 time.Time, from netip.AddrPort) {
	seq := p.nextSeq()
	p.mu.Lock()
	recs := p.gossipLocked(pi)
	p.mu.Unlock()
	p.saveVersion()
	t3 := p.cfg.Now()
	pkt := encodeReply(p.cfg.Key, pi.Device, seq, hb, t2.UnixNano(), t3.UnixNano(), from, recs)
	p.n.repSent.Add(1)
	p.send(pkt, from, false)
}

// aimAtWindows heartbeats the peers that seem gone and whose window secret
// we hold in the middle of their next window, by their clock as we
// measured it, so that a quiet peer lets us in from an address it does
// not know. It sets nextWin to the next such moment.
func (p *Presence) aimAtWindows(peers []PeerInfo, now time.Time) {
	var due []PeerInfo
	p.mu.Lock()
	p.nextWin = time.Time{}
	for _, pi := range peers {
		if len(pi.Window) == 0 {
			continue
		}
		ps := p.peer(pi.Device)
		if p.onlineLocked(ps, now, len(peers)) {
			continue
		}
		theirs := now.Add(ps.offset)
		start, end := NextWindow(pi.Window, theirs)
		if !ps.windowAt.IsZero() && !start.After(ps.windowAt) {
			start, end = NextWindow(pi.Window, end) // this one is done
		}
		aim := start.Add(WindowLength / 2)
		if !theirs.Before(aim) && theirs.Before(end) {
			ps.windowAt = start
			due = append(due, pi)
			start, _ = NextWindow(pi.Window, end)
			aim = start.Add(WindowLength / 2)
		}
		at := aim.Add(-ps.offset) // back to our clock
		if p.nextWin.IsZero() || at.Before(p.nextWin) {
			p.nextWin = at
		}
	}
	p.mu.Unlock()
	for _, pi := range due {
		p.sendBeat(TypeHeartbeat, pi)
	}
}
