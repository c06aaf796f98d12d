package memnet

import (
	"fmt"
	"net/netip"
	"slices"
)

// AddLAN declares the IPv4 network p a LAN segment with broadcast: a
// packet sent to p's last address (its broadcast address) at some port is
// delivered to every Conn bound to an address in p at that port, the
// sender's own Conn included, as a Linux socket bound to 0.0.0.0 receives
// its own broadcasts. Partitions and loss apply to the packet as a whole,
// as for any packet.
func (n *Network) AddLAN(p netip.Prefix) error {
	if !p.Addr().Is4() || p.Bits() >= 31 {
		return fmt.Errorf("memnet: a LAN is an IPv4 network of at least 4 addresses, not %s", p)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.lans = append(n.lans, p.Masked())
	return nil
}

// Broadcast returns the broadcast address of the IPv4 network p.
func Broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	for i := range 4 {
		a[i] |= byte(host >> (8 * (3 - i)))
	}
	return netip.AddrFrom4(a)
}

// broadcastLocked delivers pkt to every Conn of the segment if to is a
// segment's broadcast address, and reports whether it was. Called with mu
// held.
func (n *Network) broadcastLocked(pkt packet, to netip.AddrPort) bool {
	i := slices.IndexFunc(n.lans, func(p netip.Prefix) bool { return Broadcast(p) == to.Addr() })
	if i < 0 {
		return false
	}
	lan := n.lans[i]
	for addr := range n.conns {
		if addr.Port() == to.Port() && lan.Contains(addr.Addr()) {
			n.deliverLocked(pkt, addr)
		}
	}
	return true
}
