package agent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/pairing"
	"github.com/kith-project/kith/seed"
)

// natConn is the socket of a device behind a NAT that lets no connection in:
// QUIC long-header packets (handshakes) reach it only when addressed to a
// connection ID it chose itself, that is, only for connections it dialed.
// It also reports a LAN address (lan) that nobody outside can reach, as the
// device's own address, which its invites then carry.
type natConn struct {
	net.PacketConn
	lan net.Addr

	mu    sync.Mutex
	ours  map[string]bool // source connection IDs of our handshakes
	drops int
}

func newNATConn(t *testing.T, host string, lan netip.AddrPort) *natConn {
	t.Helper()
	pc, err := net.ListenPacket("udp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return &natConn{PacketConn: pc, lan: net.UDPAddrFromAddrPort(lan), ours: map[string]bool{}}
}

// longHeaderIDs returns the destination and source connection IDs of a QUIC
// long-header packet.
func longHeaderIDs(p []byte) (dcid, scid []byte, ok bool) {
	if len(p) < 7 || p[0]&0xc0 != 0xc0 {
		return nil, nil, false
	}
	r := p[5:]
	n := int(r[0])
	if len(r) < 1+n+1 {
		return nil, nil, false
	}
	dcid, r = r[1:1+n], r[1+n:]
	m := int(r[0])
	if len(r) < 1+m {
		return nil, nil, false
	}
	return dcid, r[1 : 1+m], true
}

func (c *natConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if _, scid, ok := longHeaderIDs(p); ok {
		c.mu.Lock()
		c.ours[string(scid)] = true
		c.mu.Unlock()
	}
	return c.PacketConn.WriteTo(p, addr)
}

func (c *natConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		dcid, _, ok := longHeaderIDs(p[:n])
		c.mu.Lock()
		pass := !ok || c.ours[string(dcid)]
		if !pass {
			c.drops++
		}
		c.mu.Unlock()
		if pass {
			return n, addr, err
		}
	}
}

func (c *natConn) LocalAddr() net.Addr { return c.lan }

// startBehindNAT starts an agent on a natConn.
func startBehindNAT(t *testing.T, name string, pc *natConn) *testAgent {
	t.Helper()
	return startWith(t, Config{PacketConn: pc, Heartbeat: 100 * time.Millisecond}, newPhrase(t), 0, name)
}

type waitResult struct {
	res control.ScanResult
	err error
}

func waitAsync(a *testAgent, code string) <-chan waitResult {
	ch := make(chan waitResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		res, err := a.pair.wait(ctx, code)
		ch <- waitResult{res, err}
	}()
	return ch
}

func awaitPaired(t *testing.T, who string, ch <-chan waitResult) control.ScanResult {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil || r.res.Status != pairing.StatusPaired {
			t.Fatalf("%s's wait: %+v, %v; want paired", who, r.res, r.err)
		}
		return r.res
	case <-time.After(3 * time.Minute):
		t.Fatalf("%s's wait did not end", who)
	}
	return control.ScanResult{}
}

// checkStored checks that a stored b at want, and b stored a.
func checkStored(t *testing.T, a, b *testAgent, want string) {
	t.Helper()
	pb, ok := a.book.peerFor(b.dev.Device.Public())
	if !ok {
		t.Fatalf("%s did not store %s", a.dev.Identity.Name, b.dev.Identity.Name)
	}
	if pb.Addr != want {
		t.Errorf("%s stored %s at %s, want %s (the address its connection came from)", a.dev.Identity.Name, b.dev.Identity.Name, pb.Addr, want)
	}
	if _, ok := b.book.peerFor(a.dev.Device.Public()); !ok {
		t.Fatalf("%s did not store %s", b.dev.Identity.Name, a.dev.Identity.Name)
	}
}

