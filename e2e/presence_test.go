package e2e

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kith-project/kith/cluster/presence"
	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/kithtest"
	"github.com/kith-project/kith/seed"
	"github.com/pion/stun/v2"
)

// quickStatus asks an agent for its status over the control socket, without
// starting a process, so that polling is fine-grained.
func quickStatus(t testing.TB, p *person) control.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := control.NewClient(p.Home).Status(ctx)
	if err != nil {
		t.Fatalf("status of %s: %v", p.id.Name, err)
	}
	return st
}

func peerIn(st control.Status, device string) (control.PeerStatus, bool) {
	d, err := seed.ParseDevicePublic(device)
	if err != nil {
		return control.PeerStatus{}, false
	}
	return st.Peer(d)
}

// waitPeer polls p's status until cond holds for device, and returns how
// long that took.
func waitPeer(t *testing.T, p *person, device string, limit time.Duration, what string, cond func(control.PeerStatus) bool) time.Duration {
	t.Helper()
	start := time.Now()
	var last control.PeerStatus
	for {
		if ps, ok := peerIn(quickStatus(t, p), device); ok {
			last = ps
			if cond(ps) {
				return time.Since(start)
			}
		}
		if time.Since(start) > limit {
			t.Fatalf("%s: %s did not see it within %v; last %+v", what, p.id.Name, limit, last)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const testT = 200 * time.Millisecond

func TestMoveToNewAddress(t *testing.T) {
	hb := []string{"--heartbeat", testT.String()}
	alice, bob, carol := bobAndFriends(t, hb...)
	for _, p := range []*person{alice, carol} {
		waitPeer(t, p, bob.id.DeviceID, 10*time.Second, "bob online", func(ps control.PeerStatus) bool { return ps.Online })
	}

	// Bob's device moves: it stops and comes back from the same home on
	// another loopback address.
	if err := bob.agent.Stop(); err != nil {
		t.Fatal(err)
	}
	// The 2T bound is on wall time across processes, which a loaded machine
	// stretches: a slow measurement is retried with another move, and only
	// three slow ones in a row fail. (TestMoveFollowedWithin2T in
	// cluster/presence checks the bound exactly, on a simulated clock.)
	var newAddr string
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			if err := bob.agent.Stop(); err != nil {
				t.Fatal(err)
			}
		}
		newAddr = kithtest.FreeAddr(t, fmt.Sprintf("127.0.0.%d", 8+attempt))
		bob.agent = bob.Start(newAddr, hb...)
		ready := time.Now()
		var worst time.Duration
		for _, p := range []*person{alice, carol} {
			took := waitPeer(t, p, bob.id.DeviceID, 10*time.Second, "bob's new address", func(ps control.PeerStatus) bool {
				return ps.Addr == newAddr && ps.Online && ps.LastSeen != nil && ps.LastSeen.After(ready.Add(-time.Second))
			})
			elapsed := time.Since(ready)
			worst = max(worst, elapsed)
			t.Logf("%s follows bob to %s %v after bob's agent was ready (poll took %v), %.2f T", p.id.Name, newAddr, elapsed, took, float64(elapsed)/float64(testT))
		}
		if worst <= 2*testT {
			break
		}
		if attempt == 3 {
			t.Fatalf("three moves in a row, a peer needed %v > 2T = %v to follow bob", worst, 2*testT)
		}
		t.Logf("attempt %d: a peer needed %v > 2T; the machine may be loaded, moving again", attempt, worst)
	}
	// Messages flow again both ways: bob hears from alice at her address.
	waitPeer(t, bob, alice.id.DeviceID, 20*testT, "alice heard again", func(ps control.PeerStatus) bool {
		return ps.Online && ps.RTTMillis != nil && ps.Addr == alice.agent.Addr
	})
	// The move is persisted: alice restarted still knows bob's new address.
	alice.agent.Stop()
	alice.agent = alice.Start(alice.agent.Addr, hb...)
	if ps, _ := peerIn(quickStatus(t, alice), bob.id.DeviceID); ps.Addr != newAddr {
		t.Fatalf("after a restart alice has bob at %s, want %s", ps.Addr, newAddr)
	}
}

func TestClockOffsetIsMeasured(t *testing.T) {
	hb := []string{"--heartbeat", testT.String()}
	alice := newPerson(t, "alice", "127.0.0.2", hb...)
	bob := newPerson(t, "bob", "127.0.0.3", append(hb, "--clock-skew", "2s")...)
	pair(t, alice, bob)
	near := func(v *float64, want float64) bool { return v != nil && math.Abs(*v-want) < 250 }
	waitPeer(t, alice, bob.id.DeviceID, 10*time.Second, "bob's +2 s clock", func(ps control.PeerStatus) bool { return near(ps.ClockOffsetMillis, 2000) })
	waitPeer(t, bob, alice.id.DeviceID, 10*time.Second, "alice's −2 s clock", func(ps control.PeerStatus) bool { return near(ps.ClockOffsetMillis, -2000) })
	ps, _ := peerIn(quickStatus(t, alice), bob.id.DeviceID)
	t.Logf("alice sees bob's clock %+.1f ms off, RTT %.2f ms", *ps.ClockOffsetMillis, *ps.RTTMillis)
	if *ps.RTTMillis < 0 || *ps.RTTMillis > 1000 {
		t.Fatalf("RTT %v ms on loopback", *ps.RTTMillis)
	}
}

// A device whose clock goes back an hour, and which restarts so, stays
// visible to its peer: its heartbeats are not refused as replays.
func TestClockBackStaysVisible(t *testing.T) {
	hb := []string{"--heartbeat", testT.String()}
	alice := newPerson(t, "alice", "127.0.0.2", hb...)
	bob := newPerson(t, "bob", "127.0.0.3", hb...)
	pair(t, alice, bob)
	waitPeer(t, alice, bob.id.DeviceID, 10*time.Second, "bob online", func(ps control.PeerStatus) bool { return ps.Online })
	if err := bob.agent.Stop(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	bob.agent = bob.Start(bob.agent.Addr, append(hb, "--clock-skew=-1h")...)
	waitPeer(t, alice, bob.id.DeviceID, 10*time.Second, "bob back with his clock an hour behind", func(ps control.PeerStatus) bool {
		return ps.Online && ps.LastSeen != nil && ps.LastSeen.After(restarted)
	})
	// And he stays: alice keeps hearing him, well past the 3T that would
	// take him offline if his packets were refused.
	seen := restarted
	for range 3 {
		waitPeer(t, alice, bob.id.DeviceID, 10*time.Second, "bob still heard", func(ps control.PeerStatus) bool {
			return ps.Online && ps.LastSeen != nil && ps.LastSeen.After(seen.Add(5*testT))
		})
		ps, _ := peerIn(quickStatus(t, alice), bob.id.DeviceID)
		seen = *ps.LastSeen
	}
	waitPeer(t, bob, alice.id.DeviceID, 10*time.Second, "alice seen by bob", func(ps control.PeerStatus) bool { return ps.Online })
}

// stunProbe sends a STUN binding request from conn to to and returns the
// mapped address of the answer, or false when none came within wait.
func stunProbe(t *testing.T, conn *net.UDPConn, to netip.AddrPort, wait time.Duration) (netip.AddrPort, bool) {
	t.Helper()
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if _, err := conn.WriteToUDPAddrPort(req.Raw, to); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 1500)
	for {
		n, _, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return netip.AddrPort{}, false
		}
		res := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if res.Decode() != nil || res.TransactionID != req.TransactionID {
			continue
		}
		var xor stun.XORMappedAddress
		if err := xor.GetFrom(res); err != nil {
			t.Fatalf("STUN answer without XOR-MAPPED-ADDRESS: %v", err)
		}
		ip, _ := netip.AddrFromSlice(xor.IP)
		return netip.AddrPortFrom(ip.Unmap(), uint16(xor.Port)), true
	}
}

