package natlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listen opens a UDP socket on h at port (0: any) and closes it when the
// test ends.
func listen(t *testing.T, h *Host, port int) *net.UDPConn {
	t.Helper()
	c, err := h.ListenUDP(netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(port)).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// send sends msg from c to addr, failing the test on error.
func send(t *testing.T, c *net.UDPConn, addr netip.AddrPort, msg string) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort([]byte(msg), addr); err != nil {
		t.Fatalf("sending %q from %s to %s: %v", msg, c.LocalAddr(), addr, err)
	}
}

// recv waits up to wait for a datagram on c that says msg and returns
// where it came from; ok is false if none came.
func recv(t *testing.T, c *net.UDPConn, msg string, wait time.Duration) (netip.AddrPort, bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	buf := make([]byte, 1500)
	for {
		c.SetReadDeadline(deadline)
		n, from, err := c.ReadFromUDPAddrPort(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return netip.AddrPort{}, false
		}
		if err != nil {
			t.Fatalf("reading on %s: %v", c.LocalAddr(), err)
		}
		if string(buf[:n]) == msg {
			return netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), true
		}
	}
}

// portOf is c's local UDP address.
func portOf(c *net.UDPConn) uint16 { return c.LocalAddr().(*net.UDPAddr).AddrPort().Port() }

// mustRecv is recv that fails the test if nothing came within 10 s.
func mustRecv(t *testing.T, c *net.UDPConn, msg string) netip.AddrPort {
	t.Helper()
	from, ok := recv(t, c, msg, 10*time.Second)
	if !ok {
		t.Fatalf("%q did not arrive at %s within 10 s", msg, c.LocalAddr())
	}
	return from
}

// A host behind a router reaches a public host, which sees the router's
// WAN address, and the reply comes back through the NAT.
func TestReachPublic(t *testing.T) {
	t.Parallel()
	l := New(t)
	r := l.Router("rA")
	h := l.Host("hA", r)
	pub := l.Public("pub")
	hc, pc := listen(t, h, 0), listen(t, pub, 7000)
	send(t, hc, netip.AddrPortFrom(pub.Addr, 7000), "hello")
	from := mustRecv(t, pc, "hello")
	if from.Addr() != r.WAN() || h.Public() != r.WAN() {
		t.Fatalf("pub saw hA's packet from %s, want the router's WAN address %s", from, r.WAN())
	}
	send(t, pc, from, "reply")
	if back := mustRecv(t, hc, "reply"); back.Addr() != pub.Addr {
		t.Fatalf("hA got the reply from %s, want %s", back, pub.Addr)
	}
}

// A packet from the internet to a private address of some LAN vanishes:
// no ICMP error comes back (a connected UDP socket would report it as a
// read error), as on the real internet; and so does one from a host behind
// a router to another LAN's private address.
func TestPrivateAddressesVanish(t *testing.T) {
	t.Parallel()
	l := New(t)
	r := l.Router("rA")
	h, other := l.Host("hA", r), l.Host("hB", l.Router("rB"))
	pub := l.Public("pub")
	for _, from := range []*Host{pub, h} {
		var c *net.UDPConn
		err := from.Do(func() error {
			var err error
			c, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(other.Addr, 7000)))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for range 3 {
			if _, err := c.Write([]byte("anyone?")); err != nil {
				t.Fatalf("from %s, writing to %s: %v", from.Name, other.Addr, err)
			}
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		var ne net.Error
		if _, err := c.Read(make([]byte, 64)); !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("from %s, reading after writes to %s: %v, want a timeout (no answer, no ICMP error)", from.Name, other.Addr, err)
		}
	}
}

