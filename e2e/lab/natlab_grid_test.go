package lab

// The grid of issue #10, in the NAT lab: hA and hB, each behind its own
// home router, with pub, a public friend of both. The two paired in a
// café (on one LAN), went home, and keep only the café addresses of each
// other, which answer nothing: they need pub to meet again.
//
// Each case logs the path it reached and the time from both agents
// running to both seeing it, as "grid: hA-hB punched 1.84s", for the
// table in docs/networks.md.

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/natlab"
)

// pubFlags are the run flags of the mutual friend's agent: it introduces
// friends to each other, and relays between them.
var pubFlags = []string{"--introduce", "friends", "--relay", "friends"}

// grid is one lab of the grid, with its three agents running and paired.
type grid struct {
	lab          *natlab.Lab
	rA, rB       *natlab.Router
	hA, hB, hPub *natlab.Host
	a, b, pub    *person
	// ready is when both a's and b's agents answered, after their last
	// start.
	ready time.Time
}

// gridOptions are one grid case's routers and agents.
type gridOptions struct {
	symA, symB bool                  // symmetric routers
	mapA       bool                  // rA grants NAT-PMP port mappings
	router     []natlab.RouterOption // for both home routers
	flags      []string              // run flags of a's and b's last start
}

// newGrid builds a grid lab: a and b pair in a café, go home behind rA and
// rB, pair with pub there, and then start again together.
func newGrid(t *testing.T, o gridOptions) *grid {
	t.Helper()
	lab := natlab.New(t)
	g := &grid{lab: lab}
	optsA, optsB := slices.Clone(o.router), slices.Clone(o.router)
	if o.symA {
		optsA = append(optsA, natlab.Symmetric())
	}
	if o.symB {
		optsB = append(optsB, natlab.Symmetric())
	}
	if o.mapA {
		optsA = append(optsA, natlab.PortMapping())
	}
	g.rA, g.rB = lab.Router("rA", optsA...), lab.Router("rB", optsB...)
	g.hA, g.hB, g.hPub = lab.Host("hA", g.rA), lab.Host("hB", g.rB), lab.Public("pub")
	cafe := lab.Router("cafe")
	g.a, g.b = labPerson(t, lab.Host("cA", cafe), "a"), labPerson(t, lab.Host("cB", cafe), "b")
	pairInOrder(t, g.a, g.b)
	g.pub = labPerson(t, g.hPub, "pub", pubFlags...)
	// Each goes home and pairs with pub there, one after the other: were
	// both at home at once, they would find each other already, and then
	// know each other's home addresses.
	for _, c := range []struct {
		p *person
		h *natlab.Host
	}{{g.a, g.hA}, {g.b, g.hB}} {
		c.p.moveTo(t, c.h)
		if c.p == g.a {
			pairInOrder(t, g.a, g.pub)
		} else {
			pairInOrder(t, g.pub, g.b)
		}
		waitPeer(t, c.p, g.pub.id.DeviceID, 30*labT, "pub online", func(ps control.PeerStatus) bool { return ps.Online })
		if err := c.p.agent.Stop(); err != nil {
			t.Fatalf("stopping %s: %v", c.p.id.Name, err)
		}
	}
	// Both start together, at home, knowing each other only at the café.
	g.a.moveTo(t, g.hA, o.flags...)
	g.b.moveTo(t, g.hB, o.flags...)
	g.ready = time.Now()
	return g
}

// pathOf is how a status shows a peer's path: "punched", "relay via pub".
func pathOf(ps control.PeerStatus) string {
	if ps.Via != "" {
		return ps.Path + " via " + ps.Via
	}
	return ps.Path
}

// sides are the paths a and b see each other on, as pathOf spells them:
// a's view of b, then b's of a. They may differ: behind a symmetric NAT
// with a port mapping, hA is reached at its mapping ("direct" from hB)
// while hA sees hB at a mapping hB's router made for it ("punched").
type sides [2]string

// String is one path when both sides agree, else "a:X b:Y".
func (s sides) String() string {
	if s[0] == s[1] {
		return s[0]
	}
	return "a:" + s[0] + " b:" + s[1]
}

// relayed reports whether either side is on a relayed path.
func (s sides) relayed() bool {
	return strings.HasPrefix(s[0], "relay") || strings.HasPrefix(s[1], "relay")
}

// waitPaths waits until a and b see each other online on one of the
// paths in want (as pathOf spells them), and returns each side's path and
// the time since g.ready.
func (g *grid) waitPaths(t *testing.T, limit time.Duration, want ...string) (sides, time.Duration) {
	t.Helper()
	var got sides
	for i, pp := range [][2]*person{{g.a, g.b}, {g.b, g.a}} {
		p, other := pp[0], pp[1]
		waitPeer(t, p, other.id.DeviceID, limit, other.id.Name+" on a path of "+strings.Join(want, ", "), func(ps control.PeerStatus) bool {
			return ps.Online && ps.RTTMillis != nil && slices.Contains(want, pathOf(ps))
		})
		ps, _ := peerIn(quickStatus(t, p), other.id.DeviceID)
		got[i] = pathOf(ps)
	}
	return got, time.Since(g.ready)
}

// logGrid logs one case's outcome in the form docs/networks.md's table is
// made from.
func (g *grid) logGrid(t *testing.T, o gridOptions, path sides, took time.Duration) {
	t.Helper()
	name := func(h string, sym, mapped bool) string {
		switch {
		case sym && mapped:
			return h + "(symmetric,portmap)"
		case sym:
			return h + "(symmetric)"
		case mapped:
			return h + "(portmap)"
		}
		return h
	}
	t.Logf("grid: %s-%s %s %.2fs", name("hA", o.symA, o.mapA), name("hB", o.symB, false), path, took.Seconds())
}

// keepsFlowing checks that a and b still hear each other for 5T after
// pub's agent stopped, each on one of the paths in want: not through
// pub, which is gone. A side may move between the paths in want
// meanwhile (from hA's mapping, "direct", to a punched one).
func (g *grid) keepsFlowing(t *testing.T, want ...string) {
	t.Helper()
	if err := g.pub.agent.Stop(); err != nil {
		t.Fatalf("stopping pub: %v", err)
	}
	stopped := time.Now()
	for _, pp := range [][2]*person{{g.a, g.b}, {g.b, g.a}} {
		p, other := pp[0], pp[1]
		waitPeer(t, p, other.id.DeviceID, 30*labT, other.id.Name+" heard 5T after pub stopped, on a path of "+strings.Join(want, ", "), func(ps control.PeerStatus) bool {
			return ps.Online && slices.Contains(want, pathOf(ps)) && ps.LastSeen != nil && ps.LastSeen.After(stopped.Add(5*labT))
		})
	}
}