func TestQuietMode(t *testing.T) {
	d := kithtest.NewDevice(t)
	var id identity
	d.JSON(&id, "", "init", "--name", "alice")
	phrase, err := seed.ParsePhrase(id.Mnemonic)
	if err != nil {
		t.Fatal(err)
	}
	window, err := seed.DeriveWindowSecret(phrase.Seed(""))
	if err != nil {
		t.Fatal(err)
	}
	// Skew alice's clock so that one of her windows opens 8 s from now by
	// her clock: the test sees both sides of the window's edge.
	now := time.Now()
	start, _ := presence.NextWindow(window[:], now.Add(2*presence.WindowLength))
	opensAt := now.Add(8 * time.Second)
	skew := start.Sub(opensAt).Round(time.Millisecond)
	alice := &person{Device: d, id: id}
	alice.agent = d.Start(kithtest.FreeAddr(t, "127.0.0.2"), "--quiet", "--heartbeat", testT.String(), "--clock-skew", skew.String())
	aliceNow := func() time.Time { return time.Now().Add(skew) }
	ap := netip.MustParseAddrPort(alice.agent.Addr)

	bob := newPerson(t, "bob", "127.0.0.3", "--heartbeat", testT.String())
	pair(t, alice, bob) // pairing: bob's address becomes known to alice

	stranger, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.7:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	// On a loaded machine starting and pairing may eat the time before the
	// window chosen above; then the probes run before the next window that
	// leaves them at least 3 s, a minute later at most.
	for {
		now := aliceNow()
		next, end := presence.NextWindow(window[:], now)
		if now.Before(next) && next.Sub(now) >= 3*time.Second {
			if !next.Equal(start) {
				t.Logf("the agent started late: probing before the window at %v instead of %v", next, start)
			}
			start = next
			break
		}
		time.Sleep(end.Add(600 * time.Millisecond).Sub(now)) // past this window
	}
	probes, offline := 0, 0
	for aliceNow().Before(start.Add(-600 * time.Millisecond)) {
		if presence.WindowOpen(window[:], aliceNow()) || presence.WindowOpen(window[:], aliceNow().Add(500*time.Millisecond)) {
			t.Fatal("the test's arithmetic put a probe inside a window")
		}
		if got, ok := stunProbe(t, stranger, ap, 300*time.Millisecond); ok {
			t.Fatalf("quiet alice answered a stranger outside her window (mapped %s)", got)
		}
		probes++
		// The known peer is answered all along. One status that shows
		// alice offline can be a loaded machine's late heartbeat; three in
		// a row cannot.
		if ps, _ := peerIn(quickStatus(t, bob), alice.id.DeviceID); ps.Online {
			offline = 0
		} else if offline++; probes > 4 && offline >= 3 {
			t.Fatalf("bob, a known peer, lost alice in quiet mode: %+v", ps)
		}
	}
	if probes < 3 {
		t.Fatalf("only %d probes in the 3 s before the window", probes)
	}
	for !aliceNow().After(start.Add(200 * time.Millisecond)) {
		time.Sleep(20 * time.Millisecond)
	}
	got, ok := stunProbe(t, stranger, ap, time.Second)
	if !ok {
		t.Fatal("quiet alice did not answer a stranger inside her window")
	}
	if got.String() != stranger.LocalAddr().String() {
		t.Fatalf("mapped address %s, want %s", got, stranger.LocalAddr())
	}
	t.Logf("%d stranger probes unanswered before the window, answered inside it", probes)
}

