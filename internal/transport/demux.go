package transport

import (
	"encoding/binary"
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
)

// Kind is what a packet on the agent's port is, judged by its first bytes.
type Kind uint8

const (
	// KindGarbage is anything else. It is dropped without a reply.
	KindGarbage Kind = iota
	// KindQUIC is a QUIC packet: the fixed bit 0x40 of the first byte is set.
	KindQUIC
	// KindSTUN is a STUN message (RFC 5389): first byte 0x00..0x03, the magic
	// cookie at bytes 4..8 and a length field that matches the packet.
	KindSTUN
	// KindKith is a kith datagram: its first byte, its type, is in
	// DatagramPrefixMin..DatagramPrefixMax.
	KindKith
)

// The first byte of a kith datagram, its type, lies in this range. The bytes
// below it belong to STUN (RFC 7983: 0..3), the ones above to QUIC.
const (
	DatagramPrefixMin = 0x04
	DatagramPrefixMax = 0x3f
)

// STUN framing (RFC 5389 §6).
const (
	stunHeaderSize  = 20
	stunMagicCookie = 0x2112A442
	stunMaxPrefix   = 0x03
)

func (k Kind) String() string {
	switch k {
	case KindQUIC:
		return "quic"
	case KindSTUN:
		return "stun"
	case KindKith:
		return "kith"
	default:
		return "garbage"
	}
}

// Classify tells what pkt is from its first byte and, for STUN, its header.
// It never reads past len(pkt) and does not allocate.
func Classify(pkt []byte) Kind {
	if len(pkt) == 0 {
		return KindGarbage
	}
	b := pkt[0]
	switch {
	case b&0x40 != 0:
		return KindQUIC
	case b&0x80 != 0:
		return KindGarbage
	case b >= DatagramPrefixMin:
		return KindKith
	case isSTUN(pkt):
		return KindSTUN
	default:
		return KindGarbage
	}
}

// isSTUN reports whether pkt, whose first byte is at most 0x3f, has a STUN
// header consistent with its size.
func isSTUN(pkt []byte) bool {
	if len(pkt) < stunHeaderSize || pkt[0] > stunMaxPrefix {
		return false
	}
	if binary.BigEndian.Uint32(pkt[4:8]) != stunMagicCookie {
		return false
	}
	n := int(binary.BigEndian.Uint16(pkt[2:4]))
	return n%4 == 0 && n == len(pkt)-stunHeaderSize
}

// admitFunc decides on a packet read from the socket: whether quic-go
// should see it and, for a QUIC packet that came through a relay, the
// virtual address it stands for (then quic-go sees the packet without its
// RelayHeaderSize bytes of relay header, from that address).
type admitFunc func(pkt []byte, from netip.AddrPort) (ok bool, virtual netip.AddrPort)

// relaySender writes a packet to a virtual address through its relay route,
// split into segments of seg bytes (0: one), each written with write.
type relaySender func(pkt []byte, to netip.AddrPort, seg int, write relayWriter) (int, error)

// packetConn is the transport's socket as quic-go sees it. Every packet read
// goes through admit first; only the packets admit returns true for reach
// quic-go. Every packet written to a virtual address (relay.go) goes to
// relay instead of the socket.
//
// It embeds the *net.UDPConn so that quic-go finds the OOBCapablePacketConn
// methods it needs for ECN, GSO and the DF bit, and it implements ReadBatch,
// which quic-go prefers for reading on Linux, as well as ReadFrom and
// ReadMsgUDP for the platforms where quic-go reads one packet at a time.
// quic-go reads from a single goroutine, so admit is never called
// concurrently with itself.
type packetConn struct {
	*net.UDPConn
	batch *ipv4.PacketConn // the same socket, read in batches
	admit admitFunc
	relay relaySender // nil: no relay routes
}

func newPacketConn(c *net.UDPConn, admit admitFunc, relay relaySender) *packetConn {
	return &packetConn{UDPConn: c, batch: ipv4.NewPacketConn(c), admit: admit, relay: relay}
}

// ReadBatch reads packets into ms and returns the number of messages that
// were admitted, moved to the front of ms. It reads again until at least one
// packet is admitted or an error occurs.
//
// quic-go ties each message slot to a buffer it owns, so admitted packets are
// copied down into the slots of dropped ones rather than slots being swapped.
func (c *packetConn) ReadBatch(ms []ipv4.Message, flags int) (int, error) {
	for {
		n, err := c.batch.ReadBatch(ms, flags)
		if err != nil {
			return 0, err
		}
		kept := 0
		for i := range n {
			m := &ms[i]
			if len(m.Buffers) == 0 {
				continue
			}
			ok, virt := c.admit(m.Buffers[0][:m.N], addrPortOf(m.Addr))
			if !ok {
				continue
			}
			if virt.IsValid() {
				m.N = copy(m.Buffers[0], m.Buffers[0][RelayHeaderSize:m.N])
				m.Addr = net.UDPAddrFromAddrPort(virt)
			}
			if kept != i {
				moveMessage(&ms[kept], m)
			}
			kept++
		}
		if kept > 0 {
			return kept, nil
		}
	}
}

func moveMessage(dst, src *ipv4.Message) {
	dst.N = copy(dst.Buffers[0], src.Buffers[0][:src.N])
	dst.NN = copy(dst.OOB, src.OOB[:src.NN])
	dst.Flags = src.Flags
	dst.Addr = src.Addr
}

