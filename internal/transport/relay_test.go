package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/memnet"
)

// testRelay is a minimal relay on a Transport: it forwards relay datagrams
// of its one session between two registered addresses, as the agent's
// relay service does, and records what it forwarded.
type testRelay struct {
	tr      *Transport
	session uint64
	mu      sync.Mutex
	ends    [2]netip.AddrPort
	sizes   []int // of every datagram forwarded
	biggest int
	dropped atomic.Int64
}

func (r *testRelay) datagram(pkt []byte, from netip.AddrPort) {
	h, err := ParseRelayHeader(pkt)
	if err != nil || h.Session != r.session || h.Type != RelayData {
		r.dropped.Add(1)
		return
	}
	r.mu.Lock()
	var to netip.AddrPort
	switch from {
	case r.ends[0]:
		to = r.ends[1]
	case r.ends[1]:
		to = r.ends[0]
	}
	if to.IsValid() {
		r.sizes = append(r.sizes, len(pkt))
		r.biggest = max(r.biggest, len(pkt))
	}
	r.mu.Unlock()
	if !to.IsValid() {
		r.dropped.Add(1)
		return
	}
	_ = r.tr.WriteDatagram(pkt, to)
}

// relayed sets up A and B reaching each other through R at virtual
// addresses, and returns the virtual address of B as A sees it, and of A as
// B sees it (the same session, so the same address).
func relayed(t *testing.T, a, b *Transport, r *testRelay, relayAddr netip.AddrPort) netip.AddrPort {
	t.Helper()
	r.mu.Lock()
	r.ends = [2]netip.AddrPort{a.LocalAddr(), b.LocalAddr()}
	r.mu.Unlock()
	va, err := a.AddRelayRoute(r.session, relayAddr)
	if err != nil {
		t.Fatal(err)
	}
	vb, err := b.AddRelayRoute(r.session, relayAddr)
	if err != nil {
		t.Fatal(err)
	}
	if va != vb || !IsRelayAddr(va) || va.Port() != RelayPort {
		t.Fatalf("virtual addresses %s and %s", va, vb)
	}
	return va
}

// testRelayPath checks a stream and datagrams from a to b through r, and
// that c, a third party, cannot pass for the relay.
func testRelayPath(t *testing.T, a, b, c *Transport, r *testRelay, relayAddr netip.AddrPort, sinkB *datagramSink) {
	virt := relayed(t, a, b, r, relayAddr)
	in := serveEcho(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := a.OpenStream(ctx, virt, b.PublicKey(), 7)
	if err != nil {
		t.Fatalf("OpenStream through the relay: %v", err)
	}
	defer s.Close()
	got := nextServed(t, in)
	if got.proto != 7 || got.conn.RemoteAddr() != virt {
		t.Fatalf("b served protocol %d from %s, want 7 from the virtual %s", got.proto, got.conn.RemoteAddr(), virt)
	}
	echo(t, s, []byte("through the relay"))
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<15) // 512 KiB: full-size packets in bursts
	echo(t, s, big)

	// Datagrams go the same way, and arrive from the virtual address.
	if err := a.WriteDatagram([]byte{0x10, 1, 2, 3}, virt); err != nil {
		t.Fatal(err)
	}
	for {
		d := sinkB.next(t)
		if d.from == virt && bytes.Equal(d.pkt, []byte{0x10, 1, 2, 3}) {
			break
		}
	}
	r.mu.Lock()
	n, biggest := len(r.sizes), r.biggest
	r.mu.Unlock()
	if n < 400 {
		t.Fatalf("the relay forwarded %d datagrams for 512 KiB each way", n)
	}
	// One QUIC packet per relay datagram: GSO writes were split.
	if biggest > 1452+RelayHeaderSize {
		t.Fatalf("the relay forwarded a datagram of %d bytes: a GSO write was not split", biggest)
	}
	routes := a.RelayRoutes()
	if len(routes) != 1 || routes[0].Out == 0 || routes[0].In == 0 || routes[0].Relay != relayAddr || routes[0].LastIn.IsZero() {
		t.Fatalf("a's routes: %+v", routes)
	}

	// A relay datagram of the session from anyone but the relay is not
	// taken as coming from the virtual address: it is an ordinary datagram.
	spoof := AppendRelayHeader(nil, RelayData, r.session)
	spoof = append(spoof, 0x10, 9, 9)
	if err := r.tr.WriteDatagram(spoof, b.LocalAddr()); err != nil { // from the relay: taken
		t.Fatal(err)
	}
	if d := sinkB.next(t); d.from != virt || !bytes.Equal(d.pkt, []byte{0x10, 9, 9}) {
		t.Fatalf("b got %x from %s, want the unwrapped datagram from %s", d.pkt, d.from, virt)
	}
	if err := c.WriteDatagram(spoof, b.LocalAddr()); err != nil { // from c: raw
		t.Fatal(err)
	}
	if d := sinkB.next(t); d.from != c.LocalAddr() || !bytes.Equal(d.pkt, spoof) {
		t.Fatalf("b got %x from %s, want the raw relay datagram from %s", d.pkt, d.from, c.LocalAddr())
	}

	// Without a route, a virtual address is unreachable.
	if !a.RemoveRelayRoute(r.session) || a.RemoveRelayRoute(r.session) {
		t.Fatal("RemoveRelayRoute did not report the one route")
	}
	if err := a.WriteDatagram([]byte{0x10}, virt); err == nil {
		t.Fatal("a datagram to a virtual address without a route was sent")
	}
	// and a connection still on it ends at its next write.
	_, _ = s.Write([]byte("after the route went"))
	waitDone(t, s.Conn(), "the connection on a removed route")
}

