package lab

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/kithtest"
	"github.com/kith-project/kith/internal/natlab"
	"github.com/kith-project/kith/seed"
)

// beaconRecorder is a stranger's socket on a LAN segment that keeps every
// LAN beacon (datagram type 0x20) broadcast to labPort, with its source.
type beaconRecorder struct {
	c    *net.UDPConn
	done chan struct{}
	mu   sync.Mutex
	got  []recorded
}

type recorded struct {
	from netip.AddrPort
	data []byte
}

func recordBeacons(t *testing.T, h *natlab.Host) *beaconRecorder {
	t.Helper()
	c, err := h.ListenUDP(fmt.Sprintf("0.0.0.0:%d", labPort))
	if err != nil {
		t.Fatal(err)
	}
	r := &beaconRecorder{c: c, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if n > 0 && buf[0] == 0x20 {
				r.mu.Lock()
				r.got = append(r.got, recorded{from: netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), data: bytes.Clone(buf[:n])})
				r.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-r.done
	})
	return r
}

// from returns the beacons recorded so far from addr.
func (r *beaconRecorder) from(addr netip.AddrPort) [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]byte
	for _, b := range r.got {
		if b.from == addr {
			out = append(out, b.data)
		}
	}
	return out
}

// waitBeacons waits until r holds more than n beacons from addr.
func (r *beaconRecorder) waitBeacons(t *testing.T, addr netip.AddrPort, n int) [][]byte {
	t.Helper()
	var bs [][]byte
	kithtest.Eventually(t, time.Minute, fmt.Sprintf("more than %d beacons from %s", n, addr), func() error {
		if bs = r.from(addr); len(bs) > n {
			return nil
		}
		return fmt.Errorf("%d so far", len(bs))
	})
	return bs
}

// commonRun is the length of the longest run of bytes x and y share, at
// any offsets, after their first byte (the datagram type).
func commonRun(x, y []byte) int {
	x, y = x[1:], y[1:]
	best := 0
	for i := range x {
		for j := range y {
			k := 0
			for i+k < len(x) && j+k < len(y) && x[i+k] == y[j+k] {
				k++
			}
			best = max(best, k)
		}
	}
	return best
}

// linkable is the longest run two beacons of a stranger's recording may
// share: 8 random bytes in common would be a 1 in 2⁶⁴ chance per place.
const linkable = 8

