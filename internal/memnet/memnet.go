// Package memnet is an in-memory packet network for tests: many sockets in one
// process exchanging datagrams exactly as the test says, with no kernel, no
// real ports and no timing noise.
//
// A [Network] is a set of addresses. [Network.Listen] binds a [Conn], a
// [net.PacketConn] whose addresses are [*net.UDPAddr]s, so that code written
// for a UDP socket (quic-go included) runs over it unchanged. A packet written
// to an address is copied into the queue of the Conn bound there; nothing
// bound there, and it is gone, as with UDP.
//
// # What a test can do to the network
//
//   - Drop: each Conn's receive queue holds [Options.QueueLen] packets; a packet
//     arriving at a full queue is dropped, like a UDP socket buffer overflowing.
//   - Partition: [Network.Partition] cuts two hosts (IP addresses, every port)
//     off from each other in both directions until [Network.Heal] or
//     [Network.HealAll].
//   - Loss: [Network.SetLoss] drops each packet with a probability, decided by a
//     random source seeded from [Options.Seed], so that a run reproduces when
//     the packets are sent in the same order.
//   - Move: [Conn.Rebind] gives a socket a new address, as when a NAT rebinds
//     or a device changes network: it sends from and receives at the new
//     address, and the old one is free.
//   - NAT: [Network.AddNAT] puts the hosts of a prefix behind a router
//     with a public address (nat.go): port-preserving or symmetric
//     mapping, address-and-port dependent filtering, mapping timeouts on
//     a clock the test can drive, and renumbering.
//   - Delay: [Options.Latency] delays every packet by the same one-way
//     latency, keeping the order of packets.
//
// Without latency a packet is in the receiver's queue (or dropped) when
// WriteTo returns, so a test can assert on [Network.Stats] right after
// sending.
//
// # Goroutines
//
// Without latency the network starts no goroutines. With latency it runs one
// delivery goroutine, started by [New] and stopped by [Network.Close], which
// waits for it.
package memnet

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// Defaults for the zero values of Options.
const (
	DefaultQueueLen = 1024
)

// Ports handed out by Listen for port 0 start here.
const firstEphemeralPort = 49152

// Options configures a Network. The zero value is a lossless network without
// latency.
type Options struct {
	// Seed seeds the random source that SetLoss draws from.
	Seed uint64
	// QueueLen is the number of packets each Conn's receive queue holds.
	// Zero means DefaultQueueLen.
	QueueLen int
	// Latency delays every packet by this much, one way. Zero delivers
	// packets within WriteTo.
	Latency time.Duration
}

// Stats counts what the network did with the packets written to it.
type Stats struct {
	Delivered   uint64 // put in a receiver's queue
	NoRoute     uint64 // nothing bound at the destination address
	Partitioned uint64 // dropped by a partition
	Lost        uint64 // dropped by SetLoss
	Overflow    uint64 // dropped because the receiver's queue was full
	Filtered    uint64 // dropped by a NAT router's filter (nat.go)
}

// Network is an in-memory packet network. Its methods are safe for
// concurrent use.
type Network struct {
	// Constant after New.
	queueLen int
	latency  time.Duration
	inflight chan delivery // with latency: packets on their way, in send order
	done     chan struct{} // closed by Close
	wg       sync.WaitGroup

	closeOnce sync.Once

	mu       sync.Mutex
	conns    map[netip.AddrPort]*Conn // guarded by mu: bound addresses
	cuts     map[hostPair]struct{}    // guarded by mu: partitions
	loss     float64                  // guarded by mu
	rng      *rand.Rand               // guarded by mu
	nextPort uint16                   // guarded by mu
	stats    Stats                    // guarded by mu
	closed   bool                     // guarded by mu
	lans     []netip.Prefix           // guarded by mu: segments with broadcast (broadcast.go)
	nats     []*NAT                   // guarded by mu: routers (nat.go)
}

// hostPair is an unordered pair of hosts, the smaller address first.
type hostPair struct{ a, b netip.Addr }

func pairOf(a, b netip.Addr) hostPair {
	a, b = a.Unmap(), b.Unmap()
	if b.Less(a) {
		a, b = b, a
	}
	return hostPair{a, b}
}

type packet struct {
	data []byte
	from netip.AddrPort
}

type delivery struct {
	pkt packet
	to  netip.AddrPort
	due time.Time
}

// New makes a network. Close it when done if it has a latency; closing is
// harmless otherwise.
func New(opts Options) *Network {
	n := &Network{
		queueLen: opts.QueueLen,
		latency:  opts.Latency,
		done:     make(chan struct{}),
		conns:    make(map[netip.AddrPort]*Conn),
		cuts:     make(map[hostPair]struct{}),
		rng:      rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x6b697468)),
		nextPort: firstEphemeralPort,
	}
	if n.queueLen <= 0 {
		n.queueLen = DefaultQueueLen
	}
	if n.latency > 0 {
		n.inflight = make(chan delivery, 64*n.queueLen)
		n.wg.Go(n.deliverLoop)
	}
	return n
}

