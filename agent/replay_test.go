package agent

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/memnet"
)

// tapConn records the kith datagrams its agent writes to one address.
type tapConn struct {
	net.PacketConn
	to netip.AddrPort

	mu  sync.Mutex
	got [][]byte
}

func (c *tapConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if ua, ok := addr.(*net.UDPAddr); ok && len(b) > 0 && b[0] >= 0x04 && b[0] < 0x40 {
		if ap := ua.AddrPort(); netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) == c.to {
			c.mu.Lock()
			c.got = append(c.got, append([]byte(nil), b...))
			c.mu.Unlock()
		}
	}
	return c.PacketConn.WriteTo(b, addr)
}

func (c *tapConn) captured() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.got...)
}

// Bob's heartbeats, captured on their way to alice, replayed to her after
// she restarted, while bob is down and well within the 2-minute clock
// window, move him nowhere, show him nowhere, and persist nothing.
func TestCapturedHeartbeatsRefusedAfterRestart(t *testing.T) {
	mn := memnet.New(memnet.Options{Seed: 9})
	t.Cleanup(func() { mn.Close() })
	hb := 100 * time.Millisecond
	aliceAt, bobAt := netip.MustParseAddrPort("127.1.0.1:7117"), netip.MustParseAddrPort("127.1.0.2:7117")

	alice, apc0 := startOnMemnet(t, mn, aliceAt, "alice", hb)
	bpc, err := mn.Listen(bobAt)
	if err != nil {
		t.Fatal(err)
	}
	tap := &tapConn{PacketConn: bpc, to: aliceAt}
	bob := startWith(t, Config{PacketConn: tap, Heartbeat: hb}, newPhrase(t), 0, "bob")

	pairAgents(t, alice, bob)
	waitFor(t, "bob online", func() bool { return alice.onlineSet()[bob.dev.Cert.Device] })
	waitFor(t, "eleven captured", func() bool { return len(tap.captured()) >= 11 })
	bob.stop()
	bob.Close()
	bpc.Close()
	captured := tap.captured()

	// Alice restarts on her store.
	alice.stop()
	alice.Close()
	apc0.Close() // the agent does not close a socket it was given
	apc, err := mn.Listen(aliceAt)
	if err != nil {
		t.Fatal(err)
	}
	a2 := restart(t, alice, Config{PacketConn: apc, Heartbeat: hb})
	defer a2.Close()

	attacker, err := mn.Listen(netip.MustParseAddrPort("127.1.0.66:9999"))
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	before := a2.presence.Stats()
	for _, pkt := range captured {
		if _, err := attacker.WriteTo(pkt, net.UDPAddrFromAddrPort(aliceAt)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the replays handled", func() bool {
		s := a2.presence.Stats()
		return s.Unsynced+s.Replayed+s.Unsolicited+s.Throttled-before.Unsynced-before.Replayed-before.Unsolicited-before.Throttled >= uint64(len(captured))
	})
	if s := a2.presence.Stats(); s.Accepted != before.Accepted {
		t.Errorf("%d replays accepted: %+v", s.Accepted-before.Accepted, s)
	}
	if a2.onlineSet()[bob.dev.Cert.Device] {
		t.Error("replays show bob online")
	}
	if p, _ := a2.book.peerFor(bob.dev.Cert.Device); p.Addr != bobAt.String() {
		t.Errorf("replays moved bob to %s", p.Addr)
	}
}
