package transport

// Relayed paths: a peer that cannot be reached directly is reached through
// a third agent, the relay, at a virtual address.
//
// # Virtual addresses
//
// A relayed peer has an address like any other, a netip.AddrPort, so that
// the address book, presence's heartbeats and OpenStream work unchanged:
//
//	fd6b:6974:6800:0:SSSS:SSSS:SSSS:SSSS port 1
//
// an IPv6 unique local address under RelayPrefix (fd6b:6974:68 is "kith"
// after the fd ULA byte) whose low 64 bits are the relay session's ID. Such
// an address never reaches the socket: the transport keeps a table of
// routes, virtual address → (the relay's real address, session ID), and a
// packet written to a virtual address leaves as a relay datagram to the
// relay:
//
//	offset  size  field
//	0       1     type, 0x30
//	1       8     session ID, big-endian
//	9       n     the packet (QUIC, or a kith datagram such as a heartbeat)
//
// A relay datagram that arrives from a route's relay address with that
// route's session ID is unwrapped and handled as if the packet had come from
// the virtual address: QUIC goes to quic-go, kith datagrams and STUN to
// Config.Datagram. Any other relay datagram (0x30 or 0x31) is an ordinary
// kith datagram for Config.Datagram: the agent's relay service, when this
// device is the relay. Unwrapped packets are not asked about DropSource
// again (the relay's address was), and an unwrapped relay datagram is
// dropped as garbage: relays do not nest.
//
// # Writes
//
// quic-go writes through several paths, and every one of them is caught:
// WriteMsgUDP with control messages on Linux (which may carry several
// packets in one write with a UDP_SEGMENT size, GSO: they are split into
// one relay datagram each, and the control messages, ECN and packet info
// for an address that does not exist, are dropped), WriteTo and friends for
// the other platforms and for WriteDatagram, and the in-memory socket's
// WriteTo.
//
// # MTU
//
// The relay header costs 9 bytes. quic-go's first packets are 1280 bytes
// of UDP payload, so a relayed Initial is 1289: 1317 bytes on the wire over
// IPv4 and 1337 over IPv6, within any Ethernet or PPPoE path. Path MTU
// discovery probes up to 1452 bytes of QUIC, 1461 relayed; a probe that is
// too big for the path is lost and the connection stays at the size that
// worked, as on a direct path.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Relay datagram types (the first byte of a kith datagram).
const (
	// RelayData is a relayed packet: [0x30][session ID][packet].
	RelayData = 0x30
	// RelayRefresh keeps a relay session alive: [0x31][session ID].
	RelayRefresh = 0x31
	// RelayHeaderSize is the bytes a relay datagram adds to a packet.
	RelayHeaderSize = 9
	// RelayPort is the port of every virtual address.
	RelayPort = 1
	// MaxRelayRoutes bounds the routes a transport keeps.
	MaxRelayRoutes = 256
)

// RelayPrefix holds every virtual address: fd6b:6974:6800::/48, a unique
// local range ("kith" after the fd byte), with the session ID in the low 64
// bits.
var RelayPrefix = netip.MustParsePrefix("fd6b:6974:6800::/48")

// Errors of the relay routes.
var (
	// ErrNoRoute: a packet was written to a virtual address with no route.
	ErrNoRoute = errors.New("transport: no relay route for this virtual address")
	// ErrTooManyRoutes: AddRelayRoute would pass MaxRelayRoutes.
	ErrTooManyRoutes = errors.New("transport: too many relay routes")
)

// RelayAddr is the virtual address of relay session id.
func RelayAddr(id uint64) netip.AddrPort {
	a := RelayPrefix.Addr().As16()
	binary.BigEndian.PutUint64(a[8:], id)
	return netip.AddrPortFrom(netip.AddrFrom16(a), RelayPort)
}

// IsRelayAddr reports whether a is a virtual address of a relay session.
func IsRelayAddr(a netip.AddrPort) bool { return RelayPrefix.Contains(a.Addr()) }

