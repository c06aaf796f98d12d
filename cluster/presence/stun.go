package presence

import (
	"net/netip"
	"time"

	"github.com/kith-project/kith/seed"
	"github.com/pion/stun/v2"
)

// maxSTUNPeers is how many friends' agents a STUN round asks, besides the
// configured servers.
const maxSTUNPeers = 2

// handleSTUN answers binding requests and takes the answers to ours.
func (p *Presence) handleSTUN(pkt []byte, from netip.AddrPort) {
	if !stun.IsMessage(pkt) {
		p.n.malformed.Add(1)
		return
	}
	var m stun.Message
	if err := stun.Decode(pkt, &m); err != nil {
		p.n.malformed.Add(1)
		return
	}
	if m.Contains(stun.AttrFingerprint) && stun.Fingerprint.Check(&m) != nil {
		p.n.malformed.Add(1)
		return
	}
	switch m.Type {
	case stun.BindingRequest:
		p.answerSTUN(&m, from)
	case stun.BindingSuccess:
		p.takeSTUN(&m, from)
	}
}

// answerSTUN answers a binding request with the address it came from.
func (p *Presence) answerSTUN(m *stun.Message, from netip.AddrPort) {
	if p.cfg.Quiet && !p.Admit(from, false) {
		return // the transport should have dropped it already
	}
	resp, err := stun.Build(
		stun.NewTransactionIDSetter(m.TransactionID),
		stun.BindingSuccess,
		&stun.XORMappedAddress{IP: from.Addr().AsSlice(), Port: int(from.Port())},
		stun.Fingerprint,
	)
	if err != nil {
		p.log.Debug("presence: building a STUN answer", "err", err)
		return
	}
	p.n.stunAnswered.Add(1)
	p.send(resp.Raw, from, false)
}

// takeSTUN takes the answer to one of our binding requests.
func (p *Presence) takeSTUN(m *stun.Message, from netip.AddrPort) {
	now := p.cfg.Now()
	p.mu.Lock()
	tx, ok := p.stunTx[m.TransactionID]
	if ok && tx.to == from {
		delete(p.stunTx, m.TransactionID)
	}
	p.mu.Unlock()
	if !ok || tx.to != from {
		p.n.unsolicited.Add(1)
		return
	}
	var mapped netip.AddrPort
	var xa stun.XORMappedAddress
	if err := xa.GetFrom(m); err == nil {
		ip, _ := netip.AddrFromSlice(xa.IP)
		mapped = netip.AddrPortFrom(ip.Unmap(), uint16(xa.Port))
	} else {
		// RFC 3489 servers answer with MAPPED-ADDRESS only.
		var ma stun.MappedAddress
		if err := ma.GetFrom(m); err != nil {
			p.n.malformed.Add(1)
			return
		}
		ip, _ := netip.AddrFromSlice(ma.IP)
		mapped = netip.AddrPortFrom(ip.Unmap(), uint16(ma.Port))
	}
	if !validAddr(mapped) {
		p.n.malformed.Add(1)
		return
	}
	p.n.stunMapped.Add(1)
	p.mu.Lock()
	if !isZero(tx.device) {
		// A friend's agent: one source with its replies.
		p.noteObservedLocked(p.peer(tx.device), mapped, now)
	} else {
		prev := p.self.stun[from]
		p.self.stun[from] = learned{addr: mapped, at: now}
		p.noteEvidenceLocked(prev.addr, mapped, true, now)
	}
	announce := p.announce
	p.mu.Unlock()
	p.saveVersion()
	if announce {
		p.wake()
	}
}

// askSTUN sends binding requests to the configured servers and to a few
// friends' agents.
func (p *Presence) askSTUN(peers []PeerInfo, now time.Time) {
	var targets []stunTx
	for _, s := range p.cfg.STUNServers {
		targets = append(targets, stunTx{to: s})
	}
	var friends []stunTx
	for _, pi := range peers {
		if !pi.Own {
			friends = append(friends, stunTx{to: pi.Addr, device: pi.Device})
		}
	}
	p.mu.Lock()
	p.rnd.Shuffle(len(friends), func(i, j int) { friends[i], friends[j] = friends[j], friends[i] })
	p.mu.Unlock()
	targets = append(targets, friends[:min(len(friends), maxSTUNPeers)]...)
	for _, tx := range targets {
		req, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
		if err != nil {
			p.log.Debug("presence: building a STUN request", "err", err)
			return
		}
		tx.at = now
		p.mu.Lock()
		p.stunTx[req.TransactionID] = tx
		p.mu.Unlock()
		p.send(req.Raw, tx.to, true)
	}
}

type stunTx struct {
	to     netip.AddrPort
	device seed.DevicePublic // the friend asked; zero for a configured server
	at     time.Time
}
