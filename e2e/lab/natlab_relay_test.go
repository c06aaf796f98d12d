package lab

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/kithtest"
	"github.com/kith-project/kith/internal/natlab"
)

// The grid's port-mapping case: both routers symmetric, so that punching
// alone cannot work, but rA grants NAT-PMP mappings (miniupnpd): hA's
// agent maps its port, kith netcheck says so, and hB reaches hA at the
// mapped address, on a punched (or direct) path instead of a relay.
func TestNATLabGridPortMapping(t *testing.T) {
	natlab.Require(t)
	t.Parallel()
	o := gridOptions{symA: true, symB: true, mapA: true}
	g := newGrid(t, o)
	want := netip.AddrPortFrom(g.rA.WAN(), labPort).String()
	var nc control.Netcheck
	kithtest.Eventually(t, time.Minute, "hA's port mapping at "+want, func() error {
		g.a.JSON(&nc, "", "netcheck")
		if nc.PortMapping.Protocol != "nat-pmp" || nc.PortMapping.External != want {
			return fmt.Errorf("netcheck says %+v", nc.PortMapping)
		}
		return nil
	})
	path, took := g.waitPaths(t, 2*time.Minute, "punched", "direct")
	g.logGrid(t, o, path, took)
	if ps, _ := peerIn(quickStatus(t, g.b), g.a.id.DeviceID); ps.Addr != want {
		t.Fatalf("hB reaches hA at %s, want the mapping %s", ps.Addr, want)
	}
	g.keepsFlowing(t, "punched", "direct")
}
