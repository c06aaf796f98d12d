// Package presencetest runs many [presence.Presence] instances on a
// simulated network, driven by one fake clock, event by event, so that
// tests of presence, and of whatever reacts to it, are exact and take no
// wall time.
//
// # The simulation
//
// [New] makes a [Net] of n devices ([Node]), each with its own key, its
// own in-memory address book ([Book]) that knows every other device, and
// a Presence whose clock is the network's ([Clock]) plus the node's skew.
// Nothing runs on its own: [Net.Step] takes the earliest event, either a
// datagram arriving (after [Options.Latency]) or a node's presence having
// work due ([presence.Presence.NextDue]), and runs it on the caller's
// goroutine. [Net.Run] and [Net.RunUntil] step until a time or a
// condition. No goroutine is started, so there is nothing to close.
//
// Datagrams are delivered to whoever is at their destination address when
// they arrive, after that node's [presence.Presence.Admit] (quiet mode);
// anything else is dropped and counted in [Net.Dropped]. [Net.Move] gives
// a node a new address (noticed on its interfaces or not, as behind a NAT
// that rebinds), [Net.Kill] stops one, [Net.Partition] and [Net.Heal] cut
// and restore the paths between groups of nodes, and [Net.Tap] sees every
// datagram sent.
//
// Presence's subscriptions work as in the agent: a test may subscribe to a
// node's events and read them after each step, without waiting.
package presencetest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kith-project/kith/cluster/presence"
	"github.com/kith-project/kith/seed"
)

// Epoch is when every simulation starts, by the network's clock.
var Epoch = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// Clock is a fake clock that moves only when told to. It is safe for
// concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock showing t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t, forwards or backwards.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Advance moves the clock forwards by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Book is an in-memory [presence.VersionBook], safe for concurrent use.
// It survives [Net.Restart], as the agent's store does.
type Book struct {
	mu      sync.Mutex
	peers   map[seed.DevicePublic]*presence.PeerInfo
	sets    int    // SetAddr calls
	version uint64 // our own record's, as saved
}

var _ presence.VersionBook = (*Book)(nil)

// OwnVersion implements [presence.VersionBook].
func (b *Book) OwnVersion() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.version
}

// SetOwnVersion implements [presence.VersionBook].
func (b *Book) SetOwnVersion(v uint64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.version = v
	return nil
}

// errUnknown is what SetAddr returns for a device the book does not hold.
var errUnknown = errors.New("presencetest: unknown device")

// NewBook returns an empty book.
func NewBook() *Book { return &Book{peers: map[seed.DevicePublic]*presence.PeerInfo{}} }

// Add puts pi in the book, replacing any entry for the same device.
func (b *Book) Add(pi presence.PeerInfo) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := pi
	b.peers[pi.Device] = &c
}

// Remove takes device out of the book (as the agent does when a peer is
// removed or blocked).
func (b *Book) Remove(device seed.DevicePublic) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.peers, device)
}

// Lookup implements [presence.Book].
func (b *Book) Lookup(device seed.DevicePublic) (presence.PeerInfo, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	pi, ok := b.peers[device]
	if !ok {
		return presence.PeerInfo{}, false
	}
	return *pi, true
}

// Peers implements [presence.Book], sorted by device key.
func (b *Book) Peers() []presence.PeerInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]presence.PeerInfo, 0, len(b.peers))
	for _, pi := range b.peers {
		out = append(out, *pi)
	}
	slices.SortFunc(out, func(x, y presence.PeerInfo) int { return bytes.Compare(x.Device[:], y.Device[:]) })
	return out
}

// SetAddr implements [presence.Book].
func (b *Book) SetAddr(device seed.DevicePublic, addr netip.AddrPort, version uint64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	pi, ok := b.peers[device]
	if !ok {
		return errUnknown
	}
	pi.Addr, pi.Version = addr, version
	b.sets++
	return nil
}

// Addr returns the address the book holds for device (zero if none).
func (b *Book) Addr(device seed.DevicePublic) netip.AddrPort {
	pi, _ := b.Lookup(device)
	return pi.Addr
}

// SetCount returns how many times SetAddr was called.
func (b *Book) SetCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sets
}

// Packet is a datagram on its way.
type Packet struct {
	At       time.Time // when it arrives, by the network's clock
	From, To netip.AddrPort
	Data     []byte
}

// Net is a network of simulated devices. It is not safe for concurrent
// use: one goroutine, the test's, drives it.
type Net struct {
	// Clock is the network's clock; each node's is offset by its Skew.
	Clock *Clock
	// Nodes are the devices, in the order New made them.
	Nodes []*Node
	// Latency is the one-way delay of a datagram; Options.Latency by
	// default. A test may replace it at any time.
	Latency func(from, to netip.AddrPort) time.Duration
	// Tap, if set, sees every datagram sent, when it is sent.
	Tap func(Packet)
	// Bytes counts the kith datagram bytes sent (STUN excluded).
	Bytes int
	// Dropped counts datagrams refused by Admit, cut by a partition or
	// sent to an address nobody is at.
	Dropped int

	tb     testing.TB
	byAddr map[netip.AddrPort]*Node
	queue  []Packet    // sorted by arrival, sending order among equals
	group  map[int]int // node index → partition group; nil: no partition
}

