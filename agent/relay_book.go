package agent

import (
	"net/netip"
	"slices"

	"github.com/kith-project/kith/internal/transport"
)

// A relayed peer's address in the book is a virtual one (relay.go) that
// means nothing after a restart, when the route is gone. So the book keeps
// the real address a peer had before it went through a relay among its
// other addresses, and stores that one, not the virtual one.

// keepRealAddr is called when l moves from its address to next: a move to
// a virtual address keeps the real one first among l.Addrs.
func keepRealAddr(l *Local, next netip.AddrPort) {
	if !transport.IsRelayAddr(next) {
		return
	}
	cur, err := netip.ParseAddrPort(l.Addr)
	if err != nil || transport.IsRelayAddr(cur) {
		return
	}
	l.Addrs = slices.DeleteFunc(l.Addrs, func(s string) bool { return s == l.Addr })
	l.Addrs = append([]string{l.Addr}, l.Addrs...)
}

// storable is l as the store keeps it: at its last real address when it
// is at a virtual one.
func storable(l Local) Local {
	ap, err := netip.ParseAddrPort(l.Addr)
	if err != nil || !transport.IsRelayAddr(ap) {
		return l
	}
	l.Addr = ""
	for _, s := range l.Addrs {
		if a, err := netip.ParseAddrPort(s); err == nil && !transport.IsRelayAddr(a) {
			l.Addr = s
			break
		}
	}
	return l
}
