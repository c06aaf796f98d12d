package presence

import (
	"bytes"
	"net/netip"
	"slices"
	"time"

	"github.com/kith-project/kith/seed"
)

// Reflexive is one report of the address our packets come from, as a
// peer (its heartbeat replies and its STUN answers) or a configured STUN
// server saw it. Unlike PublicAddrs it keeps every source apart, and
// includes reports of one of our own interface addresses (no NAT on the
// way), so that a caller can tell the NAT's kind.
type Reflexive struct {
	// Device is the peer that reported it; zero for a STUN server.
	Device seed.DevicePublic
	// Server is the STUN server that reported it; invalid for a peer.
	Server netip.AddrPort
	Addr   netip.AddrPort // what the source saw
	At     time.Time      // when it said so
}

// Reflexives returns every report of our address still within its
// lifetime (three STUN rounds), peers first by device key, then servers by
// address.
func (p *Presence) Reflexives() []Reflexive {
	now := p.cfg.Now()
	ttl := p.evidenceTTL()
	var peers, servers []Reflexive
	p.mu.Lock()
	for d, ps := range p.peers {
		if l := ps.observed; l.addr.IsValid() && now.Sub(l.at) <= ttl {
			peers = append(peers, Reflexive{Device: d, Addr: l.addr, At: l.at})
		}
	}
	for s, l := range p.self.stun {
		if l.addr.IsValid() && now.Sub(l.at) <= ttl {
			servers = append(servers, Reflexive{Server: s, Addr: l.addr, At: l.at})
		}
	}
	p.mu.Unlock()
	slices.SortFunc(peers, func(a, b Reflexive) int { return bytes.Compare(a.Device[:], b.Device[:]) })
	slices.SortFunc(servers, func(a, b Reflexive) int { return a.Server.Compare(b.Server) })
	return append(peers, servers...)
}

// LocalAddrs returns our interface addresses as last polled, sorted.
func (p *Presence) LocalAddrs() []netip.AddrPort {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.self.locals)
}
