package memnet

import (
	"fmt"
	"net/netip"
	"time"
)

// Mapping says how a NAT picks the public port of an inside socket's
// packets (RFC 4787 §4.1).
type Mapping uint8

const (
	// EndpointIndependent: one public port per inside socket, whatever the
	// destination, the inside port itself when it is free ("port
	// preserving", as Linux masquerade without "random" does).
	EndpointIndependent Mapping = iota
	// EndpointDependent: a new public port for every destination
	// address and port ("symmetric", as masquerade random does).
	EndpointDependent
)

// DefaultNATTimeout is how long a mapping lives after the last packet
// out, the Linux conntrack default for unreplied UDP.
const DefaultNATTimeout = 30 * time.Second

// NATConfig configures a NAT router added with Network.AddNAT.
type NATConfig struct {
	// Public is the router's outside address.
	Public netip.Addr
	// Inside is the prefix of the hosts behind it. A host inside sends to
	// another inside host directly; an inside address cannot be reached
	// from anywhere else.
	Inside netip.Prefix
	// Mapping picks the public port. Default EndpointIndependent.
	Mapping Mapping
	// Timeout is how long a mapping, and each remote it sent to, stays
	// open after the last packet out to that remote. Default
	// DefaultNATTimeout.
	Timeout time.Duration
	// RefreshInbound makes packets coming in refresh the mapping too, as
	// Linux conntrack does; by default only packets out do, the stricter
	// behaviour some home routers have.
	RefreshInbound bool
	// Now is the router's clock, which a test can drive. Default
	// time.Now.
	Now func() time.Time
}

// NAT is a router between the hosts of one inside prefix and the rest of
// the network. Filtering is address-and-port dependent (RFC 4787 §5): a
// packet from outside reaches an inside socket only if that socket sent to
// exactly the packet's source address and port within the timeout, through
// the mapping the packet arrives at. Its methods are safe for concurrent
// use.
type NAT struct {
	net *Network
	cfg NATConfig // Public guarded by net.mu

	// Guarded by net.mu.
	byInside map[natKey]*natMapping
	byPort   map[uint16]*natMapping
	nextPort uint16
	stats    NATStats
}

// NATStats counts what a NAT did.
type NATStats struct {
	Mappings uint64 // mappings made
	Expired  uint64 // mappings dropped after Timeout
	Filtered uint64 // packets from outside dropped: no mapping, or not a remote the mapping sent to
}

// natKey names a mapping: the inside socket, and for an endpoint
// dependent NAT the destination too.
type natKey struct {
	inside, remote netip.AddrPort
}

type natMapping struct {
	key     natKey
	port    uint16
	lastOut time.Time
	remotes map[netip.AddrPort]time.Time // where it sent, and when last
}

// firstNATPort is where the ports of mappings that cannot keep the inside
// port, and every port of an endpoint dependent NAT, start.
const firstNATPort = 20000

