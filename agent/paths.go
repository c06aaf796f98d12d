package agent

import (
	"net/netip"
	"sync"
	"time"

	"github.com/kith-project/kith/seed"
)

// PathKind is how this device reaches a peer, as "kith status" shows it.
type PathKind string

// Paths.
const (
	// PathDirect: the peer's address answers without help, as a public
	// address or one stored from pairing does.
	PathDirect PathKind = "direct"
	// PathLAN: the peer is on one of this device's own networks, found by
	// its address or by a LAN beacon (discover.go).
	PathLAN PathKind = "lan"
	// PathPunched: a path opened through two NATs by simultaneous open,
	// after a mutual friend or an own device introduced the two
	// (introduce.go).
	PathPunched PathKind = "punched"
	// PathRelay: datagrams go through a friend's or an own device's agent
	// (relay.go).
	PathRelay PathKind = "relay"
)

// paths remembers which mechanism opened the path to each peer, at which
// address. A peer whose current address is not the remembered one is on
// whatever path that address is: lan for an address on one of our own
// networks, else direct. Its methods are safe for concurrent use.
type paths struct {
	mu sync.Mutex
	m  map[seed.DevicePublic]pathEntry // guarded by mu
}

type pathEntry struct {
	addr netip.AddrPort
	kind PathKind
	via  string // the relaying device's name, for PathRelay
	at   time.Time
}

func newPaths() *paths { return &paths{m: map[seed.DevicePublic]pathEntry{}} }

// set records that the path to d at addr was opened by kind (via names the
// relay, for PathRelay).
func (p *paths) set(d seed.DevicePublic, addr netip.AddrPort, kind PathKind, via string, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m[d] = pathEntry{addr: addr, kind: kind, via: via, at: now}
}

// punched records that a punch reached d at addr, unless a LAN beacon's
// probe already confirmed d at that very address: a device answering on
// one of our own networks is on the LAN path, even if a punch toward it
// ran at the same time (as one does when discovery and the reach service
// both find a device that moved onto our LAN), and it has no NAT hole to
// keep open. Either order of the two gives the LAN path: a later probe
// overwrites a punched entry. It returns the kind recorded.
func (p *paths) punched(d seed.DevicePublic, addr netip.AddrPort, now time.Time) PathKind {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.m[d]; ok && e.addr == addr && e.kind == PathLAN {
		return PathLAN
	}
	p.m[d] = pathEntry{addr: addr, kind: PathPunched, at: now}
	return PathPunched
}

// forget drops what is remembered of d.
func (p *paths) forget(d seed.DevicePublic) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, d)
}

// of says how d is reached at its current address cur, given the
// prefixes of this device's own networks.
func (p *paths) of(d seed.DevicePublic, cur netip.AddrPort, lans []netip.Prefix) (kind PathKind, via string) {
	p.mu.Lock()
	e, ok := p.m[d]
	p.mu.Unlock()
	if ok && e.addr == cur {
		return e.kind, e.via
	}
	if !cur.IsValid() {
		return "", ""
	}
	for _, pfx := range lans {
		if pfx.Contains(cur.Addr()) {
			return PathLAN, ""
		}
	}
	return PathDirect, ""
}
