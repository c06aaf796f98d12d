package presence

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kith-project/kith/seed"
)

// This file is the test harness: an in-memory address book, and a
// simulated network of Presences driven by one fake clock, event by event,
// so that tests are exact and take no wall time.

// memBook is an in-memory Book.
type memBook struct {
	mu    sync.Mutex
	peers map[seed.DevicePublic]*PeerInfo
	sets  int // SetAddr calls
}

func newMemBook() *memBook { return &memBook{peers: map[seed.DevicePublic]*PeerInfo{}} }

func (b *memBook) add(pi PeerInfo) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := pi
	b.peers[pi.Device] = &c
}

func (b *memBook) Lookup(device seed.DevicePublic) (PeerInfo, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	pi, ok := b.peers[device]
	if !ok {
		return PeerInfo{}, false
	}
	return *pi, true
}

func (b *memBook) Peers() []PeerInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]PeerInfo, 0, len(b.peers))
	for _, pi := range b.peers {
		out = append(out, *pi)
	}
	slices.SortFunc(out, func(x, y PeerInfo) int { return bytes.Compare(x.Device[:], y.Device[:]) })
	return out
}

func (b *memBook) SetAddr(device seed.DevicePublic, addr netip.AddrPort, version uint64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	pi, ok := b.peers[device]
	if !ok {
		return fmt.Errorf("unknown device")
	}
	pi.Addr, pi.Version = addr, version
	b.sets++
	return nil
}

func (b *memBook) addrOf(device seed.DevicePublic) netip.AddrPort {
	pi, _ := b.Lookup(device)
	return pi.Addr
}

func (b *memBook) setCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sets
}

// simPkt is a datagram on its way.
type simPkt struct {
	at       time.Time
	from, to netip.AddrPort
	data     []byte
}

// simNet is a network of simulated devices.
type simNet struct {
	t       testing.TB
	now     time.Time
	latency func(from, to netip.AddrPort) time.Duration
	nodes   []*simNode
	byAddr  map[netip.AddrPort]*simNode
	queue   []simPkt
	tap     func(simPkt) // sees every packet sent, if set
	bytes   int          // kith datagram bytes sent
	dropped int          // packets refused by Admit or sent nowhere
}

// simNode is one device: its Presence, its book and its addresses.
type simNode struct {
	net    *simNet
	key    ed25519.PrivateKey
	pub    seed.DevicePublic
	wire   netip.AddrPort // where its packets come from and go to
	local  netip.AddrPort // what its LocalAddrs says
	skew   time.Duration  // its clock minus the network's
	book   *memBook
	p      *Presence
	window []byte
	dead   bool // stopped: sends and fires nothing
}

func (n *simNode) clock() time.Time { return n.net.now.Add(n.skew) }

// simOpts shape a simulated cluster.
type simOpts struct {
	n        int
	interval time.Duration
	seed     uint64
	friends  bool                // every peer is a friend's device, not own
	quiet    []bool              // per node
	skew     []time.Duration     // per node
	latency  time.Duration       // one way; default 10 ms
	users    []int               // per node: which user it belongs to (window secret)
	config   func(*Config)       // last touch on each node's config
	noBook   func(i, j int) bool // node i does not know node j
}

var simEpoch = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

func simAddr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 7117)
}

func newSim(t testing.TB, o simOpts) *simNet {
	t.Helper()
	if o.interval == 0 {
		o.interval = DefaultInterval
	}
	if o.latency == 0 {
		o.latency = 10 * time.Millisecond
	}
	lat := o.latency
	s := &simNet{t: t, now: simEpoch, byAddr: map[netip.AddrPort]*simNode{},
		latency: func(_, _ netip.AddrPort) time.Duration { return lat }}
	rnd := rand.New(rand.NewPCG(o.seed, 0x6b697468))
	for i := range o.n {
		ks := sha256.Sum256(fmt.Appendf(nil, "sim key %d %d", o.seed, i))
		key := ed25519.NewKeyFromSeed(ks[:])
		user := i
		if o.users != nil {
			user = o.users[i]
		}
		win := sha256.Sum256(fmt.Appendf(nil, "sim window %d", user))
		n := &simNode{net: s, key: key, pub: pubOf(key), wire: simAddr(i), local: simAddr(i),
			book: newMemBook(), window: win[:]}
		if o.skew != nil {
			n.skew = o.skew[i]
		}
		s.nodes = append(s.nodes, n)
		s.byAddr[n.wire] = n
	}
	for i, n := range s.nodes {
		for j, m := range s.nodes {
			if i == j || (o.noBook != nil && o.noBook(i, j)) {
				continue
			}
			n.book.add(PeerInfo{Device: m.pub, Own: !o.friends, Addr: m.wire, Window: m.window})
		}
		cfg := Config{
			Key:        n.key,
			Interval:   o.interval,
			Book:       n.book,
			Send:       n.send,
			Now:        n.clock,
			Rand:       rand.New(rand.NewPCG(rnd.Uint64(), rnd.Uint64())),
			LocalAddrs: func() []netip.AddrPort { return []netip.AddrPort{n.local} },
			Window:     n.window,
			Quiet:      o.quiet != nil && o.quiet[i],
		}
		if o.config != nil {
			o.config(&cfg)
		}
		p, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		n.p = p
	}
	return s
}

