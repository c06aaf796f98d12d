package agent

import (
	"net"
	"net/netip"

	"github.com/kith-project/kith/cluster/presence"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// presenceBook is the address book as package presence sees it.
type presenceBook struct{ a *Agent }

var _ presence.VersionBook = presenceBook{}

func (pb presenceBook) info(p Peer) presence.PeerInfo {
	pi := presence.PeerInfo{Device: p.DeviceID, Own: p.Kind == roster.KindOwn, Version: p.AddrVersion}
	if ap, err := netip.ParseAddrPort(p.Addr); err == nil {
		pi.Addr = ap
	}
	for _, s := range p.Addrs {
		if ap, err := netip.ParseAddrPort(s); err == nil && ap != pi.Addr {
			pi.Others = append(pi.Others, ap)
		}
	}
	if pi.Own {
		pi.Window = pb.a.dev.Window[:]
	} else {
		pi.Window = pb.a.book.window(p.UserID)
	}
	return pi
}

func (pb presenceBook) Lookup(device seed.DevicePublic) (presence.PeerInfo, bool) {
	p, ok := pb.a.book.peerFor(device)
	if !ok {
		return presence.PeerInfo{}, false
	}
	return pb.info(p), true
}

func (pb presenceBook) Peers() []presence.PeerInfo {
	ps := pb.a.book.reachable()
	out := make([]presence.PeerInfo, 0, len(ps))
	for _, p := range ps {
		out = append(out, pb.info(p))
	}
	return out
}

// SetAddr is called on presence's packet path: the book takes the move in
// memory and writes it from its own goroutine.
func (pb presenceBook) SetAddr(device seed.DevicePublic, addr netip.AddrPort, version uint64) error {
	if !pb.a.relay.mayMove(device, addr) {
		return nil
	}
	if pb.a.book.setAddr(device, addr, version, pb.a.cfg.Now()) {
		pb.a.log.Info("peer moved", "device", device.Short(), "addr", addr.String())
	}
	return nil
}

// OwnVersion and SetOwnVersion keep our own record's version in the
// store, so that a restart numbers on from it even if the clock went back.
func (pb presenceBook) OwnVersion() uint64 { return pb.a.book.ownVersionNow() }

func (pb presenceBook) SetOwnVersion(v uint64) error {
	pb.a.book.setOwnVersion(v)
	return nil
}

// localAddrs are this device's own addresses with its port: the listening
// address, or every interface address when it listens on all of them.
func (a *Agent) localAddrs() []netip.AddrPort {
	la := a.tr.LocalAddr()
	if !la.Addr().IsUnspecified() {
		return []netip.AddrPort{la}
	}
	var out []netip.AddrPort
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	for _, ia := range ifaddrs {
		pfx, err := netip.ParsePrefix(ia.String())
		if err != nil {
			continue
		}
		ad := pfx.Addr().Unmap()
		if ad.IsLinkLocalUnicast() || ad.IsMulticast() || (la.Addr().Is4() && !ad.Is4()) {
			continue
		}
		out = append(out, netip.AddrPortFrom(ad, la.Port()))
	}
	return out
}

// lanPrefixes are the networks of this device's interfaces, for telling a
// peer on one of them (PathLAN). Loopback counts: two agents on one
// machine are on the same network.
func (a *Agent) lanPrefixes() []netip.Prefix {
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	for _, ia := range ifaddrs {
		pfx, err := netip.ParsePrefix(ia.String())
		if err != nil {
			continue
		}
		out = append(out, netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()).Masked())
	}
	return out
}