// Unsolicited packets to the router's WAN are dropped, and so is a
// packet from a second public host to a mapping made for the first (the
// filter is per flow), while the first host's reply gets through.
func TestUnsolicitedDropped(t *testing.T) {
	t.Parallel()
	l := New(t)
	r := l.Router("rA")
	h := l.Host("hA", r)
	pub, pub2 := l.Public("pub"), l.Public("pub2")
	hc := listen(t, h, 7100)
	pc, p2c := listen(t, pub, 7000), listen(t, pub2, 7000)

	// Nothing went out yet: the router drops pub's packet, whichever
	// port it aims at.
	send(t, pc, netip.AddrPortFrom(r.WAN(), 7100), "unsolicited")
	if from, ok := recv(t, hc, "unsolicited", 2*time.Second); ok {
		t.Fatalf("an unsolicited packet from %s reached hA through the router", from)
	}
	// hA talks to pub: pub's packets to the mapping come in, pub2's not.
	send(t, hc, netip.AddrPortFrom(pub.Addr, 7000), "out")
	mapped := mustRecv(t, pc, "out")
	send(t, p2c, mapped, "stranger")
	send(t, pc, mapped, "reply")
	mustRecv(t, hc, "reply")
	if from, ok := recv(t, hc, "stranger", 2*time.Second); ok {
		t.Fatalf("pub2's packet to hA's mapping for pub arrived from %s", from)
	}
	// Once the router forgets its flows, pub's packets are unsolicited
	// again.
	r.FlushConntrack()
	send(t, pc, mapped, "after the flush")
	if from, ok := recv(t, hc, "after the flush", 2*time.Second); ok {
		t.Fatalf("pub's packet to hA's mapping arrived from %s after the router flushed its flows", from)
	}
}

// mappings sends from one socket of a host behind r to three public hosts
// and returns the source port each saw, and the socket's own port.
func mappings(t *testing.T, symmetric bool) (local uint16, seen []uint16) {
	t.Helper()
	l := New(t)
	var opts []RouterOption
	if symmetric {
		opts = append(opts, Symmetric())
	}
	r := l.Router("rA", opts...)
	h := l.Host("hA", r)
	hc := listen(t, h, 7100)
	for _, name := range []string{"pub1", "pub2", "pub3"} {
		p := l.Public(name)
		pc := listen(t, p, 7000)
		send(t, hc, netip.AddrPortFrom(p.Addr, 7000), "probe")
		from := mustRecv(t, pc, "probe")
		if from.Addr() != r.WAN() {
			t.Fatalf("%s saw the probe from %s, want the WAN address %s", name, from, r.WAN())
		}
		seen = append(seen, from.Port())
	}
	return portOf(hc), seen
}

// A default router keeps the socket's port for every destination; a
// symmetric one picks a different port per destination.
func TestMappingPortPreservingAndSymmetric(t *testing.T) {
	t.Parallel()
	t.Run("port-preserving", func(t *testing.T) {
		t.Parallel()
		local, seen := mappings(t, false)
		for _, p := range seen {
			if p != local {
				t.Fatalf("a port-preserving router mapped port %d to %v for three destinations, want %d each time", local, seen, local)
			}
		}
		t.Logf("port %d seen as %v", local, seen)
	})
	t.Run("symmetric", func(t *testing.T) {
		t.Parallel()
		local, seen := mappings(t, true)
		// Random ports: three equal ones would be a 1 in 4·10⁹ chance.
		if seen[0] == seen[1] && seen[1] == seen[2] {
			t.Fatalf("a symmetric router mapped port %d to %v for three destinations, want different ports", local, seen)
		}
		t.Logf("port %d seen as %v", local, seen)
	})
}

// After Renumber, the same socket's packets come from the new address,
// and the old mapping is gone.
func TestRenumber(t *testing.T) {
	t.Parallel()
	l := New(t)
	r := l.Router("rA")
	h := l.Host("hA", r)
	pub := l.Public("pub")
	hc, pc := listen(t, h, 7100), listen(t, pub, 7000)
	dst := netip.AddrPortFrom(pub.Addr, 7000)
	send(t, hc, dst, "before")
	old := mustRecv(t, pc, "before")
	newAddr := l.Renumber(r)
	if newAddr == old.Addr() || r.WAN() != newAddr || h.Public() != newAddr {
		t.Fatalf("Renumber gave %s (WAN now %s), the old address was %s", newAddr, r.WAN(), old.Addr())
	}
	send(t, pc, old, "to the old address")
	send(t, hc, dst, "after")
	if got := mustRecv(t, pc, "after"); got.Addr() != newAddr {
		t.Fatalf("after Renumber pub sees hA at %s, want %s", got, newAddr)
	}
	if from, ok := recv(t, hc, "to the old address", 2*time.Second); ok {
		t.Fatalf("a packet to the old WAN address %s arrived from %s", old, from)
	}
}