// Node is one simulated device.
type Node struct {
	Key    ed25519.PrivateKey
	Pub    seed.DevicePublic
	Wire   netip.AddrPort // where its packets come from and go to
	Local  netip.AddrPort // what its LocalAddrs says
	Skew   time.Duration  // its clock minus the network's
	Book   *Book
	P      *presence.Presence
	Window []byte // its user's window secret
	Dead   bool   // stopped: sends and fires nothing

	net   *Net
	index int
	cfg   presence.Config // what P was made from, for Restart
}

// Clock returns the node's time: the network's plus its skew.
func (n *Node) Clock() time.Time { return n.net.Clock.Now().Add(n.Skew) }

// Options shape a simulated network. Zero values mean the defaults.
type Options struct {
	N        int           // devices
	Interval time.Duration // T; default presence.DefaultInterval
	Seed     uint64        // keys and randomness
	// Friends: every device sees the others as friends' devices; by
	// default they are all the same user's own devices.
	Friends bool
	Quiet   []bool          // per node: quiet mode
	Skew    []time.Duration // per node: its clock minus the network's
	Latency time.Duration   // one way; default 10 ms
	// Users says, per node, which user it belongs to, which picks its
	// window secret; by default every node is its own user.
	Users []int
	// Config, if set, is the last touch on node i's config before New.
	Config func(i int, c *presence.Config)
	// NoBook, if set, keeps node j out of node i's book when it returns
	// true.
	NoBook func(i, j int) bool
}

// Addr returns the address node i starts at: 10.0.0.(i+1):7117.
func Addr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 7117)
}

// New makes a network of o.N devices that all know each other, starting
// at Epoch. It fails tb if a Presence cannot be made.
func New(tb testing.TB, o Options) *Net {
	tb.Helper()
	if o.Interval == 0 {
		o.Interval = presence.DefaultInterval
	}
	if o.Latency == 0 {
		o.Latency = 10 * time.Millisecond
	}
	lat := o.Latency
	s := &Net{tb: tb, Clock: NewClock(Epoch), byAddr: map[netip.AddrPort]*Node{},
		Latency: func(_, _ netip.AddrPort) time.Duration { return lat }}
	rnd := rand.New(rand.NewPCG(o.Seed, 0x6b697468))
	for i := range o.N {
		ks := sha256.Sum256(fmt.Appendf(nil, "sim key %d %d", o.Seed, i))
		key := ed25519.NewKeyFromSeed(ks[:])
		user := i
		if o.Users != nil {
			user = o.Users[i]
		}
		win := sha256.Sum256(fmt.Appendf(nil, "sim window %d", user))
		n := &Node{net: s, index: i, Key: key, Pub: seed.DevicePublic(key.Public().(ed25519.PublicKey)),
			Wire: Addr(i), Local: Addr(i), Book: NewBook(), Window: win[:]}
		if o.Skew != nil {
			n.Skew = o.Skew[i]
		}
		s.Nodes = append(s.Nodes, n)
		s.byAddr[n.Wire] = n
	}
	for i, n := range s.Nodes {
		for j, m := range s.Nodes {
			if i == j || (o.NoBook != nil && o.NoBook(i, j)) {
				continue
			}
			n.Book.Add(presence.PeerInfo{Device: m.Pub, Own: !o.Friends, Addr: m.Wire, Window: m.Window})
		}
		cfg := presence.Config{
			Key:        n.Key,
			Interval:   o.Interval,
			Book:       n.Book,
			Send:       func(pkt []byte, to netip.AddrPort) error { s.Send(n.Wire, to, pkt); return nil },
			Now:        n.Clock,
			Rand:       rand.New(rand.NewPCG(rnd.Uint64(), rnd.Uint64())),
			LocalAddrs: func() []netip.AddrPort { return []netip.AddrPort{n.Local} },
			Window:     n.Window,
			Quiet:      o.Quiet != nil && o.Quiet[i],
		}
		if o.Config != nil {
			o.Config(i, &cfg)
		}
		n.cfg = cfg
		p, err := presence.New(cfg)
		if err != nil {
			tb.Fatal(err)
		}
		n.P = p
	}
	return s
}

// Restart replaces node i's Presence with a new one made from the same
// config, as a restarted agent: it remembers only what its book holds. A
// killed node comes back at its address. Subscriptions to the old
// Presence see nothing more.
func (s *Net) Restart(i int) {
	s.tb.Helper()
	n := s.Nodes[i]
	p, err := presence.New(n.cfg)
	if err != nil {
		s.tb.Fatal(err)
	}
	n.P, n.Dead = p, false
	s.byAddr[n.Wire] = n
}