// LAN discovery: a laptop and a phone, own devices, paired in a café and
// then both at home on one LAN segment, where neither's stored address
// (the café's) answers. They find each other by LAN beacons, on the lan
// path at their home addresses, and "kith discover" lists the other. A
// stranger on the same segment records the beacons: none carries the
// laptop's device or user ID, and no two of them, before and after the
// laptop's agent restarts, share a run of 8 bytes, so that the stranger
// cannot link them. The stranger's own agent recognises nobody.
func TestNATLabLANDiscovery(t *testing.T) {
	natlab.Require(t)
	t.Parallel()
	lab := natlab.New(t)
	cafe, home := lab.Router("cafe"), lab.Router("home")
	laptop := labPerson(t, lab.Host("cA", cafe), "laptop")
	d := kithtest.NewDevice(t)
	var pid identity
	d.JSON(&pid, laptop.id.Mnemonic, "restore", "--device", "1", "--name", "phone")
	d.Prefix = lab.Host("cB", cafe).Prefix()
	phone := &person{Device: d, id: pid}
	phone.agent = d.Start(fmt.Sprintf("0.0.0.0:%d", labPort), "--heartbeat", labT.String())
	pairInOrder(t, laptop, phone)

	h1, h2, hR, hS := lab.Host("h1", home), lab.Host("h2", home), lab.Host("hR", home), lab.Host("hS", home)
	rec := recordBeacons(t, hR)
	stranger := labPerson(t, hS, "stranger")
	laptop.moveTo(t, h1)
	moved := time.Now()
	phone.moveTo(t, h2)
	at1, at2 := netip.AddrPortFrom(h1.Addr, labPort), netip.AddrPortFrom(h2.Addr, labPort)
	for _, c := range []struct {
		p, other *person
		addr     netip.AddrPort
	}{{laptop, phone, at2}, {phone, laptop, at1}} {
		waitPeer(t, c.p, c.other.id.DeviceID, time.Minute, c.other.id.Name+" on the LAN at "+c.addr.String(), func(ps control.PeerStatus) bool {
			return ps.Online && ps.Path == "lan" && ps.Addr == c.addr.String()
		})
		t.Logf("lan: %s finds %s %.2fs after the phone's agent was started (its start included)", c.p.id.Name, c.other.id.Name, time.Since(moved).Seconds())
	}
	// kith discover lists the phone. An agent answers one device's
	// beacons at most every 2 s, so the first try may come too soon after
	// the beacons that found them.
	var found []control.Discovered
	kithtest.Eventually(t, time.Minute, "kith discover on the laptop lists the phone at "+at2.String(), func() error {
		laptop.JSON(&found, "", "discover")
		for _, f := range found {
			if f.DeviceID.String() == phone.id.DeviceID && f.Addr == at2.String() {
				return nil
			}
		}
		return fmt.Errorf("it lists %+v", found)
	})

	// What the stranger saw.
	before := rec.waitBeacons(t, at1, 0)
	laptop.moveTo(t, h1) // a restart, at the same place
	laptop.JSON(&found, "", "discover")
	after := rec.waitBeacons(t, at1, len(before))[len(before):]
	dev, err := seed.ParseDevicePublic(laptop.id.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	user, err := seed.ParseUserPublic(laptop.id.UserID)
	if err != nil {
		t.Fatal(err)
	}
	all := append(append([][]byte(nil), before...), after...)
	for i, b := range all {
		if bytes.Contains(b, dev[:linkable]) || bytes.Contains(b, user[:linkable]) {
			t.Fatalf("beacon %d (% x) carries the laptop's device or user ID", i, b)
		}
	}
	longest := 0
	for _, x := range before {
		for _, y := range after {
			longest = max(longest, commonRun(x, y))
		}
	}
	if longest >= linkable {
		t.Fatalf("a beacon before the restart and one after share %d bytes", longest)
	}
	t.Logf("lan: the stranger recorded %d beacons before the laptop's restart and %d after; the longest run any two share is %d bytes", len(before), len(after), longest)
	if st := quickStatus(t, stranger); len(st.Peers) != 0 {
		t.Fatalf("the stranger's agent lists peers: %+v", st.Peers)
	}
}

// The NAT type each device sees, as kith netcheck and kith status report
// it, behind a port-preserving router, behind a symmetric one, and on the
// internet: each host is paired with two public friends, whose reports of
// its address it compares.
func TestNATLabNetcheckNATType(t *testing.T) {
	natlab.Require(t)
	t.Parallel()
	lab := natlab.New(t)
	p1, p2 := labPerson(t, lab.Public("pub1"), "pub1"), labPerson(t, lab.Public("pub2"), "pub2")
	easy := labPerson(t, lab.Host("hE", lab.Router("rE")), "easy")
	hard := labPerson(t, lab.Host("hH", lab.Router("rH", natlab.Symmetric())), "hard")
	for _, p := range []*person{easy, hard, p2} {
		pairInOrder(t, p, p1)
	}
	for _, p := range []*person{easy, hard} {
		pairInOrder(t, p, p2)
	}
	for _, c := range []struct {
		p    *person
		want string
	}{{easy, "easy"}, {hard, "hard"}, {p1, "none"}} {
		var nc control.Netcheck
		kithtest.Eventually(t, time.Minute, c.p.id.Name+"'s NAT type "+c.want, func() error {
			c.p.JSON(&nc, "", "netcheck")
			if nc.NATType != c.want {
				return fmt.Errorf("netcheck says %q; candidates %+v", nc.NATType, nc.Candidates)
			}
			if st := quickStatus(t, c.p); st.NAT != c.want {
				return fmt.Errorf("status says %q", st.NAT)
			}
			return nil
		})
		t.Logf("netcheck: %s sees NAT type %s", c.p.id.Name, nc.NATType)
	}
}