// A router's UDP timeouts apply: with 2 s, a mapping left silent for 5 s is
// gone (pub's packet is dropped), while beside it a router with Linux's
// default (30 s) keeps its mapping.
func TestUDPTimeout(t *testing.T) {
	t.Parallel()
	l := New(t)
	short := l.Router("rA", UDPTimeouts(2*time.Second, 2*time.Second))
	long := l.Router("rB")
	watch := short.WatchExpired()
	hA, hB := l.Host("hA", short), l.Host("hB", long)
	pub := l.Public("pub")
	pc := listen(t, pub, 7000)
	dst := netip.AddrPortFrom(pub.Addr, 7000)
	var conns [2]*net.UDPConn
	var mapped [2]netip.AddrPort
	for i, h := range []*Host{hA, hB} {
		conns[i] = listen(t, h, 7100)
		send(t, conns[i], dst, "out "+h.Name)
		mapped[i] = mustRecv(t, pc, "out "+h.Name)
		send(t, pc, mapped[i], "reply")
		mustRecv(t, conns[i], "reply")
	}
	// Both routers list their flow, with the mapping on the WAN.
	for i, r := range []*Router{short, long} {
		want := Flow{Src: netip.AddrPortFrom([]*Host{hA, hB}[i].Addr, 7100), Dst: dst, ReplySrc: dst, ReplyDst: mapped[i]}
		fs, err := r.Flows()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(fs, func(f Flow) bool {
			return f.Src == want.Src && f.Dst == want.Dst && f.ReplySrc == want.ReplySrc && f.ReplyDst == want.ReplyDst && f.Packets[0] >= 1 && f.Packets[1] >= 1
		}) {
			t.Fatalf("router %s lists flows %v, want %v among them, with packets counted both ways", r.Name, fs, want)
		}
	}
	time.Sleep(5 * time.Second)
	for i := range conns {
		send(t, pc, mapped[i], "late")
	}
	if _, ok := recv(t, conns[1], "late", 5*time.Second); !ok {
		t.Fatal("with the default UDP timeout, pub's packet after 5 s of silence did not reach hB")
	}
	if from, ok := recv(t, conns[0], "late", 2*time.Second); ok {
		t.Fatalf("with a 2 s UDP timeout, pub's packet after 5 s of silence reached hA (from %s)", from)
	}
	// The watch saw hA's flow expire.
	deadline := time.Now().Add(30 * time.Second)
	for !slices.ContainsFunc(watch.Gone(), func(f Flow) bool { return f.Src == netip.AddrPortFrom(hA.Addr, 7100) && f.Dst == dst }) {
		if time.Now().After(deadline) {
			t.Fatalf("the expiry watch of rA saw %v, not hA's flow to pub", watch.Gone())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Two hosts behind one router share a LAN segment: a broadcast and a
// multicast datagram from one reach the other, and neither reaches a
// host behind another router.
func TestLANSegment(t *testing.T) {
	t.Parallel()
	l := New(t)
	r, r2 := l.Router("rA"), l.Router("rB")
	h1, h2, other := l.Host("h1", r), l.Host("h2", r), l.Host("hB", r2)
	c1 := listen(t, h1, 7100)
	if err := c1.SetWriteBuffer(1 << 16); err != nil {
		t.Fatal(err)
	}
	raw, err := c1.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1) }); err != nil || serr != nil {
		t.Fatalf("SO_BROADCAST: %v %v", err, serr)
	}
	c2, cOther := listen(t, h2, 7200), listen(t, other, 7200)
	send(t, c1, netip.MustParseAddrPort("255.255.255.255:7200"), "broadcast")
	if from := mustRecv(t, c2, "broadcast"); from.Addr() != h1.Addr {
		t.Fatalf("the broadcast came from %s, want %s", from, h1.Addr)
	}
	if _, ok := recv(t, cOther, "broadcast", time.Second); ok {
		t.Fatal("a LAN broadcast crossed the router")
	}

	group := netip.MustParseAddrPort("239.255.77.1:7300")
	var m2 *net.UDPConn
	if err := h2.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		m2, err = net.ListenMulticastUDP("udp4", ifi, net.UDPAddrFromAddrPort(group))
		return err
	}); err != nil {
		t.Fatalf("joining %s on h2: %v", group, err)
	}
	t.Cleanup(func() { m2.Close() })
	send(t, c1, group, "multicast")
	if from := mustRecv(t, m2, "multicast"); from.Addr() != h1.Addr {
		t.Fatalf("the multicast came from %s, want %s", from, h1.Addr)
	}
}