func TestSTUNInterop(t *testing.T) {
	client, cerr := exec.LookPath("turnutils_stunclient")
	server, serr := exec.LookPath("turnserver")
	if cerr != nil || serr != nil {
		t.Skip("turnutils_stunclient or turnserver is not installed (apt-get install coturn); skipping the STUN interop test")
	}

	// Stock client against a kith agent.
	alice := newPerson(t, "alice", "127.0.0.2")
	ap := netip.MustParseAddrPort(alice.agent.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, client, "-L", "127.0.0.6", "-p", fmt.Sprint(ap.Port()), ap.Addr().String()).CombinedOutput()
	if err != nil {
		t.Fatalf("turnutils_stunclient: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "UDP reflexive addr: 127.0.0.6:") {
		t.Fatalf("turnutils_stunclient did not get 127.0.0.6 back from kith:\n%s", out)
	}

	// kith's client against the stock server.
	port := netip.MustParseAddrPort(kithtest.FreeAddr(t, "127.0.0.1")).Port()
	srv := exec.Command(server, "-n", "--listening-ip=127.0.0.1", fmt.Sprintf("--listening-port=%d", port),
		"--stun-only", "--no-cli", "--no-tls", "--no-dtls", "--log-file=stdout", "--simple-log",
		"--userdb="+t.TempDir()+"/turndb", "--pidfile="+t.TempDir()+"/turn.pid")
	if err := srv.Start(); err != nil {
		t.Fatalf("starting turnserver: %v", err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	// No peers and no STUN server: no public address.
	lone := newPerson(t, "lone", "127.0.0.5", "--heartbeat", testT.String())
	if st := quickStatus(t, lone); len(st.PublicAddrs) != 0 {
		t.Fatalf("public_addrs without any STUN server or peer: %v", st.PublicAddrs)
	}
	d := kithtest.NewDevice(t)
	var id identity
	d.JSON(&id, "", "init", "--name", "stunned")
	p := &person{Device: d, id: id}
	p.agent = d.Start(kithtest.FreeAddr(t, "127.0.0.8"), "--heartbeat", testT.String(), "--stun", fmt.Sprintf("127.0.0.1:%d", port))
	kithtest.Eventually(t, 20*time.Second, "a public address from turnserver", func() error {
		st := quickStatus(t, p)
		for _, a := range st.PublicAddrs {
			if a == p.agent.Addr {
				return nil
			}
		}
		return fmt.Errorf("public_addrs %v, want %s", st.PublicAddrs, p.agent.Addr)
	})
}