func (n *simNode) send(pkt []byte, to netip.AddrPort) error {
	s := n.net
	sp := simPkt{at: s.now.Add(s.latency(n.wire, to)), from: n.wire, to: to, data: slices.Clone(pkt)}
	if len(pkt) > 0 && pkt[0] >= 0x04 {
		s.bytes += len(pkt)
	}
	if s.tap != nil {
		s.tap(sp)
	}
	i, _ := slices.BinarySearchFunc(s.queue, sp.at, func(q simPkt, at time.Time) int {
		if q.at.After(at) {
			return 1
		}
		return -1 // equal times keep sending order
	})
	s.queue = slices.Insert(s.queue, i, sp)
	return nil
}

// move gives node i a new address; if noticed, its interfaces say so too
// (else only the packets show it, as behind a NAT that rebinds).
func (s *simNet) move(i int, to netip.AddrPort, noticed bool) {
	n := s.nodes[i]
	delete(s.byAddr, n.wire)
	n.wire = to
	s.byAddr[to] = n
	if noticed {
		n.local = to
	}
}

// kill stops node i: it sends nothing more and nothing reaches it.
func (s *simNet) kill(i int) {
	s.nodes[i].dead = true
	delete(s.byAddr, s.nodes[i].wire)
}

// deliver hands one packet to whoever is at its address.
func (s *simNet) deliver(sp simPkt) {
	n := s.byAddr[sp.to]
	if n == nil || !n.p.Admit(sp.from, false) {
		s.dropped++
		return
	}
	n.p.HandleDatagram(sp.data, sp.from)
}

// step runs the next event (a delivery or a node's timer) if it comes at
// or before end, and reports whether it did.
func (s *simNet) step(end time.Time) bool {
	var next time.Time
	var who *simNode
	for _, n := range s.nodes {
		if n.dead {
			continue
		}
		due := n.p.nextDue().Add(-n.skew)
		if due.Before(s.now) {
			due = s.now
		}
		if who == nil || due.Before(next) {
			next, who = due, n
		}
	}
	if len(s.queue) > 0 && (who == nil || !s.queue[0].at.After(next)) {
		if s.queue[0].at.After(end) {
			return false
		}
		sp := s.queue[0]
		s.queue = s.queue[1:]
		s.now = sp.at
		s.deliver(sp)
		return true
	}
	if who == nil || next.After(end) {
		return false
	}
	s.now = next
	who.p.fire(who.clock())
	return true
}

// run advances the simulation by d.
func (s *simNet) run(d time.Duration) {
	end := s.now.Add(d)
	for s.step(end) {
	}
	s.now = end
}

// runUntil advances until cond holds, for at most d, and returns the time
// it took (or -1).
func (s *simNet) runUntil(d time.Duration, cond func() bool) time.Duration {
	start := s.now
	end := start.Add(d)
	for !cond() {
		if !s.step(end) {
			return -1
		}
	}
	return s.now.Sub(start)
}

// status returns node i's view of node j.
func (s *simNet) status(i, j int) PeerStatus {
	for _, st := range s.nodes[i].p.Status() {
		if st.Device.Equal(s.nodes[j].pub) {
			return st
		}
	}
	s.t.Fatalf("node %d does not know node %d", i, j)
	return PeerStatus{}
}

// allKnow reports whether every other node's book has node i at addr.
func (s *simNet) allKnow(i int, addr netip.AddrPort) bool {
	for j, n := range s.nodes {
		if j != i && n.book.addrOf(s.nodes[i].pub) != addr {
			return false
		}
	}
	return true
}

// beatFrom builds a fresh heartbeat from node i to node j, as node i would
// (its key, a fresh sequence number, its clock), carrying records.
func (s *simNet) beatFrom(i, j int, t1 time.Time, records ...[]byte) []byte {
	n := s.nodes[i]
	return encodeBeat(TypeHeartbeat, n.key, s.nodes[j].pub, n.p.nextSeq(), t1.UnixNano(), records)
}
