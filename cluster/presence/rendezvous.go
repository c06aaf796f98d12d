package presence

import (
	"net/netip"
	"time"

	"github.com/kith-project/kith/seed"
)

// What the agent's rendezvous (hole punching through an introducer) needs
// from presence: to send a signed heartbeat to an address that is not the
// book's, and to know how peers see us.

// SendBeatTo sends a signed heartbeat for the known device to the address
// to, which need not be the book's: a punch packet. If it gets through,
// it is taken as any heartbeat is, and its reply (or the device's own
// punch packets) moves the device there, as roaming does. It reports
// false if the device is unknown or blocked, or to is not a usable
// address.
func (p *Presence) SendBeatTo(device seed.DevicePublic, to netip.AddrPort) bool {
	to = normAddr(to)
	if !validAddr(to) {
		return false
	}
	info, ok := p.cfg.Book.Lookup(device)
	if !ok || !info.Device.Equal(device) {
		return false
	}
	p.sendBeatTo(TypeHeartbeat, info, to)
	return true
}

// Reported returns our address as each peer last reported it (the
// source address of our heartbeat, in its reply) within the evidence
// lifetime, 30 T, except reports of one of our interface addresses. Unlike
// PublicAddrs these are not confirmed by two sources: they are candidates,
// and comparing them tells the NAT type (a different port per peer means
// a mapping per destination).
func (p *Presence) Reported() map[seed.DevicePublic]netip.AddrPort {
	now := p.cfg.Now()
	ttl := p.evidenceTTL()
	out := map[seed.DevicePublic]netip.AddrPort{}
	p.mu.Lock()
	defer p.mu.Unlock()
	for d, ps := range p.peers {
		l := ps.observed
		if !l.addr.IsValid() || now.Sub(l.at) > ttl {
			continue
		}
		if p.cfg.LocalAddrs != nil && p.isLocalLocked(l.addr) {
			continue
		}
		out[d] = l.addr
	}
	return out
}

// LastSeen returns when the last authenticated packet from device came;
// a zero time if none came since New.
func (p *Presence) LastSeen(device seed.DevicePublic) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ps, ok := p.peers[device]; ok {
		return ps.lastSeen
	}
	return time.Time{}
}