// relaySessionOf returns the session ID of the virtual address a.
func relaySessionOf(a netip.AddrPort) (uint64, bool) {
	if !IsRelayAddr(a) {
		return 0, false
	}
	b := a.Addr().As16()
	return binary.BigEndian.Uint64(b[8:]), true
}

// RelayHeader is the decoded head of a relay datagram (0x30 or 0x31).
type RelayHeader struct {
	Type    byte
	Session uint64
}

// ParseRelayHeader decodes the first RelayHeaderSize bytes of a relay
// datagram; the payload is pkt[RelayHeaderSize:]. A refresh carries no
// payload.
func ParseRelayHeader(pkt []byte) (RelayHeader, error) {
	if len(pkt) < RelayHeaderSize {
		return RelayHeader{}, fmt.Errorf("transport: relay datagram of %d bytes, want at least %d", len(pkt), RelayHeaderSize)
	}
	h := RelayHeader{Type: pkt[0], Session: binary.BigEndian.Uint64(pkt[1:RelayHeaderSize])}
	switch {
	case h.Type != RelayData && h.Type != RelayRefresh:
		return RelayHeader{}, fmt.Errorf("transport: datagram type %#02x is not a relay datagram", h.Type)
	case h.Type == RelayRefresh && len(pkt) != RelayHeaderSize:
		return RelayHeader{}, fmt.Errorf("transport: relay refresh of %d bytes, want %d", len(pkt), RelayHeaderSize)
	}
	return h, nil
}

// AppendRelayHeader appends a relay datagram's header to b.
func AppendRelayHeader(b []byte, typ byte, session uint64) []byte {
	b = append(b, typ)
	return binary.BigEndian.AppendUint64(b, session)
}

// relayRoute is one virtual address's way out.
type relayRoute struct {
	id    uint64
	relay netip.AddrPort
	added time.Time
	// Counters, updated on the packet paths.
	in, out         atomic.Uint64 // packets
	inBytes         atomic.Uint64 // payload bytes
	outBytes        atomic.Uint64
	lastIn, lastOut atomic.Int64 // Unix nanoseconds; zero: never
}

// RelayRoute describes a route, for status and for the agent's keeper.
type RelayRoute struct {
	Session  uint64
	Virtual  netip.AddrPort
	Relay    netip.AddrPort
	Added    time.Time
	LastIn   time.Time // zero: nothing received yet
	LastOut  time.Time
	In, Out  uint64 // packets
	InBytes  uint64
	OutBytes uint64
}

// relayTable is the transport's routes. Readers on the packet paths load
// the map without a lock; writers replace it whole under mu.
type relayTable struct {
	mu     sync.Mutex
	routes atomic.Pointer[map[uint64]*relayRoute]
	// split counts writes that carried several packets (GSO) and left
	// as one relay datagram each.
	split atomic.Uint64
}

func (rt *relayTable) lookup(id uint64) *relayRoute {
	m := rt.routes.Load()
	if m == nil {
		return nil
	}
	return (*m)[id]
}

// AddRelayRoute routes the virtual address of session id through the relay
// at relay and returns that address. Adding a route that exists moves it to
// the new relay address.
func (t *Transport) AddRelayRoute(id uint64, relay netip.AddrPort) (netip.AddrPort, error) {
	relay = unmap(relay)
	if !relay.IsValid() || relay.Port() == 0 || IsRelayAddr(relay) {
		return netip.AddrPort{}, fmt.Errorf("transport: relay address %s is not a real IP:PORT", relay)
	}
	rt := &t.relays
	rt.mu.Lock()
	defer rt.mu.Unlock()
	next := map[uint64]*relayRoute{}
	if m := rt.routes.Load(); m != nil {
		for k, v := range *m {
			next[k] = v
		}
	}
	if _, ok := next[id]; !ok && len(next) >= MaxRelayRoutes {
		return netip.AddrPort{}, fmt.Errorf("%w: %d", ErrTooManyRoutes, MaxRelayRoutes)
	}
	next[id] = &relayRoute{id: id, relay: relay, added: time.Now()}
	rt.routes.Store(&next)
	return RelayAddr(id), nil
}