// Close closes every Conn and stops the delivery goroutine, waiting for it.
// It is safe to call more than once.
func (n *Network) Close() error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closed = true
		conns := make([]*Conn, 0, len(n.conns))
		for _, c := range n.conns {
			conns = append(conns, c)
		}
		n.mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
		close(n.done)
		n.wg.Wait()
	})
	return nil
}

// Listen binds a Conn at addr. Port 0 picks a free port. The address must
// not be bound already.
func (n *Network) Listen(addr netip.AddrPort) (*Conn, error) {
	addr = unmap(addr)
	if !addr.Addr().IsValid() {
		return nil, fmt.Errorf("memnet: listen: invalid address %q", addr)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, fmt.Errorf("memnet: listen on %s: %w", addr, net.ErrClosed)
	}
	addr, err := n.freeLocked(addr)
	if err != nil {
		return nil, fmt.Errorf("memnet: listen: %w", err)
	}
	c := &Conn{
		net:       n,
		in:        make(chan packet, n.queueLen),
		done:      make(chan struct{}),
		addr:      addr,
		rdChanged: make(chan struct{}),
	}
	n.conns[addr] = c
	return c, nil
}

// freeLocked returns addr if nothing is bound there, or a free port on its
// host if its port is 0. Called with mu held.
func (n *Network) freeLocked(addr netip.AddrPort) (netip.AddrPort, error) {
	if addr.Port() != 0 {
		if _, taken := n.conns[addr]; taken {
			return netip.AddrPort{}, fmt.Errorf("address %s already in use", addr)
		}
		return addr, nil
	}
	for range 1 << 16 {
		p := n.nextPort
		if n.nextPort++; n.nextPort == 0 {
			n.nextPort = firstEphemeralPort
		}
		if p == 0 {
			continue
		}
		cand := netip.AddrPortFrom(addr.Addr(), p)
		if _, taken := n.conns[cand]; !taken {
			return cand, nil
		}
	}
	return netip.AddrPort{}, fmt.Errorf("no free port on %s", addr.Addr())
}

// Partition cuts the hosts a and b off from each other, in both directions
// and on every port, until Heal or HealAll.
func (n *Network) Partition(a, b netip.Addr) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cuts[pairOf(a, b)] = struct{}{}
}

// Heal undoes Partition(a, b).
func (n *Network) Heal(a, b netip.Addr) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.cuts, pairOf(a, b))
}

// HealAll undoes every partition.
func (n *Network) HealAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.cuts)
}

// SetLoss makes the network drop each packet with probability p (0 drops
// none, 1 drops all). The decisions come from the random source seeded by
// Options.Seed, one draw per packet sent while p > 0.
func (n *Network) SetLoss(p float64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.loss = min(max(p, 0), 1)
}

// Stats returns the network's counters.
func (n *Network) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

// send routes one packet written by a Conn at from.
func (n *Network) send(data []byte, from, to netip.AddrPort) {
	pkt := packet{data: append([]byte(nil), data...), from: from}
	n.mu.Lock()
	if _, cut := n.cuts[pairOf(from.Addr(), to.Addr())]; cut {
		n.stats.Partitioned++
		n.mu.Unlock()
		return
	}
	var ok bool
	if pkt.from, to, ok = n.routeLocked(from, to); !ok {
		n.mu.Unlock()
		return
	}
	if n.loss > 0 && n.rng.Float64() < n.loss {
		n.stats.Lost++
		n.mu.Unlock()
		return
	}
	if n.latency <= 0 {
		n.deliverLocked(pkt, to)
		n.mu.Unlock()
		return
	}
	n.mu.Unlock()
	select {
	case n.inflight <- delivery{pkt: pkt, to: to, due: time.Now().Add(n.latency)}:
	default:
		n.mu.Lock()
		n.stats.Overflow++
		n.mu.Unlock()
	}
}

// deliverLocked puts pkt in the queue of the Conn bound at to. Called with mu
// held.
func (n *Network) deliverLocked(pkt packet, to netip.AddrPort) {
	if n.broadcastLocked(pkt, to) {
		return
	}
	c := n.conns[to]
	if c == nil {
		n.stats.NoRoute++
		return
	}
	select {
	case c.in <- pkt:
		n.stats.Delivered++
	default:
		n.stats.Overflow++
	}
}

// deliverLoop delivers delayed packets in send order when they are due.
func (n *Network) deliverLoop() {
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for {
		var d delivery
		select {
		case d = <-n.inflight:
		case <-n.done:
			return
		}
		if wait := time.Until(d.due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-n.done:
				return
			}
		}
		n.mu.Lock()
		n.deliverLocked(d.pkt, d.to)
		n.mu.Unlock()
	}
}

