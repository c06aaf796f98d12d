package lab

import (
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
	g.keepsFlowing(t, "punched")
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