// RemoveRelayRoute forgets the route of session id; packets to its virtual
// address then fail with ErrNoRoute. It reports whether there was one.
func (t *Transport) RemoveRelayRoute(id uint64) bool {
	rt := &t.relays
	rt.mu.Lock()
	defer rt.mu.Unlock()
	m := rt.routes.Load()
	if m == nil {
		return false
	}
	if _, ok := (*m)[id]; !ok {
		return false
	}
	next := make(map[uint64]*relayRoute, len(*m))
	for k, v := range *m {
		if k != id {
			next[k] = v
		}
	}
	rt.routes.Store(&next)
	return true
}

// RelayRoutes lists the routes, by session ID.
func (t *Transport) RelayRoutes() []RelayRoute {
	m := t.relays.routes.Load()
	if m == nil {
		return nil
	}
	out := make([]RelayRoute, 0, len(*m))
	for _, r := range *m {
		out = append(out, RelayRoute{
			Session: r.id, Virtual: RelayAddr(r.id), Relay: r.relay, Added: r.added,
			LastIn: unixTime(r.lastIn.Load()), LastOut: unixTime(r.lastOut.Load()),
			In: r.in.Load(), Out: r.out.Load(), InBytes: r.inBytes.Load(), OutBytes: r.outBytes.Load(),
		})
	}
	slices.SortFunc(out, func(a, b RelayRoute) int {
		switch {
		case a.Session < b.Session:
			return -1
		case a.Session > b.Session:
			return 1
		}
		return 0
	})
	return out
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// unwrapRelay looks at a packet from from: if it is a relay datagram of one
// of our routes, from that route's relay, it returns the virtual address it
// stands for, and true. The packet is pkt[RelayHeaderSize:].
func (t *Transport) unwrapRelay(pkt []byte, from netip.AddrPort) (netip.AddrPort, bool) {
	if len(pkt) < RelayHeaderSize || pkt[0] != RelayData {
		return netip.AddrPort{}, false
	}
	r := t.relays.lookup(binary.BigEndian.Uint64(pkt[1:RelayHeaderSize]))
	if r == nil || r.relay != from {
		return netip.AddrPort{}, false
	}
	r.in.Add(1)
	r.inBytes.Add(uint64(len(pkt) - RelayHeaderSize))
	r.lastIn.Store(time.Now().UnixNano())
	return RelayAddr(r.id), true
}

// relayWriter sends one real packet to a real address.
type relayWriter func(pkt []byte, to netip.AddrPort) error

var relayBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// writeRelayed sends pkt, addressed to the virtual address to, through its
// route, split into segments of seg bytes (0: one packet), each as one
// relay datagram. It returns len(pkt) on success.
func (t *Transport) writeRelayed(pkt []byte, to netip.AddrPort, seg int, write relayWriter) (int, error) {
	id, _ := relaySessionOf(to)
	r := t.relays.lookup(id)
	if r == nil {
		return 0, fmt.Errorf("%w: %s", ErrNoRoute, to)
	}
	if seg <= 0 {
		seg = len(pkt)
	} else if seg < len(pkt) {
		t.relays.split.Add(1)
	}
	bp := relayBufs.Get().(*[]byte)
	defer relayBufs.Put(bp)
	for rest := pkt; len(rest) > 0; {
		n := min(seg, len(rest))
		buf := AppendRelayHeader((*bp)[:0], RelayData, id)
		buf = append(buf, rest[:n]...)
		*bp = buf
		if err := write(buf, r.relay); err != nil {
			return 0, fmt.Errorf("transport: writing to %s through the relay at %s: %w", to, r.relay, err)
		}
		r.out.Add(1)
		r.outBytes.Add(uint64(n))
		rest = rest[n:]
	}
	r.lastOut.Store(time.Now().UnixNano())
	return len(pkt), nil
}

// virtualOf returns the AddrPort of a net.Addr when it is a virtual address.
func virtualOf(a net.Addr) (netip.AddrPort, bool) {
	u, ok := a.(*net.UDPAddr)
	if !ok || u == nil {
		return netip.AddrPort{}, false
	}
	ap := unmap(u.AddrPort())
	return ap, IsRelayAddr(ap)
}