// Conn is a socket bound on a Network. It implements net.PacketConn; its
// addresses are *net.UDPAddr.
type Conn struct {
	// Constant after Listen.
	net       *Network
	in        chan packet   // received packets; never closed
	done      chan struct{} // closed by Close
	closeOnce sync.Once

	// Guarded by net.mu.
	addr netip.AddrPort

	mu        sync.Mutex
	rdDead    time.Time     // guarded by mu: the read deadline
	rdChanged chan struct{} // guarded by mu: closed and replaced when rdDead changes
}

var _ net.PacketConn = (*Conn)(nil)

// Addr is the address the Conn is bound at now.
func (c *Conn) Addr() netip.AddrPort {
	c.net.mu.Lock()
	defer c.net.mu.Unlock()
	return c.addr
}

// LocalAddr is Addr as a *net.UDPAddr.
func (c *Conn) LocalAddr() net.Addr { return net.UDPAddrFromAddrPort(c.Addr()) }

// ReadFrom waits for the next packet, copies it into b (truncating it if b is
// short) and returns its length and sender, a *net.UDPAddr. It fails with an
// error wrapping os.ErrDeadlineExceeded once the read deadline has passed,
// and with one wrapping net.ErrClosed once the Conn is closed.
func (c *Conn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		c.mu.Lock()
		deadline, changed := c.rdDead, c.rdChanged
		c.mu.Unlock()
		select {
		case <-c.done:
			return 0, nil, c.opError("read", net.ErrClosed)
		default:
		}
		var expired <-chan time.Time
		var timer *time.Timer
		if !deadline.IsZero() {
			wait := time.Until(deadline)
			if wait <= 0 {
				return 0, nil, c.opError("read", os.ErrDeadlineExceeded)
			}
			timer = time.NewTimer(wait)
			expired = timer.C
		}
		var (
			p   packet
			got bool
			err error
		)
		select {
		case p = <-c.in:
			got = true
		case <-c.done:
			err = c.opError("read", net.ErrClosed)
		case <-expired:
			err = c.opError("read", os.ErrDeadlineExceeded)
		case <-changed:
		}
		if timer != nil {
			timer.Stop()
		}
		if got {
			return copy(b, p.data), net.UDPAddrFromAddrPort(p.from), nil
		}
		if err != nil {
			return 0, nil, err
		}
	}
}

// WriteTo sends b to addr, which must be a *net.UDPAddr. It never blocks: a
// packet that cannot be delivered is dropped, as with UDP.
func (c *Conn) WriteTo(b []byte, addr net.Addr) (int, error) {
	u, ok := addr.(*net.UDPAddr)
	if !ok || u == nil {
		return 0, c.opError("write", fmt.Errorf("memnet: destination %v is a %T, want a *net.UDPAddr", addr, addr))
	}
	to := unmap(u.AddrPort())
	if !to.IsValid() {
		return 0, c.opError("write", fmt.Errorf("memnet: invalid destination address %v", addr))
	}
	select {
	case <-c.done:
		return 0, c.opError("write", net.ErrClosed)
	default:
	}
	c.net.send(b, c.Addr(), to)
	return len(b), nil
}

// Rebind moves the Conn to addr: from now on it sends from addr and receives
// what is sent to addr, and its old address is free. Packets already queued
// stay queued. Port 0 picks a free port.
func (c *Conn) Rebind(addr netip.AddrPort) error {
	addr = unmap(addr)
	if !addr.Addr().IsValid() {
		return fmt.Errorf("memnet: rebind: invalid address %q", addr)
	}
	n := c.net
	n.mu.Lock()
	defer n.mu.Unlock()
	select {
	case <-c.done:
		return fmt.Errorf("memnet: rebind %s: %w", c.addr, net.ErrClosed)
	default:
	}
	if addr == c.addr {
		return nil
	}
	addr, err := n.freeLocked(addr)
	if err != nil {
		return fmt.Errorf("memnet: rebind %s: %w", c.addr, err)
	}
	delete(n.conns, c.addr)
	c.addr = addr
	n.conns[addr] = c
	return nil
}

// Close unbinds the Conn and ends blocked reads with net.ErrClosed. Queued
// packets are discarded. It is safe to call more than once.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		n := c.net
		n.mu.Lock()
		if n.conns[c.addr] == c {
			delete(n.conns, c.addr)
		}
		close(c.done)
		n.mu.Unlock()
	})
	return nil
}

// SetDeadline sets the read deadline; writes never block.
func (c *Conn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// SetReadDeadline sets the time after which ReadFrom fails with a timeout;
// the zero time means none. It applies to reads already waiting.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rdDead = t
	close(c.rdChanged)
	c.rdChanged = make(chan struct{})
	return nil
}

// SetWriteDeadline does nothing: writes never block.
func (c *Conn) SetWriteDeadline(time.Time) error { return nil }

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "memnet", Addr: c.LocalAddr(), Err: err}
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
