package agent

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/kith-project/kith/seed"
)

// Simultaneous open. From the instant the introducer set, both sides send
// signed heartbeats addressed to the other device (presence.SendBeatTo)
// to every address of the other's plan, every 50 to 100 ms (jittered) for
// punchFor. Each packet out opens this side's NAT toward that address; the
// first packet of the other side that gets in is authenticated by presence
// like any heartbeat and moves the peer there, as roaming does, and its
// reply comes back through the hole it came by. QUIC then connects over
// the path at the book's address. A plan is one try; the reach service
// (reach.go) makes up to three, each with a fresh introduction.

// Punching, as the agent does it; tests shorten punchFor.
const (
	defaultPunchFor = 3 * time.Second
	punchGapMin     = 50 * time.Millisecond
	punchGapMax     = 100 * time.Millisecond
)

// punchPlan is one try: where to send, and from when, by our clock.
type punchPlan struct {
	peer  seed.DevicePublic
	addrs []netip.AddrPort
	start time.Time
}

// punch runs plan and reports the address that won, if one did. It
// records the path as punched.
func (a *Agent) punch(ctx context.Context, plan punchPlan) (netip.AddrPort, bool) {
	if len(plan.addrs) == 0 {
		return netip.AddrPort{}, false
	}
	if wait := plan.start.Sub(a.cfg.Now()); wait > 0 {
		t := time.NewTimer(min(wait, maxIntroLead))
		select {
		case <-ctx.Done():
			t.Stop()
			return netip.AddrPort{}, false
		case <-t.C:
		}
	}
	began := a.cfg.Now()
	before := a.bookAddr(plan.peer)
	end := began.Add(a.reach.punchFor)
	a.log.Debug("punching", "peer", plan.peer.Short(), "addrs", plan.addrs)
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	for {
		for _, ap := range plan.addrs {
			a.presence.SendBeatTo(plan.peer, ap)
		}
		a.reach.punchesSent.Add(uint64(len(plan.addrs)))
		gap := punchGapMin + rand.N(punchGapMax-punchGapMin+1)
		t.Reset(gap)
		select {
		case <-ctx.Done():
			return netip.AddrPort{}, false
		case <-t.C:
		}
		now := a.cfg.Now()
		if seen := a.presence.LastSeen(plan.peer); seen.After(began) {
			cur := a.bookAddr(plan.peer)
			if containsAddr(plan.addrs, cur) || (cur.IsValid() && cur != before) {
				a.paths.set(plan.peer, cur, PathPunched, "", now)
				a.log.Info("punched a path", "peer", plan.peer.Short(), "addr", cur.String(), "after", now.Sub(began).Round(time.Millisecond))
				return cur, true
			}
		}
		if now.After(end) {
			a.log.Debug("punching failed", "peer", plan.peer.Short(), "nat", a.natType())
			return netip.AddrPort{}, false
		}
	}
}

// bookAddr is the address the book holds for d.
func (a *Agent) bookAddr(d seed.DevicePublic) netip.AddrPort {
	p, ok := a.book.peerFor(d)
	if !ok {
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(p.Addr)
	return ap
}
