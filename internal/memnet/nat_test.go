package memnet

import (
	"net/netip"
	"sync"
	"testing"
	"time"
)

// natClock is a clock the test moves.
type natClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *natClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *natClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var (
	pubA   = netip.MustParseAddr("198.51.100.1")
	pubB   = netip.MustParseAddr("198.51.100.2")
	server = netip.MustParseAddrPort("203.0.113.7:3478")
	other  = netip.MustParseAddrPort("203.0.113.8:3478")
	homeA  = netip.MustParsePrefix("10.0.1.0/24")
	homeB  = netip.MustParsePrefix("10.0.2.0/24")
)

func natNet(t *testing.T, mapping Mapping) (*Network, *NAT, *natClock) {
	t.Helper()
	n := New(Options{})
	t.Cleanup(func() { n.Close() })
	clk := &natClock{t: time.Unix(1_700_000_000, 0)}
	nat, err := n.AddNAT(NATConfig{Public: pubA, Inside: homeA, Mapping: mapping, Timeout: 30 * time.Second, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	return n, nat, clk
}

// poll returns the next queued packet's payload and source, or "" if
// none is queued (without latency, delivery happens within WriteTo).
func poll(t *testing.T, c *Conn) (string, netip.AddrPort) {
	t.Helper()
	if len(c.in) == 0 {
		return "", netip.AddrPort{}
	}
	return recv(t, c)
}

func TestNATPortPreservingMapsAndFilters(t *testing.T) {
	n, nat, _ := natNet(t, EndpointIndependent)
	h := listen(t, n, "10.0.1.2:7117")
	s := listen(t, n, server.String())
	o := listen(t, n, other.String())

	send(t, h, server, "hi")
	msg, from := poll(t, s)
	want := netip.AddrPortFrom(pubA, 7117)
	if msg != "hi" || from != want {
		t.Fatalf("server got %q from %s, want hi from %s (port preserved)", msg, from, want)
	}
	// The answer comes back in.
	send(t, s, want, "back")
	if msg, from := poll(t, h); msg != "back" || from != server {
		t.Fatalf("host got %q from %s, want back from %s", msg, from, server)
	}
	// Another remote the host never sent to is filtered, even to the
	// same mapping.
	send(t, o, want, "unsolicited")
	if msg, _ := poll(t, h); msg != "" {
		t.Fatalf("filtered packet delivered: %q", msg)
	}
	// Once the host sends there, the same public port is used.
	send(t, h, other, "x")
	if _, from := poll(t, o); from != want {
		t.Fatalf("endpoint independent mapping gave %s toward another remote, want %s", from, want)
	}
	send(t, o, want, "now")
	if msg, _ := poll(t, h); msg != "now" {
		t.Fatalf("after sending there the remote is let in; got %q", msg)
	}
	// The inside address is not reachable from outside.
	send(t, s, netip.MustParseAddrPort("10.0.1.2:7117"), "direct")
	if msg, _ := poll(t, h); msg != "" {
		t.Fatal("inside address reached from outside")
	}
	if st := nat.Stats(); st.Filtered != 1 || st.Mappings != 1 {
		t.Fatalf("stats %+v, want 1 filtered, 1 mapping", st)
	}
}

func TestNATSymmetricNewPortPerDestination(t *testing.T) {
	n, nat, _ := natNet(t, EndpointDependent)
	h := listen(t, n, "10.0.1.2:7117")
	s := listen(t, n, server.String())
	o := listen(t, n, other.String())
	send(t, h, server, "a")
	send(t, h, other, "b")
	_, f1 := poll(t, s)
	_, f2 := poll(t, o)
	if f1.Addr() != pubA || f2.Addr() != pubA || f1.Port() == f2.Port() {
		t.Fatalf("symmetric NAT mapped to %s and %s, want two ports of %s", f1, f2, pubA)
	}
	// The second remote cannot use the first remote's mapping.
	send(t, o, f1, "c")
	if msg, _ := poll(t, h); msg != "" {
		t.Fatal("symmetric NAT let another remote into a mapping")
	}
	send(t, o, f2, "d")
	if msg, _ := poll(t, h); msg != "d" {
		t.Fatalf("own mapping's remote refused, got %q", msg)
	}
	if nat.MappingCount() != 2 {
		t.Fatalf("%d mappings, want 2", nat.MappingCount())
	}
}

func TestNATTimeoutCountsOnlyPacketsOut(t *testing.T) {
	n, nat, clk := natNet(t, EndpointIndependent)
	h := listen(t, n, "10.0.1.2:7117")
	s := listen(t, n, server.String())
	pub := netip.AddrPortFrom(pubA, 7117)
	send(t, h, server, "open")
	poll(t, s)
	// Inbound packets every 20 s do not keep it open.
	for range 2 {
		clk.advance(20 * time.Second)
		send(t, s, pub, "in")
	}
	if msg, _ := poll(t, h); msg != "in" {
		t.Fatalf("first inbound packet (20 s after the last out) was dropped: %q", msg)
	}
	if msg, _ := poll(t, h); msg != "" {
		t.Fatal("a mapping unused outbound for 40 s (timeout 30 s) still let a packet in")
	}
	if nat.MappingCount() != 0 || nat.Stats().Expired != 1 {
		t.Fatalf("mappings %d stats %+v, want expired", nat.MappingCount(), nat.Stats())
	}
	// Packets out every 20 s keep it open indefinitely.
	send(t, h, server, "open")
	poll(t, s)
	for range 5 {
		clk.advance(20 * time.Second)
		send(t, h, server, "keepalive")
		poll(t, s)
	}
	send(t, s, pub, "still")
	if msg, _ := poll(t, h); msg != "still" {
		t.Fatalf("refreshed mapping dropped a packet: %q", msg)
	}
}

func TestNATRenumberLosesMappings(t *testing.T) {
	n, nat, _ := natNet(t, EndpointIndependent)
	h := listen(t, n, "10.0.1.2:7117")
	s := listen(t, n, server.String())
	send(t, h, server, "a")
	poll(t, s)
	nat.Renumber(pubB)
	send(t, s, netip.AddrPortFrom(pubA, 7117), "old")
	if msg, _ := poll(t, h); msg != "" {
		t.Fatal("old public address still reaches the host")
	}
	send(t, s, netip.AddrPortFrom(pubB, 7117), "new, unsolicited")
	if msg, _ := poll(t, h); msg != "" {
		t.Fatal("renumbering kept a mapping")
	}
	send(t, h, server, "b")
	if _, from := poll(t, s); from != netip.AddrPortFrom(pubB, 7117) {
		t.Fatalf("after renumbering the host is seen at %s, want %s:7117", from, pubB)
	}
}

// Two hosts behind two port-preserving NATs open a path by sending to
// each other at once: the hole punching the agents do.
func TestNATSimultaneousOpen(t *testing.T) {
	n := New(Options{})
	t.Cleanup(func() { n.Close() })
	for _, c := range []NATConfig{{Public: pubA, Inside: homeA}, {Public: pubB, Inside: homeB}} {
		if _, err := n.AddNAT(c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n.AddNAT(NATConfig{Public: pubA, Inside: netip.MustParsePrefix("10.9.0.0/16")}); err == nil {
		t.Fatal("a second NAT on the same public address was added")
	}
	a := listen(t, n, "10.0.1.2:7117")
	b := listen(t, n, "10.0.2.2:7117")
	pa, pb := netip.AddrPortFrom(pubA, 7117), netip.AddrPortFrom(pubB, 7117)
	send(t, a, pb, "first") // opens A's NAT, dropped by B's
	if msg, _ := poll(t, b); msg != "" {
		t.Fatal("unsolicited packet crossed B's NAT")
	}
	send(t, b, pa, "second") // opens B's NAT, and A's is open
	if msg, from := poll(t, a); msg != "second" || from != pb {
		t.Fatalf("A got %q from %s", msg, from)
	}
	send(t, a, pb, "third")
	if msg, from := poll(t, b); msg != "third" || from != pa {
		t.Fatalf("B got %q from %s", msg, from)
	}
	if st := n.Stats(); st.Filtered != 1 {
		t.Fatalf("network stats %+v, want one filtered", st)
	}
}