// Cleanup deletes the lab's namespaces and kills what runs in them.
func TestCleanup(t *testing.T) {
	t.Parallel()
	var ns []string
	var pid int
	t.Run("lab", func(t *testing.T) {
		l := New(t)
		h := l.Host("hA", l.Router("rA"))
		ns = []string{l.inet, h.NS, h.Router.NS}
		cmd := h.Command(context.Background(), "sleep", "600")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid = cmd.Process.Pid
		go cmd.Wait()
	})
	for _, n := range ns {
		if _, err := os.Stat("/run/netns/" + n); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s is still there after the test: %v", n, err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for unix.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("process %d in the lab still runs", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The namespaces of a lab whose test process died are removed by the next
// lab's checks; those of a live process are not.
func TestStaleLabsRemoved(t *testing.T) {
	Require(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := fmt.Sprintf("kl%d-1-inet", dead.Process.Pid)
	live := fmt.Sprintf("kl%d-999-inet", os.Getpid())
	for _, ns := range []string{stale, live} {
		if out, err := run(ipPath, "netns", "add", ns); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
		}
	}
	t.Cleanup(func() { run(ipPath, "netns", "del", live) })
	removeStale()
	if _, err := os.Stat("/run/netns/" + stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dead process's namespace %s is still there: %v", stale, err)
	}
	if _, err := os.Stat("/run/netns/" + live); err != nil {
		t.Errorf("this process's namespace %s was removed: %v", live, err)
	}
}

// A router with PortMapping grants a NAT-PMP mapping (RFC 6886) of a UDP
// port to its LAN host, on its WAN address: a public host's unsolicited
// packets to the mapped port then reach the host, through a symmetric
// router too, while other ports stay closed.
func TestPortMapping(t *testing.T) {
	t.Parallel()
	l := New(t)
	r := l.Router("rA", Symmetric(), PortMapping())
	h := l.Host("hA", r)
	pub := l.Public("pub")
	if !mappable.Contains(r.WAN()) {
		t.Fatalf("a router with port mapping has WAN address %s, want one in %s", r.WAN(), mappable)
	}
	hc, pc := listen(t, h, 7100), listen(t, pub, 7000)
	ask := listen(t, h, 0)
	// Request: version 0, opcode 1 (map UDP), reserved, internal port,
	// suggested external port, lifetime in seconds.
	req := []byte{0, 1, 0, 0, 7100 >> 8, 7100 & 0xff, 7100 >> 8, 7100 & 0xff, 0, 0, 0x0e, 0x10}
	gw := netip.AddrPortFrom(r.LAN.Addr().Next(), 5351)
	var ext uint16
	deadline := time.Now().Add(30 * time.Second) // miniupnpd is starting
	for ext == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no NAT-PMP answer from the router within 30 s")
		}
		if _, err := ask.WriteToUDPAddrPort(req, gw); err != nil {
			t.Fatal(err)
		}
		ask.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		buf := make([]byte, 64)
		n, _, err := ask.ReadFromUDPAddrPort(buf)
		if err != nil {
			continue
		}
		// Answer: version, opcode 129, result, epoch, internal port,
		// mapped external port, lifetime.
		if n != 16 || buf[1] != 129 {
			t.Fatalf("NAT-PMP answer % x", buf[:n])
		}
		if res := uint16(buf[2])<<8 | uint16(buf[3]); res != 0 {
			t.Fatalf("NAT-PMP refused the mapping: result code %d", res)
		}
		ext = uint16(buf[10])<<8 | uint16(buf[11])
	}
	send(t, pc, netip.AddrPortFrom(r.WAN(), ext), "through the mapping")
	if from := mustRecv(t, hc, "through the mapping"); from.Addr() != pub.Addr {
		t.Fatalf("the mapped packet came from %s, want %s", from, pub.Addr)
	}
	other := listen(t, h, 7200) // listening, not mapped
	send(t, pc, netip.AddrPortFrom(r.WAN(), 7200), "not mapped")
	if _, ok := recv(t, other, "not mapped", 2*time.Second); ok {
		t.Fatal("a packet to an unmapped port got in")
	}
	t.Logf("port mapping: 10.0.1.2:7100 mapped at %s:%d", r.WAN(), ext)
}
