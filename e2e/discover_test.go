package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/kithtest"
)

type discovered struct {
	DeviceID string `json:"device_id"`
	UserID   string `json:"user_id"`
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Addr     string `json:"addr"`
}

func portOf(t testing.TB, addr string) string {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(int(ap.Port()))
}

// Two friends paired on loopback, then both restarted on new ports of
// 0.0.0.0, so that neither knows where the other is: "kith discover"
// finds the other over a broadcast beacon, and status shows the LAN path.
// (Each agent listens on its own port, so --beacon-port, a testing flag,
// sends its beacons to the other's; on a real LAN both use 7117.)
func TestDiscoverFindsFriendWithNoKnownAddress(t *testing.T) {
	hb := []string{"--heartbeat", "200ms", "--portmap", "off"}
	alice := newPerson(t, "alice", "127.0.0.2", hb...)
	bob := newPerson(t, "bob", "127.0.0.3", hb...)
	pair(t, alice, bob)
	for _, p := range []*person{alice, bob} {
		if err := p.agent.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	aAddr, bAddr := kithtest.FreeAddr(t, "0.0.0.0"), kithtest.FreeAddr(t, "0.0.0.0")
	alice.agent = alice.Start(aAddr, append(hb, "--beacon-port", portOf(t, bAddr))...)
	bob.agent = bob.Start(bAddr, append(hb, "--beacon-port", portOf(t, aAddr))...)

	var found []discovered
	kithtest.Eventually(t, time.Minute, "alice discovers bob", func() error {
		found = nil
		alice.JSON(&found, "", "discover")
		for _, d := range found {
			if d.DeviceID == bob.id.DeviceID {
				return nil
			}
		}
		return fmt.Errorf("discover found %+v", found)
	})
	d := found[0]
	if d.UserID != bob.id.UserID || d.Name != "bob" || d.Kind != "friend" || portOf(t, d.Addr) != portOf(t, bAddr) {
		t.Fatalf("discovered %+v, bob listens on %s", d, bAddr)
	}
	waitPeer(t, alice, bob.id.DeviceID, time.Minute, "bob on the LAN path", func(ps control.PeerStatus) bool { return ps.Online && ps.Path == "lan" })
	waitPeer(t, bob, alice.id.DeviceID, time.Minute, "alice on the LAN path", func(ps control.PeerStatus) bool { return ps.Online && ps.Path == "lan" })
	res := alice.Run("", "discover")
	if res.Code != 0 || !strings.Contains(res.Stdout, "bob") || !strings.Contains(res.Stdout, "friend") {
		t.Fatalf("discover as text: %s", res)
	}
	for _, line := range strings.Split(res.Stdout, "\n") {
		if len([]rune(line)) > 80 {
			t.Errorf("%d columns: %q", len([]rune(line)), line)
		}
	}
}

// Two own devices that never met (the second restored from the phrase of
// the first, as device 1), each on a port of 0.0.0.0, neither knowing the
// other: "kith discover" on the first finds the second as an own device,
// and both show the other online on the LAN path.
func TestDiscoverFindsRestoredOwnDevice(t *testing.T) {
	hb := []string{"--heartbeat", "200ms", "--portmap", "off"}
	laptop := &person{Device: kithtest.NewDevice(t)}
	laptop.id = initDevice(t, laptop.Device)
	phone := &person{Device: kithtest.NewDevice(t)}
	phone.id = restoreDevice(t, phone.Device, laptop.id.Mnemonic, 1)
	if phone.id.UserID != laptop.id.UserID || phone.id.DeviceID == laptop.id.DeviceID {
		t.Fatalf("restored %+v from %+v", phone.id, laptop.id)
	}
	lAddr, pAddr := kithtest.FreeAddr(t, "0.0.0.0"), kithtest.FreeAddr(t, "0.0.0.0")
	laptop.agent = laptop.Start(lAddr, append(hb, "--beacon-port", portOf(t, pAddr))...)
	phone.agent = phone.Start(pAddr, append(hb, "--beacon-port", portOf(t, lAddr))...)

	kithtest.Eventually(t, time.Minute, "the laptop discovers the phone", func() error {
		var found []discovered
		laptop.JSON(&found, "", "discover")
		for _, d := range found {
			if d.DeviceID == phone.id.DeviceID {
				if d.Kind != "own" || d.UserID != laptop.id.UserID || portOf(t, d.Addr) != portOf(t, pAddr) {
					t.Fatalf("discovered %+v, the phone listens on %s", d, pAddr)
				}
				return nil
			}
		}
		return fmt.Errorf("discover found %+v", found)
	})
	own := func(ps control.PeerStatus) bool { return ps.Online && ps.Path == "lan" && ps.Kind == "own" }
	waitPeer(t, laptop, phone.id.DeviceID, time.Minute, "the phone, own, on the LAN path", own)
	waitPeer(t, phone, laptop.id.DeviceID, time.Minute, "the laptop, own, on the LAN path", own)
}

// What a stranger on the LAN hears: a socket of the test's own on
// 0.0.0.0 collects the beacons of an agent across three restarts. Every
// beacon is 73 bytes of type 0x20, no two are alike, and none holds the
// device's ID or any four bytes of it, nor shares a run of four bytes with
// another beacon.
func TestBeaconsUnlinkableAcrossRestarts(t *testing.T) {
	ear, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		t.Fatal(err)
	}
	defer ear.Close()
	earPort := strconv.Itoa(ear.LocalAddr().(*net.UDPAddr).Port)
	alice := newPerson(t, "alice", "127.0.0.2", "--portmap", "off")
	var beacons [][]byte
	for range 3 {
		if err := alice.agent.Stop(); err != nil {
			t.Fatal(err)
		}
		alice.agent = alice.Start(kithtest.FreeAddr(t, "0.0.0.0"), "--portmap", "off", "--beacon-port", earPort)
		alice.JSON(&[]discovered{}, "", "discover") // a round now, besides the one at start
		got := 0
		ear.SetReadDeadline(time.Now().Add(30 * time.Second))
		for got < 2 {
			b := make([]byte, 128)
			n, _, err := ear.ReadFromUDP(b)
			if err != nil {
				t.Fatalf("after %d beacons of this run: %v", got, err)
			}
			if n != 73 || b[0] != 0x20 {
				t.Fatalf("a beacon of %d bytes: % x", n, b[:n])
			}
			beacons = append(beacons, b[:n])
			got++
		}
	}
	id := alice.id.DeviceID
	for i, b := range beacons {
		if strings.Contains(string(b), id) {
			t.Fatal("a beacon holds the device ID")
		}
		for j := range i {
			if string(b) == string(beacons[j]) {
				t.Fatalf("beacons %d and %d are equal", i, j)
			}
			for k := 1; k+4 <= len(b); k++ {
				if strings.Contains(string(beacons[j][1:]), string(b[k:k+4])) {
					t.Errorf("beacons %d and %d share the bytes % x", j, i, b[k:k+4])
				}
			}
		}
	}
	t.Logf("%d beacons from 3 runs, none alike", len(beacons))
}

// With no friends the answer is an empty list (JSON) or a sentence; with
// no agent, exit status 1 and a hint.
func TestDiscoverShapes(t *testing.T) {
	d := kithtest.NewDevice(t)
	d.JSON(&identity{}, "", "init", "--name", "lonely")
	res := d.Run("", "discover")
	if res.Code != 1 || !strings.Contains(res.Stderr, "agent") {
		t.Fatalf("discover with no agent: %s", res)
	}
	d.Start(kithtest.FreeAddr(t, "127.0.0.2"))
	res = d.Run("", "--json", "discover")
	if res.Code != 0 || strings.TrimSpace(res.Stdout) != "[]" {
		t.Fatalf("discover with nobody around: %s", res)
	}
	res = d.Run("", "discover")
	if res.Code != 0 || !strings.Contains(res.Stdout, "No own device or friend answered") {
		t.Fatalf("discover as text: %s", res)
	}
}
