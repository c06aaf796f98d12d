package memnet

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// A packet to a LAN's broadcast address reaches every Conn of the LAN at
// that port, the sender's included, and no other.
func TestBroadcast(t *testing.T) {
	n := New(Options{})
	lan := netip.MustParsePrefix("10.1.0.0/24")
	if err := n.AddLAN(lan); err != nil {
		t.Fatal(err)
	}
	if err := n.AddLAN(netip.MustParsePrefix("10.2.0.1/32")); err == nil {
		t.Fatal("a /32 was taken as a LAN")
	}
	listen := func(s string) *Conn {
		c, err := n.Listen(netip.MustParseAddrPort(s))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := listen("10.1.0.1:7117"), listen("10.1.0.2:7117")
	otherPort, outside := listen("10.1.0.3:7000"), listen("10.9.0.1:7117")
	if got := Broadcast(lan); got != netip.MustParseAddr("10.1.0.255") {
		t.Fatalf("Broadcast = %s", got)
	}
	if _, err := a.WriteTo([]byte("hi"), net.UDPAddrFromAddrPort(netip.MustParseAddrPort("10.1.0.255:7117"))); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Conn{a, b} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 8)
		k, from, err := c.ReadFrom(buf)
		if err != nil || string(buf[:k]) != "hi" || from.String() != "10.1.0.1:7117" {
			t.Fatalf("%s: %q from %v, %v", c.Addr(), buf[:k], from, err)
		}
	}
	for _, c := range []*Conn{otherPort, outside} {
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, _, err := c.ReadFrom(make([]byte, 8)); err == nil {
			t.Fatalf("%s got the broadcast", c.Addr())
		}
	}
}
