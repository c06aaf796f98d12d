package agent

import (
	"net/netip"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/memnet"
)

// Keepalives hold a punched path open through NATs that forget a mapping
// after 2 s without a packet out, while heartbeats come only every 2.5 to
// 7.5 s, each to one of two peers: the mappings never expire, and streams
// keep working. (With keepalives off the same test fails.) The cost per
// path is logged (docs/networks.md has the figure).
func TestKeepaliveHoldsPunchedPath(t *testing.T) {
	o := labOptions{heartbeat: 5 * time.Second, natTimeout: 2 * time.Second, keepEvery: 250 * time.Millisecond}
	l := newNATLabWith(t, memnet.EndpointIndependent, IntroduceFriends, o)
	waitLong(t, "a punched path both ways", 90*time.Second, func() bool { return punched(l.hA, l.hB) && punched(l.hB, l.hA) })
	expA, expB := l.natA.Stats().Expired, l.natB.Stats().Expired
	sentA := l.hA.keep.sent.Load()
	start := time.Now()
	time.Sleep(8 * time.Second)
	el := time.Since(start)
	if !punched(l.hA, l.hB) || !punched(l.hB, l.hA) {
		t.Fatal("the punched path was lost")
	}
	if err := echo(t, l.hA, l.hB); err != nil {
		t.Fatalf("stream after 8 s of 2 s NAT timeouts: %v", err)
	}
	if ea, eb := l.natA.Stats().Expired-expA, l.natB.Stats().Expired-expB; ea != 0 || eb != 0 {
		t.Fatalf("mappings expired despite keepalives: %d at A, %d at B", ea, eb)
	}
	sent := l.hA.keep.sent.Load() - sentA
	if sent == 0 {
		t.Fatal("no keepalive sent")
	}
	// hA is behind a NAT with two online peers (pub, hB): two paths.
	const paths = 2
	perPath := float64(sent) / paths / el.Seconds()
	t.Logf("keepalives: %d in %v over %d paths = %.2f a second per path at a %v interval; at the default %v that is %.3f packets/s, %.2f B/s per path with IPv4+UDP headers (1+28 bytes)",
		sent, el.Round(time.Millisecond), paths, perPath, o.keepEvery, keepaliveEvery, perPath*o.keepEvery.Seconds()/keepaliveEvery.Seconds(), 29*perPath*o.keepEvery.Seconds()/keepaliveEvery.Seconds())
}

// No keepalive leaves a device that is not behind a NAT and has no
// punched path.
func TestNoKeepaliveWithoutNAT(t *testing.T) {
	n := memnet.New(memnet.Options{})
	t.Cleanup(func() { n.Close() })
	o := labOptions{keepEvery: 100 * time.Millisecond}
	a, _ := labAgentWith(t, n, netip.MustParseAddrPort("203.0.113.1:7117"), "a", "", o)
	b, _ := labAgentWith(t, n, netip.MustParseAddrPort("203.0.113.2:7117"), "b", "", o)
	pairAgents(t, a, b)
	waitLong(t, "online", 30*time.Second, func() bool { return a.onlineSet()[dev(b)] })
	time.Sleep(time.Second)
	if got := a.keep.sent.Load() + b.keep.sent.Load(); got != 0 {
		t.Fatalf("%d keepalives between two public devices", got)
	}
}