// AddNAT adds a NAT router. Its public address and inside prefix must not
// overlap another NAT's.
func (n *Network) AddNAT(cfg NATConfig) (*NAT, error) {
	if !cfg.Public.IsValid() || !cfg.Inside.IsValid() {
		return nil, fmt.Errorf("memnet: NAT needs a public address and an inside prefix")
	}
	cfg.Public, cfg.Inside = cfg.Public.Unmap(), cfg.Inside.Masked()
	if cfg.Inside.Contains(cfg.Public) {
		return nil, fmt.Errorf("memnet: NAT public address %s is inside %s", cfg.Public, cfg.Inside)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultNATTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, o := range n.nats {
		if o.cfg.Public == cfg.Public || o.cfg.Inside.Overlaps(cfg.Inside) {
			return nil, fmt.Errorf("memnet: NAT %s (%s) overlaps NAT %s (%s)", cfg.Public, cfg.Inside, o.cfg.Public, o.cfg.Inside)
		}
	}
	t := &NAT{net: n, cfg: cfg, byInside: map[natKey]*natMapping{}, byPort: map[uint16]*natMapping{}, nextPort: firstNATPort}
	n.nats = append(n.nats, t)
	return t, nil
}

// Public is the router's outside address now.
func (t *NAT) Public() netip.Addr {
	t.net.mu.Lock()
	defer t.net.mu.Unlock()
	return t.cfg.Public
}

// Renumber gives the router a new public address and forgets every
// mapping, as when an ISP renumbers a home and conntrack is flushed.
func (t *NAT) Renumber(public netip.Addr) {
	t.net.mu.Lock()
	defer t.net.mu.Unlock()
	t.cfg.Public = public.Unmap()
	clear(t.byInside)
	clear(t.byPort)
}

// Flush forgets every mapping, keeping the address.
func (t *NAT) Flush() {
	t.net.mu.Lock()
	defer t.net.mu.Unlock()
	clear(t.byInside)
	clear(t.byPort)
}

// Stats returns the router's counters.
func (t *NAT) Stats() NATStats {
	t.net.mu.Lock()
	defer t.net.mu.Unlock()
	return t.stats
}

// MappingCount is the number of live mappings.
func (t *NAT) MappingCount() int {
	t.net.mu.Lock()
	defer t.net.mu.Unlock()
	t.expireLocked(t.cfg.Now())
	return len(t.byPort)
}

// expireLocked drops mappings unused for Timeout. Called with net.mu held.
func (t *NAT) expireLocked(now time.Time) {
	for k, m := range t.byInside {
		if now.Sub(m.lastOut) > t.cfg.Timeout {
			delete(t.byInside, k)
			delete(t.byPort, m.port)
			t.stats.Expired++
		}
	}
}

// outbound maps a packet from the inside socket from to the outside
// address to, and returns its public source. Called with net.mu held.
func (t *NAT) outbound(from, to netip.AddrPort) netip.AddrPort {
	now := t.cfg.Now()
	t.expireLocked(now)
	key := natKey{inside: from}
	if t.cfg.Mapping == EndpointDependent {
		key.remote = to
	}
	m := t.byInside[key]
	if m == nil {
		m = &natMapping{key: key, port: t.portLocked(from.Port()), remotes: map[netip.AddrPort]time.Time{}}
		t.byInside[key] = m
		t.byPort[m.port] = m
		t.stats.Mappings++
	}
	m.lastOut = now
	m.remotes[to] = now
	return netip.AddrPortFrom(t.cfg.Public, m.port)
}

// portLocked picks a public port: the inside one if free and the NAT
// preserves ports, else the next free one.
func (t *NAT) portLocked(want uint16) uint16 {
	if t.cfg.Mapping == EndpointIndependent && want != 0 {
		if _, taken := t.byPort[want]; !taken {
			return want
		}
	}
	for range 1 << 16 {
		p := t.nextPort
		if t.nextPort++; t.nextPort == 0 {
			t.nextPort = firstNATPort
		}
		if _, taken := t.byPort[p]; !taken && p != 0 {
			return p
		}
	}
	return 0 // 65535 mappings: the test is broken
}

// inbound finds the inside socket for a packet from the outside address
// from to the public port port; false if the NAT drops it. Called with
// net.mu held.
func (t *NAT) inbound(from netip.AddrPort, port uint16) (netip.AddrPort, bool) {
	now := t.cfg.Now()
	t.expireLocked(now)
	m := t.byPort[port]
	if m == nil {
		t.stats.Filtered++
		return netip.AddrPort{}, false
	}
	at, ok := m.remotes[from]
	if !ok || now.Sub(at) > t.cfg.Timeout {
		t.stats.Filtered++
		return netip.AddrPort{}, false
	}
	if t.cfg.RefreshInbound {
		m.lastOut, m.remotes[from] = now, now
	}
	return m.key.inside, true
}

// routeLocked applies the NATs to a packet from from to to: it returns the
// source and destination as they are after the routers, and false if a
// router (or an unreachable inside address) drops it. Called with n.mu
// held.
func (n *Network) routeLocked(from, to netip.AddrPort) (netip.AddrPort, netip.AddrPort, bool) {
	if len(n.nats) == 0 {
		return from, to, true
	}
	var src, dst *NAT
	for _, t := range n.nats {
		if t.cfg.Inside.Contains(from.Addr()) {
			src = t
		}
		if t.cfg.Inside.Contains(to.Addr()) {
			dst = t
		}
	}
	if src != nil && src == dst {
		return from, to, true // on the same inside network
	}
	if dst != nil {
		n.stats.NoRoute++ // an inside address, from outside
		return from, to, false
	}
	if src != nil {
		from = src.outbound(from, to)
	}
	for _, t := range n.nats {
		if t.cfg.Public == to.Addr() {
			inside, ok := t.inbound(from, to.Port())
			if !ok {
				n.stats.Filtered++
				return from, to, false
			}
			return from, inside, true
		}
	}
	return from, to, true
}