// A and B reach each other only through R, on real UDP sockets (where
// quic-go writes with WriteMsgUDP and GSO) and on memnet (WriteTo).
func TestRelayRouteUDP(t *testing.T) {
	ka, kb, kr := testKey("a"), testKey("b"), testKey("r")
	sinkB := newSink()
	r := &testRelay{session: 0x0102030405060708}
	r.tr = listenT(t, Config{Key: kr, Listen: "127.0.0.4:0", Authorize: anyKey, Datagram: r.datagram})
	// A virtual address never reaches the socket: whatever goes to it
	// goes through R.
	a := listenT(t, Config{Key: ka, Listen: "127.0.0.2:0", Authorize: anyKey})
	b := listenT(t, Config{Key: kb, Listen: "127.0.0.3:0", Authorize: anyKey, Datagram: sinkB.receive})
	c := listenT(t, Config{Key: testKey("c"), Listen: "127.0.0.5:0", Authorize: anyKey})
	testRelayPath(t, a, b, c, r, r.tr.LocalAddr(), sinkB)
	t.Logf("writes split into several relay datagrams (GSO): a %d, b %d", a.relays.split.Load(), b.relays.split.Load())
}

func TestRelayRouteMemnet(t *testing.T) {
	n := memnet.New(memnet.Options{Seed: 3})
	defer n.Close()
	n.Partition(netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"))
	sinkB := newSink()
	r := &testRelay{session: 42}
	r.tr, _ = listenMem(t, n, "10.0.0.9:7070", Config{Key: testKey("r"), Authorize: anyKey, Datagram: r.datagram})
	a, _ := listenMem(t, n, "10.0.0.1:7070", Config{Key: testKey("a"), Authorize: anyKey})
	b, _ := listenMem(t, n, "10.0.0.2:7070", Config{Key: testKey("b"), Authorize: anyKey, Datagram: sinkB.receive})
	c, _ := listenMem(t, n, "10.0.0.3:7070", Config{Key: testKey("c"), Authorize: anyKey})
	testRelayPath(t, a, b, c, r, r.tr.LocalAddr(), sinkB)
}

func TestRelayAddr(t *testing.T) {
	for _, id := range []uint64{0, 1, 0xdeadbeefcafef00d, ^uint64(0)} {
		v := RelayAddr(id)
		got, ok := relaySessionOf(v)
		if !ok || got != id || !IsRelayAddr(v) {
			t.Fatalf("RelayAddr(%#x) = %s, back to %#x %v", id, v, got, ok)
		}
	}
	for _, s := range []string{"127.0.0.1:1", "[fd6b:6974:6900::1]:1", "[::1]:7117"} {
		if IsRelayAddr(netip.MustParseAddrPort(s)) {
			t.Errorf("%s taken as virtual", s)
		}
	}
	if _, err := (&Transport{}).AddRelayRoute(1, RelayAddr(2)); err == nil {
		t.Error("a route through a virtual address was added")
	}
}

func TestParseRelayHeader(t *testing.T) {
	pkt := AppendRelayHeader(nil, RelayData, 0x1122334455667788)
	pkt = append(pkt, "payload"...)
	h, err := ParseRelayHeader(pkt)
	if err != nil || h.Type != RelayData || h.Session != 0x1122334455667788 {
		t.Fatalf("ParseRelayHeader = %+v, %v", h, err)
	}
	if _, err := ParseRelayHeader(AppendRelayHeader(nil, RelayRefresh, 1)); err != nil {
		t.Fatal(err)
	}
	bad := [][]byte{nil, {0x30}, pkt[:8], append(AppendRelayHeader(nil, RelayRefresh, 1), 0), AppendRelayHeader(nil, 0x10, 1)}
	for _, b := range bad {
		if _, err := ParseRelayHeader(b); err == nil {
			t.Errorf("ParseRelayHeader(%x) accepted", b)
		}
	}
}

func FuzzParseRelayHeader(f *testing.F) {
	f.Add(AppendRelayHeader(nil, RelayData, 7))
	f.Add(AppendRelayHeader(nil, RelayRefresh, 7))
	f.Add(append(AppendRelayHeader(nil, RelayData, 7), 0xc0, 0, 0, 0, 1))
	f.Add([]byte{0x30, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseRelayHeader(b)
		if err != nil {
			return
		}
		if len(b) < RelayHeaderSize || h.Session != binary.BigEndian.Uint64(b[1:9]) || (h.Type != RelayData && h.Type != RelayRefresh) {
			t.Fatalf("ParseRelayHeader(%x) = %+v", b, h)
		}
		if back := AppendRelayHeader(nil, h.Type, h.Session); !bytes.Equal(back, b[:RelayHeaderSize]) {
			t.Fatalf("header %x re-encodes as %x", b[:RelayHeaderSize], back)
		}
	})
}

// admit with a relay route: a packet is unwrapped only when it is a relay
// datagram of the route's session from the route's relay, carrying QUIC;
// a relay datagram inside one is never handed up.
func FuzzRelayAdmit(f *testing.F) {
	relay := netip.MustParseAddrPort("192.0.2.1:7117")
	other := netip.MustParseAddrPort("192.0.2.2:7117")
	const id = 0x0102030405060708
	f.Add(append(AppendRelayHeader(nil, RelayData, id), 0xc0, 0, 0, 0, 1), true)
	f.Add(append(AppendRelayHeader(nil, RelayData, id), 0x10, 1), true)
	f.Add(append(AppendRelayHeader(nil, RelayData, id), AppendRelayHeader(nil, RelayData, id)...), true)
	f.Add(append(AppendRelayHeader(nil, RelayData, id), 0x40), false)
	f.Add([]byte{0x30, 1, 2}, true)
	f.Fuzz(func(t *testing.T, pkt []byte, fromRelay bool) {
		var handed [][]byte
		tr := &Transport{datagram: func(p []byte, from netip.AddrPort) {
			if IsRelayAddr(from) && len(p) > 0 && (p[0] == RelayData || p[0] == RelayRefresh) {
				t.Fatalf("a relay datagram inside one was handed up: %x", p)
			}
			handed = append(handed, p)
		}}
		if _, err := tr.AddRelayRoute(id, relay); err != nil {
			t.Fatal(err)
		}
		from := other
		if fromRelay {
			from = relay
		}
		ok, virt := tr.admit(pkt, from)
		if virt.IsValid() {
			if !ok || !fromRelay || len(pkt) < RelayHeaderSize || pkt[0] != RelayData ||
				binary.BigEndian.Uint64(pkt[1:9]) != id || Classify(pkt[RelayHeaderSize:]) != KindQUIC || virt != RelayAddr(id) {
				t.Fatalf("admit(%x, %s) unwrapped to %s", pkt, from, virt)
			}
		}
		if ok && !virt.IsValid() && Classify(pkt) != KindQUIC {
			t.Fatalf("admit(%x) handed a non-QUIC packet to quic-go", pkt)
		}
		if len(handed) > 1 {
			t.Fatalf("one packet handed up %d times", len(handed))
		}
	})
}
