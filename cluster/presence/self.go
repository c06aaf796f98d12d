package presence

import (
	"net/netip"
	"slices"
	"time"

	"github.com/kith-project/kith/internal/transport"
)

type learned struct {
	addr netip.AddrPort
	at   time.Time
}

// selfState is what we know of our own address. Guarded by Presence.mu.
type selfState struct {
	polled   bool
	locals   []netip.AddrPort // sorted
	localsAt time.Time        // when locals last changed
	public   netip.AddrPort   // latest evidence from STUN or peers
	publicAt time.Time
	addr     netip.AddrPort // advertised in our record
	version  uint64
	saved    uint64 // the version the book last saved (VersionBook)
	record   []byte
	stun     map[netip.AddrPort]learned // mapped address, by configured server
}

// noteLocals takes a LocalAddrs poll. A change after the first poll is a
// change of our address. Call with mu held.
func (p *Presence) noteLocals(locals []netip.AddrPort, now time.Time) {
	norm := make([]netip.AddrPort, 0, len(locals))
	for _, a := range locals {
		if a.IsValid() {
			norm = append(norm, normAddr(a))
		}
	}
	slices.SortFunc(norm, netip.AddrPort.Compare)
	norm = slices.Compact(norm)
	if p.self.polled && slices.Equal(norm, p.self.locals) {
		return
	}
	first := !p.self.polled
	p.self.polled, p.self.locals, p.self.localsAt = true, norm, now
	if !first {
		p.log.Debug("presence: our interface addresses changed", "addrs", norm)
		p.announce = true
	}
	p.updateOwnRecordLocked(now)
}

// isLocalLocked reports whether a is one of our interface addresses.
func (p *Presence) isLocalLocked(a netip.AddrPort) bool {
	_, ok := slices.BinarySearchFunc(p.self.locals, a, netip.AddrPort.Compare)
	return ok
}

// noteObservedLocked takes the address a peer saw us at, from its reply
// or its answer to our STUN request. Several peers may see several
// addresses (behind some NATs each peer sees another port), so only a
// change in what one peer sees is a change of our address. An address
// that is one of our interfaces' is no news.
func (p *Presence) noteObservedLocked(ps *peerState, seen netip.AddrPort, now time.Time) {
	if transport.IsRelayAddr(seen) {
		return // a peer that reaches us through a relay sees our virtual address
	}
	prev := ps.observed.addr
	ps.observed = learned{addr: seen, at: now}
	p.noteEvidenceLocked(prev, seen, false, now)
}

// noteEvidenceLocked takes a report of our public address, seen, where
// the same source reported prev before. A change in what one source sees
// makes us tell every peer at once (our packets, from our socket, are what
// move us in their books); but the address is believed, advertised in our
// record and listed in PublicAddrs only once it is confirmed: reported by
// two sources (two peers, or a peer and a STUN server), or by a STUN
// server the user configured (trusted). So one lying friend decides
// nothing we advertise.
func (p *Presence) noteEvidenceLocked(prev, seen netip.AddrPort, trusted bool, now time.Time) {
	if p.cfg.LocalAddrs != nil && p.isLocalLocked(seen) {
		return
	}
	if prev.IsValid() && prev != seen {
		p.log.Debug("presence: a source sees our public address change", "from", prev, "to", seen)
		p.announce = true
	}
	if p.self.public == seen || (!trusted && p.sourcesLocked(seen, now) < 2) {
		return
	}
	p.emit(Event{Kind: PublicAddrChanged, Addr: seen, At: now})
	p.self.public, p.self.publicAt = seen, now
	p.updateOwnRecordLocked(now)
}

// evidenceTTL is how long a report of our public address counts.
func (p *Presence) evidenceTTL() time.Duration { return 3 * STUNIntervals * p.cfg.Interval }