// ReadFrom reads the next admitted packet.
func (c *packetConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, from, err := c.UDPConn.ReadFromUDPAddrPort(b)
		if err != nil {
			return n, nil, err
		}
		from = unmap(from)
		if ok, virt := c.admit(b[:n], from); ok {
			if virt.IsValid() {
				return copy(b, b[RelayHeaderSize:n]), net.UDPAddrFromAddrPort(virt), nil
			}
			return n, net.UDPAddrFromAddrPort(from), nil
		}
	}
}

// ReadMsgUDP reads the next admitted packet with its control data.
func (c *packetConn) ReadMsgUDP(b, oob []byte) (n, oobn, flags int, addr *net.UDPAddr, err error) {
	for {
		n, oobn, flags, addr, err = c.UDPConn.ReadMsgUDP(b, oob)
		if err != nil {
			return n, oobn, flags, addr, err
		}
		if ok, virt := c.admit(b[:n], addrPortOf(addr)); ok {
			if virt.IsValid() {
				return copy(b, b[RelayHeaderSize:n]), oobn, flags, net.UDPAddrFromAddrPort(virt), nil
			}
			return n, oobn, flags, addr, nil
		}
	}
}

// writeReal is how a relayed packet leaves: to the relay's real address,
// without control messages.
func (c *packetConn) writeReal(pkt []byte, to netip.AddrPort) error {
	_, err := c.UDPConn.WriteToUDPAddrPort(pkt, to)
	return err
}

// WriteMsgUDP is quic-go's write on Linux. A write to a virtual address may
// carry several packets of one size (GSO, a UDP_SEGMENT control message):
// each goes through the relay as its own datagram.
func (c *packetConn) WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (n, oobn int, err error) {
	if to, ok := virtualOf(addr); ok && c.relay != nil {
		n, err = c.relay(b, to, gsoSegmentSize(oob), c.writeReal)
		return n, 0, err
	}
	return c.UDPConn.WriteMsgUDP(b, oob, addr)
}

// WriteMsgUDPAddrPort is WriteMsgUDP with a netip.AddrPort.
func (c *packetConn) WriteMsgUDPAddrPort(b, oob []byte, addr netip.AddrPort) (n, oobn int, err error) {
	if to := unmap(addr); IsRelayAddr(to) && c.relay != nil {
		n, err = c.relay(b, to, gsoSegmentSize(oob), c.writeReal)
		return n, 0, err
	}
	return c.UDPConn.WriteMsgUDPAddrPort(b, oob, addr)
}

// WriteTo is quic-go's write where it has no control messages, and
// WriteDatagram's.
func (c *packetConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if to, ok := virtualOf(addr); ok && c.relay != nil {
		return c.relay(b, to, 0, c.writeReal)
	}
	return c.UDPConn.WriteTo(b, addr)
}

// WriteToUDP is WriteTo with a *net.UDPAddr.
func (c *packetConn) WriteToUDP(b []byte, addr *net.UDPAddr) (int, error) {
	if to, ok := virtualOf(addr); ok && c.relay != nil {
		return c.relay(b, to, 0, c.writeReal)
	}
	return c.UDPConn.WriteToUDP(b, addr)
}

// WriteToUDPAddrPort is WriteTo with a netip.AddrPort.
func (c *packetConn) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	if to := unmap(addr); IsRelayAddr(to) && c.relay != nil {
		return c.relay(b, to, 0, c.writeReal)
	}
	return c.UDPConn.WriteToUDPAddrPort(b, addr)
}

// addrPortOf converts a UDP address to a netip.AddrPort with any IPv4-mapped
// IPv6 address unmapped; anything else gives the zero AddrPort.
func addrPortOf(a net.Addr) netip.AddrPort {
	u, ok := a.(*net.UDPAddr)
	if !ok || u == nil {
		return netip.AddrPort{}
	}
	return unmap(u.AddrPort())
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// filterConn is packetConn for a socket that is not a *net.UDPConn, such as
// an in-memory one: it hides everything but net.PacketConn from quic-go,
// which then reads one packet at a time with ReadFrom and writes with
// WriteTo.
type filterConn struct {
	net.PacketConn
	admit admitFunc
	relay relaySender // nil: no relay routes
}

// ReadFrom reads the next admitted packet.
func (c *filterConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil {
			return n, addr, err
		}
		from := addrPortOf(addr)
		if ok, virt := c.admit(b[:n], from); ok {
			if virt.IsValid() {
				return copy(b, b[RelayHeaderSize:n]), net.UDPAddrFromAddrPort(virt), nil
			}
			if from.IsValid() {
				addr = net.UDPAddrFromAddrPort(from)
			}
			return n, addr, nil
		}
	}
}

// WriteTo writes to the socket, or through the relay for a virtual address.
func (c *filterConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if to, ok := virtualOf(addr); ok && c.relay != nil {
		return c.relay(b, to, 0, c.writeReal)
	}
	return c.PacketConn.WriteTo(b, addr)
}

func (c *filterConn) writeReal(pkt []byte, to netip.AddrPort) error {
	_, err := c.PacketConn.WriteTo(pkt, net.UDPAddrFromAddrPort(to))
	return err
}