// Pairing between a public device and one behind a NAT that lets no
// connection in, whose invite carries a LAN address nobody can reach:
// it completes on both sides in either order, and the public device stores
// the NAT side at the address its connection came from.
func TestPairingBehindNAT(t *testing.T) {
	// Its LAN address, unreachable here: nothing answers there, as a
	// private address of another network does not (a loopback port
	// closed again, since a socket on loopback cannot send elsewhere).
	lan := deadAddr(t)
	for _, natFirst := range []bool{true, false} {
		name := "public side scans first"
		if natFirst {
			name = "NAT side scans first"
		}
		t.Run(name, func(t *testing.T) {
			pc := newNATConn(t, "127.0.0.6", lan)
			home := startBehindNAT(t, "home", pc)
			var (
				dialMu    sync.Mutex
				deadlines []time.Duration // of pub's dials, from their start
			)
			pub := startAgent(t, newPhrase(t), 0, "pub", "127.0.0.5", func(a *Agent) {
				a.pair.dialHook = func(ctx context.Context, _ netip.AddrPort, done bool, _ error) {
					if dl, ok := ctx.Deadline(); ok && !done {
						dialMu.Lock()
						deadlines = append(deadlines, time.Until(dl))
						dialMu.Unlock()
					}
				}
			})
			observed := pc.PacketConn.LocalAddr().String()
			sh, err := home.pair.show(0)
			if err != nil {
				t.Fatal(err)
			}
			if inv, _ := pairing.ParseInvite(sh.Code, time.Now()); len(inv.Addrs) != 1 || inv.Addrs[0] != lan {
				t.Fatalf("the NAT side's invite carries %v, want its LAN address %v", inv.Addrs, lan)
			}
			sp, err := pub.pair.show(0)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if natFirst {
				first, err := home.pair.scan(ctx, sp.Code)
				if err != nil || first.Status != pairing.StatusWaiting || first.Name != "pub" {
					t.Fatalf("the NAT side's scan: %+v, %v; want waiting, with pub's name", first, err)
				}
				// No connection left for pub to answer on: it must dial.
				pub.tr.ClosePeer(home.dev.Device.Ed25519().Public().(ed25519.PublicKey))
				second, err := pub.pair.scan(ctx, sh.Code)
				if err != nil || second.Status != pairing.StatusPaired {
					t.Fatalf("the public side's scan: %+v, %v; want paired although the NAT side cannot be reached", second, err)
				}
				// Its telling the NAT side, which cannot be reached, is
				// bounded by noticeTimeout, not by a whole dial's timeout.
				dialMu.Lock()
				dls := slices.Clone(deadlines)
				dialMu.Unlock()
				if len(dls) == 0 {
					t.Fatal("the public side's scan did not try to tell the NAT side")
				}
				for _, dl := range dls {
					if dl > noticeTimeout {
						t.Fatalf("the public side dials the NAT side with %v left, want at most noticeTimeout (%v)", dl, noticeTimeout)
					}
				}
				res := awaitPaired(t, "the NAT side", waitAsync(home, sp.Code))
				if res.SAS != first.SAS || res.SAS != second.SAS {
					t.Fatalf("check codes %q, %q, %q differ", first.SAS, second.SAS, res.SAS)
				}
			} else {
				first, err := pub.pair.scan(ctx, sh.Code)
				if err != nil || first.Status != pairing.StatusWaiting || first.Unreachable == "" {
					t.Fatalf("the public side's scan: %+v, %v; want waiting, unreachable", first, err)
				}
				waiting := waitAsync(pub, sh.Code)
				second, err := home.pair.scan(ctx, sp.Code)
				if err != nil || second.Status != pairing.StatusPaired || second.Name != "pub" {
					t.Fatalf("the NAT side's scan: %+v, %v; want paired", second, err)
				}
				if res := awaitPaired(t, "the public side", waiting); res.SAS != second.SAS || res.Name != "home" {
					t.Fatalf("the public side's wait: %+v, want the check code %q", res, second.SAS)
				}
			}
			checkStored(t, pub, home, observed)
			pc.mu.Lock()
			drops := pc.drops
			pc.mu.Unlock()
			t.Logf("the NAT dropped %d handshake packets", drops)
		})
	}
}

// A pairing stored once is not stored again when the paired peer repeats
// its Hello: the address presence has moved the peer to since stays.
func TestPairingStoredOnce(t *testing.T) {
	a := startAgent(t, newPhrase(t), 0, "alice", "127.0.0.2")
	b := startAgent(t, newPhrase(t), 0, "bob", "127.0.0.3")
	_, second := pairAgents(t, a, b)
	if second.Status != pairing.StatusPaired {
		t.Fatalf("second scan: %+v", second)
	}
	moved := netip.MustParseAddrPort("192.0.2.9:4242")
	a.book.setAddr(b.dev.Device.Public(), moved, 1<<40, time.Now())
	// Bob's agent sends its Hello again, as a crossed or retried one is.
	m := a.pair.scannedMachineForPeer(t, b)
	if _, err := a.pair.complete(m, netip.MustParseAddrPort("127.0.0.3:1")); err != nil {
		t.Fatal(err)
	}
	if p, _ := a.book.peerFor(b.dev.Device.Public()); p.Addr != moved.String() {
		t.Fatalf("a repeated completion moved bob back to %s from %s", p.Addr, moved)
	}
}

