package e2e

import (
	"net/netip"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/natlab"
)

// The grid's first case: hA and hB behind port-preserving NATs, with pub
// a friend of both that introduces them. They reach a punched path (the
// issue asks within 5 s of both agents running; the test allows a minute
// and logs the time), and messages keep flowing after pub stops.
func TestNATLabGridPunched(t *testing.T) {
	natlab.Require(t)
	t.Parallel()
	o := gridOptions{}
	g := newGrid(t, o)
	path, took := g.waitPaths(t, time.Minute, "punched")
	g.logGrid(t, o, path, took)
	g.keepsFlowing(t, path)
}

// Renumbering with a punched path: after rA's new lease, pub and hB both
// follow hA, and the path between hA and hB is punched again. Logs
// "renumber: hB re-punches hA 3.21s (3.21 T)".
func TestNATLabRenumberRepunch(t *testing.T) {
	natlab.Require(t)
	t.Parallel()
	g := newGrid(t, gridOptions{})
	g.waitPaths(t, time.Minute, "punched")
	for round := range 2 {
		g.lab.Renumber(g.rA)
		renumbered := time.Now()
		newAddr := at(g.hA)
		follows := func(punched bool) func(control.PeerStatus) bool {
			return func(ps control.PeerStatus) bool {
				return ps.Online && ps.Addr == newAddr && ps.LastSeen != nil && ps.LastSeen.After(renumbered) && (!punched || ps.Path == "punched")
			}
		}
		took := waitAll(t, renumbered, time.Minute,
			peerCheck{g.pub, g.a, "hA at " + newAddr, follows(false)},
			peerCheck{g.b, g.a, "hA at " + newAddr + ", punched", follows(true)})
		t.Logf("renumber: pub follows hA %.2fs (%.2f T), round %d", took[0].Seconds(), float64(took[0])/float64(labT), round+1)
		t.Logf("renumber: hB re-punches hA %.2fs (%.2f T), round %d", took[1].Seconds(), float64(took[1])/float64(labT), round+1)
		waitPeer(t, g.a, g.b.id.DeviceID, time.Minute, "hB heard by hA after the renumbering", func(ps control.PeerStatus) bool {
			return ps.Online && ps.Path == "punched" && ps.LastSeen != nil && ps.LastSeen.After(renumbered)
		})
	}
}

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
