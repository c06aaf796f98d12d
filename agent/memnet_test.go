package agent

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/kith-project/kith/cluster/presence"
	"github.com/kith-project/kith/internal/memnet"
	"github.com/kith-project/kith/seed"
)

// startOnMemnet starts an agent whose socket is on the in-memory network.
func startOnMemnet(t *testing.T, n *memnet.Network, addr netip.AddrPort, name string, hb time.Duration) (*testAgent, *memnet.Conn) {
	t.Helper()
	pc, err := n.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return startWith(t, Config{PacketConn: pc, Heartbeat: hb}, newPhrase(t), 0, name), pc
}

// awaitEvents reads events until want (device → event kind and address
// check) is empty, or fails after a generous deadline.
func awaitEvents(t *testing.T, name string, events <-chan presence.Event, want map[seed.DevicePublic]func(presence.Event) bool) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for len(want) > 0 {
		select {
		case ev := <-events:
			if ok := want[ev.Device]; ok != nil && ok(ev) {
				delete(want, ev.Device)
			}
		case <-deadline:
			t.Fatalf("%s: %d devices never gave the expected event", name, len(want))
		}
	}
}

// Twenty agents in one process, on the in-memory network: each pairs with
// its neighbours in a ring, sees them online, and follows the one that
// moves to a new address. Every agent runs the real stack (QUIC, mutual
// TLS, pairing, presence, bbolt) over memnet instead of UDP.
func TestTwentyAgentsOnMemnet(t *testing.T) {
	const n = 20
	hb := 200 * time.Millisecond
	net := memnet.New(memnet.Options{Seed: 7})
	t.Cleanup(func() { net.Close() })
	agents := make([]*testAgent, n)
	conns := make([]*memnet.Conn, n)
	subs := make([]<-chan presence.Event, n)
	for i := range agents {
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 1, 0, byte(i + 1)}), 7117)
		agents[i], conns[i] = startOnMemnet(t, net, addr, fmt.Sprintf("node%02d", i), hb)
		ch, cancel := agents[i].Subscribe(256)
		t.Cleanup(cancel)
		subs[i] = ch
	}
	for i := range agents {
		pairAgents(t, agents[i], agents[(i+1)%n])
	}
	online := func(ev presence.Event) bool { return ev.Kind == presence.PeerOnline }
	for i, a := range agents {
		left, right := agents[(i+n-1)%n], agents[(i+1)%n]
		awaitEvents(t, a.dev.Identity.Name, subs[i], map[seed.DevicePublic]func(presence.Event) bool{
			left.dev.Cert.Device: online, right.dev.Cert.Device: online,
		})
	}
	for i, a := range agents {
		on := a.onlineSet()
		for _, nb := range []*testAgent{agents[(i+n-1)%n], agents[(i+1)%n]} {
			if !on[nb.dev.Cert.Device] {
				t.Errorf("%s does not list its neighbour %s online", a.dev.Identity.Name, nb.dev.Identity.Name)
			}
		}
	}

	// node00 moves: its socket now sends and receives at a new address.
	moved := netip.MustParseAddrPort("127.1.9.9:7117")
	if err := conns[0].Rebind(moved); err != nil {
		t.Fatal(err)
	}
	to := func(ev presence.Event) bool { return ev.Kind == presence.PeerMoved && ev.Addr == moved }
	for _, i := range []int{1, n - 1} {
		awaitEvents(t, agents[i].dev.Identity.Name, subs[i], map[seed.DevicePublic]func(presence.Event) bool{agents[0].dev.Cert.Device: to})
		if p, ok := agents[i].book.peerFor(agents[0].dev.Cert.Device); !ok || p.Addr != moved.String() {
			t.Errorf("%s keeps node00 at %+v, want %s", agents[i].dev.Identity.Name, p, moved)
		}
	}
	if st := net.Stats(); st.Delivered == 0 {
		t.Fatalf("nothing went over the in-memory network: %+v", st)
	}
}