// scannedMachineForPeer finds the machine of p that paired with b.
func (p *pairer) scannedMachineForPeer(t *testing.T, b *testAgent) *pairing.Machine {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.machines {
		if m.Done() && seed.DevicePublic(m.Peer().Device).Equal(b.dev.Device.Public()) {
			return m
		}
	}
	t.Fatal("no machine paired with the peer")
	return nil
}

// deadAddr returns a loopback address where nothing listens: a port bound
// and closed again.
func deadAddr(t *testing.T) netip.AddrPort {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(c.LocalAddr().String())
	c.Close()
	return ap
}

// An invite's addresses are dialed together, not one after another: with
// eight dead addresses before the live one, every dial starts before any
// ends, and the live one answers.
func TestSendDialsAddressesTogether(t *testing.T) {
	type event struct {
		addr netip.AddrPort
		done bool
		err  error
	}
	var (
		mu     sync.Mutex
		events []event
	)
	a := startAgent(t, newPhrase(t), 0, "alice", "127.0.0.2", func(a *Agent) {
		a.pair.dialHook = func(_ context.Context, addr netip.AddrPort, done bool, err error) {
			mu.Lock()
			events = append(events, event{addr, done, err})
			mu.Unlock()
		}
	})
	b := startAgent(t, newPhrase(t), 0, "bob", "127.0.0.3")
	if _, err := a.pair.show(0); err != nil {
		t.Fatal(err)
	}
	sb, err := b.pair.show(0)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := pairing.ParseInvite(sb.Code, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	m := a.pair.machineFor(inv)
	hello, err := m.Scanned(inv, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	hello.Profile = a.profile()
	live := inv.Addrs[0]
	inv.Addrs = nil
	for range 8 {
		inv.Addrs = append(inv.Addrs, deadAddr(t))
	}
	inv.Addrs = append(inv.Addrs, live)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reply, via, err := a.pair.send(ctx, inv, hello)
	if err != nil || reply.Status != pairing.StatusWaiting || via != live {
		t.Fatalf("send: %+v via %v, %v; want waiting, via %v", reply, via, err, live)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 2*len(inv.Addrs) {
		t.Fatalf("%d dial events for %d addresses", len(events), len(inv.Addrs))
	}
	for k, ev := range events {
		if ev.done != (k >= len(inv.Addrs)) {
			t.Fatalf("dial events out of order (a dial ended before all had started): %+v", events)
		}
		// The dead ones were still trying when the live one answered.
		if ev.done && ev.addr != live && !errors.Is(ev.err, context.Canceled) {
			t.Errorf("the dial of dead %v ended with %v, not cancelled", ev.addr, ev.err)
		}
	}
}

// A wait ends, with the reason "expired", when the invites expire before
// the other person scans.
func TestPairWaitEndsAtExpiry(t *testing.T) {
	a := startAgent(t, newPhrase(t), 0, "alice", "127.0.0.2")
	b := startAgent(t, newPhrase(t), 0, "bob", "127.0.0.3")
	if _, err := a.pair.show(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	sb, err := b.pair.show(0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if res, err := a.pair.scan(ctx, sb.Code); err != nil || res.Status != pairing.StatusWaiting {
		t.Fatalf("scan: %+v, %v", res, err)
	}
	res, err := a.pair.wait(ctx, sb.Code)
	var ce *control.Error
	if !errors.As(err, &ce) || ce.Reason != "expired" || ce.Kind != control.KindFailed {
		t.Fatalf("wait: %+v, %v; want a failure with the reason expired", res, err)
	}
	// A code never scanned here is bad input.
	if _, err := b.pair.wait(ctx, sb.Code); !control.BadInput(err) {
		t.Fatalf("waiting on a code this device did not scan: %v", err)
	}
}