// Now returns the network's time.
func (s *Net) Now() time.Time { return s.Clock.Now() }

// Send puts a datagram from from to to on the network, to arrive after
// Latency. Nodes send through it; a test may too, to play a device that
// runs no presence (a STUN server, a stranger).
func (s *Net) Send(from, to netip.AddrPort, pkt []byte) {
	sp := Packet{At: s.Now().Add(s.Latency(from, to)), From: from, To: to, Data: slices.Clone(pkt)}
	if len(pkt) > 0 && pkt[0] >= 0x04 {
		s.Bytes += len(pkt)
	}
	if s.Tap != nil {
		s.Tap(sp)
	}
	i, _ := slices.BinarySearchFunc(s.queue, sp.At, func(q Packet, at time.Time) int {
		if q.At.After(at) {
			return 1
		}
		return -1 // equal times keep sending order
	})
	s.queue = slices.Insert(s.queue, i, sp)
}

// Move gives node i the address to; if noticed, its interfaces say so
// too (else only its packets show it, as behind a NAT that rebinds).
func (s *Net) Move(i int, to netip.AddrPort, noticed bool) {
	n := s.Nodes[i]
	delete(s.byAddr, n.Wire)
	n.Wire = to
	s.byAddr[to] = n
	if noticed {
		n.Local = to
	}
}

// Kill stops node i: it sends nothing more and nothing reaches it.
func (s *Net) Kill(i int) {
	s.Nodes[i].Dead = true
	delete(s.byAddr, s.Nodes[i].Wire)
}

// Partition cuts the network into the given groups of node indexes:
// datagrams between nodes of different groups are dropped when they
// arrive. Nodes in no group are cut off from everyone. Addresses that no
// node holds (a STUN server played by the test) are not affected.
func (s *Net) Partition(groups ...[]int) {
	s.group = map[int]int{}
	for i := range s.Nodes {
		s.group[i] = -1 - i // alone
	}
	for g, idx := range groups {
		for _, i := range idx {
			s.group[i] = g
		}
	}
}

// Heal undoes Partition.
func (s *Net) Heal() { s.group = nil }

// cut reports whether a partition separates the sender at from and node
// to.
func (s *Net) cut(from netip.AddrPort, to *Node) bool {
	if s.group == nil {
		return false
	}
	src := s.byAddr[from]
	return src != nil && s.group[src.index] != s.group[to.index]
}

// Deliver hands one datagram to whoever is at its destination now, if
// that node's Admit lets it in.
func (s *Net) Deliver(sp Packet) {
	n := s.byAddr[sp.To]
	if n == nil || s.cut(sp.From, n) || !n.P.Admit(sp.From, false) {
		s.Dropped++
		return
	}
	n.P.HandleDatagram(sp.Data, sp.From)
}

// Step runs the next event, a delivery or a node's due work, if it comes
// at or before end, and reports whether it did. The clock moves to the
// event's time.
func (s *Net) Step(end time.Time) bool {
	now := s.Now()
	var next time.Time
	var who *Node
	for _, n := range s.Nodes {
		if n.Dead {
			continue
		}
		due := n.P.NextDue().Add(-n.Skew)
		if due.Before(now) {
			due = now
		}
		if who == nil || due.Before(next) {
			next, who = due, n
		}
	}
	if len(s.queue) > 0 && (who == nil || !s.queue[0].At.After(next)) {
		if s.queue[0].At.After(end) {
			return false
		}
		sp := s.queue[0]
		s.queue = s.queue[1:]
		s.Clock.Set(sp.At)
		s.Deliver(sp)
		return true
	}
	if who == nil || next.After(end) {
		return false
	}
	s.Clock.Set(next)
	who.P.Step(who.Clock())
	return true
}

// Run advances the simulation by d.
func (s *Net) Run(d time.Duration) {
	end := s.Now().Add(d)
	for s.Step(end) {
	}
	s.Clock.Set(end)
}

// RunUntil advances until cond holds, for at most d, and returns the time
// it took, or -1 if cond did not hold within d.
func (s *Net) RunUntil(d time.Duration, cond func() bool) time.Duration {
	start := s.Now()
	end := start.Add(d)
	for !cond() {
		if !s.Step(end) {
			return -1
		}
	}
	return s.Now().Sub(start)
}

// Status returns node i's view of node j; it fails the test if node i
// does not know node j.
func (s *Net) Status(i, j int) presence.PeerStatus {
	s.tb.Helper()
	for _, st := range s.Nodes[i].P.Status() {
		if st.Device.Equal(s.Nodes[j].Pub) {
			return st
		}
	}
	s.tb.Fatalf("node %d does not know node %d", i, j)
	return presence.PeerStatus{}
}

// AllKnow reports whether every other node's book has node i at addr.
func (s *Net) AllKnow(i int, addr netip.AddrPort) bool {
	for j, n := range s.Nodes {
		if j != i && n.Book.Addr(s.Nodes[i].Pub) != addr {
			return false
		}
	}
	return true
}
