package agent

import (
	"net/netip"
	"slices"

	"github.com/kith-project/kith/cluster/presence"
)

// NAT types, as "kith status" and "kith netcheck" show them.
const (
	// NATNone: every source sees one of our own interface addresses.
	NATNone = "none"
	// NATEasy: sources outside see one mapping of our port whatever the
	// destination (endpoint-independent mapping); hole punching works.
	NATEasy = "easy"
	// NATHard: sources outside see different mappings (a symmetric NAT,
	// a new port per destination); punching to another hard NAT fails,
	// and a relay is needed.
	NATHard = "hard"
	// NATUnknown: fewer than two sources reported our address, or only
	// one outside our own networks did.
	NATUnknown = "unknown"
)

// natType tells the NAT this device is behind from what sources
// reported of our address (presence.Reflexives), given our interface
// addresses locals.
func natType(refl []presence.Reflexive, locals []netip.AddrPort) string {
	if len(refl) < 2 {
		return NATUnknown
	}
	var outside []netip.AddrPort
	for _, r := range refl {
		if !slices.Contains(locals, r.Addr) {
			outside = append(outside, r.Addr)
		}
	}
	switch {
	case len(outside) == 0:
		return NATNone
	case len(outside) < 2:
		return NATUnknown
	}
	for _, a := range outside[1:] {
		if a != outside[0] {
			return NATHard
		}
	}
	return NATEasy
}

// natType is this device's NAT type now.
func (a *Agent) natType() string {
	return natType(a.presence.Reflexives(), a.ownAddrs())
}

// ownAddrs are our interface addresses with the agent's port: presence's
// last poll, and the listening address.
func (a *Agent) ownAddrs() []netip.AddrPort {
	locals := a.presence.LocalAddrs()
	if la := a.Addr(); !la.Addr().IsUnspecified() {
		locals = append(locals, netip.AddrPortFrom(la.Addr().Unmap(), la.Port()))
	}
	return locals
}
