package lab

// The keepalive test is in a file of its own whose name sorts first among
// the lab's, so that it is the first of them to resume: go test runs at
// most GOMAXPROCS parallel tests at once (2 here), and its 10 minutes must
// run beside the others, not after them.

import (
	"net/netip"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/natlab"
)

// keepaliveFor is how long the keepalive test watches a punched path.
const keepaliveFor = 10 * time.Minute

// Keepalive: a punched path stays up for 10 minutes through routers whose
// UDP timeouts are 30 s, with heartbeats too rare (T = 20 s, each peer of
// two heard every 2T on average) to keep the mappings alive by
// themselves. Neither router forgets the path's flow once (conntrack's
// DESTROY events say so), and both sides see each other on it to the
// end. It logs the path's traffic, everything on it, keepalives and
// heartbeats, in bytes per second.
func TestNATLabKeepalive(t *testing.T) {
	natlab.Require(t)
	if dl, ok := t.Deadline(); ok && time.Until(dl) < keepaliveFor+3*time.Minute {
		t.Fatalf("this test watches a path for %v: run go test with -timeout 15m or more (the README's test command does); %v is left", keepaliveFor, time.Until(dl).Round(time.Second))
	}
	t.Parallel()
	g := newGrid(t, gridOptions{router: []natlab.RouterOption{natlab.UDPTimeouts(30*time.Second, 30*time.Second)}, flags: []string{"--heartbeat", "20s"}})
	g.waitPaths(t, 2*time.Minute, "punched")
	stA, _ := peerIn(quickStatus(t, g.a), g.b.id.DeviceID)
	stB, _ := peerIn(quickStatus(t, g.b), g.a.id.DeviceID)
	toB, errB := netip.ParseAddrPort(stA.Addr)
	toA, errA := netip.ParseAddrPort(stB.Addr)
	if errA != nil || errB != nil {
		t.Fatalf("addresses on the punched path: %q, %q", stA.Addr, stB.Addr)
	}
	watchA, watchB := g.rA.WatchExpired(), g.rB.WatchExpired()
	// The path's flow on router r, from host h to the other side's
	// mapping to.
	pathFlow := func(f natlab.Flow, h *natlab.Host, to netip.AddrPort) bool {
		return f.Src == netip.AddrPortFrom(h.Addr, labPort) && f.Dst == to
	}
	start := time.Now()
	for time.Since(start) < keepaliveFor {
		time.Sleep(5 * time.Second)
		for _, w := range []struct {
			watch *natlab.FlowWatch
			h     *natlab.Host
			to    netip.AddrPort
		}{{watchA, g.hA, toB}, {watchB, g.hB, toA}} {
			for _, f := range w.watch.Gone() {
				if pathFlow(f, w.h, w.to) {
					t.Fatalf("after %v the router of %s forgot the punched path's flow %v", time.Since(start).Round(time.Second), w.h.Name, f)
				}
			}
		}
		for _, pp := range [][2]*person{{g.a, g.b}, {g.b, g.a}} {
			if ps, ok := peerIn(quickStatus(t, pp[0]), pp[1].id.DeviceID); !ok || !ps.Online || ps.Path != "punched" {
				t.Fatalf("after %v %s sees %s as %+v, want online on the punched path", time.Since(start).Round(time.Second), pp[0].id.Name, pp[1].id.Name, ps)
			}
		}
	}
	fs, err := g.rA.Flows()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if pathFlow(f, g.hA, toB) {
			secs := time.Since(start).Seconds()
			t.Logf("keepalive: punched path up %v through 30 s UDP timeouts; its flow carried %d+%d packets, %.1f B/s out and %.1f B/s in (everything on it, heartbeats too, over the flow's life)",
				keepaliveFor, f.Packets[0], f.Packets[1], float64(f.Bytes[0])/secs, float64(f.Bytes[1])/secs)
			return
		}
	}
	t.Fatalf("rA no longer lists the punched path's flow to %s: %v", toB, fs)
}