// sourcesLocked counts the sources that reported a as our address within
// evidenceTTL: each peer (its replies and its STUN answers are one
// source) and each configured STUN server.
func (p *Presence) sourcesLocked(a netip.AddrPort, now time.Time) int {
	ttl := p.evidenceTTL()
	n := 0
	for _, l := range p.self.stun {
		if l.addr == a && now.Sub(l.at) <= ttl {
			n++
		}
	}
	for _, ps := range p.peers {
		if l := ps.observed; l.addr == a && now.Sub(l.at) <= ttl {
			n++
		}
	}
	return n
}

// updateOwnRecordLocked signs a new record if the address we should
// advertise changed: the newest evidence of a public address unless our
// interfaces changed since, else our best interface address.
func (p *Presence) updateOwnRecordLocked(now time.Time) {
	addr := bestLocal(p.self.locals)
	if p.self.public.IsValid() && (!addr.IsValid() || !p.self.publicAt.Before(p.self.localsAt)) {
		addr = p.self.public
	}
	if !validAddr(addr) || (addr == p.self.addr && p.self.record != nil) {
		return
	}
	// A device that had a routable address and is left with loopback only
	// is between two networks (or between "ip addr del" and "add"): it keeps
	// advertising the routable address rather than one no peer can use.
	if addr.Addr().IsLoopback() && p.self.record != nil && !p.self.addr.Addr().IsLoopback() {
		return
	}
	p.self.version = max(p.self.version+1, uint64(now.UnixMilli()))
	p.self.addr = addr
	p.self.record = signRecord(p.cfg.Key, addr, p.self.version)
	p.emit(Event{Kind: OwnAddrChanged, Addr: addr, At: now})
}

// saveVersion passes a new own record version to the book, if it keeps
// versions (VersionBook). Call it without mu, after a change of record.
func (p *Presence) saveVersion() {
	vb, ok := p.cfg.Book.(VersionBook)
	if !ok {
		return
	}
	p.mu.Lock()
	v := p.self.version
	if p.self.record == nil || v <= p.self.saved {
		p.mu.Unlock()
		return
	}
	p.self.saved = v
	p.mu.Unlock()
	if err := vb.SetOwnVersion(v); err != nil {
		p.log.Warn("presence: saving our record version", "version", v, "err", err)
	}
}

// bestLocal picks the interface address to advertise: a routable one
// first, IPv4 before IPv6, then loopback. Link-local addresses need a zone
// and are never advertised.
func bestLocal(locals []netip.AddrPort) netip.AddrPort {
	rank := func(a netip.AddrPort) int {
		ip := a.Addr()
		switch {
		case !validAddr(a) || ip.IsLinkLocalUnicast() || ip.IsMulticast():
			return -1
		case ip.IsLoopback():
			return 2
		case ip.Is4():
			return 0
		default:
			return 1
		}
	}
	var best netip.AddrPort
	bestRank := -1
	for _, a := range locals {
		if r := rank(a); r >= 0 && (bestRank < 0 || r < bestRank) {
			best, bestRank = a, r
		}
	}
	return best
}

// OwnRecord returns the address we advertise and its record version; a
// zero address if we know none yet.
func (p *Presence) OwnRecord() (netip.AddrPort, uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.self.record == nil {
		return netip.AddrPort{}, 0
	}
	return p.self.addr, p.self.version
}

// PublicAddrs returns the addresses we were recently seen at, sorted:
// those a configured STUN server reported, and those two sources agree on
// (see noteEvidenceLocked).
func (p *Presence) PublicAddrs() []netip.AddrPort {
	now := p.cfg.Now()
	ttl := p.evidenceTTL()
	var out []netip.AddrPort
	p.mu.Lock()
	for _, l := range p.self.stun {
		if now.Sub(l.at) <= ttl {
			out = append(out, l.addr)
		}
	}
	for _, ps := range p.peers {
		if l := ps.observed; l.addr.IsValid() && now.Sub(l.at) <= ttl && p.sourcesLocked(l.addr, now) >= 2 {
			out = append(out, l.addr)
		}
	}
	p.mu.Unlock()
	slices.SortFunc(out, netip.AddrPort.Compare)
	return slices.Compact(out)
}
